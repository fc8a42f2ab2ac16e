//! The AF_XDP socket over a veth pair between two network namespaces this
//! test makes (198.18.0.0/15, unique names, removed on drop), with the
//! generated XDP program steering one UDP port to the socket:
//!
//! - echo: a std socket in namespace b sends datagrams of assorted sizes;
//!   tilewire receives them through AF_XDP in namespace a, swaps the
//!   addresses and sends them back through AF_XDP, and b checks every byte
//!   — in SKB mode and in DRV (native) mode, copy binding;
//! - the aio conformance suite on the socket's transmit side, the far side
//!   being a std socket in b, a fresh socket bound to the same queue for
//!   every check (so binding again right after a close is tested 13 times),
//!   with IPv4 frames in both modes and IPv6 frames in DRV mode;
//! - traffic the program must leave alone (another port, ping) still
//!   reaches namespace a's kernel stack;
//! - the errors for an unknown interface, a queue that does not exist, zero
//!   copy on veth, and a UMEM too small.
//!
//! Privileged: as a user each test prints the line CI counts.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use tilewire_aio::conformance::{self, payload, Harness};
use tilewire_aio::netns::VethPair;
use tilewire_aio::{Aio, MemAio, PktInfo, SendError};
use tilewire_shmem::TempWorkspace;
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpLink, XdpProgram};
use tilewire_xdp::frame::{
    self, Udp6Endpoints, UdpEndpoints, UdpFrame, PAYLOAD_MAX_IPV6_MTU1500, PAYLOAD_MAX_MTU1500,
};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig, XskError};

const PORT: u16 = 9100;
const PEER_PORT: u16 = 9200;
const WAIT: Duration = Duration::from_secs(3);

fn pair(tag: &str) -> Option<VethPair> {
    VethPair::new_or_skip(tag)
}

/// A workspace for the UMEM, unlinked on drop.
struct TestWs(TempWorkspace);

impl TestWs {
    fn new() -> TestWs {
        TestWs(TempWorkspace::new("xdp", 64 << 20).expect("workspace"))
    }

    /// A UMEM of `frames` frames inside the workspace.
    fn umem(&self, name: &str, frames: u32) -> Umem<'_> {
        Umem::alloc_named(&self.0, name, frames).expect("umem")
    }
}

fn config(pair: &VethPair) -> XskConfig {
    XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size: 512,
        fill_size: 512,
        tx_size: 512,
        ..XskConfig::default()
    }
}

/// The program attached to a's veth in `mode`.
fn program(pair: &VethPair, mode: AttachMode) -> (XdpProgram, XdpLink) {
    pair.a()
        .run(|| {
            let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
            let link = prog.attach(pair.a().ifindex(), mode).expect("attach");
            (prog, link)
        })
        .unwrap()
}

/// A socket on a's queue 0, put in the program's map.
fn socket<'w>(pair: &VethPair, prog: &XdpProgram, umem: Umem<'w>, cfg: &XskConfig) -> Xsk<'w> {
    let xsk = pair
        .a()
        .run(|| Xsk::bind(umem, cfg))
        .unwrap()
        .expect("bind")
        .0;
    prog.register_socket(0, xsk.raw_fd().unwrap())
        .expect("register");
    xsk
}

