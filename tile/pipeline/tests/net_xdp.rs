//! Zero-copy receive from AF_XDP into a link, over a veth pair between two
//! network namespaces this test makes (removed on drop): a std socket in
//! namespace b sends datagrams; the NIC side writes them into the link's
//! dcache (the UMEM); a consumer reads each frag in place and checks every
//! byte, the order, the frag's signature (the port) and origin (the
//! offset). A reliable consumer that stops reading stops the producer, and
//! nothing it was refused is lost. Privileged: as a user each test prints
//! the line CI counts.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::conformance::payload;
use tilewire_aio::frame::{self, UdpFrame, HEADERS_LEN};
use tilewire_aio::netns::VethPair;
use tilewire_pipeline::kinds::net_xdp::{self, NetXdp, XdpRxLink};
use tilewire_shmem::{load_bytes, TempWorkspace};
use tilewire_tile::link::consumer::Poll;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::{Consumer, Link, Reliability};
use tilewire_tile::stem::{Stem, StemConfig};
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpProgram};
use tilewire_xdp::{BindMode, Xsk, XskConfig};

const PORT: u16 = 9300;
const DEPTH: u64 = 64;

fn pair(tag: &str) -> Option<VethPair> {
    VethPair::new_or_skip(tag)
}

struct TestWs(TempWorkspace);

impl TestWs {
    fn new() -> TestWs {
        TestWs(TempWorkspace::new("xdp", 32 << 20).expect("workspace"))
    }
}

/// Reads every ready frag; checks each against `sent[*next]` and moves on.
fn drain(consumer: &mut Consumer<'_>, sent: &[Vec<u8>], next: &mut usize) {
    let mut buf = vec![0u8; net_xdp::XDP_MTU];
    loop {
        match consumer.poll_with(|m, bytes| {
            let n = m.sz as usize;
            load_bytes(&mut buf[..n], &bytes[..n]);
            (m.origin(), m.sig, m.packet(&buf[..n]).to_vec())
        }) {
            Poll::Frag(_, (origin, sig, pkt)) => {
                assert_eq!(
                    origin, 0,
                    "packets sit chunk-aligned after the XDP headroom"
                );
                assert_eq!(
                    sig,
                    u64::from(PORT),
                    "the frag's sig is the destination port"
                );
                assert_eq!(
                    &pkt[HEADERS_LEN..],
                    &sent[*next][..],
                    "packet {} differs",
                    *next
                );
                *next += 1;
            }
            Poll::Empty => return,
            other => panic!("unexpected poll result {other:?}"),
        }
    }
}

