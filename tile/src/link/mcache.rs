//! mcache: the ring of frag metadata at the heart of a link.
//!
//! # Layout
//!
//! ```text
//! 0    magic, depth, seq0                 (static after new)
//! 64   seq: the producer's published next sequence number
//! 72   sleepers: consumers parked on this link (see Parking)
//! 80   wake: the word parked consumers sleep on (incremented to wake them)
//! 128  depth lines of 32 bytes: [seq, sig, chunk|sz|ctl, tsorig|tspub]
//! ```
//!
//! Frag `seq` lives on line `seq & (depth - 1)`. Every word is an atomic, so
//! nothing a producer does can make a consumer's read undefined, only stale.
//!
//! # Publishing (one producer)
//!
//! 1. [`MCacheHandle::invalidate`]: store `seq - 1` into the line's seq
//!    (Relaxed), then a Release fence. From here on a consumer that
//!    re-checks the line sees the old frag is gone. The producer does this
//!    *before* it overwrites any payload bytes a consumer might still be
//!    copying (see the dcache's sizing rule), so a torn copy is always
//!    caught.
//! 2. write the payload (the dcache), then the line's other fields (Relaxed).
//! 3. [`MCacheHandle::commit`]: store `seq` into the line's seq with Release.
//!
//! [`MCacheHandle::publish`] does 1 and 3 around the field stores for a frag
//! whose payload is already in place.
//!
//! # Consuming (any number of readers, each with its own position)
//!
//! [`MCacheHandle::peek`] loads the line's seq with Acquire and compares it
//! with the seq the consumer wants:
//! - older: not published yet ([`Peek::NotYet`]);
//! - newer: the producer lapped the consumer while it was polling
//!   ([`Peek::Overrun`], "overrun while polling"); the consumer resyncs to
//!   the producer's position and counts the frags it lost;
//! - equal: the fields are read and returned ([`Peek::Ready`]).
//!
//! The consumer then copies the payload and calls [`MCacheHandle::check`]:
//! an Acquire fence and a re-load of the line's seq. If it changed, the
//! producer overwrote the frag while it was being read ("overrun while
//! reading") and the copy must be discarded. These orderings are explicit;
//! nothing assumes x86's total store order.
//!
//! # Parking
//!
//! A consumer with nothing to read may sleep instead of spinning
//! ([`MCacheHandle::park`]): it reads the wake word, counts itself in
//! `sleepers`, makes every registered thread fence
//! ([`heavy_fence`]), looks once more for
//! its frag, and only then sleeps on the wake word (a shared futex, so a
//! producer in another process wakes it). The producer pays one Relaxed
//! load of `sleepers` per commit and nothing else while nobody sleeps; when
//! somebody does, it clears `sleepers`, increments the wake word and wakes
//! them all. A consumer never uncounts itself (a woken one that parks again
//! counts itself again), so a consumer killed while it slept costs its
//! producer one wake, at its next commit, and nothing after. The
//! fence is what makes that one load enough: a commit still in the
//! producer's store buffer when the consumer looked is visible after the
//! fence, and a commit made after it is followed by a load that sees the
//! consumer counted, so no wake is lost. Producers register for the fence
//! when they are made ([`register_for_fences`](tilewire_shmem::wait::register_for_fences));
//! where the kernel has no such fence the park is bounded to
//! [`PARK_UNFENCED_MAX`].

use core::sync::atomic::{compiler_fence, fence, AtomicU64, Ordering};
use std::time::Duration;

use tilewire_shmem::wait::{futex_wait, futex_wake_all, heavy_fence};

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{DeleteError, JoinError, NewError, Region, ShmObject};

use crate::link::frag::{seq_diff, FragMeta, CTL_ERR};

const KIND: &str = "mcache";
const HDR: usize = 128;
const SEQ_OFF: usize = 64;
const SLEEPERS_OFF: usize = 72;
const WAKE_OFF: usize = 80;

/// Longest a [`MCacheHandle::park`] sleeps where the kernel cannot make the
/// producer fence (a missed wake costs at most this).
pub const PARK_UNFENCED_MAX: Duration = Duration::from_micros(200);
const LINE_WORDS: usize = 4;

