//! The `net-udp` tile over loopback, on each engine: datagrams in become
//! frames on its output link, frames on its input link go out as
//! datagrams, and the two chained through the test (an echo) round-trip,
//! over IPv4 and over IPv6 ([::1]: IPv6 frames). Every check runs on mmsg,
//! and on io_uring where this host allows it (skipped loudly otherwise).
//! The tile runs under a [`Stem`] on a thread and is stopped through its
//! metrics; its counters must match what the test sent and received. Last,
//! a whole pipeline (net-udp -> echo -> net-udp, one tile) bound to [::1]
//! echoes a peer there.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use common::TestWs;
use tilewire_aio::frame::{
    build_vec, swap_endpoints, udp_dst_port, udp_payload, verify_checksums, UdpEndpoints, UdpFrame,
    HEADERS_LEN, HEADERS_LEN_IPV6,
};
use tilewire_aio::udp::{uring_support, Engine, UringSupport};
use tilewire_aio::{UdpAio, UdpConfig};
use tilewire_pipeline::kinds::net_udp::{datagram_frame, NetUdp, NET_UDP_COUNTERS};
use tilewire_pipeline::{LinkDef, PipelineBuilder, Registry, RunOptions, TileDef};
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::{Consumer, Poll, Producer, Reliability};
use tilewire_tile::stem::metrics::{TileMetricsHandle, TileState};
use tilewire_tile::stem::{Stem, StemConfig, Tile};

/// Link mtu: headers and the largest payload the tests send.
const MTU: usize = 1500;
/// Datagrams per check.
const N: u64 = 600;
/// Datagrams sent before the test waits for them to come through: well
/// under the socket buffers, so loopback drops nothing.
const WINDOW: u64 = 32;
const DEADLINE: Duration = Duration::from_secs(20);

/// The engines to check: mmsg always, io_uring where allowed.
fn engine_or_skip(engine: Engine) -> bool {
    if engine == Engine::Uring {
        let support = uring_support();
        if support != UringSupport::Available {
            eprintln!("skipped: io_uring engine: {}", support.describe());
            return false;
        }
    }
    eprintln!("engine: {engine:?}");
    true
}

/// A tile socket on 127.0.0.1 with `engine`, or `None` (said loudly)
/// where io_uring is allowed but its engine cannot be made here.
fn bind(engine: Engine) -> Option<UdpAio> {
    bind_on(engine, Ipv4Addr::LOCALHOST.into())
}

/// [`bind`] on `ip`, port 0.
fn bind_on(engine: Engine, ip: std::net::IpAddr) -> Option<UdpAio> {
    let mut cfg = UdpConfig::new(SocketAddr::new(ip, 0));
    cfg.engine = engine;
    match UdpAio::bind(&cfg) {
        Ok(u) => {
            assert_eq!(u.engine(), engine);
            Some(u)
        }
        Err(e) if engine == Engine::Uring => {
            eprintln!("skipped: io_uring engine cannot be made here: {e}");
            None
        }
        Err(e) => panic!("bind: {e}"),
    }
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("not IPv4: {a}"),
    }
}

/// The payload of datagram `i`: its length and bytes derive from `i`, and
/// it starts with `i`, so each is distinct and checkable.
fn payload(i: u64) -> Vec<u8> {
    let len = 8 + (i as usize * 37) % (MTU - HEADERS_LEN - 8 + 1);
    let mut p: Vec<u8> = (0..len)
        .map(|k| (i as u8) ^ (k as u8).wrapping_mul(13))
        .collect();
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn config() -> StemConfig {
    StemConfig {
        lazy: 128,
        stop_grace: Duration::from_secs(2),
    }
}

/// A blocking std socket on 127.0.0.1 that gives up after a while.
fn peer() -> UdpSocket {
    peer_on(Ipv4Addr::LOCALHOST.into())
}

/// [`peer`] on `ip`.
fn peer_on(ip: std::net::IpAddr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Asks the tile to stop when dropped, so a failing assertion does not
/// leave the tile thread spinning (the scope would wait forever).
struct StopOnDrop<'w>(TileMetricsHandle<'w>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.request_stop();
    }
}

/// The tile's counters by name, after it halted.
fn counters(m: TileMetricsHandle<'_>) -> Vec<(String, u64)> {
    let s = m.snapshot();
    assert_eq!(s.state, Some(TileState::Halted));
    let names: Vec<_> = s.counters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, NET_UDP_COUNTERS);
    s.counters
}

