//! The net-xdp tile: an AF_XDP socket whose UMEM is its output link's
//! data region (see the [kind's docs](super)).

use std::collections::VecDeque;

use tilewire_aio::frame::udp_dst_port;
use tilewire_shmem::clock::mono_ts;
use tilewire_shmem::Workspace;
use tilewire_xdp::umem::UMEM_ALIGN;
use tilewire_xdp::{RxPacket, RxRefused, RxSink, Umem, UmemError, Xsk, XskConfig, FRAME_SIZE};

use tilewire_aio::{Aio, PktInfo, SendErrorKind};
use tilewire_shmem::clock::mono_ns;
use tilewire_xdp::KernelStats;

use tilewire_tile::link::frag::{ctl, CHUNK_SZ};
use tilewire_tile::link::producer::Producer;
use tilewire_tile::link::{Link, LinkParams, Reliability};
use tilewire_tile::stem::{Filter, Frag, Outputs, Reading, Tile};

/// The mtu of a link that receives from AF_XDP: one frame.
pub const XDP_MTU: usize = FRAME_SIZE as usize;

/// Parameters of a link of `depth` lines receiving from AF_XDP.
pub fn link_params(depth: u64, consumers: Vec<Reliability>) -> LinkParams {
    LinkParams {
        depth,
        mtu: XDP_MTU,
        consumers,
        seq0: 0,
    }
}

/// The data region, in mtus, that a socket made with `cfg` needs as its
/// UMEM: a frame for each line, the fill ring's and the transmit side's.
pub fn data_mtus(cfg: &XskConfig) -> u64 {
    cfg.frames_needed()
}

/// The link's data region as a UMEM.
///
/// # Errors
/// As [`Umem::new`] (a read-only join, for one).
pub fn umem<'w>(link: &Link<'w>) -> Result<Umem<'w>, UmemError> {
    Umem::new(link.dcache().data())
}

/// A UMEM whose frames are `link`'s data region and which spans, in `ws`,
/// from the lowest to the highest page of that region and the data
/// regions of `inputs` (the links whose frags the socket sends in place).
///
/// # Errors
/// As [`Umem::spanning`]; [`UmemError::PoolOutsideSpan`] if a region lies
/// outside `ws`.
pub fn umem_spanning<'w>(
    ws: &'w Workspace,
    link: &Link<'w>,
    inputs: &[&Link<'w>],
) -> Result<Umem<'w>, UmemError> {
    let pool = link.dcache().data();
    let mut parts = vec![pool];
    parts.extend(inputs.iter().map(|l| l.dcache().data()));
    let span = ws
        .region_covering(&parts, UMEM_ALIGN)
        .ok_or(UmemError::PoolOutsideSpan {
            pool: pool.as_ptr() as usize,
            span: ws.whole().as_ptr() as usize,
            span_len: ws.whole().len(),
        })?;
    Umem::spanning(pool, span)
}

/// The receive side of a link fed by AF_XDP: which frame each line owns.
/// [`XdpRxLink::poll`] moves packets from the socket into the link; see
/// the [module docs](super).
#[derive(Debug)]
pub struct XdpRxLink {
    /// The frame each line owns, by `seq & mask`.
    lines: Vec<u64>,
    mask: u64,
    /// Chunk of the UMEM's first byte.
    chunk0: u32,
    /// Timestamp for the frags of the current poll.
    ts: u32,
}

impl XdpRxLink {
    /// The receive state of `link`, whose lines own `lines` (one frame
    /// per line, as `Xsk::bind` returned them for `cfg.lines = depth`).
    ///
    /// # Panics
    /// If `lines` does not hold exactly one frame per line.
    pub fn new(link: &Link<'_>, lines: Vec<u64>) -> XdpRxLink {
        assert_eq!(lines.len() as u64, link.depth(), "one frame per line");
        XdpRxLink {
            lines,
            mask: link.depth() - 1,
            chunk0: link.dcache().chunk0(),
            ts: mono_ts(),
        }
    }

    /// Takes up to `budget` packets off `xsk`'s rx ring and publishes them
    /// through `producer` (the link's), stamping them with the time of this
    /// call. Returns the descriptors consumed; stops early when a reliable
    /// consumer is a ring behind (the rest wait on the rx ring).
    pub fn poll(&mut self, xsk: &mut Xsk<'_>, producer: &mut Producer<'_>, budget: u32) -> u32 {
        self.ts = mono_ts();
        xsk.poll_rx(&mut LineSink { rx: self, producer }, budget)
    }

