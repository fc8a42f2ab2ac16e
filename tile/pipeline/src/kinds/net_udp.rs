//! The `net-udp` tile: the net tile over a UDP socket instead of AF_XDP.
//!
//! # Frames on the links, datagrams on the socket
//!
//! Every frag of a pipeline's links is one whole Ethernet frame
//! (Ethernet, IPv4, UDP, payload), whatever moved it: that is what
//! [`crate::kinds::net_xdp`] publishes, and what dedup, echo and the other kinds
//! read. A UDP socket moves datagrams, not frames, so [`NetUdp`] converts
//! at the edge, and the same pipeline runs over AF_XDP or over a socket
//! that needs no privileges ([`UdpAio`]: io_uring, or sendmmsg/recvmmsg
//! where io_uring is not allowed).
//!
//! # Receive: output 0
//!
//! Each loop turn the tile polls the socket; each datagram becomes one
//! frame on output 0, built by [`datagram_frame`] (so a peer that wants to
//! compare, such as the demo's loopback sender, builds the same bytes):
//!
//! - Ethernet: fixed locally administered MACs, [`PEER_MAC`] as the source
//!   and [`SOCKET_MAC`] as the destination (there is no wire, so no real
//!   MAC to report); EtherType IPv4.
//! - IPv4: source = the sender's address; destination = the socket's
//!   local address. A socket bound to a wildcard (`0.0.0.0`) is not told
//!   which of the host's addresses a datagram was sent to ([`UdpAio`]
//!   does not ask for `IP_PKTINFO`), so its frames carry `0.0.0.0`, the
//!   bound address; bind to the address you serve to have it in every
//!   frame. (An IPv6 socket's IPv4-mapped local address is written as its
//!   IPv4 address, any other IPv6 address, `::` included, as `0.0.0.0`.)
//!   TTL 64, don't-fragment, header checksum correct.
//! - UDP: both ports, the payload, and a correct checksum (never 0), so
//!   [`tilewire_aio::frame::verify_checksums`] passes on every frame.
//! - the frag: `sig` = the UDP destination port (as `net-xdp` sets it),
//!   `ctl` = [`CTL_PKT`], `tsorig` = `tspub` = the start of the poll.
//!
//! A datagram from an IPv6 peer (an IPv6 socket, not IPv4-mapped) cannot
//! be written as an IPv4 frame: counted in `rx_dropped_v6`, dropped. One
//! whose frame would not fit the link's mtu is counted in `rx_too_big` and
//! dropped, and so is one longer than the socket's receive buffer
//! ([`UdpConfig::rx_buf_len`](tilewire_aio::UdpConfig::rx_buf_len), which
//! the kernel truncates and the aio does not deliver).
//!
//! The frame is built in a buffer of the tile's own (one mtu, allocated
//! once) and then copied into the link's reserved bytes: the only frame
//! builder, [`tilewire_aio::frame::build`], writes a `&mut [u8]` and sums
//! the UDP checksum over the contiguous segment, and the link's bytes are
//! shared atomics. Building the headers piecewise in the link would
//! duplicate that builder for the sake of one copy of at most an mtu that
//! stays in L1.
//!
//! When a reliable consumer is a ring behind, the publish fails and the
//! tile answers the aio's delivery with `Again`: the datagrams stay in the
//! aio's receive slots and are offered first at the next poll, so the
//! kernel's socket buffer is what absorbs a slow pipeline.
//!
//! # Transmit: input 0
//!
//! Each frag of input 0 is a frame; the tile parses it as IPv4 UDP
//! ([`UdpFrame::new_checked`], from the frag's origin offset on, as
//! [`FragMeta::packet`] says) and sends its UDP payload to the frame's
//! destination address and port; the frame's source address, source port
//! and MACs are ignored (the socket's own are used). A frame that does
//! not parse is counted in `tx_not_udp` and dropped. Sends go with
//! `flush = false`, so a burst of frags becomes one system call; the
//! flush comes at the end of the burst and at housekeeping.
//!
//! When the socket has no free slot (`Again`), the frame stays in the
//! tile's copy, counted once in `tx_again`; `before_frag` answers
//! [`Filter::Retry`] until the copy went out, which `after_credit` and
//! `housekeeping` try. Meanwhile the frame counts as [`Tile::held`], so
//! the input's published progress never claims it, and as
//! [`Tile::pending`], so a stopping tile keeps trying. A frame the socket
//! refuses for good (`Inval`: destination port 0, payload longer than
//! [`UdpConfig::tx_pkt_max`](tilewire_aio::UdpConfig::tx_pkt_max)) and a
//! datagram the kernel refuses with an error are counted in `tx_errors`.
//! Nothing is lost without a count.
//!
//! # Counters
//!
//! [`NET_UDP_COUNTERS`], in the workspace for any monitor. Byte counters
//! count UDP payload bytes, what the socket moves (each frame on a link is
//! [`HEADERS_LEN`] = 42 bytes longer). `rx_pkts`/`rx_bytes`: datagrams
//! published as frames; `tx_pkts`/`tx_bytes`: datagrams the kernel took;
//! `engine_uring`: 1 when the io_uring engine is in use, 0 for mmsg.

