//! The `net-udp` tile: the net tile over a UDP socket instead of AF_XDP.
//!
//! # Frames on the links, datagrams on the socket
//!
//! Every frag of a pipeline's links is one whole Ethernet frame
//! (Ethernet, IPv4 or IPv6, UDP, payload), whatever moved it: that is what
//! [`crate::kinds::net_xdp`] publishes, and what dedup, echo and the other kinds
//! read. A UDP socket moves datagrams, not frames, so [`NetUdp`] converts
//! at the edge, and the same pipeline runs over AF_XDP or over a socket
//! that needs no privileges ([`UdpAio`]: io_uring, or sendmmsg/recvmmsg
//! where io_uring is not allowed). The socket may be IPv4 or IPv6 (`bind`
//! `"127.0.0.1:9000"` or `"[::1]:9000"`); an IPv6 socket bound to `::`
//! serves IPv4 peers too (dual stack, unless the host sets
//! `net.ipv6.bindv6only`).
//!
//! # Receive: output 0
//!
//! Each loop turn the tile polls the socket; each datagram becomes one
//! frame on output 0, built by [`datagram_frame`] (so a peer that wants to
//! compare, such as the demo's loopback sender, builds the same bytes).
//! The sender's family chooses the frame's: an IPv4 peer (an IPv4-mapped
//! one of an IPv6 socket included) gets an IPv4 frame, an IPv6 peer an
//! IPv6 frame.
//!
//! - Ethernet: fixed locally administered MACs, [`PEER_MAC`] as the source
//!   and [`SOCKET_MAC`] as the destination (there is no wire, so no real
//!   MAC to report); EtherType IPv4 or IPv6.
//! - IP: source = the sender's address; destination = the socket's local
//!   address. A socket bound to a wildcard (`0.0.0.0`, `::`) is not told
//!   which of the host's addresses a datagram was sent to ([`UdpAio`]
//!   does not ask for `IP_PKTINFO`), so its frames carry the wildcard,
//!   the bound address; bind to the address you serve to have it in every
//!   frame. In an IPv4 frame an IPv6 socket's IPv4-mapped local address is
//!   written as its IPv4 address, any other IPv6 address (`::` included)
//!   as `0.0.0.0`. IPv4: TTL 64, don't-fragment, header checksum correct
//!   ([`tilewire_aio::frame::build`]); IPv6: no extension headers, hop
//!   limit 64, flow label 0 ([`tilewire_aio::frame::build_ipv6`]).
//! - UDP: both ports, the payload, and a correct checksum (never 0), so
//!   [`tilewire_aio::frame::verify_checksums`] passes on every IPv4 frame
//!   (and an IPv6 frame's checksum is the one the kernel would send).
//! - the frag: `sig` = the UDP destination port (as `net-xdp` sets it),
//!   `ctl` = [`CTL_PKT`], `tsorig` = `tspub` = the start of the poll.
//!
//! A datagram whose frame would not fit the link's mtu is counted in
//! `rx_too_big` and dropped (an IPv6 frame is 20 bytes longer than an
//! IPv4 one of the same payload), and so is one longer than the socket's
//! receive buffer ([`UdpConfig::rx_buf_len`](tilewire_aio::UdpConfig::rx_buf_len),
//! which the kernel truncates and the aio does not deliver). One the
//! socket gave without a source address (a UDP socket always gives one)
//! cannot be framed: counted in `rx_no_addr`, dropped.
//!
//! The frame is built in a buffer of the tile's own (one mtu, allocated
//! once) and then copied into the link's reserved bytes: the frame
//! builders write a `&mut [u8]` and sum the UDP checksum over the
//! contiguous segment, and the link's bytes are shared atomics. Building
//! the headers piecewise in the link would duplicate those builders for
//! the sake of one copy of at most an mtu that stays in L1.
//!
//! When a reliable consumer is a ring behind, the publish fails and the
//! tile answers the aio's delivery with `Again`: the datagrams stay in the
//! aio's receive slots and are offered first at the next poll, so the
//! kernel's socket buffer is what absorbs a slow pipeline.
//!
//! # Transmit: input 0
//!
//! Each frag of input 0 is a frame, from the frag's origin offset on (as
//! [`FragMeta::packet`] says); the tile sends its UDP payload to the
//! frame's destination address and port, read where the frame's family
//! has them: an IPv4 frame parsed whole ([`UdpFrame::new_checked`]), an
//! IPv6 frame (EtherType `0x86dd`, no extension headers, lengths that
//! hold: [`udp_payload`]) from its fixed header, the destination address
//! at bytes 38..54 and the ports at 54..58. The frame's source address,
//! source port and MACs are ignored (the socket's own are used). A frame
//! that does not parse is counted in `tx_not_udp` and dropped. An IPv4
//! frame goes out of an IPv6 socket to the IPv4-mapped address; an IPv6
//! frame goes out of an IPv4 socket only to an IPv4-mapped address (any
//! other is counted in `tx_errors`). A
//! frame carries no scope: to a link-local IPv6 destination the socket's
//! own scope (its bind address's) is used. Sends go with `flush = false`,
//! so a burst of frags becomes one system call; the flush comes at the
//! end of the burst and at housekeeping.
//!
//! When the socket has no free slot (`Again`), the frame stays in the
//! tile's copy, counted once in `tx_again`; `before_frag` answers
//! [`Filter::Retry`] until the copy went out, which `after_credit` and
//! `housekeeping` try. Meanwhile the frame counts as [`Tile::held`], so
//! the input's published progress never claims it, and as
//! [`Tile::pending`], so a stopping tile keeps trying. A frame the socket
//! refuses for good (`Inval`: destination port 0, a destination of the
//! other family, payload longer than
//! [`UdpConfig::tx_pkt_max`](tilewire_aio::UdpConfig::tx_pkt_max)) and a
//! datagram the kernel refuses with an error are counted in `tx_errors`.
//! Nothing is lost without a count.
//!
//! # Counters
//!
//! [`NET_UDP_COUNTERS`], in the workspace for any monitor. Byte counters
//! count UDP payload bytes, what the socket moves (each frame on a link is
//! [`HEADERS_LEN`] = 42 bytes longer, [`HEADERS_LEN_IPV6`] = 62 for
//! IPv6). `rx_pkts`/`rx_bytes`: datagrams published as frames;
//! `tx_pkts`/`tx_bytes`: datagrams the kernel took; `engine_uring`: 1 when
//! the io_uring engine is in use, 0 for mmsg.

