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
//! not be drained in a tile's grace time ([`StemConfig::stop_grace`]) is
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
//! as a tile is refused ([`PipelineError::NotATileMain`]), and the runner
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
mod tile_process;

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tilewire_shmem::{pid_alive, Workspace};
use tilewire_tile::link::Link;
use tilewire_tile::stem::group::panic_message;
use tilewire_tile::stem::metrics::TileState;
use tilewire_tile::stem::{MemberEnd, RunEnd, StemConfig};

pub use failure::{RunError, TileFailure};
use tile_process::refuse_in_tile_process;
pub use tile_process::{run_tile_process, tile_main, StopFlag, PARENT_ENV, STEM_ENV, TILE_ENV};

use crate::error::PipelineError;
use crate::run::{run_group, run_tile, tile_metrics};
use crate::stop::StopPlan;
use crate::topo::{Mode, Restart, TileGroup, RESTART_LIMIT, RESTART_WINDOW};
use crate::workspace;
use crate::Topology;

/// How [`Pipeline::run`] runs: [`RunOptions::new`] and the setters, or
/// the fields of a value made so.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The tiles' loop settings (each tile's stop grace among them).
    pub stem: StemConfig,
    /// Stop after this long (default: only when told).
    pub duration: Option<Duration>,
    /// Stop when this is set.
    pub stop: Option<StopFlag>,
    /// Longest wait for every tile to run (default 10 s).
    pub start_timeout: Duration,
    /// How often [`Pipeline::run_with`] calls its tick (default 1 s).
    pub tick: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            stem: StemConfig::default(),
            duration: None,
            stop: None,
            start_timeout: Duration::from_secs(10),
            tick: Duration::from_secs(1),
        }
    }
}

impl RunOptions {
    /// The defaults.
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// Stops after `d`.
    pub fn duration(mut self, d: Duration) -> RunOptions {
        self.duration = Some(d);
        self
    }

    /// Stops when `flag` is set.
    pub fn stop_on(mut self, flag: StopFlag) -> RunOptions {
        self.stop = Some(flag);
        self
    }

    /// The tiles' loop settings.
    pub fn stem(mut self, stem: StemConfig) -> RunOptions {
        self.stem = stem;
        self
    }

    /// The longest wait for every tile to run.
    pub fn start_timeout(mut self, d: Duration) -> RunOptions {
        self.start_timeout = d;
        self
    }

    /// How often [`Pipeline::run_with`] calls its tick.
    pub fn tick(mut self, d: Duration) -> RunOptions {
        self.tick = d;
        self
    }
}

/// A pipeline: a checked topology and its workspace, with every link and
/// object in it. Dropping it removes the workspace (see
/// [`Pipeline::keep_workspace`]). See the [module docs](self).
#[derive(Debug)]
pub struct Pipeline {
    topo: Arc<Topology>,
    ws: Workspace,
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

    /// Runs the pipeline until it is told to stop or a tile ends by
    /// itself, then stops it (see the [module docs](self)).
    ///
    /// # Errors
    /// Every failure of the run: a tile that did not start, failed,
    /// panicked, died, could not drain or did not stop.
    pub fn run(&self, opts: &RunOptions) -> Result<(), RunError> {
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
    ) -> Result<(), RunError> {
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
        let mut running = Running {
            pipeline: self,
            units: Vec::new(),
            unit_of,
            done: vec![false; self.topo.tiles.len()],
            outcomes: Arc::new(Mutex::new(vec![None; self.topo.tiles.len()])),
            plan: StopPlan::new(&self.topo),
            stem: opts.stem,
            failures: Vec::new(),
            stopped: false,
            _shared: shared,
        };
        match self.topo.workspace.mode {
            Mode::Threads => running.spawn_threads(layout),
            Mode::Processes => running.spawn_processes(layout),
        }
        if running.failures.is_empty() {
            running.wait_started(opts.start_timeout);
        }
        if running.failures.is_empty() {
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
    fn setup(&self) -> Result<Vec<Box<dyn std::any::Any + Send>>, RunError> {
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
                    return Err(RunError {
                        failures: vec![TileFailure::Failed {
                            tile: tiles[0].0.name.clone(),
                            error: PipelineError::Setup {
                                tile: tiles[0].0.name.clone(),
                                why: format!("setting up what the {kind} tiles share: {e}"),
                            },
                        }],
                    })
                }
            }
        }
        Ok(held)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !self.keep {
            let _ = Workspace::unlink(self.ws.name());
        }
    }
}

