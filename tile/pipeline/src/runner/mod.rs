//! Running a pipeline: its tiles as threads of this process or as
//! processes of their own, and a stop that loses nothing.
//!
//! [`Pipeline::create`] makes a checked topology's workspace (every
//! link and object, and a copy of the topology text); dropping the
//! [`Pipeline`] removes the workspace. [`Pipeline::run`] starts every tile
//! as the topology's `mode` says, waits until each runs, then until it is
//! told to stop ([`RunOptions::duration`], a [`StopFlag`] such as Ctrl-C)
//! or a tile ends by itself (it failed, it panicked, its process died),
//! and then stops the pipeline in [topological order](crate::stop): each
//! tile drains its inputs once everything upstream of it halted, so every
//! frag published over a drained link reaches its consumers. What could
//! not be drained in a tile's grace time ([`StemConfig::stop_grace`](tilewire_tile::stem::StemConfig::stop_grace)) is
//! reported with the tile and the count, as is every failure.
//!
//! # Processes mode
//!
//! Each tile runs in a process of its own: the runner starts *its own
//! binary* again ([`std::env::current_exe`], with the same arguments) with
//! the environment variable [`TILE_ENV`] naming the workspace and the tile.
//! So a pipeline binary's `main` calls [`tile_main`] first: in a tile
//! process it runs the tile (joining the workspace by name, reading the
//! stored topology against the registry it is given) and exits; in any
//! other process it returns at once. A tile process watches its runner and
//! stops when the runner is gone. A binary that forgets the call does not
//! fork again and again: making a pipeline in a process that was started
//! as a tile is refused ([`PipelineError::NotATileMain`](crate::PipelineError::NotATileMain)), and the runner
//! reports the tile that exited before it ran.
//!
//! ```no_run
//! use tilewire_pipeline::{Pipeline, Registry, RunOptions, StopFlag};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let registry = Registry::with_builtins();
//!     // First: in a tile process this runs the tile and exits.
//!     tilewire_pipeline::tile_main(&registry);
//!     let topo = registry.load("pipeline.toml")?;
//!     let pipeline = Pipeline::create(topo)?;
//!     pipeline.run(&RunOptions::new().stop_on(StopFlag::on_signals()?))?;
//!     Ok(())
//! }
//! ```

mod failure;
mod options;
mod pipeline;
mod processes;
mod running;
mod start;
mod threads;
mod tile_process;

pub use failure::{RunError, TileFailure};
pub use options::RunOptions;
pub use pipeline::Pipeline;
pub use running::Running;
pub use tile_process::{run_tile_process, tile_main, StopFlag, PARENT_ENV, STEM_ENV, TILE_ENV};
