//! The xsk-rs peer against std UDP sockets over veth.
//!
//! Each test makes its own veth pair between two fresh network namespaces
//! (`tilewire_aio::netns`, 198.18.0.0/15, removed on drop) and binds the
//! peer to queue 0 of end `a`, in generic (SKB) and in native (DRV) mode:
//!
//! - a std `UdpSocket` in namespace `b` sends datagrams to `a`'s address;
//!   the peer must receive every one as a frame that `frame.rs` parses,
//!   with the addresses, MACs and payload that were sent;
//! - the peer sends frames made by `frame::build` from `a` to `b`; a std
//!   `UdpSocket` bound in `b` must receive every one, byte for byte (the
//!   kernel checks the UDP checksum of these, since they come with none
//!   verified);
//! - a peer on each end runs the benchmark loops against each other for
//!   a fraction of a second; frames must arrive intact.
//!
//! Privileged: without root each test prints the line CI counts and
//! returns. Every wait is bounded (a few seconds at most).

use std::io::Write;
use std::net::{SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::netns::{VethPair, VethSide};
use tilewire_xdp::frame::{self, UdpEndpoints, UdpFrame};
use tilewire_xdp::xskrs_peer::{PeerMode, XskRsPeer};

/// Datagrams per test.
const N: usize = 200;
/// The longest any wait for traffic may take.
const WAIT: Duration = Duration::from_secs(3);
/// Frames [`peer_to_std_udp`] sends before it reads them.
const CHUNK: usize = 32;
/// UMEM frames per peer: 512 for RX, 512 for TX, more than `N` each.
const FRAMES: u32 = 1024;

/// True when root; otherwise prints `skipped: needs CAP_NET_ADMIN` straight
/// to stderr (past the harness's capture, for CI to count) and the test
/// returns.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
    false
}

/// Payload `i`: its index, then a pattern; 4 to 1400 bytes long.
fn payload(i: usize) -> Vec<u8> {
    let len = 4 + (i * 211) % 1397;
    let mut p: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
    p[..4].copy_from_slice(&(i as u32).to_be_bytes());
    p
}