/// A std socket in namespace b on the peer port.
fn peer(pair: &VethPair) -> UdpSocket {
    let addr = SocketAddr::from((pair.b().addr(), PEER_PORT));
    let s = pair.b().run(|| UdpSocket::bind(addr)).unwrap().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// Datagrams from `sock` until `n` arrived or [`WAIT`] passed.
fn recv_n(sock: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    let end = Instant::now() + WAIT;
    while out.len() < n && Instant::now() < end {
        if let Ok((len, from)) = sock.recv_from(&mut buf) {
            out.push((buf[..len].to_vec(), from));
        }
    }
    out
}

fn echo(mode: AttachMode, tag: &str) {
    let Some(pair) = pair(tag) else { return };
    let ws = TestWs::new();
    let (prog, _link) = program(&pair, mode);
    let cfg = config(&pair);
    let mut xsk = socket(&pair, &prog, ws.umem("umem", 2048), &cfg);
    assert!(!xsk.is_zero_copy(), "copy binding asked for");
    let peer = peer(&pair);
    let to = SocketAddr::from((pair.a().addr(), PORT));
    const N: usize = 300;
    let sizes = [0usize, 1, 18, 64, 200, 1232, 1228, PAYLOAD_MAX_MTU1500];
    let sent: Vec<Vec<u8>> = (0..N).map(|i| payload(i, sizes[i % sizes.len()])).collect();
    let mut echoed = 0usize;
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut next = 0usize;
    let mut buf = vec![0u8; 2048];
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < N && Instant::now() < end {
        // Keep a window of 32 in flight so no ring overflows.
        while next < N && next < got.len() + 32 {
            peer.send_to(&sent[next], to).unwrap();
            next += 1;
        }
        let mut rx = MemAio::with_capacity(64);
        xsk.poll_into(&mut rx, 64);
        let mut frames: Vec<Vec<u8>> = rx.drain().map(|p| p.buf.to_vec()).collect();
        for f in &mut frames {
            frame::swap_endpoints(f).expect("a UDP frame");
            // veth offloads the sender's UDP checksum: a frame taken raw off
            // the wire carries only the pseudo-header sum, so the reply
            // gets a full one (a real NIC's frames are complete).
            UdpFrame::new_checked(&mut f[..]).unwrap().fill_checksums();
        }
        let batch: Vec<PktInfo<'_>> = frames.iter().map(|f| PktInfo::new(f)).collect();
        xsk.send(&batch, true).expect("echo send");
        echoed += batch.len();
        xsk.service(tilewire_shmem::clock::mono_ns());
        while let Ok((len, from)) = peer.recv_from(&mut buf) {
            assert_eq!(from, to, "echo from an unexpected source");
            got.push(buf[..len].to_vec());
            if got.len() == next {
                break;
            }
        }
    }
    assert_eq!(
        got.len(),
        N,
        "echoes received ({echoed} echoed, stats {:?})",
        xsk.stats()
    );
    let mut want = sent.clone();
    want.sort();
    got.sort();
    assert!(got == want, "echoed bytes differ from what was sent");
    let s = xsk.stats();
    assert_eq!(
        (s.rx_packets, s.tx_packets, s.rx_bad_desc),
        (N as u64, N as u64, 0)
    );
    let k = xsk.kernel_stats().unwrap();
    assert_eq!(k.rx_invalid_descs + k.tx_invalid_descs, 0, "{k:?}");
}

#[test]
fn echo_skb_mode() {
    echo(AttachMode::Skb, "xecho-skb");
}

#[test]
fn echo_drv_mode() {
    echo(AttachMode::Drv, "xecho-drv");
}

/// Wraps each conformance payload in a UDP frame to the peer and sends it
/// through the socket: the frame is what the socket's aio carries.
struct Framing<'w> {
    xsk: Xsk<'w>,
    ends: Ends,
    scratch: Vec<Vec<u8>>,
}

/// The flow the frames carry, IPv4 or IPv6.
#[derive(Clone, Copy)]
enum Ends {
    V4(UdpEndpoints),
    V6(Udp6Endpoints),
}

impl Ends {
    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        match self {
            Ends::V4(e) => frame::build_vec(e, payload),
            Ends::V6(e) => frame::build_ipv6_vec(e, payload),
        }
        .expect("frame")
    }

    fn src(&self) -> SocketAddr {
        match self {
            Ends::V4(e) => e.src.into(),
            Ends::V6(e) => e.src.into(),
        }
    }
}

