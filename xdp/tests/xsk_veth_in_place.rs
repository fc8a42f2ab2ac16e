//! Transmit in place over a veth pair: a spanning UMEM in a workspace (the
//! frame pool one allocation, the memory sent from another), registered in
//! unaligned-chunk mode. Receive still delivers every packet intact (the
//! kernel's unaligned-mode addresses are folded back); frames written once
//! outside the pool, at 64-byte-aligned addresses some of which cross a
//! 2048-byte boundary, reach a std socket in the other namespace byte for
//! byte, and every send is reported complete; the kernel counts no invalid
//! descriptor.
//!
//! Privileged: as a user each test prints the line CI counts.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::conformance::payload;
use tilewire_aio::netns::VethPair;
use tilewire_aio::MemAio;
use tilewire_shmem::{store_bytes, TempWorkspace};
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpProgram};
use tilewire_xdp::frame::{self, UdpEndpoints};
use tilewire_xdp::umem::UMEM_ALIGN;
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig, FRAME_SIZE};

const PORT: u16 = 9110;
const PEER_PORT: u16 = 9210;

fn run(mode: AttachMode, tag: &str) {
    let Some(pair) = VethPair::new_or_skip(tag) else {
        return;
    };
    let ws = TempWorkspace::new("xdpinplace", 64 << 20).expect("workspace");
    let cfg = XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size: 512,
        fill_size: 512,
        tx_size: 512,
        ..XskConfig::default()
    };
    // The pool, then the memory sent from, with a gap between.
    let pool_len = cfg.frames_needed() as usize * FRAME_SIZE as usize;
    let pool_g = ws.alloc_named("pool", UMEM_ALIGN, pool_len, 0).unwrap();
    let _gap = ws.alloc_named("gap", UMEM_ALIGN, 12345, 0).unwrap();
    let out_len = 1 << 20;
    let out_g = ws.alloc_named("out", UMEM_ALIGN, out_len, 0).unwrap();
    let pool = ws.region(pool_g, pool_len).unwrap();
    let out = ws.region(out_g, out_len).unwrap();
    let span = ws.region_covering(&[pool, out], UMEM_ALIGN).unwrap();
    let umem = Umem::spanning(pool, span).unwrap();
    assert!(umem.len() > umem.pool_len());

    let (prog, _link) = pair
        .a()
        .run(|| {
            let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
            let link = prog.attach(pair.a().ifindex(), mode).expect("attach");
            (prog, link)
        })
        .unwrap();
    let (mut xsk, _) = pair
        .a()
        .run(|| Xsk::bind(umem, &cfg))
        .unwrap()
        .expect("bind a spanning UMEM");
    prog.register_socket(0, xsk.raw_fd().unwrap()).unwrap();
    let peer_addr = SocketAddr::from((pair.b().addr(), PEER_PORT));
    let peer = pair
        .b()
        .run(|| UdpSocket::bind(peer_addr))
        .unwrap()
        .unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let to = SocketAddr::from((pair.a().addr(), PORT));

    // Receive: every datagram intact, through unaligned-mode addresses.
    const N: usize = 200;
    let sent: Vec<Vec<u8>> = (0..N).map(|i| payload(i, 1 + (i * 37) % 1400)).collect();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut next = 0;
    while got.len() < N && Instant::now() < end {
        while next < N && next < got.len() + 32 {
            peer.send_to(&sent[next], to).unwrap();
            next += 1;
        }
        let mut rx = MemAio::with_capacity(64);
        xsk.poll_into(&mut rx, 64);
        for p in rx.drain() {
            got.push(frame::udp_payload(p.buf).expect("a UDP frame").to_vec());
        }
    }
    assert_eq!(
        got,
        sent,
        "received datagrams differ (stats {:?})",
        xsk.stats()
    );

    // Transmit in place: frames written once into `out`, sent from there.
    let ends = UdpEndpoints {
        src_mac: pair.a().mac(),
        dst_mac: pair.b().mac(),
        src: SocketAddrV4::new(pair.a().addr(), PORT),
        dst: SocketAddrV4::new(pair.b().addr(), PEER_PORT),
    };
    let out_addr = umem
        .addr_of(out.as_ptr(), out_len)
        .expect("out is in the span");
    let mut at = 0usize;
    let mut crossing = 0;
    let mut want = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..N {
        let p = payload(1000 + i, 1 + (i * 53) % 1472);
        let f = frame::build_vec(&ends, &p).unwrap();
        store_bytes(out.atomic_bytes(at, f.len()).unwrap(), &f);
        let addr = out_addr + at as u64;
        if addr / 2048 != (addr + f.len() as u64 - 1) / 2048 {
            crossing += 1;
        }
        addrs.push((addr, f.len() as u32));
        want.push(p);
        at = (at + f.len()).next_multiple_of(64);
    }
    assert!(crossing > N / 4, "few sends cross a 2048-byte boundary");
    let mut done = Vec::new();
    let mut heard = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut next = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while (heard.len() < N || done.len() < N) && Instant::now() < end {
        while next < N && next < heard.len() + 64 {
            match xsk.send_in_place(addrs[next].0, addrs[next].1) {
                Ok(()) => next += 1,
                Err(tilewire_xdp::InPlaceError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        xsk.service(u64::MAX / 2);
        done.extend(xsk.in_place_done());
        if let Ok((len, from)) = peer.recv_from(&mut buf) {
            assert_eq!(from, SocketAddr::V4(ends.src));
            heard.push(buf[..len].to_vec());
        }
    }
    assert_eq!(heard.len(), N, "datagrams heard (stats {:?})", xsk.stats());
    assert!(heard == want, "in-place datagrams differ");
    let in_order: Vec<u64> = addrs.iter().map(|a| a.0).collect();
    assert_eq!(done, in_order, "every send reported done, in order");
    let s = xsk.stats();
    assert_eq!(
        (s.tx_in_place, s.tx_in_place_completed),
        (N as u64, N as u64)
    );
    assert_eq!(
        (s.tx_completed, s.tx_bad_completion, s.rx_bad_desc),
        (0, 0, 0)
    );
    let k = xsk.kernel_stats().unwrap();
    assert_eq!(k.rx_invalid_descs + k.tx_invalid_descs, 0, "{k:?}");
    // A copying send still works next to them, from a pool frame.
    let f = frame::build_vec(&ends, b"copied").unwrap();
    tilewire_aio::Aio::send(&mut xsk, &[tilewire_aio::PktInfo::new(&f)], true).unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let mut copied = None;
    while copied.is_none() && Instant::now() < end {
        xsk.service(u64::MAX / 2);
        if let Ok((len, _)) = peer.recv_from(&mut buf) {
            copied = Some(buf[..len].to_vec());
        }
    }
    assert_eq!(copied.as_deref(), Some(&b"copied"[..]));
}

#[test]
fn in_place_over_veth_skb_mode() {
    run(AttachMode::Skb, "xinpl-skb");
}

#[test]
fn in_place_over_veth_drv_mode() {
    run(AttachMode::Drv, "xinpl-drv");
}
