//! `tilewire-bench pipeline`: the path a validator runs (receive, dedup,
//! a verify-like stage that reads every payload, then send or sink),
//! tilewire's pipeline against the way Agave does it today, on the same
//! traffic in the same run.
//!
//! - **tilewire** ([`tilewire`]): a topology run by the library's
//!   runner, threads mode, in the layout that suits this machine.
//! - **agave-style** ([`agave`]): recvmmsg thread, crossbeam channels of
//!   packet batches, dedup thread, verify thread, sendmmsg thread.
//!
//! Over veth tilewire also runs scaled out and on AF_XDP:
//! `tilewire-2net`, two receiving `net-udp` tiles sharing the port
//! (`count = 2`, SO_REUSEPORT; the source sends 64 flows for the kernel to
//! spread); `tilewire-xdp`, a `net-xdp` tile receiving on queue 0 (DRV,
//! copy mode); `tilewire-xdp-2q`, two `net-xdp` tiles, one per queue of the
//! two-queue veth pair, the source sending on both of its queues. The
//! sending tile stays `net-udp` in every row; every row is compared with
//! the agave-style row of its cell, and the two-tile rows with their
//! one-tile row.
//!
//! Both verify with the same function (the verify tile's
//! [`payload_digest`](tilewire_pipeline::kinds::verify::payload_digest),
//! xxh3-64 over every byte) and dedup with the same hash and depth. The
//! traffic is the fixture mix with its duplicates ([`traffic`]), on three
//! paths: in memory (a generator inside the pipeline, a collector at its
//! end), UDP on loopback, and UDP over a veth pair between two network
//! namespaces the bench makes as root (the source and the collector in
//! one, the pipeline in the other). Each path runs at saturation (a
//! source that outruns both pipelines: AF_XDP TX on veth; on loopback a
//! sendmmsg source, which may not) and at a rate both sustain.
//!
//! What a cell measures and how every packet is accounted for: see
//! [`cells`]. The figures: packets per second delivered in the window;
//! the process's CPU time in the window, less the source's and the
//! collector's threads over UDP, per delivered packet; latency from the
//! send stamp in the payload (in memory: from the frag's `tsorig` for
//! tilewire, the batch's creation for the peer) to the collector, p50
//! and p99; and where the limit was.

mod agave;
mod cells;
mod collect;
mod measured;
mod packet;
mod source;
mod sys;
mod tilewire;
mod traffic;

use std::sync::Arc;
use std::time::Duration;

use tilewire_aio::netns::VethPair;
use tilewire_shmem::TempWorkspace;

use crate::harness::cpu::TileCost;
use crate::harness::{print_json, round, window_secs, BenchArgs};
use cells::{Env, Impl, Path};
use measured::{Measured, Timing};
use traffic::Traffic;

/// What `bench pipeline` takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub common: BenchArgs,
    /// Seconds each cell measures, after its warm-up (default 3; 1 with --quick)
    #[arg(long, value_name = "SECS", value_parser = window_secs)]
    pub duration: Option<f64>,
    /// Packets per second of the cells at a load both pipelines sustain
    #[arg(long, value_name = "PPS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    pub rate: u64,
    /// The net-udp tile's engine: auto (io_uring where allowed), uring or mmsg
    #[arg(long, value_name = "ENGINE", default_value = "auto",
          value_parser = ["auto", "uring", "mmsg"])]
    pub engine: String,
    /// Only these paths (repeat or separate with commas): memory, loopback, veth
    #[arg(long, value_name = "PATH", value_delimiter = ',',
          value_parser = ["memory", "loopback", "veth"])]
    pub path: Vec<String>,
    /// Only this load: saturation, half (half of saturation, after it), or the sustained --rate
    #[arg(long, value_name = "LOAD", value_parser = ["saturation", "half", "rate"])]
    pub load: Option<String>,
}

