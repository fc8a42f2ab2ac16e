//! `tilewire-bench udp`: UDP packet I/O of tilewire's aio engines side by
//! side with quinn-udp (what a Rust QUIC stack uses), over a veth pair
//! between two network namespaces (a real device path: ARP, qdisc, the
//! veth's receive queue) and over loopback, for 64- and 1232-byte
//! packets.
//!
//! Three measurements per implementation, path and size:
//! - **TX rate**: the implementation sends as fast as it can from one
//!   thread on core 0 for a fixed time; a plain recvmmsg loop (tilewire's
//!   mmsg engine) on core 1 drains and checks. Reported: packets per
//!   second the kernel took from the sender, what arrived, and the
//!   sender's CPU time per packet (from `CLOCK_THREAD_CPUTIME_ID`,
//!   which is `CLOCK_THREAD_CPUTIME_ID`). On loopback and veth the kernel
//!   delivers within the send call, so the sender's CPU includes the
//!   receive path's softirq work: the same for every implementation.
//! - **RX rate**: a fixed blaster on core 0, as fast as this host sends:
//!   quinn-udp with GSO (up to 64 segments per `sendmsg`, the
//!   quinn-udp-gso TX row), or the mmsg engine (batches of 64) where GSO
//!   is unavailable (a note says so); the implementation receives on
//!   core 1. The blaster outruns the receiver, so the receiver is the
//!   bottleneck and its socket buffer overflows: drops (sent - received)
//!   are expected. Reported: packets per second the receiver took in the
//!   blast window (from start until it saw the blaster done: its
//!   capacity), the drops, and the receiver's CPU time per packet in that
//!   window. A receiver that still dropped nothing kept up with the
//!   blaster: its rate is then the blaster's and its CPU per packet is
//!   busy-poll wall time; a note names it. This can happen because on
//!   loopback and veth the kernel's receive path (IP and UDP input, GSO
//!   segmentation, one socket enqueue per packet) runs in the blaster's
//!   softirq on core 0, so the blaster pays for it. Each GSO segment
//!   arrives as its own datagram (the kernel splits the GSO packet before
//!   the socket) except at quinn-udp, whose socket asks for GRO and gets
//!   each GSO send whole; it splits them by their stride, and every packet
//!   is checked either way. That skips the per-packet kernel work on both
//!   sides, so quinn-udp's RX row is not comparable to the others' (a
//!   note says so).
//! - **RTT**: one packet bounced between two sockets of the same
//!   implementation (client on core 0, echo on core 1), both busy-polling.
//!
//! Every packet received anywhere is checked (length, pattern, source
//! address, sequence number not seen before and actually sent); any
//! mismatch is printed and makes the command fail.
//!
//! Rounds: the implementations take turns within each round so machine
//! noise hits them alike. Rates: the best round (its CPU and drop figures
//! with it), as `bench link` does. RTT: p50 and p99 of each round, the
//! median round shown.
//!
//! quinn-udp-gso only changes the send path (up to 64 segments per
//! `sendmsg`, fewer where 64 would pass 65 000 bytes), so it has a TX
//! row only. An implementation that cannot be made on this host (the
//! io_uring engine where io_uring is denied, or before it was built; GSO
//! missing) is left out with a note saying why.

mod endpoint;
mod measure;

use crate::harness::{print_json, round, BenchArgs};
use std::time::Duration;

use tilewire_aio::netns::VethPair;

use crate::harness::layout;
use crate::harness::pin::Cores;
use crate::harness::stats::{keep_best, RoundPercentiles};

use endpoint::{Impl, SOCK_BUF};
use measure::{Errors, Host, RxRun, TxRun};

const SIZES: [usize; 2] = [64, 1232];

/// One row: an implementation on one path at one size.
struct Row {
    path: &'static str,
    sz: usize,
    imp: Impl,
    tx: Option<TxRun>,
    rx: Option<RxRun>,
    rtt: Option<(u64, u64, u64)>,
}