/// How one group of tiles (one tile, mostly) of a running pipeline runs.
enum Handle {
    /// Its thread; it says how each tile ended in the outcomes as it
    /// ends, and returns an error only if the group could not be set up.
    Thread(JoinHandle<Result<(), PipelineError>>),
    /// The process, and the thread passing its stderr on, tagged.
    Process(Child, Option<JoinHandle<()>>),
    /// Its process failed and is started again at this time.
    Restarting(Instant),
    /// It ended (and was reaped), or never started.
    Ended,
}

/// A thread or process of a running pipeline and the tiles it runs.
struct Unit {
    group: TileGroup,
    handle: Handle,
    /// When its process was restarted, within the restart window.
    restarts: Vec<Instant>,
}

/// How a tile running on a thread of the runner ended, as its thread
/// says the moment it does (the other tiles of its group may run on).
#[derive(Debug, Clone)]
enum Outcome {
    Ended(RunEnd),
    Panicked(String),
}

type Outcomes = Arc<Mutex<Vec<Option<Outcome>>>>;

/// The tiles of a started pipeline. [`Running::stop`] stops them in order;
/// dropping it does too, discarding the failures.
pub struct Running<'p> {
    pipeline: &'p Pipeline,
    units: Vec<Unit>,
    /// The unit each tile runs in.
    unit_of: Vec<usize>,
    /// The tiles known to have ended.
    done: Vec<bool>,
    /// What the threads said of each tile's end, not yet taken.
    outcomes: Outcomes,
    plan: StopPlan,
    stem: StemConfig,
    failures: Vec<TileFailure>,
    stopped: bool,
    /// What the kinds' tiles share (an attached XDP program), held until
    /// the tiles stopped: dropped after them, as the last field.
    _shared: Vec<Box<dyn std::any::Any + Send>>,
}

impl fmt::Debug for Running<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("workspace", &self.pipeline.ws.name())
            .field("tiles", &self.done.len())
            .field("threads", &self.units.len())
            .field("failures", &self.failures)
            .finish()
    }
}