    /// The frames the lines own now.
    pub fn line_frames(&self) -> &[u64] {
        &self.lines
    }
}

/// The sink of one poll: the lines and the producer, borrowed.
struct LineSink<'a, 'p, 'w> {
    rx: &'a mut XdpRxLink,
    producer: &'p mut Producer<'w>,
}

impl RxSink for LineSink<'_, '_, '_> {
    #[inline]
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        let chunk_sz = CHUNK_SZ as u64;
        let chunk = self.rx.chunk0 + (pkt.addr / chunk_sz) as u32;
        let off = (pkt.addr % chunk_sz) as u16;
        let sz = usize::from(off) + pkt.data.len();
        let sig = u64::from(udp_dst_port(pkt.data));
        let ts = self.rx.ts;
        let seq = self
            .producer
            .publish_chunk(chunk, sz, sig, ctl(true, true, false, off), ts, ts)
            .map_err(|_| RxRefused)?;
        let line = (seq & self.rx.mask) as usize;
        Ok(std::mem::replace(&mut self.rx.lines[line], pkt.frame))
    }
}

/// The net tile over one AF_XDP socket: output 0 is the receive link (made
/// as the [module docs](super) say), input 0, if any, carries frames to
/// send.
#[derive(Debug)]
pub struct NetXdp<'w> {
    xsk: Xsk<'w>,
    rx: XdpRxLink,
    budget: u32,
    kernel: KernelStats,
    tx_waits: u64,
    tx_refused: u64,
    /// Frags of input 0 sent in place and not yet reported complete, by
    /// seq, oldest first (with the UMEM address each was sent from).
    in_flight: VecDeque<(u64, u64)>,
    /// The seq of the newest frag of input 0 the tile took in.
    newest: u64,
}

/// Counter names of [`NetXdp`], in [`Tile::metrics_write`] order.
/// (`tx_in_place` counts the frames sent from where they lay in the input
/// link; `tx_pkts - tx_in_place` were copied into a transmit frame. A
/// tile has at most 16 counters, so the copies have none of their own.)
pub const NET_XDP_COUNTERS: [&str; 16] = [
    "rx_pkts",
    "rx_bytes",
    "tx_pkts",
    "tx_bytes",
    "fill_empty",
    "tx_full",
    "tx_refused",
    "rx_wakeups",
    "tx_wakeups",
    "rx_bad_desc",
    "k_rx_dropped",
    "k_rx_ring_full",
    "k_fill_ring_empty",
    "k_rx_invalid",
    "k_tx_invalid",
    "tx_in_place",
];

impl<'w> NetXdp<'w> {
    /// The tile over `xsk`, receiving into the link `rx` describes, up to
    /// `budget` packets per loop turn.
    pub fn new(xsk: Xsk<'w>, rx: XdpRxLink, budget: u32) -> NetXdp<'w> {
        NetXdp {
            xsk,
            rx,
            budget: budget.max(1),
            kernel: KernelStats::default(),
            tx_waits: 0,
            tx_refused: 0,
            in_flight: VecDeque::new(),
            newest: 0,
        }
    }

    /// True if the tile sends frags in place: its socket's UMEM spans its
    /// input's dcache ([`umem_spanning`] made it so).
    pub fn sends_in_place(&self) -> bool {
        self.xsk.umem().is_unaligned()
    }

    /// Lets go of the frags whose in-place sends the socket reported
    /// complete (oldest first, as it reports them).
    fn release_completed(&mut self) {
        for addr in self.xsk.in_place_done() {
            let sent = self.in_flight.pop_front();
            debug_assert_eq!(sent.map(|s| s.1), Some(addr), "completions in send order");
        }
    }

    /// Sends the packet of `frag` from where it lies, if that is safe: the
    /// frag was read in place on a reliable input (its producer cannot
    /// reuse the bytes while the tile holds it, see [`Tile::held`]), and
    /// the bytes lie in the socket's span, outside its frame pool. False
    /// if it must be copied.
    fn send_in_place(&mut self, frag: &Frag<'_>) -> bool {
        if !frag.in_place() || !self.sends_in_place() {
            return false;
        }
        let p = frag.packet();
        if p.len() < tilewire_xdp::xsk::ETH_HLEN || p.len() > self.xsk.max_tx_len() {
            // The copying send refuses it (and counts it).
            return false;
        }
        let umem = self.xsk.umem();
        let Some(addr) = umem.addr_of(p.as_ptr(), p.len()) else {
            return false;
        };
        if umem.overlaps_pool(addr, p.len() as u32) {
            return false;
        }
        // Left to refuse: `Full` (before_frag ruled it out) and, on a
        // zero-copy socket, bytes across a page; the copy is the way out.
        if self.xsk.send_in_place(addr, p.len() as u32).is_err() {
            return false;
        }
        self.in_flight.push_back((frag.meta().seq, addr));
        true
    }

    /// The socket (for its counters).
    pub fn xsk(&self) -> &Xsk<'w> {
        &self.xsk
    }