fn receive_into_link(mode: AttachMode, tag: &str, stall: bool) {
    let Some(pair) = pair(tag) else { return };
    let ws = TestWs::new();
    let cfg = XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size: 512,
        fill_size: 512,
        tx_size: 64,
        lines: DEPTH as u32,
        ..XskConfig::default()
    };
    let link = Link::create_with_data(
        &ws.0,
        "net.rx",
        &net_xdp::link_params(DEPTH, vec![Reliability::Reliable]),
        net_xdp::data_mtus(&cfg),
    )
    .expect("link");
    let umem = net_xdp::umem(&link).expect("the dcache data region is a UMEM");
    let (prog, _attached, mut xsk, lines) = pair
        .a()
        .run(|| {
            let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
            let attached = prog.attach(pair.a().ifindex(), mode).expect("attach");
            let (xsk, lines) = Xsk::bind(umem, &cfg).expect("bind");
            (prog, attached, xsk, lines)
        })
        .unwrap();
    prog.register_socket(0, xsk.raw_fd().unwrap()).unwrap();
    let mut rx = XdpRxLink::new(&link, lines);
    let mut producer = link.producer();
    let mut consumer = link.consumer(0).unwrap();
    let peer = pair
        .b()
        .run(|| UdpSocket::bind(SocketAddr::from((pair.b().addr(), 0))))
        .unwrap()
        .unwrap();
    let to = SocketAddr::from((pair.a().addr(), PORT));
    let n = if stall { 300 } else { 1000 };
    let sizes = [0usize, 1, 63, 64, 65, 200, 1228, 1232, 1472];
    let sent: Vec<Vec<u8>> = (0..n).map(|i| payload(i, sizes[i % sizes.len()])).collect();
    let (mut next_send, mut next_read) = (0usize, 0usize);
    if stall {
        // The consumer reads nothing until everything was sent: the
        // producer fills the ring, then the sink refuses and the rest
        // waits on the rx ring (512 entries, more than the 236 left).
        for s in &sent {
            peer.send_to(s, to).unwrap();
        }
        next_send = n;
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end && xsk.stats().rx_backpressure == 0 {
            rx.poll(&mut xsk, &mut producer, 64);
        }
        assert_eq!(
            xsk.stats().rx_packets,
            DEPTH,
            "the producer stops a ring ahead"
        );
        assert!(producer.backpressure_count() > 0);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while next_read < n && Instant::now() < end {
        while next_send < n && next_send < next_read + 48 {
            peer.send_to(&sent[next_send], to).unwrap();
            next_send += 1;
        }
        rx.poll(&mut xsk, &mut producer, 64);
        drain(&mut consumer, &sent, &mut next_read);
    }
    assert_eq!(next_read, n, "frags read ({:?})", xsk.stats());
    let k = xsk.kernel_stats().unwrap();
    assert_eq!(
        k.rx_ring_full + k.rx_fill_ring_empty_descs + k.rx_dropped,
        0,
        "kernel drops: {k:?}"
    );
    assert_eq!(xsk.stats().rx_bad_desc, 0);
    // The lines own distinct frames, none of which is on the socket's side.
    let mut owned: Vec<u64> = rx.line_frames().to_vec();
    owned.extend(xsk.frame_list());
    let before = owned.len();
    owned.sort_unstable();
    owned.dedup();
    assert_eq!(
        owned.len(),
        before,
        "a frame is both a line's and the socket's"
    );
}

#[test]
fn packets_land_in_the_link_without_a_copy_skb() {
    receive_into_link(AttachMode::Skb, "nx-skb", false);
}

#[test]
fn packets_land_in_the_link_without_a_copy_drv() {
    receive_into_link(AttachMode::Drv, "nx-drv", false);
}

#[test]
fn a_stalled_reliable_consumer_stops_the_producer_and_loses_nothing() {
    receive_into_link(AttachMode::Drv, "nx-stall", true);
}

