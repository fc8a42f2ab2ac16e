//! The UDP backend's shared suite (`support/udp_suite.rs`) on the io_uring
//! engine, receiving with a multishot `RecvMsg` on a provided-buffer ring.

use tilewire_aio::udp::{Engine, UringRecv};

const ENGINE: Engine = Engine::Uring;
const RECV: UringRecv = UringRecv::Multishot;

#[path = "support/udp_suite.rs"]
mod suite;
