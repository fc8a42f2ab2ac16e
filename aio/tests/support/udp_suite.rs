//! The UDP backend over loopback, for the engine `super::ENGINE` and the
//! io_uring receive mode `super::RECV` (the including test file says
//! which): the aio conformance suite, a peer
//! nobody here wrote (std's `UdpSocket`) on both sides, and bad input. No
//! privileges needed; every port comes from binding port 0 and every wait
//! is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::conformance::{self, payload, Harness};
use tilewire_aio::udp::{BindError, UdpAio, UdpConfig, BATCH_DEFAULT};
use tilewire_aio::{Aio, MemAio, PktInfo, SendError, BUF_MAX};

/// How long a receive waits for packets that loopback delivers at once.
const WAIT: Duration = Duration::from_secs(2);

/// The defaults with the engine under test.
fn cfg(bind: SocketAddr) -> UdpConfig {
    let mut c = UdpConfig::new(bind);
    c.engine = super::ENGINE;
    c.uring_recv = super::RECV;
    c
}

fn v4_any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A std socket on loopback (`::1` for IPv6), or `None` (said loudly) if
/// this host has no IPv6 loopback.
fn peer_socket(v6: bool) -> Option<UdpSocket> {
    let addr = if v6 { "[::1]:0" } else { "127.0.0.1:0" };
    match UdpSocket::bind(addr) {
        Ok(s) => Some(s),
        Err(e) if v6 => {
            eprintln!("skipped: no IPv6 loopback on this host ({e})");
            None
        }
        Err(e) => panic!("bind {addr}: {e}"),
    }
}

/// Receives on `peer` until `expect` datagrams came or [`WAIT`] passed
/// (one non-blocking try for `expect == 0`); returns them with their
/// sources.
fn recv_some(peer: &UdpSocket, expect: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + WAIT;
    if expect == 0 {
        peer.set_nonblocking(true).unwrap();
        if let Ok((n, src)) = peer.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), src));
        }
        peer.set_nonblocking(false).unwrap();
        return got;
    }
    while got.len() < expect {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        peer.set_read_timeout(Some(left)).unwrap();
        match peer.recv_from(&mut buf) {
            Ok((n, src)) => got.push((buf[..n].to_vec(), src)),
            Err(_) => break,
        }
    }
    got
}

