//! One cell: one pipeline on one path at one load, from start to the
//! last packet, and what it measured.
//!
//! Each cell starts the pipeline under test (and, over UDP, the
//! collector and the source), lets it warm up, then measures a window:
//! packets offered, taken from the socket and delivered, the process's
//! CPU time (less the source's and the collector's threads, over UDP)
//! and the latency of what was delivered. Then it stops the source,
//! waits until the collector has had nothing for a while, stops the
//! pipeline (tilewire's runner drains every link) and adds up the whole
//! cell: every packet offered is delivered, dropped as a duplicate, or
//! lost at a counted place.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tilewire_aio::frame::UdpEndpoints;
use tilewire_aio::netns::VethPair;
use tilewire_pipeline::{Pipeline, Registry, RunOptions};
use tilewire_shmem::TempWorkspace;
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

use super::agave::{self, Ends, Peer};
use super::collect::{CollectKind, CollectShared, Collector, Live};
use super::measured::{finish_check, link_lost, window, Measured, Probe, Sample, Timing};
use super::source::{self, burst_for, Blaster, RateLimit, SourceLive};
use super::tilewire;
use super::traffic::{any_port, Traffic, LOOPBACK};
use crate::harness::cpu::{process_cpu_ns, read_tiles};
use crate::harness::pin::pin;

/// Source port of the AF_XDP blaster's frames.
const BLAST_PORT: u16 = 9101;
/// The collector stops once nothing came for this long after the source
/// stopped.
const QUIET: Duration = Duration::from_millis(300);
/// Longest the collector waits after the source stopped.
const TAIL_MAX: Duration = Duration::from_secs(3);

/// Where the packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// No socket: a generator in the pipeline.
    Memory,
    /// UDP on 127.0.0.1.
    Loopback,
    /// UDP over a veth pair between two namespaces.
    Veth,
}

impl Path {
    pub(super) fn name(self) -> &'static str {
        match self {
            Path::Memory => "memory",
            Path::Loopback => "loopback",
            Path::Veth => "veth",
        }
    }
}

/// The pipeline under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Impl {
    Tilewire,
    /// tilewire in memory on two threads (gen and dedup, verify and
    /// collect) rather than one.
    TilewireTwoThreads,
    /// tilewire with two receiving net tiles sharing the port
    /// (`count = 2`, SO_REUSEPORT), over veth.
    TilewireTwoNets,
    /// tilewire receiving with a `net-xdp` tile (DRV, copy mode) on
    /// queue 0, over veth.
    TilewireXdp,
    /// tilewire receiving with two `net-xdp` tiles, one per queue, over
    /// veth.
    TilewireXdpTwoQueues,
    /// tilewire on AF_XDP both ways: a `net-xdp` tile receives on queue 0
    /// and sends what verify readdressed, over veth.
    TilewireXdpBoth,
    /// The same with two `net-xdp` tiles, one per queue, each sending its
    /// share.
    TilewireXdpBothTwoQueues,
    Agave,
}

impl Impl {
    pub(super) fn name(self) -> &'static str {
        match self {
            Impl::Tilewire => "tilewire",
            Impl::TilewireTwoThreads => "tilewire-2t",
            Impl::TilewireTwoNets => "tilewire-2net",
            Impl::TilewireXdp => "tilewire-xdp",
            Impl::TilewireXdpTwoQueues => "tilewire-xdp-2q",
            Impl::TilewireXdpBoth => "tilewire-xdp2way",
            Impl::TilewireXdpBothTwoQueues => "tilewire-xdp2way-2q",
            Impl::Agave => "agave-style",
        }
    }

    /// tilewire's, in any layout.
    pub(super) fn is_tilewire(self) -> bool {
        !matches!(self, Impl::Agave)
    }

    /// Receives with AF_XDP (`net-xdp` tiles).
    pub(super) fn is_xdp(self) -> bool {
        matches!(
            self,
            Impl::TilewireXdp
                | Impl::TilewireXdpTwoQueues
                | Impl::TilewireXdpBoth
                | Impl::TilewireXdpBothTwoQueues
        )
    }

    /// tilewire sending by AF_XDP as well.
    pub(super) fn sends_by_xdp(self) -> bool {
        matches!(self, Impl::TilewireXdpBoth | Impl::TilewireXdpBothTwoQueues)
    }

    /// The receiving net tiles of a tilewire UDP cell.
    pub(super) fn nets(self) -> u32 {
        match self {
            Impl::TilewireTwoNets | Impl::TilewireXdpTwoQueues | Impl::TilewireXdpBothTwoQueues => {
                2
            }
            _ => 1,
        }
    }

    /// The queues of the peer's veth end the source sends on: a frame
    /// sent on b's queue q arrives on a's queue q, so each net-xdp tile's
    /// queue gets its share; one for the rest.
    pub(super) fn queues(self) -> u32 {
        match self {
            Impl::TilewireXdpTwoQueues | Impl::TilewireXdpBothTwoQueues => 2,
            _ => 1,
        }
    }
}

