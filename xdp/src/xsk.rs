//! [`Xsk`]: an AF_XDP socket's data path — receive into a sink, transmit as
//! an aio — over the four rings and the UMEM.
//!
//! # Receive
//!
//! [`Xsk::poll_rx`] takes packets off the rx ring and gives each to an
//! [`RxSink`] with the frame it sits in. The sink answers with the frame
//! that goes back to the fill ring: the same one if it copied the packet,
//! or another it owned if it kept this one (zero-copy into a link: the
//! link's line gives up its old frame, see `tilewire_tile::net`). A sink
//! that refuses stops the poll; the packet stays on the rx ring for the
//! next one, so nothing is lost on our side (the kernel counts its own
//! drops when the rx ring fills). [`Xsk::poll_into`] is the copying sink
//! for any downstream [`Aio`].
//!
//! # Transmit
//!
//! `Xsk` is an [`Aio`]: `send` copies each packet into a free frame and
//! queues its descriptor on the tx ring without telling the kernel. The
//! queue is published (one store) and the kernel woken — only if
//! need_wakeup says it sleeps — on `flush`, when [`XskConfig::tx_high_water`]
//! descriptors are waiting, or from [`Xsk::service`] once the oldest has
//! waited [`XskConfig::tx_flush_ns`]. Completed frames return to the free
//! list when the completion ring is reaped (in `send` when frames run out,
//! after each wakeup, and in `service`). `send` answers `Again` at the
//! first packet for which no frame or ring slot is free even after a
//! wakeup and a reap; a frame is taken only once its slot is certain, so a
//! refused packet holds nothing.
//!
//! # Transmit in place
//!
//! Over a spanning UMEM ([`Umem::spanning`]), [`Xsk::send_in_place`]
//! queues bytes that already lie in the span outside the frame pool: no
//! copy, no frame taken. The caller keeps those bytes unchanged until the
//! kernel completes the send; [`Xsk::in_place_done`] reports completed
//! sends by address, in submission order, and the completion never goes
//! to the free list (a completion is a pool frame exactly when its address
//! lies in the pool).
//!
//! [`XskConfig`]: crate::XskConfig
//! [`XskConfig::tx_high_water`]: crate::XskConfig::tx_high_water
//! [`XskConfig::tx_flush_ns`]: crate::XskConfig::tx_flush_ns
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use tilewire_aio::{Aio, PktInfo};

use crate::inplace::InFlight;
pub use crate::inplace::InPlaceError;
use crate::ring::{ConsRing, Desc, ProdRing};
use crate::stats::{KernelStats, XskStats};
use crate::sys;
use crate::umem::{Umem, FRAME_SIZE};

mod tx;

/// Bytes of an Ethernet header: the shortest frame `send` puts on the wire.
pub const ETH_HLEN: usize = 14;

/// Most packets one [`Xsk::poll_into`] hands downstream per `send`.
pub const RX_BATCH: usize = 64;

/// A received packet, as [`RxSink::take`] sees it. Its frame is the sink's
/// for the duration of the call.
#[derive(Debug, Clone, Copy)]
pub struct RxPacket<'a> {
    /// The frame the packet sits in (UMEM address of its first byte).
    pub frame: u64,
    /// Where the packet starts (UMEM address; the frame plus the kernel's
    /// headroom).
    pub addr: u64,
    /// The packet: a whole Ethernet frame.
    pub data: &'a [u8],
}

/// The downstream refused a packet (back-pressure); retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxRefused;

/// Where received packets go.
pub trait RxSink {
    /// Takes `pkt`. Returns the frame to give back to the fill ring: the
    /// packet's own frame when the sink copied what it needed, or another
    /// frame the sink owned when it keeps this one.
    ///
    /// # Errors
    /// [`RxRefused`] to leave the packet on the rx ring (the frame stays
    /// the socket's).
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused>;
}

