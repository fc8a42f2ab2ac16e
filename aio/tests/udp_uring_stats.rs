//! The io_uring engine's own numbers over loopback: sends, enters, in
//! flight and the latency histogram agree with what was sent, and the AIMD
//! limit on sends in flight is applied (an impossible target shrinks it to
//! its floor and splits a batch into as many submissions; a target always
//! met leaves it alone); SQPOLL moves packets both ways. The controller's
//! convergence is tested in `udp::aimd` against a queue model.

use std::net::{SocketAddr, UdpSocket};

use tilewire_aio::udp::{uring_support, AimdConfig, Engine, UdpAio, UdpConfig, UringSupport};
use tilewire_aio::{Aio, PktInfo};

fn uring(aimd: Option<AimdConfig>) -> Option<UdpAio> {
    if uring_support() != UringSupport::Available {
        eprintln!(
            "io_uring not available here: {}",
            uring_support().describe()
        );
        return None;
    }
    let config = UdpConfig {
        engine: Engine::Uring,
        aimd,
        ..UdpConfig::new("127.0.0.1:0".parse().unwrap())
    };
    Some(UdpAio::bind(&config).unwrap())
}

fn sink() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn drain(s: &UdpSocket) -> u64 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn sends_enters_and_latency_add_up() {
    let Some(mut aio) = uring(None) else { return };
    let (peer, to) = sink();
    let bufs: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 + i]).collect();
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, to)).collect();
    let bytes: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    let mut received = 0;
    for _ in 0..100 {
        aio.send(&batch, true).unwrap();
        received += drain(&peer);
    }
    let st = aio.stats();
    assert_eq!((st.tx_pkts, st.tx_bytes), (6_400, 100 * bytes));
    // One enter per flushing send of a batch of 64 (`batch` is 64).
    assert_eq!(st.tx_send_calls, 100, "{st:?}");
    assert_eq!((st.tx_in_flight, aio.tx_pending()), (0, 0));
    assert_eq!(st.ring_errors, 0, "{st:?}");
    let lat = aio.tx_latency().expect("uring keeps send latency");
    assert_eq!(lat.count(), 6_400);
    let (p50, p99) = (lat.percentile(0.5), lat.percentile(0.99));
    assert!(p50 > 0 && p50 <= p99, "p50 {p50} p99 {p99}");
    assert!(received > 0);
}

#[test]
fn an_impossible_target_shrinks_the_limit_to_its_floor() {
    let aimd = AimdConfig {
        target_ns: 1,
        min: 2,
        window: 100,
    };
    let Some(mut aio) = uring(Some(aimd)) else {
        return;
    };
    assert_eq!(aio.stats().tx_limit, 256, "starts at the slots");
    let (peer, to) = sink();
    let bufs: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 100]).collect();
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, to)).collect();
    // 256 -> 2 takes 7 halvings, one per window of 100 completions.
    for _ in 0..20 {
        aio.send(&batch, true).unwrap();
        drain(&peer);
    }
    let st = aio.stats();
    assert_eq!(st.tx_limit, 2, "{st:?}");
    assert!(st.tx_limit_decreases >= 7, "{st:?}");
    // With two sends allowed at once, a batch of 64 goes out in 32
    // submissions, and nothing is refused: loopback completes each
    // submission inside the enter.
    let before = aio.stats().tx_send_calls;
    aio.send(&batch, true).unwrap();
    let st = aio.stats();
    assert_eq!(st.tx_send_calls - before, 32, "{st:?}");
    assert_eq!((st.tx_pkts, st.tx_again, st.tx_dropped), (21 * 64, 0, 0));
    drain(&peer);
}

#[test]
fn a_target_always_met_leaves_the_limit_alone() {
    let Some(mut aio) = uring(Some(AimdConfig::new(60_000_000_000))) else {
        return;
    };
    let (peer, to) = sink();
    let bufs: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 100]).collect();
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, to)).collect();
    for _ in 0..20 {
        aio.send(&batch, true).unwrap();
        drain(&peer);
    }
    let st = aio.stats();
    assert_eq!((st.tx_limit, st.tx_limit_decreases), (256, 0), "{st:?}");
    assert_eq!(st.tx_send_calls, 20);
}

#[test]
fn sqpoll_moves_packets_both_ways() {
    if uring_support() != UringSupport::Available {
        return;
    }
    let config = UdpConfig {
        engine: Engine::Uring,
        sqpoll: Some(50),
        ..UdpConfig::new("127.0.0.1:0".parse().unwrap())
    };
    let mut aio = UdpAio::bind(&config).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let to = peer.local_addr().unwrap();
    let bufs: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 1 + i * 20]).collect();
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, to)).collect();
    aio.send(&batch, true).unwrap();
    let mut buf = [0u8; 2048];
    for b in &bufs {
        let (n, from) = peer.recv_from(&mut buf).expect("sent through SQPOLL");
        assert_eq!((&buf[..n], from), (&b[..], aio.local_addr()));
        peer.send_to(&buf[..n], aio.local_addr()).unwrap();
    }
    let mut sink = tilewire_aio::MemAio::with_capacity(64);
    let mut back = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while back.len() < bufs.len() && std::time::Instant::now() < deadline {
        aio.poll(&mut sink);
        back.extend(sink.drain().map(|p| p.buf.to_vec()));
    }
    assert_eq!(back, bufs);
    assert_eq!(aio.stats().tx_pkts, 50);
}
