//! The producer side of a link: credits, back-pressure and publishing.
//!
//! See [`crate::link`] for how credits come from the reliable consumers'
//! progress and how a restarted producer continues the stream.
//!
//! # Two ways to publish
//!
//! - [`Producer::publish`] copies a payload the caller already has into the
//!   dcache and publishes it: one call, one copy.
//! - [`Producer::reserve`] then [`Producer::commit`] (or
//!   [`Producer::commit_at`], with a timestamp the caller already took)
//!   publish *in place*:
//!   `reserve` hands out the dcache bytes where the next frag's payload
//!   goes (a full mtu of them), the caller writes the payload there once,
//!   straight into shared memory, and `commit` publishes the first `sz` of
//!   them. Nothing is copied by the link. `publish` is built on the two.
//!
//! # The reservation
//!
//! Between `reserve` and `commit` the producer holds one reservation: one
//! credit is set aside for it, and the bytes it handed out are the next
//! frag's. Reserving again returns the same bytes and changes nothing, so
//! a caller may retry a loop body freely. A reservation that is never
//! committed publishes nothing: a consumer waits at that seq, and a
//! producer restarted on the link continues from it.
//!
//! The reserved bytes are a full mtu even when the frag will be smaller,
//! and the caller may write all of them. By the dcache's sizing rule (see
//! [`crate::link::dcache`]) those bytes belong only to frags whose mcache lines
//! have been reused by newer frags, and to at most one frag still on its
//! line: `seq - depth`, on the very line the reserved seq will take.
//!
//! # When the line is invalidated
//!
//! The mcache's rule is: invalidate a line before overwriting any payload
//! bytes a consumer could still accept, and before rewriting the line's
//! fields. So:
//!
//! - if the reservation overlaps the payload of frag `seq - depth` (or the
//!   line holds anything unexpected), `reserve` invalidates the line before
//!   it hands out the bytes: from then on a consumer waiting for `seq`
//!   reads "not yet", and one still reading `seq - depth` is told it was
//!   overrun, never given a torn frag;
//! - otherwise no byte a consumer could accept is in the reservation, frag
//!   `seq - depth` stays readable, and `commit` invalidates the line just
//!   before writing its fields. The two stores then hit the line back to
//!   back, which saves the core-to-core round trip a consumer spinning on
//!   that line would otherwise force between them (with fixed-size frags,
//!   the common case, the reservation never overlaps).
//!
//! Either way a consumer only ever accepts a frag whose metadata and
//! payload are exactly what its producer committed.

use core::sync::atomic::AtomicU8;

use tilewire_shmem::clock::mono_ts;
use tilewire_shmem::store_bytes;

use crate::link::dcache::{chunks, DCacheHandle};
use crate::link::frag::seq_diff;
use crate::link::fseq::FseqHandle;
use crate::link::mcache::{MCacheHandle, Peek};
use crate::link::Link;

/// The producer has no credits: publishing now would overrun a reliable
/// consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("back-pressure: a reliable consumer is a full ring behind")]
pub struct Backpressure;

/// A consumer's published progress that no healthy link can hold, as a
/// producer read it: the consumer is past the producer's next frag (a
/// consumer only moves over frags the producer published). Something
/// wrote the word: another process, a stray write, a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// The consumer's index on the link.
    pub consumer: usize,
    /// The progress its fseq said.
    pub found: u64,
    /// The producer's next seq: no progress may pass it.
    pub limit: u64,
}

impl core::fmt::Display for Corruption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "consumer {}'s progress is {}, past the producer's next frag {} (no \
             consumer can be past it)",
            self.consumer, self.found, self.limit
        )
    }
}

/// Publishes frags into a link.
#[derive(Debug)]
pub struct Producer<'w> {
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    /// The reliable consumers' fseqs, with their index on the link.
    reliable: Vec<(usize, FseqHandle<'w>)>,
    /// The newest implausible progress read, and how many reads found one.
    corruption: Option<Corruption>,
    corrupt_reads: u64,
    /// True if every consumer of the link is reliable (so frags may be
    /// forwarded onto it by chunk, see [`crate::link::ledger`]).
    all_reliable: bool,
    seq: u64,
    chunk: u32,
    credits: u64,
    backpressure: u64,
    /// True between [`Producer::reserve`] and [`Producer::commit`]: one
    /// credit is set aside for the frag at `seq`.
    reserved: bool,
    /// True if the reservation already invalidated the line of `seq`
    /// (because its bytes overlap the payload of the frag on that line);
    /// otherwise commit does it.
    invalidated: bool,
}

