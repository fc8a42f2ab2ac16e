//! [`Tcache`]: a dedup cache of 64-bit tags in shared memory.
//!
//! # What it is for
//!
//! The dedup tile drops a packet it has seen recently: it hashes each
//! payload to a 64-bit *tag* and asks the cache "seen it?"; if not, the cache
//! remembers the tag. Memory is bounded: the cache holds the last `depth`
//! distinct tags inserted and forgets the oldest when a new one arrives. A
//! duplicate does not refresh its age: first in, first out.
//!
//! # Layout
//!
//! Two structures over the same tags, both arrays of 64-bit words after a
//! two-line header (static fields, then live cursor, fill and counters):
//!
//! - a *ring* of `depth` slots in insertion order with a cursor at the
//!   oldest; a new tag overwrites the slot under the cursor (evicting what
//!   was there) and advances it;
//! - an open-addressed *map* of `map_cnt` slots (a power of two, more than
//!   `depth`), probed linearly from a slot picked by Fibonacci hashing
//!   (multiply by 2^64/φ, keep the high bits) so that even sequential tags
//!   spread. An evicted tag leaves the map by *backward shift*: later members
//!   of its probe run move back into the hole, so there are no tombstones
//!   and runs do not grow with age. The map holds at most `depth < map_cnt`
//!   tags, so an empty slot always ends a probe.
//!
//! # The null tag
//!
//! A slot holding 0 is empty, so 0 cannot be a tag. Rather than refuse it,
//! every method treats tag 0 as tag 1 ([`Tcache::canonical_tag`]). For tags
//! that are hashes this aliases one value in 2^64 with another, which is
//! harmless; a caller for whom it is not must keep its tags away from 0 and
//! 1 itself.
//!
//! # Who may touch it
//!
//! One writer (the dedup tile) joins with [`Tcache::join`]; it caches the
//! cursor and fill in its handle and writes them through, so a later writer
//! resumes where it stopped. A monitor joins with [`Tcache::join_reader`]
//! (read-only mappings welcome) and reads counters only: a backward shift in
//! progress would make a concurrent lookup miss. With one writer every
//! access can be, and is, Relaxed: nothing is published through the ring or
//! map, and counters are independent statistics, bumped with a load and a
//! store. Nothing enforces "one writer"; two would corrupt the contents,
//! never memory safety: every index is masked or bounded and every probe
//! stops after `map_cnt` steps, so scribbled-over memory gives wrong
//! answers, never a hang, a panic or an access outside the object.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{DeleteError, JoinError, NewError, Region, ShmObject};

const KIND: &str = "tcache";
const TCACHE_MAGIC: u64 = magic(b"tw.tcch", 1);
const TCACHE_ALIGN: usize = 64;
/// Header bytes: line 0 static fields, line 1 live fields.
const HDR_BYTES: usize = 128;
const HDR_WORDS: usize = HDR_BYTES / 8;
// Word indices in the header.
const W_DEPTH: usize = 1;
const W_MAP_CNT: usize = 2;
const W_CURSOR: usize = 8;
const W_FILL: usize = 9;
const W_INSERTS: usize = 10;
const W_DUPS: usize = 11;
const W_EVICTIONS: usize = 12;
/// 2^64 / φ, odd: Fibonacci hashing.
const FIB: u64 = 0x9e37_79b9_7f4a_7c15;

/// Parameters of a [`Tcache`], for [`ShmObject::footprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcacheParams {
    /// How many distinct tags the cache remembers.
    pub depth: usize,
    /// Slots in the hash map: a power of two greater than `depth`, such as
    /// [`Tcache::default_map_cnt`].
    pub map_cnt: usize,
}

/// The counters a tcache keeps, as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcacheCounters {
    /// Calls to [`TcacheHandle::insert`].
    pub inserts: u64,
    /// Inserts that found the tag already present.
    pub dups: u64,
    /// Tags pushed out of a full cache by newer ones.
    pub evictions: u64,
}

