//! A corrupt shared word under a restart policy: the tile whose word it
//! is, or that read it, is restarted instead of the run ending.
//!
//! Which tile, and what is reset:
//!
//! - a consumer's progress past its producer ([`TileFailure::Corrupt`]):
//!   the word is the consumer's. The runner kills the consumer's process,
//!   sets its progress back to the oldest frag its producer's ring still
//!   holds (a reliable producer stalled on the corrupt word, so the ring
//!   holds every frag the consumer had not read: the successor reads some
//!   again and loses none), and lets the restart policy start it again;
//! - ring lines holding a seq no producer puts there
//!   ([`TileFailure::CorruptLines`]) and frags outside their dcache
//!   ([`TileFailure::BadChunks`]): the reader skipped and counted them
//!   (never delivered); it is restarted, its counts stay.
//!
//! The restart is listed in the run's report with the corrupt word as its
//! cause. Only a tile in processes mode whose policy is `on-failure` is
//! restarted this way; past the policy's limit, or otherwise, the
//! corruption ends the run as before.

use tilewire_tile::link::Link;

use super::failure::TileFailure;
use super::supervisor::{Handle, Supervisor};

use crate::topo::{Mode, Restart};

impl Supervisor {
    /// Restarts the tile that corruption `f` concerns if its policy says
    /// so (see the [module docs](self)); true if it did.
    pub(super) fn restart_for_corruption(&mut self, f: &TileFailure) -> bool {
        if self.topo.workspace.mode != Mode::Processes || self.stopped {
            return false;
        }
        let (tile, link, reset) = match f {
            TileFailure::Corrupt { link, what, .. } => {
                let consumers = self.topo.consumers(link);
                let Some((t, _)) = consumers.get(what.consumer) else {
                    return false;
                };
                (t.name.clone(), link.clone(), Some(what.consumer))
            }
            TileFailure::CorruptLines { tile, link, .. }
            | TileFailure::BadChunks { tile, link, .. } => (tile.clone(), link.clone(), None),
            _ => return false,
        };
        let Some(i) = self.topo.tiles.iter().position(|t| t.name == tile) else {
            return false;
        };
        let u = self.unit_of[i];
        if self.units[u].group.restart != Restart::OnFailure {
            return false;
        }
        if self.units[u].ended_for.is_some()
            || matches!(self.units[u].handle, Handle::Restarting(_))
        {
            // Ended for a corrupt word already and not started again yet:
            // what was read meanwhile is the same corruption.
            return true;
        }
        let Handle::Process(child, _) = &mut self.units[u].handle else {
            return false;
        };
        // Ended before the reset, so it cannot write its word again.
        let _ = child.kill();
        let _ = child.wait();
        if let Some(index) = reset {
            let Ok(l) = Link::join(&self.ws, &link) else {
                return false;
            };
            let mc = l.mcache();
            let (next, seq0) = (mc.seq_query(), mc.seq0());
            let oldest = if next.wrapping_sub(seq0) < l.depth() {
                seq0
            } else {
                next.wrapping_sub(l.depth())
            };
            if let Some(fseq) = l.fseqs().get(index) {
                fseq.update(oldest);
            }
        }
        let cause = match f {
            TileFailure::Corrupt { what, .. } => {
                format!("corrupt shared word: on link {link:?}, {what}; its progress was set back to the oldest frag on the ring")
            }
            TileFailure::CorruptLines { frags, .. } => {
                format!("corrupt shared words: {frags} lines of link {link:?} held a seq no producer puts there (skipped, counted)")
            }
            _ => format!("corrupt shared words: frags of link {link:?} pointed outside its dcache (refused, counted)"),
        };
        tracing::warn!(tile = %tile, "{cause}; restarting the tile under its policy");
        self.units[u].ended_for = Some(cause);
        true
    }
}
