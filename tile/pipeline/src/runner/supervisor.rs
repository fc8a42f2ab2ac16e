//! The tiles of a started pipeline: what runs where, how each ended,
//! and the stop in order.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tilewire_shmem::{pid_alive, Workspace};
use tilewire_tile::link::Link;
use tilewire_tile::stem::group::panic_message;
use tilewire_tile::stem::metrics::TileState;
use tilewire_tile::stem::{RunEnd, StemConfig};

use super::failure::TileFailure;
use super::report::TileRestart;

use crate::error::PipelineError;
use crate::run::tile_metrics;
use crate::stop::StopPlan;
use crate::topo::{Mode, TileGroup};
use crate::Topology;

/// How one group of tiles (one tile, mostly) of a running pipeline runs.
pub(super) enum Handle {
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
pub(super) struct Unit {
    pub(super) group: TileGroup,
    pub(super) handle: Handle,
    /// When its process was restarted, within the restart window.
    pub(super) restarts: Vec<Instant>,
    /// Why the runner itself ended its process, if it did (a corrupt
    /// word): the cause its restart gives instead of the signal.
    pub(super) ended_for: Option<String>,
}

/// How a tile running on a thread of the runner ended, as its thread
/// says the moment it does (the other tiles of its group may run on).
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Ended(RunEnd),
    Panicked(String),
}

pub(super) type Outcomes = Arc<Mutex<Vec<Option<Outcome>>>>;

/// The state of a started pipeline's tiles: what runs where, how each
/// ended, what failed, what restarted. Shared by [`Running`](super::Running)
/// and its supervising thread, which reaps and restarts tile processes on
/// its own while the user does anything else.
pub(super) struct Supervisor {
    /// Its own handle of the pipeline's workspace.
    pub(super) ws: Arc<Workspace>,
    pub(super) topo: Arc<Topology>,
    pub(super) units: Vec<Unit>,
    /// The unit each tile runs in.
    pub(super) unit_of: Vec<usize>,
    /// The tiles known to have ended.
    pub(super) done: Vec<bool>,
    /// What the threads said of each tile's end, not yet taken.
    pub(super) outcomes: Outcomes,
    pub(super) plan: StopPlan,
    pub(super) stem: StemConfig,
    pub(super) failures: Vec<TileFailure>,
    pub(super) stopped: bool,
    /// Set once a poll found that the run should end (a tile of a threads
    /// run ended, every tile process ended, a corrupt word).
    pub(super) should_end: bool,
    /// When the tiles were started.
    pub(super) started: Instant,
    /// Every restart, in order.
    pub(super) restarts: Vec<TileRestart>,
    /// Each tile's counters summed over its earlier boots (its metrics
    /// hold only the current boot's).
    pub(super) carried: Vec<Vec<(String, u64)>>,
    /// Corruption a restart took care of, by kind, tile and link, with the
    /// count it had then: only a count past it is new.
    pub(super) handled: std::collections::HashMap<(u8, String, String), u64>,
}

impl Supervisor {
    pub(super) fn name(&self, i: usize) -> &str {
        &self.topo.tiles[i].name
    }

