#![doc = include_str!("../README.md")]
//!
//! tilewire-pipeline: tile kinds, topologies and the runner that makes
//! pipelines of tiles, in threads or processes.
//!
//! A pipeline binary is a [`Registry`] of tile kinds (tilewire's built-ins
//! and your own), a [`Topology`] that names tiles of those kinds and the
//! links between them, and a [`Pipeline`] that makes the workspace and
//! runs the tiles. Here is a kind of your own, with parameters, between
//! the built-in `gen` and `sink`:
//!
//! ```
//! use core::sync::atomic::AtomicU8;
//! use std::time::Duration;
//!
//! use serde::Deserialize;
//! use tilewire_pipeline::{
//!     BuildCtx, BuildError, CheckCtx, IoCounts, Pipeline, Registry, RunOptions, TileKind,
//! };
//! use tilewire_tile::link::frag::FragMeta;
//! use tilewire_tile::stem::{FragCopy, Outputs, Tile};
//!
//! /// Passes on the packets of at least `min_len` bytes.
//! struct MinLen { min_len: usize, copy: FragCopy, passed: u64, dropped: u64 }
//!
//! impl Tile for MinLen {
//!     fn kind(&self) -> &str { "min-len" }
//!     fn counters(&self) -> &'static [&'static str] { &["passed", "dropped"] }
//!     fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
//!         self.copy.copy(meta, payload);
//!     }
//!     fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
//!         let p = self.copy.packet(meta);
//!         if p.len() >= self.min_len
//!             && out.publish_packet(0, p, meta.sig, meta.ctl, meta.tsorig).is_ok()
//!         {
//!             self.passed += 1;
//!         } else {
//!             self.dropped += 1;
//!         }
//!     }
//!     fn metrics_write(&mut self, c: &mut [u64]) {
//!         c.copy_from_slice(&[self.passed, self.dropped]);
//!     }
//! }
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct MinLenParams { min_len: usize }
//!
//! struct MinLenKind;
//!
//! impl TileKind for MinLenKind {
//!     type Params = MinLenParams;
//!     fn name(&self) -> &str { "min-len" }
//!     fn io(&self) -> IoCounts { IoCounts::new(1..=1, 1..=1) }
//!     fn check(&self, p: &MinLenParams, ctx: &mut CheckCtx<'_>) {
//!         if p.min_len > 65535 {
//!             ctx.field_error("min_len", "must be at most 65535");
//!         }
//!     }
//!     fn build<'w>(&self, p: &MinLenParams, _: &mut BuildCtx<'w, '_>)
//!         -> Result<Box<dyn Tile + 'w>, BuildError>
//!     {
//!         Ok(Box::new(MinLen { min_len: p.min_len, copy: FragCopy::new(), passed: 0, dropped: 0 }))
//!     }
//! }
//!
//! let registry = Registry::with_builtins().with(MinLenKind)?;
//! let text = r#"
//!     [workspace]
//!     name = "doc-min-len"
//!
//!     [[link]]
//!     name = "raw"
//!     depth = 512
//!
//!     [[link]]
//!     name = "long"
//!     depth = 512
//!
//!     [[tile]]
//!     name = "gen"
//!     kind = "gen"
//!     outputs = ["raw"]
//!     params = { fixture = "builtin:mix" }
//!
//!     [[tile]]
//!     name = "filter"
//!     kind = "min-len"
//!     inputs = ["raw"]
//!     outputs = ["long"]
//!     params = { min_len = 200 }
//!
//!     [[tile]]
//!     name = "sink"
//!     kind = "sink"
//!     inputs = ["long"]
//! "#;
//!
//! // A mistake is reported with its line, like any other.
//! let err = registry.parse(&text.replace("min_len = 200", "min_len = \"long\"")).unwrap_err();
//! assert!(err.to_string().starts_with("line 24: tile \"filter\" params: `min_len` must be"), "{err}");
//!
//! let pipeline = Pipeline::create(registry.parse(text)?)?;
//! pipeline.run(&RunOptions::new().duration(Duration::from_millis(300)))?;
//!
//! // The stop drained every link: each packet gen sent is accounted for.
//! let count = |tile: &str, name: &str| pipeline.counter(tile, name).unwrap();
//! let sent = count("gen", "sent");
//! assert!(sent > 0);
//! assert_eq!(count("filter", "passed") + count("filter", "dropped"), sent);
//! assert_eq!(count("sink", "frags"), count("filter", "passed"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The parts
//!
//! - [`TileKind`] ([`kind`]): what a kind says of its tiles: name, inputs
//!   and outputs, parameters (any serde type, read from the tile's
//!   `params` with errors at their line), checks, workspace objects, and
//!   how a tile is built. [`kinds`] are the built-ins, written the same
//!   way; [`params`] has helpers for checked parameters.
//! - [`Registry`] ([`registry`]): the kinds a topology may name.
//! - [`Topology`] ([`topo`]): the file format and its checks: the graph,
//!   cpus, sizes (each kind's objects included), with every problem found
//!   at once, each at its line.
//! - [`Pipeline`] ([`runner`]): makes the workspace, runs the tiles as
//!   threads or as processes of the same binary ([`tile_main`]), and stops
//!   them in [order](stop) so a stop loses nothing.
//! - [`PipelineBuilder`] ([`builder`]): a pipeline from Rust, no TOML.
//! - [`run_tile`] ([`run`]) and [`workspace`]: the pieces the runner is
//!   made of, for a runner of your own.
//!
//! `cargo run -p tilewire-pipeline --example filter_threads` (and
//! `filter_processes`, `builder`) runs the same kind as a program.
//!
//! # Features
//!
//! `xdp` (default): the `net-xdp` kind over AF_XDP, which needs libbpf (a
//! C build). Without it everything else is here, in pure Rust.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bind;
pub mod builder;
mod error;
pub mod kind;
pub mod kinds;
pub mod params;
pub mod registry;
pub mod run;
pub mod runner;
pub mod stop;
mod tile_params;
pub mod topo;
mod topology;
pub mod workspace;

pub use builder::{LinkDef, PipelineBuilder, TileDef};
pub use error::PipelineError;
pub use kind::{BuildCtx, BuildError, CheckCtx, IoCounts, NoParams, Object, ParamCount, TileKind};
pub use registry::{Registry, RegistryError, KIND_NAME_MAX};
pub use run::{run_tile, tile_metrics};
pub use runner::{
    run_tile_process, tile_main, Pipeline, RunError, RunOptions, Running, StopFlag, TileFailure,
    PARENT_ENV, STEM_ENV, TILE_ENV,
};
pub use topo::{Mode, TopologySpec};
pub use topology::Topology;
pub use workspace::{create, join, stored_text, stored_topology, TOPO_NAME};
/// The crates a kind is written against, so a pipeline binary can depend on
/// this one alone: [`tile`] (links, the run loop, `Tile`), [`shmem`]
/// (workspaces), [`aio`] (the send contract, frame views, fixtures).
pub use {tilewire_aio as aio, tilewire_shmem as shmem, tilewire_tile as tile};

/// The workspace README's Rust example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
