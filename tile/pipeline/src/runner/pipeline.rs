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
/// [`Pipeline::keep_workspace`]). See the [module docs](crate::runner).
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