/// Smallest depth.
pub const DEPTH_MIN: u64 = 2;
/// Largest depth.
pub const DEPTH_MAX: u64 = 1 << 28;
/// Deepest ring whose lines [`MCacheHandle::published_next`] scans for the
/// newest frag (2 MiB of lines); deeper rings report the producer's
/// published position, which trails by up to one housekeeping interval.
pub const SCAN_DEPTH_MAX: u64 = 1 << 16;

/// The mcache object (its verbs; handles are [`MCacheHandle`]).
#[derive(Debug)]
pub enum MCache {}

impl MCache {
    /// Versioned magic.
    pub const MAGIC: u64 = magic(b"tw.mcch", 1);
    /// Alignment of the object.
    pub const ALIGN: usize = 128;

    /// Bytes for a ring of `depth` frags, `None` unless `depth` is a power
    /// of two in `DEPTH_MIN..=DEPTH_MAX`.
    pub const fn footprint(depth: u64) -> Option<usize> {
        if depth < DEPTH_MIN || depth > DEPTH_MAX || !depth.is_power_of_two() {
            return None;
        }
        Some(HDR + depth as usize * LINE_WORDS * 8)
    }

    /// Formats `mem` as an mcache of `depth` lines whose first frag will be
    /// `seq0`. Every line starts out holding an old, error-flagged frag, so a
    /// consumer that starts at `seq0` waits and one that starts earlier is
    /// told it is behind.
    ///
    /// # Errors
    /// [`NewError::BadParams`] for a bad depth; misaligned, too small or
    /// read-only memory.
    pub fn new(mem: Region<'_>, depth: u64, seq0: u64) -> Result<(), NewError> {
        let fp = Self::footprint(depth).ok_or(NewError::BadParams {
            what: "depth must be a power of two in 2..=2^28",
        })?;
        check_new(&mem, Self::ALIGN, fp)?;
        let w = mem.atomic_u64s(0, fp / 8).ok_or(NewError::TooSmall {
            len: mem.len(),
            need: fp,
        })?;
        // Relaxed throughout: publish_magic's Release orders all of it.
        w[1].store(depth, Ordering::Relaxed);
        w[2].store(seq0, Ordering::Relaxed);
        w[SEQ_OFF / 8].store(seq0, Ordering::Relaxed);
        w[SLEEPERS_OFF / 8].store(0, Ordering::Relaxed);
        w[WAKE_OFF / 8].store(0, Ordering::Relaxed);
        let (w2, w3) = FragMeta::pack(0, 0, CTL_ERR, 0, 0);
        for i in 0..depth {
            let seq = seq0.wrapping_sub(depth).wrapping_add(i);
            let line = &w[HDR / 8 + ((seq & (depth - 1)) as usize) * LINE_WORDS..][..LINE_WORDS];
            line[0].store(seq, Ordering::Relaxed);
            line[1].store(0, Ordering::Relaxed);
            line[2].store(w2, Ordering::Relaxed);
            line[3].store(w3, Ordering::Relaxed);
        }
        publish_magic(&mem, Self::MAGIC);
        Ok(())
    }

