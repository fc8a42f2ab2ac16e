//! A kernel in plain memory: the four rings as [`crate::ring::mock`] rings
//! and a hand-driven kernel end that receives, transmits and completes
//! when a test says so.
//!
//! The [`Xsk`] it makes is the real data path (the same rings, frame
//! accounting and aio), only its wakeups are counted instead of made. With
//! it, a test needs no privileges to check what the kernel cannot be made
//! to do on demand: a full rx ring, an empty fill ring, a completion that
//! comes late, a descriptor pointing outside the UMEM, indices wrapping
//! past 2^32 — and that every frame is always somewhere, exactly once.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use crate::ring::{mock, Desc};
use crate::umem::{Umem, FRAME_SIZE};
use crate::xsk::{Rings, TxTuning, Xsk, ETH_HLEN};

/// Where the mock kernel puts a received packet inside its frame: the
/// real kernel's XDP headroom.
pub const RX_HEADROOM: u64 = 256;

/// The shape of a mock socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockConfig {
    /// Entries of the rx ring.
    pub rx_size: u32,
    /// Entries of the fill ring, and frames put on it.
    pub fill_size: u32,
    /// Entries of the tx and completion rings, and transmit frames.
    pub tx_size: u32,
    /// Frames kept back for link lines.
    pub lines: u32,
    /// Where every ring's indices start (just below 2^32 to test the wrap).
    pub start: u32,
    /// Queued transmit descriptors that trigger a publish.
    pub tx_high_water: u32,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            rx_size: 16,
            fill_size: 16,
            tx_size: 16,
            lines: 0,
            start: 0,
            tx_high_water: 64,
        }
    }
}

/// The kernel's side of a mock socket.
#[derive(Debug)]
pub struct MockKernel<'a> {
    umem: Umem<'a>,
    fill: mock::KernelEnd<u64>,
    rx: mock::KernelEnd<Desc>,
    tx: mock::KernelEnd<Desc>,
    comp: mock::KernelEnd<u64>,
    /// Frames taken off the fill ring, not yet received into.
    rx_held: Vec<u64>,
    /// Frames taken off the tx ring, not yet completed.
    tx_held: Vec<u64>,
}

/// Where the frames in the mock kernel's hands are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelFrames {
    /// On the fill ring.
    pub fill: u32,
    /// Taken from the fill ring, not yet received into.
    pub rx_held: u32,
    /// On the rx ring (good descriptors).
    pub rx: u32,
    /// On the tx ring.
    pub tx: u32,
    /// Sent, not yet completed.
    pub tx_held: u32,
    /// On the completion ring.
    pub comp: u32,
}

impl<'a> MockKernel<'a> {
    /// A mock socket over `umem`: the data path, the frames kept back for
    /// `cfg.lines` link lines, and the kernel end.
    ///
    /// # Panics
    /// If the UMEM holds fewer than lines + fill + tx frames or a size is
    /// not a power of two.
    pub fn new(umem: Umem<'a>, cfg: &MockConfig) -> (Xsk<'a>, Vec<u64>, MockKernel<'a>) {
        let need = u64::from(cfg.lines) + u64::from(cfg.fill_size) + u64::from(cfg.tx_size);
        assert!(
            need <= u64::from(umem.frames()),
            "UMEM too small for the mock"
        );
        let (fill, fill_k) = mock::prod::<u64>(cfg.fill_size, cfg.start);
        let (rx, rx_k) = mock::cons::<Desc>(cfg.rx_size, cfg.start);
        let (tx, tx_k) = mock::prod::<Desc>(cfg.tx_size, cfg.start);
        let (comp, comp_k) = mock::cons::<u64>(cfg.tx_size, cfg.start);
        let tune = TxTuning {
            max_len: FRAME_SIZE as usize,
            high_water: cfg.tx_high_water.max(1),
            flush_ns: 0,
            need_wakeup: true,
            busy_poll: false,
        };
        let (xsk, lines) = Xsk::assemble(
            umem,
            None,
            Rings { fill, comp, rx, tx },
            (cfg.lines, cfg.fill_size, cfg.tx_size),
            tune,
            false,
        );
        let kernel = MockKernel {
            umem,
            fill: fill_k,
            rx: rx_k,
            tx: tx_k,
            comp: comp_k,
            rx_held: Vec::new(),
            tx_held: Vec::new(),
        };
        (xsk, lines, kernel)
    }

    /// Receives `data` as the NIC would: into a frame from the fill ring
    /// (or one taken earlier), at [`RX_HEADROOM`], published on the rx
    /// ring. False, and nothing changes, when there is no frame (the
    /// kernel would count a fill-ring-empty drop) or the rx ring is full.
    ///
    /// # Panics
    /// If `data` does not fit a frame after the headroom.
    pub fn receive(&mut self, data: &[u8]) -> bool {
        assert!(data.len() as u64 <= u64::from(FRAME_SIZE) - RX_HEADROOM);
        if self.rx.len() >= self.rx_size() {
            return false;
        }
        let Some(frame) = self.rx_held.pop().or_else(|| self.fill.pop()) else {
            return false;
        };
        let addr = frame + RX_HEADROOM;
        // SAFETY: `frame` came off the fill ring, so the kernel owns it;
        // the data fits after the headroom (asserted).
        unsafe { self.umem.write(addr, data) };
        // A spanning UMEM is in unaligned mode: the kernel hands back the
        // frame with the offset in the high bits.
        let wire = if self.umem.is_unaligned() {
            frame | (RX_HEADROOM << crate::umem::UNALIGNED_OFFSET_SHIFT)
        } else {
            addr
        };
        let pushed = self.rx.push(Desc {
            addr: wire,
            len: data.len() as u32,
            options: 0,
        });
        debug_assert!(pushed, "room was checked");
        true
    }

