//! [`MemAio`]: an aio that keeps what it is sent, in a bounded pool.
//!
//! The test double of every pipeline and the far side of the conformance
//! suite, and a model of how a real backend pushes back. Everything it will
//! ever use is allocated at construction:
//!
//! - a *packet cap*: how many packets it holds at most;
//! - a byte *arena* the packets are copied into, used as a ring: a packet
//!   is stored contiguously at the tail, and when it does not fit before
//!   the arena's end it goes to the start if the oldest packet left room
//!   there (the unused end is skipped until the ring wraps back).
//!
//! A send copies each packet in order until one does not fit (packet cap
//! reached or no contiguous room) and answers [`SendErrorKind::Again`] with
//! that packet's index; a packet longer than [`BUF_MAX`] is answered with
//! [`SendErrorKind::Inval`] at its index. Packets taken are read in order
//! ([`MemAio::get`], [`MemAio::iter`]) and freed from the front
//! ([`MemAio::pop_front`], [`MemAio::drain`], [`MemAio::clear`]), which makes
//! room for later sends. Nothing on these paths allocates; a test with a
//! counting allocator checks it.
//!
//! [`SendErrorKind::Again`]: crate::SendErrorKind::Again
//! [`SendErrorKind::Inval`]: crate::SendErrorKind::Inval

#![forbid(unsafe_code)]

use core::fmt;
use std::collections::VecDeque;

use crate::{Aio, PktInfo, PktMeta, SendError, BUF_MAX};

/// Cumulative counters of a [`MemAio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemAioStats {
    /// Calls to `send`, whatever they returned.
    pub send_calls: u64,
    /// Calls to `send` with `flush = true`.
    pub flushes: u64,
    /// Packets taken.
    pub pkts: u64,
    /// Bytes taken (sum of the lengths of the packets taken).
    pub bytes: u64,
    /// Sends that stopped with `Again`.
    pub again: u64,
    /// Sends that stopped with `Inval`.
    pub inval: u64,
}

/// Where one held packet lives in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    off: usize,
    len: usize,
    meta: PktMeta,
}

/// The bookkeeping of the byte ring, apart from the bytes so that a drain
/// can hand out slices of the arena while it frees slots.
#[derive(Debug)]
struct Ring {
    slots: VecDeque<Slot>,
    /// Most packets held at once.
    pkt_cap: usize,
    /// Where the next packet goes if it fits there.
    tail: usize,
    /// 0 when the held bytes are one run `[front.off, tail)`. Otherwise the
    /// ring has wrapped: the `wrapped` oldest slots live in the upper run
    /// `[front.off, ..)` and the rest in `[0, tail)`.
    wrapped: usize,
    bytes_held: usize,
}

impl Ring {
    /// Finds room for `len` contiguous bytes and records the slot, or says
    /// there is none. `len <= arena_len` is the caller's to check.
    fn reserve(&mut self, arena_len: usize, len: usize, meta: PktMeta) -> Option<usize> {
        if self.slots.len() >= self.pkt_cap {
            return None;
        }
        let off = match self.slots.front() {
            None => 0,
            Some(front) if self.wrapped == 0 => {
                if arena_len - self.tail >= len {
                    self.tail
                } else if front.off >= len {
                    self.wrapped = self.slots.len();
                    0
                } else {
                    return None;
                }
            }
            Some(front) => {
                if front.off - self.tail >= len {
                    self.tail
                } else {
                    return None;
                }
            }
        };
        self.slots.push_back(Slot { off, len, meta });
        self.tail = off + len;
        self.bytes_held += len;
        Some(off)
    }

    fn pop_front(&mut self) -> Option<Slot> {
        let slot = self.slots.pop_front()?;
        self.bytes_held -= slot.len;
        self.wrapped = self.wrapped.saturating_sub(1);
        if self.slots.is_empty() {
            self.tail = 0;
            self.wrapped = 0;
        }
        Some(slot)
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.tail = 0;
        self.wrapped = 0;
        self.bytes_held = 0;
    }
}

