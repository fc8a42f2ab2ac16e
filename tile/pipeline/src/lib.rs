#![doc = include_str!("../README.md")]
//!
//! # A tile kind of your own, compiled here
//!
//! The `min-len` filter the examples run (`examples/common/min_len.rs`,
//! this very file): a [`Tile`](tile::stem::Tile) that reads settled and
//! passes frags on with [`forward`](tile::stem::Outputs::forward), without
//! touching a chunk, a credit or a copy, and its [`TileKind`]. Run between
//! the built-in `gen` and `sink`, every packet is accounted for:
//!
//! ```
#![doc = include_str!("../examples/common/min_len.rs")]
//! # use std::time::Duration;
//! # use tilewire_pipeline::{LinkDef, PipelineBuilder, Registry, RunOptions, TileDef};
//! let registry = Registry::with_builtins().with(MinLenKind)?;
//! let pipeline = PipelineBuilder::new("doc-min-len")
//!     .link(LinkDef::new("raw", 512))
//!     .link(LinkDef::new("long", 512))
//!     .tile(TileDef::new("gen", "gen").output("raw").param("fixture", "builtin:mix"))
//!     .tile(TileDef::new("filter", "min-len").input("raw").output("long").param("min_len", 200))
//!     .tile(TileDef::new("sink", "sink").input("long"))
//!     .build(&registry)?;
//! let report = pipeline.run(&RunOptions::new().duration(Duration::from_millis(300)))?;
//! // The stop drained every link: each packet gen sent is accounted for.
//! let count = |tile: &str, name: &str| report.counter(tile, name).unwrap();
//! let sent = count("gen", "sent");
//! assert!(sent > 0);
//! assert_eq!(count("filter", "passed") + count("filter", "dropped"), sent);
//! assert_eq!(count("sink", "frags"), count("filter", "passed"));
//! assert_eq!(report.lost(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same kind in whole programs (each checks its own exact counts;
//! `cargo run -p tilewire-pipeline --example NAME`):
//!
//! - `examples/filter_threads.rs`: from a topology text, every tile a
//!   thread of one process;
//! - `examples/filter_processes.rs`: the same, a process per tile, all
//!   started from the example's own binary ([`tile_main`]);
//! - `examples/builder.rs`: from a [`PipelineBuilder`], three exact passes
//!   over the built-in traffic mix.
//!
//! # What a run reports
//!
//! [`Pipeline::run`] and [`Running::stop`] return a [`RunReport`] (inside
//! the [`RunError`] when the run failed): each tile's counters summed over
//! its restarts, each link's published / consumed / lost / unread, every
//! restart with its cause. No monitor and no `tracing` subscriber needed;
//! [`Running::report`] reads one while the tiles run. Restarts are made by
//! a thread of the runner, whatever the caller does meanwhile.
//!
//! # The modules
//!
//! Everything a user types is at the root. Three modules stay public
//! because they are namespaces a user reads and navigates, not plumbing:
//!
//! - [`topo`]: the topology file format's reference (every key of every
//!   table, the built-in kinds' parameters, the cycle and size rules) and
//!   the topology's plain data ([`topo::TopologySpec`], its tiles and
//!   links, [`topo::Machine`], the errors [`topo::TopoErrors`]);
//! - [`kinds`]: the built-in kinds, one module each (its tile, its
//!   parameters, what it counts), to read and to start a kind from;
//! - [`params`]: helpers for a kind's serde parameters (checked numbers,
//!   choices, addresses).
//!
//! [`tile`], [`shmem`] and [`aio`] are the crates a kind is written
//! against, so a pipeline binary depends on this crate alone: a tile
//! author imports `tilewire_pipeline::tile::stem::{Tile, Frag, Outputs,
//! Reading}`.
//!
//! # Features
//!
//! `xdp` (default): the `net-xdp` kind over AF_XDP, which needs libbpf (a
//! C build). Without it everything else is here, in pure Rust.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bind;
mod builder;
mod error;
mod kind;
pub mod kinds;
pub mod params;
mod placement;
mod registry;
mod run;
mod runner;
mod stop;
mod tile_params;
pub mod topo;
mod topology;
mod workspace;

pub use builder::{LinkDef, PipelineBuilder, TileDef};
pub use error::PipelineError;
pub use kind::{
    BuildCtx, BuildError, CheckCtx, IoCounts, NoParams, Object, ParamCount, Replays, TileKind,
};
pub use registry::{Registry, RegistryError};
pub use run::tile_metrics;
pub use runner::{
    run_tile_process, tile_main, ConsumerReport, LinkReport, Pipeline, RunError, RunOptions,
    RunReport, Running, StopFlag, TileFailure, TileReport, TileRestart, TILE_ENV,
};
pub use topo::spec::{Mode, Restart};
pub use topology::Topology;
/// The crates a kind is written against, so a pipeline binary can depend on
/// this one alone: [`tile`] (links, the run loop, `Tile`), [`shmem`]
/// (workspaces), [`aio`] (the send contract, frame views, fixtures).
pub use {tilewire_aio as aio, tilewire_shmem as shmem, tilewire_tile as tile};
