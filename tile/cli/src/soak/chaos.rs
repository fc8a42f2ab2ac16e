//! The kills of a soak: which tile, when, and whether it came back.
//!
//! # Choosing a tile
//!
//! At each kill a tile is drawn (seeded, [`Rng`]) among those that may be
//! killed now: running in the process the runner started for it, back
//! from every earlier kill (its boots are one more than its kills), and
//! killed fewer than [`RESTART_LIMIT`] times in the last
//! [`RESTART_WINDOW`] plus a margin. The restart policy gives up on a tile
//! past that limit, and the soak is about restarts that work, so it never
//! asks for one the policy refuses: the limit stays the library's own,
//! and a run that still hits it (a tile that crashed by itself besides)
//! fails. When no tile may be killed the kill waits a little.
//!
//! # Coming back
//!
//! A killed tile is back when its metrics say a new boot runs, in another
//! process: the time from the kill is its restart time. One not back
//! within [`RESTART_DEADLINE`] is a failed restart.
//!
//! # Counters over boots
//!
//! A tile's own counters (a dedup tile's duplicates) start again at zero
//! with each boot. They are totalled here from samples: the last value
//! seen of each boot, added up. A value is taken for a new boot only once
//! it ran two housekeepings (before that the words may still hold its
//! predecessor's). What a tile counted after its last sample before a
//! kill is missed, so these totals are lower bounds, and the soak uses
//! them for what it reports, never to explain a frag.

use std::process::Command;
use std::time::{Duration, Instant};

use tilewire_pipeline::shmem::Workspace;
use tilewire_pipeline::tile::stem::metrics::{TileSnapshot, TileState};
use tilewire_pipeline::tile_metrics;
use tilewire_pipeline::topo::{RESTART_LIMIT, RESTART_WINDOW};

use super::probe::Rng;

/// Longest a killed tile may take to run again.
pub(crate) const RESTART_DEADLINE: Duration = Duration::from_secs(20);
/// Added to [`RESTART_WINDOW`] when counting a tile's recent kills: the
/// runner counts restarts from when it noticed the death, a little after
/// the kill.
const WINDOW_MARGIN: Duration = Duration::from_secs(15);

/// One tile of the soak, as the kills see it.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) name: String,
    /// When it was killed, every time.
    kills: Vec<Instant>,
    /// The kill whose restart is awaited, and the pid it killed.
    pending: Option<(Instant, u32)>,
    /// How long each restart took, kill to running.
    pub(crate) restart_times: Vec<Duration>,
    /// The boots its metrics said last.
    pub(crate) boots: u64,
    totals: Totals,
}

impl Watched {
    /// Times killed.
    pub(crate) fn kills(&self) -> usize {
        self.kills.len()
    }

    /// Counter `name` totalled over its boots (a lower bound, see the
    /// [module docs](self)); `None` if the tile has no such counter.
    pub(crate) fn total(&self, name: &str) -> Option<u64> {
        let i = self.totals.names.iter().position(|n| n == name)?;
        Some(self.totals.closed[i].wrapping_add(self.totals.current[i]))
    }
}

/// A tile's counters over its boots.
#[derive(Debug, Default)]
struct Totals {
    names: Vec<String>,
    /// Sums of the last values of the boots that ended.
    closed: Vec<u64>,
    /// The last values of the boot now.
    current: Vec<u64>,
    boots: u64,
    /// Housekeeping runs after which the boot's values are its own.
    from_housekeeping: u64,
}

impl Totals {
    fn sample(&mut self, s: &TileSnapshot, last: bool) {
        if self.names.is_empty() {
            self.names = s.counters.iter().map(|(n, _)| n.clone()).collect();
            self.closed = vec![0; self.names.len()];
            self.current = vec![0; self.names.len()];
        }
        if s.boots != self.boots {
            for (c, v) in self.closed.iter_mut().zip(&mut self.current) {
                *c = c.wrapping_add(std::mem::take(v));
            }
            self.boots = s.boots;
            self.from_housekeeping = s.housekeeping + 2;
        }
        // The final sample, after the tile halted, is its own.
        if last || s.housekeeping >= self.from_housekeeping {
            for (c, (_, v)) in self.current.iter_mut().zip(&s.counters) {
                *c = (*c).max(*v);
            }
        }
    }
}

/// The kills of a soak and what became of them.
#[derive(Debug)]
pub(crate) struct Chaos {
    pub(crate) tiles: Vec<Watched>,
    rng: Rng,
    /// Restarts that did not happen, in words.
    pub(crate) failures: Vec<String>,
}

impl Chaos {
    /// Kills among `tiles`, drawn with `seed`.
    pub(crate) fn new(tiles: &[&str], seed: u64) -> Chaos {
        Chaos {
            tiles: tiles
                .iter()
                .map(|t| Watched {
                    name: (*t).to_owned(),
                    kills: Vec::new(),
                    pending: None,
                    restart_times: Vec::new(),
                    boots: 0,
                    totals: Totals::default(),
                })
                .collect(),
            rng: Rng::new(seed),
            failures: Vec::new(),
        }
    }

