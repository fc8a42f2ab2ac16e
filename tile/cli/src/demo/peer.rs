//! The demo's peer: sends the fixture at a set rate, receives the echoes,
//! and counts everything, so the pipeline's counts can be checked.
//!
//! Over AF_XDP (namespace `b`) it sends whole frames from an AF_XDP socket
//! of its own: the malformed frames go on the wire as they are, which no
//! UDP socket could do. Over loopback it sends the well-formed datagrams'
//! payloads from a UDP socket. Either way the echoes come back to an
//! ordinary UDP socket on [`PEER_PORT`]. Over IPv6 (the target's
//! addresses say which) the well-formed frames go as IPv6, and the
//! fixture's own IPv6 datagrams with them (see [`super::ipv6`]).
//!
//! Every pass over the fixture after the first is made new with
//! [`stamp_pass`] (the pass number in the first payload bytes), so the
//! only duplicates are the fixture's own. The peer knows which packets
//! are duplicates by their payload, not by the fixture's labels: the
//! number dedup must drop is counted here, independently.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::fixture::{rewrite_endpoints, FrameClass, CLASS_PORTS};
use tilewire_aio::udp::{UdpAio, UdpConfig};
use tilewire_aio::{Aio, PktInfo, SendError, SendErrorKind};
use tilewire_pipeline::kinds::generator::stamp_pass;
use tilewire_pipeline::kinds::sink::packet_checksum;
use tilewire_pipeline::StopFlag;
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::Workspace;
use tilewire_xdp::frame::{udp_payload, Udp6Endpoints, UdpEndpoints, UdpFrame, ETH_HEADER_LEN};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

/// The peer's UDP port: the source of what it sends, where echoes return.
pub(super) const PEER_PORT: u16 = 7000;
/// Longest the peer waits for the last echoes after it stopped sending.
const DRAIN_MAX: Duration = Duration::from_secs(3);
/// The peer stops waiting once this long passed without an echo.
const DRAIN_QUIET: Duration = Duration::from_millis(500);
/// Frames the peer hands its socket at once.
const BATCH: usize = 64;

/// Where the peer sends.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// Whole frames from an AF_XDP socket on `ifname` in `netns`.
    Xdp {
        /// The peer's namespace.
        netns: String,
        /// The peer's veth end.
        ifname: String,
        /// The peer's MAC and address (IPv4, or IPv6 for the demo over
        /// IPv6; the pipeline's of the same family).
        src: ([u8; 6], IpAddr),
        /// The pipeline's MAC and address.
        dst: ([u8; 6], IpAddr),
    },
    /// Datagrams to the pipeline's UDP socket on loopback, 127.0.0.1 or
    /// `::1`.
    Udp {
        /// The pipeline's address and port.
        to: SocketAddr,
    },
}

impl Target {
    /// Whether the peer sends over IPv6.
    fn ipv6(&self) -> bool {
        match self {
            Target::Xdp { dst, .. } => dst.1.is_ipv6(),
            Target::Udp { to } => to.is_ipv6(),
        }
    }
}

/// A frame of the fixture, for the peer.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    /// Its class.
    pub class: FrameClass,
    /// The port the XDP program steers it on, given no IPv4 address
    /// filter ([`Fixture::steer_port`](tilewire_aio::fixture::Fixture::steer_port)).
    pub steer: Option<u16>,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Counts the peer keeps while it runs, for the live line.
#[derive(Debug, Default)]
pub(super) struct PeerLive {
    /// Packets sent.
    pub sent: AtomicU64,
    /// Echoes received.
    pub received: AtomicU64,
}

/// What the peer did.
#[derive(Debug, Clone, Default)]
pub(super) struct PeerCounts {
    /// Packets sent, by class.
    pub by_class: Vec<(String, u64)>,
    /// Packets sent.
    pub sent: u64,
    /// Of those, well-formed UDP to a pipeline port: what the pipeline
    /// gets.
    pub well_formed: u64,
    /// Of those, repeats of a payload sent before.
    pub dups: u64,
    /// Frames sent that are not well-formed UDP to a pipeline port.
    pub malformed: u64,
    /// Frames of the fixture not sent: malformed ones over loopback (a
    /// UDP socket sends only datagrams), runts shorter than an Ethernet
    /// header over AF_XDP (no interface sends them).
    pub unsendable: u64,
    /// Echoes received.
    pub received: u64,
    /// Wrapping sum of the checksums of the unique payloads sent.
    pub expected_sum: u64,
    /// Wrapping sum of the checksums of the payloads echoed.
    pub received_sum: u64,
    /// Datagrams the kernel dropped at the peer's echo socket (its receive
    /// buffer was full) over the run.
    pub rcvbuf_drops: u64,
    /// Over loopback, datagrams the kernel dropped at the pipeline's net
    /// socket over the run (read while it is open, before the stop).
    pub net_socket_drops: u64,
    /// Times the send socket was full and the peer waited.
    pub send_waits: u64,
    /// Whether the peer sent over IPv6.
    pub ipv6: bool,
}

