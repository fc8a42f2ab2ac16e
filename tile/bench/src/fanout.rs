//! `tilewire-bench fanout`: Turbine-style fan-out, one shred-sized
//! payload (1 228 B) to 200 destinations, the addresses of a peer
//! namespace across a veth pair, by four senders in one run:
//!
//! - **sendmmsg** ([`peers::mmsg`]): how Agave sent before XDP,
//!   `solana-streamer`'s `batch_send` of one payload to many addresses;
//! - **agave-xdp-style** ([`peers::agave_xdp`]): one AF_XDP TX thread
//!   writing each frame into its UMEM, written as agave-xdp does it;
//! - **xdp-multibuf**: the same sender bound with `XDP_USE_SG`, each
//!   packet a 42-byte header frame chained (`XDP_PKT_CONTD`) to the
//!   shred's one payload frame, which is freed when the completion of its
//!   last packet returns: whether AF_XDP multi-buffer TX pays for
//!   fan-out (the table says it in a line of its own);
//! - **tilewire** ([`tilewire`]): `retransmit -> net-xdp` with a netlink
//!   tile, one net tile (queue 0) and two (a tile per queue).
//!
//! The peer namespace counts what reaches each address ([`peer`]); each
//! cell saturates for a window ([`cells`]): packets per second delivered,
//! CPU per delivered packet, losses per destination and where they went,
//! frames to a wrong address. Needs root (it makes the veth pair).

mod cells;
mod peer;
mod peers;
mod sys;
mod tilewire;

use std::time::Duration;

use tilewire_aio::netns::VethPair;
use tilewire_shmem::TempWorkspace;

use crate::harness::cpu::TileCost;
use crate::harness::layout;
use crate::harness::pin::Cores;
use crate::harness::{print_json, round, window_secs, BenchArgs};
use cells::{Impl, Measured, Timing};
use peer::{Net, DESTS, SHRED};

/// What `bench fanout` takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub common: BenchArgs,
    /// Seconds each cell measures, after its warm-up (default 3; 1 with --quick)
    #[arg(long, value_name = "SECS", value_parser = window_secs)]
    pub duration: Option<f64>,
}

/// The contestants, in the order they run.
const IMPLS: [Impl; 5] = [
    Impl::Mmsg,
    Impl::AgaveXdp,
    Impl::AgaveXdpMultiBuf,
    Impl::Tilewire(1),
    Impl::Tilewire(2),
];

/// The goals of issue 25 against each peer: (least rate ratio, most CPU
/// ratio).
const GOAL_MMSG: (f64, f64) = (2.0, 0.5);
const GOAL_AGAVE: (f64, f64) = (1.0, 0.8);

/// One row of `--json`.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    bench: &'static str,
    #[serde(rename = "impl")]
    imp: &'a str,
    queues: u32,
    payload: usize,
    destinations: usize,
    pkts_per_s: f64,
    cpu_ns_per_pkt: f64,
    sent: u64,
    received: u64,
    lost: i64,
    lost_per_dest_min: i64,
    lost_per_dest_max: i64,
    socket_drops: u64,
    veth_tx_drops: u64,
    veth_rx_drops: u64,
    send_failed: u64,
    send_failed_why: &'a str,
    wrong_address: u64,
    bad: u64,
    unexplained: i64,
    syscalls_per_pkt: f64,
    vs_sendmmsg_rate: Option<f64>,
    vs_sendmmsg_cpu: Option<f64>,
    vs_agave_xdp_rate: Option<f64>,
    vs_agave_xdp_cpu: Option<f64>,
    tiles: &'a [TileCost],
    layout: &'a str,
}

/// `a / b` of rate and of CPU per packet, if `b` ran.
fn ratios(a: &Measured, b: Option<&Measured>) -> Option<(f64, f64)> {
    let b = b?;
    Some((
        a.rate() / b.rate().max(1e-9),
        a.cpu_per_pkt() / b.cpu_per_pkt().max(1e-9),
    ))
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.3} M", v / 1e6)
    } else {
        format!("{:.1} k", v / 1e3)
    }
}

