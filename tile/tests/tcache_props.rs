//! Properties of the tcache, the dedup tile's cache of recent tags.
//!
//! - Against a model (a queue of the last `depth` distinct tags and a set of
//!   the same tags), for random sequences with many repeats, resets and
//!   re-joins, `insert` and `insert_batch` answer exactly as the model does,
//!   `prefetch` changes nothing, a reader sees the writer's counters after
//!   every operation, and every tag the model holds is found (the map never
//!   loses a tag still in the ring). Scribbling over the map slots that the
//!   ring entries remember changes no answer either: they are checked.
//! - A join over random, truncated, misaligned or scribbled-over bytes
//!   returns an error or a handle that works, never a panic or a hang.
//! - The layout table and the lifecycle errors, pinned.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use tilewire_shmem::{DeleteError, JoinError, NewError, Region, ShmObject};
use tilewire_tile::tcache::{Tcache, TcacheCounters, TcacheParams};

/// Zeroed heap bytes with a 64-aligned start at `off`, room to skew it.
struct Buf {
    bytes: Vec<u8>,
    off: usize,
}

impl Buf {
    fn new(len: usize) -> Buf {
        let bytes = vec![0u8; len + 2 * Tcache::ALIGN];
        let off = bytes.as_ptr().align_offset(Tcache::ALIGN);
        Buf { bytes, off }
    }

    /// `len` bytes starting `skew` bytes past the aligned start.
    fn region(&mut self, skew: usize, len: usize) -> Region<'_> {
        let start = self.off + skew;
        Region::from_mut(&mut self.bytes[start..start + len])
    }

    /// Stores `value` in 64-bit word `word` of the object, as a writer would.
    fn poke(&mut self, word: usize, value: u64) {
        let at = self.off + 8 * word;
        self.bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
    }
}

/// The cache as the module documentation describes it.
struct Model {
    depth: usize,
    order: VecDeque<u64>,
    held: HashSet<u64>,
}

