//! The tcache's map: tag slots in buckets of one cache line, linear
//! probing by bucket, removal by backward shift (see the
//! [tcache documentation](super) for why and how).

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

/// The empty slot's value, so never a tag.
pub(super) const NULL_TAG: u64 = 0;
/// Map slots per bucket: a cache line of tags.
pub(super) const BUCKET: usize = 8;
/// 2^64 / φ, odd: Fibonacci hashing.
const FIB: u64 = 0x9e37_79b9_7f4a_7c15;

/// Where a probe for a tag ended.
pub(super) enum Probe {
    /// In map slot `slot`, whose bucket has no empty slot if `full`.
    Found { slot: usize, full: bool },
    /// Absent; this empty slot ends its probe run.
    Vacant(usize),
    /// Absent, and no slot is empty: someone scribbled over the map.
    Full,
}

/// A tag [`TcacheHandle::lookup`](super::TcacheHandle::lookup) did not find, and where its probe
/// ended: [`TcacheHandle::commit`](super::TcacheHandle::commit) remembers it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an Absent does nothing until it is committed"]
pub struct Absent {
    /// The canonical tag.
    pub(super) tag: u64,
    /// The empty slot that ended its probe run (`None`: the map had none).
    pub(super) vacant: Option<usize>,
    /// The handle's epoch at the lookup.
    pub(super) epoch: u64,
}

/// The map's slots and the masks that keep every index inside them.
/// Touched by the single writer only, so every access is Relaxed.
pub(super) struct Map<'a> {
    /// `map_cnt` slots, a power of two.
    pub(super) slots: &'a [AtomicU64],
    /// `map_cnt - 1`.
    mask: usize,
    /// Buckets in the map, less one.
    pub(super) bucket_mask: usize,
    /// `63 - log2(buckets)`: Fibonacci hashing keeps the top bits (one
    /// more shift by 1 makes a single bucket's shift of 64 legal).
    bucket_shift: u32,
}

impl<'a> Map<'a> {
    /// The map over `slots`, whose count is a power of two (checked by the
    /// tcache's `join`): one bucket per [`BUCKET`] slots, one for a map
    /// smaller than that.
    pub(super) fn new(slots: &'a [AtomicU64]) -> Map<'a> {
        let buckets = (slots.len() / BUCKET).max(1);
        Map {
            slots,
            mask: slots.len().wrapping_sub(1),
            bucket_mask: buckets - 1,
            bucket_shift: 63 - buckets.trailing_zeros(),
        }
    }

    /// Loads slot `slot` (masked into the map) for its side effect: its
    /// line comes into cache for a lookup or eviction soon after.
    #[inline]
    pub(super) fn touch(&self, slot: usize) {
        // SYNC: Relaxed; a load for its side effect, its value unused.
        black_box(self.slots[slot & self.mask].load(Ordering::Relaxed));
    }

    /// The bucket where `tag`'s probe run starts.
    #[inline]
    pub(super) fn home(&self, tag: u64) -> usize {
        (tag.wrapping_mul(FIB) >> 1 >> self.bucket_shift) as usize & self.bucket_mask
    }

    /// The words of `bucket` as one array, if the map has whole buckets
    /// (`None` for a map smaller than a bucket: see [`Self::scan`]).
    #[inline(always)]
    fn line(&self, bucket: usize) -> Option<&'a [AtomicU64; BUCKET]> {
        let base = bucket.checked_mul(BUCKET)?;
        self.slots
            .get(base..base.checked_add(BUCKET)?)?
            .try_into()
            .ok()
    }

    /// The slots of `bucket` that hold `tag` and those that are empty, as
    /// bit masks (bit k for slot k of the bucket), read without a branch.
    /// A map smaller than a bucket is one bucket whose slots repeat.
    #[inline(always)]
    fn scan(&self, bucket: usize, tag: u64) -> (u32, u32) {
        let (mut equal, mut empty) = (0u32, 0u32);
        if let Some(line) = self.line(bucket) {
            for (k, word) in line.iter().enumerate() {
                // SYNC: Relaxed; the map is touched by the single writer only.
                let held = word.load(Ordering::Relaxed);
                equal |= u32::from(held == tag) << k;
                empty |= u32::from(held == NULL_TAG) << k;
            }
        } else {
            for k in 0..BUCKET {
                // SYNC: Relaxed; as above.
                let held = self.slots[(bucket * BUCKET + k) & self.mask].load(Ordering::Relaxed);
                equal |= u32::from(held == tag) << k;
                empty |= u32::from(held == NULL_TAG) << k;
            }
        }
        (equal, empty)
    }