/// One cell of the table: a path and a load, both pipelines.
struct Row {
    path: Path,
    /// 0: saturation.
    rate: u64,
    /// The rate is half what the slower of tilewire and the peer
    /// delivered at saturation on this path.
    half: bool,
    imp: Impl,
    m: Measured,
}

impl Row {
    /// The load, for tables and notes.
    fn load(&self) -> String {
        if self.half {
            format!("half:{}k", self.rate / 1000)
        } else {
            load(self.rate)
        }
    }
}

/// A load a path is run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// As fast as the source goes.
    Saturation,
    /// Half what the slower pipeline delivered at saturation: a load both
    /// sustain, where their latency compares.
    Half,
    /// `--rate`.
    Rate(u64),
}

/// Half the delivered rate of the slower of tilewire and the peer at
/// saturation on `path`, in whole thousands a second; `None` without both.
fn half_rate(rows: &[Row], path: Path) -> Option<u64> {
    let sat = |imp: Impl| {
        rows.iter()
            .find(|r| r.path == path && r.rate == 0 && r.imp == imp)
            .map(|r| r.m.rate())
    };
    let slower = sat(Impl::Tilewire)?.min(sat(Impl::Agave)?);
    let half = (slower / 2.0 / 1000.0).round() as u64 * 1000;
    (half >= 1000).then_some(half)
}

/// Runs the benchmark and prints it.
///
/// # Errors
/// A cell that could not run, or delivered packets that failed their
/// check.
pub(crate) fn run(args: &Args) -> Result<(), String> {
    let opts = args.common;
    let window = args.duration.unwrap_or(if opts.quick { 1.0 } else { 3.0 });
    let t = Timing {
        warm: Duration::from_millis(if opts.quick { 300 } else { 700 }),
        window: Duration::from_secs_f64(window),
    };
    let engine: &'static str = match args.engine.as_str() {
        "uring" => "uring",
        "mmsg" => "mmsg",
        _ => "auto",
    };
    let traffic = Arc::new(Traffic::mix()?);
    let gen_file = traffic.gen_file()?;
    let fixture = gen_file.0.to_string_lossy().into_owned();
    let cores = crate::harness::pin::Cores::detect();
    let source_cpu = cores.first;
    let mut notes = Vec::new();
    if let Some(c) = crate::harness::layout::caches(&cores) {
        notes.push(format!("caches: {c} (the source is pinned to the first)"));
    }
    let wanted = |p: Path| args.path.is_empty() || args.path.iter().any(|a| a == p.name());
    // Two queues a side: the AF_XDP cells with a net tile per queue.
    let made = wanted(Path::Veth).then(|| VethPair::with_queues("bpipe", 2));
    let pair = match made {
        None => None,
        Some(Ok(p)) => {
            notes.push(format!(
                "veth: {} ({}, {}) <-> {} ({}, {}): the pipeline in the first namespace, \
                 source and collector in the second",
                p.a().ifname(),
                p.a().netns(),
                p.a().addr(),
                p.b().ifname(),
                p.b().netns(),
                p.b().addr()
            ));
            Some(p)
        }
        Some(Err(e)) => {
            notes.push(format!(
                "veth: skipped, memory and loopback only: cannot make a veth pair between \
                 namespaces (needs root): {e}"
            ));
            None
        }
    };
    let umem_ws = match &pair {
        Some(_) => Some(
            TempWorkspace::new("bpipe", 64 << 20)
                .map_err(|e| format!("the workspace of the source's UMEM: {e}"))?,
        ),
        None => None,
    };
    let veth_env = Env {
        pair,
        umem_ws,
        source_cpu,
        engine,
    };
    let lo_env = Env {
        pair: None,
        umem_ws: None,
        source_cpu,
        engine,
    };
    let mut paths = vec![Path::Memory, Path::Loopback];
    if veth_env.pair.is_some() {
        paths.push(Path::Veth);
    }
    // Half of saturation needs the saturation cells first.
    let loads: &[Load] = match args.load.as_deref() {
        Some("saturation") => &[Load::Saturation],
        Some("half") => &[Load::Saturation, Load::Half],
        Some(_) => &[Load::Rate(args.rate)],
        None => &[Load::Saturation, Load::Half, Load::Rate(args.rate)],
    };
    let plan: Vec<(Path, Load)> = paths
        .into_iter()
        .filter(|&p| wanted(p))
        .flat_map(|p| loads.iter().map(move |&l| (p, l)))
        .collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut cell = 0;
    for (path, load_of) in plan {
        let (rate, half) = match load_of {
            Load::Saturation => (0, false),
            Load::Rate(r) => (r, false),
            Load::Half => match half_rate(&rows, path) {
                Some(r) => (r, true),
                None => {
                    notes.push(format!(
                        "{}: no half-saturation cells: a saturation cell is missing",
                        path.name()
                    ));
                    continue;
                }
            },
        };
        // Two receiving net tiles need flows to spread: the veth source has them.
        let imps: &[Impl] = match path {
            Path::Veth => &[
                Impl::Tilewire,
                Impl::TilewireTwoNets,
                Impl::TilewireXdp,
                Impl::TilewireXdpTwoQueues,
                Impl::TilewireXdpBoth,
                Impl::TilewireXdpBothTwoQueues,
                Impl::Agave,
            ],
            Path::Memory => &[Impl::Tilewire, Impl::TilewireTwoThreads, Impl::Agave],
            Path::Loopback => &[Impl::Tilewire, Impl::Agave],
        };
        for &imp in imps {
            cell += 1;
            let r = match path {
                Path::Memory => cells::memory(imp, rate, t, &traffic, &fixture, cell),
                Path::Loopback => cells::udp(&lo_env, imp, rate, t, &traffic, cell),
                Path::Veth => cells::udp(&veth_env, imp, rate, t, &traffic, cell),
            };
            match r {
                Ok(m) => rows.push(Row {
                    path,
                    rate,
                    half,
                    imp,
                    m,
                }),
                Err(e) => notes.push(format!(
                    "{} {} {}: no row: {e}",
                    path.name(),
                    load(rate),
                    imp.name()
                )),
            }
        }
    }
    drop(veth_env);
    drop(gen_file);
    let failures = checks(&rows, &mut notes);
    add_notes(&rows, source_cpu, &traffic, t, &mut notes);
    print(&rows, &notes, &opts);
    if failures.is_empty() {
        Ok(())
    } else {
        for f in &failures {
            eprintln!("check failed: {f}");
        }
        Err(format!("{} cells failed their checks", failures.len()))
    }
}

