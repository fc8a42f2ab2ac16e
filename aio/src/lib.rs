#![deny(unsafe_code)]
#![doc = include_str!("../README.md")]
//!
//! tilewire-aio: the batch send contract every edge of a tilewire pipeline
//! speaks, after Firedancer's fd_aio.
//!
//! # One verb
//!
//! A packet pipeline is a chain of stages, and every edge between two stages
//! is the same operation: *here is a batch of packets, take them*. This crate
//! names that operation [`Aio::send`]. A net tile's transmit side is an aio
//! (the packets leave on a socket or an AF_XDP ring); a link into the next
//! tile is an aio (the packets are published into shared memory); a test
//! double that just keeps the packets is an aio ([`MemAio`]); a capture that
//! copies the packets to a pcap file on their way to the next aio is an aio
//! ([`PcapTee`]).
//!
//! Receiving is the same verb seen from the other side. A backend's receive
//! side does not hand packets to a caller who asks for them; it *sends* them
//! to a downstream aio it was given, one batch per poll, with `flush` set at
//! the end of the poll burst. So a pipeline is built by handing each stage
//! the aio of the next one, and any stage can be swapped (a socket for
//! AF_XDP, a link for a [`MemAio`] in a test) without the others noticing.
//!
//! # The contract
//!
//! [`Aio::send`] documents it in full: best effort, in order; on error the
//! index of the first packet not sent; empty batches and empty packets are
//! fine; duplicate and overlapping buffers are fine; and the backend keeps
//! no interest in anything it was given once the call returns. That last
//! rule is what lets `send` take plain borrows and be safe Rust: a backend
//! that needs the bytes later (a ring waiting for the kernel, a socket with
//! a full buffer) copies them into memory it owns before returning.
//!
//! `conformance` (feature `test-support`) turns the contract into checks, written once and run
//! against every backend: this crate's own and those of later crates (link
//! transmit, io_uring and mmsg UDP, AF_XDP).
//!
//! # Packets and codes
//!
//! [`PktInfo`] describes a packet: a byte slice and a [`PktMeta`] (socket
//! address, backend-defined word). [`BUF_MAX`] bounds packet length for
//! backends that bound it. Errors are a [`SendError`] (kind and
//! `batch_idx`); the integer codes [`SUCCESS`], [`ERR_INVAL`], [`ERR_AGAIN`]
//! and [`strerror`] mirror fd_aio's for the C-shaped edge.
//!
//! # The C-shaped edge
//!
//! [`raw`] holds the fd_aio object itself: a context pointer and a send
//! function placed in caller memory with the new / join / leave / delete
//! lifecycle of `tilewire_shmem::object`, batches of 16-byte [`PktInfoC`]
//! descriptors, integer codes. It is how an aio is found by name in a
//! workspace and how one written in C plugs in. Because it holds a function
//! pointer it is only joinable inside the process that made it; the edge
//! between processes is a link, which carries bytes, never pointers.

#![warn(missing_docs)]

#[cfg(feature = "test-support")]
pub mod conformance;
pub mod error;
pub mod fixture;
pub mod frame;
pub mod mem;
/// Network namespaces: a thread entering one ([`netns::enter_thread`]), and
/// (feature `test-support`) test hosts, a veth pair between two fresh
/// namespaces, removed on drop (needs root).
pub mod netns;
pub mod pcap;
pub mod pkt;
pub mod raw;
pub mod udp;

pub use error::{strerror, SendError, SendErrorKind, ERR_AGAIN, ERR_INVAL, SUCCESS};
pub use mem::{MemAio, MemAioStats};
pub use pcap::{LinkType, PcapConfig, PcapTee, TsResolution};
pub use pkt::{PktInfo, PktInfoC, PktMeta, PktTooLong, BUF_MAX};
pub use raw::{RawAio, RawAioHandle, SendFn};
pub use udp::{UdpAio, UdpConfig, UdpStats};