use core::sync::atomic::AtomicU8;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::Deserialize;
use tilewire_aio::frame::{build, FrameError, UdpEndpoints, UdpFrame, HEADERS_LEN};
use tilewire_aio::udp::Engine;
use tilewire_aio::{Aio, PktInfo, SendError, SendErrorKind, UdpAio, UdpConfig};
use tilewire_shmem::clock::mono_ts;
use tilewire_shmem::load_bytes;

use tilewire_tile::link::frag::{FragMeta, CTL_PKT};
use tilewire_tile::link::producer::Producer;
use tilewire_tile::stem::{Filter, Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, TileKind};
use crate::topo::{TileSpec, TopologySpec};

/// The MAC address [`datagram_frame`] gives the socket's side (the
/// destination of a received frame): locally administered, unicast.
pub const SOCKET_MAC: [u8; 6] = [0x02, 0x75, 0x64, 0x70, 0x00, 0x01];

/// The MAC address [`datagram_frame`] gives the remote peer's side (the
/// source of a received frame): locally administered, unicast.
pub const PEER_MAC: [u8; 6] = [0x02, 0x75, 0x64, 0x70, 0x00, 0x02];

/// Largest frame the transmit side copies: an Ethernet header and the
/// largest IPv4 packet. A longer frag cannot be an IPv4 frame anyway.
const TX_FRAME_MAX: usize = 14 + 65_535;

/// Counter names of [`NetUdp`], in [`Tile::metrics_write`] order.
pub const NET_UDP_COUNTERS: [&str; 10] = [
    "rx_pkts",
    "rx_bytes",
    "tx_pkts",
    "tx_bytes",
    "rx_dropped_v6",
    "rx_too_big",
    "tx_not_udp",
    "tx_again",
    "tx_errors",
    "engine_uring",
];

/// The endpoints [`datagram_frame`] writes for a datagram from `src` to
/// `dst`: the addresses given, [`PEER_MAC`] to [`SOCKET_MAC`].
pub fn datagram_endpoints(src: SocketAddrV4, dst: SocketAddrV4) -> UdpEndpoints {
    UdpEndpoints {
        src_mac: PEER_MAC,
        dst_mac: SOCKET_MAC,
        src,
        dst,
    }
}

/// Writes the frame `net-udp` publishes for a datagram of `payload` from
/// `src` to `dst` into the front of `buf` (see "Receive" in the module
/// docs): [`tilewire_aio::frame::build`] with [`datagram_endpoints`].
/// Returns the frame's length, [`HEADERS_LEN`] + `payload.len()`.
///
/// # Errors
/// As [`build`]: [`FrameError::BufferTooSmall`] when `buf` cannot hold the
/// frame, [`FrameError::PayloadTooLong`] past the IPv4 limit; `buf` is
/// not touched then.
pub fn datagram_frame(
    buf: &mut [u8],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Result<usize, FrameError> {
    build(buf, &datagram_endpoints(src, dst), payload)
}

/// `addr` as an IPv4 socket address: IPv4 as it is, IPv4-mapped IPv6 as
/// its IPv4 address; `None` for any other IPv6 address.
fn ipv4_of(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(a) => a
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, a.port())),
    }
}

/// The destination address received frames carry: the socket's local
/// address in IPv4 form, a wildcard as `0.0.0.0`.
fn frame_destination(local: SocketAddr) -> SocketAddrV4 {
    ipv4_of(local).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()))
}

/// What the receive side counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RxCounts {
    pkts: u64,
    bytes: u64,
    dropped_v6: u64,
    too_big: u64,
}

/// The downstream aio of one poll: frames each datagram and publishes it
/// on the output link.
struct FrameSink<'a, 'w> {
    producer: &'a mut Producer<'w>,
    scratch: &'a mut [u8],
    local: SocketAddrV4,
    ts: u32,
    counts: &'a mut RxCounts,
}

