//! A pipeline: a checked topology and its workspace, and its start.

use std::sync::Arc;

use tilewire_shmem::Workspace;

use super::tile_process::refuse_in_tile_process;

use crate::error::PipelineError;
use crate::run::tile_metrics;
use crate::workspace;
use crate::Topology;

/// A pipeline: a checked topology and its workspace, with every link and
/// object in it. Dropping it removes the workspace (see
/// [`Pipeline::keep_workspace`]).
///
/// [`Pipeline::create`] makes a checked topology's workspace (every link
/// and object, and a copy of the topology text). [`Pipeline::run`] starts
/// every tile as the topology's `mode` says, waits until each runs, then
/// until it is told to stop
/// ([`RunOptions::duration`](crate::RunOptions::duration), a
/// [`StopFlag`](crate::StopFlag) such as Ctrl-C) or a tile ends by itself
/// (it failed, it panicked, its process died), and then stops the
/// pipeline in [topological order](#a-stop-loses-nothing): each tile
/// drains its inputs once everything upstream of it halted, so every frag
/// published over a drained link reaches its consumers. What could not be
/// drained in a tile's grace time
/// ([`StemConfig::stop_grace`](tilewire_tile::stem::StemConfig::stop_grace))
/// is reported with the tile and the count, as is every failure.
///
/// # Processes mode
///
/// Each tile runs in a process of its own: the runner starts *its own
/// binary* again ([`std::env::current_exe`], with the same arguments) with
/// the environment variable [`TILE_ENV`](crate::TILE_ENV) naming the
/// workspace and the tile. So a pipeline binary's `main` calls
/// [`tile_main`](crate::tile_main) first: in a tile process it runs the
/// tile (joining the workspace by name, reading the stored topology
/// against the registry it is given) and exits; in any other process it
/// returns at once. A tile process watches its runner and stops when the
/// runner is gone. A binary that forgets the call does not fork again and
/// again: making a pipeline in a process that was started as a tile is
/// refused ([`PipelineError::NotATileMain`](crate::PipelineError::NotATileMain)),
/// and the runner reports the tile that exited before it ran.
///
/// ```no_run
/// use tilewire_pipeline::{Pipeline, Registry, RunOptions, StopFlag};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let registry = Registry::with_builtins();
///     // First: in a tile process this runs the tile and exits.
///     tilewire_pipeline::tile_main(&registry);
///     let topo = registry.load("pipeline.toml")?;
///     let pipeline = Pipeline::create(topo)?;
///     pipeline.run(&RunOptions::new().stop_on(StopFlag::on_signals()?))?;
///     Ok(())
/// }
/// ```
///
/// # A stop loses nothing
///
/// Stopping every tile at once strands whatever is on the links: a tile
/// that stops reads no more input, so the frags its upstream published
/// last are never read. So a pipeline stops in topological order: a tile
/// is asked to stop only once every tile upstream of it has halted, and it
/// is asked to *drain*: to read its inputs from those tiles to the end
/// (nothing more can come, the producers halted) and pass on what it
/// holds, before it halts itself. Sources (tiles with no inputs) stop
/// first, sinks last.
///
/// A pipeline may have cycles (the demo's net -> dedup -> echo -> net).
/// The topology check refuses a cycle whose links are all reliable, so
/// every cycle has an unreliable link; the order ignores exactly those
/// unreliable links that lie on a cycle (inside a strongly connected
/// group of tiles). What is left is acyclic. A tile does not wait for the
/// producer of such an ignored input and does not drain it: the producer
/// never waits for it either, and what is in flight there when the stop
/// comes is lost as an unreliable link may lose it. Every other link is
/// drained.
#[derive(Debug)]
pub struct Pipeline {
    pub(super) topo: Arc<Topology>,
    pub(super) ws: Workspace,
    keep: bool,
}

impl Pipeline {
    /// Makes the workspace of `topo` (checked as its
    /// [`Registry`](crate::Registry) bound it).
    ///
    /// # Errors
    /// [`PipelineError::Exists`] if the workspace exists; anything that
    /// keeps a part from being made (the workspace is removed again then);
    /// [`PipelineError::NotATileMain`] in a process started as a tile.
    pub fn create(topo: Topology) -> Result<Pipeline, PipelineError> {
        refuse_in_tile_process()?;
        let ws = workspace::create(&topo)?;
        Ok(Pipeline {
            topo: Arc::new(topo),
            ws,
            keep: false,
        })
    }

    /// The workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The counters of tile `tile` as it last wrote them (at its
    /// housekeeping, and when it halted): its kind's own counters, by name,
    /// in order. `None` if the tile never ran.
    pub fn counters(&self, tile: &str) -> Option<Vec<(String, u64)>> {
        tile_metrics(&self.ws, tile).map(|m| m.snapshot().counters)
    }

    /// Counter `name` of tile `tile` (see [`Pipeline::counters`]).
    pub fn counter(&self, tile: &str, name: &str) -> Option<u64> {
        self.counters(tile)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Keeps the workspace when the pipeline is dropped (a monitor can
    /// still read what the tiles left; `tilewire shmem rm` removes it).
    pub fn keep_workspace(&mut self, keep: bool) {
        self.keep = keep;
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !self.keep {
            let _ = Workspace::unlink(self.ws.name());
        }
    }
}
