//! Is a tile alive? Is a workspace in use, finished, or left behind?
//!
//! See the [module docs](super) for the rule. Both answers are pure
//! functions of what a snapshot read, the time, and a test for whether a
//! pid is alive ([`pid_alive`] in real use, anything in tests).

use std::fmt;
use std::time::Duration;

use tilewire_tile::stem::metrics::{TileSnapshot, TileState};

use crate::units::duration;

/// A heartbeat older than this, from a tile that says it runs, means the
/// tile is dead. Live tiles beat many times a millisecond.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);

/// How far ahead of a monitor's clock a heartbeat may be (the tile
/// stamped it from a tick counter a little ahead of the kernel's clock)
/// before it is corrupt.
const FUTURE_SLACK: Duration = Duration::from_secs(1);

/// What a monitor concludes about a tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileHealth {
    /// Set up, its loop not started yet; its process is alive.
    Booting,
    /// Running, with a fresh heartbeat and a live process.
    Running,
    /// Stopped cleanly.
    Halted,
    /// Says it runs, but cannot be: its process is gone or its heartbeat
    /// stopped (or its state word is not a state at all).
    Dead {
        /// Why the monitor thinks so.
        why: String,
    },
}

impl TileHealth {
    /// Lower-case name: `booting`, `running`, `halted` or `dead`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TileHealth::Booting => "booting",
            TileHealth::Running => "running",
            TileHealth::Halted => "halted",
            TileHealth::Dead { .. } => "dead",
        }
    }

    /// True for a tile that is booting or running (not halted, not dead).
    pub fn is_alive(&self) -> bool {
        matches!(self, TileHealth::Booting | TileHealth::Running)
    }
}

impl fmt::Display for TileHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TileHealth::Dead { why } => write!(f, "dead ({why})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Classifies a tile from its metrics `m`, read at `now_ns`
/// (`CLOCK_MONOTONIC`), with `pid_alive` telling whether a pid runs.
///
/// - `Halted` is believed as it is.
/// - `Running` or `Booting` with a pid (non-zero) that is not alive, or with
///   a heartbeat (non-zero) older than `timeout`: [`TileHealth::Dead`]. A
///   booting tile that never beat (heartbeat 0) is only judged by its pid:
///   it may be waiting for its loop to start.
/// - An unknown state word, or a heartbeat more than a second in the
///   future: dead, as corrupt metrics (the reason says CORRUPT).
pub fn classify(
    m: &TileSnapshot,
    now_ns: u64,
    timeout: Duration,
    pid_alive: impl Fn(u32) -> bool,
) -> TileHealth {
    let alive_as = match m.state {
        Some(TileState::Halted) => return TileHealth::Halted,
        Some(TileState::Running) => TileHealth::Running,
        Some(TileState::Booting) => TileHealth::Booting,
        None => {
            return TileHealth::Dead {
                why: "unknown state word in its metrics".into(),
            }
        }
    };
    if m.pid != 0 && !pid_alive(m.pid) {
        return TileHealth::Dead {
            why: format!("pid {} is gone", m.pid),
        };
    }
    // A heartbeat is the tile's clock when it beat: one well past the
    // monitor's now no healthy tile writes.
    if m.heartbeat_ns > now_ns.saturating_add(FUTURE_SLACK.as_nanos() as u64) {
        return TileHealth::Dead {
            why: format!(
                "CORRUPT: its heartbeat {} ns is {} in the future",
                m.heartbeat_ns,
                duration(m.heartbeat_ns - now_ns)
            ),
        };
    }
    let age = now_ns.saturating_sub(m.heartbeat_ns);
    if m.heartbeat_ns != 0 && age > timeout.as_nanos() as u64 {
        return TileHealth::Dead {
            why: format!("no heartbeat for {} (pid {})", duration(age), m.pid),
        };
    }
    alive_as
}

pub use tilewire_shmem::pid_alive;

/// Tiles of a workspace, counted by health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Booting tiles.
    pub booting: usize,
    /// Running tiles.
    pub running: usize,
    /// Halted tiles.
    pub halted: usize,
    /// Dead tiles.
    pub dead: usize,
}

impl HealthCounts {
    /// Counts `healths`.
    pub fn count<'a>(healths: impl IntoIterator<Item = &'a TileHealth>) -> HealthCounts {
        let mut c = HealthCounts::default();
        for h in healths {
            match h {
                TileHealth::Booting => c.booting += 1,
                TileHealth::Running => c.running += 1,
                TileHealth::Halted => c.halted += 1,
                TileHealth::Dead { .. } => c.dead += 1,
            }
        }
        c
    }

    /// All tiles counted.
    pub fn total(&self) -> usize {
        self.booting + self.running + self.halted + self.dead
    }
}

impl fmt::Display for HealthCounts {
    /// `none`, or e.g. `2 running, 1 dead`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.running, "running"),
            (self.booting, "booting"),
            (self.halted, "halted"),
            (self.dead, "dead"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// What `tilewire shmem ls` says of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceStatus {
    /// In use: a tile runs with a fresh heartbeat, or the creator is alive.
    Live,
    /// Finished: the creator is gone and no tile runs or died running
    /// (every tile halted, or there are none).
    Stopped,
    /// Left behind by a crash: the creator is gone and tiles still say they
    /// run, with dead processes or stale heartbeats.
    Abandoned,
    /// Not a workspace (garbage, truncated, another version).
    Invalid {
        /// Why not.
        why: String,
    },
}

impl WorkspaceStatus {
    /// Lower-case name: `live`, `stopped`, `abandoned` or `invalid`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkspaceStatus::Live => "live",
            WorkspaceStatus::Stopped => "stopped",
            WorkspaceStatus::Abandoned => "abandoned",
            WorkspaceStatus::Invalid { .. } => "invalid",
        }
    }
}