fn load(rate: u64) -> String {
    if rate == 0 {
        "saturation".into()
    } else {
        format!("{}k/s", rate / 1000)
    }
}

/// Where a cell's figure was limited.
fn limit(r: &Row) -> &'static str {
    let m = &r.m;
    if r.path == Path::Memory {
        return "pipeline";
    }
    let lost = m.lost();
    if (lost as f64) < 0.001 * m.offered.max(1) as f64 {
        return "source";
    }
    let pipeline = m.sock_drops.unwrap_or(0) + m.inner_lost;
    let kernel = m.lost_before_socket();
    let collector = m.collector_drops.unwrap_or(0);
    if collector > pipeline.max(kernel) {
        "collector"
    } else if kernel > pipeline {
        "kernel"
    } else {
        "pipeline"
    }
}

/// Every row's checks: packets wrong or twice, packets no counter
/// explains, duplicates dropped other than expected in a lossless cell.
fn checks(rows: &[Row], notes: &mut Vec<String>) -> Vec<String> {
    let mut failures = Vec::new();
    for r in rows {
        let m = &r.m;
        let what = format!("{} {} {}", r.path.name(), r.load(), r.imp.name());
        if m.bad > 0 {
            failures.push(format!(
                "{what}: {} delivered packets wrong, twice ({}) or never sent",
                m.bad, m.twice
            ));
        }
        if m.unexplained != 0 {
            notes.push(format!(
                "{what}: {} packets no counter explains",
                m.unexplained
            ));
        }
        let lossless = m.lost() == 0 && m.offered > 0;
        if lossless && m.dups_dropped != m.dups_expected {
            failures.push(format!(
                "{what}: dedup dropped {} duplicates, the traffic held {}",
                m.dups_dropped, m.dups_expected
            ));
        }
    }
    failures
}

