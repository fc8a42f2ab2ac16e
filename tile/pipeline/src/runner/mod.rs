//! Running a pipeline: [`Pipeline`], its options, its start and stop,
//! and the tile processes of processes mode.

mod account;
mod corrupt;
mod failure;
mod options;
mod pipeline;
mod plausible;
mod processes;
mod report;
mod running;
mod start;
mod supervisor;
mod threads;
mod tile_process;

pub use failure::{RunError, TileFailure};
pub use options::RunOptions;
pub use pipeline::Pipeline;
pub use report::{ConsumerReport, LinkReport, RunReport, TileReport, TileRestart};
pub use running::Running;
pub use tile_process::{run_tile_process, tile_main, StopFlag, TILE_ENV};
