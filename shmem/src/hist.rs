//! [`Hist`]: a latency histogram in shared memory, written by one tile and
//! read by a monitor in another process.
//!
//! # Buckets
//!
//! Values are nanoseconds, any `u64`. Buckets are *log-linear*: the values
//! below 32 get a bucket each, and each power of two `[2^e, 2^(e+1))` above
//! is split into [`SUB_BUCKETS`] (16) equal sub-buckets: [`BUCKETS`] (976)
//! buckets from 0 ns to `u64::MAX` ns (584 years), in 7.6 KiB. No bucket is
//! wider than 1/16 of its lowest value, so a bucket's upper bound overstates
//! any value in it by less than 1/16 (6.25%). The index is arithmetic, not a
//! search ([`bucket_index`]): with `s = max(0, floor(log2 ns) - 4)`, one
//! leading-zero count, it is `16 s + (ns >> s)`.
//!
//! # Writer and readers
//!
//! A 128-byte header (static fields, then sum, min and max on their own
//! line), then the bucket counts, all 64-bit atomic words. One writer
//! ([`Hist::join`]) records with [`HistHandle::record`]: Relaxed loads and
//! stores (one writer needs no read-modify-write), no allocation, no branch
//! beyond the index math. Readers ([`Hist::join_reader`], read-only mappings
//! welcome) copy the words into a [`HistSnapshot`] and compute there.
//!
//! A snapshot taken while the writer runs is *approximately consistent*:
//! each word is read once, atomically, but records made during the copy may
//! be in some words and not others. The snapshot's count is the sum of the
//! bucket counts it read, so its percentiles are self-consistent, and its
//! min and max are clamped into the first and last non-empty buckets; the
//! sum (and so the mean) may be off by the few records in flight. With the
//! writer quiescent a snapshot is exact.
//!
//! [`LocalHist`] is the same histogram on the heap, for benchmarks.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::object::{check_join, check_new, magic, publish_magic, retire_magic};
use crate::{DeleteError, JoinError, NewError, Region, ShmObject};

/// log2 of [`SUB_BUCKETS`].
pub const SUB_BUCKET_BITS: u32 = 4;
/// Linear sub-buckets per power of two: the relative error bound is
/// `1 / SUB_BUCKETS`.
pub const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Buckets in a histogram: `SUB_BUCKETS` for values below `SUB_BUCKETS`,
/// then `SUB_BUCKETS` for each power of two from `2^SUB_BUCKET_BITS` up.
pub const BUCKETS: usize = (64 - SUB_BUCKET_BITS as usize + 1) * SUB_BUCKETS;

const KIND: &str = "hist";
const HIST_MAGIC: u64 = magic(b"tw.hist", 1);
const HIST_ALIGN: usize = 64;
const HDR_BYTES: usize = 128;
const HIST_FOOTPRINT: usize = HDR_BYTES + BUCKETS * 8;
// Header words: the bucket shape, then on the second cache line the live
// words (indices SUM, MIN, MAX from W_LIVE; word 0 there is reserved).
const W_SHAPE: usize = 1;
const SHAPE: u64 = (SUB_BUCKET_BITS as u64) << 32 | BUCKETS as u64;
const W_LIVE: usize = 8;
// Word 0 of the live line is reserved (always 0): the count is the sum of
// the buckets, so keeping a second copy would cost the writer a store per
// record that no reader needs.
const SUM: usize = 1;
const MIN: usize = 2;
const MAX: usize = 3;

/// The bucket that counts `ns`, in `0..BUCKETS`: a leading-zero count,
/// shifts and adds, no branch (the clamp, a no-op, drops a bounds check).
#[inline]
pub fn bucket_index(ns: u64) -> usize {
    // floor(log2(max(ns, 16))) - 4: 0 below 32, where values index themselves.
    let shift = (63 - SUB_BUCKET_BITS) - (ns | SUB_BUCKETS as u64).leading_zeros();
    (((shift as usize) << SUB_BUCKET_BITS) + (ns >> shift) as usize).min(BUCKETS - 1)
}

