//! The transmit calls of [`Xsk`]: the aio's copying `send`, and
//! [`Xsk::send_in_place`] with its completions (see the
//! [parent's docs](super)).
#![allow(unsafe_code)] // writes packets into frames; each use says why it is sound

use tilewire_aio::{Aio, PktInfo, SendError};
use tilewire_shmem::clock::mono_ns;

use super::{Xsk, ETH_HLEN};
use crate::inplace::InPlaceError;
use crate::ring::Desc;

impl Xsk<'_> {
    /// Queues `len` bytes at UMEM address `addr` for transmit as they lie:
    /// no copy, no frame taken. Published as [`Aio::send`]'s queue is (on a
    /// flush, at high water, or by [`Xsk::service`]).
    ///
    /// The contract: the bytes lie inside the span of a spanning UMEM
    /// ([`crate::Umem::spanning`]) and outside its frame pool, and the
    /// caller neither writes them nor lets anyone else write them until
    /// [`Xsk::in_place_done`] has reported this send (the kernel reads them
    /// until then: when it builds the packet in copy mode, by DMA in
    /// zero-copy mode). Dropping the socket ends every send.
    ///
    /// # Errors
    /// [`InPlaceError`]: a UMEM that is not spanning, bytes outside the
    /// span or overlapping the pool, a length the socket does not send,
    /// bytes across a page boundary on a zero-copy socket, or no room now ([`InPlaceError::Full`]: nothing was queued; retry after
    /// completions).
    pub fn send_in_place(&mut self, addr: u64, len: u32) -> Result<(), InPlaceError> {
        if !self.umem.is_unaligned() {
            return Err(InPlaceError::NotSpanning);
        }
        if (len as usize) < ETH_HLEN || len as usize > self.tune.max_len {
            self.stats.tx_inval += 1;
            return Err(InPlaceError::Length {
                len,
                min: ETH_HLEN,
                max: self.tune.max_len,
            });
        }
        if !self.umem.in_span(addr, len) {
            self.stats.tx_inval += 1;
            return Err(InPlaceError::OutsideSpan { addr, len });
        }
        if self.umem.overlaps_pool(addr, len) {
            self.stats.tx_inval += 1;
            return Err(InPlaceError::InPool { addr, len });
        }
        // The kernel drops an invalid descriptor without a completion, so
        // one it would refuse must not be queued: its bytes would stay
        // held for good. In copy mode the checks above are all it makes;
        // a zero-copy driver also refuses a buffer across two pages that
        // are not contiguous in its DMA mapping.
        let page = crate::umem::UMEM_ALIGN as u64;
        if self.zero_copy && addr / page != (addr + u64::from(len) - 1) / page {
            return Err(InPlaceError::CrossesPage { addr, len });
        }
        if !self.in_place_room() {
            self.stats.tx_full += 1;
            return Err(InPlaceError::Full);
        }
        if self.tx.pending() == 0 {
            self.pending_since = mono_ns();
        }
        let queued = self.tx.push(Desc {
            addr,
            len,
            options: 0,
        });
        debug_assert!(queued, "in_place_room saw a free slot");
        self.in_place.push(addr);
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += u64::from(len);
        self.stats.tx_in_place += 1;
        if self.tx.pending() >= self.tune.high_water {
            self.push_tx();
        }
        Ok(())
    }

    /// The addresses of in-place sends the kernel completed since the last
    /// call, in the order they were sent (a send completed before an older
    /// one waits for it). Their bytes are the caller's again. Drain it
    /// regularly: it keeps every completion until drained.
    pub fn in_place_done(&mut self) -> std::vec::Drain<'_, u64> {
        self.in_place.drain()
    }

    /// In-place sends queued and not yet reported by
    /// [`Xsk::in_place_done`] as completed.
    pub fn in_place_in_flight(&self) -> usize {
        self.in_place.len()
    }

    /// True if [`Xsk::send_in_place`] would take one more send now: a tx
    /// ring slot and room among the in-flight sends (at most the tx ring's
    /// size), after reaping and waking the kernel if needed.
    #[inline]
    pub fn in_place_ready(&mut self) -> bool {
        self.in_place_room()
    }

    #[inline]
    fn in_place_room(&mut self) -> bool {
        let room = |x: &mut Self| x.tx.free() > 0 && x.in_place.len() < x.tx.size() as usize;
        if room(self) {
            return true;
        }
        self.reap();
        if room(self) {
            return true;
        }
        self.push_tx();
        room(self)
    }
}

impl Aio for Xsk<'_> {
    /// Copies each packet (a whole Ethernet frame) into a free UMEM frame
    /// and queues it; see the [module docs](crate::xsk) for when the kernel is
    /// told.
    ///
    /// # Errors
    /// `Inval` at a packet shorter than an Ethernet header (but not empty:
    /// an empty packet is taken and counted in
    /// [`crate::XskStats::tx_empty`]) or longer than [`Xsk::max_tx_len`]; `Again`
    /// at the first packet with no free frame or ring slot.
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        for (i, p) in batch.iter().enumerate() {
            let len = p.buf.len();
            if len == 0 {
                self.stats.tx_empty += 1;
                continue;
            }
            if len < ETH_HLEN || len > self.tune.max_len {
                self.stats.tx_inval += 1;
                if flush {
                    self.push_tx();
                }
                return Err(SendError::inval(i));
            }
            if !self.tx_room() {
                self.stats.tx_full += 1;
                return Err(SendError::again(i));
            }
            let frame = self.tx_free.pop().expect("tx_room saw a free frame");
            // SAFETY: `frame` came off the free list, so it is ours (not in
            // any ring); len <= max_len <= FRAME_SIZE; `p.buf` is caller
            // memory, not inside a free frame.
            unsafe { self.umem.write(frame, p.buf) };
            if self.tx.pending() == 0 {
                self.pending_since = mono_ns();
            }
            let queued = self.tx.push(Desc {
                addr: frame,
                len: len as u32,
                options: 0,
            });
            debug_assert!(queued, "tx_room saw a free slot");
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += len as u64;
            if self.tx.pending() >= self.tune.high_water {
                self.push_tx();
            }
        }
        if flush {
            self.push_tx();
        }
        Ok(())
    }
}