/// One frame to send, ready.
struct Prepared {
    class: FrameClass,
    frame: Vec<u8>,
    /// A UDP datagram for the pipeline: steered to its socket (AF_XDP),
    /// or sent to it (loopback).
    datagram: bool,
}

/// The peer, ready to run.
pub(super) struct Peer<'w> {
    ws: &'w Workspace,
    target: Target,
    frames: Vec<Prepared>,
    rate: u64,
    duration: Duration,
    unsendable: u64,
}

impl<'w> Peer<'w> {
    /// Prepares the frames for `target`: addressed to the pipeline (class
    /// ports kept), from the peer.
    ///
    /// # Errors
    /// If no frame is left to send.
    pub(super) fn new(
        ws: &'w Workspace,
        target: Target,
        fixture: Vec<Frame>,
        rate: u64,
        duration: Duration,
    ) -> Result<Peer<'w>, String> {
        let mut frames = Vec::new();
        let mut unsendable = 0;
        for f in fixture {
            match prepare(&target, f)? {
                Some(p) => frames.push(p),
                None => unsendable += 1,
            }
        }
        if frames.is_empty() {
            return Err("no frame of the chosen mix can be sent this way".into());
        }
        Ok(Peer {
            ws,
            target,
            frames,
            rate,
            duration,
            unsendable,
        })
    }

    /// Sends for the duration (or until `stop`), then waits for the last
    /// echoes; on its own thread, which it moves into the peer's network
    /// namespace.
    ///
    /// # Errors
    /// A socket that cannot be made.
    pub(super) fn run(self, stop: &StopFlag, live: &PeerLive) -> Result<PeerCounts, String> {
        match &self.target {
            Target::Xdp {
                netns, ifname, src, ..
            } => {
                tilewire_aio::netns::enter_thread(netns).map_err(|e| e.to_string())?;
                let rx = echo_socket(SocketAddr::new(src.1, PEER_PORT))?;
                let umem = Umem::alloc_named(self.ws, "peer.umem", 4096)
                    .map_err(|e| format!("peer UMEM: {e}"))?;
                let cfg = XskConfig {
                    ifname: ifname.clone(),
                    bind: BindMode::Copy,
                    rx_size: 64,
                    fill_size: 64,
                    tx_size: 2048,
                    ..XskConfig::default()
                };
                let (xsk, _) =
                    Xsk::bind(umem, &cfg).map_err(|e| format!("peer AF_XDP socket: {e}"))?;
                self.send_loop(stop, live, XdpTx { xsk, rx })
            }
            Target::Udp { to } => {
                let sock = echo_socket(SocketAddr::new(to.ip(), 0))?;
                self.send_loop(stop, live, UdpTx { sock, to: *to })
            }
        }
    }

    fn send_loop(
        &self,
        stop: &StopFlag,
        live: &PeerLive,
        mut tx: impl Sender,
    ) -> Result<PeerCounts, String> {
        let own_port = tx.rx().local_addr().port();
        let net_port = match &self.target {
            Target::Udp { to } => Some(to.port()),
            Target::Xdp { .. } => None,
        };
        let v6 = self.target.ipv6();
        let drops = |port: Option<u16>| port.and_then(|p| socket_drops(p, v6)).unwrap_or(0);
        let (own0, net0) = (drops(Some(own_port)), drops(net_port));
        let mut c = PeerCounts {
            unsendable: self.unsendable,
            ipv6: v6,
            ..PeerCounts::default()
        };
        let mut by_class: Vec<(String, u64)> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut batch: Vec<(FrameClass, bool, Vec<u8>)> = Vec::with_capacity(BATCH);
        let (mut next, mut pass) = (0usize, 0u64);
        let start = Instant::now();
        let mut last_echo = Instant::now();
        let mut sending = true;
        loop {
            if sending && (start.elapsed() >= self.duration || stop.is_stopped()) {
                sending = false;
                last_echo = Instant::now();
            }
            if sending {
                let due = (start.elapsed().as_secs_f64() * self.rate as f64) as u64;
                let n = due.saturating_sub(c.sent).min(BATCH as u64) as usize;
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                batch.clear();
                for _ in 0..n {
                    let p = &self.frames[next];
                    let mut frame = p.frame.clone();
                    if pass > 0 && p.datagram {
                        stamp_pass(&mut frame, pass);
                    }
                    batch.push((p.class, p.datagram, frame));
                    next += 1;
                    if next == self.frames.len() {
                        (next, pass) = (0, pass + 1);
                    }
                }
                let mut sent_now = 0;
                while sent_now < batch.len() {
                    match tx.send(&batch[sent_now..]) {
                        Ok(k) => sent_now += k,
                        Err(e) => return Err(e),
                    }
                    if sent_now < batch.len() {
                        c.send_waits += 1;
                        tx.service();
                        drain_rx(&mut tx, &mut c, live, &mut last_echo);
                        if stop.is_stopped() {
                            break;
                        }
                    }
                }
                for (class, datagram, frame) in &batch[..sent_now] {
                    let class = *class;
                    c.sent += 1;
                    match by_class.iter_mut().find(|(n, _)| n == class.name()) {
                        Some((_, k)) => *k += 1,
                        None => by_class.push((class.name().to_owned(), 1)),
                    }
                    if *datagram {
                        c.well_formed += 1;
                        let h = packet_checksum(udp_payload(frame).unwrap_or_default());
                        if seen.insert(h) {
                            c.expected_sum = c.expected_sum.wrapping_add(h);
                        } else {
                            c.dups += 1;
                        }
                    } else {
                        c.malformed += 1;
                    }
                }
                live.sent.store(c.sent, Ordering::Relaxed);
                tx.service();
            } else {
                tx.service();
                std::thread::sleep(Duration::from_millis(1));
                if last_echo.elapsed() >= DRAIN_QUIET
                    || start.elapsed() >= self.duration + DRAIN_MAX
                {
                    break;
                }
            }
            drain_rx(&mut tx, &mut c, live, &mut last_echo);
        }
        c.rcvbuf_drops = drops(Some(own_port)).saturating_sub(own0);
        c.net_socket_drops = drops(net_port).saturating_sub(net0);
        c.by_class = by_class;
        Ok(c)
    }
}

