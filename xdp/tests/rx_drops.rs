//! Where the kernel counts a packet it cannot give an AF_XDP socket, over
//! a veth pair between two namespaces this test makes (198.18.0.0/15,
//! unique names, removed on drop, also on a failure): a socket that does
//! not poll while a std socket in namespace b sends it more datagrams
//! than it has room for.
//!
//! - fill ring smaller than the rx ring: the kernel runs out of frames,
//!   every drop is in `rx_dropped` and in `rx_fill_ring_empty_descs`,
//!   none in `rx_ring_full`;
//! - rx ring smaller than the frames on the fill ring: every drop is in
//!   `rx_ring_full` only.
//!
//! Either way [`KernelStats::rx_lost`] plus what the socket then receives
//! is every datagram sent: the accounting `tilewire bench xdp` and the
//! net-xdp tile's counters rely on.
//!
//! Privileged: as a user each test prints the line CI counts.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_shmem::TempWorkspace;
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpProgram};
use tilewire_xdp::{BindMode, KernelStats, RxPacket, RxRefused, RxSink, Umem, Xsk, XskConfig};

const PORT: u16 = 9110;
/// Datagrams sent while the socket does not poll.
const SENT: u64 = 400;
const WAIT: Duration = Duration::from_secs(3);

/// Counts packets and gives each frame back.
struct Count(u64);

impl RxSink for Count {
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        self.0 += 1;
        Ok(pkt.frame)
    }
}

/// Binds a socket with `rx_size` rx slots and `fill_size` fill frames on
/// a's queue 0 (SKB mode, copy), sends [`SENT`] datagrams from b without
/// polling, waits until the kernel accounted for all of them, and returns
/// its counters and how many packets the socket then received.
fn overflow(tag: &str, rx_size: u32, fill_size: u32) -> Option<(KernelStats, u64)> {
    let pair = VethPair::new_or_skip(tag)?;
    let ws = TempWorkspace::new("xdp-drops", 16 << 20).expect("workspace");
    let cfg = XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size,
        fill_size,
        tx_size: 64,
        ..XskConfig::default()
    };
    let frames = u32::try_from(cfg.frames_needed()).unwrap();
    let umem = Umem::alloc_named(&ws, "umem", frames).expect("umem");
    let (prog, _link) = pair
        .a()
        .run(|| {
            let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
            let link = prog
                .attach(pair.a().ifindex(), AttachMode::Skb)
                .expect("attach");
            (prog, link)
        })
        .unwrap();
    let mut xsk = pair
        .a()
        .run(|| Xsk::bind(umem, &cfg))
        .unwrap()
        .expect("bind")
        .0;
    prog.register_socket(0, xsk.raw_fd().unwrap())
        .expect("register");
    let peer = pair
        .b()
        .run(|| UdpSocket::bind(SocketAddr::from((pair.b().addr(), 0))))
        .unwrap()
        .unwrap();
    let to = SocketAddr::from((pair.a().addr(), PORT));
    // The first datagram waits for ARP; send it alone, then the rest.
    peer.send_to(b"first", to).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for i in 1..SENT {
        peer.send_to(&i.to_le_bytes(), to).unwrap();
    }
    // Wait (bounded) until every datagram sits on the rx ring or was
    // counted as dropped: the rx ring's fill level is unknown without a
    // poll, so wait for the drops to stop rising.
    let expected_drops = SENT - u64::from(rx_size.min(fill_size));
    let end = Instant::now() + WAIT;
    let mut k = xsk.kernel_stats().unwrap();
    while k.rx_lost() < expected_drops && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        k = xsk.kernel_stats().unwrap();
    }
    let mut got = Count(0);
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        xsk.poll_rx(&mut got, 64);
    }
    Some((xsk.kernel_stats().unwrap(), got.0))
}

#[test]
fn an_empty_fill_ring_counts_in_rx_dropped() {
    let Some((k, got)) = overflow("drpfill", 512, 64) else {
        return;
    };
    assert_eq!(got, 64, "the fill ring's 64 frames were filled: {k:?}");
    assert_eq!(k.rx_ring_full, 0, "{k:?}");
    assert_eq!(k.rx_dropped, SENT - 64, "{k:?}");
    assert_eq!(k.rx_fill_ring_empty_descs, SENT - 64, "{k:?}");
    assert_eq!(
        k.rx_lost() + got,
        SENT,
        "every datagram accounted for: {k:?}"
    );
}

#[test]
fn a_full_rx_ring_counts_in_rx_ring_full_only() {
    let Some((k, got)) = overflow("drprx", 32, 128) else {
        return;
    };
    assert_eq!(got, 32, "the rx ring's 32 slots were filled: {k:?}");
    assert_eq!(k.rx_dropped, 0, "{k:?}");
    assert_eq!(k.rx_fill_ring_empty_descs, 0, "{k:?}");
    assert_eq!(k.rx_ring_full, SENT - 32, "{k:?}");
    assert_eq!(
        k.rx_lost() + got,
        SENT,
        "every datagram accounted for: {k:?}"
    );
}