/// Polls `aio` into `sink` until `expect` packets arrived or [`WAIT`]
/// passed; returns every packet taken with its source.
fn poll_some(aio: &mut UdpAio, sink: &mut MemAio, expect: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < expect && Instant::now() < deadline {
        aio.poll(sink);
        got.extend(
            sink.drain()
                .map(|p| (p.buf.to_vec(), p.meta.addr.expect("source address"))),
        );
        if got.len() < expect {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    got
}

/// The conformance harness: a UdpAio whose far side is a std socket.
/// Connected mode sends packets without an address to the configured
/// peer; unconnected mode stamps the peer's address on each packet, as a
/// net tile does.
struct UdpHarness {
    aio: Stamping,
    peer: UdpSocket,
}

/// Puts the destination into each packet's metadata when `dest` is set.
struct Stamping {
    udp: UdpAio,
    dest: Option<SocketAddr>,
}

impl Aio for Stamping {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        let Some(dest) = self.dest else {
            return self.udp.send(batch, flush);
        };
        let stamped: Vec<PktInfo<'_>> = batch
            .iter()
            .map(|p| PktInfo::with_addr(p.buf, dest))
            .collect();
        self.udp.send(&stamped, flush)
    }
}

impl UdpHarness {
    fn new(v6: bool, connected: bool, batch: usize) -> Option<UdpHarness> {
        let peer = peer_socket(v6)?;
        let dest = peer.local_addr().unwrap();
        let mut config = cfg(SocketAddr::new(dest.ip(), 0));
        config.batch = batch;
        if connected {
            config.connect = Some(dest);
        }
        let udp = UdpAio::bind(&config).unwrap();
        Some(UdpHarness {
            aio: Stamping {
                udp,
                dest: (!connected).then_some(dest),
            },
            peer,
        })
    }
}

impl Harness for UdpHarness {
    type A = Stamping;

    fn aio(&mut self) -> &mut Stamping {
        &mut self.aio
    }

    fn take_delivered(&mut self, expect: usize) -> Vec<Vec<u8>> {
        let src = self.aio.udp.local_addr();
        recv_some(&self.peer, expect)
            .into_iter()
            .map(|(bytes, from)| {
                assert_eq!(from, src, "datagram from an unexpected source");
                bytes
            })
            .collect()
    }

    fn capacity(&self) -> Option<usize> {
        // Loopback never pushes back: the kernel queues (or drops) each
        // datagram at the receiver within the send.
        None
    }
}

#[test]
fn conforms_connected_v4() {
    conformance::run_all(|| UdpHarness::new(false, true, BATCH_DEFAULT).unwrap());
}

#[test]
fn conforms_unconnected_v4_with_small_batches() {
    // A batch of 3 makes most sends cross a sendmmsg boundary.
    conformance::run_all(|| UdpHarness::new(false, false, 3).unwrap());
}

#[test]
fn conforms_unconnected_v6() {
    if peer_socket(true).is_none() {
        return;
    }
    conformance::run_all(|| UdpHarness::new(true, false, BATCH_DEFAULT).unwrap());
}

/// std's socket sends to the backend, which delivers to a MemAio: bytes,
/// order and source address all as sent.
fn std_peer_to_rx(v6: bool) {
    let Some(peer) = peer_socket(v6) else { return };
    let mut aio = UdpAio::bind(&cfg(SocketAddr::new(peer.local_addr().unwrap().ip(), 0))).unwrap();
    let to = aio.local_addr();
    let want: Vec<Vec<u8>> = (0..150).map(|i| payload(i, (i * 13) % 1500)).collect();
    let mut sink = MemAio::with_capacity(256);
    let mut got = Vec::new();
    // In rounds of 50 so the receive buffer never overflows.
    for round in want.chunks(50) {
        for p in round {
            assert_eq!(peer.send_to(p, to).unwrap(), p.len());
        }
        got.extend(poll_some(&mut aio, &mut sink, round.len()));
    }
    assert_eq!(got.len(), want.len());
    for (i, ((bytes, src), w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(bytes, w, "packet {i} differs");
        assert_eq!(*src, peer.local_addr().unwrap(), "packet {i} source");
    }
    let st = aio.stats();
    assert_eq!(st.rx_pkts, 150);
    assert_eq!(
        st.rx_bytes,
        want.iter().map(|w| w.len() as u64).sum::<u64>()
    );
    assert_eq!((st.rx_truncated, st.rx_errors), (0, 0));
}

/// The backend sends to std's socket: bytes, order and source address.
fn tx_to_std_peer(v6: bool) {
    let Some(peer) = peer_socket(v6) else { return };
    let dest = peer.local_addr().unwrap();
    let mut aio = UdpAio::bind(&cfg(SocketAddr::new(dest.ip(), 0))).unwrap();
    let want: Vec<Vec<u8>> = (0..150).map(|i| payload(i, (i * 29) % 1300)).collect();
    let mut got = Vec::new();
    for round in want.chunks(50) {
        let batch: Vec<PktInfo<'_>> = round.iter().map(|w| PktInfo::with_addr(w, dest)).collect();
        assert_eq!(aio.send(&batch, true), Ok(()));
        got.extend(recv_some(&peer, round.len()));
    }
    assert_eq!(got.len(), want.len());
    for (i, ((bytes, src), w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(bytes, w, "packet {i} differs");
        assert_eq!(*src, aio.local_addr(), "packet {i} source");
    }
    let st = aio.stats();
    assert_eq!((st.tx_pkts, st.tx_dropped, aio.tx_pending()), (150, 0, 0));
    // 50 packets per flushing send, batch 64: one sendmmsg each.
    assert_eq!(st.tx_send_calls, 3);
}

#[test]
fn std_socket_peer_v4() {
    std_peer_to_rx(false);
    tx_to_std_peer(false);
}

#[test]
fn std_socket_peer_v6() {
    std_peer_to_rx(true);
    tx_to_std_peer(true);
}

#[test]
fn dual_stack_socket_reaches_and_hears_ipv4_peers() {
    let Ok(mut aio) = UdpAio::bind(&cfg("[::]:0".parse().unwrap())) else {
        eprintln!("skipped: cannot bind an IPv6 socket on this host");
        return;
    };
    let peer = peer_socket(false).unwrap();
    let dest = peer.local_addr().unwrap();
    let p = payload(1, 99);
    assert_eq!(aio.send(&[PktInfo::with_addr(&p, dest)], true), Ok(()));
    let got = recv_some(&peer, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, p);
    assert_eq!(got[0].1.port(), aio.local_addr().port());
    let to: SocketAddr = SocketAddr::new("127.0.0.1".parse().unwrap(), aio.local_addr().port());
    peer.send_to(&p, to).unwrap();
    let mut sink = MemAio::with_capacity(4);
    let got = poll_some(&mut aio, &mut sink, 1);
    assert_eq!(
        got,
        vec![(p.clone(), dest)],
        "the IPv4 source comes back as IPv4"
    );

    // Connected to an IPv4 peer: packets without an address go to it.
    let mut config = cfg("[::]:0".parse().unwrap());
    config.connect = Some(dest);
    let mut aio = UdpAio::bind(&config).unwrap();
    assert_eq!(aio.send(&[PktInfo::new(&p)], true), Ok(()));
    assert_eq!(recv_some(&peer, 1).len(), 1);

    // An IPv4 socket cannot connect to an IPv6 peer.
    let mut config = cfg(v4_any());
    config.connect = Some("[::1]:9".parse().unwrap());
    assert!(matches!(
        UdpAio::bind(&config),
        Err(BindError::PeerFamily { .. })
    ));
}

#[test]
fn rx_keeps_what_the_downstream_refused() {
    let peer = peer_socket(false).unwrap();
    let mut aio = UdpAio::bind(&cfg(v4_any())).unwrap();
    let want: Vec<Vec<u8>> = (0..20).map(|i| payload(i, 10 + i)).collect();
    for w in &want {
        peer.send_to(w, aio.local_addr()).unwrap();
    }
    // Room for 8 at a time: the burst of 20 is offered over three polls.
    let mut sink = MemAio::with_capacity(8);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < want.len() && Instant::now() < deadline {
        aio.poll(&mut sink);
        assert!(sink.len() <= 8);
        got.extend(sink.drain().map(|p| p.buf.to_vec()));
    }
    assert_eq!(got, want);
    let st = aio.stats();
    assert!(st.rx_downstream_again >= 2, "{st:?}");
    assert_eq!((st.rx_pkts, aio.rx_pending()), (20, 0));
}

#[test]
fn oversize_packets_are_inval_at_their_index() {
    let peer = peer_socket(false).unwrap();
    let dest = peer.local_addr().unwrap();

    // Default bound: BUF_MAX.
    let mut aio = UdpAio::bind(&cfg(v4_any())).unwrap();
    let bufs = [payload(1, 10), payload(2, BUF_MAX), payload(3, BUF_MAX + 1)];
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, dest)).collect();
    assert_eq!(aio.send(&batch, true), Err(SendError::inval(2)));
    let got: Vec<Vec<u8>> = recv_some(&peer, 2).into_iter().map(|g| g.0).collect();
    assert_eq!(got, bufs[..2]);
    assert_eq!(aio.stats().tx_inval, 1);

    // Raised to the IPv4 limit: 65507 goes, 65508 does not.
    let mut config = cfg(v4_any());
    config.tx_pkt_max = 65_507;
    let mut aio = UdpAio::bind(&config).unwrap();
    let bufs = [payload(4, 65_507), payload(5, 65_508), payload(6, 1)];
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, dest)).collect();
    assert_eq!(aio.send(&batch, true), Err(SendError::inval(1)));
    assert_eq!(aio.send(&batch[2..], true), Ok(()));
    let got: Vec<Vec<u8>> = recv_some(&peer, 2).into_iter().map(|g| g.0).collect();
    assert_eq!(got, [bufs[0].clone(), bufs[2].clone()]);

    config.tx_pkt_max = 65_508;
    assert!(matches!(
        UdpAio::bind(&config),
        Err(BindError::TxPktMax {
            len: 65_508,
            limit: 65_507
        })
    ));
}