/// The status of a valid workspace whose creator is or is not alive and
/// whose tiles are counted in `tiles`.
pub fn workspace_status(creator_alive: bool, tiles: &HealthCounts) -> WorkspaceStatus {
    if tiles.running + tiles.booting > 0 || creator_alive {
        WorkspaceStatus::Live
    } else if tiles.dead > 0 {
        WorkspaceStatus::Abandoned
    } else {
        WorkspaceStatus::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn metrics(state: Option<TileState>, pid: u32, heartbeat_ns: u64) -> TileSnapshot {
        TileSnapshot {
            pid,
            state,
            heartbeat_ns,
            housekeeping: 1,
            loops: 1,
            backpressure: 0,
            backpressure_ns: 0,
            out_backpressure: vec![],
            counters: vec![],
            boots: 1,
            work_ns: 0,
            forwarded_by_chunk: 0,
            forwarded_copied: 0,
            corrupt: None,
        }
    }

    fn judge(m: &TileSnapshot, now: u64, alive: bool) -> TileHealth {
        classify(m, now, HEARTBEAT_TIMEOUT, |_| alive)
    }

    #[test]
    fn running_with_a_dead_pid_and_a_two_second_old_heartbeat_is_dead() {
        let m = metrics(Some(TileState::Running), 4242, 10 * SEC);
        let h = judge(&m, 12 * SEC, false);
        assert!(
            matches!(&h, TileHealth::Dead { why } if why.contains("4242")),
            "{h}"
        );
        assert!(!h.is_alive());
    }

    #[test]
    fn a_stale_heartbeat_alone_means_dead_and_a_fresh_one_running() {
        let m = metrics(Some(TileState::Running), 7, 10 * SEC);
        let stale = judge(&m, 10 * SEC + 501_000_000, true);
        assert!(matches!(&stale, TileHealth::Dead { why } if why.contains("heartbeat")));
        assert_eq!(judge(&m, 10 * SEC + 499_000_000, true), TileHealth::Running);
        // A heartbeat written after the snapshot's clock read is fresh.
        assert_eq!(judge(&m, 9 * SEC, true), TileHealth::Running);
    }

    #[test]
    fn a_heartbeat_from_the_future_is_corrupt_not_fresh() {
        let m = metrics(Some(TileState::Running), 7, 100 * SEC);
        let h = judge(&m, 10 * SEC, true);
        assert!(
            matches!(&h, TileHealth::Dead { why } if why.starts_with("CORRUPT: its heartbeat")),
            "{h}"
        );
    }

    #[test]
    fn a_dead_pid_alone_means_dead_even_with_a_fresh_heartbeat() {
        let m = metrics(Some(TileState::Running), 7, 10 * SEC);
        assert!(matches!(
            judge(&m, 10 * SEC, false),
            TileHealth::Dead { .. }
        ));
    }

    #[test]
    fn halted_is_believed_whatever_the_pid_and_heartbeat() {
        let m = metrics(Some(TileState::Halted), 7, SEC);
        assert_eq!(judge(&m, 100 * SEC, false), TileHealth::Halted);
    }

    #[test]
    fn booting_never_beat_is_judged_by_pid_only() {
        let m = metrics(Some(TileState::Booting), 7, 0);
        assert_eq!(judge(&m, 100 * SEC, true), TileHealth::Booting);
        assert!(matches!(
            judge(&m, 100 * SEC, false),
            TileHealth::Dead { .. }
        ));
        // Booting again after a run: the old heartbeat counts.
        let m = metrics(Some(TileState::Booting), 7, SEC);
        assert!(matches!(
            judge(&m, 100 * SEC, true),
            TileHealth::Dead { .. }
        ));
        // No pid written yet: mid-creation, not dead.
        let m = metrics(Some(TileState::Booting), 0, 0);
        assert_eq!(judge(&m, 100 * SEC, false), TileHealth::Booting);
    }

    #[test]
    fn an_unknown_state_is_dead() {
        let m = metrics(None, 7, SEC);
        assert!(matches!(judge(&m, SEC, true), TileHealth::Dead { .. }));
    }

    #[test]
    fn pid_alive_knows_this_process_and_not_a_reaped_child() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid), "reaped child {pid} still counts as alive");
    }

    #[test]
    fn workspace_status_follows_creator_and_tiles() {
        let c = |running, halted, dead| HealthCounts {
            booting: 0,
            running,
            halted,
            dead,
        };
        assert_eq!(workspace_status(true, &c(0, 0, 0)), WorkspaceStatus::Live);
        assert_eq!(workspace_status(false, &c(1, 0, 1)), WorkspaceStatus::Live);
        assert_eq!(
            workspace_status(false, &c(0, 2, 0)),
            WorkspaceStatus::Stopped
        );
        assert_eq!(
            workspace_status(false, &c(0, 0, 0)),
            WorkspaceStatus::Stopped
        );
        assert_eq!(
            workspace_status(false, &c(0, 1, 1)),
            WorkspaceStatus::Abandoned
        );
        assert_eq!(c(2, 0, 1).to_string(), "2 running, 1 dead");
        assert_eq!(c(0, 0, 0).to_string(), "none");
    }
}