fn view(arena: &[u8], slot: Slot) -> PktInfo<'_> {
    PktInfo {
        buf: &arena[slot.off..slot.off + slot.len],
        meta: slot.meta,
    }
}

/// An aio that copies every packet it takes into a preallocated, bounded
/// pool, where the caller reads them back in order.
pub struct MemAio {
    arena: Box<[u8]>,
    ring: Ring,
    stats: MemAioStats,
}

impl fmt::Debug for MemAio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemAio")
            .field("len", &self.len())
            .field("pkt_cap", &self.ring.pkt_cap)
            .field("bytes_held", &self.ring.bytes_held)
            .field("arena_len", &self.arena.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl MemAio {
    /// A pool of at most `pkt_cap` packets in an arena of `arena_len` bytes.
    ///
    /// Sends push back with `Again` when either runs out; a packet of up to
    /// [`BUF_MAX`] bytes always fits once the pool has been drained. A
    /// `pkt_cap` of 0 makes an aio that takes nothing but empty batches.
    ///
    /// # Panics
    /// If `arena_len < BUF_MAX` (a valid packet could then never fit, and
    /// its sender would retry forever).
    pub fn new(pkt_cap: usize, arena_len: usize) -> MemAio {
        assert!(
            arena_len >= BUF_MAX,
            "MemAio arena of {arena_len} bytes cannot hold a packet of BUF_MAX = {BUF_MAX} bytes"
        );
        MemAio {
            arena: vec![0u8; arena_len].into_boxed_slice(),
            ring: Ring {
                slots: VecDeque::with_capacity(pkt_cap),
                pkt_cap,
                tail: 0,
                wrapped: 0,
                bytes_held: 0,
            },
            stats: MemAioStats::default(),
        }
    }

    /// A pool that holds exactly `pkt_cap` packets of any valid length: the
    /// arena is sized (`(pkt_cap + 1) * BUF_MAX` bytes) so that the packet
    /// cap, never the bytes, is what makes it push back.
    ///
    /// # Panics
    /// If the arena size overflows `usize`.
    pub fn with_capacity(pkt_cap: usize) -> MemAio {
        let arena_len = pkt_cap
            .checked_add(1)
            .and_then(|n| n.checked_mul(BUF_MAX))
            .expect("MemAio arena size overflows usize");
        MemAio::new(pkt_cap, arena_len)
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.ring.slots.len()
    }

    /// True if no packet is held.
    pub fn is_empty(&self) -> bool {
        self.ring.slots.is_empty()
    }

    /// Most packets held at once.
    pub fn pkt_cap(&self) -> usize {
        self.ring.pkt_cap
    }

    /// Size of the byte arena.
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Bytes held (sum of the lengths of the packets held).
    pub fn bytes_held(&self) -> usize {
        self.ring.bytes_held
    }

    /// The counters since construction.
    pub fn stats(&self) -> MemAioStats {
        self.stats
    }

    /// The `i`-th oldest packet held, with the metadata it was sent with.
    pub fn get(&self, i: usize) -> Option<PktInfo<'_>> {
        self.ring.slots.get(i).map(|&s| view(&self.arena, s))
    }

    /// The oldest packet held.
    pub fn front(&self) -> Option<PktInfo<'_>> {
        self.get(0)
    }

    /// The packets held, oldest first.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            arena: &self.arena,
            slots: self.ring.slots.iter(),
        }
    }

    /// Frees the oldest packet and returns it. Its bytes stay readable until
    /// the next call that takes `&mut self`.
    pub fn pop_front(&mut self) -> Option<PktInfo<'_>> {
        let slot = self.ring.pop_front()?;
        Some(view(&self.arena, slot))
    }

    /// Frees every packet held, yielding each, oldest first. Packets not
    /// consumed by the caller are freed when the iterator is dropped.
    pub fn drain(&mut self) -> Drain<'_> {
        Drain {
            arena: &self.arena,
            ring: &mut self.ring,
        }
    }

    /// Frees every packet held.
    pub fn clear(&mut self) {
        self.ring.clear();
    }
}