fn peer_of<'a>(rows: &'a [Row], r: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|x| x.path == r.path && x.rate == r.rate && x.half == r.half && x.imp == Impl::Agave)
}

/// tilewire's rate and CPU per packet against the peer's, same cell.
fn ratios(rows: &[Row], r: &Row) -> Option<(f64, f64)> {
    if !r.imp.is_tilewire() {
        return None;
    }
    let p = peer_of(rows, r)?;
    Some((
        r.m.rate() / p.m.rate().max(1e-9),
        r.m.cpu_per_pkt() / p.m.cpu_per_pkt().max(1e-9),
    ))
}

fn add_notes(
    rows: &[Row],
    source_cpu: Option<core_affinity::CoreId>,
    traffic: &Traffic,
    t: Timing,
    notes: &mut Vec<String>,
) {
    notes.insert(
        0,
        format!(
            "traffic: the fixture mix, {} datagrams a pass ({} duplicates), each pass new \
             to a dedup; window {:.1} s after {} ms of warm-up, one run per cell, tilewire \
             first",
            traffic.len(),
            traffic.dups_per_pass,
            t.window.as_secs_f64(),
            t.warm.as_millis()
        ),
    );
    let mut layouts: Vec<String> = Vec::new();
    for r in rows {
        let l = format!("{} {}: {}", r.imp.name(), r.path.name(), r.m.layout);
        let key = format!("{} {}", r.imp.name(), r.m.layout);
        if !layouts
            .iter()
            .any(|x| x.ends_with(&r.m.layout) && x.starts_with(r.imp.name()))
        {
            let _ = key;
            layouts.push(l);
        }
    }
    notes.extend(layouts.into_iter().map(|l| format!("layout: {l}")));
    let mut sources: Vec<String> = Vec::new();
    for r in rows {
        let s = format!("{} {}: {}", r.path.name(), r.load(), r.m.source);
        if r.imp.is_tilewire() && !sources.contains(&s) {
            sources.push(s);
        }
    }
    notes.extend(sources.into_iter().map(|s| format!("source: {s}")));
    notes.push(match source_cpu {
        Some(c) => format!(
            "pinned: the UDP source on cpu {}; nothing else (the pipelines' threads and the \
             collector go where the kernel puts them)",
            c.id
        ),
        None => "pinned: nothing (fewer than 2 cores)".into(),
    });
    notes.push(
        "columns: offered = what the source got the kernel to take (in memory, what the \
         generator made); sock rx = what the pipeline took from its socket; delivered = \
         unique packets that reached the collector; sock drop = the pipeline socket's kernel \
         drops (buffer full) over the cell; other = lost elsewhere over the cell (before the \
         socket: the veth's backlog; inside: send errors); dups = duplicates dropped / \
         duplicates sent; ns/pkt = \
         process CPU in the window (less source and collector threads) per delivered packet; \
         limit: source = the pipeline kept up, so the rate is the source's; pipeline = it \
         dropped at its socket or inside; kernel = lost before the socket"
            .into(),
    );
    for r in rows {
        if r.rate > 0 && r.m.offered_rate() < 0.9 * r.rate as f64 {
            notes.push(format!(
                "{} {} {}: the source offered {:.1}k/s of the {}k/s asked: its core was \
                 taken by the pipeline's threads",
                r.path.name(),
                r.load(),
                r.imp.name(),
                r.m.offered_rate() / 1e3,
                r.rate / 1000
            ));
        }
    }
    for r in rows {
        let Some((x, c)) = ratios(rows, r) else {
            continue;
        };
        let goal = if r.rate == 0 {
            format!("rate {x:.2}x (goal at saturation: 2x, {})", met(x >= 2.0))
        } else if r.half {
            let p99 = |row: &Row| row.m.latency.map(|l| l.1);
            match (p99(r), peer_of(rows, r).and_then(p99)) {
                (Some(a), Some(b)) => format!(
                    "p99 latency {:.0} us against {:.0} us (goal at half of saturation: no \
                     more than the peer's, {})",
                    a as f64 / 1e3,
                    b as f64 / 1e3,
                    met(a <= b)
                ),
                _ => "p99 latency: not measured".into(),
            }
        } else {
            format!(
                "CPU/pkt {c:.2}x (goal at a sustained load: 0.5x, {})",
                met(c <= 0.5)
            )
        };
        notes.push(format!(
            "goal {} {}: {} against agave-style: {goal}",
            r.path.name(),
            r.load(),
            r.imp.name()
        ));
    }
    add_two_net_notes(rows, notes);
}

