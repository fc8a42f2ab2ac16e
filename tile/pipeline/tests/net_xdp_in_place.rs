//! The net-xdp tile transmits in place over a veth pair (as root, in
//! namespaces this test makes; otherwise the line CI counts): a source
//! tile publishes whole Ethernet frames on a small link (8 lines, so its
//! producer wraps hundreds of times while the net tile holds frags whose
//! sends are in flight), and a std socket in the other namespace checks
//! every datagram byte for byte. On a reliable link every frame goes out
//! from where it lies in the link's dcache (`tx_in_place` = frames sent):
//! a frame its producer overwrote while the kernel still had to read it
//! would arrive with another frame's bytes. On an unreliable link the tile
//! copies (`tx_in_place` = 0), and what arrives is intact too; so does
//! a tile not asked to send in place (the parameter is off by default).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::frame::{self, UdpEndpoints};
use tilewire_aio::netns::VethPair;
use tilewire_pipeline::tile::stem::{Outputs, Tile};
use tilewire_pipeline::{
    BuildCtx, BuildError, IoCounts, LinkDef, NoParams, PipelineBuilder, Registry, RunOptions,
    TileDef, TileKind,
};

const FRAMES: u64 = 6000;
const PORT: u16 = 9400;
const PEER_PORT: u16 = 9401;
const BURST: u32 = 8;
const PER_MS: u32 = 64;

/// The payload of frame `n`: its number, then bytes that depend on it,
/// 60 to 1400 bytes long.
fn payload(n: u64) -> Vec<u8> {
    let len = 60 + (n as usize * 379) % 1341;
    let mut p: Vec<u8> = (0..len).map(|i| (n as usize * 31 + i * 7) as u8).collect();
    p[..8].copy_from_slice(&n.to_le_bytes());
    p
}

/// Publishes `FRAMES` frames to the peer, in bursts of up to `BURST` (as
/// many as the link takes: a producer that rewrites a line the moment the
/// net tile's progress passes it), at most `PER_MS` a millisecond (so the
/// peer's socket keeps up).
struct FramesKind(UdpEndpoints);

struct Frames {
    ends: UdpEndpoints,
    next: u64,
    at: Instant,
    in_tick: u32,
}

impl Tile for Frames {
    fn kind(&self) -> &str {
        "frames"
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if self.next >= FRAMES {
            return;
        }
        let now = Instant::now();
        if now >= self.at {
            self.at = now + Duration::from_millis(1);
            self.in_tick = 0;
        }
        for _ in 0..BURST {
            if self.in_tick >= PER_MS || self.next >= FRAMES {
                break;
            }
            let f = frame::build_vec(&self.ends, &payload(self.next)).unwrap();
            if out.publish(0, &f, u64::from(PEER_PORT), 0, 0).is_err() {
                break;
            }
            self.next += 1;
            self.in_tick += 1;
        }
    }
    fn burst(&self) -> u64 {
        u64::from(BURST)
    }
    fn external_input(&self) -> bool {
        true
    }
}

impl TileKind for FramesKind {
    type Params = NoParams;
    fn name(&self) -> &str {
        "frames"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(0..=0, 1..=1)
    }
    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Frames {
            ends: self.0,
            next: 0,
            at: Instant::now() + Duration::from_millis(50),
            in_tick: 0,
        }))
    }
}