    /// Waits until every tile runs; a tile that ends or does not run in
    /// time is a failure.
    pub(super) fn wait_started(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let n = self.done.len();
        loop {
            let mut all = true;
            for i in 0..n {
                if self.reap(i) {
                    // A thread's reap said why it ended; a process said it
                    // on its own stderr.
                    if self.topo.workspace.mode == Mode::Processes {
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
                let state = tile_metrics(&self.ws, self.name(i)).and_then(|m| m.state());
                all &= state == Some(TileState::Running);
            }
            if all {
                return;
            }
            if Instant::now() >= deadline {
                for i in 0..n {
                    let state = tile_metrics(&self.ws, self.name(i)).and_then(|m| m.state());
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
    pub(super) fn poll(&mut self) -> bool {
        if self.find_corruption() {
            self.should_end = true;
        }
        if self.should_end {
            return true;
        }
        let n = self.done.len();
        let ended: Vec<bool> = (0..n).map(|i| self.reap(i)).collect();
        self.should_end = match self.topo.workspace.mode {
            Mode::Threads => ended.iter().any(|&e| e),
            Mode::Processes => (0..n).all(|i| ended[i] && !self.runs_elsewhere(i)),
        };
        self.should_end
    }

    /// Looks for corrupt words the tiles found: a consumer's progress past
    /// its producer, read by a tile's producer ([`TileFailure::Corrupt`],
    /// from the tile's metrics), and ring lines holding a seq no producer
    /// puts there, counted by their readers ([`TileFailure::CorruptLines`],
    /// from the links' fseqs). Records each once and says whether there
    /// was any.
    fn find_corruption(&mut self) -> bool {
        let (ws, topo) = (&self.ws, &self.topo);
        // Each with its count so far (what grows when it happens again).
        let mut found: Vec<(TileFailure, u64)> = Vec::new();
        for t in &topo.tiles {
            let Some(m) = tile_metrics(ws, &t.name) else {
                continue;
            };
            if let Some(c) = m.corrupt() {
                let f = TileFailure::Corrupt {
                    tile: t.name.clone(),
                    link: t.outputs.get(c.output).cloned().unwrap_or_default(),
                    what: c.what,
                };
                found.push((f, c.reads));
            }
        }
        for l in &topo.links {
            let Ok(link) = tilewire_tile::link::Link::join(ws, &l.name) else {
                continue;
            };
            for ((t, _), f) in topo.consumers(&l.name).iter().zip(link.fseqs()) {
                let frags = f.diag(tilewire_tile::link::fseq::DIAG_CORRUPT_CNT);
                if frags > 0 {
                    let f = TileFailure::CorruptLines {
                        tile: t.name.clone(),
                        link: l.name.clone(),
                        frags,
                    };
                    found.push((f, frags));
                }
            }
        }
        for f in super::plausible::bad_chunks(ws, topo) {
            let n = match &f {
                TileFailure::BadChunks { frags, .. } => *frags,
                _ => 0,
            };
            found.push((f, n));
        }
        let mut failed = false;
        for (f, count) in found {
            let Some(key) = f.corruption_key() else {
                continue;
            };
            if self.handled.get(&key).is_some_and(|&n| count <= n) {
                continue;
            }
            if self.restart_for_corruption(&f) {
                self.handled.insert(key, count);
                continue;
            }
            failed = true;
            // Once per kind, tile and link: the first report stands.
            if !self
                .failures
                .iter()
                .any(|x| x.corruption_key() == Some(key.clone()))
            {
                tracing::error!(tile = %f.tile(), "{f}");
                self.failures.push(f);
            }
        }
        failed
    }

    /// The pid of each tile process this runner started, by tile (none in
    /// threads mode).
    pub(super) fn pids(&self) -> Vec<(String, u32)> {
        (0..self.done.len())
            .filter_map(|i| match &self.units[self.unit_of[i]].handle {
                Handle::Process(c, _) => Some((self.name(i).to_owned(), c.id())),
                _ => None,
            })
            .collect()
    }

    /// True if tile `i` runs in a process this runner did not start (one
    /// started again by hand after its own died), judged by its metrics.
    pub(super) fn runs_elsewhere(&self, i: usize) -> bool {
        if self.topo.workspace.mode != Mode::Processes {
            return false;
        }
        tile_metrics(&self.ws, self.name(i)).is_some_and(|m| {
            let s = m.snapshot();
            matches!(s.state, Some(TileState::Booting | TileState::Running)) && pid_alive(s.pid)
        })
    }

    /// Reaps tile `i` if it ended, recording how; true if it has ended
    /// (now or before). A tile ends with its thread or process, or, in a
    /// group on a thread of the runner, when the group says so.
    pub(super) fn reap(&mut self, i: usize) -> bool {
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
    pub(super) fn take_outcome(&mut self, i: usize) {
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
    pub(super) fn reap_unit(&mut self, u: usize) -> bool {
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
                        self.carry_counters(u);
                        let cause = self.units[u]
                            .ended_for
                            .take()
                            .unwrap_or_else(|| status.to_string());
                        self.restarts.push(TileRestart {
                            tile: label,
                            after: self.started.elapsed(),
                            cause,
                        });
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

    pub(super) fn stop_in_order(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let n = self.done.len();
        // Each tile gets its grace to drain, one after another along the
        // longest chain, and some time to start and end.
        let deadline =
            Instant::now() + self.stem.stop_grace * (n as u32 + 1) + Duration::from_secs(5);
        let ws = Arc::clone(&self.ws);
        let ws = &*ws;
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
        // Every tile halted (it says so as it ends); wait for the threads
        // that ran them to end too, so that what the tiles own (a file, a
        // socket, a collector) is dropped, flushed and closed before the
        // stop returns.
        let end_by = Instant::now() + Duration::from_secs(5);
        for u in 0..self.units.len() {
            while matches!(&self.units[u].handle, Handle::Thread(h) if !h.is_finished())
                && Instant::now() < end_by
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            if matches!(&self.units[u].handle, Handle::Thread(h) if h.is_finished()) {
                self.reap_unit(u);
            }
        }
        self.check_drained();
    }

    /// Records every drained input that still has frags its consumer never
    /// read, for the tiles that did not fail otherwise.
    pub(super) fn check_drained(&mut self) {
        let ws = &self.ws;
        let topo = &self.topo;
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