/// The lowest and highest value counted by bucket `index`.
///
/// # Panics
/// If `index >= BUCKETS`.
pub fn bucket_bounds(index: usize) -> (u64, u64) {
    assert!(index < BUCKETS, "bucket {index} out of range");
    if index < SUB_BUCKETS {
        return (index as u64, index as u64);
    }
    let shift = (index >> SUB_BUCKET_BITS) - 1;
    let low = (((index & (SUB_BUCKETS - 1)) + SUB_BUCKETS) as u64) << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// The live words of a histogram, wherever they are.
struct Cells<'a> {
    /// Count, sum, min, max.
    live: &'a [AtomicU64; 4],
    buckets: &'a [AtomicU64; BUCKETS],
}

impl fmt::Debug for Cells<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cells { .. }")
    }
}

/// Stores `f(old)` in a word only the single writer stores.
#[inline]
fn update(word: &AtomicU64, f: impl FnOnce(u64) -> u64) {
    // SYNC: Relaxed load and store, not a read-modify-write: only the single
    // writer stores these words. Readers' Relaxed loads (`Cells::snapshot`)
    // see some recent value of each; nothing is published through them, so
    // no order between words is promised (approximate consistency).
    word.store(f(word.load(Ordering::Relaxed)), Ordering::Relaxed);
}

impl Cells<'_> {
    #[inline]
    fn record(&self, ns: u64) {
        update(&self.buckets[bucket_index(ns)], |n| n.wrapping_add(1));
        update(&self.live[SUM], |s| s.wrapping_add(ns));
        update(&self.live[MIN], |m| m.min(ns));
        update(&self.live[MAX], |m| m.max(ns));
    }

    fn reset(&self) {
        for word in self.buckets.iter().chain(self.live) {
            update(word, |_| 0);
        }
        update(&self.live[MIN], |_| u64::MAX);
    }

    fn snapshot(&self) -> HistSnapshot {
        // SYNC: Relaxed, each word once; see `update` and the module
        // documentation: the result is approximately consistent.
        let load = |w: &AtomicU64| w.load(Ordering::Relaxed);
        let buckets: Vec<u64> = self.buckets.iter().map(load).collect();
        let mut snap = HistSnapshot {
            count: buckets.iter().fold(0u64, |a, &n| a.saturating_add(n)),
            buckets,
            sum: load(&self.live[SUM]),
            min: load(&self.live[MIN]),
            max: load(&self.live[MAX]),
        };
        let first = snap.buckets.iter().position(|&n| n != 0);
        let last = snap.buckets.iter().rposition(|&n| n != 0);
        if let (Some(first), Some(last)) = (first, last) {
            let ((lo, hi), (lo2, hi2)) = (bucket_bounds(first), bucket_bounds(last));
            snap.min = snap.min.clamp(lo, hi);
            snap.max = snap.max.clamp(lo2, hi2).max(snap.min);
        } else {
            (snap.sum, snap.min, snap.max) = (0, 0, 0);
        }
        snap
    }
}

/// A latency histogram in caller memory; a namespace for its verbs. See
/// the [module documentation](self).
#[derive(Debug)]
pub enum Hist {}

impl Hist {
    /// The versioned magic in the first eight bytes.
    pub const MAGIC: u64 = HIST_MAGIC;
    /// Required alignment of the object's memory (one cache line).
    pub const ALIGN: usize = HIST_ALIGN;

    /// Bytes the object needs (fixed: a 128-byte header and [`BUCKETS`]
    /// counts, 7936 bytes).
    pub const fn footprint() -> usize {
        HIST_FOOTPRINT
    }