#[test]
fn packets_without_a_usable_destination_are_inval() {
    let peer = peer_socket(false).unwrap();
    let dest = peer.local_addr().unwrap();
    let mut aio = UdpAio::bind(&cfg(v4_any())).unwrap();
    let a = payload(1, 5);
    let port0: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    for bad in [
        PktInfo::new(&a),
        PktInfo::with_addr(&a, port0),
        PktInfo::with_addr(&a, v6),
    ] {
        let batch = [
            PktInfo::with_addr(&a, dest),
            bad,
            PktInfo::with_addr(&a, dest),
        ];
        assert_eq!(aio.send(&batch, true), Err(SendError::inval(1)));
    }
    assert_eq!(
        recv_some(&peer, 3).len(),
        3,
        "the packet before each culprit"
    );
    assert_eq!(recv_some(&peer, 0).len(), 0, "nothing after a culprit");
    assert_eq!(aio.stats().tx_inval, 3);
}

#[test]
fn a_udp_aio_moves_to_its_tile_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let aio = UdpAio::bind(&cfg(v4_any())).unwrap();
    assert_send(&aio);
    let handle = std::thread::spawn(move || aio.local_addr());
    assert_eq!(handle.join().unwrap().ip(), v4_any().ip());
}

#[test]
fn socket_options_apply_and_reuse_port_shares_a_port() {
    let mut config = cfg(v4_any());
    config.reuse_port = true;
    config.send_buf = Some(64 * 1024);
    config.recv_buf = Some(128 * 1024);
    let a = UdpAio::bind(&config).unwrap();
    // The kernel doubles what was asked (and caps it at the sysctl max).
    assert!(a.send_buf_size().unwrap() >= 64 * 1024);
    assert!(a.recv_buf_size().unwrap() >= 128 * 1024);
    config.bind = a.local_addr();
    let b = UdpAio::bind(&config).unwrap();
    assert_eq!(b.local_addr(), a.local_addr());

    config.reuse_port = false;
    let err = UdpAio::bind(&config).unwrap_err();
    assert!(matches!(err, BindError::Os { step: "bind", .. }), "{err}");
}

