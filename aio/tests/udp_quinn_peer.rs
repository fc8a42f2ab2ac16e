//! quinn-udp, a UDP layer nobody here wrote, talks to the UDP backend over
//! loopback in both directions, on both engines (mmsg and io_uring): every
//! payload checked byte for byte, every source address checked. quinn-udp's socket runs with its own options
//! (GRO on where the kernel has it), so the receive side splits coalesced
//! buffers at `stride`.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tilewire_aio::conformance::payload;
use tilewire_aio::udp::{Engine, UdpAio, UdpConfig};
use tilewire_aio::{Aio, MemAio, PktInfo};

const WAIT: Duration = Duration::from_secs(2);

/// A quinn-udp socket on `ip` loopback.
struct Quinn {
    sock: UdpSocket,
    state: UdpSocketState,
}

impl Quinn {
    fn bind(addr: &str) -> Quinn {
        let sock = UdpSocket::bind(addr).unwrap();
        sock.set_nonblocking(true).unwrap();
        let state = UdpSocketState::new((&sock).into()).unwrap();
        Quinn { sock, state }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// One datagram to `to` (no GSO: one segment), retried while the
    /// socket buffer is full.
    fn send(&self, to: SocketAddr, bytes: &[u8]) {
        let t = Transmit {
            destination: to,
            ecn: None,
            contents: bytes,
            segment_size: None,
            src_ip: None,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            match self.state.send((&self.sock).into(), &t) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "quinn-udp send blocked");
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(e) => panic!("quinn-udp send: {e}"),
            }
        }
    }

    /// Receives until `expect` datagrams came or [`WAIT`] passed.
    fn recv(&self, expect: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut storage = vec![[0u8; 65_536]; BATCH_SIZE];
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.len() < expect && Instant::now() < deadline {
            let mut bufs: Vec<IoSliceMut<'_>> =
                storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
            match self.state.recv((&self.sock).into(), &mut bufs, &mut meta) {
                Ok(n) => {
                    for (m, b) in meta.iter().zip(&bufs).take(n) {
                        let stride = m.stride.max(1);
                        if m.len == 0 {
                            got.push((Vec::new(), m.addr));
                        }
                        for seg in b[..m.len].chunks(stride) {
                            got.push((seg.to_vec(), m.addr));
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("quinn-udp recv: {e}"),
            }
        }
        got
    }
}

fn talk(bind: &str, engine: Engine) {
    let quinn = Quinn::bind(bind);
    let config = UdpConfig {
        engine,
        ..UdpConfig::new(bind.parse().unwrap())
    };
    let mut aio = UdpAio::bind(&config).unwrap();
    let want: Vec<Vec<u8>> = (0..120).map(|i| payload(i, 1 + (i * 41) % 1232)).collect();

    // quinn-udp -> backend.
    let mut sink = MemAio::with_capacity(128);
    let mut got = Vec::new();
    for round in want.chunks(40) {
        for w in round {
            quinn.send(aio.local_addr(), w);
        }
        let deadline = Instant::now() + WAIT;
        let target = got.len() + round.len();
        while got.len() < target && Instant::now() < deadline {
            aio.poll(&mut sink);
            got.extend(sink.drain().map(|p| (p.buf.to_vec(), p.meta.addr.unwrap())));
        }
    }
    assert_eq!(got.len(), want.len());
    for (i, ((bytes, src), w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(bytes, w, "quinn -> aio: packet {i} differs");
        assert_eq!(*src, quinn.addr(), "quinn -> aio: packet {i} source");
    }

    // backend -> quinn-udp.
    let mut got = Vec::new();
    for round in want.chunks(40) {
        let batch: Vec<PktInfo<'_>> = round
            .iter()
            .map(|w| PktInfo::with_addr(w, quinn.addr()))
            .collect();
        assert_eq!(aio.send(&batch, true), Ok(()));
        got.extend(quinn.recv(round.len()));
    }
    assert_eq!(got.len(), want.len());
    for (i, ((bytes, src), w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(bytes, w, "aio -> quinn: packet {i} differs");
        assert_eq!(*src, aio.local_addr(), "aio -> quinn: packet {i} source");
    }
}

#[test]
fn quinn_udp_peer_v4() {
    talk("127.0.0.1:0", Engine::Mmsg);
    talk("127.0.0.1:0", Engine::Uring);
}

#[test]
fn quinn_udp_peer_v6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this host");
        return;
    }
    talk("[::1]:0", Engine::Mmsg);
    talk("[::1]:0", Engine::Uring);
}