/// The tag cache over caller memory; a namespace for its verbs. See the
/// [module documentation](self).
#[derive(Debug)]
pub enum Tcache {}

/// Why `(depth, map_cnt)` cannot make a tcache, if they cannot.
fn check_params(depth: usize, map_cnt: usize) -> Result<usize, &'static str> {
    if depth == 0 {
        return Err("depth is 0");
    }
    if !map_cnt.is_power_of_two() {
        return Err("map_cnt is not a power of two");
    }
    if map_cnt <= depth {
        return Err("map_cnt is not greater than depth");
    }
    map_offset(depth)
        .and_then(|n| n.checked_add(map_cnt.checked_mul(8)?))
        .and_then(|n| n.checked_next_multiple_of(TCACHE_ALIGN))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or("footprint overflows")
}

/// Where the map starts: after the header and the ring, on a cache line.
fn map_offset(depth: usize) -> Option<usize> {
    HDR_BYTES.checked_add(
        depth
            .checked_mul(8)?
            .checked_next_multiple_of(TCACHE_ALIGN)?,
    )
}

/// A tcache's header, ring and map words.
type Words<'a> = (&'a [AtomicU64], &'a [AtomicU64], &'a [AtomicU64]);

/// The words of a tcache at `mem`; `None` if `mem` is too short or
/// misaligned (callers have checked both already).
fn words<'a>(mem: &Region<'a>, depth: usize, map_cnt: usize) -> Option<Words<'a>> {
    Some((
        mem.atomic_u64s(0, HDR_WORDS)?,
        mem.atomic_u64s(HDR_BYTES, depth)?,
        mem.atomic_u64s(map_offset(depth)?, map_cnt)?,
    ))
}

impl Tcache {
    /// The versioned magic in the first eight bytes.
    pub const MAGIC: u64 = TCACHE_MAGIC;
    /// Required alignment of the object's memory (one cache line).
    pub const ALIGN: usize = TCACHE_ALIGN;
    /// The reserved empty tag; [`Tcache::canonical_tag`] maps it to 1.
    pub const NULL_TAG: u64 = 0;

    /// The tag the cache stores for `tag`: `tag` itself, except 0 (the
    /// empty marker), which becomes 1. Every method applies this, so
    /// callers need not; it is public so a model of the cache can.
    #[inline]
    pub const fn canonical_tag(tag: u64) -> u64 {
        tag | (tag == Self::NULL_TAG) as u64
    }

    /// The default map size for `depth`: `2 * depth` rounded up to a power
    /// of two, a load factor of at most 1/2 (about 1.5 probes per hit, 2.5
    /// per miss with linear probing). `None` if `depth` is 0 or overflows.
    pub fn default_map_cnt(depth: usize) -> Option<usize> {
        if depth == 0 {
            return None;
        }
        depth.checked_mul(2)?.checked_next_power_of_two()
    }

    /// Bytes needed for a tcache of `depth` tags and `map_cnt` map slots (a
    /// multiple of [`Tcache::ALIGN`]): a 128-byte header, the ring padded
    /// to a cache line, then the map.
    ///
    /// `None` if `depth` is 0, `map_cnt` is not a power of two or not
    /// greater than `depth`, or the size overflows.
    pub fn footprint(depth: usize, map_cnt: usize) -> Option<usize> {
        check_params(depth, map_cnt).ok()
    }