fn counter(c: &[(String, u64)], name: &str) -> u64 {
    c.iter().find(|(n, _)| n == name).unwrap().1
}

/// Reads the next frame off `c`, returning credits as it goes; panics at
/// the deadline.
fn next_frame(c: &mut Consumer<'_>, buf: &mut [u8]) -> (u64, usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match c.poll_copy(buf) {
            Poll::Frag(m, ()) => {
                assert_eq!(m.ctl, CTL_PKT);
                c.housekeeping();
                return (m.sig, m.sz as usize);
            }
            Poll::Empty => {
                assert!(Instant::now() < deadline, "no frame came");
                c.housekeeping();
                std::thread::yield_now();
            }
            other => panic!("reliable consumer saw {other:?}"),
        }
    }
}

/// Publishes `frame` on `p`, waiting for credits.
fn publish(p: &mut Producer<'_>, frame: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    while p.publish(frame, 0, CTL_PKT, 0).is_err() {
        assert!(Instant::now() < deadline, "the tile stopped reading");
        std::thread::yield_now();
    }
}

/// Receives one datagram on `s`; panics at the deadline.
fn recv(s: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match s.recv_from(buf) {
            Ok(got) => return got,
            Err(e) => assert!(Instant::now() < deadline, "no datagram came: {e}"),
        }
    }
}

/// Datagrams from a std socket become frames naming the right ends, in
/// order, checksums right; one too big for the link is counted.
fn rx_check(engine: Engine) {
    if !engine_or_skip(engine) {
        return;
    }
    let Some(udp) = bind(engine) else { return };
    let tile_addr = v4(udp.local_addr());
    let t = TestWs::new("nudp-rx", 1 << 24);
    let out = t.link("rx", 256, MTU, &[Reliability::Reliable]);
    let mut reader = out.consumer(0).unwrap();
    let tile = NetUdp::new(udp, Some(MTU));
    let mut stem = Stem::new(&t.ws, "nudp", tile, &[], &[&out], config()).unwrap();
    let m = stem.metrics();
    let sender = peer();
    let sender_addr = v4(sender.local_addr().unwrap());
    let mut buf = vec![0u8; MTU];
    let mut bytes = 0;
    std::thread::scope(|s| {
        let _stop = StopOnDrop(m);
        let runner = s.spawn(|| stem.run());
        // One datagram whose frame would be an mtu and a byte: dropped.
        sender
            .send_to(&vec![7u8; MTU - HEADERS_LEN + 1], tile_addr)
            .unwrap();
        for first in (0..N).step_by(WINDOW as usize) {
            let last = (first + WINDOW).min(N);
            for i in first..last {
                sender.send_to(&payload(i), tile_addr).unwrap();
            }
            for i in first..last {
                let (sig, sz) = next_frame(&mut reader, &mut buf);
                let frame = &buf[..sz];
                verify_checksums(frame).unwrap();
                let f = UdpFrame::new_checked(frame).unwrap();
                assert_eq!((f.src(), f.dst()), (sender_addr, tile_addr), "frame {i}");
                assert_eq!(f.payload(), &payload(i)[..], "payload of {i}");
                assert_eq!(f.frame_len(), sz, "no padding");
                assert_eq!(sig, u64::from(tile_addr.port()));
                // Byte for byte what the helper other code uses builds.
                let mut want = vec![0u8; MTU];
                let len =
                    datagram_frame(&mut want, sender_addr.into(), tile_addr.into(), &payload(i))
                        .unwrap();
                assert_eq!(frame, &want[..len], "frame {i}");
                bytes += payload(i).len() as u64;
            }
        }
        m.request_stop();
        assert_eq!(runner.join().unwrap().pending, 0);
    });
    assert!(
        matches!(reader.poll_copy(&mut buf), Poll::Empty),
        "exactly N frames"
    );
    let c = counters(m);
    assert_eq!(counter(&c, "rx_pkts"), N);
    assert_eq!(counter(&c, "rx_bytes"), bytes);
    assert_eq!(counter(&c, "rx_too_big"), 1);
    assert_eq!(counter(&c, "rx_no_addr"), 0);
    assert_eq!(counter(&c, "tx_pkts"), 0);
    assert_eq!(
        counter(&c, "engine_uring"),
        u64::from(engine == Engine::Uring)
    );
}