/// `f` made ready for `target`, or `None` if this path cannot send it.
///
/// Over AF_XDP every frame but a runt shorter than its Ethernet header
/// goes, MACs set to the pair's. IPv4: a well-formed frame is moved onto
/// the pair's addresses ([`rewrite_endpoints`]), the peer's port its
/// source; the rest go as they are, and the XDP program, filtering on the
/// pipeline's IPv4 address, passes them all to the kernel (the fixture's
/// IPv6 frames too). IPv6: see [`super::ipv6`]; what the pipeline gets is
/// what the program steers, a frame whose steer port is one of its ports.
///
/// Over loopback only datagrams go (their payloads): IPv4, the
/// well-formed frames; IPv6, those and the fixture's own IPv6 datagrams,
/// the frames the XDP path steers.
fn prepare(target: &Target, f: Frame) -> Result<Option<Prepared>, String> {
    let Frame {
        class,
        steer,
        mut bytes,
    } = f;
    let steered = steer.is_some_and(|p| CLASS_PORTS.contains(&p));
    let datagram = match target {
        Target::Udp { to } if to.is_ipv6() && !steered => return Ok(None),
        Target::Udp { to } if to.is_ipv4() && !class.is_well_formed_udp() => return Ok(None),
        Target::Udp { .. } => true,
        Target::Xdp { .. } if bytes.len() < ETH_HEADER_LEN => {
            // No interface sends a frame shorter than its Ethernet header.
            return Ok(None);
        }
        Target::Xdp { src, dst, .. } => match (src.1, dst.1) {
            (IpAddr::V4(s), IpAddr::V4(d)) if class.is_well_formed_udp() => {
                let port = UdpFrame::new_unchecked(&bytes[..]).dst_port();
                let ends = UdpEndpoints {
                    src_mac: src.0,
                    dst_mac: dst.0,
                    src: SocketAddrV4::new(s, PEER_PORT),
                    dst: SocketAddrV4::new(d, port),
                };
                rewrite_endpoints(&mut bytes, &ends).map_err(|e| format!("fixture frame: {e}"))?;
                true
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let port = tilewire_xdp::frame::udp_dst_port(&bytes);
                let ends = Udp6Endpoints {
                    src_mac: src.0,
                    dst_mac: dst.0,
                    src: SocketAddrV6::new(s, PEER_PORT, 0, 0),
                    dst: SocketAddrV6::new(d, port, 0, 0),
                };
                if class.is_well_formed_udp() {
                    bytes = super::ipv6::rebuilt(&bytes, &ends)?;
                } else {
                    // The fixture's IPv6 frames move; any other frame gets
                    // only the MACs.
                    super::ipv6::moved(&mut bytes, &ends);
                }
                steered
            }
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                // Only the MACs: the frame must reach the other end.
                bytes[0..6].copy_from_slice(&dst.0);
                bytes[6..12].copy_from_slice(&src.0);
                false
            }
            _ => return Err("the peer's and the pipeline's addresses differ in family".into()),
        },
    };
    Ok(Some(Prepared {
        class,
        frame: bytes,
        datagram,
    }))
}

