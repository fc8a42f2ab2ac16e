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
//! - a *ring* of `depth` entries in insertion order with a cursor at the
//!   oldest; an entry is a tag and the map slot it was put in. A new tag
//!   overwrites the entry under the cursor (evicting what was there) and
//!   advances it;
//! - an open-addressed *map* of `map_cnt` slots (a power of two, more than
//!   `depth`) in *buckets* of eight, one cache line each. A tag's home
//!   bucket is picked by Fibonacci hashing (multiply by 2^64/φ, keep the
//!   high bits), so that even sequential tags spread; it lives in the
//!   first bucket from its home on that has room (linear probing by
//!   buckets). A lookup compares a whole bucket without a branch per slot
//!   and goes on to the next bucket only past a full one: at the loads
//!   [`Tcache::default_map_cnt`] gives, one cache line.
//!
//! An eviction finds the oldest tag at the slot its ring entry names
//! (checked: a tag that moved since is probed for instead) and empties it.
//! If that bucket was full, tags further on may have passed it; a
//! *backward shift* moves such a tag back into the hole and repeats for the
//! hole it leaves, up to a bucket that was not full. So there are no
//! tombstones and runs do not grow with age. The map holds at most
//! `depth + 1 <= map_cnt` tags (the new one goes in before the oldest
//! leaves, except in a map with no slot to spare), so a bucket with room
//! always ends a probe.
//!
//! # Speed
//!
//! An insert costs one lookup, a ring entry read in order, and (once the
//! cache is full) a store into the evicted tag's slot. Every insert also
//! touches the map line of the tag it will evict some inserts later, so
//! that line is in cache when its turn comes; [`TcacheHandle::insert_batch`]
//! does the same for the lookups of a burst of tags (and
//! [`TcacheHandle::prefetch`] lets a caller do it itself), so at depths
//! whose map is out of cache the misses overlap instead of queueing.
//! `cargo run --release -p tilewire-tile --example tcache_speed` measures it
//! against `std`'s and hashbrown's sets with a `VecDeque` for the order.
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
//! One writer (the dedup tile) joins with [`Tcache::join`]; it keeps the
//! cursor, fill and counters in its handle and writes each through with a
//! plain store when it changes (never a load back, never a
//! read-modify-write), so a later writer resumes where it stopped and a
//! monitor sees current counters. A monitor joins with
//! [`Tcache::join_reader`] (read-only mappings welcome) and reads counters
//! only: a backward shift in progress would make a concurrent lookup miss.
//! With one writer every access can be, and is, Relaxed: nothing is
//! published through the ring or map, and counters are independent
//! statistics. Nothing enforces "one writer"; two would corrupt the
//! contents, never memory safety: every index is masked or bounded, a ring
//! entry's slot is checked before use, and every probe or shift stops after
//! visiting each bucket once, so scribbled-over memory gives wrong answers,
//! never a hang, a panic or an access outside the object.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{DeleteError, JoinError, NewError, Region, ShmObject};

use map::{Map, Probe, BUCKET, NULL_TAG};

pub use map::Absent;

mod lookup;
mod map;

const KIND: &str = "tcache";
const TCACHE_MAGIC: u64 = magic(b"tw.tcch", 2);
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
/// How many ring slots ahead of the cursor an insert touches the map line
/// of the tag it will evict then.
const EVICT_AHEAD: usize = 32;
/// How many tags ahead [`TcacheHandle::insert_batch`] touches a tag's map
/// line.
const BATCH_AHEAD: usize = 8;

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
    /// Tags inserted, by [`TcacheHandle::insert`] or
    /// [`TcacheHandle::insert_batch`].
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

/// Words per ring entry: the tag, and the map slot it was put in.
const RING_ENTRY: usize = 2;

/// Where the map starts: after the header and the ring, on a cache line.
fn map_offset(depth: usize) -> Option<usize> {
    HDR_BYTES.checked_add(
        depth
            .checked_mul(8 * RING_ENTRY)?
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
        mem.atomic_u64s(HDR_BYTES, depth.checked_mul(RING_ENTRY)?)?,
        mem.atomic_u64s(map_offset(depth)?, map_cnt)?,
    ))
}

impl Tcache {
    /// The versioned magic in the first eight bytes.
    pub const MAGIC: u64 = TCACHE_MAGIC;
    /// Required alignment of the object's memory (one cache line).
    pub const ALIGN: usize = TCACHE_ALIGN;
    /// The reserved empty tag; [`Tcache::canonical_tag`] maps it to 1.
    pub const NULL_TAG: u64 = NULL_TAG;
    /// The largest map [`Tcache::default_map_cnt`] sizes at a load of 1/4:
    /// 2^17 slots, 1 MiB, what a core's L2 cache holds on current servers.
    pub const SMALL_MAP_SLOTS: usize = 1 << 17;

