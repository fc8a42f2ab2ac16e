//! The UDP backend over a veth pair between two network namespaces this
//! test makes (198.18.0.0/15, unique names, removed on drop): the aio
//! conformance suite on each engine (mmsg, io_uring multishot, io_uring
//! fixed receives) with a std socket in the other namespace as the far
//! side, traffic the other way, and real push-back: a token-bucket qdisc
//! on the sending side and a small socket buffer make the kernel refuse
//! sends, the backend answers `Again` at an index, and every packet it took
//! arrives. Privileged: as a user each test prints the line CI counts.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use tilewire_aio::conformance::{self, payload, Harness};
use tilewire_aio::netns::VethPair;
use tilewire_aio::udp::{Engine, UdpAio, UdpConfig, UringRecv};
use tilewire_aio::{Aio, MemAio, PktInfo, SendError, SendErrorKind};

const WAIT: Duration = Duration::from_secs(3);

/// The engines and receive modes under test.
const ENGINES: [(Engine, UringRecv); 3] = [
    (Engine::Mmsg, UringRecv::Auto),
    (Engine::Uring, UringRecv::Multishot),
    (Engine::Uring, UringRecv::Fixed),
];

fn pair(tag: &str) -> Option<VethPair> {
    VethPair::new_or_skip(tag)
}

fn config(bind: SocketAddr, engine: Engine, recv: UringRecv) -> UdpConfig {
    UdpConfig {
        engine,
        uring_recv: recv,
        ..UdpConfig::new(bind)
    }
}

/// The backend in namespace a, a std socket in namespace b; packets carry
/// b's address, as a net tile's do.
struct VethHarness {
    aio: Stamping,
    peer: UdpSocket,
}

struct Stamping {
    udp: UdpAio,
    dest: SocketAddr,
}

impl Aio for Stamping {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        let stamped: Vec<PktInfo<'_>> = batch
            .iter()
            .map(|p| PktInfo::with_addr(p.buf, self.dest))
            .collect();
        self.udp.send(&stamped, flush)
    }
}

impl VethHarness {
    fn new(pair: &VethPair, engine: Engine, recv: UringRecv) -> VethHarness {
        let a = SocketAddr::new(pair.a().addr().into(), 0);
        let b = SocketAddr::new(pair.b().addr().into(), 0);
        let udp = pair
            .in_a(|| UdpAio::bind(&config(a, engine, recv)))
            .unwrap()
            .unwrap();
        let peer = pair.in_b(|| UdpSocket::bind(b)).unwrap().unwrap();
        let dest = peer.local_addr().unwrap();
        VethHarness {
            aio: Stamping { udp, dest },
            peer,
        }
    }
}

impl Harness for VethHarness {
    type A = Stamping;

    fn aio(&mut self) -> &mut Stamping {
        &mut self.aio
    }

    fn take_delivered(&mut self, expect: usize) -> Vec<Vec<u8>> {
        let src = self.aio.udp.local_addr();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + WAIT;
        if expect == 0 {
            self.peer.set_nonblocking(true).unwrap();
            while let Ok((n, from)) = self.peer.recv_from(&mut buf) {
                assert_eq!(from, src);
                got.push(buf[..n].to_vec());
            }
            self.peer.set_nonblocking(false).unwrap();
            return got;
        }
        while got.len() < expect {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.peer.set_read_timeout(Some(left)).unwrap();
            match self.peer.recv_from(&mut buf) {
                Ok((n, from)) => {
                    assert_eq!(from, src, "datagram from an unexpected source");
                    got.push(buf[..n].to_vec());
                }
                Err(_) => break,
            }
        }
        got
    }

    fn capacity(&self) -> Option<usize> {
        // A receiver that does not read makes UDP drop, not push back.
        None
    }
}

#[test]
fn every_engine_conforms_over_veth() {
    let Some(pair) = pair("conf") else { return };
    for (engine, recv) in ENGINES {
        eprintln!("{engine:?} / {recv:?}");
        conformance::run_all(|| VethHarness::new(&pair, engine, recv));
    }
}

