//! The runner's account of a run: each tile's counters carried over its
//! restarts, and the [`RunReport`] read from the workspace.

use tilewire_tile::link::fseq::{
    DIAG_BAD_CNT, DIAG_CORRUPT_CNT, DIAG_FILT_CNT, DIAG_OVRNP_FRAGS, DIAG_OVRNR_CNT, DIAG_PUB_CNT,
};
use tilewire_tile::link::Link;
use tilewire_tile::stem::metrics::TileState;

use super::report::{ConsumerReport, LinkReport, RunReport, TileReport};
use super::supervisor::Supervisor;

use crate::run::tile_metrics;

/// Adds `more` into `into`, counter by counter (by name).
fn add_counters(into: &mut Vec<(String, u64)>, more: &[(String, u64)]) {
    for (name, v) in more {
        match into.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total = total.wrapping_add(*v),
            None => into.push((name.clone(), *v)),
        }
    }
}

impl Supervisor {
    /// Adds what the tiles of unit `u` counted in the boot that just ended
    /// to what they counted before; called as its process is restarted.
    pub(super) fn carry_counters(&mut self, u: usize) {
        for t in self.units[u].group.tiles.clone() {
            if let Some(m) = tile_metrics(&self.ws, self.name(t)) {
                let now = m.snapshot().counters;
                add_counters(&mut self.carried[t], &now);
            }
        }
    }

    /// The report of the run so far.
    pub(super) fn report(&self) -> RunReport {
        let ws = &self.ws;
        let tiles = self
            .topo
            .tiles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let snap = tile_metrics(ws, &t.name).map(|m| m.snapshot());
                let mut counters = self.carried[i].clone();
                if let Some(s) = &snap {
                    add_counters(&mut counters, &s.counters);
                }
                TileReport {
                    name: t.name.clone(),
                    kind: t.kind().to_owned(),
                    boots: snap.as_ref().map_or(0, |s| s.boots),
                    counters,
                    halted: snap.is_some_and(|s| s.state == Some(TileState::Halted)),
                }
            })
            .collect();
        let links = self
            .topo
            .links
            .iter()
            .filter_map(|l| {
                let link = Link::join(ws, &l.name).ok()?;
                let mc = link.mcache();
                let next = mc.published_next();
                let depth = link.depth();
                let consumers = self
                    .topo
                    .consumers(&l.name)
                    .iter()
                    .zip(link.fseqs())
                    .map(|((t, _), f)| {
                        let behind = next.wrapping_sub(f.query()) as i64;
                        ConsumerReport {
                            tile: t.name.clone(),
                            reliable: f.reliable(),
                            consumed: f.diag(DIAG_PUB_CNT),
                            filtered: f.diag(DIAG_FILT_CNT),
                            lost: f.diag(DIAG_OVRNP_FRAGS),
                            torn: f.diag(DIAG_OVRNR_CNT),
                            bad: f.diag(DIAG_BAD_CNT),
                            corrupt: f.diag(DIAG_CORRUPT_CNT),
                            unread: (behind.max(0) as u64).min(depth),
                        }
                    })
                    .collect();
                Some(LinkReport {
                    name: l.name.clone(),
                    depth,
                    published: next.wrapping_sub(mc.seq0()),
                    consumers,
                })
            })
            .collect();
        RunReport {
            tiles,
            links,
            restarts: self.restarts.clone(),
        }
    }
}
