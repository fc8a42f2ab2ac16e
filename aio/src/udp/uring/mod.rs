//! The io_uring engine of [`UdpAio`](super::UdpAio).
//!
//! # Memory
//!
//! One anonymous mapping, made at bind, holds everything the kernel reads
//! or writes after a submission returns: the provided-buffer ring and the
//! receive buffers, the transmit slots, and the message headers, iovecs
//! and socket addresses that describe them. The kernel keeps pointers into
//! it until the completion of each operation, so Rust never holds a
//! reference over the whole mapping: each access goes through a raw
//! pointer to one slot or buffer that the engine owns at that moment (a
//! transmit slot on the free list; a receive buffer whose completion was
//! reaped and which is not back on the ring). The ring is dropped before
//! the mapping (field order), and closing the ring cancels every
//! operation still pending, so the kernel is done with the mapping before
//! it is unmapped.
//!
//! # Transmit
//!
//! `take` copies a packet into a free slot with its destination address
//! and queues a `Send` to that address (`sendto`) on the registered socket (a fixed
//! file: no descriptor lookup per operation). [`Uring::submit`] hands the
//! queue to the kernel with one `io_uring_enter`; it is called by a flush,
//! when a batch is queued, and when the slots run out. The completions are
//! reaped right after each enter (a UDP send completes inside the enter
//! unless the socket buffer is full), so the latency histogram measures
//! the kernel's time, not ours. A slot is the kernel's from submission to
//! completion; a send that finds no free slot, or the AIMD limit reached,
//! is refused and the caller gets `Again`.
//!
//! Completion errors are handled as the mmsg engine handles `sendmmsg`'s:
//! `EAGAIN` / `ENOBUFS` queue the packet again; `EMSGSIZE` drops it; any
//! other error is counted, the packet queued once more (the error may have
//! been an ICMP report about an earlier datagram) and dropped if it fails
//! again. Every drop is counted.
//!
//! Packets leave in the order they were taken while the socket buffer has
//! room. When it fills, the kernel parks each send that found none until
//! room appears (the slot stays in flight; its completion is deferred work
//! that the next enter runs, so a send or flush that finds no free slot
//! enters once before answering `Again`), and parked sends may leave in any
//! order. UDP promises no order; the mmsg engine keeps it.
//!
//! # Receive
//!
//! Preferred: one multishot `RecvMsg` on a provided-buffer ring (kernel
//! 6.0+). Each datagram takes a buffer from the ring and posts one
//! completion; the buffer holds the kernel's `io_uring_recvmsg_out`
//! header, the source address and the payload. Buffers go back on the ring
//! once the downstream took their packets; if the ring runs dry the kernel
//! ends the multishot receive (`ENOBUFS`), the datagrams wait in the
//! socket buffer, and the next poll arms it again.
//!
//! Fallback, or by config: a fixed set of one-shot `RecvMsg`, one per
//! buffer, each armed again once its packet was taken.

mod engine;
mod mem;
mod ring;
mod rx;

pub(crate) use engine::{Uring, NEEDS_6_0};