/// Runs every measurement of `host` into `rows`; implementations that
/// cannot be made are noted once and left out.
fn bench_host(
    host: &Host,
    impls: &[Impl],
    opts: &BenchArgs,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    errs: &mut Errors,
) {
    let (rounds, dur, rtt_n) = if opts.quick {
        (3, Duration::from_millis(150), 3_000u64)
    } else {
        (5, Duration::from_millis(500), 20_000)
    };
    for sz in SIZES {
        let (blaster, no_gso) = measure::rx_blaster(host, sz);
        if let Some(why) = no_gso {
            notes.push(format!(
                "{}: RX {sz} B: blaster is {} (batches of 64), not quinn-udp-gso: {why}; \
                 it may be slower than the receivers",
                host.path,
                blaster.name(),
                why = why.trim_end_matches("; row left out"),
            ));
        }
        let mut best_tx: Vec<Option<TxRun>> = vec![None; impls.len()];
        let mut best_rx: Vec<Option<RxRun>> = vec![None; impls.len()];
        let mut out: Vec<bool> = vec![false; impls.len()];
        let note = |notes: &mut Vec<String>, n: String| {
            if !notes.contains(&n) {
                notes.push(n);
            }
        };
        for _ in 0..rounds {
            for (k, &imp) in impls.iter().enumerate() {
                if out[k] {
                    continue;
                }
                match measure::tx(host, imp, sz, dur, errs) {
                    Ok(t) => keep_best(&mut best_tx[k], t, |t| t.rate),
                    Err(n) => {
                        note(notes, format!("{}: {n}", host.path));
                        out[k] = true;
                        continue;
                    }
                }
                if !imp.receives() {
                    continue;
                }
                match measure::rx(host, blaster, imp, sz, dur, errs) {
                    Ok(r) => keep_best(&mut best_rx[k], r, |r| r.rate),
                    Err(n) => note(notes, format!("{}: {n}", host.path)),
                }
            }
        }
        let mut rtts = vec![RoundPercentiles::default(); impls.len()];
        let mut lost = vec![0u64; impls.len()];
        for _ in 0..rounds {
            for (k, &imp) in impls.iter().enumerate() {
                if out[k] || !imp.receives() {
                    continue;
                }
                match measure::pingpong(host, imp, sz, rtt_n / rounds as u64, errs) {
                    Ok((mut round, l)) => {
                        rtts[k].add(&mut round);
                        lost[k] += l;
                    }
                    Err(n) => note(notes, format!("{}: {n}", host.path)),
                }
            }
        }
        let kept_up: Vec<&str> = impls
            .iter()
            .zip(&best_rx)
            .filter(|(_, x)| x.is_some_and(|x| x.drops() == 0))
            .map(|(imp, _)| imp.name())
            .collect();
        let quinn_rx = impls
            .iter()
            .zip(&best_rx)
            .any(|(&imp, x)| imp == Impl::Quinn && x.is_some());
        if blaster == Impl::QuinnGso && quinn_rx {
            note(
                notes,
                format!(
                    "{}: RX {sz} B: quinn-udp's socket asks for GRO, so each GSO send of \
                     the blaster reaches it whole (split by stride, each packet checked): \
                     no per-packet segmentation or socket enqueue on either side, so its \
                     RX row and the RX ratios against it do not compare receivers",
                    host.path
                ),
            );
        }
        if !kept_up.is_empty() {
            note(
                notes,
                format!(
                    "{}: RX {sz} B: {} dropped no packet, so the blaster ({}, which also runs \
                     the kernel's receive path in its softirq on its own core) set the pace: \
                     that RX rate is the blaster's (a lower bound of the receiver's), and its \
                     ns/pkt is busy-poll wall time per packet",
                    host.path,
                    kept_up.join(", "),
                    blaster.name()
                ),
            );
        }
        for (k, &imp) in impls.iter().enumerate() {
            if out[k] {
                continue;
            }
            if lost[k] > 0 {
                note(
                    notes,
                    format!(
                        "{}: {} {sz} B: {} round trips lost (50 ms timeout)",
                        host.path,
                        imp.name(),
                        lost[k]
                    ),
                );
            }
            let rtt = rtts[k].median().map(|(p50, p99)| (p50, p99, lost[k]));
            rows.push(Row {
                path: host.path,
                sz,
                imp,
                tx: best_tx[k],
                rx: best_rx[k],
                rtt,
            });
        }
    }
}

/// Runs the whole benchmark and prints it.
///
/// # Errors
/// A line saying how many received packets failed their check (their
/// descriptions are printed first).
pub(crate) fn run(opts: &BenchArgs) -> Result<(), String> {
    let cores = Cores::detect();
    let pinned = cores.describe("sender/blaster/ping client", "receiver/drain/echo");
    let mut notes = Vec::new();
    let mut errs = Errors::default();
    let mut rows = Vec::new();
    let mut hosts = Vec::new();
    match VethPair::new("bench") {
        Ok(pair) => {
            notes.push(format!(
                "veth: {} <-> {}",
                pair.a(),
                pair.b()
            ));
            hosts.push(Host::veth(pair));
        }
        Err(e) => notes.push(format!(
            "veth: skipped, loopback only: cannot make a veth pair between namespaces (needs CAP_NET_ADMIN, i.e. root): {e}"
        )),
    }
    hosts.push(Host::loopback());
    for host in &hosts {
        bench_host(host, &Impl::ALL, opts, &mut rows, &mut notes, &mut errs);
    }
    drop(hosts);
    print(
        &rows,
        &layout::report(&cores, &pinned),
        &pinned,
        &notes,
        opts,
    );
    if errs.count > 0 {
        for n in &errs.notes {
            eprintln!("check failed: {n}");
        }
        return Err(format!(
            "{} received packets failed their check",
            errs.count
        ));
    }
    Ok(())
}

/// `a / b` for two rows' rates, when both exist.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn peer<'a>(rows: &'a [Row], r: &Row, imp: Impl) -> Option<&'a Row> {
    rows.iter()
        .find(|x| x.path == r.path && x.sz == r.sz && x.imp == imp)
}

