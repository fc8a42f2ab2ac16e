//! `tilewire demo`: the pipeline on real packets, with nothing to set up.
//!
//! (The flags: see `--help`, made from the same definitions as the
//! parser.)
//!
//! It makes a veth pair between two network namespaces of its own, `a`
//! and `b`. In `a` runs the demo's pipeline (made with the library's
//! `PipelineBuilder`, in `topology` below): the net tile receives on an
//! AF_XDP socket the UDP packets the XDP program steers to it, dedup drops repeated payloads,
//! echo swaps the addresses and ports, and the net tile sends the answers
//! back out of the same socket. In `b` a peer sends the packets of the
//! embedded fixture (realistic validator traffic, malformed frames among
//! it) at `--rate` for `--duration`, through an AF_XDP socket of its own
//! so that even frames no socket could send go on the wire, and receives
//! the echoes on an ordinary UDP socket.
//!
//! Each second it shows every tile's rate; at the end, what the peer sent,
//! what each tile did, what the peer got back, and every packet that went
//! missing with the place it went missing. The peer's counts and the
//! tiles' counts are compared: a difference no counter explains is
//! reported as unexplained.
//!
//! Without root (no namespaces, no AF_XDP), or with `--udp`, the same
//! pipeline runs with the net tile on an io_uring UDP socket on loopback,
//! and the peer sends the fixture's well-formed datagrams from a UDP
//! socket.
//!
//! With `--ipv6` the same runs over IPv6: the veth ends get addresses of
//! 2001:2::/48 (without duplicate address detection), the XDP program
//! steers IPv6 UDP by port (no IPv4 address filter is set, which would
//! pass IPv6 to the kernel), and the peer sends the fixture's well-formed
//! frames as IPv6 frames with the same payloads and ports, the fixture's
//! own IPv6 frames with them, and the malformed ones as they are (see
//! `ipv6`); over loopback the sockets are on `::1`.
//!
//! Ctrl-C ends the run early, with the summary; the namespaces and the
//! workspace are removed on every exit path.

mod ipv6;
mod peer;
mod summary;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::fixture::{Fixture, FrameClass, CLASS_PORTS, MALFORMED_BIN, MIX_BIN};
use tilewire_aio::netns::{NetnsError, VethPair};
use tilewire_pipeline::topo::Machine;
use tilewire_pipeline::{
    LinkDef, Mode, Pipeline, PipelineBuilder, Registry, RunOptions, StopFlag, TileDef,
};
use tilewire_shmem::Workspace;

use peer::{Frame, Peer, PeerLive, Target};
use summary::Summary;

/// What the demo was asked for.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// How long the peer sends, in seconds (0.1 to 3600)
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = duration,
          allow_negative_numbers = true)]
    pub duration: Duration,
    /// Packets per second the peer sends
    #[arg(long, value_name = "PPS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000),
          allow_negative_numbers = true)]
    pub rate: u64,
    /// Fixture classes sent, comma-separated (default all)
    #[arg(long, value_name = "CLASSES", value_delimiter = ',', long_help = mix_help())]
    pub mix: Vec<String>,
    /// Loopback UDP even when AF_XDP is possible
    #[arg(long)]
    pub udp: bool,
    /// IPv6 instead of IPv4: the veth ends get 2001:2::1 and 2001:2::2, the
    /// peer sends IPv6 frames (over loopback, ::1)
    #[arg(long)]
    pub ipv6: bool,
}

fn mix_help() -> String {
    let names: Vec<&str> = FrameClass::ALL.iter().map(|c| c.name()).collect();
    format!(
        "Fixture classes sent, comma-separated (default all): all, malformed, {}",
        names.join(", ")
    )
}