    /// Formats `mem` as an empty tcache of `depth` tags and `map_cnt` map
    /// slots. Zeroes the magic first (a joiner racing with `new` over an old
    /// object fails instead of seeing half-written fields), writes every
    /// field, and publishes the magic last with Release ordering.
    ///
    /// # Errors
    /// [`NewError::BadParams`] if [`Tcache::footprint`] is `None`;
    /// [`NewError::ReadOnly`], [`NewError::Misaligned`] (see
    /// [`Tcache::ALIGN`]), [`NewError::TooSmall`]. Nothing is written on
    /// error.
    // `new` formats caller memory and returns no value, as every shared
    // object's `new` in tilewire does; the handle comes from `join`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(mem: Region<'_>, depth: usize, map_cnt: usize) -> Result<(), NewError> {
        let need = check_params(depth, map_cnt).map_err(|what| NewError::BadParams { what })?;
        check_new(&mem, TCACHE_ALIGN, need)?;
        let (hdr, ring, map) = words(&mem, depth, map_cnt).ok_or(NewError::TooSmall {
            len: mem.len(),
            need,
        })?;
        publish_magic(&mem, 0);
        for word in hdr[1..].iter().chain(ring).chain(map) {
            // SYNC: Relaxed; published by the Release store of the magic in
            // `publish_magic` below, which pairs with the Acquire load of the
            // magic in `check_join` (Tcache::join / join_reader).
            word.store(0, Ordering::Relaxed);
        }
        // SYNC: as above.
        hdr[W_DEPTH].store(depth as u64, Ordering::Relaxed);
        // SYNC: as above.
        hdr[W_MAP_CNT].store(map_cnt as u64, Ordering::Relaxed);
        publish_magic(&mem, TCACHE_MAGIC);
        Ok(())
    }

    /// Checks the object at `mem` and returns its header, ring and map.
    fn open<'a>(mem: &Region<'a>) -> Result<Words<'a>, JoinError> {
        check_join(mem, KIND, TCACHE_MAGIC, TCACHE_ALIGN, HDR_BYTES)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let hdr = mem
            .atomic_u64s(0, HDR_WORDS)
            .ok_or(bad("header unreadable"))?;
        let (depth, map_cnt) = (load_usize(&hdr[W_DEPTH]), load_usize(&hdr[W_MAP_CNT]));
        let need = check_params(depth, map_cnt).map_err(bad)?;
        if mem.len() < need {
            return Err(JoinError::TooSmall {
                len: mem.len(),
                need,
            });
        }
        words(mem, depth, map_cnt).ok_or(bad("layout out of bounds"))
    }

    /// Joins the tcache at `mem` as its writer.
    ///
    /// # Errors
    /// [`JoinError::Misaligned`], [`JoinError::TooSmall`] (shorter than the
    /// header, or than the footprint of the stored parameters),
    /// [`JoinError::NotInitialized`], [`JoinError::BadMagic`],
    /// [`JoinError::BadVersion`]; [`JoinError::BadParams`] if the stored
    /// depth or map size is invalid, the cursor or fill is out of range, or
    /// `mem` is read-only (a writer needs a writable mapping; monitors use
    /// [`Tcache::join_reader`]). Garbage in `mem` gives one of these, never
    /// a panic or an access outside `mem`.
    pub fn join(mem: Region<'_>) -> Result<TcacheHandle<'_>, JoinError> {
        let (hdr, ring, map) = Self::open(&mem)?;
        let depth = ring.len();
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        if !mem.is_writable() {
            return Err(bad("read-only memory: the writer needs a writable mapping"));
        }
        let (cursor, fill) = (load_usize(&hdr[W_CURSOR]), load_usize(&hdr[W_FILL]));
        if cursor >= depth {
            return Err(bad("cursor is not below depth"));
        }
        if fill > depth {
            return Err(bad("fill is greater than depth"));
        }
        Ok(TcacheHandle {
            mem,
            hdr,
            ring,
            map,
            mask: map.len() - 1,
            hash_shift: 64 - map.len().trailing_zeros(),
            cursor,
            fill,
        })
    }

    /// Joins the tcache at `mem` to read its counters; `mem` may be
    /// read-only.
    ///
    /// # Errors
    /// As for [`Tcache::join`], except that read-only memory and a bad
    /// cursor or fill are accepted.
    pub fn join_reader(mem: Region<'_>) -> Result<TcacheReader<'_>, JoinError> {
        let (hdr, ring, _) = Self::open(&mem)?;
        Ok(TcacheReader {
            mem,
            depth: ring.len(),
            counters: &hdr[W_INSERTS..=W_EVICTIONS],
        })
    }

    /// Leaves: drops the writer's handle and gives its memory back. The
    /// cursor and fill are already written through.
    pub fn leave(handle: TcacheHandle<'_>) -> Region<'_> {
        handle.mem
    }

    /// Leaves: drops a reader and gives its memory back.
    pub fn leave_reader(reader: TcacheReader<'_>) -> Region<'_> {
        reader.mem
    }

    /// Deletes the tcache at `mem`: zeroes the magic (Release) so later
    /// joins fail with [`JoinError::NotInitialized`].
    ///
    /// # Errors
    /// [`DeleteError::ReadOnly`], or [`DeleteError::Join`] with the reason
    /// `mem` does not hold a live tcache. Nothing is changed on error.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, TCACHE_MAGIC, TCACHE_ALIGN)
    }
}

impl ShmObject for Tcache {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = TCACHE_MAGIC;
    const ALIGN: usize = TCACHE_ALIGN;
    type Params = TcacheParams;

    fn footprint(params: &TcacheParams) -> Option<usize> {
        Tcache::footprint(params.depth, params.map_cnt)
    }
}

/// Reads a header field as a `usize` (`usize::MAX` if it does not fit, which
/// every check then refuses).
fn load_usize(word: &AtomicU64) -> usize {
    // SYNC: Relaxed; called after `check_join`'s Acquire load of the magic,
    // which pairs with the Release in `publish_magic` (Tcache::new), so the
    // static fields are those `new` wrote. The cursor and fill are the
    // previous writer's, whose stores reach a new writer through whatever
    // handed the role over (a thread join, a process exit and restart).
    usize::try_from(word.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
}

/// Reads the counters: statistics, so Relaxed.
fn load_counters(words: &[AtomicU64]) -> TcacheCounters {
    // SYNC: Relaxed; counters are independent monotonic statistics that
    // publish nothing, stored Relaxed by the single writer (`bump`).
    let load = |i: usize| words[i].load(Ordering::Relaxed);
    TcacheCounters {
        inserts: load(0),
        dups: load(W_DUPS - W_INSERTS),
        evictions: load(W_EVICTIONS - W_INSERTS),
    }
}

/// Adds one to a counter that only the single writer stores.
#[inline]
fn bump(word: &AtomicU64) {
    // SYNC: Relaxed load and store, not a read-modify-write: only the single
    // writer stores counters; readers' Relaxed loads (`load_counters`) see
    // some recent value, which is all a statistic needs.
    word.store(
        word.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Where a probe for a tag ended.
enum Probe {
    /// In this map slot.
    Found(usize),
    /// Absent; this empty slot ends its probe run.
    Vacant(usize),
    /// Absent, and no slot is empty: someone scribbled over the map.
    Full,
}

/// The writer's handle on a [`Tcache`]: inserts, lookups, reset.
pub struct TcacheHandle<'a> {
    mem: Region<'a>,
    hdr: &'a [AtomicU64],
    ring: &'a [AtomicU64],
    map: &'a [AtomicU64],
    /// `map_cnt - 1`.
    mask: usize,
    /// `64 - log2(map_cnt)`: Fibonacci hashing keeps the top bits.
    hash_shift: u32,
    /// Ring slot of the oldest tag (the next one overwritten); `< depth`.
    cursor: usize,
    /// Tags held; `<= depth`.
    fill: usize,
}

impl fmt::Debug for TcacheHandle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcacheHandle")
            .field("mem", &self.mem)
            .field("depth", &self.depth())
            .field("len", &self.fill)
            .finish_non_exhaustive()
    }
}

impl TcacheHandle<'_> {
    /// How many distinct tags the cache remembers.
    pub fn depth(&self) -> usize {
        self.ring.len()
    }

    /// Slots in the hash map.
    pub fn map_cnt(&self) -> usize {
        self.map.len()
    }

    /// Tags held now (at most [`depth`](Self::depth)).
    pub fn len(&self) -> usize {
        self.fill
    }

    /// True if the cache holds no tag.
    pub fn is_empty(&self) -> bool {
        self.fill == 0
    }

    /// The counters, as of now.
    pub fn counters(&self) -> TcacheCounters {
        load_counters(&self.hdr[W_INSERTS..=W_EVICTIONS])
    }

    /// True if `tag` (after [`Tcache::canonical_tag`]) is in the cache.
    pub fn contains(&self, tag: u64) -> bool {
        matches!(self.probe(Tcache::canonical_tag(tag)), Probe::Found(_))
    }

    /// Inserts `tag` (after [`Tcache::canonical_tag`]). Returns true if it
    /// was already present (a duplicate: nothing changes, its age is not
    /// refreshed), false if it was new; a new tag in a full cache evicts
    /// the oldest. O(1) expected; no allocation.
    pub fn insert(&mut self, tag: u64) -> bool {
        let tag = Tcache::canonical_tag(tag);
        bump(&self.hdr[W_INSERTS]);
        let mut slot = match self.probe(tag) {
            Probe::Found(_) => {
                bump(&self.hdr[W_DUPS]);
                return true;
            }
            Probe::Vacant(slot) => Some(slot),
            Probe::Full => None,
        };
        let ring_slot = &self.ring[self.cursor];
        // SYNC: Relaxed; the ring is touched by the single writer only.
        let oldest = ring_slot.load(Ordering::Relaxed);
        if oldest == Tcache::NULL_TAG {
            // Bounded even if someone zeroed ring slots behind our back.
            self.fill = (self.fill + 1).min(self.ring.len());
            // SYNC: Relaxed; written through for a later writer's join, which
            // reads it Relaxed (see Tcache::join).
            self.hdr[W_FILL].store(self.fill as u64, Ordering::Relaxed);
        } else {
            self.remove(oldest);
            bump(&self.hdr[W_EVICTIONS]);
            // The backward shift may have opened a hole earlier in this
            // tag's probe run; inserting past it would hide the tag.
            slot = match self.probe(tag) {
                Probe::Vacant(slot) => Some(slot),
                _ => None,
            };
        }
        // SYNC: Relaxed; the ring is touched by the single writer only.
        ring_slot.store(tag, Ordering::Relaxed);
        // Advance and wrap without a division or a branch.
        self.cursor = (self.cursor + 1) * usize::from(self.cursor + 1 != self.ring.len());
        // SYNC: Relaxed; written through for a later writer's join.
        self.hdr[W_CURSOR].store(self.cursor as u64, Ordering::Relaxed);
        if let Some(slot) = slot {
            // SYNC: Relaxed; the map is touched by the single writer only.
            self.map[slot].store(tag, Ordering::Relaxed);
        }
        false
    }

    /// Empties the cache (ring, map, cursor, fill). The counters are kept:
    /// monitors compute rates from them, so they only ever grow.
    pub fn reset(&mut self) {
        for word in self.ring.iter().chain(self.map) {
            // SYNC: Relaxed; the ring and map are the single writer's.
            word.store(0, Ordering::Relaxed);
        }
        self.cursor = 0;
        self.fill = 0;
        // SYNC: Relaxed; written through for a later writer's join.
        self.hdr[W_CURSOR].store(0, Ordering::Relaxed);
        // SYNC: as above.
        self.hdr[W_FILL].store(0, Ordering::Relaxed);
    }

    /// The map slot where `tag`'s probe run starts.
    #[inline]
    fn home(&self, tag: u64) -> usize {
        (tag.wrapping_mul(FIB) >> self.hash_shift) as usize & self.mask
    }

    /// Looks for `tag` (non-zero) along its probe run, at most `map_cnt`
    /// slots.
    fn probe(&self, tag: u64) -> Probe {
        let mut i = self.home(tag);
        for _ in 0..self.map.len() {
            // SYNC: Relaxed; the map is touched by the single writer only.
            let held = self.map[i].load(Ordering::Relaxed);
            if held == tag {
                return Probe::Found(i);
            }
            if held == Tcache::NULL_TAG {
                return Probe::Vacant(i);
            }
            i = (i + 1) & self.mask;
        }
        Probe::Full
    }

    /// Removes `tag` from the map by backward shift: each later member of
    /// the probe run that may legally sit in the hole moves into it, and
    /// the last hole is emptied. A tag not found is left alone.
    fn remove(&self, tag: u64) {
        let Probe::Found(mut hole) = self.probe(tag) else {
            return;
        };
        let mut j = hole;
        for _ in 0..self.map.len() {
            j = (j + 1) & self.mask;
            // SYNC: Relaxed; the map is touched by the single writer only.
            let held = self.map[j].load(Ordering::Relaxed);
            if held == Tcache::NULL_TAG {
                break;
            }
            // `held` may move back to `hole` if `hole` lies in its probe
            // run so far, i.e. cyclically within [home, j).
            let from_home = j.wrapping_sub(self.home(held)) & self.mask;
            let from_hole = j.wrapping_sub(hole) & self.mask;
            if from_home >= from_hole {
                // SYNC: Relaxed; as above.
                self.map[hole].store(held, Ordering::Relaxed);
                hole = j;
            }
        }
        // SYNC: Relaxed; as above.
        self.map[hole].store(Tcache::NULL_TAG, Ordering::Relaxed);
    }
}

/// A reader's view of a [`Tcache`] (a monitor in another process): sizes
/// and counters only.
#[derive(Debug)]
pub struct TcacheReader<'a> {
    mem: Region<'a>,
    depth: usize,
    /// The inserts, dups and evictions words.
    counters: &'a [AtomicU64],
}