/// The net tile on a run loop: receive into its output link, send what its
/// input link carries. The test thread is the echo tile between the two
/// links (swap addresses, fill checksums); a std socket in namespace b
/// sends and checks every echo.
#[test]
fn the_net_tile_echoes_through_a_link_pipeline() {
    let Some(pair) = pair("nx-tile") else { return };
    let ws = TestWs::new();
    let cfg = XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size: 512,
        fill_size: 512,
        tx_size: 256,
        lines: DEPTH as u32,
        ..XskConfig::default()
    };
    let rx_link = Link::create_with_data(
        &ws.0,
        "net.rx",
        &net_xdp::link_params(DEPTH, vec![Reliability::Reliable]),
        net_xdp::data_mtus(&cfg),
    )
    .unwrap();
    let tx_link = Link::create(
        &ws.0,
        "echo.tx",
        &net_xdp::link_params(256, vec![Reliability::Reliable]),
    )
    .unwrap();
    let umem = net_xdp::umem(&rx_link).unwrap();
    let (prog, _attached, xsk, lines) = pair
        .a()
        .run(|| {
            let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
            let attached = prog
                .attach(pair.a().ifindex(), AttachMode::Drv)
                .expect("attach");
            let (xsk, lines) = Xsk::bind(umem, &cfg).expect("bind");
            (prog, attached, xsk, lines)
        })
        .unwrap();
    prog.register_socket(0, xsk.raw_fd().unwrap()).unwrap();
    let tile = NetXdp::new(xsk, XdpRxLink::new(&rx_link, lines), 64);
    let mut stem = Stem::new(
        &ws.0,
        "net",
        tile,
        &[(&tx_link, 0)],
        &[&rx_link],
        StemConfig::default(),
    )
    .unwrap();
    let metrics = stem.metrics();
    let peer = pair
        .b()
        .run(|| UdpSocket::bind(SocketAddr::from((pair.b().addr(), 0))))
        .unwrap()
        .unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let to = SocketAddr::from((pair.a().addr(), PORT));
    const N: usize = 500;
    let sent: Vec<Vec<u8>> = (0..N)
        .map(|i| payload(i, [0, 64, 1232, 1472][i % 4]))
        .collect();
    let mut got: Vec<Vec<u8>> = Vec::new();
    std::thread::scope(|s| {
        let runner = s.spawn(|| stem.run());
        let mut consumer = rx_link.consumer(0).unwrap();
        let mut producer = tx_link.producer();
        let mut buf = vec![0u8; net_xdp::XDP_MTU];
        let mut frame = Vec::new();
        let mut next = 0;
        let mut rbuf = vec![0u8; 2048];
        let end = Instant::now() + Duration::from_secs(10);
        while got.len() < N && Instant::now() < end {
            while next < N && next < got.len() + 32 {
                peer.send_to(&sent[next], to).unwrap();
                next += 1;
            }
            // The echo tile: every frame back out, addresses swapped.
            while let Poll::Frag(m, ()) = consumer.poll_copy(&mut buf) {
                frame.clear();
                frame.extend_from_slice(m.packet(&buf[..m.sz as usize]));
                frame::swap_endpoints(&mut frame).unwrap();
                UdpFrame::new_checked(&mut frame[..])
                    .unwrap()
                    .fill_checksums();
                while producer.publish(&frame, m.sig, CTL_PKT, m.tsorig).is_err() {
                    std::thread::yield_now();
                }
            }
            while let Ok((len, from)) = peer.recv_from(&mut rbuf) {
                assert_eq!(from, to);
                got.push(rbuf[..len].to_vec());
            }
        }
        metrics.request_stop();
        runner.join().unwrap();
    });
    assert_eq!(got.len(), N, "echoes through the pipeline");
    let mut want = sent.clone();
    want.sort();
    got.sort();
    assert!(got == want, "echoed bytes differ");
    let snap = metrics.snapshot();
    let counter = |name: &str| snap.counters.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(
        (counter("rx_pkts"), counter("tx_pkts")),
        (N as u64, N as u64)
    );
    assert_eq!(
        counter("rx_bad_desc") + counter("tx_refused") + counter("k_rx_dropped"),
        0
    );
    let s = stem.tile().xsk().stats();
    assert_eq!(s.tx_completed, N as u64, "every sent frame came back");
}