/// The machine a cell runs on: the veth pair (if any), the workspace
/// for the AF_XDP source's UMEM, the cpu the source is pinned to.
pub(super) struct Env {
    pub pair: Option<VethPair>,
    pub umem_ws: Option<TempWorkspace>,
    pub source_cpu: Option<core_affinity::CoreId>,
    pub engine: &'static str,
}

/// An in-memory cell.
pub(super) fn memory(
    imp: Impl,
    rate: u64,
    t: Timing,
    traffic: &Arc<Traffic>,
    fixture: &str,
    cell: usize,
) -> Result<Measured, String> {
    let live = Arc::new(Live::default());
    let burst = burst_for(rate);
    let mut m = Measured::default();
    match imp {
        Impl::Tilewire
        | Impl::TilewireTwoThreads
        | Impl::TilewireTwoNets
        | Impl::TilewireXdp
        | Impl::TilewireXdpTwoQueues
        | Impl::TilewireXdpBoth
        | Impl::TilewireXdpBothTwoQueues => {
            let shared = Arc::new(CollectShared {
                traffic: traffic.clone(),
                live: live.clone(),
                result: Mutex::new(None),
            });
            let registry = Registry::with_builtins()
                .with(CollectKind(shared.clone()))
                .map_err(|e| e.to_string())?;
            let two = imp == Impl::TilewireTwoThreads;
            let text = tilewire::memory_text(&tilewire::ws_name(cell), fixture, rate, burst, two);
            let topo = registry.parse(&text).map_err(|e| e.to_string())?;
            m.layout = tilewire::layout(&topo);
            m.source = format!("gen tile (burst {burst})");
            let pipeline = Pipeline::create(topo).map_err(|e| e.to_string())?;
            let running = pipeline
                .start(&RunOptions::new())
                .map_err(|e| e.to_string())?;
            let count = |tile: &str, c: &str| pipeline.counter(tile, c).unwrap_or(0);
            window(
                t,
                &live,
                || {
                    let sent = count("gen", "sent");
                    Sample {
                        at: Instant::now(),
                        cpu: process_cpu_ns(),
                        helpers_cpu: 0,
                        offered: sent,
                        rx: sent,
                        // SYNC: Relaxed; a progress count.
                        delivered: live.delivered.load(Ordering::Relaxed),
                        work: read_tiles(&pipeline),
                    }
                },
                &mut m,
            );
            running.stop().map_err(|e| e.to_string())?;
            m.offered = count("gen", "sent");
            m.rx = m.offered;
            m.dups_dropped = count("dedup", "dups");
            m.out = count("verify", "verified");
            let mut col = shared
                .result
                .lock()
                .map_err(|_| "the collect tile panicked")?
                .take()
                .ok_or("the collect tile left no result")?;
            finish_check(&mut m, &mut col, traffic);
        }
        Impl::Agave => {
            let col = Collector::new(traffic.clone(), live.clone());
            let peer = Peer::start(
                Ends::Memory {
                    traffic: traffic.clone(),
                    rate: RateLimit::new(rate, burst),
                    collector: col,
                },
                None,
            );
            m.layout = "4 threads, not pinned: generator, dedup, verify, collector".into();
            m.source = format!("generator thread (batches of {burst})");
            let c = peer.counts.clone();
            window(
                t,
                &live,
                || {
                    // SYNC: Relaxed; progress counts.
                    let sent = c.generated.load(Ordering::Relaxed);
                    Sample {
                        at: Instant::now(),
                        cpu: process_cpu_ns(),
                        helpers_cpu: 0,
                        offered: sent,
                        rx: sent,
                        delivered: live.delivered.load(Ordering::Relaxed),
                        work: Vec::new(),
                    }
                },
                &mut m,
            );
            let mut col = peer.stop().ok_or("the peer's collector thread failed")?;
            // SYNC: Relaxed; the threads were joined.
            m.offered = c.received.load(Ordering::Relaxed);
            m.rx = m.offered;
            m.dups_dropped = c.dups.load(Ordering::Relaxed);
            m.out = c.verified.load(Ordering::Relaxed);
            finish_check(&mut m, &mut col, traffic);
        }
    }
    m.sock_drops = None;
    m.unexplained = m.offered as i64 - (m.dups_dropped + m.delivered) as i64;
    Ok(m)
}

