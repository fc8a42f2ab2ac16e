//! The consumer side of a link: polling, overrun detection and progress.
//!
//! See [`crate::link`] for how a consumer's progress gives the producer
//! credits and how a restarted consumer continues.

use core::sync::atomic::AtomicU8;

use crate::dcache::DCacheHandle;
use crate::frag::FragMeta;
use crate::fseq::{
    FseqHandle, DIAG_BAD_CNT, DIAG_FILT_CNT, DIAG_FILT_SZ, DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS,
    DIAG_OVRNR_CNT, DIAG_PUB_CNT, DIAG_PUB_SZ,
};
use crate::mcache::{MCacheHandle, Peek};

/// What one poll of a consumer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<R> {
    /// A frag, and what the reader made of its payload.
    Frag(FragMeta, R),
    /// Nothing new.
    Empty,
    /// The producer lapped this consumer; it resynced and lost `lost` frags
    /// (0 when the frag was overwritten while being read).
    Overrun {
        /// Frags skipped.
        lost: u64,
    },
    /// The frag's chunk or size fell outside the dcache; it was counted and
    /// skipped without reading a byte.
    Dropped(FragMeta),
}

/// Reads frags from a link.
#[derive(Debug)]
pub struct Consumer<'w> {
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    fseq: FseqHandle<'w>,
    seq: u64,
    publish_mask: u64,
}

impl<'w> Consumer<'w> {
    pub(crate) fn new(
        mcache: MCacheHandle<'w>,
        dcache: DCacheHandle<'w>,
        fseq: FseqHandle<'w>,
    ) -> Consumer<'w> {
        // Progress is published every depth/8 frags (at least every frag
        // for tiny rings), so the producer sees credits return in steps.
        let every = (mcache.depth() / 8).max(1).next_power_of_two();
        Consumer {
            seq: fseq.query(),
            mcache,
            dcache,
            fseq,
            publish_mask: every - 1,
        }
    }

    /// The next seq this consumer will read.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// This consumer's fseq (progress and counters).
    pub fn fseq(&self) -> &FseqHandle<'w> {
        &self.fseq
    }

    /// Polls for the next frag and, if there is one, lets `read` look at its
    /// metadata and payload (shared bytes, read with relaxed atomics; see
    /// [`tilewire_shmem::load_bytes`]). The result of `read` is returned
    /// only if the frag was not overwritten while it ran; otherwise it is
    /// discarded and the overrun counted.
    #[inline]
    pub fn poll_with<R>(&mut self, read: impl FnOnce(&FragMeta, &[AtomicU8]) -> R) -> Poll<R> {
        let seq = self.seq;
        match self.mcache.peek(seq) {
            Peek::NotYet => {
                self.fseq.update(seq);
                Poll::Empty
            }
            Peek::Overrun { seq_found } => {
                // Resync to the newest frag seen: a consumer slow enough to
                // be lapped once would be lapped again at once if it
                // resumed at the oldest frag still on the ring.
                let lost = seq_found.wrapping_sub(seq);
                self.fseq.diag_add(DIAG_OVRNP_CNT, 1);
                self.fseq.diag_add(DIAG_OVRNP_FRAGS, lost);
                self.seq = seq_found;
                Poll::Overrun { lost }
            }
            Peek::Ready(meta) => {
                let Some(bytes) = self.dcache.bytes(meta.chunk, meta.sz as usize) else {
                    self.fseq.diag_add(DIAG_BAD_CNT, 1);
                    self.advance();
                    return Poll::Dropped(meta);
                };
                let r = read(&meta, bytes);
                if !self.mcache.check(seq) {
                    self.fseq.diag_add(DIAG_OVRNR_CNT, 1);
                    return Poll::Overrun { lost: 0 };
                }
                self.fseq.diag_add(DIAG_PUB_CNT, 1);
                self.fseq.diag_add(DIAG_PUB_SZ, meta.sz as u64);
                self.advance();
                Poll::Frag(meta, r)
            }
        }
    }

    /// Polls and copies the payload into `buf` (which must hold an mtu);
    /// returns the frag with its size.
    #[inline]
    pub fn poll_copy(&mut self, buf: &mut [u8]) -> Poll<()> {
        self.poll_with(|m, bytes| {
            let n = (m.sz as usize).min(buf.len());
            tilewire_shmem::load_bytes(&mut buf[..n], &bytes[..n]);
        })
    }

    /// Skips the frag at the current seq without reading its payload (a
    /// filter said no), counting it.
    pub fn skip(&mut self, sz: u16) {
        self.fseq.diag_add(DIAG_FILT_CNT, 1);
        self.fseq.diag_add(DIAG_FILT_SZ, sz as u64);
        self.advance();
    }

    #[inline]
    fn advance(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        if self.seq & self.publish_mask == 0 {
            self.fseq.update(self.seq);
        }
    }

    /// Publishes progress now. Call it at housekeeping and before leaving.
    pub fn housekeeping(&mut self) {
        self.fseq.update(self.seq);
    }
}