#[test]
fn every_engine_receives_across_namespaces() {
    let Some(pair) = pair("rx") else { return };
    for (engine, recv) in ENGINES {
        let h = VethHarness::new(&pair, engine, recv);
        let (mut udp, peer) = (h.aio.udp, h.peer);
        let to = udp.local_addr();
        let want: Vec<Vec<u8>> = (0..300).map(|i| payload(i, 1 + (i * 29) % 1232)).collect();
        let mut sink = MemAio::with_capacity(512);
        let mut got = Vec::new();
        for round in want.chunks(100) {
            for w in round {
                peer.send_to(w, to).unwrap();
            }
            let target = got.len() + round.len();
            let deadline = Instant::now() + WAIT;
            while got.len() < target && Instant::now() < deadline {
                udp.poll(&mut sink);
                got.extend(sink.drain().map(|p| (p.buf.to_vec(), p.meta.addr.unwrap())));
            }
        }
        assert_eq!(got.len(), want.len(), "{engine:?}/{recv:?}");
        for (i, ((bytes, src), w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(bytes, w, "{engine:?}/{recv:?}: packet {i}");
            assert_eq!(*src, peer.local_addr().unwrap());
        }
    }
}

/// Runs `tc` in side a's namespace.
fn tc(pair: &VethPair, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", pair.a().netns(), "tc"])
        .args(args)
        .output()
        .expect("run tc");
    assert!(
        out.status.success(),
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_full_socket_buffer_gives_again_and_loses_nothing() {
    let Some(pair) = pair("again") else { return };
    // 20 Mbit/s out of a: about 2000 packets of 1232 bytes a second; the
    // qdisc holds what waits, charged to the socket's small send buffer.
    tc(
        &pair,
        &[
            "qdisc",
            "add",
            "dev",
            pair.a().ifname(),
            "root",
            "tbf",
            "rate",
            "20mbit",
            "burst",
            "16kb",
            "limit",
            "4mb",
        ],
    );
    for (engine, recv) in ENGINES {
        let a = SocketAddr::new(pair.a().addr().into(), 0);
        let b = SocketAddr::new(pair.b().addr().into(), 0);
        let mut cfg = config(a, engine, recv);
        cfg.send_buf = Some(16 * 1024);
        cfg.queue_depth = 32;
        let mut udp = pair.in_a(|| UdpAio::bind(&cfg)).unwrap().unwrap();
        let peer = pair.in_b(|| UdpSocket::bind(b)).unwrap().unwrap();
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dest = peer.local_addr().unwrap();
        let want: Vec<Vec<u8>> = (0..600).map(|i| payload(i, 1232)).collect();
        let mut next = 0;
        let mut agains = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let receiver = std::thread::scope(|s| {
            let r = s.spawn(|| {
                let mut got = Vec::new();
                let end = Instant::now() + Duration::from_secs(12);
                while got.len() < want.len() && Instant::now() < end {
                    if let Ok((n, _)) = peer.recv_from(&mut buf) {
                        got.push(buf[..n].to_vec());
                    }
                }
                got
            });
            while next < want.len() && Instant::now() < deadline {
                let batch: Vec<PktInfo<'_>> = want[next..(next + 64).min(want.len())]
                    .iter()
                    .map(|w| PktInfo::with_addr(w, dest))
                    .collect();
                match udp.send(&batch, true) {
                    Ok(()) => next += batch.len(),
                    Err(e) => {
                        assert_eq!(e.kind, SendErrorKind::Again, "{engine:?}/{recv:?}");
                        next += e.batch_idx;
                        agains += 1;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
            while udp.tx_pending() > 0 && Instant::now() < deadline {
                let _ = udp.send(&[], true);
                std::thread::sleep(Duration::from_micros(200));
            }
            r.join().unwrap()
        });
        got.extend(receiver);
        let st = udp.stats();
        assert_eq!(
            next,
            want.len(),
            "{engine:?}/{recv:?}: not all taken: {st:?}"
        );
        assert!(
            agains > 0,
            "{engine:?}/{recv:?}: the kernel never pushed back: {st:?}"
        );
        assert_eq!(udp.tx_pending(), 0, "{st:?}");
        assert_eq!((st.tx_pkts, st.tx_dropped), (600, 0), "{engine:?}/{recv:?}");
        assert_eq!(got.len(), want.len(), "{engine:?}/{recv:?}: {st:?}");
        let mut sorted = got.clone();
        sorted.sort();
        let mut w = want.clone();
        w.sort();
        assert_eq!(
            sorted, w,
            "{engine:?}/{recv:?}: every packet, byte for byte"
        );
        eprintln!(
            "{engine:?}/{recv:?}: {agains} Again, {} would-block, in order: {}",
            st.tx_would_block,
            got == want
        );
    }
}
