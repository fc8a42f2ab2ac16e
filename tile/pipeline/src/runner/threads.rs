//! Threads mode: each group of tiles a thread of the runner's process.

use std::sync::Arc;

use tilewire_tile::stem::MemberEnd;

use super::failure::TileFailure;
use super::supervisor::{Handle, Outcome, Supervisor, Unit};

use crate::run::{run_group, run_tile};
use crate::topo::TileGroup;
use crate::workspace;

impl Supervisor {
    pub(super) fn spawn_threads(&mut self, layout: Vec<TileGroup>) {
        for group in layout {
            let (ws_name, topo, stem, outcomes, g) = (
                self.ws.name().to_owned(),
                Arc::clone(&self.topo),
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
                ended_for: None,
            });
        }
    }
}