/// Frames on the input link reach a std socket as datagrams, all of
/// them, in order; a non-UDP frame and a frame to port 0 are counted.
fn tx_check(engine: Engine) {
    if !engine_or_skip(engine) {
        return;
    }
    let Some(udp) = bind(engine) else { return };
    let tile_addr = v4(udp.local_addr());
    let t = TestWs::new("nudp-tx", 1 << 24);
    let input = t.link("tx", 256, MTU, &[Reliability::Reliable]);
    let mut writer = input.producer();
    let tile = NetUdp::new(udp, None);
    let mut stem = Stem::new(&t.ws, "nudp", tile, &[(&input, 0)], &[], config()).unwrap();
    let m = stem.metrics();
    let receiver = peer();
    let ends = UdpEndpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        // The source is not the tile's: the socket's own address is used.
        src: "198.18.0.1:9".parse().unwrap(),
        dst: v4(receiver.local_addr().unwrap()),
    };
    let mut buf = vec![0u8; MTU];
    let mut bytes = 0;
    std::thread::scope(|s| {
        let _stop = StopOnDrop(m);
        let runner = s.spawn(|| stem.run());
        // Not UDP: the same frame with protocol TCP.
        let mut tcp = build_vec(&ends, b"not udp").unwrap();
        tcp[23] = 6;
        publish(&mut writer, &tcp);
        // UDP to port 0: the socket refuses it.
        let mut port0 = ends;
        port0.dst.set_port(0);
        publish(&mut writer, &build_vec(&port0, b"nowhere").unwrap());
        for first in (0..N).step_by(WINDOW as usize) {
            let last = (first + WINDOW).min(N);
            for i in first..last {
                publish(&mut writer, &build_vec(&ends, &payload(i)).unwrap());
            }
            for i in first..last {
                let (n, from) = recv(&receiver, &mut buf);
                assert_eq!(&buf[..n], &payload(i)[..], "datagram {i}");
                assert_eq!(v4(from), tile_addr, "sent from the tile's socket");
                bytes += n as u64;
            }
        }
        m.request_stop();
        assert_eq!(runner.join().unwrap().pending, 0);
    });
    receiver.set_nonblocking(true).unwrap();
    assert!(receiver.recv_from(&mut buf).is_err(), "exactly N datagrams");
    let c = counters(m);
    assert_eq!(counter(&c, "tx_pkts"), N);
    assert_eq!(counter(&c, "tx_bytes"), bytes);
    assert_eq!(counter(&c, "tx_not_udp"), 1);
    assert_eq!(counter(&c, "tx_errors"), 1, "the frame to port 0");
    assert_eq!(counter(&c, "tx_again"), 0, "loopback never pushes back");
    assert_eq!(counter(&c, "rx_pkts"), 0);
}