/// Runs frames -> net-xdp over link `tx` (`depth` lines, reliable or
/// not), the net tile asked to send in place or not; returns the
/// datagrams the peer got, each checked byte for byte, and the net tile's
/// tx_pkts and tx_in_place.
fn run(tag: &str, depth: u64, reliable: bool, in_place: bool) -> Option<(u64, u64, u64)> {
    let pair = VethPair::new_or_skip(tag)?;
    let (a, b) = (pair.a(), pair.b());
    let ends = UdpEndpoints {
        src_mac: a.mac(),
        dst_mac: b.mac(),
        src: SocketAddrV4::new(a.addr(), PORT),
        dst: SocketAddrV4::new(b.addr(), PEER_PORT),
    };
    let peer = b
        .run(|| UdpSocket::bind(SocketAddr::V4(ends.dst)))
        .unwrap()
        .unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    set_rcvbuf(&peer, 8 << 20);
    let registry = Registry::with_builtins().with(FramesKind(ends)).unwrap();
    let mut tx = LinkDef::new("tx", depth).mtu(2048);
    if !reliable {
        tx = tx.unreliable();
    }
    let pipeline = PipelineBuilder::new(&format!("inpl{}{tag}", std::process::id()))
        .link(tx)
        .link(LinkDef::new("rx", 64).mtu(2048))
        .tile(TileDef::new("src", "frames").output("tx"))
        .tile(
            TileDef::new("net", "net-xdp")
                .input("tx")
                .output("rx")
                .param("ifname", a.ifname())
                .param("netns", a.netns())
                .param("ports", vec![9999])
                .param("bind", "copy")
                .param("tx_in_place", in_place),
        )
        .tile(TileDef::new("rxsink", "sink").input("rx"))
        .build(&registry)
        .unwrap();
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let mut got = 0u64;
    let mut seen = vec![false; FRAMES as usize];
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    let counter = |n: &str| pipeline.counter("net", n).unwrap_or(0);
    let mut quiet_since = Instant::now();
    loop {
        match peer.recv_from(&mut buf) {
            Ok((len, from)) => {
                assert_eq!(from, SocketAddr::V4(ends.src));
                let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert!(n < FRAMES, "a datagram numbered {n}");
                assert!(
                    buf[..len] == payload(n)[..],
                    "datagram {n} differs from what was published"
                );
                assert!(!seen[n as usize], "datagram {n} came twice");
                seen[n as usize] = true;
                got += 1;
                quiet_since = Instant::now();
            }
            Err(_) if reliable && got == FRAMES => break,
            // Unreliable: the tile may lose frags to overruns; stop once
            // the source is done and nothing came for a while.
            Err(_) if !reliable && quiet_since.elapsed() > Duration::from_millis(500) => break,
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "got {got} of {FRAMES}; net sent {}",
            counter("tx_pkts")
        );
    }
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("net", n).unwrap();
    eprintln!(
        "depth {depth}, reliable {reliable}: {got} datagrams arrived intact; net tx_pkts {}, \
         tx_in_place {}, tx_full {}",
        c("tx_pkts"),
        c("tx_in_place"),
        c("tx_full")
    );
    assert_eq!(c("k_tx_invalid"), 0, "the kernel refused no descriptor");
    Some((got, c("tx_pkts"), c("tx_in_place")))
}

/// Asks for a receive buffer of `bytes` (as root, beyond rmem_max).
fn set_rcvbuf(s: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUFFORCE");
}

#[test]
fn a_reliable_input_is_sent_in_place_and_a_wrapping_producer_never_overwrites_a_send() {
    let Some((got, sent, in_place)) = run("inpl-rel", 8, true, true) else {
        return;
    };
    assert_eq!(got, FRAMES, "every frame arrived");
    assert_eq!(sent, FRAMES);
    assert_eq!(
        in_place, FRAMES,
        "every frame went out in place, none copied"
    );
}

#[test]
fn an_unreliable_input_is_copied() {
    let Some((got, sent, in_place)) = run("inpl-unrel", 64, false, true) else {
        return;
    };
    assert_eq!(in_place, 0, "nothing in place from an unreliable link");
    assert!(got > 0 && got <= sent, "got {got}, sent {sent}");
}

#[test]
fn unless_asked_a_reliable_input_is_copied() {
    let Some((got, sent, in_place)) = run("inpl-off", 8, true, false) else {
        return;
    };
    assert_eq!(in_place, 0, "tx_in_place is off by default");
    assert_eq!((got, sent), (FRAMES, FRAMES), "every frame, copied");
}