    /// The header and live words of the histogram at `mem`; `None` if
    /// `mem` is misaligned or short, which every caller checked already.
    fn words<'a>(mem: &Region<'a>) -> Option<(&'a [AtomicU64], Cells<'a>)> {
        let words = mem.atomic_u64s(0, HIST_FOOTPRINT / 8)?;
        let (hdr, buckets) = words.split_at(HDR_BYTES / 8);
        let live = hdr[W_LIVE..W_LIVE + 4].try_into().ok()?;
        let buckets = buckets.try_into().ok()?;
        Some((hdr, Cells { live, buckets }))
    }

    /// Formats `mem` as an empty histogram: zeroes the magic (so a racing
    /// joiner fails rather than see half-written fields), writes every
    /// field, then publishes the magic with Release ordering.
    ///
    /// # Errors
    /// [`NewError::ReadOnly`], [`NewError::Misaligned`] (see
    /// [`Hist::ALIGN`]), [`NewError::TooSmall`] (see [`Hist::footprint`]).
    /// Nothing is written on error.
    // `new` formats caller memory and returns no value, as every shared
    // object's `new` in tilewire does; the handle comes from `join`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(mem: Region<'_>) -> Result<(), NewError> {
        check_new(&mem, HIST_ALIGN, HIST_FOOTPRINT)?;
        let (hdr, cells) = Self::words(&mem).ok_or(NewError::TooSmall {
            len: mem.len(),
            need: HIST_FOOTPRINT,
        })?;
        publish_magic(&mem, 0);
        for word in &hdr[1..] {
            // SYNC: Relaxed; published by the Release store of the magic in
            // `publish_magic` below, which pairs with the Acquire load of the
            // magic in `check_join` (Hist::join / join_reader).
            word.store(0, Ordering::Relaxed);
        }
        // SYNC: as above.
        hdr[W_SHAPE].store(SHAPE, Ordering::Relaxed);
        // Count, sum, min, max and buckets; published by the magic's Release
        // store like the rest.
        cells.reset();
        publish_magic(&mem, HIST_MAGIC);
        Ok(())
    }

    /// Checks the object at `mem` and returns its live words.
    fn open<'a>(mem: &Region<'a>) -> Result<Cells<'a>, JoinError> {
        check_join(mem, KIND, HIST_MAGIC, HIST_ALIGN, HIST_FOOTPRINT)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let (hdr, cells) = Self::words(mem).ok_or(bad("words out of bounds"))?;
        // SYNC: Relaxed; ordered after the Acquire load of the magic in
        // `check_join`, which pairs with the Release in `publish_magic`
        // (Hist::new), so these are the values `new` wrote.
        if hdr[W_SHAPE].load(Ordering::Relaxed) != SHAPE {
            return Err(bad("bucket shape (sub-buckets, count) is not this build's"));
        }
        Ok(cells)
    }

    /// Joins the histogram at `mem` as its writer.
    ///
    /// # Errors
    /// [`JoinError::Misaligned`], [`JoinError::TooSmall`],
    /// [`JoinError::NotInitialized`], [`JoinError::BadMagic`],
    /// [`JoinError::BadVersion`]; [`JoinError::BadParams`] if the stored
    /// bucket layout is not this build's or `mem` is read-only (monitors
    /// use [`Hist::join_reader`]). Garbage gives one of these, never a
    /// panic or an access outside `mem`.
    pub fn join(mem: Region<'_>) -> Result<HistHandle<'_>, JoinError> {
        let cells = Self::open(&mem)?;
        if !mem.is_writable() {
            return Err(JoinError::BadParams {
                kind: KIND,
                what: "read-only memory: the writer needs a writable mapping",
            });
        }
        Ok(HistHandle { mem, cells })
    }

    /// Joins the histogram at `mem` to read it; `mem` may be read-only.
    ///
    /// # Errors
    /// As for [`Hist::join`], except that read-only memory is accepted.
    pub fn join_reader(mem: Region<'_>) -> Result<HistReader<'_>, JoinError> {
        let cells = Self::open(&mem)?;
        Ok(HistReader { mem, cells })
    }

    /// Leaves: drops the writer's handle and gives its memory back.
    pub fn leave(handle: HistHandle<'_>) -> Region<'_> {
        handle.mem
    }

    /// Leaves: drops a reader and gives its memory back.
    pub fn leave_reader(reader: HistReader<'_>) -> Region<'_> {
        reader.mem
    }

    /// Deletes the histogram at `mem`: zeroes the magic (Release) so later
    /// joins fail with [`JoinError::NotInitialized`].
    ///
    /// # Errors
    /// [`DeleteError::ReadOnly`], or [`DeleteError::Join`] with the reason
    /// `mem` does not hold a live histogram. Nothing is changed on error.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, HIST_MAGIC, HIST_ALIGN)
    }
}

impl ShmObject for Hist {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = HIST_MAGIC;
    const ALIGN: usize = HIST_ALIGN;
    type Params = ();

    fn footprint(_params: &()) -> Option<usize> {
        Some(HIST_FOOTPRINT)
    }
}

/// The writer's handle on a [`Hist`].
#[derive(Debug)]
pub struct HistHandle<'a> {
    mem: Region<'a>,
    cells: Cells<'a>,
}

impl HistHandle<'_> {
    /// Records one value: no allocation, no branch beyond the bucket index
    /// math, only Relaxed loads and stores. The sum wraps after 2^64 ns.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.cells.record(ns);
    }

    /// Empties the histogram (readers may see a mix of old and zeroed words).
    pub fn reset(&mut self) {
        self.cells.reset();
    }

    /// A copy of the histogram, for percentiles (allocates).
    pub fn snapshot(&self) -> HistSnapshot {
        self.cells.snapshot()
    }
}

