//! Starting a pipeline: what its kinds' tiles share made, each tile
//! started as its `mode` says, and the run until it is told to stop.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tilewire_shmem::Workspace;

use super::failure::{RunError, TileFailure};
use super::options::RunOptions;
use super::pipeline::Pipeline;
use super::report::RunReport;
use super::running::Running;
use super::supervisor::Supervisor;

use crate::error::PipelineError;
use crate::stop::StopPlan;
use crate::topo::Mode;

impl Pipeline {
    /// Runs the pipeline until it is told to stop or a tile ends by
    /// itself, then stops it (see [`Pipeline`]), and reports what it did:
    /// each tile's counters summed over its boots, each link's figures,
    /// every restart ([`RunReport`]).
    ///
    /// # Errors
    /// Every failure of the run, with its report
    /// ([`RunError::report`]): a tile that did not start, failed,
    /// panicked, died, could not drain or did not stop.
    pub fn run(&self, opts: &RunOptions) -> Result<RunReport, RunError> {
        self.run_with(opts, |_| {})
    }

    /// [`Pipeline::run`], calling `tick` with the workspace every
    /// [`RunOptions::tick`] while the tiles run (to print a monitor's table).
    ///
    /// # Errors
    /// As [`Pipeline::run`].
    pub fn run_with(
        &self,
        opts: &RunOptions,
        mut tick: impl FnMut(&Workspace),
    ) -> Result<RunReport, RunError> {
        let mut running = self.start(opts)?;
        running.wait(opts, &mut tick);
        running.stop()
    }

    /// Starts every tile and waits until each runs; the caller then stops
    /// them with [`Running::stop`] (dropping [`Running`] stops them too).
    ///
    /// # Errors
    /// A tile that could not be started or did not run within
    /// [`RunOptions::start_timeout`]; the others are stopped then.
    pub fn start(&self, opts: &RunOptions) -> Result<Running<'_>, RunError> {
        let shared = self.setup()?;
        let layout = self.topo.layout();
        let mut unit_of = vec![0; self.topo.tiles.len()];
        for (u, g) in layout.iter().enumerate() {
            for &t in &g.tiles {
                unit_of[t] = u;
            }
        }
        let n = self.topo.tiles.len();
        let mut sup = Supervisor {
            ws: match crate::workspace::join(self.ws.name()) {
                Ok(ws) => Arc::new(ws),
                Err(error) => {
                    return Err(RunError::new(vec![TileFailure::Failed {
                        tile: self
                            .topo
                            .tiles
                            .first()
                            .map(|t| t.name.clone())
                            .unwrap_or_default(),
                        error,
                    }]))
                }
            },
            topo: Arc::clone(&self.topo),
            units: Vec::new(),
            unit_of,
            done: vec![false; n],
            outcomes: Arc::new(Mutex::new(vec![None; n])),
            plan: StopPlan::new(&self.topo),
            stem: opts.stem,
            failures: Vec::new(),
            stopped: false,
            should_end: false,
            started: Instant::now(),
            restarts: Vec::new(),
            carried: vec![Vec::new(); n],
            handled: std::collections::HashMap::new(),
        };
        match self.topo.workspace.mode {
            Mode::Threads => sup.spawn_threads(layout),
            Mode::Processes => sup.spawn_processes(layout),
        }
        if sup.failures.is_empty() {
            sup.wait_started(opts.start_timeout);
        }
        let ok = sup.failures.is_empty();
        let mut running = Running::new(self, sup, shared);
        if ok {
            running.supervise();
            Ok(running)
        } else {
            Err(running
                .stop()
                .expect_err("a run with failures ends in an error"))
        }
    }
}

impl Pipeline {
    /// What each kind's tiles share ([`TileKind::setup`](crate::TileKind::setup)),
    /// made before any tile starts.
    pub(super) fn setup(&self) -> Result<Vec<Box<dyn std::any::Any + Send>>, RunError> {
        let mut kinds: Vec<&str> = self.topo.tiles.iter().map(|t| t.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let mut held = Vec::new();
        for kind in kinds {
            let of_kind: Vec<usize> = (0..self.topo.tiles.len())
                .filter(|&i| self.topo.tiles[i].kind() == kind)
                .collect();
            let tiles: Vec<_> = of_kind
                .iter()
                .map(|&i| (&self.topo.tiles[i], self.topo.erased(i).1))
                .collect();
            match self.topo.erased(of_kind[0]).0.setup(&tiles) {
                Ok(Some(h)) => held.push(h),
                Ok(None) => {}
                Err(e) => {
                    return Err(RunError::new(vec![TileFailure::Failed {
                        tile: tiles[0].0.name.clone(),
                        error: PipelineError::Setup {
                            tile: tiles[0].0.name.clone(),
                            why: format!("setting up what the {kind} tiles share: {e}"),
                        },
                    }]))
                }
            }
        }
        Ok(held)
    }
}