/// A client's datagrams go in, come out as frames, are turned around by
/// the test (endpoints swapped) and sent back through the same tile: the
/// client gets every payload back from the address it sent to. Tile and
/// client on `ip`: over [::1] the frames are IPv6, and must say so.
fn round_trip_check(engine: Engine, ip: std::net::IpAddr) {
    if !engine_or_skip(engine) {
        return;
    }
    let Some(udp) = bind_on(engine, ip) else {
        return;
    };
    let tile_addr = udp.local_addr();
    let headers = if ip.is_ipv6() {
        HEADERS_LEN_IPV6
    } else {
        HEADERS_LEN
    };
    // Room for the IPv6 headers around the same payloads.
    let mtu = MTU - HEADERS_LEN + headers;
    let t = TestWs::new("nudp-rt", 1 << 24);
    let out = t.link("rx", 256, mtu, &[Reliability::Reliable]);
    let input = t.link("tx", 256, mtu, &[Reliability::Reliable]);
    let (mut reader, mut writer) = (out.consumer(0).unwrap(), input.producer());
    let tile = NetUdp::new(udp, Some(out.mtu()));
    let mut stem = Stem::new(&t.ws, "nudp", tile, &[(&input, 0)], &[&out], config()).unwrap();
    let m = stem.metrics();
    let client = peer_on(ip);
    let client_addr = client.local_addr().unwrap();
    let mut buf = vec![0u8; mtu];
    let mut reply = vec![0u8; mtu];
    std::thread::scope(|s| {
        let _stop = StopOnDrop(m);
        let runner = s.spawn(|| stem.run());
        for first in (0..N).step_by(WINDOW as usize) {
            let last = (first + WINDOW).min(N);
            for i in first..last {
                client.send_to(&payload(i), tile_addr).unwrap();
            }
            for i in first..last {
                let (sig, sz) = next_frame(&mut reader, &mut buf);
                let frame = &buf[..sz];
                assert_eq!(sz, headers + payload(i).len(), "frame {i}");
                assert_eq!(udp_payload(frame), Some(&payload(i)[..]), "frame {i}");
                assert_eq!(sig, u64::from(tile_addr.port()));
                assert_eq!(udp_dst_port(frame), tile_addr.port());
                if let SocketAddr::V6(t) = tile_addr {
                    let ip6 = |at: usize| {
                        Ipv6Addr::from(<[u8; 16]>::try_from(&frame[at..at + 16]).unwrap())
                    };
                    assert_eq!(&frame[12..14], &[0x86, 0xdd], "an IPv6 frame");
                    assert_eq!(std::net::IpAddr::V6(ip6(22)), client_addr.ip());
                    assert_eq!(ip6(38), *t.ip());
                } else {
                    verify_checksums(frame).unwrap();
                }
                swap_endpoints(&mut buf[..sz]).unwrap();
                publish(&mut writer, &buf[..sz]);
            }
            for i in first..last {
                let (n, from) = recv(&client, &mut reply);
                assert_eq!(&reply[..n], &payload(i)[..], "echo of {i}");
                assert_eq!(from, tile_addr);
            }
        }
        m.request_stop();
        assert_eq!(runner.join().unwrap().pending, 0);
    });
    let c = counters(m);
    assert_eq!((counter(&c, "rx_pkts"), counter(&c, "tx_pkts")), (N, N));
    assert_eq!(counter(&c, "rx_bytes"), counter(&c, "tx_bytes"));
    for name in ["rx_no_addr", "rx_too_big", "tx_not_udp", "tx_errors"] {
        assert_eq!(counter(&c, name), 0, "{name}");
    }
}

#[test]
fn rx_datagrams_become_frames_mmsg() {
    rx_check(Engine::Mmsg);
}

#[test]
fn rx_datagrams_become_frames_uring() {
    rx_check(Engine::Uring);
}

#[test]
fn tx_frames_become_datagrams_mmsg() {
    tx_check(Engine::Mmsg);
}

#[test]
fn tx_frames_become_datagrams_uring() {
    tx_check(Engine::Uring);
}

#[test]
fn round_trip_through_an_echo_mmsg() {
    round_trip_check(Engine::Mmsg, Ipv4Addr::LOCALHOST.into());
}

#[test]
fn round_trip_through_an_echo_uring() {
    round_trip_check(Engine::Uring, Ipv4Addr::LOCALHOST.into());
}

/// Whether this host has an IPv6 loopback; says so when it has not.
fn ipv6_loopback() -> bool {
    match UdpSocket::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("no IPv6 loopback here ({e}); the IPv6 check did not run");
            false
        }
    }
}

#[test]
fn round_trip_over_ipv6_mmsg() {
    if ipv6_loopback() {
        round_trip_check(Engine::Mmsg, Ipv6Addr::LOCALHOST.into());
    }
}

#[test]
fn round_trip_over_ipv6_uring() {
    if ipv6_loopback() {
        round_trip_check(Engine::Uring, Ipv6Addr::LOCALHOST.into());
    }
}

