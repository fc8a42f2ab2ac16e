//! tilewire-pipeline: tile kinds, topologies and the runner that makes
//! pipelines of tiles.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod builder;
mod error;
pub mod kind;
pub mod kinds;
pub mod params;
pub mod registry;
pub mod run;
pub mod runner;
pub mod stop;
pub mod topo;
pub mod workspace;

pub use builder::{LinkDef, PipelineBuilder, TileDef};
pub use error::PipelineError;
pub use kind::{BuildCtx, BuildError, CheckCtx, IoCounts, NoParams, Object, TileKind};
pub use registry::{Registry, RegistryError, KIND_NAME_MAX};
pub use run::{run_tile, stop_all, tile_metrics, wait_running};
pub use runner::{
    run_tile_process, tile_main, Pipeline, RunError, RunOptions, Running, StopFlag, TileFailure,
    PARENT_ENV, STEM_ENV, TILE_ENV,
};
pub use topo::Topology;
pub use workspace::{create, join, stored_text, stored_topology, TOPO_NAME};