/// The addresses of a UDP cell.
struct Addrs {
    /// The pipeline's socket.
    pipe: SocketAddrV4,
    /// The collector's bind address (port 0: any).
    collector_ip: Ipv4Addr,
    /// Namespaces of the pipeline and of the source and collector.
    pipe_ns: Option<String>,
}

/// A UDP port free now on `ip` in the calling thread's namespace (the
/// pipeline binds it a moment later).
fn free_port(ip: Ipv4Addr) -> Result<u16, String> {
    std::net::UdpSocket::bind(SocketAddrV4::new(ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free UDP port: {e}"))
}

fn addrs(env: &Env) -> Result<Addrs, String> {
    Ok(match &env.pair {
        None => Addrs {
            pipe: SocketAddrV4::new(LOOPBACK, free_port(LOOPBACK)?),
            collector_ip: LOOPBACK,
            pipe_ns: None,
        },
        Some(p) => Addrs {
            pipe: SocketAddrV4::new(p.a().addr(), in_a(env, || free_port(p.a().addr()))??),
            collector_ip: p.b().addr(),
            pipe_ns: Some(p.a().netns().to_owned()),
        },
    })
}

/// Runs `f` in the source's namespace (b), or here on loopback.
fn in_b<R: Send>(env: &Env, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    match &env.pair {
        None => Ok(f()),
        Some(p) => p.b().run(f).map_err(|e| e.to_string()),
    }
}

/// Runs `f` in the pipeline's namespace (a), or here on loopback.
fn in_a<R: Send>(env: &Env, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    match &env.pair {
        None => Ok(f()),
        Some(p) => p.a().run(f).map_err(|e| e.to_string()),
    }
}

/// The source of a UDP cell: AF_XDP on veth (a socket on each of b's
/// first `queues` queues), else sendmmsg.
fn blaster<'w>(
    env: &'w Env,
    traffic: &Traffic,
    to: SocketAddrV4,
    queues: u32,
) -> Result<(Blaster<'w>, String), String> {
    if let (Some(pair), Some(ws)) = (&env.pair, &env.umem_ws) {
        let (a, b) = (pair.a(), pair.b());
        let cfg = XskConfig {
            ifname: b.ifname().to_string(),
            bind: BindMode::Copy,
            rx_size: 64,
            fill_size: 64,
            tx_size: 2048,
            tx_high_water: 64,
            ..XskConfig::default()
        };
        let mut xsks = Vec::with_capacity(queues as usize);
        for q in 0..queues {
            let cfg = XskConfig {
                queue: q,
                ..cfg.clone()
            };
            let name = format!("umem-{}-{q}", std::process::id());
            let _ = ws.workspace().free_named(&name);
            let frames = u32::try_from(cfg.frames_needed()).unwrap_or(u32::MAX);
            let umem = Umem::alloc_named(ws.workspace(), &name, frames)
                .map_err(|e| format!("the source's UMEM: {e}"))?;
            let (xsk, _) = b
                .run(|| Xsk::bind(umem, &cfg))
                .map_err(|e| e.to_string())?
                .map_err(|e| {
                    format!(
                        "the source's AF_XDP socket on queue {q} of {}: {e}",
                        b.ifname()
                    )
                })?;
            xsks.push(xsk);
        }
        let ends = UdpEndpoints {
            src_mac: b.mac(),
            dst_mac: a.mac(),
            src: SocketAddrV4::new(b.addr(), BLAST_PORT),
            dst: to,
        };
        let frames = source::xdp_frames(traffic, &ends)?;
        return Ok((
            Blaster::Xdp {
                xsks,
                frames,
                turn: 0,
            },
            format!(
                "AF_XDP TX (copy mode) from the peer namespace, {} flows (source ports), \
                 on {queues} queue(s)",
                source::XDP_FLOWS
            ),
        ));
    }
    let ip = match &env.pair {
        Some(p) => p.b().addr(),
        None => LOOPBACK,
    };
    let aio = in_b(env, || source::udp_socket(any_port(ip)))??;
    Ok((
        Blaster::Udp {
            aio: Box::new(aio),
            dest: to,
        },
        "sendmmsg, batches of 64".into(),
    ))
}

/// The helpers of a UDP cell, ready to run.
struct Helpers<'w> {
    blast: Blaster<'w>,
    collector_sock: tilewire_aio::udp::UdpAio,
    collector_port: u16,
    source_cpu: Option<core_affinity::CoreId>,
    rate: u64,
}