/// What two receiving net tiles did against one, same cell.
fn add_two_net_notes(rows: &[Row], notes: &mut Vec<String>) {
    for r in rows.iter().filter(|r| r.imp.nets() > 1) {
        let (single, how, bound) = if r.imp.is_xdp() {
            (
                Impl::TilewireXdp,
                "two net-xdp tiles, one per queue, each its socket in the one program,",
                "the kernel's receive work for both queues (veth's NAPI, the XDP run, the \
                 copy into each UMEM) runs in the source's softirq on one cpu",
            )
        } else {
            (
                Impl::Tilewire,
                "two net tiles sharing the port (SO_REUSEPORT)",
                "the kernel's UDP receive work for both sockets runs in the source's \
                 softirq on one cpu",
            )
        };
        let Some(one) = rows
            .iter()
            .find(|o| o.path == r.path && o.rate == r.rate && o.half == r.half && o.imp == single)
        else {
            continue;
        };
        let shares: Vec<String> =
            r.m.nets_rx
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    format!(
                        "net.{i} {n} ({:.0}%)",
                        100.0 * *n as f64 / r.m.rx.max(1) as f64
                    )
                })
                .collect();
        notes.push(format!(
            "{} {} {}: {how} took {} from their sockets; against {}: {:.2}x the delivered \
             rate, {:.2}x the CPU per packet. Bounded here: {bound}, and the pipeline's \
             tiles share the other (see its layout)",
            r.path.name(),
            r.load(),
            r.imp.name(),
            shares.join(", "),
            single.name(),
            r.m.rate() / one.m.rate().max(1e-9),
            r.m.cpu_per_pkt() / one.m.cpu_per_pkt().max(1e-9),
        ));
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

/// One line of `--json`.
#[derive(serde::Serialize)]
struct JsonRow {
    bench: &'static str,
    path: &'static str,
    load: String,
    rate_limit_pps: u64,
    #[serde(rename = "impl")]
    imp: &'static str,
    delivered_pps: u64,
    offered_pps: u64,
    socket_rx_pps: u64,
    cpu_ns_per_pkt: f64,
    p50_ns: Option<u64>,
    p99_ns: Option<u64>,
    offered: u64,
    received: u64,
    socket_drops: Option<u64>,
    lost_inside: u64,
    lost_before_socket: u64,
    collector_drops: Option<u64>,
    dups_dropped: u64,
    dups_sent: u64,
    delivered: u64,
    bad: u64,
    unexplained: i64,
    limit: &'static str,
    rate_vs_agave: Option<f64>,
    cpu_vs_agave: Option<f64>,
    source: String,
    layout: String,
    /// tilewire: each tile's work per delivered packet (ns) and busy share
    /// of the window; empty for the peer.
    tiles: Vec<TileCost>,
    quick: bool,
}