#[test]
fn connection_refused_is_counted_and_loses_nothing_else() {
    // A port with no listener: bind one, note it, close it.
    let dead = UdpSocket::bind(v4_any()).unwrap().local_addr().unwrap();
    let mut config = cfg(v4_any());
    config.connect = Some(dead);
    let mut aio = UdpAio::bind(&config).unwrap();
    let p = payload(1, 32);
    let mut sends = 0u64;
    let deadline = Instant::now() + WAIT;
    // The kernel reports each ICMP port unreachable once, to the next
    // operation on the socket: a send, or a receive the io_uring engine
    // keeps posted (its fixed receive mode always has some).
    let refused = |a: &UdpAio| a.stats().tx_errors.conn_refused + a.stats().rx_errors;
    while refused(&aio) < 3 && Instant::now() < deadline {
        assert_eq!(aio.send(&[PktInfo::new(&p)], true), Ok(()));
        sends += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let st = aio.stats();
    assert!(refused(&aio) >= 3, "ICMP never reported: {st:?}");
    // Each refusal was about an earlier datagram: a packet that met it was
    // sent on the retry, so nothing was dropped.
    assert_eq!((st.tx_pkts, st.tx_dropped, aio.tx_pending()), (sends, 0, 0));
    // The receive side sees the reports left, counts them, delivers
    // nothing and goes on.
    let mut sink = MemAio::with_capacity(4);
    assert_eq!(aio.poll(&mut sink), 0);
    assert_eq!(aio.poll(&mut sink), 0);
    assert_eq!(sink.len(), 0);
}

#[test]
fn truncated_datagrams_are_counted_not_delivered() {
    let peer = peer_socket(false).unwrap();
    let mut config = cfg(v4_any());
    config.rx_buf_len = 100;
    let mut aio = UdpAio::bind(&config).unwrap();
    let sizes = [50, 200, 100, 101, 0, 65_000];
    for (i, &n) in sizes.iter().enumerate() {
        peer.send_to(&payload(i, n), aio.local_addr()).unwrap();
    }
    let mut sink = MemAio::with_capacity(16);
    let got = poll_some(&mut aio, &mut sink, 3);
    let want = [payload(0, 50), payload(2, 100), payload(4, 0)];
    assert_eq!(got.into_iter().map(|g| g.0).collect::<Vec<_>>(), want);
    let deadline = Instant::now() + WAIT;
    while aio.stats().rx_truncated < 3 && Instant::now() < deadline {
        aio.poll(&mut sink);
    }
    let st = aio.stats();
    assert_eq!((st.rx_truncated, st.rx_pkts, st.rx_bytes), (3, 3, 150));
}