/// Runs the source and the collector around a started pipeline whose
/// socket-received count and tiles' work `probe` reads: warm-up, window, then the source
/// stops and the collector drains. Returns what the source sent and the
/// collector, with the collector socket's drops.
fn drive(
    env: &Env,
    h: &mut Helpers<'_>,
    t: Timing,
    traffic: &Arc<Traffic>,
    live: &Arc<Live>,
    probe: &dyn Fn() -> Probe,
    m: &mut Measured,
) -> Result<(u64, Collector), String> {
    let stop_source = AtomicBool::new(false);
    let stop_collector = AtomicBool::new(false);
    let source_live = SourceLive::default();
    let mut col = Collector::new(traffic.clone(), live.clone());
    let rate = RateLimit::new(h.rate, burst_for(h.rate));
    let (blast, sock, cpu) = (&mut h.blast, &mut h.collector_sock, h.source_cpu);
    let sent = std::thread::scope(|s| {
        let (ss, sc, sl, colr) = (&stop_source, &stop_collector, &source_live, &mut col);
        let tb = s.spawn(move || {
            pin(cpu);
            blast.run(traffic, rate, ss, sl)
        });
        let tc = s.spawn(move || source::collect(sock, colr, sc, QUIET, TAIL_MAX));
        window(
            t,
            live,
            || {
                let Probe { rx, work } = probe();
                Sample {
                    at: Instant::now(),
                    cpu: process_cpu_ns(),
                    // SYNC: Relaxed throughout: progress counts.
                    helpers_cpu: sl.cpu_ns.load(Ordering::Relaxed)
                        + live.cpu_ns.load(Ordering::Relaxed),
                    offered: sl.sent.load(Ordering::Relaxed),
                    rx,
                    delivered: live.delivered.load(Ordering::Relaxed),
                    work,
                }
            },
            m,
        );
        // SYNC: Relaxed; flags, no data rides on them (the joins order
        // everything after).
        ss.store(true, Ordering::Relaxed);
        let sent = tb.join().map_err(|_| "the source panicked".to_string());
        sc.store(true, Ordering::Relaxed);
        tc.join()
            .map_err(|_| "the collector panicked".to_string())?;
        sent
    })?;
    m.collector_drops = in_b(env, || source::socket_drops(h.collector_port))?;
    Ok((sent, col))
}