    /// True if `bucket` has no empty slot.
    #[inline]
    fn is_full(&self, bucket: usize) -> bool {
        match self.line(bucket) {
            // SYNC: Relaxed; the map is touched by the single writer only.
            Some(line) => line
                .iter()
                .fold(true, |full, w| full & (w.load(Ordering::Relaxed) != 0)),
            None => self.scan(bucket, NULL_TAG).1 == 0,
        }
    }

    /// Looks for `tag` (non-zero) along its probe run: its home bucket and
    /// the buckets after it while they are full, at most every bucket.
    #[inline(always)]
    pub(super) fn probe(&self, tag: u64) -> Probe {
        let mut bucket = self.home(tag);
        for _ in 0..=self.bucket_mask {
            let (equal, empty) = self.scan(bucket, tag);
            let base = bucket * BUCKET;
            if equal != 0 {
                return Probe::Found {
                    slot: (base + equal.trailing_zeros() as usize) & self.mask,
                    full: empty == 0,
                };
            }
            if empty != 0 {
                return Probe::Vacant((base + empty.trailing_zeros() as usize) & self.mask);
            }
            bucket = (bucket + 1) & self.bucket_mask;
        }
        Probe::Full
    }

    /// Removes `tag` from the map. A tag not found is left alone. If its
    /// bucket was full, tags further on may have passed it on their way to
    /// where they sit; the backward shift moves one such tag back into the
    /// hole, then fixes the hole that leaves, and so on until a bucket that
    /// was not full ends the run.
    ///
    /// `hint` is the slot the tag was put in; checked, and used if the tag
    /// is still there (it is unless a shift moved it), which saves a probe.
    pub(super) fn remove(&self, tag: u64, hint: u64) {
        let map = self.slots;
        let hinted = usize::try_from(hint)
            .ok()
            // SYNC: Relaxed; the map is touched by the single writer only.
            .filter(|&at| {
                map.get(at)
                    .is_some_and(|w| w.load(Ordering::Relaxed) == tag)
            });
        let (slot, full) = match hinted {
            Some(at) => (at, self.is_full(at / BUCKET)),
            None => match self.probe(tag) {
                Probe::Found { slot, full } => (slot, full),
                _ => return,
            },
        };
        // SYNC: Relaxed; the map is touched by the single writer only.
        map[slot].store(NULL_TAG, Ordering::Relaxed);
        if !full {
            // No tag passed a bucket that had room.
            return;
        }
        let (mut hole, mut hole_bucket) = (slot, slot / BUCKET);
        let mut j = hole_bucket;
        for _ in 0..self.bucket_mask {
            j = (j + 1) & self.bucket_mask;
            let base = j * BUCKET;
            let (mut movable, mut empty) = (0u32, 0u32);
            let from_hole = j.wrapping_sub(hole_bucket) & self.bucket_mask;
            for k in 0..BUCKET {
                // SYNC: Relaxed; as above.
                let held = map[(base + k) & self.mask].load(Ordering::Relaxed);
                // `held` may move back to the hole's bucket if that bucket
                // lies on its probe run so far, cyclically within
                // [home, j).
                let from_home = j.wrapping_sub(self.home(held)) & self.bucket_mask;
                let is_empty = held == NULL_TAG;
                empty |= u32::from(is_empty) << k;
                movable |= u32::from(!is_empty && from_home >= from_hole) << k;
            }
            if movable != 0 {
                let from = (base + movable.trailing_zeros() as usize) & self.mask;
                // SYNC: Relaxed; as above.
                let held = map[from].load(Ordering::Relaxed);
                // SYNC: Relaxed; as above.
                map[hole].store(held, Ordering::Relaxed);
                // SYNC: Relaxed; as above.
                map[from].store(NULL_TAG, Ordering::Relaxed);
                (hole, hole_bucket) = (from, j);
            }
            if empty != 0 {
                // A bucket that had room: no tag beyond it passed it.
                break;
            }
        }
    }
}