/// Runs the benchmark and prints it.
///
/// # Errors
/// Not root (no veth pair), or a cell that failed its checks.
pub(crate) fn run(args: &Args) -> Result<(), String> {
    let opts = args.common;
    let window = args.duration.unwrap_or(if opts.quick { 1.0 } else { 3.0 });
    let t = Timing {
        warm: Duration::from_millis(if opts.quick { 300 } else { 500 }),
        window: Duration::from_secs_f64(window),
    };
    let pair = VethPair::with_queues("bfan", cells::QUEUES)
        .map_err(|e| format!("cannot make a veth pair between namespaces (needs root): {e}"))?;
    let net = Net::new(pair)?;
    let ws = TempWorkspace::new("bfan", crate::xdp::roles::WS_BYTES)
        .map_err(|e| format!("the workspace of the counter's UMEMs: {e}"))?;
    let cores = Cores::detect();
    let mut rows: Vec<(Impl, Measured)> = Vec::new();
    let mut failures = Vec::new();
    for (cell, imp) in IMPLS.into_iter().enumerate() {
        match cells::run(imp, &net, ws.workspace(), &cores, t, cell) {
            Ok(m) => rows.push((imp, m)),
            Err(e) => failures.push(format!("{}: {e}", imp.name())),
        }
    }
    let (mmsg, agave) = (find_row(&rows, Impl::Mmsg), find_row(&rows, Impl::AgaveXdp));
    let mut bad = Vec::new();
    for (imp, m) in &rows {
        if m.counts.wrong > 0 || m.counts.bad > 0 || m.unexplained() != 0 {
            bad.push(format!(
                "{}: {} to a wrong address, {} bad, {} lost unexplained",
                imp.name(),
                m.counts.wrong,
                m.counts.bad,
                m.unexplained()
            ));
        }
    }
    if opts.json {
        for (imp, m) in &rows {
            let (lmin, lmax, lost) = m.losses();
            let vs_m = ratios(m, mmsg).filter(|_| *imp != Impl::Mmsg);
            let vs_a = ratios(m, agave).filter(|_| *imp != Impl::AgaveXdp);
            print_json(&JsonRow {
                bench: "fanout",
                imp: &imp.name(),
                queues: imp.queues(),
                payload: SHRED,
                destinations: DESTS,
                pkts_per_s: m.rate().round(),
                cpu_ns_per_pkt: round(m.cpu_per_pkt(), 1),
                sent: m.sent_total(),
                received: m.counts.good(),
                lost,
                lost_per_dest_min: lmin,
                lost_per_dest_max: lmax,
                socket_drops: m.counts.socket_drops,
                veth_tx_drops: m.veth_tx_drops,
                veth_rx_drops: m.veth_rx_drops,
                send_failed: m.sent.failed,
                send_failed_why: &m.sent.why,
                wrong_address: m.counts.wrong,
                bad: m.counts.bad,
                unexplained: m.unexplained(),
                syscalls_per_pkt: round(m.sent.calls as f64 / m.sent_total().max(1) as f64, 4),
                vs_sendmmsg_rate: vs_m.map(|r| round(r.0, 3)),
                vs_sendmmsg_cpu: vs_m.map(|r| round(r.1, 3)),
                vs_agave_xdp_rate: vs_a.map(|r| round(r.0, 3)),
                vs_agave_xdp_cpu: vs_a.map(|r| round(r.1, 3)),
                tiles: &m.tiles,
                layout: &m.layout,
            });
        }
    } else {
        print_table(&rows, mmsg, agave);
        print_notes(&net, &cores, &rows, t);
    }
    for f in &failures {
        eprintln!("left out: {f}");
    }
    match (failures.is_empty(), bad.is_empty()) {
        (true, true) => Ok(()),
        _ => Err([failures, bad].concat().join("; ")),
    }
}

/// The row of `imp`, if it ran.
fn find_row(rows: &[(Impl, Measured)], imp: Impl) -> Option<&Measured> {
    rows.iter().find(|(r, _)| *r == imp).map(|(_, m)| m)
}

