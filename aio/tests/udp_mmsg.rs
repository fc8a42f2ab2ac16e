//! The UDP backend's shared suite (`support/udp_suite.rs`) on the
//! sendmmsg/recvmmsg engine.

use tilewire_aio::udp::{Engine, UringRecv};

const ENGINE: Engine = Engine::Mmsg;
const RECV: UringRecv = UringRecv::Auto;

#[path = "support/udp_suite.rs"]
mod suite;
