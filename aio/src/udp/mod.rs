//! The UDP socket backend: a net backend that needs no privileges.
//!
//! A [`UdpAio`] owns one UDP socket. Its transmit side is an [`Aio`](crate::Aio): a
//! tile sends it batches of packets, each with its destination in
//! `meta.addr`. Its receive side is [`UdpAio::poll`]: each call receives a
//! burst of datagrams and sends them on to a downstream aio (the next tile's
//! link, or a [`MemAio`](crate::MemAio) in a test) with each source address
//! in `meta.addr` and `flush = true` at the end of the burst. So a net tile
//! is `poll(&mut link_tx)` in its loop and `send` on its input frags.
//!
//! # Engines
//!
//! Two kernel interfaces can move the packets, chosen by [`Engine`] in the
//! [`UdpConfig`], behind the one API:
//!
//! - **mmsg**: `sendmmsg(2)` / `recvmmsg(2)` on batches of
//!   [`UdpConfig::batch`] messages (64 by default, what validators use
//!   today). One system call moves a batch; it works wherever UDP does,
//!   including containers where io_uring is disabled by sysctl or seccomp.
//! - **uring**: `Send` entries (a `sendto` each) queued into an io_uring and submitted
//!   with one `io_uring_enter` per flush (or per `batch` queued); receives
//!   by one multishot `RecvMsg` on a provided-buffer ring, or a fixed set of
//!   one-shot `RecvMsg` where that is missing ([`UringRecv`]). The socket
//!   is a registered file; [`UdpConfig::queue_depth`] slots and buffers
//!   live in one mapping shared with the ring; optional SQPOLL
//!   ([`UdpConfig::sqpoll`]) and an AIMD limit on sends in flight against a
//!   latency target ([`UdpConfig::aimd`]). The first thread that sends or
//!   polls becomes the ring's one submitter (`SINGLE_ISSUER`,
//!   `DEFER_TASKRUN`): make the aio anywhere, then use it from one thread.
//!
//! [`Engine::Auto`] asks the kernel first ([`uring_support`]) and takes
//! io_uring where it is allowed, mmsg where it is disabled by sysctl,
//! refused by a seccomp filter (`EPERM`) or missing (`ENOSYS`);
//! [`UdpAio::engine_note`] says which and why, once, for the caller's log.
//!
//! # Who owns which buffer, and for how long
//!
//! Everything is allocated by [`UdpAio::bind`] and kept until drop; the
//! send and receive paths allocate nothing (a counting-allocator test
//! checks it).
//!
//! - **The caller's batch** is borrowed for one call of `send`, as the aio
//!   contract says, and never after: every packet taken is *copied* into a
//!   transmit slot (`batch` slots of [`UdpConfig::tx_pkt_max`] bytes, each
//!   with its socket address and message header) before `send` returns.
//! - **A transmit slot** holds its packet from the copy until the kernel
//!   took it (sendmmsg returned past it) or refused it with an error
//!   (counted, dropped). With mmsg the kernel holds no pointer into a slot
//!   after the system call returns (it copies into its own socket
//!   buffers), so a slot is free again as soon as the call that sent it
//!   returned. With io_uring a slot is the kernel's from submission until
//!   its completion is reaped.
//! - **A receive slot** (`batch` slots of [`UdpConfig::rx_buf_len`]
//!   bytes) is the kernel's for the duration of one `recvmmsg`, then ours;
//!   the downstream aio borrows it for the duration of its `send` only (the
//!   same contract, seen from the other side) and must copy what it keeps.
//!   Slots the downstream refused with `Again` keep their packets until a
//!   later poll delivers them; no new receive overwrites them before then.
//!
//! # What send, flush and Again mean here
//!
//! `send` copies packets into free slots; it calls `sendmmsg` (mmsg)
//! when every slot is taken, or `io_uring_enter` (uring) when `batch`
//! sends are queued, and either at its end when `flush` is set. So
//! `flush = false` gathers up to a batch across calls into one system
//! call, and a flush (an empty batch with `flush = true` will do) pushes
//! out the rest.
//!
//! A packet is *taken* once copied into a slot, and from then on it is the
//! backend's to send: the system call that sends it may come in a later
//! call. When the kernel's socket buffer is full (`EAGAIN`, `ENOBUFS`),
//! taken packets stay in their slots, in order, and are tried again first
//! by the next `send`; packets that find every slot taken are answered
//! with `Again` at their index, so the caller retries them, and only them.
//! A flush that meets a full socket buffer still returns `Ok`: its packets
//! were taken, and reporting them as not sent would have the caller send
//! them twice. [`UdpAio::tx_pending`] tells how many wait; a tile flushes
//! again at housekeeping while it is nonzero. With io_uring the slots are
//! also taken while their sends are in flight, so `Again` means every slot
//! is queued or in flight (or the AIMD limit is reached) after one enter
//! and reap.
//!
//! On loopback the kernel never pushes back (a datagram is handed to the
//! receiver's queue, or dropped there, within the send), so `Again` is
//! seen on real NICs and is tested against a scripted kernel.
//!
//! # Errors the kernel reports
//!
//! `sendmmsg` stops at a message it cannot send and reports the error only
//! when that message is the first of the call. The backend then counts the
//! error by kind ([`TxErrors`]) and, for `EMSGSIZE`, drops the packet. Any
//! other error may be an asynchronous report about an *earlier* datagram (an
//! ICMP port unreachable on a connected socket is reported, once, by the
//! next send), so the packet is tried once more and dropped only if it
//! fails again. Every drop is counted in [`UdpStats::tx_dropped`]; no error
//! stops the aio or loses the packets around the one dropped.
//!
//! The io_uring engine sees the same errors in its send completions and
//! handles them the same way. A pending socket error goes to whichever
//! operation meets it first, so with receives posted (always, in the fixed
//! receive mode) an ICMP report may surface as a receive error instead:
//! counted in [`UdpStats::rx_errors`], losing nothing.
//!
//! An unconnected socket does not hear ICMP errors at all (Linux reports
//! them only on connected sockets or with `IP_RECVERR`, whose error queue
//! would then take receive-buffer space until drained); set
//! [`UdpConfig::connect`] to get them.
//!
//! # Unsafe code
//!
//! In two private modules: `sys` (the socket calls and the two batch
//! system calls, with every pointer of a message header written from a
//! live borrow immediately before the call that reads it) and `uring`
//! (the ring and the mapping it shares with the kernel, where pointers
//! stay with the kernel until their completion; its module documentation
//! gives the ownership argument).

#![deny(unsafe_code)]

mod aimd;
mod config;
mod endpoint;
mod mmsg;
mod probe;
mod stats;
mod sys;
mod tx;
mod uring;

pub use aimd::AimdConfig;
pub use config::{
    BindError, Engine, UdpConfig, UringRecv, BATCH_DEFAULT, BATCH_MAX, QUEUE_DEPTH_DEFAULT,
    QUEUE_DEPTH_MAX, RX_BUF_DEFAULT, UDP_V4_PAYLOAD_MAX, UDP_V6_PAYLOAD_MAX,
};
pub use endpoint::{EngineNote, Fallback, UdpAio};
pub use probe::{uring_support, uring_support_raw, uring_sysctl, UringSupport};
pub use stats::{TxErrors, UdpStats};