impl Aio for FrameSink<'_, '_> {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        let room = self.producer.mtu().min(self.scratch.len());
        for (i, pkt) in batch.iter().enumerate() {
            let Some(src) = pkt.meta.addr.and_then(ipv4_of) else {
                self.counts.dropped_v6 += 1;
                continue;
            };
            if HEADERS_LEN + pkt.buf.len() > room {
                self.counts.too_big += 1;
                continue;
            }
            let Ok(len) = datagram_frame(self.scratch, src, self.local, pkt.buf) else {
                // Unreachable: the length was checked against the buffer.
                self.counts.too_big += 1;
                continue;
            };
            let sig = u64::from(self.local.port());
            let frame = &self.scratch[..len];
            if self
                .producer
                .publish_at(frame, sig, CTL_PKT, self.ts, self.ts)
                .is_err()
            {
                // A reliable consumer is a ring behind: the aio keeps this
                // datagram and the rest, and offers them again.
                return Err(SendError::again(i));
            }
            self.counts.pkts += 1;
            self.counts.bytes += pkt.buf.len() as u64;
        }
        Ok(())
    }
}

/// How one offer of the held frame to the socket went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Taken by the socket (or dropped and counted): the copy is free.
    Done,
    /// No slot: keep the copy, try again later.
    Again,
}

/// The net tile over one UDP socket: output 0, if any, receives; input 0,
/// if any, transmits (see the [module docs](self)).
#[derive(Debug)]
pub struct NetUdp {
    udp: UdpAio,
    /// The frame of the current (or held) input frag, and its extent.
    tx_frame: Vec<u8>,
    tx_start: usize,
    tx_end: usize,
    /// True while `tx_frame` waits for a transmit slot.
    tx_held: bool,
    /// Datagrams sent with `flush = false` since the last flush.
    tx_unflushed: usize,
    tx_not_udp: u64,
    tx_again: u64,
    tx_inval: u64,
    /// Where received frames are built.
    rx_scratch: Vec<u8>,
    rx_local: SocketAddrV4,
    rx: RxCounts,
}

impl NetUdp {
    /// The tile over `udp`. `rx_mtu` is the mtu of the output link
    /// (`None` when the tile has no output): received frames are built in
    /// a buffer of that size, capped at the largest frame the socket can
    /// deliver ([`HEADERS_LEN`] + its `rx_buf_len`).
    ///
    /// An `rx_mtu` smaller than the link's mtu only makes more datagrams
    /// count as `rx_too_big`; nothing else depends on it.
    pub fn new(udp: UdpAio, rx_mtu: Option<usize>) -> NetUdp {
        let deliverable = HEADERS_LEN + udp.config().rx_buf_len;
        let scratch = rx_mtu.map_or(0, |mtu| mtu.min(deliverable));
        NetUdp {
            rx_local: frame_destination(udp.local_addr()),
            udp,
            tx_frame: vec![0; TX_FRAME_MAX],
            tx_start: 0,
            tx_end: 0,
            tx_held: false,
            tx_unflushed: 0,
            tx_not_udp: 0,
            tx_again: 0,
            tx_inval: 0,
            rx_scratch: vec![0; scratch],
            rx: RxCounts::default(),
        }
    }

    /// The socket (its address, engine and counters).
    pub fn udp(&self) -> &UdpAio {
        &self.udp
    }

    /// Offers the frame in `tx_frame` to the socket.
    fn offer(&mut self, flush: bool) -> Offer {
        let frame = &self.tx_frame[self.tx_start..self.tx_end];
        let Ok(view) = UdpFrame::new_checked(frame) else {
            self.tx_not_udp += 1;
            return Offer::Done;
        };
        let pkt = PktInfo::with_addr(view.payload(), SocketAddr::V4(view.dst()));
        match self.udp.send(&[pkt], flush) {
            Ok(()) => {
                if !flush {
                    self.tx_unflushed += 1;
                }
                Offer::Done
            }
            Err(e) if e.kind == SendErrorKind::Again => Offer::Again,
            Err(_) => {
                self.tx_inval += 1;
                Offer::Done
            }
        }
    }

    /// Tries the held frame again, with a flush (no end of burst comes
    /// while the input is retried).
    fn retry_held(&mut self) {
        if self.tx_held && self.offer(true) == Offer::Done {
            self.tx_held = false;
            self.tx_unflushed = 0;
        }
    }

