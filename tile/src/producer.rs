//! The producer side of a link: credits, back-pressure and publishing.
//!
//! See [`crate::link`] for how credits come from the reliable consumers'
//! progress and how a restarted producer continues the stream.

use tilewire_shmem::clock::mono_ts;

use crate::dcache::DCacheHandle;
use crate::frag::seq_diff;
use crate::fseq::FseqHandle;
use crate::link::Link;
use crate::mcache::{MCacheHandle, Peek};

/// The producer has no credits: publishing now would overrun a reliable
/// consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("back-pressure: a reliable consumer is a full ring behind")]
pub struct Backpressure;

/// Publishes frags into a link.
#[derive(Debug)]
pub struct Producer<'w> {
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    reliable: Vec<FseqHandle<'w>>,
    seq: u64,
    chunk: u32,
    credits: u64,
    backpressure: u64,
}

impl<'w> Producer<'w> {
    pub(crate) fn new(link: &Link<'w>) -> Producer<'w> {
        let mc = *link.mcache();
        // Continue one past the newest seq on any line (see "Restarts").
        let (base, newest) = (mc.seq_query(), mc.newest_seq());
        let seq = if seq_diff(newest, base) >= 0 {
            newest.wrapping_add(1)
        } else {
            base
        };
        // And put payloads after the newest frag's, so frags still on the
        // ring keep their bytes.
        let dc = *link.dcache();
        let chunk = match mc.peek(seq.wrapping_sub(1)) {
            Peek::Ready(m) if dc.offset(m.chunk, m.sz as usize).is_some() => {
                dc.next_chunk(m.chunk, m.sz as usize)
            }
            _ => dc.chunk0(),
        };
        let mut p = Producer {
            mcache: mc,
            dcache: dc,
            reliable: link
                .fseqs()
                .iter()
                .copied()
                .filter(|f| f.reliable())
                .collect(),
            seq,
            chunk,
            credits: 0,
            backpressure: 0,
        };
        p.refresh_credits();
        p
    }

    /// The seq the next frag will get.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Frags that may be published before credits must be refreshed.
    pub fn credits(&self) -> u64 {
        self.credits
    }

    /// Times [`Producer::publish`] returned [`Backpressure`].
    pub fn backpressure_count(&self) -> u64 {
        self.backpressure
    }

    /// Recomputes credits from the reliable consumers' progress.
    pub fn refresh_credits(&mut self) -> u64 {
        let depth = self.mcache.depth();
        let mut in_flight = 0u64;
        for f in &self.reliable {
            // A consumer "ahead" of us (a restarted producer) counts as 0.
            let d = seq_diff(self.seq, f.query()).clamp(0, depth as i64) as u64;
            in_flight = in_flight.max(d);
        }
        self.credits = depth - in_flight;
        self.credits
    }

    /// Publishes `payload` as the next frag, stamping `tspub` now.
    ///
    /// # Errors
    /// [`Backpressure`] when a reliable consumer is a ring behind; nothing
    /// was published.
    ///
    /// # Panics
    /// If `payload` is longer than the link's mtu.
    #[inline]
    pub fn publish(
        &mut self,
        payload: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, Backpressure> {
        if self.credits == 0 && self.refresh_credits() == 0 {
            self.backpressure += 1;
            return Err(Backpressure);
        }
        let seq = self.seq;
        let chunk = self.chunk;
        // Invalidate before overwriting payload bytes (see mcache docs).
        self.mcache.invalidate(seq);
        self.dcache.write(chunk, payload);
        self.mcache.commit(
            seq,
            sig,
            chunk,
            payload.len() as u16,
            ctl,
            tsorig,
            mono_ts(),
        );
        self.chunk = self.dcache.next_chunk(chunk, payload.len());
        self.seq = seq.wrapping_add(1);
        self.credits -= 1;
        Ok(seq)
    }

    /// Publishes the producer's position for consumers that resync and for
    /// a producer that restarts. Call it at housekeeping.
    pub fn housekeeping(&mut self) {
        self.mcache.seq_update(self.seq);
    }
}