    /// The tag the cache stores for `tag`: `tag` itself, except 0 (the
    /// empty marker), which becomes 1. Every method applies this, so
    /// callers need not; it is public so a model of the cache can.
    #[inline]
    pub const fn canonical_tag(tag: u64) -> u64 {
        tag | (tag == Self::NULL_TAG) as u64
    }

    /// The default map size for `depth`: `4 * depth` rounded up to a power
    /// of two (a load factor of at most 1/4: a bucket is rarely full, so a
    /// lookup reads one cache line and an eviction shifts nothing) while
    /// that is at most [`Tcache::SMALL_MAP_SLOTS`]; above, `2 * depth`
    /// rounded up (a load of at most 1/2), where the map is out of a core's
    /// cache anyway and its size costs more than the rare longer probe.
    /// `None` if `depth` is 0 or overflows.
    pub fn default_map_cnt(depth: usize) -> Option<usize> {
        if depth == 0 {
            return None;
        }
        let roomy = depth
            .checked_mul(4)
            .and_then(usize::checked_next_power_of_two)
            .filter(|&n| n <= Self::SMALL_MAP_SLOTS);
        roomy.or_else(|| depth.checked_mul(2)?.checked_next_power_of_two())
    }

    /// Bytes needed for a tcache of `depth` tags and `map_cnt` map slots (a
    /// multiple of [`Tcache::ALIGN`]): a 128-byte header, the ring (16
    /// bytes an entry) padded to a cache line, then the map (8 bytes a
    /// slot).
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
        let depth = ring.len() / RING_ENTRY;
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
        let counters = load_counters(&hdr[W_INSERTS..=W_EVICTIONS]);
        Ok(TcacheHandle {
            mem,
            hdr,
            ring,
            map: Map::new(map),
            depth,
            tight: map.len() <= depth + 1,
            cursor,
            fill,
            counters,
            epoch: 0,
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
            depth: ring.len() / RING_ENTRY,
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
    // publish nothing, stored Relaxed by the single writer (`store_counter`).
    let load = |i: usize| words[i].load(Ordering::Relaxed);
    TcacheCounters {
        inserts: load(0),
        dups: load(W_DUPS - W_INSERTS),
        evictions: load(W_EVICTIONS - W_INSERTS),
    }
}

/// Stores a counter the handle keeps: only the single writer stores
/// counters, so it stores the value it holds and never loads.
#[inline]
fn store_counter(word: &AtomicU64, value: u64) {
    // SYNC: Relaxed store, no read-modify-write: only the single writer
    // stores counters; readers' Relaxed loads (`load_counters`) see some
    // recent value, which is all a statistic needs.
    word.store(value, Ordering::Relaxed);
}

/// The writer's handle on a [`Tcache`]: inserts, lookups, reset.
pub struct TcacheHandle<'a> {
    mem: Region<'a>,
    hdr: &'a [AtomicU64],
    /// `depth` entries of [`RING_ENTRY`] words: a tag and its map slot.
    ring: &'a [AtomicU64],
    map: Map<'a>,
    /// Entries in the ring.
    depth: usize,
    /// Ring slot of the oldest tag (the next one overwritten); `< depth`.
    cursor: usize,
    /// Tags held; `<= depth`.
    fill: usize,
    /// `map_cnt <= depth + 1`: a full cache plus one new tag would leave
    /// the map without an empty slot, so a new tag's eviction comes first.
    tight: bool,
    /// The counters, kept here and written through as they change (a
    /// store each, never a load).
    counters: TcacheCounters,
    /// Bumped by every change of the map (an insert, a reset): an
    /// [`Absent`] from another epoch is probed again.
    epoch: u64,
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
        self.depth
    }

    /// Slots in the hash map.
    pub fn map_cnt(&self) -> usize {
        self.map.slots.len()
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
        self.counters
    }

    /// True if `tag` (after [`Tcache::canonical_tag`]) is in the cache.
    pub fn contains(&self, tag: u64) -> bool {
        matches!(
            self.map.probe(Tcache::canonical_tag(tag)),
            Probe::Found { .. }
        )
    }

    /// Inserts `tag` (after [`Tcache::canonical_tag`]). Returns true if it
    /// was already present (a duplicate: nothing changes, its age is not
    /// refreshed), false if it was new; a new tag in a full cache evicts
    /// the oldest. O(1) expected; no allocation.
    ///
    /// Each call also touches the map where a tag due for eviction a few
    /// inserts from now lives, so that eviction finds its line in cache.
    #[inline]
    pub fn insert(&mut self, tag: u64) -> bool {
        self.touch_evictee();
        self.insert_canonical(Tcache::canonical_tag(tag))
    }