/// Frames on the socket's side of the UMEM, for the conservation check:
/// the rest are in the kernel's rings or held by the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCounts {
    /// Transmit frames free to copy into.
    pub tx_free: u32,
    /// Transmit descriptors queued but not yet published to the kernel
    /// (in-place sends among them: they hold no frame).
    pub tx_pending: u32,
    /// Receive frames pushed on the fill ring and not yet published.
    pub fill_pending: u32,
    /// Receive frames waiting to go back on a full fill ring.
    pub fill_spill: u32,
}

/// The transmit tunables (see [`crate::XskConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxTuning {
    pub(crate) max_len: usize,
    pub(crate) high_water: u32,
    pub(crate) flush_ns: u64,
    pub(crate) need_wakeup: bool,
    pub(crate) busy_poll: bool,
}

/// An AF_XDP socket's data path. Made by [`crate::Xsk::bind`] (a real
/// socket) or `mock::MockKernel::new` (feature `test-support`) (rings in plain memory).
#[derive(Debug)]
pub struct Xsk<'a> {
    umem: Umem<'a>,
    /// The socket; `None` for a mock, whose wakeups are counted only.
    fd: Option<OwnedFd>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: ConsRing<Desc>,
    tx: ProdRing<Desc>,
    tx_free: Vec<u64>,
    fill_spill: Vec<u64>,
    /// In-place sends not yet completed.
    in_place: InFlight,
    tune: TxTuning,
    /// When the oldest unpublished tx descriptor was queued.
    pending_since: u64,
    zero_copy: bool,
    stats: XskStats,
}

/// The four user ends of a socket's rings.
#[derive(Debug)]
pub(crate) struct Rings {
    pub(crate) fill: ProdRing<u64>,
    pub(crate) comp: ConsRing<u64>,
    pub(crate) rx: ConsRing<Desc>,
    pub(crate) tx: ProdRing<Desc>,
}

impl<'a> Xsk<'a> {
    /// Assembles the data path and hands out the frames: `fill_frames`
    /// frames onto the fill ring, `tx_frames` onto the free list, and the
    /// first `lines` returned for the caller's link lines. The caller
    /// checked that they fit the UMEM and the rings.
    pub(crate) fn assemble(
        umem: Umem<'a>,
        fd: Option<OwnedFd>,
        rings: Rings,
        frames: (u32, u32, u32),
        tune: TxTuning,
        zero_copy: bool,
    ) -> (Xsk<'a>, Vec<u64>) {
        let (lines, fill_frames, tx_frames) = frames;
        let addr = |i: u32| umem.frame_addr(i);
        let tx_cap = rings.tx.size() as usize;
        let line_frames: Vec<u64> = (0..lines).map(addr).collect();
        let mut xsk = Xsk {
            umem,
            fd,
            fill: rings.fill,
            comp: rings.comp,
            rx: rings.rx,
            tx: rings.tx,
            tx_free: (lines + fill_frames..lines + fill_frames + tx_frames)
                .rev()
                .map(addr)
                .collect(),
            fill_spill: Vec::new(),
            in_place: InFlight::with_capacity(tx_cap),
            tune,
            pending_since: 0,
            zero_copy,
            stats: XskStats::default(),
        };
        for i in lines..lines + fill_frames {
            xsk.recycle_rx(addr(i));
        }
        xsk.fill.publish();
        (xsk, line_frames)
    }

