//! [`Ledger`]: which input frags a forwarding tile's output still points at.
//!
//! # Forwarding
//!
//! A tile that passes a frag on unchanged need not copy its payload: it
//! can publish on its output a frag whose chunk is the input frag's chunk,
//! in the input link's dcache (or UMEM). The bytes then stay where they
//! were first written, and the readers of the output read them there.
//!
//! What makes that safe is credits flowing back along the chain. The
//! input's producer reuses a chunk only once every reliable consumer of
//! the input passed the frag it held (see [`crate::link`]), and the
//! forwarding tile is such a consumer. So the forwarding tile must not say
//! it passed an input frag while a reader of its output may still read
//! that frag's bytes: its published progress on the input stops at the
//! oldest input frag whose forwarded copy some output reader has not
//! passed yet. The ledger is how it knows which that is: one entry per
//! frag forwarded, the output seq it went out as and the input seq it came
//! from, in publish order; the output readers' progress retires entries
//! from the front, and the front is the oldest input frag still pointed
//! at.
//!
//! Only a reliable output can be read this way: an unreliable reader does
//! not hold the producer back, so a forwarding tile cannot know when it
//! passed a frag, and its frags are copied instead (once, straight from
//! the input's bytes into the output's dcache). Likewise only a reliable
//! input can be forwarded from: an unreliable input's producer never waits
//! for its reader, so nothing would keep the bytes.
//!
//! The ledger lives in the forwarding tile's own memory: if the tile dies,
//! its successor starts from the progress the dead tile published, which
//! never passed a frag still pointed at, and holds that progress until the
//! output's readers passed everything on the output when it started
//! ([`Ledger::barrier`]).

use tilewire_shmem::Workspace;

use crate::link::dcache::{DCache, DCacheHandle};
use crate::link::frag::seq_diff;

/// Every link dcache (and UMEM) of `ws`: the places a forwarded frag's
/// chunk may lie in, for [`Consumer::accept_chunks_of`]. A consumer that
/// accepts them all takes any frag whose bytes lie inside some link's
/// payload arena, and still refuses (counts as bad, skips unread) one that
/// points anywhere else. Allocations named like a dcache that do not join
/// as one are left out.
///
/// [`Consumer::accept_chunks_of`]: crate::link::Consumer::accept_chunks_of
pub fn forward_sources(ws: &Workspace) -> Vec<DCacheHandle<'_>> {
    ws.allocations()
        .iter()
        .filter(|a| a.name.as_deref().is_some_and(|n| n.ends_with(".dc")))
        .filter_map(|a| {
            let mem = ws.region(a.gaddr, usize::try_from(a.size).ok()?).ok()?;
            DCache::join(mem, a.gaddr).ok()
        })
        .collect()
}

/// The input frags a tile forwarded on one output from one input, that the
/// output's readers may not have passed yet (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Ledger {
    /// `(output seq, input seq)` in publish order, a ring of `cap`.
    entries: Box<[(u64, u64)]>,
    head: usize,
    len: usize,
}

impl Ledger {
    /// An empty ledger for an output of `depth` frags: no more than that
    /// many forwarded frags can be unread by a reliable reader.
    pub fn new(depth: u64) -> Ledger {
        let cap = usize::try_from(depth)
            .unwrap_or(usize::MAX)
            .clamp(1, 1 << 24)
            + 1;
        Ledger {
            entries: vec![(0, 0); cap].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// The most frags it holds entries for (the depth it was made for).
    pub fn capacity(&self) -> u64 {
        self.entries.len() as u64 - 1
    }

    /// Entries not yet retired.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no forwarded frag may still be read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Notes that input frag `input_seq` went out as output frag
    /// `output_seq`. Seqs come in publish order on both sides.
    ///
    /// A ledger that is full (a caller that forwarded more frags than the
    /// output's depth without retiring any: its readers' progress is not
    /// what it says) drops its oldest entry: the hold then moves on with
    /// the output's own back-pressure, which bounds the output to `depth`
    /// frags in flight anyway.
    #[inline]
    pub fn push(&mut self, output_seq: u64, input_seq: u64) {
        let cap = self.entries.len();
        if self.len == cap {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        let at = (self.head + self.len) % cap;
        self.entries[at] = (output_seq, input_seq);
        self.len += 1;
    }

    /// Holds input progress at `input_seq` until the output's readers
    /// passed `output_seq`: what a restarted forwarding tile notes for the
    /// frags its predecessor may have forwarded (see the [module
    /// docs](self)). `output_seq` is the output's seq when the tile
    /// started, `input_seq` the input's.
    pub fn barrier(&mut self, output_seq: u64, input_seq: u64) {
        self.push(output_seq.wrapping_sub(1), input_seq);
    }

    /// Retires every entry the output's readers passed (their slowest
    /// progress is `progress`: the next seq it will read), and returns the
    /// oldest input seq still pointed at, if any.
    #[inline]
    pub fn retire(&mut self, progress: u64) -> Option<u64> {
        let cap = self.entries.len();
        while self.len != 0 {
            let (out, input) = self.entries[self.head];
            if seq_diff(out, progress) >= 0 {
                return Some(input);
            }
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        None
    }

    /// The oldest input seq still pointed at, as of the last
    /// [`Ledger::retire`].
    pub fn oldest(&self) -> Option<u64> {
        (self.len != 0).then(|| self.entries[self.head].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_is_the_oldest_input_frag_an_unread_output_frag_points_at() {
        let mut l = Ledger::new(8);
        assert_eq!(l.retire(0), None);
        // Input frags 10, 11 and 13 went out as output frags 0, 1 and 2
        // (12 was dropped by the tile).
        l.push(0, 10);
        l.push(1, 11);
        l.push(2, 13);
        assert_eq!(l.retire(0), Some(10));
        assert_eq!(l.retire(1), Some(11));
        assert_eq!(l.oldest(), Some(11));
        assert_eq!(l.retire(2), Some(13));
        assert_eq!(l.len(), 1);
        assert_eq!(l.retire(3), None);
        assert!(l.is_empty());
    }

    #[test]
    fn seqs_wrap() {
        let mut l = Ledger::new(4);
        l.push(u64::MAX, u64::MAX - 5);
        l.push(0, u64::MAX - 4);
        assert_eq!(l.retire(u64::MAX), Some(u64::MAX - 5));
        assert_eq!(l.retire(0), Some(u64::MAX - 4));
        assert_eq!(l.retire(1), None);
    }

    #[test]
    fn a_barrier_holds_until_the_output_passed_what_was_there_at_start() {
        let mut l = Ledger::new(4);
        l.barrier(100, 7);
        assert_eq!(l.retire(50), Some(7));
        assert_eq!(l.retire(99), Some(7));
        assert_eq!(l.retire(100), None);
    }

    #[test]
    fn a_full_ledger_drops_its_oldest_entry_and_never_panics() {
        let mut l = Ledger::new(2);
        for i in 0..10 {
            l.push(i, 100 + i);
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.retire(0), Some(107));
    }
}