impl TcacheReader<'_> {
    /// How many distinct tags the cache remembers.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The counters, as of now.
    pub fn counters(&self) -> TcacheCounters {
        load_counters(self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every map entry sits in its own probe run (no empty slot between its
    /// home and its position), and map and ring hold the same tags.
    fn check_invariants(h: &TcacheHandle<'_>) {
        let load = |w: &AtomicU64| w.load(Ordering::Relaxed);
        let map: Vec<u64> = h.map.iter().map(load).collect();
        let mut ring: Vec<u64> = h.ring.iter().map(load).filter(|&t| t != 0).collect();
        for (pos, &tag) in map.iter().enumerate().filter(|(_, &t)| t != 0) {
            let mut i = h.home(tag);
            while i != pos {
                assert_ne!(map[i], 0, "tag {tag:#x} at {pos} unreachable from {i}");
                i = (i + 1) & h.mask;
            }
        }
        let mut held: Vec<u64> = map.into_iter().filter(|&t| t != 0).collect();
        ring.sort_unstable();
        held.sort_unstable();
        assert_eq!((ring.len(), ring), (h.len(), held));
    }

    #[test]
    fn backward_shift_keeps_every_run_intact() {
        // A tiny, crowded map (load 7/8) makes long runs that wrap around,
        // so evictions shift entries across the end of the map.
        let fp = Tcache::footprint(7, 8).unwrap();
        let mut buf = vec![0u8; fp + TCACHE_ALIGN];
        let off = buf.as_ptr().align_offset(TCACHE_ALIGN);
        let mem = Region::from_mut(&mut buf[off..off + fp]);
        Tcache::new(mem, 7, 8).unwrap();
        let mut h = Tcache::join(mem).unwrap();
        let mut x = 0x1234_5678_u64;
        for _ in 0..5000 {
            // xorshift; the small range below makes repeats common.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            h.insert(x % 23);
            check_invariants(&h);
        }
        let c = h.counters();
        assert_eq!((c.inserts, c.inserts - c.dups - c.evictions), (5000, 7));
    }
}