    /// The UMEM.
    pub fn umem(&self) -> &Umem<'a> {
        &self.umem
    }

    /// The socket's descriptor (to put in the XDP program's XSKMAP), or
    /// `None` for a mock.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// True if the kernel bound the socket in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The longest packet `send` takes.
    pub fn max_tx_len(&self) -> usize {
        self.tune.max_len
    }

    /// Our counters.
    pub fn stats(&self) -> XskStats {
        self.stats
    }

    /// The kernel's counters for this socket (zero for a mock).
    ///
    /// # Errors
    /// The `getsockopt` failure.
    pub fn kernel_stats(&self) -> io::Result<KernelStats> {
        match &self.fd {
            Some(fd) => Ok(sys::statistics(fd)?.into()),
            None => Ok(KernelStats::default()),
        }
    }

    /// Frames on the socket's side (see [`FrameCounts`]).
    pub fn frame_counts(&self) -> FrameCounts {
        FrameCounts {
            tx_free: self.tx_free.len() as u32,
            tx_pending: self.tx.pending(),
            fill_pending: self.fill.pending(),
            fill_spill: self.fill_spill.len() as u32,
        }
    }

    /// Every frame on the socket's side, for the conservation check: the
    /// transmit free list, transmit descriptors queued and not yet
    /// published, receive frames pushed and not yet published, and the
    /// fill spill list.
    pub fn frame_list(&self) -> Vec<u64> {
        let mut v = self.tx_free.clone();
        v.extend(
            self.tx
                .pending_entries()
                .iter()
                .map(|d| d.addr)
                .filter(|&a| self.umem.frame_of(a, 0).is_some()),
        );
        v.extend(self.fill.pending_entries());
        v.extend(&self.fill_spill);
        v
    }

    /// Gives a receive frame back to the kernel (not yet published).
    #[inline]
    fn recycle_rx(&mut self, frame: u64) {
        while let Some(&f) = self.fill_spill.last() {
            if !self.fill.push(f) {
                break;
            }
            self.fill_spill.pop();
        }
        if !self.fill_spill.is_empty() || !self.fill.push(frame) {
            self.stats.fill_overflow += 1;
            self.fill_spill.push(frame);
        }
    }

    /// Publishes the fill ring and wakes the kernel if it asked.
    fn publish_fill(&mut self) {
        self.fill.publish();
        if self.tune.need_wakeup && self.fill.needs_wakeup() {
            self.wake_rx();
        }
    }

    fn wake_rx(&mut self) {
        self.stats.rx_wakeups += 1;
        if let Some(fd) = &self.fd {
            // Any error means "nothing to do now"; the next poll asks again.
            let _ = sys::kick_rx(fd.as_raw_fd());
        }
    }

    /// Takes up to `budget` packets off the rx ring into `sink`; returns how
    /// many descriptors were consumed (delivered or dropped as bad).
    pub fn poll_rx<S: RxSink + ?Sized>(&mut self, sink: &mut S, budget: u32) -> u32 {
        let mut n = self.rx.peek(budget);
        if n == 0 {
            if self.tune.busy_poll {
                self.wake_rx();
                n = self.rx.peek(budget);
            }
            if n == 0 {
                self.note_fill_empty();
                return 0;
            }
        }
        let mut done = 0;
        while done < n {
            let d = self.rx_desc(done);
            let Some(frame) = self.check_rx(d) else {
                done += 1;
                continue;
            };
            // SAFETY: check_rx proved the bytes lie in one frame of the
            // UMEM; the frame came off the rx ring and is ours until it is
            // recycled below or the sink keeps it.
            let data = unsafe { self.umem.bytes(d.addr, d.len) };
            match sink.take(RxPacket {
                frame,
                addr: d.addr,
                data,
            }) {
                Ok(back) => {
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += u64::from(d.len);
                    self.recycle_returned(back);
                }
                Err(RxRefused) => {
                    self.stats.rx_backpressure += 1;
                    break;
                }
            }
            done += 1;
        }
        self.rx.release(done);
        self.publish_fill();
        done
    }

    /// Rx descriptor `i` of the peeked ones, its address folded into a
    /// plain UMEM address (unaligned mode encodes the kernel's offset in
    /// the high bits).
    #[inline]
    fn rx_desc(&self, i: u32) -> Desc {
        let d = self.rx.get(i);
        Desc {
            addr: self.umem.rx_addr(d.addr),
            ..d
        }
    }

    /// The frame of an rx descriptor if it may be followed: inside one
    /// frame of the UMEM, with no flags.
    #[inline]
    fn rx_frame(&self, d: Desc) -> Option<u64> {
        self.umem.frame_of(d.addr, d.len).filter(|_| d.options == 0)
    }

    /// Counts a descriptor [`Xsk::rx_frame`] refused and, if its address
    /// still names a frame of the UMEM, recycles that frame (the kernel
    /// took it from the fill ring).
    fn drop_bad_rx(&mut self, d: Desc) {
        self.stats.rx_bad_desc += 1;
        if let Some(frame) = self.umem.frame_of(d.addr, 0) {
            self.recycle_rx(frame);
        }
    }

    /// [`Xsk::rx_frame`], dropping the descriptor if it is bad.
    #[inline]
    fn check_rx(&mut self, d: Desc) -> Option<u64> {
        let frame = self.rx_frame(d);
        if frame.is_none() {
            self.drop_bad_rx(d);
        }
        frame
    }

    /// Recycles the frame a sink gave back, if it is one.
    #[inline]
    fn recycle_returned(&mut self, frame: u64) {
        if frame.is_multiple_of(u64::from(FRAME_SIZE)) && self.umem.frame_of(frame, 0).is_some() {
            self.recycle_rx(frame);
        } else {
            debug_assert!(false, "RxSink returned {frame:#x}, not a frame");
            self.stats.rx_bad_desc += 1;
        }
    }

    fn note_fill_empty(&mut self) {
        if self.fill.in_kernel() == 0 {
            self.stats.fill_empty += 1;
        }
    }

    /// Takes up to `budget` packets off the rx ring and sends them, copied
    /// by the downstream, to `aio` in batches of up to [`RX_BATCH`] (flush
    /// at the end of each batch). A packet the downstream refuses with
    /// `Inval` is dropped and counted; `Again` leaves the rest on the rx
    /// ring for the next poll. Returns how many descriptors were consumed.
    pub fn poll_into<A: Aio + ?Sized>(&mut self, aio: &mut A, budget: u32) -> u32 {
        let mut total = 0;
        while total < budget {
            let n = self.rx.peek((budget - total).min(RX_BATCH as u32));
            if n == 0 {
                if total == 0 {
                    self.note_fill_empty();
                }
                break;
            }
            let mut frames = [0u64; RX_BATCH];
            let mut at = [0u32; RX_BATCH];
            let mut batch = [PktInfo::new(&[]); RX_BATCH];
            let mut good = 0;
            for i in 0..n {
                let d = self.rx_desc(i);
                if let Some(frame) = self.rx_frame(d) {
                    // SAFETY: as in poll_rx; the frames go back to the fill
                    // ring only after `send` returned and dropped its
                    // borrows.
                    batch[good] = PktInfo::new(unsafe { self.umem.bytes(d.addr, d.len) });
                    frames[good] = frame;
                    at[good] = i;
                    good += 1;
                }
            }
            let (taken, stop) = deliver(aio, &batch[..good], &mut self.stats);
            // On `Again`, the first packet not taken and everything after
            // it stay on the rx ring for the next poll.
            let consumed = if stop { at[taken] } else { n };
            for &f in &frames[..taken] {
                self.recycle_rx(f);
            }
            for i in 0..consumed {
                let d = self.rx_desc(i);
                if self.rx_frame(d).is_none() {
                    self.drop_bad_rx(d);
                }
            }
            self.rx.release(consumed);
            total += consumed;
            if stop {
                self.stats.rx_backpressure += 1;
                break;
            }
        }
        self.publish_fill();
        total
    }

    /// Publishes queued transmit descriptors and wakes the kernel if it
    /// needs it, then reaps completions.
    fn push_tx(&mut self) {
        self.tx.publish();
        if self.tx.in_kernel() > 0 && (!self.tune.need_wakeup || self.tx.needs_wakeup()) {
            self.wake_tx();
        }
        self.reap();
    }

    /// Wakes the kernel's transmit side. In copy mode the kernel sends a
    /// bounded batch per call and answers EAGAIN while more remain, so the
    /// call repeats (a bounded number of times) until the ring is drained.
    fn wake_tx(&mut self) {
        let Some(fd) = self.fd.as_ref().map(AsRawFd::as_raw_fd) else {
            self.stats.tx_wakeups += 1;
            return;
        };
        let rounds = self.tx.size() / 16 + 2;
        for _ in 0..rounds {
            self.stats.tx_wakeups += 1;
            match sys::kick_tx(fd) {
                Ok(()) => break,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) if self.tx.in_kernel() > 0 => {
                        self.reap();
                        continue;
                    }
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => break,
                    errno => {
                        self.stats.tx_wakeup_errors += 1;
                        self.stats.tx_wakeup_last_errno = errno.unwrap_or(0);
                        break;
                    }
                },
            }
        }
    }

    /// Moves completed transmit frames back to the free list, and marks
    /// completed in-place sends done (a completion is a pool frame exactly
    /// when its address lies in the pool; in-place sends never do).
    #[inline]
    fn reap(&mut self) {
        let n = self.comp.peek(u32::MAX);
        for i in 0..n {
            let addr = self.comp.get(i);
            if let Some(frame) = self.umem.frame_of(addr, 0) {
                self.tx_free.push(frame);
                self.stats.tx_completed += 1;
            } else if self.in_place.complete(addr) {
                self.stats.tx_in_place_completed += 1;
            } else {
                self.stats.tx_bad_completion += 1;
            }
        }
        self.comp.release(n);
    }

    /// Periodic work for the loop that drives the socket (call it every
    /// loop turn or at housekeeping): reaps completions, publishes a
    /// transmit queue that waited [`crate::XskConfig::tx_flush_ns`], and
    /// puts spilled receive frames back on the fill ring.
    pub fn service(&mut self, now_ns: u64) {
        self.reap();
        if self.tx.pending() > 0 && now_ns.wrapping_sub(self.pending_since) >= self.tune.flush_ns {
            self.push_tx();
        }
        if !self.fill_spill.is_empty() {
            while let Some(&f) = self.fill_spill.last() {
                if !self.fill.push(f) {
                    break;
                }
                self.fill_spill.pop();
            }
            self.publish_fill();
        }
    }

    /// True if `send` would take one more packet now: a free frame and a
    /// tx ring slot, after reaping completions and waking the kernel if
    /// needed. A tile asks before it reads a frag it will send, so it can
    /// leave the frag on its link instead of holding it.
    #[inline]
    pub fn tx_ready(&mut self) -> bool {
        self.tx_room()
    }

    /// Room for one more packet: a free frame and a tx ring slot, reaping
    /// and then waking the kernel if needed.
    #[inline]
    fn tx_room(&mut self) -> bool {
        if !self.tx_free.is_empty() && self.tx.free() > 0 {
            return true;
        }
        self.reap();
        if !self.tx_free.is_empty() && self.tx.free() > 0 {
            return true;
        }
        self.push_tx();
        !self.tx_free.is_empty() && self.tx.free() > 0
    }
}

