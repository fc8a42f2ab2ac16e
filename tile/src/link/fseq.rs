//! fseq: a consumer's published progress, and its diagnostic counters.
//!
//! # Layout
//!
//! ```text
//! 0    magic, seq0, flags (bit 0: reliable)   (static after new)
//! 64   seq: the next frag the consumer will read
//! 128  diagnostic counters, one u64 each (see DIAG_*)
//! ```
//!
//! The consumer is the only writer. It publishes `seq` now and then (at its
//! housekeeping, or every few frags), not on every frag: each publish is a
//! cache line the producer has to pull across cores. A *reliable* consumer's
//! seq is what the producer's credits are computed from: the producer never
//! runs more than a ring's depth ahead of the slowest reliable consumer. An
//! unreliable consumer's seq is only information (lag, for the monitor).

use core::sync::atomic::{AtomicU64, Ordering};

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{DeleteError, JoinError, NewError, Region, ShmObject};

const KIND: &str = "fseq";
const SEQ_OFF: usize = 64;
const DIAG_OFF: usize = 128;

/// Frags consumed (added with each progress publish, so it agrees with the
/// published progress and lags the consumer by as much).
pub const DIAG_PUB_CNT: usize = 0;
/// Payload bytes consumed (published like [`DIAG_PUB_CNT`]).
pub const DIAG_PUB_SZ: usize = 1;
/// Frags skipped by the consumer's filter.
pub const DIAG_FILT_CNT: usize = 2;
/// Payload bytes skipped.
pub const DIAG_FILT_SZ: usize = 3;
/// Times the producer lapped the consumer while it was polling.
pub const DIAG_OVRNP_CNT: usize = 4;
/// Frags lost to those overruns.
pub const DIAG_OVRNP_FRAGS: usize = 5;
/// Frags overwritten while the consumer was reading them (copy discarded).
pub const DIAG_OVRNR_CNT: usize = 6;
/// Frags whose chunk or size fell outside the dcache (dropped, never read).
pub const DIAG_BAD_CNT: usize = 7;
/// Frags skipped because their mcache line held a seq no producer can
/// have put there (a corrupt word: not the frag expected, nor one a lap
/// or a publish in progress leaves there).
pub const DIAG_CORRUPT_CNT: usize = 8;
/// Not a counter: the last frag counted in [`DIAG_BAD_CNT`], its chunk
/// and size packed as `chunk << 16 | sz` (0 while there was none), so
/// whoever reports the bad frags can name the value seen (see
/// [`bad_frag`]).
pub const DIAG_BAD_LAST: usize = 9;
/// Number of diagnostic counters (room for more: 16 words).
pub const DIAG_CNT: usize = 16;

const FOOTPRINT: usize = DIAG_OFF + DIAG_CNT * 8;

/// The fseq object (its verbs; handles are [`FseqHandle`]).
#[derive(Debug)]
pub enum Fseq {}

impl Fseq {
    /// Versioned magic.
    pub const MAGIC: u64 = magic(b"tw.fseq", 2);
    /// Alignment of the object.
    pub const ALIGN: usize = 64;

    /// Bytes for an fseq (fixed).
    pub const fn footprint() -> usize {
        FOOTPRINT
    }

    /// Formats `mem` as an fseq starting at `seq0`.
    ///
    /// # Errors
    /// Misaligned, too small or read-only memory.
    pub fn new(mem: Region<'_>, seq0: u64, reliable: bool) -> Result<(), NewError> {
        check_new(&mem, Self::ALIGN, FOOTPRINT)?;
        let w = mem
            .atomic_u64s(0, FOOTPRINT / 8)
            .ok_or(NewError::TooSmall {
                len: mem.len(),
                need: FOOTPRINT,
            })?;
        // Relaxed: publish_magic's Release orders these.
        w[1].store(seq0, Ordering::Relaxed);
        w[2].store(reliable as u64, Ordering::Relaxed);
        w[SEQ_OFF / 8].store(seq0, Ordering::Relaxed);
        for d in &w[DIAG_OFF / 8..] {
            d.store(0, Ordering::Relaxed);
        }
        publish_magic(&mem, Self::MAGIC);
        Ok(())
    }

