//! The UDP backend's shared suite (`support/udp_suite.rs`) on the io_uring
//! engine, receiving with a fixed set of one-shot `RecvMsg` (the fallback
//! for kernels without provided-buffer rings).

use tilewire_aio::udp::{Engine, UringRecv};

const ENGINE: Engine = Engine::Uring;
const RECV: UringRecv = UringRecv::Fixed;

#[path = "support/udp_suite.rs"]
mod suite;