fn print_table(rows: &[(Impl, Measured)], mmsg: Option<&Measured>, agave: Option<&Measured>) {
    println!(
        "fanout: one {SHRED} B payload to {DESTS} destinations over veth, each sender at saturation"
    );
    println!(
        "{:<16} {:>11} {:>8} {:>10} {:>10} {:>11} {:>7} {:>6} {:>6} {:>6} {:>13} {:>13}",
        "impl",
        "pkt/s",
        "ns/pkt",
        "sent",
        "received",
        "lost/dest",
        "sock",
        "veth",
        "wrong",
        "unexp",
        "vs sendmmsg",
        "vs agave-xdp"
    );
    for (imp, m) in rows {
        let (lmin, lmax, _) = m.losses();
        let vs = |r: Option<(f64, f64)>| r.map_or("-".into(), |(a, b)| format!("{a:.2}x/{b:.2}x"));
        let vs_m = ratios(m, mmsg).filter(|_| *imp != Impl::Mmsg);
        let vs_a = ratios(m, agave).filter(|_| *imp != Impl::AgaveXdp);
        println!(
            "{:<16} {:>11} {:>8.0} {:>10} {:>10} {:>11} {:>7} {:>6} {:>6} {:>6} {:>13} {:>13}",
            imp.name(),
            rate(m.rate()),
            m.cpu_per_pkt(),
            m.sent_total(),
            m.counts.good(),
            format!("{lmin}..{lmax}"),
            m.counts.socket_drops,
            m.veth_tx_drops + m.veth_rx_drops,
            m.counts.wrong,
            m.unexplained(),
            vs(vs_m),
            vs(vs_a)
        );
    }
    println!("(vs: the rate's ratio / the CPU per packet's ratio)");
    for (imp, m) in rows.iter().filter(|(i, _)| matches!(i, Impl::Tilewire(_))) {
        let tiles: Vec<String> = m.tiles.iter().map(TileCost::short).collect();
        println!(
            "  where the time goes, {}: {}",
            imp.name(),
            tiles.join(", ")
        );
        for (peer, goal, against) in [
            ("sendmmsg", GOAL_MMSG, mmsg),
            ("agave-xdp-style", GOAL_AGAVE, agave),
        ] {
            if let Some((r, c)) = ratios(m, against) {
                let met = r >= goal.0 && c <= goal.1;
                println!(
                    "  goal, {}: >= {:.1}x {peer}'s pkt/s at <= {:.1}x its CPU/pkt: {:.2}x at {:.2}x, {}",
                    imp.name(),
                    goal.0,
                    goal.1,
                    r,
                    c,
                    if met { "met" } else { "not met" }
                );
            }
        }
    }
    if let (Some(mb), Some(single)) = (find_row(rows, Impl::AgaveXdpMultiBuf), agave) {
        if let Some((r, c)) = ratios(mb, Some(single)) {
            println!(
                "  multi-buffer TX (XDP_USE_SG, a 42 B header frame chained to the shred's one \
                 payload frame) against one whole frame per packet, same sender: {r:.2}x the \
                 rate at {c:.2}x the CPU/pkt: {}",
                if r >= 1.05 && c <= 0.95 {
                    "it pays here"
                } else {
                    "it does not pay here: in copy mode the kernel copies every \
                     fragment into an skb page of its own, so the copy saved in user space \
                     comes back in the kernel, with a second descriptor to walk"
                }
            );
        }
    }
    let wrong: u64 = rows.iter().map(|(_, m)| m.counts.wrong).sum();
    let unexplained: i64 = rows.iter().map(|(_, m)| m.unexplained().abs()).sum();
    println!(
        "  goal: 0 packets to a wrong address ({wrong}), 0 unexplained losses ({unexplained}): {}",
        if wrong == 0 && unexplained == 0 {
            "met"
        } else {
            "not met"
        }
    );
}

fn print_notes(net: &Net, cores: &Cores, rows: &[(Impl, Measured)], t: Timing) {
    let (a, b) = (net.pair.a(), net.pair.b());
    println!(
        "veth: {} ({}, {}) -> {} ({}, {}), {} queues; destinations {}..{} on b, routed via {}",
        a.ifname(),
        a.netns(),
        a.addr(),
        b.ifname(),
        b.netns(),
        b.addr(),
        cells::QUEUES,
        net.dests.first().map_or(String::new(), |d| d.to_string()),
        net.dests.last().map_or(String::new(), |d| d.to_string()),
        b.addr()
    );
    println!(
        "window: {:.1} s after {:.1} s of warm-up; b counts at XDP (an AF_XDP socket per queue, \
         DRV mode) on one thread, pinned to the second cpu, its CPU left out",
        t.window.as_secs_f64(),
        t.warm.as_secs_f64()
    );
    println!(
        "{}",
        layout::report(cores, &cores.describe("peer senders", "b's counter"))
    );
    for (imp, m) in rows {
        println!("  {:<16} {}", imp.name(), m.layout);
    }
    for (imp, m) in rows.iter().filter(|(_, m)| m.sent.failed > 0) {
        println!(
            "  {} counted {} packets not sent: {}",
            imp.name(),
            m.sent.failed,
            if m.sent.why.is_empty() {
                "refused by the kernel"
            } else {
                &m.sent.why
            }
        );
    }
}