fn duration(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.1..=3600.0).contains(&v) {
        return Err(format!("{v} is not in 0.1..=3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The frames the peer sends: the embedded fixtures, cut to `mix`.
fn frames(mix: &[String]) -> Result<Vec<Frame>, String> {
    let mut all = Vec::new();
    for bin in [MIX_BIN, MALFORMED_BIN] {
        let fx = Fixture::parse(bin).map_err(|e| format!("embedded fixture: {e}"))?;
        all.extend(fx.iter().enumerate().map(|(i, f)| Frame {
            class: f.class,
            steer: fx.steer_port(i),
            bytes: f.bytes.to_vec(),
        }));
    }
    if mix.is_empty() || mix.iter().any(|m| m == "all") {
        return Ok(all);
    }
    let known: Vec<&str> = FrameClass::ALL.iter().map(|c| c.name()).collect();
    for m in mix {
        if m != "malformed" && !known.contains(&m.as_str()) {
            return Err(format!(
                "--mix: unknown class {m:?} (known: all, malformed, {})",
                known.join(", ")
            ));
        }
    }
    all.retain(|f| {
        mix.iter()
            .any(|m| m == f.class.name() || (m == "malformed" && !f.class.is_well_formed_udp()))
    });
    if all.is_empty() {
        return Err("--mix selects no frame".into());
    }
    Ok(all)
}

/// `tilewire demo`.
pub(crate) fn run(opts: Args) -> Result<(), String> {
    let mix: Vec<String> = opts.mix.iter().map(|m| m.trim().to_owned()).collect();
    let frames = frames(&mix)?;
    let stop = StopFlag::on_signals().map_err(|e| e.to_string())?;
    if !opts.udp {
        match VethPair::new("demo") {
            Ok(pair) => return run_xdp(&opts, frames, &stop, &pair),
            Err(e @ NetnsError::NotPermitted { .. }) => eprintln!(
                "tilewire demo: {e}\n\
                 tilewire demo: AF_XDP and network namespaces need root; running the same \
                 pipeline on io_uring UDP over loopback instead"
            ),
            Err(e) => eprintln!(
                "tilewire demo: cannot make the veth pair: {e}\n\
                 tilewire demo: running the same pipeline on io_uring UDP over loopback instead"
            ),
        }
    }
    run_udp(&opts, frames, &stop)
}

fn ws_name() -> String {
    format!("tw-demo-{}", std::process::id())
}

fn run_xdp(
    opts: &Args,
    frames: Vec<Frame>,
    stop: &StopFlag,
    pair: &VethPair,
) -> Result<(), String> {
    let (a, b) = (pair.a(), pair.b());
    // The AF_XDP socket on the veth end of namespace a, for the UDP ports
    // the peer sends to.
    let mut net = TileDef::new("net", "net-xdp")
        .param("ifname", a.ifname())
        .param("netns", a.netns())
        .param("ports", CLASS_PORTS.map(i64::from).to_vec());
    let (a_ip, b_ip): (IpAddr, IpAddr) = if opts.ipv6 {
        for (side, ip) in [(a, ipv6::PIPELINE), (b, ipv6::PEER)] {
            side.add_ipv6(ip, ipv6::PREFIX)
                .map_err(|e| format!("an IPv6 address on {}: {e}", side.ifname()))?;
        }
        (ipv6::PIPELINE.into(), ipv6::PEER.into())
    } else {
        // Only IPv4 to the pipeline's address is steered: the fixture's
        // IPv6 frames go to the kernel.
        net = net.param("dst_addr", a.addr().to_string());
        (a.addr().into(), b.addr().into())
    };
    println!(
        "tilewire demo: veth {} ({}, {}) <-> {} ({}, {}); pipeline in {}: \
         net (AF_XDP) -> dedup -> echo -> net",
        a.ifname(),
        a.netns(),
        a_ip,
        b.ifname(),
        b.netns(),
        b_ip,
        a.netns()
    );
    let target = Target::Xdp {
        netns: b.netns().to_owned(),
        ifname: b.ifname().to_owned(),
        src: (b.mac(), b_ip),
        dst: (a.mac(), a_ip),
    };
    run_pipeline(opts, topology(net, 64 << 20), frames, stop, target)
}

fn run_udp(opts: &Args, frames: Vec<Frame>, stop: &StopFlag) -> Result<(), String> {
    let lo: IpAddr = if opts.ipv6 {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    };
    // A port free now (the tile binds it a moment later).
    let to = std::net::UdpSocket::bind(SocketAddr::new(lo, 0))
        .and_then(|s| s.local_addr())
        .map_err(|e| format!("finding a free port on loopback {lo}: {e}"))?;
    let net = TileDef::new("net", "net-udp").param("bind", to.to_string());
    println!(
        "tilewire demo: pipeline on loopback {to}: \
         net (io_uring UDP) -> dedup -> echo -> net"
    );
    run_pipeline(
        opts,
        topology(net, 32 << 20),
        frames,
        stop,
        Target::Udp { to },
    )
}

/// The demo's pipeline, with `net` (its kind and parameters given) at
/// both ends, in a workspace of `size` bytes:
///
/// ```text
/// net --net_rx--> dedup --dedup_echo--> echo --echo_tx--> net
/// ```
fn topology(net: TileDef, size: usize) -> PipelineBuilder {
    let tiles = [
        net.input("echo_tx").output("net_rx"),
        TileDef::new("dedup", "dedup")
            .input("net_rx")
            .output("dedup_echo"),
        TileDef::new("echo", "echo")
            .input("dedup_echo")
            .output("echo_tx"),
    ];
    let builder = PipelineBuilder::new(&ws_name())
        .size(size)
        .mode(Mode::Threads)
        // Every packet the socket received. The NIC cannot be held back,
        // so this link is unreliable: a dedup that falls a ring behind is
        // overrun, and the frags it lost are counted in its fseq. (It also
        // breaks the cycle net -> dedup -> echo -> net, which with every
        // link reliable could stall.)
        .link(LinkDef::new("net_rx", 4096).mtu(2048).unreliable())
        .link(LinkDef::new("dedup_echo", 4096).mtu(2048))
        .link(LinkDef::new("echo_tx", 4096).mtu(2048));
    tiles.into_iter().fold(builder, PipelineBuilder::tile)
}

fn run_pipeline(
    opts: &Args,
    builder: PipelineBuilder,
    frames: Vec<Frame>,
    stop: &StopFlag,
    target: Target,
) -> Result<(), String> {
    let mut topo = builder
        .topology(&Registry::with_builtins())
        .map_err(|e| format!("the demo's topology: {e}"))?;
    // With a core for each tile and one more for the peer, each tile on a
    // core of its own; with fewer, every tile on one thread, leaving the
    // peer a core instead of fighting it for both.
    topo.fit_to_machine(&Machine::this());
    println!("tilewire demo: layout: {}", topo.layout_summary());
    let pipeline = Pipeline::create(topo).map_err(|e| format!("the demo's topology: {e}"))?;
    let running = pipeline
        .start(&RunOptions::new())
        .map_err(|e| e.to_string())?;
    let ws = running.workspace();
    let peer_done = AtomicBool::new(false);
    let peer_live = PeerLive::default();
    let counts = std::thread::scope(|s| {
        let peer = Peer::new(ws, target, frames, opts.rate, opts.duration);
        let peer = s.spawn(|| {
            let r = peer.and_then(|p| p.run(stop, &peer_live));
            peer_done.store(true, Ordering::Relaxed);
            r
        });
        live(ws, stop, &peer_done, &peer_live);
        peer.join()
            .unwrap_or_else(|_| Err("the peer panicked".into()))
    });
    // The peer waited for the last echoes: stopping now drains what is
    // still on the links into the counters the summary reads.
    running.stop().map_err(|e| e.to_string())?;
    let counts = counts?;
    let ws = pipeline.workspace();
    let summary = Summary::gather(ws, &counts);
    print!("{summary}");
    if summary.unexplained() != 0 {
        return Err(format!(
            "{} packets are missing and no counter says where",
            summary.unexplained()
        ));
    }
    Ok(())
}

/// One line of rates a second until the peer is done.
fn live(ws: &Workspace, stop: &StopFlag, done: &AtomicBool, peer: &PeerLive) {
    let start = Instant::now();
    let mut prev = summary::sample(ws, peer);
    let mut next = start + Duration::from_secs(1);
    while !done.load(Ordering::Relaxed) && !stop.is_stopped() {
        if Instant::now() >= next {
            let cur = summary::sample(ws, peer);
            println!(
                "{:>4.0}s  {}",
                start.elapsed().as_secs_f64(),
                summary::rate_line(&prev, &cur)
            );
            prev = cur;
            next += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
