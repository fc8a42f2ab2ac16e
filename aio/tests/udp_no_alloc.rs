//! The UDP backend's steady-state send and receive paths do not allocate:
//! a counting global allocator, armed per thread around the backend's own
//! calls only (the std peer on the other side is outside the count), sees
//! zero heap allocations over thousands of batches.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::udp::{Engine, UdpAio, UdpConfig};
use tilewire_aio::{Aio, MemAio, PktInfo};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Runs `f` armed; adds the allocations it made to `count`.
fn counted<R>(count: &mut u64, f: impl FnOnce() -> R) -> R {
    counting::arm();
    let r = f();
    *count += counting::disarm();
    r
}

#[test]
fn the_counter_sees_allocations() {
    let mut n = 0;
    counted(&mut n, || drop(std::hint::black_box(vec![1u8; 10])));
    assert_eq!(n, 1);
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Both engines, on loopback.
fn engines() -> [UdpConfig; 2] {
    [Engine::Mmsg, Engine::Uring].map(|engine| UdpConfig {
        engine,
        ..UdpConfig::new(loopback())
    })
}

/// Empties `peer`'s receive queue; returns how many datagrams it read.
fn drain_peer(peer: &UdpSocket, buf: &mut [u8]) -> u64 {
    let mut n = 0;
    while peer.recv_from(buf).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn send_path_does_not_allocate() {
    for config in engines() {
        send_path(&config);
    }
}

fn send_path(config: &UdpConfig) {
    let peer = UdpSocket::bind(loopback()).unwrap();
    peer.set_nonblocking(true).unwrap();
    let dest = peer.local_addr().unwrap();
    let mut aio = UdpAio::bind(config).unwrap();
    let bufs: Vec<Vec<u8>> = (0..100)
        .map(|i| vec![i as u8; 1 + (i * 37) % 1232])
        .collect();
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::with_addr(b, dest)).collect();
    let mut buf = vec![0u8; 2048];
    let (mut allocs, mut received) = (0, 0);
    for round in 0..2_000 {
        // 100 packets over a batch of 64: one sendmmsg (or io_uring_enter)
        // on the full batch, the rest on the flush (or the next send).
        let r = counted(&mut allocs, || aio.send(&batch, round % 2 == 0));
        assert_eq!(r, Ok(()));
        received += drain_peer(&peer, &mut buf);
    }
    counted(&mut allocs, || aio.send(&[], true)).unwrap();
    assert_eq!(
        allocs, 0,
        "{:?}: the send path allocated {allocs} times",
        config.engine
    );
    let st = aio.stats();
    assert_eq!(st.tx_pkts, 200_000);
    assert!(received > 0);
}

#[test]
fn receive_path_does_not_allocate() {
    for config in engines() {
        receive_path(&config);
    }
}

fn receive_path(config: &UdpConfig) {
    let peer = UdpSocket::bind(loopback()).unwrap();
    let mut aio = UdpAio::bind(config).unwrap();
    let to = aio.local_addr();
    let bufs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; (i * 53) % 1232]).collect();
    // A small downstream, so the Again-and-keep path runs too.
    let mut sink = MemAio::with_capacity(16);
    let (mut allocs, mut taken) = (0, 0u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..1_000 {
        for b in &bufs {
            peer.send_to(b, to).unwrap();
        }
        let mut round = 0;
        while round < bufs.len() && Instant::now() < deadline {
            round += counted(&mut allocs, || aio.poll(&mut sink));
            sink.clear();
        }
        taken += round as u64;
    }
    assert_eq!(
        allocs, 0,
        "{:?}: the receive path allocated {allocs} times",
        config.engine
    );
    assert_eq!(taken, 40_000);
    assert!(aio.stats().rx_downstream_again >= 1_000);
}
