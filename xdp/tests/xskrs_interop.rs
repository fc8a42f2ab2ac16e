//! Interop with an AF_XDP peer nobody here wrote: an xsk-rs socket (with
//! libxdp's own XDP program) on namespace b's end of a veth pair, tilewire's
//! socket and generated program on a's end. Frames go both ways, byte for
//! byte, in SKB and in DRV mode. The namespaces are the test's own and
//! removed on drop. Privileged: as a user each test prints the line CI
//! counts.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::conformance::payload;
use tilewire_aio::netns::VethPair;
use tilewire_aio::{Aio, MemAio, PktInfo};
use tilewire_shmem::{PageKind, Workspace};
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpProgram};
use tilewire_xdp::frame::{build_vec, UdpEndpoints, UdpFrame};
use tilewire_xdp::xskrs_peer::{PeerMode, XskRsPeer};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

const PORT: u16 = 9500;
const PEER_PORT: u16 = 9600;
const N: usize = 200;

fn interop(mode: AttachMode, peer_mode: PeerMode, tag: &str) {
    let Some(pair) = VethPair::new_or_skip(tag) else {
        return;
    };
    static WS: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tw-xskrs-{}-{}",
        std::process::id(),
        WS.fetch_add(1, Ordering::Relaxed)
    );
    let ws = Workspace::create(&name, 8 << 20, PageKind::Normal).expect("workspace");
    let _ = Workspace::unlink(&name);
    let umem = Umem::alloc_named(&ws, "umem", 1024).unwrap();
    let cfg = XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size: 512,
        fill_size: 512,
        tx_size: 256,
        ..XskConfig::default()
    };
    let (prog, _link, mut xsk) = pair
        .a()
        .run(|| {
            let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
            let link = prog.attach(pair.a().ifindex(), mode).expect("attach");
            let (xsk, _) = Xsk::bind(umem, &cfg).expect("bind");
            (prog, link, xsk)
        })
        .unwrap();
    prog.register_socket(0, xsk.raw_fd().unwrap()).unwrap();
    let mut peer = pair
        .b()
        .run(|| XskRsPeer::bind(pair.b().ifname(), 0, peer_mode, 1024))
        .unwrap()
        .expect("xsk-rs socket");
    let to_a = UdpEndpoints {
        src_mac: pair.b().mac(),
        dst_mac: pair.a().mac(),
        src: SocketAddrV4::new(pair.b().addr(), PEER_PORT),
        dst: SocketAddrV4::new(pair.a().addr(), PORT),
    };
    let sizes = [0usize, 1, 64, 1228, 1232, 1400];
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| payload(i, sizes[i % sizes.len()])).collect();

    // xsk-rs -> tilewire.
    let frames: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| build_vec(&to_a, p).unwrap())
        .collect();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    for chunk in frames.chunks(32) {
        let refs: Vec<&[u8]> = chunk.iter().map(|f| &f[..]).collect();
        assert_eq!(peer.send(&refs), refs.len(), "xsk-rs queued the chunk");
        assert!(peer.flush(Duration::from_secs(2)), "xsk-rs sent the chunk");
        let want = got.len() + chunk.len();
        while got.len() < want && Instant::now() < end {
            let mut rx = MemAio::with_capacity(64);
            xsk.poll_into(&mut rx, 64);
            got.extend(rx.drain().map(|p| p.buf.to_vec()));
        }
    }
    assert_eq!(got.len(), N, "frames from xsk-rs received by tilewire");
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(g, f, "a frame from xsk-rs differs");
    }

    // tilewire -> xsk-rs.
    let to_b = to_a.reversed();
    let frames: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| build_vec(&to_b, p).unwrap())
        .collect();
    let mut got: Vec<Vec<u8>> = Vec::new();
    for chunk in frames.chunks(32) {
        let batch: Vec<PktInfo<'_>> = chunk.iter().map(|f| PktInfo::new(f)).collect();
        xsk.send(&batch, true).expect("tilewire send");
        // libxdp's program hands the peer everything on its queue; keep
        // only UDP to the peer's port (an IPv6 router solicitation may
        // come by).
        let mut left = chunk.len();
        let end = Instant::now() + Duration::from_secs(3);
        while left > 0 && Instant::now() < end {
            for f in peer.recv(left, Duration::from_millis(100)) {
                let ok = UdpFrame::new_checked(&f[..]).is_ok_and(|u| u.dst_port() == PEER_PORT);
                if ok {
                    got.push(f);
                    left -= 1;
                }
            }
            xsk.service(tilewire_shmem::clock::mono_ns());
        }
    }
    assert_eq!(got.len(), N, "frames from tilewire received by xsk-rs");
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(g, f, "a frame from tilewire differs");
    }
}

#[test]
fn interop_with_xsk_rs_skb() {
    interop(AttachMode::Skb, PeerMode::Skb, "xrs-skb");
}

#[test]
fn interop_with_xsk_rs_drv() {
    interop(AttachMode::Drv, PeerMode::Drv, "xrs-drv");
}