/// The same tile on a run loop driven turn by turn, over the mock kernel
/// (no privileges), which reads a send only when the test says: frags
/// sent in place stay held until their completions, so the producer of an
/// 8-line link cannot rewrite a frame the kernel has not read yet, however
/// long the kernel waits; the bytes it finally reads are the frame's.
#[test]
fn held_frags_are_not_rewritten_before_the_mock_kernel_reads_them() {
    use std::collections::VecDeque;
    use tilewire_pipeline::kinds::net_xdp::{self, NetXdp, XdpRxLink};
    use tilewire_shmem::TempWorkspace;
    use tilewire_tile::link::frag::CTL_PKT;
    use tilewire_tile::link::{Link, Reliability};
    use tilewire_tile::stem::{Stem, StemConfig};
    use tilewire_xdp::mock::{MockConfig, MockKernel};

    const N: u64 = 3000;
    let ws = TempWorkspace::new("inplmock", 32 << 20).unwrap();
    let mcfg = MockConfig {
        rx_size: 16,
        fill_size: 16,
        tx_size: 64,
        lines: 16,
        ..MockConfig::default()
    };
    let frames = u64::from(mcfg.lines + mcfg.fill_size + mcfg.tx_size);
    let rx_link = Link::create_with_data(
        &ws,
        "net.rx",
        &net_xdp::link_params(16, vec![Reliability::Reliable]),
        frames,
    )
    .unwrap();
    let tx_link = Link::create(
        &ws,
        "src.tx",
        &net_xdp::link_params(8, vec![Reliability::Reliable]),
    )
    .unwrap();
    let umem = net_xdp::umem_spanning(&ws, &rx_link, &[&tx_link]).unwrap();
    let (xsk, lines, mut kernel) = MockKernel::new(umem, &mcfg);
    // A burst (budget) no larger than the receive link's depth: the stem
    // reads only with a burst of credits on every output.
    let tile = NetXdp::new(xsk, XdpRxLink::new(&rx_link, lines), 8);
    assert!(tile.sends_in_place());
    let mut stem = Stem::new(
        &ws,
        "net",
        tile,
        &[(&tx_link, 0)],
        &[&rx_link],
        StemConfig::default(),
    )
    .unwrap();
    let metrics = stem.metrics();
    let mut producer = tx_link.producer();
    let frame = |n: u64| {
        let mut f = payload(n);
        f.truncate(14 + (n as usize * 97) % 1400);
        f[..8].copy_from_slice(&n.to_le_bytes());
        f
    };
    let mut want: VecDeque<Vec<u8>> = VecDeque::new();
    let (mut next, mut got) = (0u64, 0u64);
    let mut round = 0u64;
    let end = Instant::now() + Duration::from_secs(20);
    while got < N {
        assert!(
            Instant::now() < end,
            "got {got} of {N}, published {next}, {:?}",
            stem.tile().xsk().stats()
        );
        round += 1;
        // The producer takes every line its credits allow.
        while next < N {
            let f = frame(next);
            if producer.publish(&f, 0, CTL_PKT, 0).is_err() {
                break;
            }
            want.push_back(f);
            next += 1;
        }
        for _ in 0..4 {
            stem.turn();
        }
        // The kernel reads late, a few at a time, and completes some.
        if round.is_multiple_of(3) {
            for wire in kernel.transmit((round % 5 + 1) as u32) {
                assert_eq!(
                    Some(&wire),
                    want.front(),
                    "frame {got} was rewritten before the kernel read it"
                );
                want.pop_front();
                got += 1;
            }
            kernel.complete((round % 7 + 1) as u32);
        }
    }
    let s = stem.tile().xsk().stats();
    assert_eq!((s.tx_in_place, s.tx_packets), (N, N), "all in place");
    metrics.request_stop();
    while !matches!(stem.turn(), tilewire_tile::stem::Turn::Halted(_)) {
        kernel.transmit(64);
        kernel.complete(64);
    }
}