impl Aio for Framing<'_> {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        self.scratch.clear();
        for p in batch {
            self.scratch.push(self.ends.frame(p.buf));
        }
        let framed: Vec<PktInfo<'_>> = self.scratch.iter().map(|f| PktInfo::new(f)).collect();
        self.xsk.send(&framed, flush)
    }
}

struct XskHarness<'w> {
    aio: Framing<'w>,
    peer: &'w UdpSocket,
    max_pkt_len: usize,
}

impl<'w> Harness for XskHarness<'w> {
    type A = Framing<'w>;

    fn aio(&mut self) -> &mut Framing<'w> {
        &mut self.aio
    }

    fn take_delivered(&mut self, expect: usize) -> Vec<Vec<u8>> {
        let src = self.aio.ends.src();
        let got = if expect == 0 {
            self.peer.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 2048];
            let r = self
                .peer
                .recv_from(&mut buf)
                .map(|(n, f)| (buf[..n].to_vec(), f));
            self.peer.set_nonblocking(false).unwrap();
            r.into_iter().collect()
        } else {
            recv_n(self.peer, expect)
        };
        got.into_iter()
            .map(|(bytes, from)| {
                assert_eq!(from, src, "datagram from an unexpected source");
                bytes
            })
            .collect()
    }

    fn capacity(&self) -> Option<usize> {
        // Completions come back as the peer's stack takes each frame, so
        // the free frames never run out while the peer is not drained.
        None
    }

    fn max_pkt_len(&self) -> Option<usize> {
        Some(self.max_pkt_len)
    }
}

/// The conformance suite through a fresh socket per check on a's queue 0,
/// frames carrying `ends`, the far side `peer` in b.
fn conform(pair: &VethPair, mode: AttachMode, ends: Ends, peer: &UdpSocket, max_pkt_len: usize) {
    let ws = TestWs::new();
    let (prog, _link) = program(pair, mode);
    let cfg = config(pair);
    let mut round = 0;
    conformance::run_all(|| {
        // A fresh socket for every check, on the same queue: the one
        // before was just closed (bind retries the kernel's EBUSY).
        round += 1;
        let umem = ws.umem(&format!("umem{round}"), 2048);
        XskHarness {
            aio: Framing {
                xsk: socket(pair, &prog, umem, &cfg),
                ends,
                scratch: Vec::new(),
            },
            peer,
            max_pkt_len,
        }
    });
}

#[test]
fn conforms_to_the_aio_contract_skb_and_drv() {
    for (mode, tag) in [
        (AttachMode::Skb, "xconf-skb"),
        (AttachMode::Drv, "xconf-drv"),
    ] {
        let Some(pair) = pair(tag) else { return };
        let peer = peer(&pair);
        let ends = UdpEndpoints {
            src_mac: pair.a().mac(),
            dst_mac: pair.b().mac(),
            src: SocketAddrV4::new(pair.a().addr(), PORT),
            dst: SocketAddrV4::new(pair.b().addr(), PEER_PORT),
        };
        conform(&pair, mode, Ends::V4(ends), &peer, PAYLOAD_MAX_MTU1500);
    }
}

/// The same suite with IPv6 frames: b's kernel takes each datagram only if
/// its UDP checksum over the IPv6 pseudo header is right, so this also
/// checks `build_ipv6` against a stack nobody here wrote.
#[test]
fn conforms_to_the_aio_contract_over_ipv6() {
    let Some(pair) = pair("xconf-v6") else { return };
    let (a6, b6): (Ipv6Addr, Ipv6Addr) =
        ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap());
    pair.a().add_ipv6(a6, 64).expect("a's IPv6 address");
    pair.b().add_ipv6(b6, 64).expect("b's IPv6 address");
    let addr = SocketAddr::from((b6, PEER_PORT));
    let peer = pair.b().run(|| UdpSocket::bind(addr)).unwrap().unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let ends = Udp6Endpoints {
        src_mac: pair.a().mac(),
        dst_mac: pair.b().mac(),
        src: SocketAddrV6::new(a6, PORT, 0, 0),
        dst: SocketAddrV6::new(b6, PEER_PORT, 0, 0),
    };
    conform(
        &pair,
        AttachMode::Drv,
        Ends::V6(ends),
        &peer,
        PAYLOAD_MAX_IPV6_MTU1500,
    );
}