    /// Joins the fseq at `mem`.
    ///
    /// # Errors
    /// Misaligned or too small memory, wrong magic or version, bad flags.
    pub fn join(mem: Region<'_>) -> Result<FseqHandle<'_>, JoinError> {
        check_join(&mem, KIND, Self::MAGIC, Self::ALIGN, FOOTPRINT)?;
        let bad = JoinError::BadParams {
            kind: KIND,
            what: "layout",
        };
        let w = mem.atomic_u64s(0, FOOTPRINT / 8).ok_or(bad.clone())?;
        let flags = w[2].load(Ordering::Relaxed);
        if flags > 1 {
            return Err(JoinError::BadParams {
                kind: KIND,
                what: "unknown flags",
            });
        }
        Ok(FseqHandle {
            mem,
            seq: &w[SEQ_OFF / 8],
            diag: &w[DIAG_OFF / 8..],
            seq0: w[1].load(Ordering::Relaxed),
            reliable: flags == 1,
        })
    }

    /// Leaves: gives the memory back.
    pub fn leave(h: FseqHandle<'_>) -> Region<'_> {
        h.mem
    }

    /// Deletes the fseq at `mem` (zeroes the magic).
    ///
    /// # Errors
    /// Read-only memory, or no live fseq there.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, Self::MAGIC, Self::ALIGN)
    }
}

impl ShmObject for Fseq {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = Fseq::MAGIC;
    const ALIGN: usize = Fseq::ALIGN;
    type Params = ();
    fn footprint(_: &()) -> Option<usize> {
        Some(FOOTPRINT)
    }
}

/// A joined fseq.
#[derive(Debug, Clone, Copy)]
pub struct FseqHandle<'a> {
    mem: Region<'a>,
    seq: &'a AtomicU64,
    diag: &'a [AtomicU64],
    seq0: u64,
    reliable: bool,
}

impl<'a> FseqHandle<'a> {
    /// Does the producer wait for this consumer?
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// The seq the consumer started at.
    pub fn seq0(&self) -> u64 {
        self.seq0
    }

    /// The consumer's published next seq.
    ///
    /// SYNC: Acquire; pairs with the Release in [`FseqHandle::update`], so a
    /// producer that sees progress also sees that the consumer finished
    /// reading the frags before it (their payload chunks may be reused).
    #[inline]
    pub fn query(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Publishes the consumer's next seq.
    ///
    /// SYNC: Release; pairs with [`FseqHandle::query`].
    #[inline]
    pub fn update(&self, seq: u64) {
        self.seq.store(seq, Ordering::Release);
    }

    /// Frags this consumer lost: lapped while polling
    /// ([`DIAG_OVRNP_FRAGS`]) and overwritten while it read them
    /// ([`DIAG_OVRNR_CNT`]).
    pub fn lost(&self) -> u64 {
        self.diag(DIAG_OVRNP_FRAGS) + self.diag(DIAG_OVRNR_CNT)
    }

    /// Diagnostic counter `i` (one of the `DIAG_*` constants).
    ///
    /// # Panics
    /// If `i >= DIAG_CNT`.
    pub fn diag(&self, i: usize) -> u64 {
        // SYNC: Relaxed; counters are statistics, not synchronisation.
        self.diag[i].load(Ordering::Relaxed)
    }

    /// Sets diagnostic word `i` (the consumer is the only writer).
    ///
    /// # Panics
    /// If `i >= DIAG_CNT`.
    pub fn diag_set(&self, i: usize, v: u64) {
        // SYNC: Relaxed; single writer, readers only want a recent value.
        self.diag[i].store(v, Ordering::Relaxed);
    }

    /// Adds `n` to diagnostic counter `i` (the consumer is the only writer).
    ///
    /// # Panics
    /// If `i >= DIAG_CNT`.
    #[inline]
    pub fn diag_add(&self, i: usize, n: u64) {
        // SYNC: Relaxed; single writer, readers only want a recent value.
        let d = &self.diag[i];
        d.store(d.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// The chunk and size of the last bad frag, from the word at
/// [`DIAG_BAD_LAST`]; `None` if there was none.
pub fn bad_frag(word: u64) -> Option<(u32, u16)> {
    (word != 0).then_some(((word >> 16) as u32, word as u16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::HeapMem;

    #[test]
    fn lifecycle_progress_and_counters() {
        let mut m = HeapMem::new(Fseq::footprint());
        let r = m.region();
        Fseq::new(r, 42, true).unwrap();
        let f = Fseq::join(r).unwrap();
        assert!(f.reliable());
        assert_eq!((f.seq0(), f.query()), (42, 42));
        f.update(50);
        f.diag_add(DIAG_OVRNP_FRAGS, 7);
        f.diag_add(DIAG_OVRNP_FRAGS, 3);
        let again = Fseq::join(r).unwrap();
        assert_eq!(again.query(), 50);
        assert_eq!(again.diag(DIAG_OVRNP_FRAGS), 10);
        f.diag_add(DIAG_OVRNR_CNT, 2);
        f.diag_add(DIAG_FILT_CNT, 5);
        assert_eq!(again.lost(), 12, "lapped and torn, not filtered");
        r.atomic_u64(16).unwrap().store(9, Ordering::Relaxed);
        assert!(matches!(Fseq::join(r), Err(JoinError::BadParams { .. })));
        r.atomic_u64(16).unwrap().store(0, Ordering::Relaxed);
        Fseq::delete(r).unwrap();
        assert_eq!(Fseq::join(r).unwrap_err(), JoinError::NotInitialized);
        assert!(matches!(
            Fseq::join(r.sub(0, 100).unwrap()),
            Err(JoinError::TooSmall { .. })
        ));
    }
}
