#![doc = include_str!("../README.md")]
//!
//! tilewire-tile: links between tiles, and the tile run loop.
//!
//! A tile of your own is a [`Tile`](stem::Tile): a handful of callbacks
//! the run loop calls. This one, the `min-len` filter of the pipeline
//! crate's examples (`tile/pipeline/examples/common/min_len.rs`, included
//! here as it is), reads its frags settled and passes the long ones on with
//! [`Outputs::forward`](stem::Outputs::forward), copying nothing where the
//! links allow it; its `TileKind` tells a pipeline how to name and build it:
//!
//! ```
#![doc = include_str!("../pipeline/examples/common/min_len.rs")]
//! ```
//!
//! (The registry, topologies and the runner are
//! [tilewire-pipeline](https://docs.rs/tilewire-pipeline)'s; this crate is
//! what a tile is made of and runs on, and depends on nothing heavier than
//! the workspace and aio crates.)
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
//! A link's objects and a tile's metrics are [parts](part) of the
//! workspace, found or made by name, and fail the same way
//! ([`PartError`](part::PartError)).
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
//! What a tile that reads frags uses: [`Frag`](stem::Frag) (settled
//! reading: the frag whole, its [`packet`](stem::Frag::packet) after its
//! origin offset) and [`Outputs::forward`](stem::Outputs::forward); for a
//! tile that rewrites payloads, reading speculatively,
//! [`FragCopy`](stem::FragCopy), the copy `during_frag` makes and
//! `after_frag` acts on, and
//! [`Outputs::publish_packet`](stem::Outputs::publish_packet). Publishing
//! says [`PublishError::TooLong`](stem::PublishError::TooLong) rather than
//! panic. A tile is stopped at once or after it *drained* its inputs
//! ([`request_drain`](stem::metrics::TileMetricsHandle::request_drain)),
//! which is how a pipeline stops without losing a frag.
//!
//! A filter that passes frags on unchanged reads them settled and calls
//! [`Outputs::forward`](stem::Outputs::forward): on reliable links it
//! copies no byte, its output's frags pointing at its input's chunks (see
//! [`stem::forward`] and [`link::ledger`]).
//!
//! Everything shared is touched through atomics (the workspace's safe
//! atomic views), with every ordering explained where it is chosen, and
//! the crate assumes nothing of x86's memory model. One function reads
//! shared bytes as a plain `&[u8]` (`unsafe`, the crate's only use):
//! the bytes of a frag held on a reliable input, which by the credit
//! protocol no process writes until the frag is passed on.
#![deny(unsafe_code)]
// Shared objects follow the fd_* lifecycle: `new` formats caller memory and
// returns `Result<(), NewError>`, `join` returns the handle.
#![allow(clippy::new_ret_no_self)]

pub mod heap;
pub use tilewire_shmem::hist;
pub mod link;
pub mod part;
pub mod stem;
pub mod tcache;