/// How `ip link` shows the XDP program on `side`'s interface: `"xdp"`
/// (native), `"xdpgeneric"` (SKB) or `"none"`, and the program's name.
fn attached(side: &VethSide) -> (String, String) {
    let out = Command::new("ip")
        .args([
            "-n",
            side.netns(),
            "-d",
            "link",
            "show",
            "dev",
            side.ifname(),
        ])
        .output()
        .expect("running ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mode = ["xdpgeneric", "xdp", "xdpdrv"]
        .into_iter()
        .find(|m| words.contains(m))
        .unwrap_or("none");
    let name = words
        .iter()
        .position(|w| *w == "name")
        .and_then(|i| words.get(i + 1))
        .map_or(String::new(), |n| (*n).to_owned());
    (mode.to_owned(), name)
}

/// The folded one's-complement sum of the UDP pseudo header (source,
/// destination, protocol 17, UDP length), not complemented: what Linux
/// leaves in the checksum field for a device to finish.
fn pseudo_header_sum(u: &UdpFrame<&[u8]>) -> u16 {
    let mut sum: u32 = 17 + u32::from(u.udp_len());
    for addr in [u.src_ip(), u.dst_ip()] {
        let o = addr.octets();
        sum += u32::from(u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([o[2], o[3]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A pair for this test, with the peer bound to queue 0 of end `a`,
/// through libxdp's default program attached in `mode`.
fn pair_and_peer(tag: &str, mode: PeerMode) -> (VethPair, XskRsPeer) {
    let pair = VethPair::new(tag).expect("making a veth pair");
    let ifname = pair.a().ifname().to_owned();
    let peer = pair
        .a()
        .run(move || XskRsPeer::bind(&ifname, 0, mode, FRAMES))
        .expect("entering namespace a")
        .unwrap_or_else(|e| panic!("binding the xsk-rs peer ({mode:?}): {e}"));
    let want = match mode {
        PeerMode::Skb => "xdpgeneric",
        PeerMode::Drv => "xdp",
    };
    let (shown, name) = attached(pair.a());
    assert_eq!(shown, want, "{mode:?}: how the program is attached");
    assert_eq!(name, "xsk_def_prog", "{mode:?}: libxdp's default program");
    (pair, peer)
}

fn std_udp_to_peer(tag: &str, mode: PeerMode) {
    if !privileged() {
        return;
    }
    let (pair, mut peer) = pair_and_peer(tag, mode);
    let (a, b) = (pair.a(), pair.b());
    let sender = b
        .run(|| UdpSocket::bind((b.addr(), 0)))
        .expect("entering namespace b")
        .expect("binding in b");
    let src = match sender.local_addr().unwrap() {
        std::net::SocketAddr::V4(v4) => v4,
        other => panic!("not IPv4: {other}"),
    };
    let dst = SocketAddrV4::new(a.addr(), 7000);
    for i in 0..N {
        sender.send_to(&payload(i), dst).expect("send_to");
    }

    // Everything on queue 0 comes to the peer, IPv6 neighbour discovery
    // included: keep the UDP frames to our port.
    let deadline = Instant::now() + WAIT;
    let mut got: Vec<Vec<u8>> = Vec::new();
    while got.len() < N && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        for f in peer.recv(N - got.len(), left) {
            if UdpFrame::new_checked(&f[..]).is_ok_and(|u| u.dst() == dst) {
                got.push(f);
            }
        }
    }
    assert_eq!(got.len(), N, "{mode:?}: frames received");
    for (i, f) in got.iter().enumerate() {
        let u = UdpFrame::new_checked(&f[..]).unwrap();
        let ends = UdpEndpoints {
            src_mac: b.mac(),
            dst_mac: a.mac(),
            src,
            dst,
        };
        assert_eq!(u.endpoints(), ends, "{mode:?}: frame {i}");
        assert_eq!(u.payload(), payload(i), "{mode:?}: payload {i}");
        assert_eq!(u.ip_checksum(), frame::ipv4_checksum(u.ip_header()));
        // veth offloads the UDP checksum (CHECKSUM_PARTIAL): a frame
        // taken before any stack carries the pseudo header's sum, which
        // the "hardware" would have completed. Accept that or a full one.
        let full = frame::udp_checksum(u.src_ip(), u.dst_ip(), u.udp_segment());
        let partial = pseudo_header_sum(&u);
        assert!(
            [full, partial].contains(&u.udp_checksum()),
            "{mode:?}: UDP checksum {:#06x} of {i} is neither {full:#06x} nor {partial:#06x}",
            u.udp_checksum()
        );
    }
    drop((peer, sender));
}

fn peer_to_std_udp(tag: &str, mode: PeerMode) {
    if !privileged() {
        return;
    }
    let (pair, mut peer) = pair_and_peer(tag, mode);
    let (a, b) = (pair.a(), pair.b());
    let receiver = b
        .run(|| UdpSocket::bind((b.addr(), 0)))
        .expect("entering namespace b")
        .expect("binding in b");
    receiver
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let ends = UdpEndpoints {
        src_mac: a.mac(),
        dst_mac: b.mac(),
        src: SocketAddrV4::new(a.addr(), 7001),
        dst: SocketAddrV4::new(b.addr(), receiver.local_addr().unwrap().port()),
    };
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| frame::build_vec(&ends, &payload(i)).unwrap())
        .collect();
    // In chunks, each received before the next is sent: a burst of all
    // `N` would overflow b's default socket buffer (~212 KiB), a loss
    // that says nothing about the peer.
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    for chunk in frames.chunks(CHUNK) {
        let refs: Vec<&[u8]> = chunk.iter().map(|f| &f[..]).collect();
        assert_eq!(peer.send(&refs), chunk.len(), "{mode:?}: all queued");
        assert!(peer.flush(WAIT), "{mode:?}: all completed");
        let want = got.len() + chunk.len();
        while got.len() < want && Instant::now() < deadline {
            match receiver.recv_from(&mut buf) {
                Ok((len, from)) => got.push((buf[..len].to_vec(), from)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("recv_from: {e}"),
            }
        }
    }
    let stats = peer.xdp_statistics().ok();
    assert_eq!(got.len(), N, "{mode:?}: datagrams received ({stats:?})");
    for (i, (data, from)) in got.iter().enumerate() {
        assert_eq!(*from, ends.src.into(), "{mode:?}: source of {i}");
        assert_eq!(data, &payload(i), "{mode:?}: payload {i}");
    }
    drop((peer, receiver));
}

/// A peer on each end: `b` runs `tx_loop`, `a` runs `rx_loop`, for
/// 300 ms; every frame `a` sees for the port is the template.
fn loops(tag: &str, mode: PeerMode) {
    if !privileged() {
        return;
    }
    let (pair, mut rx) = pair_and_peer(tag, mode);
    let (a, b) = (pair.a(), pair.b());
    let ifname = b.ifname().to_owned();
    let mut tx = b
        .run(move || XskRsPeer::bind(&ifname, 0, mode, FRAMES))
        .expect("entering namespace b")
        .unwrap_or_else(|e| panic!("binding the second peer ({mode:?}): {e}"));
    let ends = UdpEndpoints {
        src_mac: b.mac(),
        dst_mac: a.mac(),
        src: SocketAddrV4::new(b.addr(), 7002),
        dst: SocketAddrV4::new(a.addr(), 7003),
    };
    let template = frame::build_vec(&ends, &[0x5a; 64]).unwrap();

    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (rx_counts, tx_counts, matched, bad) = std::thread::scope(|s| {
        let rx_thread = s.spawn(|| {
            let (mut matched, mut bad) = (0u64, 0u64);
            let counts = rx.rx_loop(&stop, start + WAIT, |f| {
                if let Ok(u) = UdpFrame::new_checked(f) {
                    if u.dst() == ends.dst {
                        matched += 1;
                        bad += u64::from(f != &template[..]);
                    }
                }
            });
            (counts, matched, bad)
        });
        let tx_counts = tx
            .tx_loop(&template, &stop, start + Duration::from_millis(300))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // SYNC: Relaxed: see rx_loop; the counts come back by the join.
        stop.store(true, Ordering::Relaxed);
        let (rx_counts, matched, bad) = rx_thread.join().unwrap();
        (rx_counts, tx_counts, matched, bad)
    });
    eprintln!(
        "{mode:?}: tx {} pkts in {:?} ({:.0} pps, {} wakeups); rx {} pkts ({} ours) in {:?} ({:.0} pps)",
        tx_counts.packets,
        tx_counts.elapsed,
        tx_counts.packets_per_sec(),
        tx_counts.wakeups,
        rx_counts.packets,
        matched,
        rx_counts.elapsed,
        rx_counts.packets_per_sec(),
    );
    assert!(tx_counts.packets > 0, "{mode:?}: nothing sent");
    assert!(matched > 0, "{mode:?}: nothing received");
    assert!(matched <= tx_counts.packets, "{mode:?}: more in than out");
    assert_eq!(bad, 0, "{mode:?}: frames changed on the way");
    assert!(
        start.elapsed() < WAIT + Duration::from_secs(1),
        "loops ran over"
    );
    drop((rx, tx));
}

#[test]
fn skb_std_udp_to_peer() {
    std_udp_to_peer("xskrs", PeerMode::Skb);
}

#[test]
fn drv_std_udp_to_peer() {
    std_udp_to_peer("xskrs", PeerMode::Drv);
}

#[test]
fn skb_peer_to_std_udp() {
    peer_to_std_udp("xskrs", PeerMode::Skb);
}

#[test]
fn drv_peer_to_std_udp() {
    peer_to_std_udp("xskrs", PeerMode::Drv);
}

#[test]
fn skb_loops() {
    loops("xskrs", PeerMode::Skb);
}

#[test]
fn drv_loops() {
    loops("xskrs", PeerMode::Drv);
}