fn drain_rx(tx: &mut impl Sender, c: &mut PeerCounts, live: &PeerLive, last: &mut Instant) {
    let mut echoes = Echoes::default();
    while tx.rx().poll(&mut echoes) > 0 {}
    if echoes.received > 0 {
        c.received += echoes.received;
        c.received_sum = c.received_sum.wrapping_add(echoes.sum);
        *last = Instant::now();
    }
    live.received.store(c.received, Ordering::Relaxed);
}

/// The peer's UDP socket for echoes: a large receive buffer, since the
/// peer shares two cores with the pipeline and may be late to read.
fn echo_socket(bind: SocketAddr) -> Result<UdpAio, String> {
    let config = UdpConfig {
        recv_buf: Some(16 << 20),
        send_buf: Some(4 << 20),
        ..UdpConfig::new(bind)
    };
    UdpAio::bind(&config).map_err(|e| format!("peer UDP socket on {bind}: {e}"))
}

/// Counts the echoes a poll of the socket hands it.
#[derive(Default)]
struct Echoes {
    received: u64,
    sum: u64,
}

impl Aio for Echoes {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        for p in batch {
            self.received += 1;
            self.sum = self.sum.wrapping_add(packet_checksum(p.buf));
        }
        Ok(())
    }
}

/// Datagrams the kernel dropped at the UDP socket bound to local `port`
/// in the calling thread's network namespace, IPv4 or (`v6`) IPv6 (the
/// `drops` column of its `/proc/net/udp` or `udp6` line); `None` if no
/// such socket is open.
fn socket_drops(port: u16, v6: bool) -> Option<u64> {
    let table = if v6 { "udp6" } else { "udp" };
    let table = std::fs::read_to_string(format!("/proc/thread-self/net/{table}")).ok()?;
    let want = format!(":{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let mut cols = l.split_whitespace();
        let local = cols.nth(1)?;
        if !local.ends_with(&want) {
            return None;
        }
        l.split_whitespace().last()?.parse().ok()
    })
}

/// How the peer sends a batch: returns how many went.
trait Sender {
    fn send(&mut self, frames: &[(FrameClass, bool, Vec<u8>)]) -> Result<usize, String>;
    fn service(&mut self) {}
    /// The socket the echoes come back to.
    fn rx(&mut self) -> &mut UdpAio;
}

struct XdpTx<'w> {
    xsk: Xsk<'w>,
    rx: UdpAio,
}

impl Sender for XdpTx<'_> {
    fn rx(&mut self) -> &mut UdpAio {
        &mut self.rx
    }
    fn send(&mut self, frames: &[(FrameClass, bool, Vec<u8>)]) -> Result<usize, String> {
        let pkts: Vec<PktInfo<'_>> = frames.iter().map(|(_, _, f)| PktInfo::new(f)).collect();
        match self.xsk.send(&pkts, true) {
            Ok(()) => Ok(pkts.len()),
            Err(e) if e.kind == SendErrorKind::Again => Ok(e.batch_idx),
            Err(e) => Err(format!(
                "the peer's AF_XDP socket refused a {}-byte frame: {:?}",
                frames[e.batch_idx].2.len(),
                e.kind
            )),
        }
    }
    fn service(&mut self) {
        self.xsk.service(mono_ns());
    }
}

struct UdpTx {
    sock: UdpAio,
    to: SocketAddr,
}

impl Sender for UdpTx {
    fn rx(&mut self) -> &mut UdpAio {
        &mut self.sock
    }
    fn send(&mut self, frames: &[(FrameClass, bool, Vec<u8>)]) -> Result<usize, String> {
        // Every frame sent this way is a datagram (see `prepare`).
        let pkts: Vec<PktInfo<'_>> = frames
            .iter()
            .map(|(_, _, f)| PktInfo::with_addr(udp_payload(f).unwrap_or_default(), self.to))
            .collect();
        match self.sock.send(&pkts, true) {
            Ok(()) => Ok(pkts.len()),
            Err(e) if e.kind == SendErrorKind::Again => Ok(e.batch_idx),
            Err(e) => Err(format!("peer send: {:?} at packet {}", e.kind, e.batch_idx)),
        }
    }
    fn service(&mut self) {
        let _ = self.sock.send(&[], true);
    }
}