    /// Takes up to `n` frames off the fill ring without receiving into them
    /// yet (the NIC posting buffers). Returns how many.
    pub fn take_fill(&mut self, n: u32) -> u32 {
        let mut got = 0;
        while got < n {
            let Some(f) = self.fill.pop() else { break };
            self.rx_held.push(f);
            got += 1;
        }
        got
    }

    /// Publishes a corrupt rx descriptor. If `frame_held` is true it uses a
    /// frame the kernel holds (taking one off the fill ring if needed) with
    /// a length running past the frame's end, which the socket must drop
    /// and recycle; otherwise an address past the UMEM, which names no
    /// frame. False if there is no frame or room.
    pub fn receive_bad(&mut self, frame_held: bool) -> bool {
        if self.rx.len() >= self.rx_size() {
            return false;
        }
        let desc = if frame_held {
            let Some(frame) = self.rx_held.pop().or_else(|| self.fill.pop()) else {
                return false;
            };
            Desc {
                addr: frame + RX_HEADROOM,
                len: FRAME_SIZE,
                options: 0,
            }
        } else {
            Desc {
                addr: self.umem.len() as u64 + 5 * u64::from(FRAME_SIZE),
                len: 60,
                options: 0,
            }
        };
        self.rx.push(desc)
    }

    /// Sends up to `n` packets off the tx ring; returns their bytes. Their
    /// frames (or in-place addresses) stay the kernel's until
    /// [`MockKernel::complete`].
    pub fn transmit(&mut self, n: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(d) = self.tx.pop() else { break };
            assert!(d.len as usize >= ETH_HLEN, "the socket queued a runt");
            let held = match self.umem.frame_of(d.addr, d.len) {
                Some(frame) => frame,
                None => {
                    assert!(
                        self.umem.is_unaligned()
                            && self.umem.in_span(d.addr, d.len)
                            && !self.umem.overlaps_pool(d.addr, d.len),
                        "the socket queued a descriptor outside the UMEM"
                    );
                    d.addr
                }
            };
            // SAFETY: inside the registered memory (checked), and the
            // kernel's to read: it came off the tx ring (a pool frame the
            // socket gave up, or in-place bytes the caller keeps unchanged
            // until completion).
            out.push(unsafe { self.umem.span_bytes(d.addr, d.len) }.to_vec());
            self.tx_held.push(held);
        }
        out
    }

    /// Hands up to `n` sent frames back on the completion ring, newest
    /// first (out of order, which the socket must not rely on). Returns
    /// how many.
    pub fn complete_newest(&mut self, n: u32) -> u32 {
        let mut done = 0;
        while done < n {
            let Some(&a) = self.tx_held.last() else { break };
            if !self.comp.push(a) {
                break;
            }
            self.tx_held.pop();
            done += 1;
        }
        done
    }

    /// Hands up to `n` sent frames back on the completion ring, oldest
    /// first. Returns how many.
    pub fn complete(&mut self, n: u32) -> u32 {
        let mut done = 0;
        while done < n && !self.tx_held.is_empty() {
            if !self.comp.push(self.tx_held[0]) {
                break;
            }
            self.tx_held.remove(0);
            done += 1;
        }
        done
    }

    /// Sets `XDP_RING_NEED_WAKEUP` on the fill and tx rings.
    pub fn set_need_wakeup(&self, on: bool) {
        self.fill.set_need_wakeup(on);
        self.tx.set_need_wakeup(on);
    }

    /// How many frames sit where on the kernel's side.
    pub fn frames(&self) -> KernelFrames {
        let good_rx = self
            .rx
            .entries()
            .iter()
            .filter(|d| self.umem.frame_of(self.umem.rx_addr(d.addr), 0).is_some())
            .count() as u32;
        KernelFrames {
            fill: self.fill.len(),
            rx_held: self.rx_held.len() as u32,
            rx: good_rx,
            tx: self.tx.len(),
            tx_held: self.tx_held.len() as u32,
            comp: self.comp.len(),
        }
    }

    /// Every frame on the kernel's side (rx descriptors by their frame;
    /// descriptors naming no frame are left out).
    pub fn frame_list(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.fill.entries();
        v.extend(&self.rx_held);
        v.extend(
            self.rx
                .entries()
                .iter()
                .filter_map(|d| self.umem.frame_of(self.umem.rx_addr(d.addr), 0)),
        );
        // In-place sends are the caller's bytes, not frames.
        let frame = |a: &u64| self.umem.frame_of(*a, 0).is_some();
        v.extend(self.tx.entries().iter().map(|d| d.addr).filter(frame));
        v.extend(self.tx_held.iter().filter(|a| frame(a)));
        v.extend(self.comp.entries().iter().filter(|a| frame(a)));
        v
    }

    fn rx_size(&self) -> u32 {
        self.rx.capacity()
    }
}