/// The ratios of a row: its TX and RX rates against tilewire-mmsg and
/// quinn-udp (GSO off), as (name, value).
fn ratios(rows: &[Row], r: &Row) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for base in [Impl::Mmsg, Impl::Quinn] {
        if base == r.imp {
            continue;
        }
        let Some(p) = peer(rows, r, base) else {
            continue;
        };
        let tx = ratio(r.tx.map(|t| t.rate), p.tx.map(|t| t.rate));
        let rx = ratio(r.rx.map(|t| t.rate), p.rx.map(|t| t.rate));
        for (what, v) in [("tx", tx), ("rx", rx)] {
            if let Some(v) = v {
                out.push((format!("{what}_vs_{}", base.name()), v));
            }
        }
    }
    out
}

/// One line of `--json`; what a row did not measure is left out.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    bench: &'static str,
    #[serde(rename = "impl")]
    imp: &'static str,
    path: &'static str,
    payload_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_rate_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_cpu_ns_per_pkt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_rate_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_drops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_blaster: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_cpu_ns_per_pkt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_lost: Option<u64>,
    ratio: std::collections::BTreeMap<String, f64>,
    pinned: &'a str,
    mode: &'static str,
}

fn print(rows: &[Row], report: &str, pinned: &str, notes: &[String], opts: &BenchArgs) {
    let mode = if opts.quick { "quick" } else { "full" };
    if opts.json {
        for r in rows {
            print_json(&JsonRow {
                bench: "udp",
                imp: r.imp.name(),
                path: r.path,
                payload_bytes: r.sz,
                tx_rate_per_s: r.tx.map(|t| t.rate.round() as u64),
                tx_sent: r.tx.map(|t| t.sent),
                tx_received: r.tx.map(|t| t.received),
                tx_cpu_ns_per_pkt: r.tx.map(|t| round(t.cpu_ns_per_pkt, 1)),
                rx_rate_per_s: r.rx.map(|x| x.rate.round() as u64),
                rx_sent: r.rx.map(|x| x.sent),
                rx_received: r.rx.map(|x| x.received),
                rx_drops: r.rx.map(|x| x.drops()),
                rx_blaster: r.rx.map(|x| x.blaster.name()),
                rx_cpu_ns_per_pkt: r.rx.map(|x| round(x.cpu_ns_per_pkt, 1)),
                p50_ns: r.rtt.map(|(p50, _, _)| p50),
                p99_ns: r.rtt.map(|(_, p99, _)| p99),
                rtt_lost: r.rtt.map(|(_, _, lost)| lost),
                ratio: ratios(rows, r)
                    .into_iter()
                    .map(|(k, v)| (k, round(v, 3)))
                    .collect(),
                pinned,
                mode,
            });
        }
        for n in notes {
            eprintln!("note: {n}");
        }
        return;
    }
    println!(
        "tilewire-bench udp ({mode}): TX, RX and ping-pong RTT; every received payload checked"
    );
    println!("{report}");
    println!(
        "socket buffers: {} MiB asked (capped by net.core.[rw]mem_max); rates: best round; RTT: median round",
        SOCK_BUF >> 20
    );
    println!(
        "RX: blaster quinn-udp-gso (unless a note says otherwise) outruns the receiver; \
         RX Mpps and ns/pkt: the receiver's, while the blaster ran; drops = sent - received, expected"
    );
    for n in notes {
        println!("note: {n}");
    }
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".to_string());
    let mut last_path = "";
    for r in rows {
        if r.path != last_path {
            last_path = r.path;
            println!();
            println!("path: {}", r.path);
            println!(
                "{:>6}  {:<15} {:>9} {:>6} {:>7}  {:>9} {:>9} {:>7}  {:>7} {:>7}  ratios",
                "size",
                "impl",
                "TX Mpps",
                "rcvd%",
                "ns/pkt",
                "RX Mpps",
                "drops",
                "ns/pkt",
                "p50 ns",
                "p99 ns"
            );
        }
        let tx = r.tx;
        let rx = r.rx;
        let ratio: Vec<String> = ratios(rows, r)
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}x"))
            .collect();
        println!(
            "{:>4} B  {:<15} {:>9} {:>6} {:>7}  {:>9} {:>9} {:>7}  {:>7} {:>7}  {}",
            r.sz,
            r.imp.name(),
            dash(tx.map(|t| format!("{:.3}", t.rate / 1e6))),
            dash(tx.map(|t| format!("{:.1}", 100.0 * t.received as f64 / t.sent.max(1) as f64))),
            dash(tx.map(|t| format!("{:.0}", t.cpu_ns_per_pkt))),
            dash(rx.map(|x| format!("{:.3}", x.rate / 1e6))),
            dash(rx.map(|x| x.drops().to_string())),
            dash(rx.map(|x| format!("{:.0}", x.cpu_ns_per_pkt))),
            dash(r.rtt.map(|t| t.0.to_string())),
            dash(r.rtt.map(|t| t.1.to_string())),
            ratio.join(", "),
        );
    }
}