    /// Joins the mcache at `mem`.
    ///
    /// # Errors
    /// Misaligned or too small memory, wrong magic or version, or a stored
    /// depth that is invalid or does not fit in `mem`.
    pub fn join(mem: Region<'_>) -> Result<MCacheHandle<'_>, JoinError> {
        check_join(&mem, KIND, Self::MAGIC, Self::ALIGN, HDR)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let hdr = mem.atomic_u64s(0, 3).ok_or(bad("header"))?;
        let depth = hdr[1].load(Ordering::Relaxed);
        let fp = Self::footprint(depth).ok_or(bad("depth is not a power of two in range"))?;
        if fp > mem.len() {
            return Err(JoinError::TooSmall {
                len: mem.len(),
                need: fp,
            });
        }
        let lines = mem
            .atomic_u64s(HDR, depth as usize * LINE_WORDS)
            .ok_or(bad("lines"))?;
        let seq = mem.atomic_u64(SEQ_OFF).ok_or(bad("seq"))?;
        let sleepers = mem.atomic_u64(SLEEPERS_OFF).ok_or(bad("sleepers"))?;
        let wake = mem.atomic_u64(WAKE_OFF).ok_or(bad("wake"))?;
        Ok(MCacheHandle {
            mem,
            lines,
            seq,
            sleepers,
            wake,
            depth,
            mask: depth - 1,
            seq0: hdr[2].load(Ordering::Relaxed),
        })
    }

    /// Leaves: gives the memory back.
    pub fn leave(h: MCacheHandle<'_>) -> Region<'_> {
        h.mem
    }

    /// Deletes the mcache at `mem` (zeroes the magic).
    ///
    /// # Errors
    /// Read-only memory, or no live mcache there.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, Self::MAGIC, Self::ALIGN)
    }
}

impl ShmObject for MCache {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = MCache::MAGIC;
    const ALIGN: usize = MCache::ALIGN;
    type Params = u64;
    fn footprint(depth: &u64) -> Option<usize> {
        MCache::footprint(*depth)
    }
}

/// What a consumer finds at the seq it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// The frag is there (its payload still has to be copied and checked).
    Ready(FragMeta),
    /// Not published yet.
    NotYet,
    /// Already overwritten: the line holds `seq_found`, newer than wanted.
    Overrun {
        /// The seq found on the line.
        seq_found: u64,
    },
}

/// A joined mcache.
#[derive(Debug, Clone, Copy)]
pub struct MCacheHandle<'a> {
    mem: Region<'a>,
    lines: &'a [AtomicU64],
    seq: &'a AtomicU64,
    sleepers: &'a AtomicU64,
    wake: &'a AtomicU64,
    depth: u64,
    mask: u64,
    seq0: u64,
}

impl<'a> MCacheHandle<'a> {
    /// Lines in the ring.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// The first seq this mcache was made for.
    pub fn seq0(&self) -> u64 {
        self.seq0
    }

