//! The tiles of a started pipeline, as its user holds them: waiting,
//! stopping, the report; and the thread that supervises them meanwhile.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tilewire_shmem::Workspace;

use super::failure::RunError;
use super::options::RunOptions;
use super::pipeline::Pipeline;
use super::report::RunReport;
use super::supervisor::Supervisor;
use super::tile_process::StopFlag;

/// How often the supervising thread looks at the tiles: a dead tile
/// process is restarted within its backoff plus this.
const SUPERVISE_EVERY: Duration = Duration::from_millis(10);

/// The tiles of a started pipeline. [`Running::stop`] stops them in order;
/// dropping it does too, discarding the failures.
///
/// A thread of the runner supervises the tiles from the start to the
/// stop, whatever the caller does meanwhile: it reaps tile processes that
/// died and restarts those whose policy says so (after the policy's
/// backoff), records each failure and restart, and notices corrupt
/// shared words. [`Running::poll`] and [`Running::wait`] only read what
/// it found.
pub struct Running<'p> {
    pub(super) pipeline: &'p Pipeline,
    pub(super) sup: Arc<Mutex<Supervisor>>,
    /// The supervising thread, and the flag that ends it.
    pub(super) watcher: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
    /// What the kinds' tiles share (an attached XDP program), held until
    /// the tiles stopped: dropped after them, as the last field.
    pub(super) _shared: Vec<Box<dyn std::any::Any + Send>>,
}

impl fmt::Debug for Running<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sup = self.lock();
        f.debug_struct("Running")
            .field("workspace", &self.pipeline.ws.name())
            .field("tiles", &sup.done.len())
            .field("threads", &sup.units.len())
            .field("failures", &sup.failures)
            .finish()
    }
}

/// Locks `sup`; a panic while it was held (a bug) leaves its state as it
/// was, still the best account of the tiles.
fn lock(sup: &Mutex<Supervisor>) -> MutexGuard<'_, Supervisor> {
    sup.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'p> Running<'p> {
    pub(super) fn new(
        pipeline: &'p Pipeline,
        sup: Supervisor,
        shared: Vec<Box<dyn std::any::Any + Send>>,
    ) -> Running<'p> {
        Running {
            pipeline,
            sup: Arc::new(Mutex::new(sup)),
            watcher: None,
            _shared: shared,
        }
    }

    /// Starts the supervising thread (once the tiles run).
    pub(super) fn supervise(&mut self) {
        let (sup, quit) = (Arc::clone(&self.sup), Arc::new(AtomicBool::new(false)));
        let q = Arc::clone(&quit);
        let spawned = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || {
                // SYNC: Relaxed; a flag, nothing else is published by it.
                while !q.load(Ordering::Relaxed) {
                    {
                        let mut s = lock(&sup);
                        if s.stopped {
                            return;
                        }
                        s.poll();
                    }
                    std::thread::sleep(SUPERVISE_EVERY);
                }
            });
        match spawned {
            Ok(h) => self.watcher = Some((h, quit)),
            // Without the thread, `poll` and `wait` still reap and restart.
            Err(e) => tracing::warn!("no supervising thread ({e}): restarts wait for poll or wait"),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Supervisor> {
        lock(&self.sup)
    }

    /// The pipeline's workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.pipeline.ws
    }

    /// Says whether the run should end now: in threads mode when any tile
    /// ended (it failed or panicked; the others are stopped), in processes
    /// mode once no tile runs (a tile process that died is restarted if
    /// its policy says so, or can be started again by hand with `tilewire
    /// tile`, and the others go on meanwhile), and in both when a corrupt
    /// shared word was found. What the supervising thread found last (it
    /// looks every 10 ms); without that thread, a look of its own.
    pub fn poll(&mut self) -> bool {
        let supervised = self.watcher.is_some();
        let mut sup = self.lock();
        if supervised {
            sup.should_end
        } else {
            sup.poll()
        }
    }

    /// Waits until the run should end: `opts`' stop flag is set, its
    /// duration passed, or the tiles ended ([`Running::poll`]); calls
    /// `tick` with the workspace every [`RunOptions::tick`] meanwhile.
    /// Returns the report so far. The tiles still run when it returns:
    /// [`Running::stop`] stops them.
    pub fn wait(&mut self, opts: &RunOptions, mut tick: impl FnMut(&Workspace)) -> RunReport {
        let until = opts.duration.map(|d| Instant::now() + d);
        let mut next = Instant::now() + opts.tick;
        while !opts.stop.as_ref().is_some_and(StopFlag::is_stopped)
            && until.is_none_or(|u| Instant::now() < u)
            && !self.poll()
        {
            if Instant::now() >= next {
                tick(&self.pipeline.ws);
                next += opts.tick;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.report()
    }

    /// What the run did so far (see [`RunReport`]).
    pub fn report(&self) -> RunReport {
        self.lock().report()
    }

    /// The pid of each tile process this runner started, by tile (none in
    /// threads mode).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.lock().pids()
    }

    /// Stops every tile in order (see [`Pipeline`](crate::Pipeline#a-stop-loses-nothing))
    /// and reports the whole run.
    ///
    /// # Errors
    /// Every failure, with the report: a tile that failed, panicked or
    /// died during the run, one that could not drain in its grace time
    /// (with the frags it left), one that did not stop, a corrupt word.
    pub fn stop(mut self) -> Result<RunReport, RunError> {
        self.stop_in_order();
        let mut sup = self.lock();
        let report = sup.report();
        let failures = std::mem::take(&mut sup.failures);
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(RunError {
                failures,
                report: Some(Box::new(report)),
            })
        }
    }

    fn stop_in_order(&mut self) {
        if let Some((h, quit)) = self.watcher.take() {
            // SYNC: Relaxed; see `supervise`.
            quit.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        self.lock().stop_in_order();
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.stop_in_order();
    }
}