    /// Flushes if anything was sent unflushed or is still queued.
    fn flush(&mut self) {
        if self.tx_unflushed > 0 || self.udp.tx_pending() > 0 {
            // An empty batch cannot fail.
            let _ = self.udp.send(&[], true);
            self.tx_unflushed = 0;
        }
    }
}

impl Tile for NetUdp {
    fn external_input(&self) -> bool {
        true
    }

    fn kind(&self) -> &str {
        "net-udp"
    }

    /// One credit: the receive side takes what credits there are and
    /// leaves the rest to the aio (`Again`), so it needs no reserve.
    fn burst(&self) -> u64 {
        1
    }

    fn counters(&self) -> &'static [&'static str] {
        &NET_UDP_COUNTERS
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        self.retry_held();
        if out.is_empty() {
            return;
        }
        let mut sink = FrameSink {
            producer: out.producer(0),
            scratch: &mut self.rx_scratch,
            local: self.rx_local,
            ts: mono_ts(),
            counts: &mut self.rx,
        };
        self.udp.poll(&mut sink);
    }

    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        if self.tx_held {
            Filter::Retry
        } else {
            Filter::Process
        }
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        let n = (meta.sz as usize)
            .min(payload.len())
            .min(self.tx_frame.len());
        load_bytes(&mut self.tx_frame[..n], &payload[..n]);
        self.tx_end = n;
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, _out: &mut Outputs<'_, '_>) {
        let frame = &self.tx_frame[..self.tx_end];
        self.tx_start = self.tx_end - meta.packet(frame).len();
        if self.offer(false) == Offer::Again {
            self.tx_again += 1;
            self.tx_held = true;
        }
    }

    fn end_of_burst(&mut self, _input: usize, _out: &mut Outputs<'_, '_>) {
        self.flush();
    }

    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {
        self.retry_held();
        self.flush();
    }

    fn metrics_write(&mut self, c: &mut [u64]) {
        let s = self.udp.stats();
        let values = [
            self.rx.pkts,
            self.rx.bytes,
            s.tx_pkts,
            s.tx_bytes,
            self.rx.dropped_v6,
            self.rx.too_big + s.rx_truncated,
            self.tx_not_udp,
            self.tx_again,
            self.tx_inval + s.tx_dropped,
            u64::from(self.udp.engine() == Engine::Uring),
        ];
        for (dst, v) in c.iter_mut().zip(values) {
            *dst = v;
        }
    }

    fn held(&self, _input: usize) -> u64 {
        u64::from(self.tx_held)
    }

    /// The held frame, datagrams the socket took and has not sent yet,
    /// and datagrams received that the output link had no room for.
    fn pending(&self) -> usize {
        usize::from(self.tx_held) + self.udp.tx_pending() + self.udp.rx_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tilewire_aio::frame::verify_checksums;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn datagram_frame_is_a_checked_frame_with_the_fixed_macs() {
        let (src, dst) = (addr("198.18.0.2:4242"), addr("198.18.0.1:8001"));
        let mut buf = [0xaa_u8; 64];
        let len = datagram_frame(&mut buf, src, dst, b"tilewire").unwrap();
        assert_eq!(len, HEADERS_LEN + 8);
        assert!(buf[len..].iter().all(|&b| b == 0xaa), "past the frame");
        verify_checksums(&buf[..len]).unwrap();
        let f = UdpFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(f.endpoints(), datagram_endpoints(src, dst));
        assert_eq!((f.src_mac(), f.dst_mac()), (PEER_MAC, SOCKET_MAC));
        assert_eq!(f.payload(), b"tilewire");
        assert_ne!(f.udp_checksum(), 0, "a real checksum, not 'none'");
        for mac in [SOCKET_MAC, PEER_MAC] {
            assert_eq!(mac[0] & 0b11, 0b10, "locally administered unicast");
        }
    }

    #[test]
    fn datagram_frame_refuses_a_small_buffer_untouched() {
        let mut buf = [0u8; HEADERS_LEN + 3];
        let e = datagram_frame(&mut buf, addr("1.2.3.4:5"), addr("5.6.7.8:9"), b"four");
        assert_eq!(
            e,
            Err(FrameError::BufferTooSmall {
                need: HEADERS_LEN + 4,
                have: HEADERS_LEN + 3
            })
        );
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn addresses_become_ipv4_or_nothing() {
        let v4: SocketAddr = "10.0.0.1:7".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:7".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:7".parse().unwrap();
        assert_eq!(ipv4_of(v4), Some(addr("10.0.0.1:7")));
        assert_eq!(ipv4_of(mapped), Some(addr("10.0.0.1:7")));
        assert_eq!(ipv4_of(v6), None);
        assert_eq!(frame_destination(v6), addr("0.0.0.0:7"));
        let any6: SocketAddr = "[::]:9".parse().unwrap();
        assert_eq!(frame_destination(any6), addr("0.0.0.0:9"));
        let any4: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert_eq!(frame_destination(any4), addr("0.0.0.0:9"));
    }
}

/// The other net-udp tiles of `topo` (whose parameters `params_of` gives)
/// that bind the address `tile` binds (a port other than 0) in the same
/// network namespace: they share it.
fn sharing<'t, 'p>(
    topo: &'t TopologySpec,
    tile: &TileSpec,
    p: &NetUdpParams,
    params_of: impl Fn(&TileSpec) -> Option<&'p NetUdpParams>,
) -> Vec<&'t TileSpec> {
    if p.bind.port() == 0 {
        return Vec::new();
    }
    topo.tiles
        .iter()
        .filter(|t| t.name != tile.name)
        .filter(|t| params_of(t).is_some_and(|o| o.bind == p.bind && o.netns == p.netns))
        .collect()
}