/// A reader's view of a [`Hist`] (a monitor, possibly read-only).
#[derive(Debug)]
pub struct HistReader<'a> {
    mem: Region<'a>,
    cells: Cells<'a>,
}

impl HistReader<'_> {
    /// An approximately consistent copy (see the module documentation).
    pub fn snapshot(&self) -> HistSnapshot {
        self.cells.snapshot()
    }
}

/// The same histogram on the heap, not shared: for benchmarks and tests.
pub struct LocalHist {
    live: [AtomicU64; 4],
    buckets: Box<[AtomicU64; BUCKETS]>,
}

impl fmt::Debug for LocalHist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LocalHist").field(&self.cells()).finish()
    }
}

impl Default for LocalHist {
    fn default() -> LocalHist {
        LocalHist::new()
    }
}

impl LocalHist {
    /// An empty histogram (one allocation of 7.6 KiB).
    pub fn new() -> LocalHist {
        let hist = LocalHist {
            live: [const { AtomicU64::new(0) }; 4],
            buckets: Box::new([const { AtomicU64::new(0) }; BUCKETS]),
        };
        hist.cells().reset();
        hist
    }

    fn cells(&self) -> Cells<'_> {
        let (live, buckets) = (&self.live, &*self.buckets);
        Cells { live, buckets }
    }

    /// Records one value, exactly as [`HistHandle::record`] does.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.cells().record(ns);
    }

    /// Empties the histogram.
    pub fn reset(&mut self) {
        self.cells().reset();
    }

    /// A copy of the histogram, for percentiles (allocates).
    pub fn snapshot(&self) -> HistSnapshot {
        self.cells().snapshot()
    }
}

/// A histogram copied out of its words: plain data on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistSnapshot {
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Default for HistSnapshot {
    fn default() -> HistSnapshot {
        LocalHist::new().snapshot()
    }
}

impl HistSnapshot {
    /// Values counted (the sum of the bucket counts).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the values (wrapping after 2^64).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Mean value; 0.0 when empty (whose sum is 0).
    pub fn mean(&self) -> f64 {
        self.sum as f64 / self.count.max(1) as f64
    }