    /// Kills in all.
    pub(crate) fn kills(&self) -> usize {
        self.tiles.iter().map(Watched::kills).sum()
    }

    /// True while a killed tile is not back yet.
    pub(crate) fn awaiting(&self) -> bool {
        self.tiles.iter().any(|t| t.pending.is_some())
    }

    /// Reads every tile's metrics in `ws`: notes restarts, missed restart
    /// deadlines and counters (`last`: the tiles halted, this is the
    /// final reading).
    pub(crate) fn observe(&mut self, ws: &Workspace, now: Instant, last: bool) {
        for t in &mut self.tiles {
            let Some(s) = tile_metrics(ws, &t.name).map(|m| m.snapshot()) else {
                continue;
            };
            t.boots = s.boots;
            t.totals.sample(&s, last);
            let Some((at, old)) = t.pending else {
                continue;
            };
            let back = s.boots > t.kills.len() as u64
                && s.state == Some(TileState::Running)
                && s.pid != old;
            if back {
                t.restart_times.push(now.duration_since(at));
                t.pending = None;
            } else if now.duration_since(at) > RESTART_DEADLINE {
                self.failures.push(format!(
                    "{} killed (pid {old}) and not running again after {:?}",
                    t.name, RESTART_DEADLINE
                ));
                t.pending = None;
            }
        }
    }

    /// Kills one tile drawn among those that may be killed now (see the
    /// [module docs](self)), given the runner's tile processes `pids`.
    /// Returns the tile killed, `None` if none may be killed now.
    ///
    /// # Errors
    /// The kill could not be sent.
    pub(crate) fn kill_one(
        &mut self,
        ws: &Workspace,
        pids: &[(String, u32)],
        now: Instant,
    ) -> Result<Option<String>, String> {
        let window = RESTART_WINDOW + WINDOW_MARGIN;
        let may: Vec<(usize, u32)> = self
            .tiles
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let pid = pids.iter().find(|(n, _)| *n == t.name)?.1;
                let s = tile_metrics(ws, &t.name)?.snapshot();
                let recent = t
                    .kills
                    .iter()
                    .filter(|k| now.duration_since(**k) < window)
                    .count();
                let ok = t.pending.is_none()
                    && s.state == Some(TileState::Running)
                    && s.pid == pid
                    && s.boots == t.kills.len() as u64 + 1
                    && recent < RESTART_LIMIT;
                ok.then_some((i, pid))
            })
            .collect();
        if may.is_empty() {
            return Ok(None);
        }
        let (i, pid) = may[self.rng.below(may.len())];
        kill9(pid)?;
        let t = &mut self.tiles[i];
        t.kills.push(now);
        t.pending = Some((now, pid));
        Ok(Some(t.name.clone()))
    }
}

/// Sends SIGKILL to `pid` (a tile process this runner started).
fn kill9(pid: u32) -> Result<(), String> {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| format!("running kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -KILL {pid}: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(boots: u64, housekeeping: u64, dups: u64) -> TileSnapshot {
        TileSnapshot {
            pid: 1,
            state: Some(TileState::Running),
            heartbeat_ns: 0,
            housekeeping,
            loops: 0,
            backpressure: 0,
            backpressure_ns: 0,
            out_backpressure: Vec::new(),
            counters: vec![("dups".into(), dups)],
            boots,
            work_ns: 0,
            forwarded_by_chunk: 0,
            forwarded_copied: 0,
            corrupt: None,
        }
    }

    #[test]
    fn counters_are_totalled_over_boots_without_the_stale_words_of_a_new_one() {
        let mut t = Totals::default();
        t.sample(&snap(1, 10, 5), false);
        t.sample(&snap(1, 13, 7), false);
        // Boot 2: the words still hold boot 1's 7 until it housekept twice.
        t.sample(&snap(2, 14, 7), false);
        t.sample(&snap(2, 15, 7), false);
        t.sample(&snap(2, 16, 3), false);
        assert_eq!((t.closed[0], t.current[0]), (7, 3));
        // The final reading after the halt counts whatever its age.
        t.sample(&snap(3, 20, 0), false);
        t.sample(&snap(3, 20, 4), true);
        assert_eq!(t.closed[0] + t.current[0], 7 + 3 + 4);
        // A checksum counter (a wrapping sum) wraps, rather than panics.
        t.sample(&snap(4, 30, 0), false);
        t.sample(&snap(4, 33, u64::MAX), false);
        t.sample(&snap(5, 40, 1), false);
        assert_eq!(t.closed[0], 14u64.wrapping_add(u64::MAX));
    }
}