impl<'w> Producer<'w> {
    pub(crate) fn new(link: &Link<'w>) -> Producer<'w> {
        // Once per process: parked consumers make this process fence.
        static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        REGISTERED.get_or_init(tilewire_shmem::wait::register_for_fences);
        let mc = *link.mcache();
        // Continue one past the newest seq on any line (see "Restarts").
        let (base, newest) = (mc.seq_query(), mc.newest_seq());
        let seq = if seq_diff(newest, base) >= 0 {
            newest.wrapping_add(1)
        } else {
            base
        };
        // And put payloads after the newest frag's in this dcache, so
        // frags still on the ring keep their bytes (newer frags may have
        // been forwarded by chunk from another link's dcache).
        let dc = *link.dcache();
        let chunk = (1..=mc.depth())
            .map(|back| mc.peek(seq.wrapping_sub(back)))
            .take_while(|p| matches!(p, Peek::Ready(_)))
            .find_map(|p| match p {
                Peek::Ready(m) if dc.offset(m.chunk, m.sz as usize).is_some() => {
                    Some(dc.next_chunk(m.chunk, m.sz as usize))
                }
                _ => None,
            })
            .unwrap_or(dc.chunk0());
        let mut p = Producer {
            mcache: mc,
            dcache: dc,
            reliable: link
                .fseqs()
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, f)| f.reliable())
                .collect(),
            corruption: None,
            corrupt_reads: 0,
            all_reliable: link.fseqs().iter().all(|f| f.reliable()),
            seq,
            chunk,
            credits: 0,
            backpressure: 0,
            reserved: false,
            invalidated: false,
        };
        p.refresh_credits();
        p
    }

    /// The link's mcache.
    pub fn mcache(&self) -> &MCacheHandle<'w> {
        &self.mcache
    }

    /// The seq the next frag will get.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Frags that may be published before credits must be refreshed.
    pub fn credits(&self) -> u64 {
        self.credits
    }

    /// Times [`Producer::publish`] or [`Producer::reserve`] returned
    /// [`Backpressure`].
    pub fn backpressure_count(&self) -> u64 {
        self.backpressure
    }

    /// Largest payload a frag may carry: the length of the bytes
    /// [`Producer::reserve`] hands out.
    pub fn mtu(&self) -> usize {
        self.dcache.mtu()
    }

    /// True while a frag is reserved and not yet committed.
    pub fn is_reserved(&self) -> bool {
        self.reserved
    }

    /// True if every consumer of the link is reliable: the producer knows
    /// when each passed a frag, so a forwarding tile may publish frags
    /// whose payload stays in its input's dcache (see
    /// [`crate::link::ledger`]). A link without consumers is too.
    pub fn all_reliable(&self) -> bool {
        self.all_reliable
    }

    /// The slowest reliable consumer's progress (the next seq it will
    /// read), or the producer's own seq if it has no reliable consumer or
    /// each is "ahead" (a restarted producer). One cache-line read per
    /// reliable consumer.
    ///
    /// SYNC: as [`Producer::refresh_credits`]: Acquire loads pairing with
    /// the consumers' Release progress updates.
    pub fn reliable_progress(&self) -> u64 {
        let mut slowest = self.seq;
        for (_, f) in &self.reliable {
            let p = f.query();
            if seq_diff(p, self.seq) > 0 {
                // Corrupt (see Producer::refresh_credits): as far behind
                // as a reliable consumer can be, so nothing held for it
                // is let go on its word.
                return self.seq.wrapping_sub(self.mcache.depth());
            }
            if seq_diff(p, slowest) < 0 {
                slowest = p;
            }
        }
        slowest
    }

    /// The newest consumer progress this producer read that no healthy
    /// link can hold (see [`Corruption`]), if any, and how many of its
    /// reads found one. The producer gives no credits on such a word: the
    /// link stalls rather than overrun a consumer whose position is
    /// unknown.
    pub fn corruption(&self) -> Option<(Corruption, u64)> {
        self.corruption.map(|c| (c, self.corrupt_reads))
    }

    /// Recomputes credits from the reliable consumers' progress.
    ///
    /// SYNC: each [`FseqHandle::query`] is an Acquire load pairing with the
    /// consumer's Release [`FseqHandle::update`]: a frag the consumer says
    /// it is past was fully read before the producer reuses its line and
    /// bytes.
    ///
    /// A consumer past the producer's next seq is corrupt: no healthy link
    /// holds that (a restarted producer continues past the newest frag on
    /// the ring, so no consumer is past it either). Its word gives no
    /// credits (the producer stalls instead of overrunning a consumer whose
    /// real position is unknown) and is kept for
    /// [`Producer::corruption`].
    pub fn refresh_credits(&mut self) -> u64 {
        // Its position too, at most a ring stale even for a producer whose
        // user never calls housekeeping: a consumer judges a line's seq
        // against it (one far past it is corrupt).
        self.mcache.seq_update(self.seq);
        let depth = self.mcache.depth();
        let mut in_flight = 0u64;
        for &(index, f) in &self.reliable {
            let progress = f.query();
            let d = seq_diff(self.seq, progress);
            if d < 0 {
                self.corruption = Some(Corruption {
                    consumer: index,
                    found: progress,
                    limit: self.seq,
                });
                self.corrupt_reads += 1;
                in_flight = depth;
                continue;
            }
            in_flight = in_flight.max((d as u64).min(depth));
        }
        self.credits = depth - in_flight;
        self.credits
    }

    /// Reserves the next frag for publishing in place and returns the
    /// dcache bytes its payload goes into: [`Producer::mtu`] bytes, 64-byte
    /// aligned, shared memory (write them with
    /// [`tilewire_shmem::store_bytes`], or a word at a time through
    /// [`tilewire_shmem::atomic_words`]). Then call [`Producer::commit`]
    /// with the payload's size.
    ///
    /// Reserving takes a credit (refreshing credits if there are none) and,
    /// if the bytes overlap the payload of the frag still on the next seq's
    /// line, invalidates that line (see "When the line is invalidated" in
    /// the module docs). Reserving again before the commit returns the same
    /// bytes and does nothing else, whatever the credits are now. The
    /// borrow of the returned bytes ends before `commit` can be called, so
    /// nothing can write them after the frag is published.
    ///
    /// # Errors
    /// [`Backpressure`] when a reliable consumer is a full ring behind;
    /// nothing was reserved or changed (the back-pressure count goes up).
    ///
    /// # Ordering
    /// An invalidation ends in a Release fence (SYNC: pairs with the
    /// Acquire fence of a consumer's re-check, [`MCacheHandle::check`]), so
    /// every byte the caller writes afterwards is ordered after it: a
    /// consumer still copying the frag these bytes held sees the line
    /// changed and discards its copy. The line is read first with
    /// [`MCacheHandle::peek`]'s Acquire (pairs with the Release commit of
    /// the producer that wrote it).
    ///
    /// # Panics
    /// Never for a producer made by [`Link::producer`] (its chunk is always
    /// inside the dcache).
    #[inline]
    pub fn reserve(&mut self) -> Result<&[AtomicU8], Backpressure> {
        if !self.reserved {
            if self.credits == 0 && self.refresh_credits() == 0 {
                self.backpressure += 1;
                return Err(Backpressure);
            }
            // Invalidate now if the caller's writes could reach a frag
            // that is still on its line; otherwise at commit (see "When the
            // line is invalidated" in the module docs).
            self.invalidated = self.reservation_hits_live_frag();
            if self.invalidated {
                self.mcache.invalidate(self.seq);
            }
            self.reserved = true;
        }
        Ok(self
            .dcache
            .bytes(self.chunk, self.dcache.mtu())
            .expect("the producer's chunk leaves room for an mtu"))
    }

    /// Publishes the reserved frag, stamping `tspub` now: its payload is
    /// the first `sz` of the bytes [`Producer::reserve`] returned, as the
    /// caller wrote them. Returns the frag's seq. The next reservation
    /// starts after these `sz` bytes (rounded up to whole chunks).
    ///
    /// This is [`Producer::commit_at`] with `tspub` read from the clock
    /// ([`mono_ts`], a few tens of nanoseconds: on a fast link as much as
    /// the rest of the publish).
    ///
    /// # Ordering
    /// As [`Producer::commit_at`].
    ///
    /// # Panics
    /// As [`Producer::commit_at`].
    #[inline]
    pub fn commit(&mut self, sz: usize, sig: u64, ctl: u16, tsorig: u32) -> u64 {
        self.check_commit(sz);
        self.commit_checked(sz, sig, ctl, tsorig, mono_ts())
    }

    /// [`Producer::commit`] with a `tspub` the caller already has: a tile
    /// reads the clock once per loop turn or per burst, or stamps a frag
    /// with the time it took for its payload, instead of once per frag.
    /// `tspub` is, like every frag timestamp, the low 32 bits of
    /// `CLOCK_MONOTONIC` nanoseconds ([`mono_ts`]).
    ///
    /// # Ordering
    /// If `reserve` did not invalidate the line, it is invalidated first
    /// (Release fence; SYNC: pairs with a consumer's
    /// [`MCacheHandle::check`]), so a consumer reading the line's old frag
    /// never takes the new fields for its own. The metadata words are then
    /// stored Relaxed and the line's seq last, with Release (SYNC: pairs
    /// with the Acquire load in a consumer's [`MCacheHandle::peek`]): a
    /// consumer that sees the frag sees its metadata and every payload byte
    /// written before this call.
    ///
    /// # Panics
    /// If nothing is reserved (no [`Producer::reserve`] since the last
    /// commit), or if `sz` is larger than [`Producer::mtu`]. Either panic
    /// happens before anything changes: a reservation stays in place.
    #[inline]
    pub fn commit_at(&mut self, sz: usize, sig: u64, ctl: u16, tsorig: u32, tspub: u32) -> u64 {
        self.check_commit(sz);
        self.commit_checked(sz, sig, ctl, tsorig, tspub)
    }

    /// The panics of [`Producer::commit_at`], checked before anything
    /// changes (and before [`Producer::commit`] reads the clock).
    #[inline]
    fn check_commit(&self, sz: usize) {
        assert!(self.reserved, "Producer::commit without a reservation");
        let mtu = self.dcache.mtu();
        assert!(sz <= mtu, "frag size {sz} > mtu {mtu}");
    }

    /// True if the bytes a reservation hands out (an mtu at the current
    /// chunk) may overlap the payload of the frag still on the next seq's
    /// line, `seq - depth`, the only frag that can still be read whose
    /// bytes they can hold (see [`crate::link::dcache`]'s sizing rule). Also true
    /// when the line holds anything unexpected (a producer that died
    /// mid-publish), to be safe.
    ///
    /// SYNC: the line is read with [`MCacheHandle::peek`]'s Acquire,
    /// pairing with the Release commit of whichever producer wrote it (this
    /// one, or the one before a restart).
    #[inline]
    fn reservation_hits_live_frag(&self) -> bool {
        match self.mcache.peek(self.seq.wrapping_sub(self.mcache.depth())) {
            Peek::Ready(old) => {
                let (old_start, old_end) = (
                    u64::from(old.chunk),
                    u64::from(old.chunk) + chunks(usize::from(old.sz)) as u64,
                );
                let start = u64::from(self.chunk);
                let end = start + chunks(self.dcache.mtu()) as u64;
                old_start < end && start < old_end
            }
            Peek::NotYet | Peek::Overrun { .. } => true,
        }
    }

    /// [`Producer::commit_at`] once [`Producer::check_commit`] passed.
    #[inline]
    fn commit_checked(&mut self, sz: usize, sig: u64, ctl: u16, tsorig: u32, tspub: u32) -> u64 {
        let (seq, chunk) = (self.seq, self.chunk);
        // sz <= mtu <= u16::MAX (the dcache's MTU_MAX), so the cast is exact.
        let sz16 = sz as u16;
        if self.invalidated {
            self.mcache
                .commit(seq, sig, chunk, sz16, ctl, tsorig, tspub);
        } else {
            // Invalidate, then the fields, then the seq: a consumer reading
            // the line's old frag never takes new fields for its own.
            self.mcache
                .publish(seq, sig, chunk, sz16, ctl, tsorig, tspub);
        }
        self.reserved = false;
        self.chunk = self.dcache.next_chunk(chunk, sz);
        self.seq = seq.wrapping_add(1);
        // The reservation held a credit; saturate in case a consumer
        // published smaller progress meanwhile (a misbehaving peer must not
        // wrap the count).
        self.credits = self.credits.saturating_sub(1);
        seq
    }

    /// Publishes `payload` as the next frag, stamping `tspub` now: a
    /// [`Producer::reserve`], a copy into the reserved bytes and a
    /// [`Producer::commit`]. If a frag is already reserved, its reservation
    /// is used.
    ///
    /// # Errors
    /// [`Backpressure`] when a reliable consumer is a ring behind; nothing
    /// was published.
    ///
    /// # Ordering
    /// As [`Producer::reserve`] and [`Producer::commit`]: the payload
    /// after the invalidation if it overlaps the line's old frag (before it
    /// otherwise), then invalidation, metadata, seq (Release store).
    ///
    /// # Panics
    /// If `payload` is longer than the link's mtu (the frag stays reserved,
    /// nothing is published).
    #[inline]
    pub fn publish(
        &mut self,
        payload: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, Backpressure> {
        self.publish_at(payload, sig, ctl, tsorig, mono_ts())
    }

    /// [`Producer::publish`] with a `tspub` the caller already has (see
    /// [`Producer::commit_at`]): a sender that stamps a whole batch with one
    /// clock read.
    ///
    /// # Errors
    /// As [`Producer::publish`].
    ///
    /// # Panics
    /// As [`Producer::publish`].
    #[inline]
    pub fn publish_at(
        &mut self,
        payload: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
        tspub: u32,
    ) -> Result<u64, Backpressure> {
        let bytes = self.reserve()?;
        assert!(
            payload.len() <= bytes.len(),
            "payload {} > mtu {}",
            payload.len(),
            bytes.len()
        );
        store_bytes(bytes, payload);
        Ok(self.commit_at(payload.len(), sig, ctl, tsorig, tspub))
    }

    /// Publishes a frag whose payload is already in the link's dcache but
    /// was not placed there through [`Producer::reserve`]: zero-copy
    /// receive, where the NIC wrote the packet into an AF_XDP UMEM frame
    /// that lies inside the dcache's data region. The producer's own ring
    /// allocation is not touched.
    ///
    /// The caller owns the payload's bytes and must keep them unchanged
    /// until the frag's mcache line is reused, `depth` frags later: the
    /// AF_XDP receive path does this by giving each line a frame and
    /// recycling a line's old frame only after this call returned for the
    /// frag that replaced it (the line is invalidated first, so a consumer
    /// still reading the old frag sees the overrun).
    ///
    /// # Errors
    /// [`Backpressure`] when a reliable consumer is a ring behind; nothing
    /// was published.
    ///
    /// # Ordering
    /// As [`Producer::commit_at`] when the line was not invalidated by a
    /// reservation: invalidation, metadata, then the seq with Release.
    ///
    /// # Panics
    /// If a reservation is outstanding (mixing the two ways to publish on
    /// one seq is a bug), or if `sz` is larger than [`Producer::mtu`].
    #[inline]
    pub fn publish_chunk(
        &mut self,
        chunk: u32,
        sz: usize,
        sig: u64,
        ctl: u16,
        tsorig: u32,
        tspub: u32,
    ) -> Result<u64, Backpressure> {
        assert!(!self.reserved, "Producer::publish_chunk with a reservation");
        let mtu = self.dcache.mtu();
        assert!(sz <= mtu, "frag size {sz} > mtu {mtu}");
        if self.credits == 0 && self.refresh_credits() == 0 {
            self.backpressure += 1;
            return Err(Backpressure);
        }
        let seq = self.seq;
        // sz <= mtu <= u16::MAX, so the cast is exact. Invalidate, fields,
        // seq (SYNC: see commit_at).
        self.mcache
            .publish(seq, sig, chunk, sz as u16, ctl, tsorig, tspub);
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

#[cfg(test)]
mod tests {
    use super::*;

    use tilewire_shmem::{load_bytes, TempWorkspace};

    use crate::link::frag::CTL_PKT;
    use crate::link::{LinkError, LinkParams, Poll, Reliability};

    /// A workspace unlinked when the test ends, pass or fail.
    struct Ws(TempWorkspace);

    impl Ws {
        fn new() -> Ws {
            Ws(TempWorkspace::new("prod", 4 << 20).expect("workspace"))
        }

        fn link(&self, depth: u64, mtu: usize, consumers: &[Reliability]) -> Link<'_> {
            let params = LinkParams {
                depth,
                mtu,
                consumers: consumers.to_vec(),
                seq0: 0,
            };
            Link::create(&self.0, "l", &params).expect("link")
        }
    }

    /// The payload of frag `seq`: its size and bytes derive from the seq.
    fn payload(seq: u64, mtu: usize) -> Vec<u8> {
        let len = (seq.wrapping_mul(2654435761) % (mtu as u64 + 1)) as usize;
        (0..len)
            .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }

    /// Reserves, scribbles over every reserved byte, then writes `seq`'s
    /// payload and commits it: the worst a caller may do.
    fn reserve_write_commit(p: &mut Producer<'_>, seq: u64) -> Vec<u8> {
        let mtu = p.mtu();
        let want = payload(seq, mtu);
        let bytes = p.reserve().expect("credits");
        assert_eq!(bytes.len(), mtu);
        store_bytes(bytes, &vec![0xEE; bytes.len()]);
        store_bytes(bytes, &want);
        assert_eq!(p.commit(want.len(), seq ^ 0x5A5A, CTL_PKT, 7), seq);
        want
    }

    #[test]
    fn publish_chunk_points_frags_at_bytes_placed_elsewhere_in_a_larger_dcache() {
        let ws = Ws::new();
        let params = LinkParams {
            depth: 4,
            mtu: 128,
            consumers: vec![Reliability::Reliable],
            seq0: 0,
        };
        let e = Link::create_with_data(&ws.0, "small", &params, 4).unwrap_err();
        assert!(matches!(e, LinkError::Params(_)), "{e}");
        let link = Link::create_with_data(&ws.0, "big", &params, 40).expect("link");
        assert!(link.dcache().data().len() >= 40 * 128, "40 mtus of data");
        // Joined again by name, the larger dcache is accepted.
        let link = Link::join(&ws.0, "big").expect("join");
        let dc = *link.dcache();
        let (mut p, mut c) = (link.producer(), link.consumer(0).unwrap());
        // Place payloads far past where the producer's ring would put them.
        let chunk = |i: u64| dc.chunk0() + 30 * 2 + i as u32 * 2;
        for i in 0..4u64 {
            dc.write(chunk(i), &[i as u8; 100]);
            assert_eq!(p.publish_chunk(chunk(i), 100, i, CTL_PKT, 1, 2), Ok(i));
        }
        assert_eq!(
            p.publish_chunk(chunk(9), 1, 0, CTL_PKT, 0, 0),
            Err(Backpressure)
        );
        let mut buf = vec![0u8; 128];
        for i in 0..4u64 {
            match c.poll_copy(&mut buf) {
                Poll::Frag(m, ()) => {
                    assert_eq!((m.seq, m.chunk, m.sz, m.sig), (i, chunk(i), 100, i));
                    assert_eq!(&buf[..100], &[i as u8; 100][..]);
                }
                other => panic!("{other:?}"),
            }
        }
        c.housekeeping();
        assert_eq!(
            p.publish_chunk(chunk(0), 1, 0, CTL_PKT, 0, 0),
            Ok(4),
            "credits came back"
        );
    }

    #[test]
    #[should_panic(expected = "publish_chunk with a reservation")]
    fn publish_chunk_refuses_to_mix_with_a_reservation() {
        let ws = Ws::new();
        let link = ws.link(4, 64, &[Reliability::Reliable]);
        let mut p = link.producer();
        p.reserve().unwrap();
        let _ = p.publish_chunk(link.dcache().chunk0(), 1, 0, CTL_PKT, 0, 0);
    }

    #[test]
    fn reserve_commit_round_trips_through_a_consumer() {
        let ws = Ws::new();
        let link = ws.link(8, 300, &[Reliability::Reliable]);
        let mut p = link.producer();
        let mut c = link.consumer(0).unwrap();
        let mut buf = vec![0u8; 300];
        for seq in 0..200u64 {
            // Mix the two ways to publish; both must carry the same bytes.
            let want = match seq % 3 {
                0 => {
                    let want = payload(seq, 300);
                    assert_eq!(p.publish(&want, seq ^ 0x5A5A, CTL_PKT, 7), Ok(seq));
                    want
                }
                1 => {
                    let want = payload(seq, 300);
                    store_bytes(p.reserve().unwrap(), &want);
                    let tspub = seq as u32 ^ 0xABCD;
                    assert_eq!(
                        p.commit_at(want.len(), seq ^ 0x5A5A, CTL_PKT, 7, tspub),
                        seq
                    );
                    want
                }
                _ => reserve_write_commit(&mut p, seq),
            };
            assert!(!p.is_reserved());
            match c.poll_copy(&mut buf) {
                Poll::Frag(m, ()) => {
                    assert_eq!(
                        (m.seq, m.sig, m.sz as usize),
                        (seq, seq ^ 0x5A5A, want.len())
                    );
                    assert_eq!((m.ctl, m.tsorig), (CTL_PKT, 7));
                    if seq % 3 == 1 {
                        assert_eq!(m.tspub, seq as u32 ^ 0xABCD, "commit_at's tspub");
                    }
                    assert_eq!(&buf[..want.len()], &want[..], "payload of {seq}");
                }
                other => panic!("seq {seq}: {other:?}"),
            }
            assert_eq!(c.poll_copy(&mut buf), Poll::Empty);
        }
    }

    #[test]
    fn reserving_twice_then_committing_publishes_once() {
        let ws = Ws::new();
        let link = ws.link(4, 64, &[Reliability::Reliable]);
        let mut p = link.producer();
        let mut c = link.consumer(0).unwrap();
        let credits = p.credits();
        let first = p.reserve().unwrap().as_ptr();
        assert!(p.is_reserved());
        let again = p.reserve().unwrap();
        assert_eq!(again.as_ptr(), first, "the same bytes");
        store_bytes(again, b"once");
        assert_eq!((p.credits(), p.seq()), (credits, 0), "nothing else changed");
        assert_eq!(
            c.poll_copy(&mut [0u8; 64]),
            Poll::Empty,
            "not published yet"
        );
        assert_eq!(p.commit(4, 1, CTL_PKT, 0), 0);
        assert_eq!((p.credits(), p.seq()), (credits - 1, 1));
        let mut buf = [0u8; 64];
        assert!(matches!(c.poll_copy(&mut buf), Poll::Frag(m, ()) if m.seq == 0 && m.sz == 4));
        assert_eq!(&buf[..4], b"once");
        assert_eq!(c.poll_copy(&mut buf), Poll::Empty, "exactly one frag");
        // The next reservation starts after the committed frag's chunk.
        let next = p.reserve().unwrap().as_ptr();
        assert_eq!(next as usize - first as usize, 64);
    }

    #[test]
    #[should_panic(expected = "frag size 65 > mtu 64")]
    fn committing_more_than_the_mtu_panics() {
        let ws = Ws::new();
        let link = ws.link(4, 64, &[Reliability::Reliable]);
        let mut p = link.producer();
        p.reserve().unwrap();
        p.commit(65, 0, CTL_PKT, 0);
    }

    #[test]
    #[should_panic(expected = "commit without a reservation")]
    fn committing_without_a_reservation_panics() {
        let ws = Ws::new();
        let link = ws.link(4, 64, &[Reliability::Reliable]);
        let mut p = link.producer();
        p.reserve().unwrap();
        p.commit(1, 0, CTL_PKT, 0);
        p.commit(1, 0, CTL_PKT, 0);
    }

    #[test]
    fn reserving_under_backpressure_fails_and_publishes_nothing() {
        let ws = Ws::new();
        let link = ws.link(4, 64, &[Reliability::Reliable]);
        let mut p = link.producer();
        for seq in 0..4 {
            reserve_write_commit(&mut p, seq);
        }
        assert_eq!(p.reserve().map(|b| b.len()), Err(Backpressure));
        assert_eq!(p.reserve().map(|b| b.len()), Err(Backpressure));
        assert_eq!(p.backpressure_count(), 2);
        assert!(!p.is_reserved());
        assert_eq!((p.seq(), p.credits()), (4, 0));
        // The consumer finds the four frags intact, and nothing after them:
        // in particular frag 0, whose line seq 4 would reuse, was not
        // invalidated.
        let mut c = link.consumer(0).unwrap();
        let mut buf = [0u8; 64];
        for seq in 0..4 {
            let want = payload(seq, 64);
            assert!(matches!(c.poll_copy(&mut buf), Poll::Frag(m, ()) if m.seq == seq));
            assert_eq!(&buf[..want.len()], &want[..]);
        }
        assert_eq!(c.poll_copy(&mut buf), Poll::Empty);
        // Once the consumer's progress is out, credits come back.
        c.housekeeping();
        reserve_write_commit(&mut p, 4);
        assert!(matches!(c.poll_copy(&mut buf), Poll::Frag(m, ()) if m.seq == 4));
    }

    /// The bytes of frag `seq` when it is `sz` long.
    fn sized(seq: u64, sz: usize) -> Vec<u8> {
        (0..sz)
            .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }

    /// Reserves, scribbles over the whole reservation, writes frag `seq`
    /// of `sz` bytes and commits it.
    fn publish_sized(p: &mut Producer<'_>, seq: u64, sz: usize) {
        let mtu = p.mtu();
        let bytes = p.reserve().expect("credits");
        store_bytes(bytes, &vec![0xEE; mtu]);
        store_bytes(bytes, &sized(seq, sz));
        assert_eq!(p.commit(sz, seq, CTL_PKT, 0), seq);
    }

    fn expect_frag(c: &mut crate::link::Consumer<'_>, seq: u64, sz: usize) {
        let mut buf = vec![0u8; 4096];
        match c.poll_copy(&mut buf) {
            Poll::Frag(m, ()) => {
                assert_eq!((m.seq, m.sz as usize), (seq, sz));
                assert_eq!(&buf[..sz], &sized(seq, sz)[..], "payload of {seq}");
            }
            other => panic!("wanted frag {seq}: {other:?}"),
        }
    }

    /// A reservation that overlaps the payload of the frag still on its
    /// line invalidates the line first: a consumer reading that frag then,
    /// or later, sees it overrun, never stale or torn.
    #[test]
    fn a_reservation_over_a_live_frag_invalidates_its_line_first() {
        let ws = Ws::new();
        // Depth 4 and a 4096-byte mtu, so the data region is exactly five
        // mtus (no rounding up to a page adds room). With these sizes (0, 1,
        // 64, 64, 64, 64 chunks) the ring wraps after frag 5, and the
        // reservation for seq 6 lands on chunks 0..64, over frag 2 (chunks
        // 1..65), whose line seq 6 reuses.
        const MTU: usize = 4096;
        let link = ws.link(4, MTU, &[Reliability::Unreliable]);
        let mut p = link.producer();
        let mut c = link.consumer(0).unwrap();
        let sizes = [0usize, 64, MTU, MTU, MTU, MTU];
        for (seq, &sz) in sizes.iter().enumerate() {
            publish_sized(&mut p, seq as u64, sz);
            if seq < 2 {
                expect_frag(&mut c, seq as u64, sz);
            }
        }
        // The consumer is reading frag 2 when the producer reserves seq 6
        // and writes into it: the copy is discarded.
        let mut copy = vec![0u8; MTU];
        let r = c.poll_with(|m, bytes| {
            let mine = p
                .reserve()
                .expect("unreliable consumers give no back-pressure");
            store_bytes(mine, &[0xEE; MTU]);
            load_bytes(&mut copy[..m.sz as usize], bytes);
        });
        assert_eq!(r, Poll::Overrun { lost: 0 });
        // Polled again, frag 2 is gone (overrun while polling), not stale:
        // the consumer resyncs to the newest frag on the ring, 5.
        assert_eq!(c.poll_copy(&mut copy), Poll::Overrun { lost: 3 });
        expect_frag(&mut c, 5, MTU);
        // Seq 6 is reserved, not committed: not yet, however often polled.
        for _ in 0..3 {
            assert_eq!(c.poll_copy(&mut copy), Poll::Empty);
            assert!(p.reserve().is_ok());
        }
        store_bytes(p.reserve().unwrap(), &sized(6, 100));
        p.commit(100, 6, CTL_PKT, 0);
        expect_frag(&mut c, 6, 100);
    }

    /// A reservation clear of every frag still on the ring leaves them all
    /// readable, whatever is written into it; the line is invalidated at
    /// commit, which a consumer reading the old frag then notices.
    #[test]
    fn a_reservation_clear_of_live_frags_leaves_them_readable() {
        let ws = Ws::new();
        let link = ws.link(4, 64, &[Reliability::Unreliable, Reliability::Unreliable]);
        let mut p = link.producer();
        let (mut c, mut late) = (link.consumer(0).unwrap(), link.consumer(1).unwrap());
        for seq in 0..4 {
            publish_sized(&mut p, seq, 64);
        }
        // Seq 4 reserved and scribbled over: frag 0, on its line, is intact.
        store_bytes(p.reserve().unwrap(), &[0xEE; 64]);
        expect_frag(&mut c, 0, 64);
        // The late consumer is reading frag 0 when seq 4 is committed: its
        // copy is discarded, and frag 0 then reads as overrun.
        let mut copy = [0u8; 64];
        let r = late.poll_with(|m, bytes| {
            load_bytes(&mut copy[..m.sz as usize], bytes);
            store_bytes(p.reserve().unwrap(), &sized(4, 64));
            p.commit(64, 4, CTL_PKT, 0);
        });
        assert_eq!(r, Poll::Overrun { lost: 0 });
        assert_eq!(late.poll_copy(&mut copy), Poll::Overrun { lost: 4 });
        expect_frag(&mut late, 4, 64);
        for seq in 1..5 {
            expect_frag(&mut c, seq, 64);
        }
        assert_eq!(c.poll_copy(&mut copy), Poll::Empty);
    }

    /// Writing a whole mtu at every reservation never damages a frag a
    /// consumer can still read: the dcache's sizing rule covers the full
    /// reservation, not only the size committed.
    #[test]
    fn full_mtu_writes_never_touch_frags_still_on_the_ring() {
        let ws = Ws::new();
        // A 4096-byte mtu leaves the data region exactly depth + 1 mtus
        // (no page rounding adds slack), the tightest the sizing rule gets.
        let (depth, mtu) = (8u64, 4096usize);
        let link = ws.link(depth, mtu, &[Reliability::Unreliable]);
        let mut p = link.producer();
        let (mc, dc) = (*link.mcache(), *link.dcache());
        let mut checked = 0;
        for seq in 0..500u64 {
            // Reserve and scribble over all of it, then look at every frag
            // whose line still holds it.
            store_bytes(p.reserve().unwrap(), &vec![0xEE; mtu]);
            for s in seq.saturating_sub(depth)..seq {
                if let Peek::Ready(m) = mc.peek(s) {
                    let mut got = vec![0u8; m.sz as usize];
                    assert!(dc.read(m.chunk, &mut got));
                    assert!(mc.check(s));
                    assert_eq!(got, payload(s, mtu), "frag {s} while {seq} is reserved");
                    checked += 1;
                }
            }
            let want = payload(seq, mtu);
            store_bytes(p.reserve().unwrap(), &want);
            assert_eq!(p.commit(want.len(), 0, CTL_PKT, 0), seq);
        }
        assert!(checked >= 490 * (depth as usize - 1), "{checked}");
    }
}
