//! Processes mode: each group of tiles a process of the runner's own
//! binary, restarted when its policy says so, its stderr relayed.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{ChildStderr, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::failure::TileFailure;
use super::supervisor::{Handle, Supervisor, Unit};
use super::tile_process::{PARENT_ENV, STEM_ENV, TILE_ENV};

use crate::topo::{Restart, TileGroup, RESTART_LIMIT, RESTART_WINDOW};

impl Supervisor {
    pub(super) fn spawn_processes(&mut self, layout: Vec<TileGroup>) {
        for group in layout {
            self.units.push(Unit {
                group,
                handle: Handle::Ended,
                restarts: Vec::new(),
                ended_for: None,
            });
            let u = self.units.len() - 1;
            self.units[u].handle = self.spawn_process(u);
        }
    }

    /// Starts the process of unit `u` (this program again, told which
    /// tile or group it is), or records why it could not.
    pub(super) fn spawn_process(&mut self, u: usize) -> Handle {
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
            .env(TILE_ENV, format!("{}/{name}", self.ws.name()))
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
    pub(super) fn restart_at(&mut self, u: usize, label: &str) -> Option<Instant> {
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
}

/// Passes each line tile `tile`'s process writes to stderr on to this
/// process's stderr, as `[tile] line`, so the runner's output says which
/// tile wrote what. `None` if no thread could be started (the lines are
/// lost then, the tile is not).
pub(super) fn relay_stderr(tile: &str, err: ChildStderr) -> Option<JoinHandle<()>> {
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
