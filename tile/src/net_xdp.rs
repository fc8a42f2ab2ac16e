//! The net tile's AF_XDP receive side: packets land in a link with no copy.
//!
//! # The link is the UMEM
//!
//! A link that receives from AF_XDP is made with a dcache large enough to
//! be the socket's whole UMEM ([`Link::create_with_data`] with
//! [`data_mtus`]); its data region is registered with the kernel
//! ([`umem`]). The NIC then writes each packet straight into the shared
//! memory the link's consumers read, in any process.
//!
//! # Frames follow the lines
//!
//! Every mcache line owns one UMEM frame ([`XdpRxLink`] starts with the
//! `depth` frames [`tilewire_xdp::Xsk::bind`] kept back for them). When a
//! packet arrives in frame `f`, the sink publishes a frag pointing at `f`
//! on the next line and gives the frame that line held before back to the
//! fill ring. That old frame belonged to frag `seq - depth`, which is
//! exactly the frag the mcache just invalidated: a consumer still reading
//! it sees the overrun when it re-checks the line, never a packet the NIC
//! is writing over. The frame count never changes (see
//! `tilewire_xdp::umem` for the whole ledger).
//!
//! A reliable consumer that falls a ring behind stops the producer: the
//! sink refuses, the packet stays on the rx ring, and the kernel drops (and
//! counts) only what no longer fits there.
//!
//! # What a frag says
//!
//! - `chunk`: the 64-byte chunk holding the packet's first byte;
//! - the `ctl` origin field: the packet's byte offset inside that chunk
//!   (0 in practice: the kernel's 256-byte headroom keeps packets
//!   chunk-aligned), and `sz` counts from the chunk's start, so the packet
//!   is `payload[origin..sz]` and a reader that ignores the origin still
//!   gets every byte;
//! - `sig`: the UDP destination port, for consumers that filter on it;
//! - `tsorig` = `tspub`: when the poll that took the packet began.

use tilewire_shmem::clock::mono_ts;
use tilewire_xdp::frame::UdpFrame;
use tilewire_xdp::{RxPacket, RxRefused, RxSink, Umem, UmemError, XskConfig, FRAME_SIZE};

use crate::frag::{ctl, CHUNK_SZ};
use crate::link::{Link, LinkParams, Reliability};
use crate::producer::Producer;

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

/// An [`RxSink`] that publishes each received packet into a link without
/// copying it; see the [module docs](self).
#[derive(Debug)]
pub struct XdpRxLink<'w> {
    producer: Producer<'w>,
    /// The frame each line owns, by `seq & mask`.
    lines: Vec<u64>,
    mask: u64,
    /// Chunk of the UMEM's first byte.
    chunk0: u32,
    /// Timestamp for the frags of the current poll.
    ts: u32,
}

impl<'w> XdpRxLink<'w> {
    /// A sink publishing into `link`, whose lines own `lines` (one frame
    /// per line, as `Xsk::bind` returned them for `cfg.lines = depth`).
    ///
    /// # Panics
    /// If `lines` does not hold exactly one frame per line.
    pub fn new(link: &Link<'w>, lines: Vec<u64>) -> XdpRxLink<'w> {
        assert_eq!(lines.len() as u64, link.depth(), "one frame per line");
        XdpRxLink {
            producer: link.producer(),
            lines,
            mask: link.depth() - 1,
            chunk0: link.dcache().chunk0(),
            ts: mono_ts(),
        }
    }

    /// Sets the timestamp of the frags published from now on (call once
    /// per poll; a clock read per packet would cost more than the rest).
    pub fn stamp(&mut self, ts: u32) {
        self.ts = ts;
    }

    /// The producer (for housekeeping and back-pressure counts).
    pub fn producer(&mut self) -> &mut Producer<'w> {
        &mut self.producer
    }

    /// The frames the lines own now.
    pub fn line_frames(&self) -> &[u64] {
        &self.lines
    }
}

impl RxSink for XdpRxLink<'_> {
    #[inline]
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        let chunk_sz = CHUNK_SZ as u64;
        let chunk = self.chunk0 + (pkt.addr / chunk_sz) as u32;
        let off = (pkt.addr % chunk_sz) as u16;
        let sz = usize::from(off) + pkt.data.len();
        let sig = u64::from(UdpFrame::new_unchecked(pkt.data).dst_port());
        let seq = self
            .producer
            .publish_chunk(
                chunk,
                sz,
                sig,
                ctl(true, true, false, off),
                self.ts,
                self.ts,
            )
            .map_err(|_| RxRefused)?;
        let line = (seq & self.mask) as usize;
        Ok(std::mem::replace(&mut self.lines[line], pkt.frame))
    }
}

/// The packet inside the payload a consumer read for frag `meta` of an
/// XDP receive link: `payload[origin..]` (see "What a frag says").
pub fn packet_of<'p>(meta: &crate::frag::FragMeta, payload: &'p [u8]) -> &'p [u8] {
    let off = usize::from(meta.origin()).min(payload.len());
    &payload[off..]
}