impl Aio for MemAio {
    /// Copies packets into the pool, in order, until one is too long
    /// (`Inval`) or does not fit (`Again`). Never allocates.
    ///
    /// # Errors
    /// [`SendError::inval`] at the first packet longer than [`BUF_MAX`];
    /// [`SendError::again`] at the first packet that finds the packet cap
    /// reached or no contiguous room in the arena.
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        self.stats.send_calls += 1;
        self.stats.flushes += u64::from(flush);
        for (idx, pkt) in batch.iter().enumerate() {
            let len = pkt.buf.len();
            if len > BUF_MAX {
                self.stats.inval += 1;
                return Err(SendError::inval(idx));
            }
            let Some(off) = self.ring.reserve(self.arena.len(), len, pkt.meta) else {
                self.stats.again += 1;
                return Err(SendError::again(idx));
            };
            self.arena[off..off + len].copy_from_slice(pkt.buf);
            self.stats.pkts += 1;
            self.stats.bytes += len as u64;
        }
        Ok(())
    }
}

/// The packets of a [`MemAio`], oldest first; see [`MemAio::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    arena: &'a [u8],
    slots: std::collections::vec_deque::Iter<'a, Slot>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = PktInfo<'a>;

    fn next(&mut self) -> Option<PktInfo<'a>> {
        self.slots.next().map(|&s| view(self.arena, s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a MemAio {
    type Item = PktInfo<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Frees the packets of a [`MemAio`] as it yields them; see
/// [`MemAio::drain`].
#[derive(Debug)]
pub struct Drain<'a> {
    arena: &'a [u8],
    ring: &'a mut Ring,
}

impl<'a> Iterator for Drain<'a> {
    type Item = PktInfo<'a>;

    fn next(&mut self) -> Option<PktInfo<'a>> {
        // The arena is borrowed shared for 'a and no send can run while the
        // drain holds the MemAio, so yielded bytes stay intact for 'a.
        self.ring.pop_front().map(|s| view(self.arena, s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.ring.slots.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        self.ring.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SendErrorKind;

    fn bufs(m: &MemAio) -> Vec<Vec<u8>> {
        m.iter().map(|p| p.buf.to_vec()).collect()
    }

    #[test]
    fn packet_cap_pushes_back_at_the_first_packet_that_does_not_fit() {
        let mut m = MemAio::with_capacity(2);
        let batch = [PktInfo::new(b"a"), PktInfo::new(b"bb"), PktInfo::new(b"c")];
        assert_eq!(m.send(&batch, false), Err(SendError::again(2)));
        assert_eq!(bufs(&m), [b"a".to_vec(), b"bb".to_vec()]);
        assert_eq!(m.pop_front().unwrap().buf, b"a");
        assert_eq!(m.send(&batch[2..], true), Ok(()));
        assert_eq!(bufs(&m), [b"bb".to_vec(), b"c".to_vec()]);
        let s = m.stats();
        assert_eq!(
            (s.send_calls, s.flushes, s.pkts, s.bytes, s.again),
            (2, 1, 3, 4, 1)
        );
    }

    #[test]
    fn too_long_packet_is_inval_at_its_index() {
        let mut m = MemAio::with_capacity(8);
        let big = [7u8; BUF_MAX + 1];
        let batch = [PktInfo::new(b"ok"), PktInfo::new(&big), PktInfo::new(b"no")];
        let e = m.send(&batch, true).unwrap_err();
        assert_eq!((e.kind, e.batch_idx), (SendErrorKind::Inval, 1));
        assert_eq!(bufs(&m), [b"ok".to_vec()]);
        assert_eq!(m.stats().inval, 1);
        assert_eq!(m.send(&[PktInfo::new(&big[..BUF_MAX])], true), Ok(()));
    }

    #[test]
    fn arena_wraps_and_refuses_when_no_contiguous_room() {
        // Arena of exactly one max packet: a second one never fits until the
        // first is freed, and then it goes back to offset 0.
        let mut m = MemAio::new(4, BUF_MAX);
        let full = [1u8; BUF_MAX];
        let p = [PktInfo::new(&full)];
        assert_eq!(m.send(&p, false), Ok(()));
        assert_eq!(m.send(&p, false), Err(SendError::again(0)));
        // Zero-length packets still fit.
        assert_eq!(m.send(&[PktInfo::new(&[])], false), Ok(()));
        m.clear();
        assert_eq!(m.send(&p, false), Ok(()));

        // 3000 + 1000 fill 4000 of 4096; free the 3000, then 2000 wraps to 0.
        let mut m = MemAio::new(4, BUF_MAX);
        let (a, b, c) = ([1u8; 3000], [2u8; 1000], [3u8; 2000]);
        let batch = [PktInfo::new(&a), PktInfo::new(&b)];
        assert_eq!(m.send(&batch, false), Ok(()));
        assert_eq!(m.send(&[PktInfo::new(&c)], false), Err(SendError::again(0)));
        m.pop_front();
        assert_eq!(m.send(&[PktInfo::new(&c)], false), Ok(()));
        // Wrapped: [0, 2000) + [3000, 4000) held; 1000 free between.
        assert_eq!(
            m.send(&[PktInfo::new(&a[..1001])], false),
            Err(SendError::again(0))
        );
        assert_eq!(m.send(&[PktInfo::new(&a[..1000])], false), Ok(()));
        assert_eq!(m.bytes_held(), 4000);
        let got: Vec<_> = m.drain().map(|p| (p.buf[0], p.len())).collect();
        assert_eq!(got, [(2, 1000), (3, 2000), (1, 1000)]);
        assert!(m.is_empty());
        assert_eq!(m.bytes_held(), 0);
    }

    #[test]
    fn metadata_is_kept_and_drain_frees_unconsumed_packets() {
        let mut m = MemAio::with_capacity(4);
        let addr = "10.0.0.1:9".parse().unwrap();
        let meta = PktMeta {
            addr: Some(addr),
            user: 42,
        };
        let batch = [PktInfo::new(b"x").with_meta(meta), PktInfo::new(b"y")];
        m.send(&batch, false).unwrap();
        assert_eq!(m.get(0).unwrap().meta, meta);
        assert_eq!(m.front().unwrap().meta, meta);
        assert_eq!(m.get(1).unwrap().meta, PktMeta::default());
        assert!(m.get(2).is_none());
        assert_eq!(m.iter().len(), 2);
        {
            let mut d = m.drain();
            assert_eq!(d.len(), 2);
            assert_eq!(d.next().unwrap().buf, b"x");
        }
        assert!(m.is_empty());
        assert!(m.pop_front().is_none());
    }

    #[test]
    fn zero_cap_takes_only_empty_batches() {
        let mut m = MemAio::new(0, BUF_MAX);
        assert_eq!(m.send(&[], true), Ok(()));
        assert_eq!(m.send(&[PktInfo::new(&[])], true), Err(SendError::again(0)));
    }

    #[test]
    #[should_panic(expected = "cannot hold a packet of BUF_MAX")]
    fn arena_smaller_than_buf_max_is_refused() {
        let _ = MemAio::new(1, BUF_MAX - 1);
    }

    /// A long random walk against a plain model: with `with_capacity` only
    /// the packet cap pushes back, whatever the lengths and wrap points.
    #[test]
    fn with_capacity_never_runs_out_of_bytes_first() {
        let mut m = MemAio::with_capacity(3);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) && !model.is_empty() {
                assert_eq!(m.pop_front().unwrap().buf, &model.pop_front().unwrap()[..]);
                continue;
            }
            let len = (x >> 8) as usize % (BUF_MAX + 1);
            let pkt = vec![step as u8; len];
            let r = m.send(&[PktInfo::new(&pkt)], false);
            if model.len() < 3 {
                assert_eq!(r, Ok(()), "step {step}: refused below the packet cap");
                model.push_back(pkt);
            } else {
                assert_eq!(r, Err(SendError::again(0)));
            }
            assert_eq!(bufs(&m), Vec::from(model.clone()));
        }
    }
}