    /// Smallest value; 0 when empty.
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Largest value; 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Count per bucket; see [`bucket_bounds`] for what each one holds.
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    /// The `p`-th percentile (`p` in 0.0..=100.0, clamped; NaN counts as 0)
    /// by nearest rank: the value `v` of rank `max(1, ceil(p / 100 * count))`
    /// in sorted order. Returns the upper bound of the bucket holding that
    /// rank, clamped to [`min`](Self::min)..=[`max`](Self::max): never below
    /// `v`, and above it by less than `v / SUB_BUCKETS` (6.25%; exact below
    /// 32). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // Out-of-range and NaN `p` fall to rank 1 or `count` (`as` saturates).
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return bucket_bounds(i).1.min(self.max).max(self.min);
            }
        }
        self.max
    }

    /// Adds `other`'s values to this snapshot, as if both histograms had
    /// recorded into one (e.g. several net tiles' latencies).
    pub fn merge(&mut self, other: &HistSnapshot) {
        if other.count == 0 {
            return;
        }
        let min = if self.count == 0 { u64::MAX } else { self.min };
        self.min = min.min(other.min);
        self.max = self.max.max(other.max);
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn local(values: impl IntoIterator<Item = u64>) -> HistSnapshot {
        let mut h = LocalHist::new();
        values.into_iter().for_each(|v| h.record(v));
        h.snapshot()
    }

    #[test]
    fn layout_and_bucket_table() {
        assert_eq!((Hist::ALIGN, Hist::footprint(), BUCKETS), (64, 7936, 976));
        assert_eq!(<Hist as ShmObject>::footprint(&()), Some(7936));
        assert_eq!(Hist::MAGIC.to_be_bytes(), *b"tw.hist\x01");
        for (ns, index) in [(0, 0), (31, 31), (32, 32), (33, 32), (34, 33), (64, 48)] {
            assert_eq!(bucket_index(ns), index, "{ns}");
        }
        let top = (bucket_index(u64::MAX), bucket_bounds(BUCKETS - 1).1);
        assert_eq!(top, (975, u64::MAX));
        let mut next = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!((lo, bucket_index(lo), bucket_index(hi)), (next, i, i));
            assert!((hi - lo) as u128 * SUB_BUCKETS as u128 <= lo as u128, "{i}");
            next = hi.wrapping_add(1);
        }
    }

    #[test]
    fn percentiles_of_known_distributions() {
        let s = local(1..=1000);
        assert_eq!((s.count(), s.min(), s.max()), (1000, 1, 1000));
        assert_eq!(s.mean(), 500.5);
        let (p50, p99) = (s.percentile(50.0), s.percentile(99.0));
        assert!((500..=500 + 500 / 16).contains(&p50), "p50 {p50}");
        assert!((990..=990 + 990 / 16).contains(&p99), "p99 {p99}");
        assert_eq!((s.percentile(0.0), s.percentile(f64::NAN)), (1, 1));
        assert_eq!((s.percentile(100.0), s.percentile(1e9)), (1000, 1000));
        for v in [0, 1, 31, 1_000_000_007, u64::MAX] {
            let s = local([v]);
            assert_eq!((s.count(), s.min(), s.max()), (1, v, v));
            assert_eq!([0.0, 50.0, 100.0].map(|p| s.percentile(p)), [v; 3]);
        }
        let s = local([u64::MAX, u64::MAX]);
        assert_eq!((s.sum(), s.percentile(99.0)), (u64::MAX - 1, u64::MAX));
        let mut empty = HistSnapshot::default();
        assert_eq!((empty.count(), empty.min(), empty.max()), (0, 0, 0));
        assert_eq!((empty.percentile(50.0), empty.mean()), (0, 0.0));
        empty.merge(&s);
        assert_eq!(empty, s, "merging into an empty snapshot copies");
        empty.merge(&HistSnapshot::default());
        assert_eq!(empty, s, "merging an empty snapshot changes nothing");
    }

    #[test]
    fn lifecycle_in_shared_memory() {
        use JoinError::{BadParams, NotInitialized};
        let mut buf = vec![0u8; HIST_FOOTPRINT + 2 * HIST_ALIGN];
        let off = buf.as_ptr().align_offset(HIST_ALIGN);
        let skewed = Region::from_mut(&mut buf[off + 8..off + 8 + HIST_FOOTPRINT]);
        let misaligned = Hist::new(skewed);
        assert!(matches!(misaligned, Err(NewError::Misaligned { .. })));
        let mem = Region::from_mut(&mut buf[off..off + HIST_FOOTPRINT]);
        let short = mem.sub(0, HIST_FOOTPRINT - 8).unwrap();
        assert!(matches!(Hist::new(short), Err(NewError::TooSmall { .. })));
        assert_eq!(Hist::new(mem.read_only()), Err(NewError::ReadOnly));
        assert_eq!(Hist::join(mem).unwrap_err(), NotInitialized);
        Hist::new(mem).unwrap();
        assert!(matches!(Hist::join(short), Err(JoinError::TooSmall { .. })));
        assert!(matches!(Hist::join(mem.read_only()), Err(BadParams { .. })));
        let mut h = Hist::join(mem).unwrap();
        (1..=1000).for_each(|v| h.record(v));
        let reader = Hist::join_reader(mem.read_only()).unwrap();
        assert_eq!(reader.snapshot(), local(1..=1000));
        assert_eq!(h.snapshot(), reader.snapshot());
        h.reset();
        assert_eq!(reader.snapshot(), local([]));
        assert_eq!(Hist::leave(h).len(), Hist::leave_reader(reader).len());
        let shape = mem.atomic_u64(W_SHAPE * 8).unwrap();
        shape.store(SHAPE + 1, Ordering::Relaxed);
        assert!(matches!(Hist::join_reader(mem), Err(BadParams { .. })));
        assert_eq!(Hist::delete(mem.read_only()), Err(DeleteError::ReadOnly));
        Hist::delete(mem).unwrap();
        assert_eq!(Hist::join(mem).unwrap_err(), NotInitialized);
    }

    #[test]
    fn snapshots_while_the_writer_runs_stay_sane() {
        let mut buf = vec![0u8; HIST_FOOTPRINT + HIST_ALIGN];
        let off = buf.as_ptr().align_offset(HIST_ALIGN);
        let mem = Region::from_mut(&mut buf[off..off + HIST_FOOTPRINT]);
        Hist::new(mem).unwrap();
        let (mut h, reader) = (Hist::join(mem).unwrap(), Hist::join_reader(mem).unwrap());
        std::thread::scope(|scope| {
            scope.spawn(move || (0..200_000u64).for_each(|i| h.record(100 + i % 5000)));
            let mut last = local([]);
            for _ in 0..200 {
                let s = reader.snapshot();
                let (min, p50, max) = (s.min(), s.percentile(50.0), s.max());
                assert!(s.count() >= last.count(), "counts only grow");
                assert!(s.count() == 0 || (100 <= min && min <= p50 && p50 <= max));
                assert!(max <= bucket_bounds(bucket_index(5099)).1);
                last = s;
            }
        });
        assert_eq!(reader.snapshot().count(), 200_000);
    }

    proptest! {
        #[test]
        fn percentile_error_is_within_one_sub_bucket(
            values in prop::collection::vec(
                prop_oneof![any::<u64>(), 0u64..100_000, (0u32..64).prop_map(|e| 1u64 << e)],
                1..300,
            ),
            p in 0.0f64..=100.0,
        ) {
            let s = local(values.iter().copied());
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let (exact, got) = (sorted[rank - 1], s.percentile(p));
            prop_assert!(got >= exact, "p{} {} < exact {}", p, got, exact);
            let over = (got - exact) as u128 * SUB_BUCKETS as u128;
            prop_assert!(over <= exact as u128, "p{} {} > {} + 1/16", p, got, exact);
            prop_assert_eq!((s.min(), s.max()), (sorted[0], sorted[sorted.len() - 1]));
            // Merging two halves is recording all of them into one.
            let (a, b) = values.split_at(values.len() / 2);
            let mut merged = local(a.iter().copied());
            merged.merge(&local(b.iter().copied()));
            prop_assert_eq!(merged, s);
        }
    }
}