/// Two net-xdp tiles on queues 0 and 1 of one interface (a veth pair with
/// two queues, DRV mode, so each packet carries its queue): the pipeline
/// attaches one XDP program for both, each tile puts its socket at its
/// queue, flows from 64 source ports spread over the two, and every
/// datagram reaches exactly one of them.
#[test]
fn two_net_tiles_share_one_program_one_queue_each() {
    let pair = match VethPair::with_queues("nx-2q", 2) {
        Ok(p) => p,
        Err(tilewire_aio::netns::NetnsError::NotPermitted { .. }) => {
            eprintln!("\nskipped: needs CAP_NET_ADMIN");
            return;
        }
        Err(e) => panic!("making a veth pair: {e}"),
    };
    const PORT2: u16 = 9310;
    let a = pair.a();
    let net = |i: u32| {
        format!(
            "[[tile]]\nname = \"net{i}\"\nkind = \"net-xdp\"\noutputs = [\"rx{i}\"]\n\
             params = {{ ifname = \"{}\", queue = {i}, ports = [{PORT2}], netns = \"{}\", \
             attach = \"drv\", bind = \"copy\" }}\n\n\
             [[tile]]\nname = \"sink{i}\"\nkind = \"sink\"\ninputs = [\"rx{i}\"]\n\n\
             [[link]]\nname = \"rx{i}\"\ndepth = 1024\nmtu = 2048\n\n",
            a.ifname(),
            a.netns()
        )
    };
    let text = format!(
        "[workspace]\nname = \"tw-xdp2q-{}\"\n\n{}{}",
        std::process::id(),
        net(0),
        net(1)
    );
    let registry = tilewire_pipeline::Registry::with_builtins();
    let pipeline = tilewire_pipeline::Pipeline::create(registry.parse(&text).unwrap()).unwrap();
    let running = pipeline
        .start(&tilewire_pipeline::RunOptions::new())
        .unwrap();
    let dst = SocketAddr::from((a.addr(), PORT2));
    let (flows, rounds) = (64u64, 50u64);
    pair.b()
        .run(|| {
            let socks: Vec<UdpSocket> = (0..flows)
                .map(|_| UdpSocket::bind("0.0.0.0:0").unwrap())
                .collect();
            for round in 0..rounds {
                for s in &socks {
                    s.send_to(&round.to_le_bytes(), dst).unwrap();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    let got = |i: u32| pipeline.counter(&format!("net{i}"), "rx_pkts").unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got(0) + got(1) < flows * rounds && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    running.stop().unwrap();
    let (q0, q1) = (got(0), got(1));
    eprintln!(
        "two queues: {q0} on queue 0, {q1} on queue 1, of {}",
        flows * rounds
    );
    assert_eq!(
        q0 + q1,
        flows * rounds,
        "every datagram reached one net tile"
    );
    assert!(
        q0 > 0 && q1 > 0,
        "the flows spread over both queues: {q0} and {q1}"
    );
    let sinks =
        pipeline.counter("sink0", "frags").unwrap() + pipeline.counter("sink1", "frags").unwrap();
    assert_eq!(sinks, flows * rounds, "and reached the sinks");
}

/// Sends without a UDP checksum (0: none, valid over IPv4). Over veth the
/// kernel leaves a socket's checksum to an offload that never comes, and
/// the echo tile passes it back as it found it; the peer's stack would
/// drop every echo.
fn no_udp_checksum(s: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of its size,
    // read during the call only.
    let ret = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "SO_NO_CHECK: {}", std::io::Error::last_os_error());
}

fn two_queue_pair(tag: &str, queues: u32) -> Option<VethPair> {
    match VethPair::with_queues(tag, queues) {
        Ok(p) => Some(p),
        Err(tilewire_aio::netns::NetnsError::NotPermitted { .. }) => {
            eprintln!("\nskipped: needs CAP_NET_ADMIN");
            None
        }
        Err(e) => panic!("making a veth pair: {e}"),
    }
}

/// How a test's net-xdp `[[tile]]` asks for a tile per queue.
#[derive(Clone, Copy)]
enum PerQueue {
    /// The tile key `count = 2`.
    Count,
    /// The param `queues = "all"`: the interface's queue count.
    All,
}

/// net-xdp with a tile per queue (0 and 1), receiving into a link each,
/// merged, echoed, and sent back by the two in turn (round robin over the
/// tx link). Every echo comes back once; both tiles sent.
fn echo_topology(pair: &VethPair, port: u16, per_queue: PerQueue) -> String {
    let a = pair.a();
    let (count, queues) = match per_queue {
        PerQueue::Count => ("count = 2\n", ""),
        PerQueue::All => ("", ", queues = \"all\""),
    };
    format!(
        "[workspace]\nname = \"tw-xdpcount-{}-{port}\"\n\n\
         [[link]]\nname = \"rx\"\ndepth = 1024\nmtu = 2048\nreliable = false\n\n\
         [[link]]\nname = \"all\"\ndepth = 1024\nmtu = 2048\n\n\
         [[link]]\nname = \"tx\"\ndepth = 1024\nmtu = 2048\n\n\
         [[tile]]\nname = \"net\"\nkind = \"net-xdp\"\n{count}inputs = [\"tx\"]\noutputs = [\"rx\"]\n\
         params = {{ ifname = \"{}\", ports = [{port}], netns = \"{}\", attach = \"drv\", bind = \"copy\"{queues} }}\n\n\
         [[tile]]\nname = \"merge\"\nkind = \"forward\"\ninputs = [\"rx\"]\noutputs = [\"all\"]\n\n\
         [[tile]]\nname = \"echo\"\nkind = \"echo\"\ninputs = [\"all\"]\noutputs = [\"tx\"]\n",
        std::process::id(),
        a.ifname(),
        a.netns()
    )
}

#[test]
fn a_counted_net_tile_is_a_tile_per_queue_and_they_share_the_sending() {
    let Some(pair) = two_queue_pair("nx-count", 2) else {
        return;
    };
    let registry = tilewire_pipeline::Registry::with_builtins();
    let topo = registry
        .parse(&echo_topology(&pair, 9320, PerQueue::Count))
        .unwrap();
    echo_per_queue(&pair, topo, 9320);
}

#[test]
fn queues_all_makes_a_tile_per_queue_of_the_interface_and_the_stored_text_says_how_many() {
    let Some(pair) = two_queue_pair("nx-qall", 2) else {
        return;
    };
    let registry = tilewire_pipeline::Registry::with_builtins();
    let text = echo_topology(&pair, 9325, PerQueue::All);
    let topo = registry.parse(&text).unwrap();
    let names: Vec<&str> = topo.tiles.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["net.0", "net.1", "merge", "echo"]);
    // What a tile process or a monitor reads back: the number, not "all".
    assert!(topo.text().contains("queues = 2 }"), "{}", topo.text());
    assert!(!topo.text().contains("queues = \"all\""));
    let again = registry.parse(topo.text()).unwrap();
    let again: Vec<&str> = again.tiles.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(again, names);
    echo_per_queue(&pair, topo, 9325);
}

/// Runs a topology of [`echo_topology`] and checks every echo came back
/// once, through both queues' tiles.
fn echo_per_queue(pair: &VethPair, topo: tilewire_pipeline::Topology, port: u16) {
    let pipeline = tilewire_pipeline::Pipeline::create(topo).unwrap();
    let running = pipeline
        .start(&tilewire_pipeline::RunOptions::new())
        .unwrap();
    let dst = SocketAddr::from((pair.a().addr(), port));
    let (flows, rounds) = (32usize, 20u32);
    let echoed = pair
        .b()
        .run(|| {
            let socks: Vec<UdpSocket> = (0..flows)
                .map(|_| {
                    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                    no_udp_checksum(&s);
                    s
                })
                .collect();
            for round in 0..rounds {
                for s in &socks {
                    s.send_to(&round.to_le_bytes(), dst).unwrap();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut buf = [0u8; 64];
            let mut all = vec![Vec::new(); socks.len()];
            let deadline = Instant::now() + Duration::from_secs(10);
            while all.iter().any(|g: &Vec<u32>| g.len() < rounds as usize)
                && Instant::now() < deadline
            {
                for (s, got) in socks.iter().zip(&mut all) {
                    s.set_nonblocking(true).unwrap();
                    while let Ok((n, _)) = s.recv_from(&mut buf) {
                        got.push(u32::from_le_bytes(buf[..n].try_into().unwrap()));
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            for got in &mut all {
                got.sort_unstable();
            }
            all
        })
        .unwrap();
    running.stop().unwrap();
    let c = |t: &str, n: &str| pipeline.counter(t, n).unwrap();
    for got in &echoed {
        assert_eq!(*got, (0..rounds).collect::<Vec<_>>(), "each echo once");
    }
    let (rx0, rx1) = (c("net.0", "rx_pkts"), c("net.1", "rx_pkts"));
    let (tx0, tx1) = (c("net.0", "tx_pkts"), c("net.1", "tx_pkts"));
    let sent = (flows as u64) * u64::from(rounds);
    eprintln!("a tile per queue, 2 queues: received {rx0} + {rx1}, sent {tx0} + {tx1} of {sent}");
    assert_eq!(rx0 + rx1, sent);
    assert!(rx0 > 0 && rx1 > 0, "both queues received");
    assert_eq!(tx0 + tx1, sent, "nothing sent twice, nothing skipped");
    assert!(tx0.abs_diff(tx1) <= 1, "round robin: {tx0} and {tx1}");
}

#[test]
fn an_interface_with_fewer_queues_than_asked_is_refused_with_the_fix() {
    let Some(pair) = two_queue_pair("nx-fewq", 1) else {
        return;
    };
    let registry = tilewire_pipeline::Registry::with_builtins();
    let topo = registry
        .parse(&echo_topology(&pair, 9330, PerQueue::Count))
        .unwrap();
    let pipeline = tilewire_pipeline::Pipeline::create(topo).unwrap();
    let e = pipeline
        .start(&tilewire_pipeline::RunOptions::new())
        .unwrap_err()
        .to_string();
    let ifname = pair.a().ifname();
    assert!(
        e.contains(&format!(
            "{ifname} has 1 receive queue, and a net-xdp tile asks for queue 1"
        )) && e.contains(&format!("ethtool -L {ifname} combined 2")),
        "{e}"
    );
}