#[test]
fn other_traffic_still_reaches_the_kernel_stack() {
    let Some(pair) = pair("xpass") else { return };
    let ws = TestWs::new();
    let (prog, _link) = program(&pair, AttachMode::Drv);
    let mut xsk = socket(&pair, &prog, ws.umem("umem", 2048), &config(&pair));
    // A std socket in a on another port gets its datagrams.
    let other = SocketAddr::from((pair.a().addr(), PORT + 1));
    let a_sock = pair.a().run(|| UdpSocket::bind(other)).unwrap().unwrap();
    a_sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let peer = peer(&pair);
    for i in 0..20 {
        peer.send_to(&payload(i, 100), other).unwrap();
    }
    let got = recv_n(&a_sock, 20);
    assert_eq!(
        got.len(),
        20,
        "datagrams to an unsteered port reach the stack"
    );
    let mut rx = MemAio::with_capacity(64);
    xsk.poll_into(&mut rx, 64);
    assert_eq!(rx.len(), 0, "nothing for another port reaches the socket");
    // And ping works (ICMP and ARP pass).
    let ok = pair
        .b()
        .run(|| {
            Command::new("ping")
                .args(["-c", "2", "-W", "1", "-i", "0.2"])
                .arg(pair.a().addr().to_string())
                .output()
        })
        .unwrap();
    if let Ok(out) = ok {
        assert!(out.status.success(), "ping across the veth: {out:?}");
    }
}

#[test]
fn bind_errors_name_the_fix() {
    let Some(pair) = pair("xerr") else { return };
    let ws = TestWs::new();
    let bind = |cfg: XskConfig, name: &str, frames: u32| {
        let umem = ws.umem(name, frames);
        pair.a().run(|| Xsk::bind(umem, &cfg).map(|_| ())).unwrap()
    };
    let e = bind(
        XskConfig {
            ifname: "tw-no-such-if".into(),
            ..config(&pair)
        },
        "u1",
        2048,
    )
    .unwrap_err();
    assert!(matches!(e, XskError::NoSuchInterface { .. }), "{e}");
    assert!(e.to_string().contains("ip link"), "{e}");
    let e = bind(
        XskConfig {
            queue: 7,
            ..config(&pair)
        },
        "u2",
        2048,
    )
    .unwrap_err();
    assert!(matches!(e, XskError::NoSuchQueue { queue: 7, .. }), "{e}");
    let e = bind(
        XskConfig {
            bind: BindMode::ZeroCopy,
            ..config(&pair)
        },
        "u3",
        2048,
    )
    .unwrap_err();
    assert!(matches!(e, XskError::ZeroCopyUnsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("BindMode::Copy"), "{e}");
    let e = bind(config(&pair), "u4", 100).unwrap_err();
    assert!(e.to_string().contains("1024 are needed"), "{e}");
    let e = bind(
        XskConfig {
            rx_size: 1000,
            ..config(&pair)
        },
        "u5",
        2048,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            XskError::RingSize {
                ring: "rx",
                size: 1000
            }
        ),
        "{e}"
    );
    // Auto on veth falls back to copy.
    let umem = ws.umem("u6", 2048);
    let xsk = pair
        .a()
        .run(|| {
            Xsk::bind(
                umem,
                &XskConfig {
                    bind: BindMode::Auto,
                    ..config(&pair)
                },
            )
        })
        .unwrap()
        .expect("auto bind");
    assert!(!xsk.0.is_zero_copy());
}