use core::sync::atomic::AtomicU8;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use serde::Deserialize;
use tilewire_aio::frame::{
    build, build_ipv6, udp_payload, FrameError, Udp6Endpoints, UdpEndpoints, UdpFrame,
    ETHERTYPE_IPV6, HEADERS_LEN, HEADERS_LEN_IPV6,
};
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
/// largest IPv6 packet without a jumbogram (its fixed header and a payload
/// length of 65535). A longer frag cannot be a UDP frame anyway.
const TX_FRAME_MAX: usize = HEADERS_LEN_IPV6 - 8 + 65_535;

/// Counter names of [`NetUdp`], in [`Tile::metrics_write`] order.
pub const NET_UDP_COUNTERS: [&str; 10] = [
    "rx_pkts",
    "rx_bytes",
    "tx_pkts",
    "tx_bytes",
    "rx_no_addr",
    "rx_too_big",
    "tx_not_udp",
    "tx_again",
    "tx_errors",
    "engine_uring",
];

/// The endpoints [`datagram_frame`] writes for a datagram from IPv4 `src`
/// to `dst`: the addresses given, [`PEER_MAC`] to [`SOCKET_MAC`].
pub fn datagram_endpoints(src: SocketAddrV4, dst: SocketAddrV4) -> UdpEndpoints {
    UdpEndpoints {
        src_mac: PEER_MAC,
        dst_mac: SOCKET_MAC,
        src,
        dst,
    }
}

/// The endpoints [`datagram_frame`] writes for a datagram from IPv6 `src`
/// to `dst`: the addresses given, [`PEER_MAC`] to [`SOCKET_MAC`].
pub fn datagram_endpoints_ipv6(src: SocketAddrV6, dst: SocketAddrV6) -> Udp6Endpoints {
    Udp6Endpoints {
        src_mac: PEER_MAC,
        dst_mac: SOCKET_MAC,
        src,
        dst,
    }
}