impl Running<'_> {
    /// The pipeline's workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.pipeline.ws
    }

    fn name(&self, i: usize) -> &str {
        &self.pipeline.topo.tiles[i].name
    }

    fn spawn_threads(&mut self, layout: Vec<TileGroup>) {
        for group in layout {
            let (ws_name, topo, stem, outcomes, g) = (
                self.pipeline.ws.name().to_owned(),
                Arc::clone(&self.pipeline.topo),
                self.stem,
                Arc::clone(&self.outcomes),
                group.clone(),
            );
            // Each thread maps the workspace itself, so it needs nothing
            // of the runner's stack and may outlive a runner that gave up
            // waiting for it.
            let spawned = std::thread::Builder::new()
                .name(group.name.clone())
                .spawn(move || {
                    let ws = workspace::join(&ws_name)?;
                    let say = |tile: usize, o: Outcome| {
                        if let Ok(mut all) = outcomes.lock() {
                            all[tile] = Some(o);
                        }
                    };
                    if let [tile] = g.tiles[..] {
                        let end = run_tile(&ws, &topo, &topo.tiles[tile].name, stem)?;
                        say(tile, Outcome::Ended(end));
                        return Ok(());
                    }
                    run_group(&ws, &topo, &g, stem, false, |name, end| {
                        let tile = g
                            .tiles
                            .iter()
                            .copied()
                            .find(|&t| topo.tiles[t].name == name);
                        if let Some(t) = tile {
                            say(
                                t,
                                match end {
                                    MemberEnd::Halted(e) => Outcome::Ended(*e),
                                    MemberEnd::Panicked(m) => Outcome::Panicked(m.clone()),
                                },
                            );
                        }
                    })
                    .map(drop)
                });
            let handle = match spawned {
                Ok(h) => {
                    if group.is_shared() {
                        let tiles: Vec<&str> = group.tiles.iter().map(|&t| self.name(t)).collect();
                        tracing::info!(group = %group.name, tiles = ?tiles, "group thread started");
                    } else {
                        tracing::info!(tile = %group.name, "tile thread started");
                    }
                    Handle::Thread(h)
                }
                Err(e) => {
                    for &t in &group.tiles {
                        self.failures.push(TileFailure::Start {
                            tile: self.name(t).to_owned(),
                            why: format!("cannot start a thread: {e}"),
                        });
                    }
                    Handle::Ended
                }
            };
            self.units.push(Unit {
                group,
                handle,
                restarts: Vec::new(),
            });
        }
    }

    fn spawn_processes(&mut self, layout: Vec<TileGroup>) {
        for group in layout {
            self.units.push(Unit {
                group,
                handle: Handle::Ended,
                restarts: Vec::new(),
            });
            let u = self.units.len() - 1;
            self.units[u].handle = self.spawn_process(u);
        }
    }

    /// Starts the process of unit `u` (this program again, told which
    /// tile or group it is), or records why it could not.
    fn spawn_process(&mut self, u: usize) -> Handle {
        let group = &self.units[u].group;
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                for &t in &group.tiles.clone() {
                    self.failures.push(TileFailure::Start {
                        tile: self.name(t).to_owned(),
                        why: format!("finding this program to start it again: {e}"),
                    });
                }
                return Handle::Ended;
            }
        };
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let stem = format!("{},{}", self.stem.lazy, self.stem.stop_grace.as_millis());
        // A tile alone goes by its own name, a group by the group's.
        let name = match group.tiles[..] {
            [t] => self.name(t).to_owned(),
            _ => group.name.clone(),
        };
        let mut cmd = Command::new(&exe);
        cmd.args(&args)
            .env(TILE_ENV, format!("{}/{name}", self.pipeline.ws.name()))
            .env(PARENT_ENV, std::process::id().to_string())
            .env(STEM_ENV, &stem);
        // Its own process group: a Ctrl-C at the terminal reaches the
        // runner alone, which then stops the tiles in order.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(mut c) => {
                tracing::info!(tile = %name, pid = c.id(), "tile process started");
                let relay = c.stderr.take().and_then(|err| relay_stderr(&name, err));
                Handle::Process(c, relay)
            }
            Err(e) => {
                for t in group.tiles.clone() {
                    self.failures.push(TileFailure::Start {
                        tile: self.name(t).to_owned(),
                        why: format!("cannot start {}: {e}", exe.display()),
                    });
                }
                Handle::Ended
            }
        }
    }

    /// Whether unit `u`, whose process just failed, is started again (its
    /// policy says so, the run is not stopping, and it is within
    /// [`RESTART_LIMIT`] in [`RESTART_WINDOW`]), and when.
    fn restart_at(&mut self, u: usize, label: &str) -> Option<Instant> {
        if self.units[u].group.restart != Restart::OnFailure || self.stopped {
            return None;
        }
        let now = Instant::now();
        let unit = &mut self.units[u];
        unit.restarts
            .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if unit.restarts.len() >= RESTART_LIMIT {
            tracing::error!(tile = %label, restarts = unit.restarts.len(), "restart limit reached");
            self.failures.push(TileFailure::RestartLimit {
                tile: label.to_owned(),
                restarts: RESTART_LIMIT,
                window: RESTART_WINDOW,
            });
            return None;
        }
        let backoff = (Duration::from_millis(100) * (1 << unit.restarts.len().min(6)))
            .min(Duration::from_secs(5));
        unit.restarts.push(now);
        Some(now + backoff)
    }

    /// Waits until every tile runs; a tile that ends or does not run in
    /// time is a failure.
    fn wait_started(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let n = self.done.len();
        loop {
            let mut all = true;
            for i in 0..n {
                if self.reap(i) {
                    // A thread's reap said why it ended; a process said it
                    // on its own stderr.
                    if self.pipeline.topo.workspace.mode == Mode::Processes {
                        self.failures.push(TileFailure::Start {
                            tile: self.name(i).to_owned(),
                            why: "its process ended before the tile ran (its own message is \
                                  above; a binary whose main does not call \
                                  tilewire_pipeline::tile_main first ends like this too)"
                                .into(),
                        });
                    }
                    return;
                }
                let state = tile_metrics(&self.pipeline.ws, self.name(i)).and_then(|m| m.state());
                all &= state == Some(TileState::Running);
            }
            if all {
                return;
            }
            if Instant::now() >= deadline {
                for i in 0..n {
                    let state =
                        tile_metrics(&self.pipeline.ws, self.name(i)).and_then(|m| m.state());
                    if state != Some(TileState::Running) {
                        self.failures.push(TileFailure::Start {
                            tile: self.name(i).to_owned(),
                            why: format!("not running after {timeout:?}"),
                        });
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Reaps the tiles that ended by themselves and says whether the run
    /// should end now. In threads mode it should when any tile ended (it
    /// failed or panicked; the others are stopped). In processes mode a
    /// tile process that exits is reported when the run ends, and the
    /// others go on: the tile can be started again by hand (`tilewire
    /// tile`), and it rejoins its links; the run ends by itself only once
    /// no tile runs.
    pub fn poll(&mut self) -> bool {
        let n = self.done.len();
        let ended: Vec<bool> = (0..n).map(|i| self.reap(i)).collect();
        match self.pipeline.topo.workspace.mode {
            Mode::Threads => ended.iter().any(|&e| e),
            Mode::Processes => (0..n).all(|i| ended[i] && !self.runs_elsewhere(i)),
        }
    }

    /// Waits until the run should end: `opts`' stop flag is set, its
    /// duration passed, or the tiles ended ([`Running::poll`]); calls
    /// `tick` with the workspace every [`RunOptions::tick`] meanwhile. The
    /// tiles still run when it returns: [`Running::stop`] stops them.
    pub fn wait(&mut self, opts: &RunOptions, mut tick: impl FnMut(&Workspace)) {
        let until = opts.duration.map(|d| Instant::now() + d);
        let mut next = Instant::now() + opts.tick;
        while !opts.stop.as_ref().is_some_and(StopFlag::is_stopped)
            && !until.is_some_and(|u| Instant::now() >= u)
            && !self.poll()
        {
            if Instant::now() >= next {
                tick(&self.pipeline.ws);
                next += opts.tick;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The pid of each tile process this runner started, by tile (none in
    /// threads mode).
    pub fn pids(&self) -> Vec<(String, u32)> {
        (0..self.done.len())
            .filter_map(|i| match &self.units[self.unit_of[i]].handle {
                Handle::Process(c, _) => Some((self.name(i).to_owned(), c.id())),
                _ => None,
            })
            .collect()
    }

    /// True if tile `i` runs in a process this runner did not start (one
    /// started again by hand after its own died), judged by its metrics.
    fn runs_elsewhere(&self, i: usize) -> bool {
        if self.pipeline.topo.workspace.mode != Mode::Processes {
            return false;
        }
        tile_metrics(&self.pipeline.ws, self.name(i)).is_some_and(|m| {
            let s = m.snapshot();
            matches!(s.state, Some(TileState::Booting | TileState::Running)) && pid_alive(s.pid)
        })
    }

    /// Reaps tile `i` if it ended, recording how; true if it has ended
    /// (now or before). A tile ends with its thread or process, or, in a
    /// group on a thread of the runner, when the group says so.
    fn reap(&mut self, i: usize) -> bool {
        if self.done[i] {
            return true;
        }
        self.take_outcome(i);
        if !self.done[i] && self.reap_unit(self.unit_of[i]) {
            for t in self.units[self.unit_of[i]].group.tiles.clone() {
                self.take_outcome(t);
                self.done[t] = true;
            }
        }
        self.done[i]
    }

    /// Records how tile `i` ended if its thread said so.
    fn take_outcome(&mut self, i: usize) {
        let outcome = self.outcomes.lock().ok().and_then(|mut all| all[i].take());
        let Some(outcome) = outcome else {
            return;
        };
        let tile = self.name(i).to_owned();
        self.done[i] = true;
        let failure = match outcome {
            Outcome::Ended(end) if end.pending > 0 => TileFailure::Held {
                tile,
                packets: end.pending,
            },
            Outcome::Ended(_) => {
                tracing::info!(tile = %tile, "tile halted");
                return;
            }
            Outcome::Panicked(message) => TileFailure::Panicked { tile, message },
        };
        tracing::error!(tile = %failure.tile(), "{failure}");
        self.failures.push(failure);
    }

    /// Reaps unit `u` if its thread or process ended, recording how; true
    /// if it has ended (now or before).
    fn reap_unit(&mut self, u: usize) -> bool {
        let tiles: Vec<String> = self.units[u]
            .group
            .tiles
            .iter()
            .map(|&t| self.name(t).to_owned())
            .collect();
        let label = match &tiles[..] {
            [one] => one.clone(),
            _ => self.units[u].group.name.clone(),
        };
        match &mut self.units[u].handle {
            Handle::Ended => return true,
            Handle::Restarting(_) if self.stopped => {}
            Handle::Restarting(at) => {
                if Instant::now() >= *at {
                    self.units[u].handle = self.spawn_process(u);
                    return matches!(self.units[u].handle, Handle::Ended);
                }
                return false;
            }
            Handle::Thread(h) if !h.is_finished() => return false,
            Handle::Process(c, relay) => match c.try_wait() {
                Ok(None) => return false,
                Ok(Some(status)) => {
                    // Everything it wrote is passed on before its end is
                    // reported.
                    if let Some(r) = relay.take() {
                        let _ = r.join();
                    }
                    if status.success() {
                        tracing::info!(tile = %label, "tile process ended");
                    } else if let Some(at) = self.restart_at(u, &label) {
                        let attempt = self.units[u].restarts.len();
                        tracing::warn!(tile = %label, %status, attempt, "tile process failed; restarting it");
                        self.units[u].handle = Handle::Restarting(at);
                        return false;
                    } else if tiles.len() == 1 {
                        tracing::warn!(tile = %label, %status, "tile process failed");
                        self.failures.push(TileFailure::Exited {
                            tile: label,
                            status,
                        });
                    } else {
                        tracing::warn!(group = %label, %status, "group process failed");
                        self.failures.push(TileFailure::GroupExited {
                            group: label,
                            tiles,
                            status,
                        });
                    }
                }
                Err(e) => self.failures.push(TileFailure::Start {
                    tile: label,
                    why: format!("waiting for its process: {e}"),
                }),
            },
            Handle::Thread(_) => {
                let Handle::Thread(h) = std::mem::replace(&mut self.units[u].handle, Handle::Ended)
                else {
                    unreachable!("matched a thread")
                };
                let joined = h.join();
                // Whatever its tiles said before the thread ended counts
                // first; the thread's own end speaks for the others.
                let group_tiles = self.units[u].group.tiles.clone();
                for &t in &group_tiles {
                    self.take_outcome(t);
                }
                let silent: Vec<usize> =
                    group_tiles.into_iter().filter(|&t| !self.done[t]).collect();
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        let mut error = Some(error);
                        for &t in &silent {
                            let tile = self.name(t).to_owned();
                            let f = match error.take() {
                                Some(error) => TileFailure::Failed { tile, error },
                                None => TileFailure::Start {
                                    tile,
                                    why: format!("its group {label:?} could not be set up"),
                                },
                            };
                            tracing::error!(tile = %f.tile(), "{f}");
                            self.failures.push(f);
                        }
                    }
                    Err(panic) => {
                        let message = panic_message(&*panic);
                        for &t in &silent {
                            let f = TileFailure::Panicked {
                                tile: self.name(t).to_owned(),
                                message: message.clone(),
                            };
                            tracing::error!(tile = %f.tile(), "{f}");
                            self.failures.push(f);
                        }
                    }
                }
                return true;
            }
        }
        self.units[u].handle = Handle::Ended;
        true
    }

    /// Stops every tile in order (see [`crate::stop`]) and reports what
    /// went wrong during the whole run.
    ///
    /// # Errors
    /// Every failure: a tile that failed, panicked or died during the run,
    /// one that could not drain in its grace time (with the frags it left),
    /// one that did not stop.
    pub fn stop(mut self) -> Result<(), RunError> {
        self.stop_in_order();
        let failures = std::mem::take(&mut self.failures);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RunError { failures })
        }
    }

    fn stop_in_order(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let n = self.done.len();
        // Each tile gets its grace to drain, one after another along the
        // longest chain, and some time to start and end.
        let deadline =
            Instant::now() + self.stem.stop_grace * (n as u32 + 1) + Duration::from_secs(5);
        let ws = &self.pipeline.ws;
        let mut asked = vec![false; n];
        loop {
            let ended: Vec<bool> = (0..n)
                .map(|i| self.reap(i) && !self.runs_elsewhere(i))
                .collect();
            if ended.iter().all(|&e| e) {
                break;
            }
            // A halted tile's producers and progress are final even while
            // its thread or process is still winding down.
            let halted: Vec<bool> = (0..n)
                .map(|i| {
                    ended[i]
                        || tile_metrics(ws, self.name(i)).and_then(|m| m.state())
                            == Some(TileState::Halted)
                })
                .collect();
            for i in (0..n).filter(|&i| !ended[i]) {
                if self.plan.before[i].iter().all(|&p| halted[p]) {
                    // Asked again each turn: a tile still booting forgets a
                    // request made before its metrics were reset.
                    if let Some(m) = tile_metrics(ws, self.name(i)) {
                        m.request_drain(self.plan.drain[i]);
                        if !asked[i] {
                            asked[i] = true;
                            tracing::info!(
                                tile = %self.name(i),
                                inputs = self.plan.drain[i],
                                "asked to drain its inputs and stop"
                            );
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                for i in (0..n).filter(|&i| !ended[i]) {
                    let tile = self.name(i).to_owned();
                    let unit = &mut self.units[self.unit_of[i]];
                    if let Handle::Process(c, _) = &mut unit.handle {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    unit.handle = Handle::Ended;
                    self.done[i] = true;
                    tracing::error!(tile = %tile, "tile did not stop in time");
                    self.failures.push(TileFailure::DidNotStop { tile });
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.check_drained();
    }

    /// Records every drained input that still has frags its consumer never
    /// read, for the tiles that did not fail otherwise.
    fn check_drained(&mut self) {
        let ws = &self.pipeline.ws;
        let topo = &self.pipeline.topo;
        let mut found = Vec::new();
        for (i, t) in topo.tiles.iter().enumerate() {
            let failed = |f: &TileFailure| match f {
                TileFailure::GroupExited { tiles, .. } => tiles.contains(&t.name),
                f => f.tile() == t.name,
            };
            if self.failures.iter().any(failed) {
                continue;
            }
            for (j, link_name) in t.inputs.iter().enumerate() {
                if j >= 64 || self.plan.drain[i] & (1 << j) == 0 {
                    continue;
                }
                let (Ok(link), Some(c)) =
                    (Link::join(ws, link_name), topo.consumer_index(&t.name, j))
                else {
                    continue;
                };
                let Some(fseq) = link.fseqs().get(c) else {
                    continue;
                };
                let left = link.mcache().seq_query().wrapping_sub(fseq.query()) as i64;
                if left > 0 {
                    tracing::warn!(tile = %t.name, link = %link_name, frags = left, "not drained");
                    found.push(TileFailure::Undrained {
                        tile: t.name.clone(),
                        link: link_name.clone(),
                        frags: left as u64,
                    });
                }
            }
        }
        self.failures.extend(found);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.stop_in_order();
    }
}

/// Passes each line tile `tile`'s process writes to stderr on to this
/// process's stderr, as `[tile] line`, so the runner's output says which
/// tile wrote what. `None` if no thread could be started (the lines are
/// lost then, the tile is not).
fn relay_stderr(tile: &str, err: ChildStderr) -> Option<JoinHandle<()>> {
    let tag = tile.to_owned();
    std::thread::Builder::new()
        .name(format!("{tile}.stderr"))
        .spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
            }
        })
        .ok()
}