    /// The receive state (the frames the lines own).
    pub fn rx(&self) -> &XdpRxLink {
        &self.rx
    }
}

impl Tile for NetXdp<'_> {
    fn external_input(&self) -> bool {
        true
    }

    fn kind(&self) -> &str {
        "net-xdp"
    }

    fn burst(&self) -> u64 {
        u64::from(self.budget)
    }

    fn counters(&self) -> &'static [&'static str] {
        &NET_XDP_COUNTERS
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if !out.is_empty() {
            self.rx.poll(&mut self.xsk, out.producer(0), self.budget);
        }
    }

    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        let ready = self.xsk.tx_ready() && (!self.sends_in_place() || self.xsk.in_place_ready());
        self.release_completed();
        if ready {
            Filter::Process
        } else {
            self.tx_waits += 1;
            Filter::Retry
        }
    }

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, input: usize, frag: &Frag<'_>, _out: &mut Outputs<'_, '_>) {
        // In place if it may be (the frag stays held until the send
        // completes); else copied once into a transmit frame. An error
        // here is `Inval`, a frame this socket cannot send (a runt, or
        // longer than the interface takes): counted, as the socket counts
        // it too. (`Again` cannot happen: before_frag saw room, and
        // nothing else sends on this socket.)
        if input == 0 {
            self.newest = frag.meta().seq;
            // Only input 0's holds keep its bytes: another input's frag
            // lying inside the span is copied like any other.
            if self.send_in_place(frag) {
                return;
            }
        }
        if let Err(e) = self.xsk.send(&[PktInfo::new(frag.packet())], false) {
            debug_assert_eq!(e.kind, SendErrorKind::Inval);
            self.tx_refused += 1;
        }
    }

    fn end_of_burst(&mut self, _input: usize, _out: &mut Outputs<'_, '_>) {
        let _ = self.xsk.send(&[], true);
        self.release_completed();
    }

    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {
        // The stem publishes the inputs' progress right after this, with
        // the holds the completions reaped here released.
        self.xsk.service(mono_ns());
        self.release_completed();
        if let Ok(k) = self.xsk.kernel_stats() {
            self.kernel = k;
        }
    }

    /// The frags of input 0 from the oldest one still in flight in place
    /// to the newest taken in: the input's progress stops before the
    /// oldest, so its producer cannot rewrite bytes the kernel may still
    /// read. (Every frag of the input reaches `on_frag`: the tile neither
    /// skips frags nor shares its input when it sends in place.)
    fn held(&self, input: usize) -> u64 {
        match self.in_flight.front() {
            Some(&(oldest, _)) if input == 0 => self.newest.wrapping_add(1).wrapping_sub(oldest),
            _ => 0,
        }
    }

    fn pending(&self) -> usize {
        self.in_flight.len()
    }

    fn metrics_write(&mut self, c: &mut [u64]) {
        let s = self.xsk.stats();
        let k = self.kernel;
        let values = [
            s.rx_packets,
            s.rx_bytes,
            s.tx_packets,
            s.tx_bytes,
            s.fill_empty,
            s.tx_full + self.tx_waits,
            self.tx_refused,
            s.rx_wakeups,
            s.tx_wakeups,
            s.rx_bad_desc,
            k.rx_dropped,
            k.rx_ring_full,
            k.rx_fill_ring_empty_descs,
            k.rx_invalid_descs,
            k.tx_invalid_descs,
            s.tx_in_place,
        ];
        for (dst, v) in c.iter_mut().zip(values) {
            *dst = v;
        }
    }
}