/// The `net-udp` kind: a UDP socket (io_uring, or sendmmsg/recvmmsg).
/// Inputs 0..=1 (frames, sent to the address in their headers), outputs
/// 0..=1 (received datagrams as Ethernet/IPv4/UDP frames), at least one
/// of the two.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetUdpKind;

/// Parameters of a `net-udp` tile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetUdpParams {
    /// The local address to bind (required, `"ip:port"`, IPv4).
    #[serde(deserialize_with = "crate::params::endpoint")]
    pub bind: SocketAddrV4,
    /// io_uring or sendmmsg/recvmmsg: `"auto"`, `"uring"` or `"mmsg"`
    /// (default auto).
    #[serde(default = "default_engine", deserialize_with = "engine")]
    pub engine: Engine,
    /// Network namespace of the socket (default: the runner's).
    #[serde(default, deserialize_with = "crate::params::opt_netns")]
    pub netns: Option<String>,
}

fn default_engine() -> Engine {
    Engine::Auto
}

fn engine<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Engine, D::Error> {
    crate::params::choice(
        d,
        &[
            ("auto", Engine::Auto),
            ("uring", Engine::Uring),
            ("mmsg", Engine::Mmsg),
        ],
    )
}

impl TileKind for NetUdpKind {
    type Params = NetUdpParams;

    fn name(&self) -> &str {
        "net-udp"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(0..=1, 0..=1)
    }

    fn check(&self, p: &NetUdpParams, ctx: &mut CheckCtx<'_>) {
        let t = ctx.tile();
        if t.inputs.is_empty() && t.outputs.is_empty() {
            ctx.error("a net-udp tile needs an input, an output or both");
        }
        let sharers = sharing(ctx.topology(), t, p, |o| ctx.params_of(o));
        if !sharers.is_empty() && t.outputs.is_empty() {
            ctx.field_error(
                "bind",
                format!(
                    "{} shares {} with tile {:?}, so the kernel spreads the datagrams \
                     that come to it over their sockets, and this tile has no output \
                     to pass its share on: give it one, or bind it elsewhere",
                    t.name, p.bind, sharers[0].name
                ),
            );
        }
    }

    fn netns<'p>(&self, p: &'p NetUdpParams) -> Option<&'p str> {
        p.netns.as_deref()
    }

    fn build<'w>(
        &self,
        p: &NetUdpParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let config = UdpConfig {
            engine: p.engine,
            // Several tiles naming one address share it: the kernel
            // spreads flows over their sockets.
            reuse_port: !sharing(ctx.topology(), ctx.tile(), p, |o| ctx.params_of(o)).is_empty(),
            // Room for bursts while the loop is busy elsewhere.
            recv_buf: Some(4 << 20),
            send_buf: Some(4 << 20),
            ..UdpConfig::new(p.bind.into())
        };
        let udp = UdpAio::bind(&config)
            .map_err(|e| BuildError::new(format!("binding {}: {e}", p.bind)))?;
        let rx_mtu = match ctx.tile().outputs.is_empty() {
            true => None,
            false => Some(ctx.output(0)?.mtu()),
        };
        Ok(Box::new(NetUdp::new(udp, rx_mtu)))
    }
}