/// A dual-stack socket on [::] frames each datagram in its sender's
/// family: an IPv6 peer's as IPv6 to `::`, an IPv4 peer's (IPv4-mapped to
/// the socket) as IPv4 to 0.0.0.0.
#[test]
fn a_dual_stack_socket_frames_each_peer_in_its_family() {
    let mut cfg = UdpConfig::new("[::]:0".parse().unwrap());
    cfg.engine = Engine::Mmsg;
    let (udp, v6_peer) = match (UdpAio::bind(&cfg), UdpSocket::bind("[::1]:0")) {
        (Ok(u), Ok(p)) => (u, p),
        (a, b) => {
            eprintln!(
                "no IPv6 loopback here ({:?} / {:?}); the dual-stack check did not run",
                a.err(),
                b.err()
            );
            return;
        }
    };
    let port = udp.local_addr().port();
    let t = TestWs::new("nudp-v6", 1 << 24);
    let out = t.link("rx", 64, MTU, &[Reliability::Reliable]);
    let mut reader = out.consumer(0).unwrap();
    let mut stem = Stem::new(
        &t.ws,
        "nudp",
        NetUdp::new(udp, Some(MTU)),
        &[],
        &[&out],
        config(),
    )
    .unwrap();
    let m = stem.metrics();
    let v4_peer = peer();
    let mut buf = vec![0u8; MTU];
    std::thread::scope(|s| {
        let _stop = StopOnDrop(m);
        let runner = s.spawn(|| stem.run());
        v6_peer.send_to(b"six", ("::1", port)).unwrap();
        let (_, sz) = next_frame(&mut reader, &mut buf);
        let f = &buf[..sz];
        assert_eq!(sz, HEADERS_LEN_IPV6 + 3);
        assert_eq!(udp_payload(f), Some(&b"six"[..]));
        let SocketAddr::V6(from) = v6_peer.local_addr().unwrap() else {
            unreachable!()
        };
        assert_eq!(&f[22..38], &from.ip().octets(), "the peer's address");
        assert_eq!(&f[54..56], &from.port().to_be_bytes());
        assert_eq!(&f[38..54], &[0u8; 16], "the bound wildcard, ::");
        assert_eq!(udp_dst_port(f), port);
        v4_peer
            .send_to(b"four", (Ipv4Addr::LOCALHOST, port))
            .unwrap();
        let (_, sz) = next_frame(&mut reader, &mut buf);
        let f = UdpFrame::new_checked(&buf[..sz]).unwrap();
        assert_eq!(f.payload(), b"four");
        assert_eq!(f.src(), v4(v4_peer.local_addr().unwrap()));
        assert_eq!(f.dst(), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        m.request_stop();
        runner.join().unwrap();
    });
    let c = counters(m);
    assert_eq!(counter(&c, "rx_no_addr"), 0);
    assert_eq!(counter(&c, "rx_pkts"), 2);
}

/// A pipeline of one net-udp tile bound to [::1] and an echo between its
/// output and its input (net-udp -> echo -> net-udp) answers a std socket
/// on [::1] with every payload it sent, from the address it sent to.
#[test]
fn a_net_udp_echo_pipeline_on_ipv6_loopback_answers_its_peer() {
    if !ipv6_loopback() {
        return;
    }
    // A port free now (the tile binds it a moment later).
    let port = UdpSocket::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tile_addr = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let name = format!("nudp-v6-pipe-{}", std::process::id());
    let pipeline = PipelineBuilder::new(&name)
        .size(16 << 20)
        // As in the demo: the socket's side cannot be held back.
        .link(LinkDef::new("rx", 1024).mtu(2048).unreliable())
        .link(LinkDef::new("tx", 1024).mtu(2048))
        .tile(
            TileDef::new("net", "net-udp")
                .param("bind", tile_addr.to_string())
                .input("tx")
                .output("rx"),
        )
        .tile(TileDef::new("echo", "echo").input("rx").output("tx"))
        .build(&Registry::with_builtins())
        .unwrap();
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let client = peer_on(Ipv6Addr::LOCALHOST.into());
    let mut reply = vec![0u8; MTU];
    for first in (0..N).step_by(WINDOW as usize) {
        let last = (first + WINDOW).min(N);
        for i in first..last {
            client.send_to(&payload(i), tile_addr).unwrap();
        }
        for i in first..last {
            let (n, from) = recv(&client, &mut reply);
            assert_eq!(&reply[..n], &payload(i)[..], "echo of {i}");
            assert_eq!(from, tile_addr);
        }
    }
    let report = running.stop().unwrap();
    assert_eq!(report.counter("net", "rx_pkts"), Some(N));
    assert_eq!(report.counter("net", "tx_pkts"), Some(N));
    assert_eq!(report.counter("echo", "echoed"), Some(N));
    assert_eq!(report.counter("net", "tx_not_udp"), Some(0));
}

/// A pipeline runs tiles on threads: the tile must be sendable.
#[test]
fn net_udp_is_a_sendable_tile() {
    fn sendable<T: Tile + Send>() {}
    sendable::<NetUdp>();
}