/// Writes the frame `net-udp` publishes for a datagram of `payload` from
/// `src` to the socket whose local address is `local` into the front of
/// `buf` (see "Receive" in the module docs). The sender's family chooses
/// the frame's: an IPv4 (or IPv4-mapped) `src` gives
/// [`tilewire_aio::frame::build`] with [`datagram_endpoints`], the
/// destination `local` in IPv4 form (an IPv6 address that is not
/// IPv4-mapped, `::` included, as `0.0.0.0`); an IPv6 `src` gives
/// [`build_ipv6`] with [`datagram_endpoints_ipv6`], the destination
/// `local` in IPv6 form (an IPv4 address as IPv4-mapped). Returns the
/// frame's length: [`HEADERS_LEN`] or [`HEADERS_LEN_IPV6`] +
/// `payload.len()`.
///
/// # Errors
/// As the builders: [`FrameError::BufferTooSmall`] when `buf` cannot hold
/// the frame, [`FrameError::PayloadTooLong`] past the family's limit;
/// `buf` is not touched then.
pub fn datagram_frame(
    buf: &mut [u8],
    src: SocketAddr,
    local: SocketAddr,
    payload: &[u8],
) -> Result<usize, FrameError> {
    match (ipv4_of(src), src) {
        (Some(src), _) => build(buf, &datagram_endpoints(src, ipv4_local(local)), payload),
        (None, SocketAddr::V6(src)) => build_ipv6(
            buf,
            &datagram_endpoints_ipv6(src, ipv6_local(local)),
            payload,
        ),
        // ipv4_of answers every IPv4 address.
        (None, SocketAddr::V4(_)) => unreachable!("an IPv4 address is IPv4"),
    }
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

/// The destination address received IPv4 frames carry: the socket's
/// local address in IPv4 form, any other IPv6 address as `0.0.0.0`.
fn ipv4_local(local: SocketAddr) -> SocketAddrV4 {
    ipv4_of(local).unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()))
}

/// The destination address received IPv6 frames carry: the socket's
/// local address, an IPv4 one as IPv4-mapped (an IPv4 socket has no IPv6
/// peer, so only a caller of [`datagram_frame`] asks this).
fn ipv6_local(local: SocketAddr) -> SocketAddrV6 {
    match local {
        SocketAddr::V6(a) => a,
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
    }
}

/// The UDP payload of `frame` and where it goes, once [`udp_payload`]
/// proved the frame's lengths: an IPv6 frame's destination read from its
/// fixed header (bytes 38..54, the port at 56..58), a link-local one in
/// `scope`; an IPv4 frame's from its headers ([`UdpFrame::new_checked`]
/// accepted them). `None` for a frame that is neither.
fn datagram_of(frame: &[u8], scope: u32) -> Option<(&[u8], SocketAddr)> {
    let payload = udp_payload(frame)?;
    if frame[12..14] != ETHERTYPE_IPV6.to_be_bytes() {
        return Some((
            payload,
            SocketAddr::V4(UdpFrame::new_unchecked(frame).dst()),
        ));
    }
    let ip: [u8; 16] = frame[38..54].try_into().ok()?;
    let ip = Ipv6Addr::from(ip);
    let port = u16::from_be_bytes([frame[56], frame[57]]);
    let scope = if ip.is_unicast_link_local() { scope } else { 0 };
    Some((
        payload,
        SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)),
    ))
}

/// What the receive side counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RxCounts {
    pkts: u64,
    bytes: u64,
    no_addr: u64,
    too_big: u64,
}

/// The downstream aio of one poll: frames each datagram and publishes it
/// on the output link.
struct FrameSink<'a, 'w> {
    producer: &'a mut Producer<'w>,
    scratch: &'a mut [u8],
    local: SocketAddr,
    ts: u32,
    counts: &'a mut RxCounts,
}