/// Sends `batch` to `aio`, dropping packets it refuses with `Inval`.
/// Returns how many packets from the front were taken or dropped, and
/// whether the aio answered `Again` (the rest were not taken).
fn deliver<A: Aio + ?Sized>(
    aio: &mut A,
    batch: &[PktInfo<'_>],
    stats: &mut XskStats,
) -> (usize, bool) {
    let mut from = 0;
    // Each round either finishes or moves past one refused packet, so at
    // most batch.len() + 1 rounds.
    while from <= batch.len() {
        match aio.send(&batch[from..], true) {
            Ok(()) => {
                stats.rx_packets += (batch.len() - from) as u64;
                stats.rx_bytes += batch[from..].iter().map(|p| p.len() as u64).sum::<u64>();
                return (batch.len(), false);
            }
            Err(e) => {
                let ok = &batch[from..from + e.batch_idx];
                stats.rx_packets += ok.len() as u64;
                stats.rx_bytes += ok.iter().map(|p| p.len() as u64).sum::<u64>();
                from += e.batch_idx;
                match e.kind {
                    tilewire_aio::SendErrorKind::Inval => {
                        stats.rx_refused += 1;
                        from += 1;
                    }
                    _ => return (from, true),
                }
            }
        }
    }
    (batch.len(), false)
}