    #[inline]
    fn line(&self, seq: u64) -> &'a [AtomicU64] {
        let i = ((seq & self.mask) as usize) * LINE_WORDS;
        &self.lines[i..i + LINE_WORDS]
    }

    /// Step 1 of publishing `seq`: mark its line as being rewritten.
    ///
    /// SYNC: the Release fence orders this store (and everything before it)
    /// before every later store of the producer, payload bytes included;
    /// pairs with the Acquire fence in [`MCacheHandle::check`].
    #[inline]
    pub fn invalidate(&self, seq: u64) {
        self.line(seq)[0].store(seq.wrapping_sub(1), Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Step 2 and 3: write the fields of frag `seq` and make it visible.
    /// [`MCacheHandle::invalidate`] must have been called for `seq` before
    /// its payload was written.
    ///
    /// SYNC: the final Release store pairs with the Acquire load in
    /// [`MCacheHandle::peek`]: a consumer that sees `seq` sees the fields
    /// and the payload written before it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn commit(
        &self,
        seq: u64,
        sig: u64,
        chunk: u32,
        sz: u16,
        ctl: u16,
        tsorig: u32,
        tspub: u32,
    ) {
        let line = self.line(seq);
        let (w2, w3) = FragMeta::pack(chunk, sz, ctl, tsorig, tspub);
        line[1].store(sig, Ordering::Relaxed);
        line[2].store(w2, Ordering::Relaxed);
        line[3].store(w3, Ordering::Relaxed);
        line[0].store(seq, Ordering::Release);
        // SYNC: a Release store lets later loads move before it; this
        // compiler fence (no instruction) keeps the load below after the
        // store above in the code emitted, which is the order the heavy
        // fence of a parking consumer relies on (see Parking).
        compiler_fence(Ordering::SeqCst);
        // SYNC: Relaxed; the consumer's heavy fence in `park` orders this
        // load after the store above (see Parking in the module docs).
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_sleepers();
        }
    }

    /// Wakes every consumer parked on this link.
    #[cold]
    #[inline(never)]
    pub fn wake_sleepers(&self) {
        // SYNC: SeqCst; a consumer counting itself after this swap reads
        // from it, so it sees the commit before it and does not sleep.
        self.sleepers.swap(0, Ordering::SeqCst);
        // SYNC: Release; a woken consumer's Acquire peek sees the commit.
        self.wake.fetch_add(1, Ordering::Release);
        futex_wake_all(self.wake);
    }

    /// Consumers that parked on this link since its producer last woke
    /// them: the ones asleep now, and any that stopped waiting on their own
    /// (a timeout, a frag found at the last look) or died asleep. The next
    /// commit clears it.
    pub fn sleepers(&self) -> u64 {
        self.sleepers.load(Ordering::Relaxed)
    }

    /// True if `other` is a handle to this same mcache.
    pub fn same(&self, other: &MCacheHandle<'_>) -> bool {
        core::ptr::eq(self.seq, other.seq)
    }

    /// Times the producer woke parked consumers (the wake word).
    pub fn wakes(&self) -> u64 {
        self.wake.load(Ordering::Relaxed)
    }

    /// Sleeps until frag `seq` is published (or the line moved past it),
    /// `timeout` passes or the consumer is woken; returns whether the line
    /// no longer says "not yet". See Parking in the module docs: a wake is
    /// never lost, so `timeout` only bounds how long a consumer goes
    /// without its housekeeping.
    pub fn park(&self, seq: u64, timeout: Duration) -> bool {
        let ready = |m: &Self| !matches!(m.peek(seq), Peek::NotYet);
        // SYNC: Acquire; pairs with the Release increment in wake_sleepers.
        let seen = self.wake.load(Ordering::Acquire);
        // SYNC: SeqCst, then the heavy fence; pairs with the producer's
        // Relaxed load in commit (the fence orders it).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let fenced = heavy_fence();
        if !ready(self) {
            let t = if fenced {
                timeout
            } else {
                timeout.min(PARK_UNFENCED_MAX)
            };
            futex_wait(self.wake, seen, t);
        }
        // Not uncounted: the producer's next commit clears the count (see
        // Parking), which a consumer that died here could not do.
        ready(self)
    }

    /// Invalidate and commit in one, for a frag whose payload is already in
    /// place (written before an earlier invalidate, or never read by anyone
    /// who could be lapped).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn publish(
        &self,
        seq: u64,
        sig: u64,
        chunk: u32,
        sz: u16,
        ctl: u16,
        tsorig: u32,
        tspub: u32,
    ) {
        self.invalidate(seq);
        self.commit(seq, sig, chunk, sz, ctl, tsorig, tspub);
    }

    /// What the line of `seq` holds now.
    ///
    /// SYNC: Acquire; pairs with the Release store in
    /// [`MCacheHandle::commit`].
    #[inline]
    pub fn peek(&self, seq: u64) -> Peek {
        let line = self.line(seq);
        let found = line[0].load(Ordering::Acquire);
        match seq_diff(found, seq) {
            d if d < 0 => Peek::NotYet,
            d if d > 0 => Peek::Overrun { seq_found: found },
            _ => Peek::Ready(FragMeta::unpack(
                seq,
                line[1].load(Ordering::Relaxed),
                line[2].load(Ordering::Relaxed),
                line[3].load(Ordering::Relaxed),
            )),
        }
    }

    /// After reading frag `seq` (fields and payload): true if it was not
    /// overwritten meanwhile, so the copy is good.
    ///
    /// SYNC: the Acquire fence orders every load before it (payload copy,
    /// fields) before the re-load; pairs with the Release fence in
    /// [`MCacheHandle::invalidate`].
    #[inline]
    pub fn check(&self, seq: u64) -> bool {
        fence(Ordering::Acquire);
        self.line(seq)[0].load(Ordering::Relaxed) == seq
    }

    /// The producer's published next seq (updated at its housekeeping).
    /// Where a lapped consumer resyncs to.
    ///
    /// SYNC: Acquire; pairs with [`MCacheHandle::seq_update`].
    pub fn seq_query(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The newest seq on any line, judged relative to [`MCacheHandle::seq_query`]
    /// (an O(depth) scan, for a producer that restarts).
    pub fn newest_seq(&self) -> u64 {
        let base = self.seq_query();
        self.lines
            .chunks_exact(LINE_WORDS)
            // SYNC: Relaxed; a restart scan only needs values, and the
            // producer that wrote them is gone.
            .map(|l| l[0].load(Ordering::Relaxed))
            .max_by_key(|&s| seq_diff(s, base))
            .unwrap_or(base)
    }

    /// One past the newest frag published, as a reader beside the
    /// producer tells it (a monitor, the runner's report): found on the
    /// lines ([`MCacheHandle::newest_seq`]) for rings up to
    /// [`SCAN_DEPTH_MAX`] deep, else the producer's published position
    /// ([`MCacheHandle::seq_query`]).
    pub fn published_next(&self) -> u64 {
        if self.depth() <= SCAN_DEPTH_MAX {
            self.newest_seq().wrapping_add(1)
        } else {
            self.seq_query()
        }
    }

    /// Publishes the producer's next seq.
    ///
    /// SYNC: Release; pairs with [`MCacheHandle::seq_query`].
    pub fn seq_update(&self, seq: u64) {
        self.seq.store(seq, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprint_rules() {
        assert_eq!(MCache::footprint(2), Some(128 + 64));
        assert_eq!(MCache::footprint(1024), Some(128 + 32 * 1024));
        for bad in [0, 1, 3, 1000, DEPTH_MAX * 2] {
            assert_eq!(MCache::footprint(bad), None, "{bad}");
        }
    }

    #[test]
    fn publish_peek_check_and_lapping() {
        let mut buf = crate::heap::HeapMem::new(MCache::footprint(16).unwrap());
        let r = buf.region();
        MCache::new(r, 16, 100).unwrap();
        let mc = MCache::join(r).unwrap();
        assert_eq!(mc.seq_query(), 100);
        assert_eq!(mc.peek(100), Peek::NotYet);
        assert!(
            matches!(mc.peek(99), Peek::Ready(m) if m.err()),
            "initial lines are old, flagged frags"
        );
        mc.publish(100, 7, 3, 64, 3, 1, 2);
        match mc.peek(100) {
            Peek::Ready(m) => {
                assert_eq!(
                    (m.sig, m.chunk, m.sz, m.ctl, m.tsorig, m.tspub),
                    (7, 3, 64, 3, 1, 2)
                );
                assert!(mc.check(100));
            }
            other => panic!("{other:?}"),
        }
        mc.publish(116, 8, 0, 0, 3, 0, 0);
        assert_eq!(mc.peek(100), Peek::Overrun { seq_found: 116 });
        assert!(!mc.check(100), "re-check notices the overwrite");
        mc.invalidate(132);
        assert_eq!(
            mc.peek(132),
            Peek::NotYet,
            "mid-publish the new frag reads as not yet"
        );
        assert!(
            matches!(mc.peek(116), Peek::Overrun { .. }),
            "and the old one as gone"
        );
    }

    #[test]
    fn join_refuses_bad_depths_and_short_memory() {
        let mut buf = crate::heap::HeapMem::new(MCache::footprint(16).unwrap());
        let r = buf.region();
        assert!(matches!(
            MCache::new(r, 3, 0),
            Err(NewError::BadParams { .. })
        ));
        MCache::new(r, 16, 0).unwrap();
        let short = r.sub(0, 128 + 32 * 8).unwrap();
        assert!(matches!(
            MCache::join(short),
            Err(JoinError::TooSmall { .. })
        ));
        r.atomic_u64(8).unwrap().store(5, Ordering::Relaxed);
        assert!(matches!(MCache::join(r), Err(JoinError::BadParams { .. })));
        r.atomic_u64(8).unwrap().store(16, Ordering::Relaxed);
        MCache::delete(r).unwrap();
        assert!(matches!(MCache::join(r), Err(JoinError::NotInitialized)));
    }
}