/// A UDP cell (loopback or veth).
pub(super) fn udp(
    env: &Env,
    imp: Impl,
    rate: u64,
    t: Timing,
    traffic: &Arc<Traffic>,
    cell: usize,
) -> Result<Measured, String> {
    let ad = addrs(env)?;
    let live = Arc::new(Live::default());
    let collector_sock = in_b(env, || source::udp_socket(any_port(ad.collector_ip)))??;
    let collector_addr = match collector_sock.local_addr() {
        std::net::SocketAddr::V4(a) => a,
        a => return Err(format!("collector bound to {a}")),
    };
    let mut m = Measured::default();
    let (blast, source_name) = blaster(env, traffic, ad.pipe, imp.queues())?;
    m.source = if rate == 0 {
        format!("{source_name}, as fast as it goes")
    } else {
        format!(
            "{source_name}, {rate} pkt/s in bursts of {}",
            burst_for(rate)
        )
    };
    let mut h = Helpers {
        blast,
        collector_sock,
        collector_port: collector_addr.port(),
        source_cpu: env.source_cpu,
        rate,
    };
    let port = ad.pipe.port();
    let drops_here = || in_a(env, || source::socket_drops(port));
    match imp {
        Impl::TilewireTwoThreads => {
            return Err("two threads is a layout of the memory cell".into());
        }
        Impl::Tilewire
        | Impl::TilewireTwoNets
        | Impl::TilewireXdp
        | Impl::TilewireXdpTwoQueues
        | Impl::TilewireXdpBoth
        | Impl::TilewireXdpBothTwoQueues => {
            let nets = imp.nets();
            let src = ad.pipe.to_string();
            let receive = if imp.is_xdp() {
                let pair = env.pair.as_ref().ok_or("AF_XDP cells need the veth pair")?;
                let (ifname, port) = (pair.a().ifname(), ad.pipe.port());
                if imp.sends_by_xdp() {
                    tilewire::Receive::XdpBoth {
                        ifname,
                        port,
                        src: &src,
                        src_mac: pair.a().mac(),
                        dst_mac: pair.b().mac(),
                    }
                } else {
                    tilewire::Receive::Xdp { ifname, port }
                }
            } else {
                tilewire::Receive::Udp
            };
            let text = tilewire::udp_text(
                &tilewire::ws_name(cell),
                &ad.pipe.to_string(),
                env.engine,
                ad.pipe_ns.as_deref(),
                &collector_addr.to_string(),
                nets,
                receive,
            );
            let topo = Registry::with_builtins()
                .parse(&text)
                .map_err(|e| e.to_string())?;
            m.layout = tilewire::layout(&topo);
            let pipeline = Pipeline::create(topo).map_err(|e| e.to_string())?;
            let running = pipeline
                .start(&RunOptions::new())
                .map_err(|e| e.to_string())?;
            let count = |tile: &str, c: &str| pipeline.counter(tile, c).unwrap_or(0);
            // The receiving net tiles: `net`, or `net.0` .. with a count.
            let net_names: Vec<String> = match nets {
                1 => vec!["net".into()],
                n => (0..n).map(|i| format!("net.{i}")).collect(),
            };
            // Their links: `raw`, or `raw.0` .. with a count.
            let rx_links: Vec<String> = match nets {
                1 => vec!["raw".into()],
                n => (0..n).map(|i| format!("raw.{i}")).collect(),
            };
            let net_sum = |c: &str| net_names.iter().map(|n| count(n, c)).sum::<u64>();
            let (sent, mut col) = drive(
                env,
                &mut h,
                t,
                traffic,
                &live,
                &|| Probe {
                    rx: net_sum("rx_pkts"),
                    work: read_tiles(&pipeline),
                },
                &mut m,
            )?;
            m.sock_drops = if imp.is_xdp() { None } else { drops_here()? };
            running.stop().map_err(|e| e.to_string())?;
            if imp.is_xdp() {
                // Dropped at the AF_XDP sockets: fill ring empty or rx ring
                // full (the kernel's XDP_STATISTICS, as the tiles last read
                // them).
                m.sock_drops = Some(net_sum("k_rx_dropped") + net_sum("k_rx_ring_full"));
            }
            m.offered = sent;
            m.rx = net_sum("rx_pkts");
            m.nets_rx = net_names.iter().map(|n| count(n, "rx_pkts")).collect();
            m.dups_dropped = count("dedup", "dups");
            // One net tile sends, or a tx tile of its own.
            let both = |c: &str| net_sum(c) + count("tx", c);
            m.out = both("tx_pkts");
            let overruns: u64 = rx_links
                .iter()
                .map(|l| link_lost(pipeline.workspace(), l, 0))
                .sum();
            // Frames the net-udp tile could not send, or a net-xdp tile's
            // socket refused.
            m.inner_lost =
                overruns + both("tx_errors") + both("tx_not_udp") + net_sum("tx_refused");
            finish_check(&mut m, &mut col, traffic);
        }
        Impl::Agave => {
            let (sock, tx_sock) = in_a(env, || {
                Ok::<_, String>((
                    agave::socket(ad.pipe)?,
                    agave::socket(any_port(*ad.pipe.ip()))?,
                ))
            })??;
            m.layout = "4 threads, not pinned: recvmmsg, dedup, verify, sendmmsg".into();
            let peer = Peer::start(
                Ends::Udp {
                    sock,
                    tx_sock,
                    dest: collector_addr,
                },
                ad.pipe_ns.clone(),
            );
            let c = peer.counts.clone();
            // SYNC: Relaxed; progress counts.
            let probe = || Probe {
                rx: c.received.load(Ordering::Relaxed),
                work: Vec::new(),
            };
            let (sent, mut col) = drive(env, &mut h, t, traffic, &live, &probe, &mut m)?;
            m.sock_drops = drops_here()?;
            let _ = peer.stop();
            m.offered = sent;
            m.rx = c.received.load(Ordering::Relaxed);
            m.dups_dropped = c.dups.load(Ordering::Relaxed);
            m.out = c.sent.load(Ordering::Relaxed);
            m.inner_lost = c.send_errors.load(Ordering::Relaxed);
            finish_check(&mut m, &mut col, traffic);
        }
    }
    // Inside: rx = dups + inner losses + out; after: out = delivered +
    // collector drops. Before the socket, only on loopback must nothing
    // go missing (veth and its backlog drop uncounted by the socket).
    let inside = m.rx as i64 - (m.dups_dropped + m.inner_lost + m.out) as i64;
    let after = m.out as i64 - (m.delivered + m.collector_drops.unwrap_or(0)) as i64;
    let before = if env.pair.is_none() {
        m.lost_before_socket() as i64
    } else {
        0
    };
    m.unexplained = inside + after + before;
    Ok(m)
}
