#![doc = include_str!("../README.md")]
//!
//! tilewire-tile: links between tiles, and the tile run loop.
//!
//! ```
//! use core::sync::atomic::AtomicU8;
//! use std::time::Duration;
//!
//! use tilewire_pipeline::{BuildCtx, BuildError, IoCounts, Pipeline, Registry, RunOptions, TileKind};
//! use tilewire_tile::link::frag::FragMeta;
//! use tilewire_tile::stem::{Filter, FragCopy, Outputs, Tile};
//!
//! /// A tile of your own: passes on every `every`-th frag of its input.
//! struct Sample {
//!     every: u64,
//!     copy: FragCopy,
//!     kept: u64,
//! }
//!
//! impl Tile for Sample {
//!     fn kind(&self) -> &str {
//!         "sample"
//!     }
//!     fn counters(&self) -> &'static [&'static str] {
//!         &["kept"]
//!     }
//!     // Decided on the seq alone: skipped frags are never read.
//!     fn before_frag(&mut self, _input: usize, seq: u64, _sig: u64) -> Filter {
//!         if seq % self.every == 0 { Filter::Process } else { Filter::Skip }
//!     }
//!     // A speculative read: copy now, act once the read proved good.
//!     fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
//!         self.copy.copy(meta, payload);
//!     }
//!     fn after_frag(&mut self, _input: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
//!         let packet = self.copy.packet(meta);
//!         if out.publish_packet(0, packet, meta.sig, meta.ctl, meta.tsorig).is_ok() {
//!             self.kept += 1;
//!         }
//!     }
//!     fn metrics_write(&mut self, counters: &mut [u64]) {
//!         counters[0] = self.kept;
//!     }
//! }
//!
//! /// How a topology names it, and its parameters.
//! struct SampleKind;
//!
//! #[derive(Debug, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct SampleParams {
//!     every: u64,
//! }
//!
//! impl TileKind for SampleKind {
//!     type Params = SampleParams;
//!     fn name(&self) -> &str {
//!         "sample"
//!     }
//!     fn io(&self) -> IoCounts {
//!         IoCounts::new(1..=1, 1..=1)
//!     }
//!     fn build<'w>(&self, p: &SampleParams, _: &mut BuildCtx<'w, '_>)
//!         -> Result<Box<dyn Tile + 'w>, BuildError>
//!     {
//!         Ok(Box::new(Sample { every: p.every.max(1), copy: FragCopy::new(), kept: 0 }))
//!     }
//! }
//!
//! let registry = Registry::with_builtins().with(SampleKind)?;
//! let topo = registry.parse(r#"
//!     [workspace]
//!     name = "doc-tile-sample"
//!
//!     [[link]]
//!     name = "all"
//!     depth = 256
//!
//!     [[link]]
//!     name = "some"
//!     depth = 256
//!
//!     [[tile]]
//!     name = "gen"
//!     kind = "gen"
//!     outputs = ["all"]
//!     params = { count = 1000 }
//!
//!     [[tile]]
//!     name = "sample"
//!     kind = "sample"
//!     inputs = ["all"]
//!     outputs = ["some"]
//!     params = { every = 10 }
//!
//!     [[tile]]
//!     name = "sink"
//!     kind = "sink"
//!     inputs = ["some"]
//! "#)?;
//! let pipeline = Pipeline::create(topo)?;
//! // However soon the stop comes, it drains: what gen sent is counted.
//! pipeline.run(&RunOptions::new().duration(Duration::from_millis(200)))?;
//! let sent = pipeline.counter("gen", "sent").unwrap();
//! assert_eq!(pipeline.counter("sink", "frags"), Some(sent.div_ceil(10)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
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
//! What every tile that reads frags uses: [`FragCopy`](stem::FragCopy),
//! the copy `during_frag` makes and `after_frag` acts on;
//! [`FragMeta::packet`](link::frag::FragMeta::packet), the packet after its
//! origin offset; and [`Outputs::publish_packet`](stem::Outputs::publish_packet),
//! which says [`PublishError::TooLong`](stem::PublishError::TooLong) rather
//! than panic. A tile is stopped at once or after it *drained* its inputs
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