impl Model {
    fn insert(&mut self, tag: u64) -> bool {
        let tag = Tcache::canonical_tag(tag);
        if self.held.contains(&tag) {
            return true;
        }
        if self.order.len() == self.depth {
            let oldest = self.order.pop_front().unwrap();
            self.held.remove(&oldest);
        }
        self.order.push_back(tag);
        self.held.insert(tag);
        false
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    /// `insert_batch` of the tags, with room for `room` answers.
    Batch(Vec<u64>, usize),
    Contains(u64),
    Prefetch(u64),
    /// Overwrite the map slot ring entry `entry % depth` remembers.
    ScribbleSlot(usize, u64),
    Reset,
    Rejoin,
}

fn ops(depth: usize) -> impl Strategy<Value = Vec<Op>> {
    // Tags from a range a few times the depth, so repeats are common both
    // while a tag is held and after it was evicted; 0 and 1 alias.
    let small = 0..(3 * depth as u64 + 2);
    let batch = prop::collection::vec(small.clone(), 0..40);
    let op = prop_oneof![
        12 => small.clone().prop_map(Op::Insert),
        2 => any::<u64>().prop_map(Op::Insert),
        4 => (batch, 0usize..48).prop_map(|(tags, room)| Op::Batch(tags, room)),
        3 => small.clone().prop_map(Op::Contains),
        1 => small.prop_map(Op::Prefetch),
        // Mostly slots in range, sometimes anything.
        1 => (any::<usize>(), prop_oneof![0u64..256, any::<u64>()])
            .prop_map(|(e, v)| Op::ScribbleSlot(e, v)),
        1 => Just(Op::Reset),
        1 => Just(Op::Rejoin),
    ];
    prop::collection::vec(op, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn insert_answers_as_the_model_does(
        (depth, tight, ops) in (1usize..24, any::<bool>())
            .prop_flat_map(|(d, t)| (Just(d), Just(t), ops(d)))
    ) {
        // The tightest legal map (load up to 100%) or the default one.
        let map_cnt = if tight {
            (depth + 1).next_power_of_two()
        } else {
            Tcache::default_map_cnt(depth).unwrap()
        };
        let fp = Tcache::footprint(depth, map_cnt).unwrap();
        let mut buf = Buf::new(fp);
        let mem = buf.region(0, fp);
        Tcache::new(mem, depth, map_cnt).unwrap();
        let mut h = Tcache::join(mem).unwrap();
        let mut model = Model { depth, order: VecDeque::new(), held: HashSet::new() };
        let mut want = TcacheCounters::default();
        for op in ops {
            match op {
                Op::Insert(tag) => {
                    let full = model.order.len() == depth;
                    let dup = model.insert(tag);
                    prop_assert_eq!(h.insert(tag), dup, "insert {}", tag);
                    want.inserts += 1;
                    want.dups += u64::from(dup);
                    want.evictions += u64::from(full && !dup);
                }
                Op::Batch(tags, room) => {
                    // Only the first min(tags, room) tags are answered.
                    let answered = tags.len().min(room);
                    let mut expect = vec![false; room];
                    for (slot, &tag) in expect.iter_mut().zip(&tags[..answered]) {
                        let full = model.order.len() == depth;
                        *slot = model.insert(tag);
                        want.inserts += 1;
                        want.dups += u64::from(*slot);
                        want.evictions += u64::from(full && !*slot);
                    }
                    let mut dups = vec![false; room];
                    let found = h.insert_batch(&tags, &mut dups);
                    prop_assert_eq!(&dups, &expect, "insert_batch {:?}", tags);
                    prop_assert_eq!(found, expect.iter().filter(|&&d| d).count());
                }
                Op::Contains(tag) => {
                    let held = model.held.contains(&Tcache::canonical_tag(tag));
                    prop_assert_eq!(h.contains(tag), held, "contains {}", tag);
                }
                Op::Prefetch(tag) => h.prefetch(tag),
                Op::ScribbleSlot(entry, value) => {
                    let word = 128 + 16 * (entry % depth) + 8;
                    mem.atomic_u64(word).unwrap().store(value, Ordering::Relaxed);
                }
                Op::Reset => {
                    h.reset();
                    model.order.clear();
                    model.held.clear();
                }
                Op::Rejoin => {
                    let mem = Tcache::leave(h);
                    h = Tcache::join(mem).unwrap();
                }
            }
            prop_assert_eq!(h.len(), model.order.len());
            prop_assert_eq!(h.counters(), want);
            // Written through as they change, not at leave.
            prop_assert_eq!(Tcache::join_reader(mem).unwrap().counters(), want);
        }
        for &tag in &model.order {
            prop_assert!(h.contains(tag), "lost {}", tag);
        }
        let reader = Tcache::join_reader(Tcache::leave(h).read_only()).unwrap();
        prop_assert_eq!(reader.counters(), want);
        prop_assert_eq!(reader.depth(), depth);
    }

    #[test]
    fn join_over_random_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        skew in 0usize..16,
        magic_first in any::<bool>(),
    ) {
        let mut buf = Buf::new(bytes.len() + 16);
        let start = buf.off + skew;
        buf.bytes[start..start + bytes.len()].copy_from_slice(&bytes);
        if magic_first && bytes.len() >= 8 {
            buf.bytes[start..start + 8].copy_from_slice(&Tcache::MAGIC.to_ne_bytes());
        }
        exercise(buf.region(skew, bytes.len()));
    }

    #[test]
    fn join_over_a_scribbled_header_or_body_never_panics(
        depth in 0u64..40,
        map_cnt in prop_oneof![(0u32..7).prop_map(|k| 1u64 << k), 0u64..80],
        cursor in 0u64..45,
        fill in 0u64..45,
        body in prop::collection::vec(any::<u64>(), 0..256),
        cut in any::<prop::sample::Index>(),
    ) {
        let len = 128 + 8 * body.len();
        let mut buf = Buf::new(len);
        buf.poke(0, Tcache::MAGIC);
        for (word, value) in [(1, depth), (2, map_cnt), (8, cursor), (9, fill)] {
            buf.poke(word, value);
        }
        for (i, &value) in body.iter().enumerate() {
            buf.poke(16 + i, value);
        }
        exercise(buf.region(0, len));
        // The same object cut short anywhere: an error or a working handle.
        exercise(buf.region(0, cut.index(len + 1)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn scribbling_over_a_live_cache_never_panics(
        (depth, map_cnt) in (1usize..40).prop_flat_map(|d| {
            let tight = (d + 1).next_power_of_two();
            (Just(d), prop_oneof![Just(tight), Just(Tcache::default_map_cnt(d).unwrap())])
        }),
        pokes in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 1..64),
        tags in prop::collection::vec(0u64..200, 0..200),
    ) {
        let fp = Tcache::footprint(depth, map_cnt).unwrap();
        let mut buf = Buf::new(fp);
        let mem = buf.region(0, fp);
        Tcache::new(mem, depth, map_cnt).unwrap();
        let mut h = Tcache::join(mem).unwrap();
        for &tag in &tags {
            h.insert(tag);
        }
        // Another writer (or a stray one) scribbles over any word but the
        // magic while this one holds its handle.
        for (at, value) in pokes {
            let word = 1 + at.index(fp / 8 - 1);
            mem.atomic_u64(8 * word).unwrap().store(value, Ordering::Relaxed);
        }
        let mut dups = vec![false; tags.len()];
        h.insert_batch(&tags, &mut dups);
        for &tag in &tags {
            h.prefetch(tag);
            h.insert(tag ^ 0x55);
            let _ = h.contains(tag);
        }
        prop_assert!(h.len() <= h.depth());
        // A writer joining after the scribble refuses it or works as well.
        exercise(Tcache::leave(h));
    }
}

/// Joins as writer and reader; whatever joins must insert and look up
/// without panicking, hanging or touching memory outside `mem`.
fn exercise(mem: Region<'_>) {
    if let Ok(reader) = Tcache::join_reader(mem) {
        assert!(reader.depth() >= 1);
        let _ = reader.counters();
    }
    if let Ok(mut h) = Tcache::join(mem) {
        assert!(mem.len() >= Tcache::footprint(h.depth(), h.map_cnt()).unwrap());
        for tag in 0..3 * h.depth() as u64 {
            h.prefetch(tag);
            h.insert(tag);
            let _ = h.contains(tag ^ 1);
        }
        let tags: Vec<u64> = (0..2 * h.depth() as u64).map(|t| t * 7).collect();
        let mut dups = vec![false; tags.len()];
        assert!(h.insert_batch(&tags, &mut dups) <= tags.len());
        assert!(h.len() <= h.depth());
    }
}

#[test]
fn layout_table() {
    assert_eq!(Tcache::ALIGN, 64);
    assert_eq!(<Tcache as ShmObject>::ALIGN, 64);
    assert_eq!(Tcache::MAGIC.to_be_bytes(), *b"tw.tcch\x02");
    assert_eq!(<Tcache as ShmObject>::KIND, "tcache");
    // (depth, map_cnt) -> footprint: 128 header, ring of 16-byte entries
    // padded to 64, map of 8-byte slots.
    for (depth, map_cnt, fp) in [
        (1, 2, 128 + 64 + 64),
        (3, 4, 128 + 64 + 64),
        (4, 8, 128 + 64 + 64),
        (8, 16, 128 + 128 + 128),
        (9, 16, 128 + 192 + 128),
        (1000, 2048, 128 + 16000 + 16384),
    ] {
        assert_eq!(
            Tcache::footprint(depth, map_cnt),
            Some(fp),
            "{depth} {map_cnt}"
        );
        let params = TcacheParams { depth, map_cnt };
        assert_eq!(<Tcache as ShmObject>::footprint(&params), Some(fp));
    }
    for (depth, map_cnt) in [(0, 2), (4, 4), (4, 6), (4, 0), (usize::MAX / 8, 1 << 62)] {
        assert_eq!(Tcache::footprint(depth, map_cnt), None, "{depth} {map_cnt}");
    }
    // A load of at most 1/4 while the map is at most 2^17 slots, 1/2 above.
    assert_eq!(Tcache::SMALL_MAP_SLOTS, 1 << 17);
    assert_eq!(Tcache::default_map_cnt(1), Some(4));
    assert_eq!(Tcache::default_map_cnt(1000), Some(4096));
    assert_eq!(Tcache::default_map_cnt(1024), Some(4096));
    assert_eq!(Tcache::default_map_cnt(1 << 14), Some(1 << 16));
    assert_eq!(Tcache::default_map_cnt(1 << 15), Some(1 << 17));
    assert_eq!(Tcache::default_map_cnt((1 << 15) + 1), Some(1 << 17));
    assert_eq!(Tcache::default_map_cnt(1 << 16), Some(1 << 17));
    assert_eq!(Tcache::default_map_cnt(1 << 20), Some(1 << 21));
    assert_eq!(Tcache::default_map_cnt(usize::MAX / 4 + 1), Some(1 << 63));
    assert_eq!(Tcache::default_map_cnt(0), None);
    assert_eq!(Tcache::default_map_cnt(usize::MAX / 2 + 1), None);
    assert_eq!(Tcache::canonical_tag(0), 1);
    assert_eq!(Tcache::canonical_tag(1), 1);
    assert_eq!(Tcache::canonical_tag(u64::MAX), u64::MAX);
}

#[test]
fn lifecycle_and_its_errors() {
    let fp = Tcache::footprint(4, 8).unwrap();
    let mut buf = Buf::new(fp + 64);
    assert_eq!(
        Tcache::new(buf.region(0, fp), 4, 4),
        Err(NewError::BadParams {
            what: "map_cnt is not greater than depth"
        })
    );
    assert!(matches!(
        Tcache::new(buf.region(8, fp), 4, 8),
        Err(NewError::Misaligned { align: 64, .. })
    ));
    assert_eq!(
        Tcache::new(buf.region(0, fp - 1), 4, 8),
        Err(NewError::TooSmall {
            len: fp - 1,
            need: fp
        })
    );
    let mem = buf.region(0, fp);
    assert_eq!(Tcache::new(mem.read_only(), 4, 8), Err(NewError::ReadOnly));
    assert_eq!(Tcache::join(mem).unwrap_err(), JoinError::NotInitialized);

    Tcache::new(mem, 4, 8).unwrap();
    assert!(matches!(
        Tcache::join(mem.read_only()),
        Err(JoinError::BadParams { kind: "tcache", .. })
    ));
    let mut h = Tcache::join(mem).unwrap();
    assert_eq!((h.depth(), h.map_cnt(), h.len()), (4, 8, 0));
    assert!(!h.insert(0), "0 is stored as 1");
    assert!(h.insert(1), "and 1 is the same tag");
    for tag in 2..=5 {
        assert!(!h.insert(tag));
    }
    assert!(!h.contains(1), "the oldest was evicted");
    assert!(h.contains(2) && h.contains(5) && h.len() == 4);
    // A writer that joins again resumes: same cursor, same contents.
    let mem = Tcache::leave(h);
    let mut h = Tcache::join(mem).unwrap();
    assert!(!h.insert(6));
    assert!(!h.contains(2) && h.contains(3) && h.contains(6));
    let want = TcacheCounters {
        inserts: 7,
        dups: 1,
        evictions: 2,
    };
    assert_eq!(h.counters(), want);
    h.reset();
    assert!(h.is_empty() && !h.contains(3));
    assert_eq!(h.counters(), want, "reset keeps the counters");
    let reader = Tcache::join_reader(Tcache::leave(h).read_only()).unwrap();
    assert_eq!((reader.depth(), reader.counters()), (4, want));
    assert_eq!(Tcache::leave_reader(reader).len(), fp);

    assert_eq!(Tcache::delete(mem.read_only()), Err(DeleteError::ReadOnly));
    Tcache::delete(mem).unwrap();
    assert_eq!(Tcache::join(mem).unwrap_err(), JoinError::NotInitialized);
    assert_eq!(
        Tcache::delete(mem),
        Err(DeleteError::Join(JoinError::NotInitialized))
    );
}

#[test]
fn bad_headers_are_named() {
    let fp = Tcache::footprint(4, 8).unwrap();
    let mut buf = Buf::new(fp);
    Tcache::new(buf.region(0, fp), 4, 8).unwrap();
    let bad = |buf: &mut Buf| match Tcache::join(buf.region(0, fp)) {
        Err(JoinError::BadParams { what, .. }) => what,
        other => panic!("expected BadParams, got {other:?}"),
    };
    buf.poke(8, 4);
    assert_eq!(bad(&mut buf), "cursor is not below depth");
    assert!(
        Tcache::join_reader(buf.region(0, fp)).is_ok(),
        "readers skip it"
    );
    buf.poke(8, 0);
    buf.poke(9, 5);
    assert_eq!(bad(&mut buf), "fill is greater than depth");
    buf.poke(9, 0);
    buf.poke(2, 12);
    assert_eq!(bad(&mut buf), "map_cnt is not a power of two");
    buf.poke(2, 8);
    buf.poke(1, 0);
    assert_eq!(bad(&mut buf), "depth is 0");
    buf.poke(1, 4);
    buf.poke(2, 16);
    assert_eq!(
        Tcache::join(buf.region(0, fp)).unwrap_err(),
        JoinError::TooSmall {
            len: fp,
            need: Tcache::footprint(4, 16).unwrap()
        }
    );
    buf.poke(2, 8);
    assert_eq!(
        Tcache::join(buf.region(0, 100)).unwrap_err(),
        JoinError::TooSmall {
            len: 100,
            need: 128
        }
    );
    // Version 1 (a ring of bare tags, a map probed slot by slot) is refused.
    buf.poke(0, tilewire_shmem::object::magic(b"tw.tcch", 1));
    assert!(matches!(
        Tcache::join(buf.region(0, fp)),
        Err(JoinError::BadVersion {
            found: 1,
            expected: 2,
            ..
        })
    ));
    buf.poke(0, tilewire_shmem::object::magic(b"tw.mcch", 1));
    assert!(matches!(
        Tcache::join(buf.region(0, fp)),
        Err(JoinError::BadMagic { .. })
    ));
}

#[test]
fn a_map_with_no_empty_slot_gives_wrong_answers_not_hangs() {
    let fp = Tcache::footprint(3, 4).unwrap();
    let mut buf = Buf::new(fp);
    Tcache::new(buf.region(0, fp), 3, 4).unwrap();
    // The map starts after the header (16 words) and the ring (8 words).
    for slot in 0..4 {
        buf.poke(24 + slot, 100 + slot as u64);
    }
    let mut h = Tcache::join(buf.region(0, fp)).unwrap();
    for tag in 0..20 {
        h.insert(tag);
        let _ = h.contains(tag);
    }
    h.reset();
    assert!(!h.insert(5));
    assert!(h.insert(5));
}