fn print(rows: &[Row], notes: &[String], opts: &BenchArgs) {
    if opts.json {
        for r in rows {
            let m = &r.m;
            let x = ratios(rows, r);
            print_json(&JsonRow {
                bench: "pipeline",
                path: r.path.name(),
                load: r.load(),
                rate_limit_pps: r.rate,
                imp: r.imp.name(),
                delivered_pps: m.rate().round() as u64,
                offered_pps: m.offered_rate().round() as u64,
                socket_rx_pps: m.rx_rate().round() as u64,
                cpu_ns_per_pkt: round(m.cpu_per_pkt(), 1),
                p50_ns: m.latency.map(|l| l.0),
                p99_ns: m.latency.map(|l| l.1),
                offered: m.offered,
                received: m.rx,
                socket_drops: m.sock_drops,
                lost_inside: m.inner_lost,
                lost_before_socket: if r.path == Path::Memory {
                    0
                } else {
                    m.lost_before_socket()
                },
                collector_drops: m.collector_drops,
                dups_dropped: m.dups_dropped,
                dups_sent: m.dups_expected,
                delivered: m.delivered,
                bad: m.bad,
                unexplained: m.unexplained,
                limit: limit(r),
                rate_vs_agave: x.map(|x| round(x.0, 3)),
                cpu_vs_agave: x.map(|x| round(x.1, 3)),
                source: m.source.clone(),
                layout: m.layout.clone(),
                tiles: m.tiles.clone(),
                quick: opts.quick,
            });
        }
        for n in notes {
            eprintln!("note: {n}");
        }
        return;
    }
    println!(
        "tilewire-bench pipeline ({}): receive -> dedup -> verify (xxh3 over every payload) \
         -> send or sink; tilewire against an Agave-style pipeline; every packet checked",
        if opts.quick { "quick" } else { "full" }
    );
    for n in notes {
        println!("note: {n}");
    }
    println!();
    println!(
        "{:<9} {:<10} {:<15} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>7} {:>7} {:>8} {:<9} {:>6} {:>6}",
        "path", "load", "impl", "offered/s", "sock rx/s", "deliver/s", "sock drop", "other",
        "dups", "ns/pkt", "p50 us", "p99 us", "limit", "x rate", "x cpu"
    );
    let k = |v: f64| format!("{:.1}k", v / 1e3);
    let us = |ns: u64| format!("{:.0}", ns as f64 / 1e3);
    for r in rows {
        let m = &r.m;
        let x = ratios(rows, r);
        let other = m.inner_lost
            + if r.path == Path::Memory {
                0
            } else {
                m.lost_before_socket()
            };
        println!(
            "{:<9} {:<10} {:<15} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>7.0} {:>7} {:>8} {:<9} {:>6} {:>6}",
            r.path.name(),
            r.load(),
            r.imp.name(),
            k(m.offered_rate()),
            k(m.rx_rate()),
            k(m.rate()),
            m.sock_drops.map_or("-".into(), |d| d.to_string()),
            other,
            format!("{}/{}", m.dups_dropped, m.dups_expected),
            m.cpu_per_pkt(),
            m.latency.map_or("-".into(), |l| us(l.0)),
            m.latency.map_or("-".into(), |l| us(l.1)),
            limit(r),
            x.map_or(String::new(), |x| format!("{:.2}", x.0)),
            x.map_or(String::new(), |x| format!("{:.2}", x.1)),
        );
    }
    println!();
    println!(
        "where tilewire's time goes, per cell: each tile's work (its loop's busy iterations) \
         per delivered packet, and its busy share of the window (a tile near 100% is the limit)"
    );
    for r in rows.iter().filter(|r| !r.m.tiles.is_empty()) {
        let tiles: Vec<String> = r.m.tiles.iter().map(TileCost::short).collect();
        let (by_chunk, copied) =
            r.m.tiles
                .iter()
                .fold((0, 0), |(b, c), t| (b + t.by_chunk, c + t.copied));
        println!(
            "  {:<9} {:<10} {:<19} {}; forwarded by chunk {by_chunk}, by a copy {copied}",
            r.path.name(),
            r.load(),
            r.imp.name(),
            tiles.join(", ")
        );
    }
}
