//! The consumer side of a link: polling, overrun detection and progress.
//!
//! See [`crate::link`] for how a consumer's progress gives the producer
//! credits and how a restarted consumer continues.

use core::sync::atomic::AtomicU8;

use crate::link::dcache::DCacheHandle;
use crate::link::frag::{seq_diff, FragMeta};
use crate::link::fseq::{
    FseqHandle, DIAG_BAD_CNT, DIAG_BAD_LAST, DIAG_CORRUPT_CNT, DIAG_FILT_CNT, DIAG_FILT_SZ,
    DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS, DIAG_OVRNR_CNT, DIAG_PUB_CNT, DIAG_PUB_SZ,
};
use crate::link::mcache::{MCacheHandle, Peek};

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

/// What [`Consumer::next_frag`] found at the consumer's seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A frag: its metadata, read speculatively (its payload is next).
    Ready(FragMeta),
    /// Nothing new.
    Empty,
    /// The producer lapped this consumer; it resynced and lost `lost` frags.
    Overrun {
        /// Frags skipped.
        lost: u64,
    },
}

/// Reads frags from a link.
#[derive(Debug)]
pub struct Consumer<'w> {
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    /// Other dcaches a frag's chunk may lie in: those of links upstream
    /// whose frags were forwarded onto this one (see
    /// [`crate::link::ledger`]).
    sources: Vec<DCacheHandle<'w>>,
    fseq: FseqHandle<'w>,
    seq: u64,
    /// Published progress never passes this seq, when set: input frags a
    /// forwarding tile's output readers may still read (see
    /// [`Consumer::limit_progress`]).
    limit: Option<u64>,
    publish_mask: u64,
    /// Frags read but not yet passed on by their reader (see
    /// [`Consumer::hold`]); published progress stops before them.
    held: u64,
    /// Frags and bytes consumed since the last progress publish, not yet
    /// added to the fseq's counters.
    pub_cnt: u64,
    pub_sz: u64,
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
            sources: Vec::new(),
            fseq,
            limit: None,
            publish_mask: every - 1,
            held: 0,
            pub_cnt: 0,
            pub_sz: 0,
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

    /// True if the producer never overruns this consumer.
    pub fn is_reliable(&self) -> bool {
        self.fseq.reliable()
    }

    /// Lets frags whose chunk lies in `dcache` through: the dcache of a
    /// link upstream whose frags a forwarding producer passes on to this
    /// link by chunk (see [`crate::link::ledger`]). A frag whose bytes lie
    /// in none of the consumer's dcaches is counted as bad and skipped
    /// unread, as before. Adding a dcache twice, or the link's own, changes
    /// nothing.
    pub fn accept_chunks_of(&mut self, dcache: DCacheHandle<'w>) {
        let same = |d: &DCacheHandle<'w>| d.chunk0() == dcache.chunk0();
        if !same(&self.dcache) && !self.sources.iter().any(same) {
            self.sources.push(dcache);
        }
    }

    /// Published progress will not pass `seq` (when `Some`), whatever the
    /// consumer read: a tile that forwarded input frags by chunk holds them
    /// until its output's readers passed them (see
    /// [`crate::link::ledger`]). `None` lifts the limit. Takes effect at the
    /// next progress publish.
    #[inline]
    pub fn limit_progress(&mut self, seq: Option<u64>) {
        self.limit = seq;
    }

    /// Step 1 of reading a frag by hand (the run loop's way): what is at
    /// the consumer's seq. An overrun is counted and resynced here;
    /// `Empty` publishes progress (an idle consumer hands back all its
    /// credits).
    #[inline]
    pub fn next_frag(&mut self) -> Next {
        let seq = self.seq;
        match self.mcache.peek(seq) {
            Peek::NotYet => {
                self.publish();
                Next::Empty
            }
            Peek::Overrun { seq_found } => {
                // A lap leaves a later frag of the same line there (seq +
                // k * depth), a publish in progress that frag's seq - 1,
                // and no frag the producer has not reached: its published
                // position lags it by one housekeeping, never by 2^32
                // frags. Any other seq is a corrupt word: skip the one frag
                // whose line it is (counted), rather than count garbage as
                // lost or jump to it.
                let off = seq_found.wrapping_sub(seq) & (self.mcache.depth() - 1);
                let beyond = seq_diff(seq_found, self.mcache.seq_query()) > 1 << 32;
                if (off != 0 && off != self.mcache.depth() - 1) || beyond {
                    self.fseq.diag_add(DIAG_CORRUPT_CNT, 1);
                    self.advance();
                    return Next::Overrun { lost: 1 };
                }
                // Resync to the newest frag seen: a consumer slow enough to
                // be lapped once would be lapped again at once if it
                // resumed at the oldest frag still on the ring.
                let lost = seq_found.wrapping_sub(seq);
                self.fseq.diag_add(DIAG_OVRNP_CNT, 1);
                self.fseq.diag_add(DIAG_OVRNP_FRAGS, lost);
                self.seq = seq_found;
                Next::Overrun { lost }
            }
            Peek::Ready(meta) => Next::Ready(meta),
        }
    }

    /// Step 2: the payload bytes of `meta` (from [`Consumer::next_frag`]), to be
    /// read speculatively. `None` if its chunk or size falls outside the
    /// dcache: the frag is then counted as bad and skipped, and not a byte
    /// was read.
    #[inline]
    pub fn payload(&mut self, meta: &FragMeta) -> Option<&'w [AtomicU8]> {
        let sz = meta.sz as usize;
        let mut bytes = self.dcache.bytes(meta.chunk, sz);
        if bytes.is_none() {
            bytes = self.sources.iter().find_map(|d| d.bytes(meta.chunk, sz));
        }
        if bytes.is_none() {
            // No healthy producer points outside its dcache: the place is
            // kept for whoever reports it (the runner, the monitor).
            self.fseq
                .diag_set(DIAG_BAD_LAST, (meta.chunk as u64) << 16 | meta.sz as u64);
            self.fseq.diag_add(DIAG_BAD_CNT, 1);
            self.advance();
        }
        bytes
    }

    /// Step 3, after reading the payload: true if the frag was not
    /// overwritten meanwhile, so what was read is good; the frag is then
    /// counted and the consumer moves past it. False means an overrun while
    /// reading (counted): discard what was read; the next
    /// [`Consumer::next_frag`] resyncs.
    #[inline]
    pub fn finish(&mut self, meta: &FragMeta) -> bool {
        if !self.mcache.check(meta.seq) {
            self.fseq.diag_add(DIAG_OVRNR_CNT, 1);
            return false;
        }
        // Counted here, written to the fseq with the progress: two fewer
        // shared stores per frag.
        self.pub_cnt += 1;
        self.pub_sz += meta.sz as u64;
        self.advance();
        true
    }

    /// Polls for the next frag and, if there is one, lets `read` look at its
    /// metadata and payload (shared bytes, read with relaxed atomics; see
    /// [`tilewire_shmem::load_bytes`]). The result of `read` is returned
    /// only if the frag was not overwritten while it ran; otherwise it is
    /// discarded and the overrun counted. The three steps
    /// ([`Consumer::next_frag`], [`Consumer::payload`], [`Consumer::finish`]) in
    /// one call.
    #[inline]
    pub fn poll_with<R>(&mut self, read: impl FnOnce(&FragMeta, &[AtomicU8]) -> R) -> Poll<R> {
        match self.next_frag() {
            Next::Empty => Poll::Empty,
            Next::Overrun { lost } => Poll::Overrun { lost },
            Next::Ready(meta) => {
                let Some(bytes) = self.payload(&meta) else {
                    return Poll::Dropped(meta);
                };
                let r = read(&meta, bytes);
                if !self.finish(&meta) {
                    return Poll::Overrun { lost: 0 };
                }
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
    /// filter said no, having seen its metadata from [`Consumer::next_frag`]),
    /// counting it.
    pub fn skip(&mut self, sz: u16) {
        self.fseq.diag_add(DIAG_FILT_CNT, 1);
        self.fseq.diag_add(DIAG_FILT_SZ, sz as u64);
        self.advance();
    }

    #[inline]
    fn advance(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        if self.seq & self.publish_mask == 0 {
            self.publish();
        }
    }

    /// Says that the newest `n` frags this consumer read are still in its
    /// reader's hands (batched, not yet passed on). Progress is published
    /// only up to the frags before them, so if the reader dies, its
    /// successor, starting at the published progress, reads them again
    /// instead of losing them: a reliable link delivers at least once
    /// across a crash. (The run loop keeps this up to date from
    /// [`Tile::held`](crate::stem::Tile::held).)
    #[inline]
    pub fn hold(&mut self, n: u64) {
        self.held = n;
    }

    /// Frags held back from progress (see [`Consumer::hold`]).
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Publishes progress (less what is held) and the frag and byte counts
    /// gathered since the last publish.
    #[inline]
    fn publish(&mut self) {
        if self.pub_cnt != 0 {
            self.fseq.diag_add(DIAG_PUB_CNT, self.pub_cnt);
            self.fseq.diag_add(DIAG_PUB_SZ, self.pub_sz);
            self.pub_cnt = 0;
            self.pub_sz = 0;
        }
        let mut progress = self.seq.wrapping_sub(self.held);
        if let Some(limit) = self.limit {
            if seq_diff(limit, progress) < 0 {
                progress = limit;
            }
        }
        self.fseq.update(progress);
    }

    /// Publishes progress now (less what is held). Call it at housekeeping
    /// and before leaving.
    pub fn housekeeping(&mut self) {
        self.publish();
    }
}