/// Something that takes batches of packets: one edge of a pipeline.
///
/// # The contract of [`send`](Aio::send)
///
/// `send(batch, flush)` hands the packets of `batch` to the backend, in
/// order, best effort.
///
/// - **Success** (`Ok(())`): every packet of the batch was taken.
/// - **Failure** (`Err(e)`): packets `[0, e.batch_idx)` were taken and
///   packets `[e.batch_idx, batch.len())` were not; the backend holds
///   nothing of them. The caller decides what to do with the rest:
///   - [`SendErrorKind::Inval`] is a per-packet error: the packet at
///     `e.batch_idx` is the culprit (for example longer than [`BUF_MAX`] on
///     a backend that bounds length). Retrying it fails again.
///   - [`SendErrorKind::Again`]: the backend is out of room. Retrying from
///     `e.batch_idx` after the backend drained takes each packet exactly
///     once: nothing is duplicated and nothing is lost.
/// - An empty batch succeeds (and still honours `flush`). A zero-length
///   packet succeeds and is delivered as a zero-length packet.
/// - The same buffer may appear more than once in a batch, and buffers may
///   overlap: descriptors are read-only borrows.
/// - **The backend retains no interest in the batch or the buffers after
///   `send` returns**, whatever it returns. It copies what it needs or
///   consumes it (writes it to a socket, a ring, a file) before returning,
///   so the caller may reuse or drop every buffer at once. This is what
///   makes `send` safe: nothing outlives the borrow.
/// - `flush` asks the backend for a best-effort transmit of everything
///   buffered so far (by this call and earlier ones). `flush = false` lets a
///   backend gather packets across calls (to fill a ring or a `sendmmsg`
///   before the syscall); it does not allow it to hold packets forever, and
///   a later flush (an empty batch with `flush = true` will do) pushes them.
///
/// "Taken" means the backend accepted responsibility for the packet; for a
/// network backend that is not delivery (UDP may still drop it), but it is
/// never a packet that the backend will also ask to be retried.
///
/// # Chaining
///
/// A backend's receive side holds a downstream `Aio` and calls its `send`
/// with each received batch, `flush = true` at the end of a poll burst. Its
/// own `send` is its transmit side. Wrappers such as [`PcapTee`] are both at
/// once.
///
/// `Aio` is dyn-compatible: `&mut dyn Aio` and `Box<dyn Aio>` are aios too.
pub trait Aio {
    /// Sends `batch`, in order, best effort; see the trait documentation for
    /// the full contract.
    ///
    /// # Errors
    /// [`SendError`] with the index of the first packet not sent:
    /// [`SendErrorKind::Inval`] when that packet is bad for this backend,
    /// [`SendErrorKind::Again`] when the backend is out of room.
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError>;
}

impl<T: Aio + ?Sized> Aio for &mut T {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        (**self).send(batch, flush)
    }
}

impl<T: Aio + ?Sized> Aio for Box<T> {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        (**self).send(batch, flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts calls and refuses everything after `room` packets.
    struct Counter {
        calls: usize,
        room: usize,
    }

    impl Aio for Counter {
        fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
            self.calls += 1;
            if batch.len() > self.room {
                let idx = self.room;
                self.room = 0;
                return Err(SendError::again(idx));
            }
            self.room -= batch.len();
            Ok(())
        }
    }

    /// Sends through whatever `A` is, so the blanket impls are the ones used.
    fn send_via<A: Aio>(mut aio: A, batch: &[PktInfo<'_>]) -> Result<(), SendError> {
        aio.send(batch, true)
    }

    #[test]
    fn aio_is_dyn_compatible_through_refs_and_boxes() {
        let pkts = [PktInfo::new(b"a"), PktInfo::new(b"b")];
        let mut inner = Counter { calls: 0, room: 3 };
        assert_eq!(send_via(&mut inner, &pkts), Ok(()));
        let dynamic: &mut dyn Aio = &mut inner;
        assert_eq!(send_via(dynamic, &pkts), Err(SendError::again(1)));
        assert_eq!(inner.calls, 2);

        let mut boxed: Box<dyn Aio> = Box::new(Counter { calls: 0, room: 1 });
        assert_eq!(send_via(&mut boxed, &[]), Ok(()));
        assert_eq!(send_via(boxed, &pkts), Err(SendError::again(1)));
    }
}