    /// Inserts each of `tags` in order, exactly as that many
    /// [`insert`](Self::insert) calls would, and sets `dups[i]` to what
    /// the call for `tags[i]` returns. Answers the first
    /// `min(tags.len(), dups.len())` tags (the rest of the longer slice is
    /// neither inserted nor written) and returns how many of those were
    /// duplicates.
    ///
    /// Faster than one call per tag in a big cache: it touches the map
    /// lines of the tags a few places ahead before their turn, so their
    /// cache misses overlap instead of waiting one after another.
    pub fn insert_batch(&mut self, tags: &[u64], dups: &mut [bool]) -> usize {
        let n = tags.len().min(dups.len());
        let (tags, dups) = (&tags[..n], &mut dups[..n]);
        for &tag in tags.iter().take(BATCH_AHEAD) {
            self.prefetch(tag);
        }
        let mut found = 0;
        for (i, (&tag, dup)) in tags.iter().zip(dups.iter_mut()).enumerate() {
            if let Some(&ahead) = tags.get(i + BATCH_AHEAD) {
                self.prefetch(ahead);
            }
            self.touch_evictee();
            *dup = self.insert_canonical(Tcache::canonical_tag(tag));
            found += usize::from(*dup);
        }
        found
    }

    /// Touches the map line where `tag`'s lookup starts, so that an
    /// [`insert`](Self::insert) or [`contains`](Self::contains) of it a
    /// little later finds the line in cache. Changes nothing; a caller
    /// with a burst of tags calls it a few tags ahead of each insert
    /// ([`insert_batch`](Self::insert_batch) does).
    #[inline]
    pub fn prefetch(&self, tag: u64) {
        let home = self.map.home(Tcache::canonical_tag(tag)) * BUCKET;
        self.map.touch(home);
    }

    /// Touches the map line of the tag that a new tag will evict
    /// `EVICT_AHEAD` ring entries from now (the ring is read in order, the
    /// map at random: this hides the eviction's cache miss).
    #[inline]
    fn touch_evictee(&self) {
        if self.depth < 2 * EVICT_AHEAD {
            return;
        }
        let ahead = self.cursor + EVICT_AHEAD;
        let ahead = if ahead >= self.depth {
            ahead - self.depth
        } else {
            ahead
        };
        if let Some(hint) = self.ring.get(ahead * RING_ENTRY + 1) {
            // SYNC: Relaxed; the ring is touched by the single writer only.
            self.map.touch(hint.load(Ordering::Relaxed) as usize);
        }
    }

    /// [`insert`](Self::insert) of a tag already canonical (non-zero).
    #[inline]
    fn insert_canonical(&mut self, tag: u64) -> bool {
        let probe = self.map.probe(tag);
        self.insert_probed(tag, probe)
    }

    /// [`insert_canonical`](Self::insert_canonical) with the map's answer
    /// for `tag` already known (and still true: no change since).
    #[inline]
    fn insert_probed(&mut self, tag: u64, probe: Probe) -> bool {
        self.counters.inserts += 1;
        store_counter(&self.hdr[W_INSERTS], self.counters.inserts);
        let vacant = match probe {
            Probe::Found { .. } => {
                self.counters.dups += 1;
                store_counter(&self.hdr[W_DUPS], self.counters.dups);
                return true;
            }
            Probe::Vacant(slot) => Some(slot),
            Probe::Full => None,
        };
        self.epoch = self.epoch.wrapping_add(1);
        let at = self.cursor * RING_ENTRY;
        let Some([entry_tag, entry_slot]) = self
            .ring
            .get(at..at + RING_ENTRY)
            .and_then(|e| <&[AtomicU64; 2]>::try_from(e).ok())
        else {
            return false;
        };
        // SYNC: Relaxed; the ring is touched by the single writer only.
        let (oldest, oldest_slot) = (
            entry_tag.load(Ordering::Relaxed),
            entry_slot.load(Ordering::Relaxed),
        );
        // Advance and wrap without a division or a branch.
        self.cursor = (self.cursor + 1) * usize::from(self.cursor + 1 != self.depth);
        // SYNC: Relaxed; written through for a later writer's join, which
        // reads it Relaxed (see Tcache::join).
        self.hdr[W_CURSOR].store(self.cursor as u64, Ordering::Relaxed);
        let slot = if oldest == NULL_TAG {
            // Bounded even if someone zeroed ring slots behind our back.
            self.fill = (self.fill + 1).min(self.depth);
            // SYNC: Relaxed; written through for a later writer's join.
            self.hdr[W_FILL].store(self.fill as u64, Ordering::Relaxed);
            vacant
        } else {
            self.counters.evictions += 1;
            store_counter(&self.hdr[W_EVICTIONS], self.counters.evictions);
            if self.tight {
                // Evict first: with the new tag in, the map could be full
                // and the shift would find no empty slot to stop at. The
                // shift may open a hole earlier in the new tag's run; probe
                // again.
                self.map.remove(oldest, oldest_slot);
                match self.map.probe(tag) {
                    Probe::Vacant(slot) => Some(slot),
                    _ => None,
                }
            } else {
                // Insert first, then evict: the map keeps an empty slot (it
                // holds at most depth + 1 < map_cnt tags) and the vacancy
                // found above is still the end of the new tag's run; the
                // shift moves the new tag too if it must (its ring entry's
                // slot then goes stale, which `remove` checks).
                if let Some(slot) = vacant {
                    // SYNC: Relaxed; the map is touched by the single writer only.
                    self.map.slots[slot].store(tag, Ordering::Relaxed);
                }
                self.map.remove(oldest, oldest_slot);
                None
            }
        };
        if let Some(slot) = slot {
            // SYNC: Relaxed; the map is touched by the single writer only.
            self.map.slots[slot].store(tag, Ordering::Relaxed);
        }
        // SYNC: Relaxed; the ring is touched by the single writer only.
        entry_tag.store(tag, Ordering::Relaxed);
        // SYNC: Relaxed; as above. A stale slot (the tag was shifted, or
        // never found room) only costs `remove` a probe.
        entry_slot.store(
            slot.or(vacant).map_or(u64::MAX, |s| s as u64),
            Ordering::Relaxed,
        );
        false
    }

