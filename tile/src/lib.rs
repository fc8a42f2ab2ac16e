//! tilewire-tile: links between tiles, and the tile run loop.
//!
//! A *tile* is a single-threaded loop pinned to a core that does one job.
//! Tiles hand packets to each other through *links* in a shared-memory
//! workspace, so a packet crosses the pipeline without a copy between
//! processes and without a system call. A link is three kinds of object:
//!
//! - the [mcache](link::mcache): a ring of 32-byte frag metadata lines (seq, sig,
//!   chunk, size, control bits, timestamps), written by one producer and
//!   read by any number of consumers, each at its own pace;
//! - the [dcache](link::dcache): the payload arena the frags point into, in
//!   64-byte chunks, 4096-aligned so it can double as an AF_XDP UMEM;
//! - one [fseq](link::fseq) per consumer: its published progress, which is what
//!   the producer's credits come from if the consumer is reliable, and its
//!   counters (frags, bytes, overruns, bad frags).
//!
//! [link] ties them together by name in a workspace, with a
//! [`Producer`](link::Producer) and [`Consumer`](link::Consumer) on top.
//! [tcache] is the dedup cache a dedup tile keeps; [hist] a
//! latency histogram that lives in shared memory so a monitor can read it.
//!
//! [stem] is the run loop: a [`Tile`](stem::Tile) is a handful of
//! callbacks, and the loop around them does the credits, back-pressure,
//! overrun handling, housekeeping, stopping and [metrics](stem::metrics) (heartbeat,
//! back-pressure, the tile's counters, all in the workspace). Two adapters
//! connect pipelines to the aio world: [`LinkTx`](link::tx::LinkTx), an aio
//! whose send publishes into a link, and [`Drain`](stem::drain::Drain), a tile
//! that sends what a link carries to a downstream aio.
//!
//! Everything shared is touched through atomics (the workspace's safe
//! atomic views), with every ordering explained where it is chosen, so this
//! crate needs no `unsafe` and assumes nothing of x86's memory model.
#![forbid(unsafe_code)]
// Shared objects follow the fd_* lifecycle: `new` formats caller memory and
// returns `Result<(), NewError>`, `join` returns the handle.
#![allow(clippy::new_ret_no_self)]

pub mod heap;
pub use tilewire_shmem::hist;
pub mod link;
pub mod stem;
pub mod tcache;
