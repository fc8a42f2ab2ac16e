//! Asking now and remembering later with one probe of the map:
//! [`TcacheHandle::lookup`] and [`TcacheHandle::commit`].
//!
//! A dedup tile asks whether a tag is known, passes the packet on, and
//! only then remembers the tag (so a tile killed in between has not
//! remembered a packet it never passed on). Two calls,
//! [`contains`](TcacheHandle::contains) then
//! [`insert`](TcacheHandle::insert), probe the map twice for the same
//! tag; [`lookup`](TcacheHandle::lookup) keeps what its probe found in an
//! [`Absent`], and [`commit`](TcacheHandle::commit) inserts from there.
//! The map has one writer, so nothing changes it between the two calls
//! unless that writer does: an `Absent` remembers the handle's epoch, and
//! a commit after any other insert or a reset probes again, as `insert`
//! would.

use super::map::Absent;
use super::{Probe, Tcache, TcacheHandle};

impl TcacheHandle<'_> {
    /// `None` if `tag` (after [`Tcache::canonical_tag`]) is in the cache,
    /// else an [`Absent`] to [`commit`](Self::commit) when the tag is to
    /// be remembered. Changes nothing (the counters neither: a lookup is
    /// not an insert).
    #[inline]
    pub fn lookup(&self, tag: u64) -> Option<Absent> {
        // Before the probe, as `insert` does, so the two misses overlap.
        self.touch_evictee();
        let tag = Tcache::canonical_tag(tag);
        let vacant = match self.map.probe(tag) {
            Probe::Found { .. } => return None,
            Probe::Vacant(slot) => Some(slot),
            Probe::Full => None,
        };
        Some(Absent {
            tag,
            vacant,
            epoch: self.epoch,
        })
    }

    /// Remembers the tag of `absent`, exactly as [`insert`](Self::insert)
    /// would now, and returns what `insert` would (true if the tag is
    /// present after all: committed twice, or inserted in between). With
    /// no change to the cache since the lookup, the map is not probed
    /// again.
    #[inline]
    pub fn commit(&mut self, absent: Absent) -> bool {
        if absent.epoch != self.epoch {
            return self.insert_canonical(absent.tag);
        }
        let probe = match absent.vacant {
            Some(slot) => Probe::Vacant(slot),
            None => Probe::Full,
        };
        self.insert_probed(absent.tag, probe)
    }
}

#[cfg(test)]
mod tests {
    use crate::tcache::{Tcache, TcacheHandle, TCACHE_ALIGN};
    use proptest::prelude::*;
    use std::collections::{HashSet, VecDeque};
    use tilewire_shmem::Region;

    fn with_cache<R>(depth: usize, f: impl FnOnce(TcacheHandle<'_>) -> R) -> R {
        let map_cnt = Tcache::default_map_cnt(depth).unwrap();
        let fp = Tcache::footprint(depth, map_cnt).unwrap();
        let mut buf = vec![0u8; fp + TCACHE_ALIGN];
        let off = buf.as_ptr().align_offset(TCACHE_ALIGN);
        let mem = Region::from_mut(&mut buf[off..off + fp]);
        Tcache::new(mem, depth, map_cnt).unwrap();
        f(Tcache::join(mem).unwrap())
    }

    #[test]
    fn a_lookup_then_commit_is_an_insert() {
        with_cache(4, |mut c| {
            let a = c.lookup(7).expect("absent");
            assert!(!c.commit(a), "new");
            assert_eq!(c.lookup(7), None, "remembered");
            assert!(c.contains(7));
            assert_eq!(c.counters().inserts, 1);
            // A stale Absent (another insert ran) probes again.
            let stale = c.lookup(9).unwrap();
            assert!(!c.insert(9));
            assert!(c.commit(stale), "present after all");
            assert_eq!(c.len(), 2);
            // And after a reset.
            let before = c.lookup(11).unwrap();
            c.reset();
            assert!(!c.commit(before));
            assert!(c.contains(11) && !c.contains(7));
        });
    }

    proptest! {
        /// Any mix of inserts, lookups committed at once, lookups
        /// committed after other operations (stale), and resets gives what
        /// a set with a FIFO of `depth` does.
        #[test]
        fn lookup_and_commit_match_a_model(
            depth in 1usize..12,
            ops in proptest::collection::vec((0u8..4, 1u64..24), 0..400),
        ) {
            with_cache(depth, |mut c| {
                let mut set = HashSet::new();
                let mut fifo = VecDeque::new();
                let model_insert = |tag: u64, set: &mut HashSet<u64>, fifo: &mut VecDeque<u64>| {
                    if set.contains(&tag) {
                        return true;
                    }
                    if fifo.len() == depth {
                        set.remove(&fifo.pop_front().unwrap());
                    }
                    fifo.push_back(tag);
                    set.insert(tag);
                    false
                };
                let mut held = None;
                for (op, tag) in ops {
                    match op {
                        0 => {
                            let want = model_insert(tag, &mut set, &mut fifo);
                            prop_assert_eq!(c.insert(tag), want);
                        }
                        1 => match c.lookup(tag) {
                            None => prop_assert!(set.contains(&tag)),
                            Some(a) => {
                                prop_assert!(!set.contains(&tag));
                                let want = model_insert(tag, &mut set, &mut fifo);
                                prop_assert_eq!(c.commit(a), want);
                            }
                        },
                        2 => {
                            if let Some((a, t)) = held.take() {
                                let want = model_insert(t, &mut set, &mut fifo);
                                prop_assert_eq!(c.commit(a), want);
                            } else if let Some(a) = c.lookup(tag) {
                                held = Some((a, tag));
                            }
                        }
                        _ => {
                            if tag % 8 == 0 {
                                c.reset();
                                set.clear();
                                fifo.clear();
                            }
                        }
                    }
                    prop_assert_eq!(c.len(), set.len());
                }
                for t in 1..24 {
                    prop_assert_eq!(c.contains(t), set.contains(&t), "tag {}", t);
                }
                Ok(())
            })?;
        }
    }
}