    /// Empties the cache (ring, map, cursor, fill). The counters are kept:
    /// monitors compute rates from them, so they only ever grow.
    pub fn reset(&mut self) {
        for word in self.ring.iter().chain(self.map.slots) {
            // SYNC: Relaxed; the ring and map are the single writer's.
            word.store(0, Ordering::Relaxed);
        }
        self.cursor = 0;
        self.fill = 0;
        self.epoch = self.epoch.wrapping_add(1);
        // SYNC: Relaxed; written through for a later writer's join.
        self.hdr[W_CURSOR].store(0, Ordering::Relaxed);
        // SYNC: as above.
        self.hdr[W_FILL].store(0, Ordering::Relaxed);
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

    /// Every map entry sits on its own probe run (every bucket from its
    /// home to the one before its own is full), and map and ring hold the
    /// same tags.
    fn check_invariants(h: &TcacheHandle<'_>) {
        let load = |w: &AtomicU64| w.load(Ordering::Relaxed);
        let map: Vec<u64> = h.map.slots.iter().map(load).collect();
        let mut ring: Vec<u64> = h
            .ring
            .iter()
            .step_by(RING_ENTRY)
            .map(load)
            .filter(|&t| t != 0)
            .collect();
        let width = BUCKET.min(map.len());
        let full = |b: usize| map[b * width..(b + 1) * width].iter().all(|&t| t != 0);
        for (pos, &tag) in map.iter().enumerate().filter(|(_, &t)| t != 0) {
            let mut b = h.map.home(tag);
            while b != pos / width {
                assert!(full(b), "tag {tag:#x} at {pos} unreachable past bucket {b}");
                b = (b + 1) & h.map.bucket_mask;
            }
        }
        let mut held: Vec<u64> = map.into_iter().filter(|&t| t != 0).collect();
        ring.sort_unstable();
        held.sort_unstable();
        assert_eq!((ring.len(), ring), (h.len(), held));
    }

    #[test]
    fn backward_shift_keeps_every_run_intact() {
        // Crowded maps (load 7/8) make long runs of full buckets that wrap
        // around, so evictions shift entries across the end of the map;
        // one map is a single bucket, one smaller than a bucket.
        for (depth, map_cnt) in [(7, 8), (3, 4), (28, 32), (56, 64), (100, 128)] {
            let fp = Tcache::footprint(depth, map_cnt).unwrap();
            let mut buf = vec![0u8; fp + TCACHE_ALIGN];
            let off = buf.as_ptr().align_offset(TCACHE_ALIGN);
            let mem = Region::from_mut(&mut buf[off..off + fp]);
            Tcache::new(mem, depth, map_cnt).unwrap();
            let mut h = Tcache::join(mem).unwrap();
            let mut x = 0x1234_5678_u64;
            for _ in 0..5000 {
                // xorshift; the small range below makes repeats common.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                h.insert(x % (3 * depth as u64 + 2));
                check_invariants(&h);
            }
            let c = h.counters();
            assert_eq!(
                (c.inserts, c.inserts - c.dups - c.evictions),
                (5000, depth as u64)
            );
        }
    }
}