impl Aio for FrameSink<'_, '_> {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        let room = self.producer.mtu().min(self.scratch.len());
        for (i, pkt) in batch.iter().enumerate() {
            let Some(src) = pkt.meta.addr else {
                self.counts.no_addr += 1;
                continue;
            };
            // Too small a buffer, or (beyond any mtu) too long a payload.
            let Ok(len) = datagram_frame(&mut self.scratch[..room], src, self.local, pkt.buf)
            else {
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
    rx_local: SocketAddr,
    rx: RxCounts,
    /// The scope of link-local IPv6 destinations: the socket's own.
    tx_scope: u32,
}

impl NetUdp {
    /// The tile over `udp`. `rx_mtu` is the mtu of the output link
    /// (`None` when the tile has no output): received frames are built in
    /// a buffer of that size, capped at the largest frame the socket can
    /// deliver ([`HEADERS_LEN`], for an IPv6 socket [`HEADERS_LEN_IPV6`],
    /// + its `rx_buf_len`).
    ///
    /// An `rx_mtu` smaller than the link's mtu only makes more datagrams
    /// count as `rx_too_big`; nothing else depends on it.
    pub fn new(udp: UdpAio, rx_mtu: Option<usize>) -> NetUdp {
        let local = udp.local_addr();
        let headers = match local {
            SocketAddr::V4(_) => HEADERS_LEN,
            SocketAddr::V6(_) => HEADERS_LEN_IPV6,
        };
        let deliverable = headers + udp.config().rx_buf_len;
        let scratch = rx_mtu.map_or(0, |mtu| mtu.min(deliverable));
        let tx_scope = match local {
            SocketAddr::V6(a) => a.scope_id(),
            SocketAddr::V4(_) => 0,
        };
        NetUdp {
            rx_local: local,
            tx_scope,
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
        let Some((payload, dst)) = datagram_of(frame, self.tx_scope) else {
            self.tx_not_udp += 1;
            return Offer::Done;
        };
        let pkt = PktInfo::with_addr(payload, dst);
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
            self.rx.no_addr,
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
    use tilewire_aio::frame::{swap_endpoints, udp6_checksum, udp_dst_port, verify_checksums};

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn datagram_frame_is_a_checked_frame_with_the_fixed_macs() {
        let (src, dst) = (addr("198.18.0.2:4242"), addr("198.18.0.1:8001"));
        let mut buf = [0xaa_u8; 64];
        let len = datagram_frame(&mut buf, src.into(), dst.into(), b"tilewire").unwrap();
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
    fn an_ipv6_peer_gets_an_ipv6_frame_that_reads_back() {
        let (src, local) = (sa("[2001:2::2]:4242"), sa("[2001:2::1]:8001"));
        let mut buf = [0xaa_u8; 96];
        let len = datagram_frame(&mut buf, src, local, b"tilewire").unwrap();
        assert_eq!(len, HEADERS_LEN_IPV6 + 8);
        assert!(buf[len..].iter().all(|&b| b == 0xaa), "past the frame");
        let f = &buf[..len];
        assert_eq!(&f[0..6], &SOCKET_MAC);
        assert_eq!(&f[6..12], &PEER_MAC);
        assert_eq!(&f[12..14], &[0x86, 0xdd], "EtherType IPv6");
        assert_eq!(f[14] >> 4, 6);
        let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
        assert_eq!(SocketAddr::from((ip(22), 4242)), src);
        assert_eq!(SocketAddr::from((ip(38), udp_dst_port(f))), local);
        assert_eq!(udp_payload(f), Some(&b"tilewire"[..]));
        let stored = u16::from_be_bytes([f[60], f[61]]);
        assert_ne!(stored, 0, "a real checksum, not 'none'");
        let mut seg = f[54..].to_vec();
        seg[6..8].fill(0);
        assert_eq!(stored, udp6_checksum(ip(22), ip(38), &seg));
        // The same bytes as the IPv6 builder with the fixed MACs.
        let (SocketAddr::V6(s6), SocketAddr::V6(l6)) = (src, local) else {
            unreachable!()
        };
        let want =
            tilewire_aio::frame::build_ipv6_vec(&datagram_endpoints_ipv6(s6, l6), b"tilewire")
                .unwrap();
        assert_eq!(f, &want[..]);
        // An echo (endpoints swapped) is sent back to the peer.
        let mut reply = f.to_vec();
        swap_endpoints(&mut reply).unwrap();
        assert_eq!(datagram_of(&reply, 0), Some((&b"tilewire"[..], src)));
    }

    #[test]
    fn the_sender_family_chooses_the_frame_family() {
        let mut buf = [0u8; 128];
        // An IPv4-mapped peer of a dual-stack socket bound to `::`: IPv4,
        // to 0.0.0.0.
        let len = datagram_frame(&mut buf, sa("[::ffff:10.0.0.1]:7"), sa("[::]:9"), b"x").unwrap();
        let f = UdpFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!((f.src(), f.dst()), (addr("10.0.0.1:7"), addr("0.0.0.0:9")));
        // An IPv6 peer of the same socket: IPv6, to `::`.
        let len = datagram_frame(&mut buf, sa("[::1]:7"), sa("[::]:9"), b"x").unwrap();
        assert_eq!(len, HEADERS_LEN_IPV6 + 1);
        assert_eq!(&buf[38..54], &[0u8; 16], "the wildcard, `::`");
        // Too small a buffer for the IPv6 frame: refused, untouched.
        let mut small = [0u8; HEADERS_LEN_IPV6];
        assert_eq!(
            datagram_frame(&mut small, sa("[::1]:7"), sa("[::1]:9"), b"x"),
            Err(FrameError::BufferTooSmall {
                need: HEADERS_LEN_IPV6 + 1,
                have: HEADERS_LEN_IPV6
            })
        );
        assert!(small.iter().all(|&b| b == 0));
    }

    #[test]
    fn datagram_frame_refuses_a_small_buffer_untouched() {
        let mut buf = [0u8; HEADERS_LEN + 3];
        let e = datagram_frame(&mut buf, sa("1.2.3.4:5"), sa("5.6.7.8:9"), b"four");
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
    fn frames_to_send_give_their_payload_and_destination() {
        let v4 = tilewire_aio::frame::build_vec(
            &datagram_endpoints(addr("10.0.0.1:9"), addr("10.0.0.2:7")),
            b"four",
        )
        .unwrap();
        assert_eq!(datagram_of(&v4, 5), Some((&b"four"[..], sa("10.0.0.2:7"))));
        let ends = |dst: &str| datagram_endpoints_ipv6(sa6("[2001:2::1]:9"), sa6(dst));
        let v6 = tilewire_aio::frame::build_ipv6_vec(&ends("[2001:2::2]:7"), b"six").unwrap();
        assert_eq!(
            datagram_of(&v6, 5),
            Some((&b"six"[..], sa("[2001:2::2]:7")))
        );
        // A link-local destination takes the socket's scope.
        let ll = tilewire_aio::frame::build_ipv6_vec(&ends("[fe80::2]:7"), b"six").unwrap();
        let want = SocketAddrV6::new("fe80::2".parse().unwrap(), 7, 0, 5);
        assert_eq!(datagram_of(&ll, 5), Some((&b"six"[..], want.into())));
        // Not UDP, cut, or lying: none.
        let mut tcp = v6.clone();
        tcp[20] = 6;
        assert_eq!(datagram_of(&tcp, 0), None);
        assert_eq!(datagram_of(&v6[..60], 0), None);
        assert_eq!(datagram_of(&v4[..30], 0), None);
        assert_eq!(datagram_of(b"", 0), None);
    }

    fn sa6(s: &str) -> SocketAddrV6 {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_become_ipv4_or_nothing() {
        let v4: SocketAddr = "10.0.0.1:7".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:7".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:7".parse().unwrap();
        assert_eq!(ipv4_of(v4), Some(addr("10.0.0.1:7")));
        assert_eq!(ipv4_of(mapped), Some(addr("10.0.0.1:7")));
        assert_eq!(ipv4_of(v6), None);
        assert_eq!(ipv4_local(v6), addr("0.0.0.0:7"));
        let any6: SocketAddr = "[::]:9".parse().unwrap();
        assert_eq!(ipv4_local(any6), addr("0.0.0.0:9"));
        let any4: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert_eq!(ipv4_local(any4), addr("0.0.0.0:9"));
        assert_eq!(ipv6_local(v4), sa6("[::ffff:10.0.0.1]:7"));
        assert_eq!(ipv6_local(v6), sa6("[2001:db8::1]:7"));
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
/// 0..=1 (received datagrams as Ethernet/IPv4/UDP or Ethernet/IPv6/UDP
/// frames), at least one of the two.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetUdpKind;

/// Parameters of a `net-udp` tile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetUdpParams {
    /// The local address to bind (required, `"ip:port"`, IPv4, or
    /// `"[ip]:port"`, IPv6).
    #[serde(deserialize_with = "crate::params::socket_addr")]
    pub bind: SocketAddr,
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
            ..UdpConfig::new(p.bind)
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
