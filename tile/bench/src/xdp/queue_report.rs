//! The queues section's run and output: one queue against two on a veth
//! pair with two queues each side (the cells are in [`super::queues`]),
//! the best round of each, its notes, its table and its `--json` lines.

use crate::harness::pin::Cores;
use crate::harness::stats::best_of;
use crate::harness::{print_json, round, BenchArgs};
use tilewire_aio::netns::VethPair;
use tilewire_xdp::bpf::AttachMode;

use super::axes::{Dir, SIZES};
use super::cells::{Impl, Timing};
use super::queues::{self, QueuesCell};
use super::roles::{drop_on_b, pinned, Umems};

/// The queues section: one queue against two on a veth pair with two
/// queues each side, both directions and sizes, the best round of each.
pub(super) fn run_queues(
    umems: &Umems<'_>,
    t: Timing,
    rounds: usize,
    cores: Cores,
    notes: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> Vec<QueuesCell> {
    let n = *queues::QUEUES.iter().max().unwrap_or(&1);
    let pair = match VethPair::with_queues("bxdq", n) {
        Ok(p) => p,
        Err(e) => {
            notes.push(format!("queues: no rows: a veth pair with {n} queues: {e}"));
            return Vec::new();
        }
    };
    notes.push(format!(
        "queues: veth with {n} queues each side: {} <-> {}; RX: one blaster thread takes \
         turns on b's queues, a batch each (so the queues' shares are even by \
         construction), and a receiver thread per queue; TX: a sender thread per queue; \
         pinned as the rest ({})",
        pair.a(),
        pair.b(),
        pinned(&cores)
    ));
    let mut out = Vec::new();
    for dir in [Dir::Rx, Dir::Tx] {
        let _b_drop = match drop_on_b(&pair, dir) {
            Ok(p) => p,
            Err(e) => {
                notes.push(format!("queues tx: no rows: {e}"));
                continue;
            }
        };
        for sz in SIZES {
            let best = best_of(
                rounds,
                queues::QUEUES.len(),
                |k| match dir {
                    Dir::Rx => queues::rx(&pair, umems, queues::QUEUES[k], sz, t, cores, failures),
                    Dir::Tx => queues::tx(&pair, umems, queues::QUEUES[k], sz, t, cores),
                },
                QueuesCell::rate,
                |k, e| {
                    notes.push(format!(
                        "queues {} {sz} B, {} queue(s): left out: {e}",
                        dir.name(),
                        queues::QUEUES[k]
                    ))
                },
            );
            out.extend(best.into_iter().flatten());
        }
    }
    out
}

/// A many-queue cell's rate against the one-queue cell of its direction
/// and size.
fn vs_one_queue(cells: &[QueuesCell], c: &QueuesCell) -> Option<f64> {
    if c.queues() == 1 {
        return None;
    }
    let one = cells
        .iter()
        .find(|o| o.dir == c.dir && o.sz == c.sz && o.queues() == 1)?;
    (one.rate() > 0.0).then(|| c.rate() / one.rate())
}

pub(super) fn add_queue_notes(cells: &[QueuesCell], notes: &mut Vec<String>) {
    for c in cells {
        let Some(lost) = c.lost_elsewhere().filter(|&l| l > 0) else {
            continue;
        };
        let veth = c
            .veth
            .map_or("veth's counters could not be read".to_string(), |(a, b)| {
                format!(
                    "veth dropped {} on b's side (no room in a's queue ring) and {} on a's",
                    b.tx_dropped, a.rx_dropped
                )
            });
        notes.push(format!(
            "queues rx {} B, {} queue(s): {lost} of {} blasted packets lost before the \
             sockets: {veth}",
            c.sz,
            c.queues(),
            c.sent()
        ));
    }
    let ratios: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            vs_one_queue(cells, c).map(|v| format!("{} {} B {v:.2}x", c.dir.name(), c.sz))
        })
        .collect();
    if ratios.is_empty() {
        return;
    }
    notes.push(format!(
        "queues: {} queues against one, all queues together: {}. Bounded on this machine: \
         on veth the kernel's receive work for every queue (veth's NAPI, the XDP run, the \
         copy into the UMEM) runs in the softirq of the cpu that sent the frame, so both \
         queues' kernel work lands on the blaster's cpu, and both receivers share the \
         other; on TX the kernel builds and sends each frame in the sender's own syscall, \
         both senders on one cpu. A second queue adds no cpu to either side here, only \
         the split. On a NIC each queue's interrupt and NAPI run on the core it is \
         affined to and each net tile has a core of its own, so the rate grows with the \
         queues until the wire or the tiles after the net tiles bound it",
        queues::QUEUES.iter().max().unwrap_or(&1),
        ratios.join(", ")
    ));
}

/// One `--json` line of the queues section: a queue of a cell, or (queue
/// `null`) all its queues together.
#[derive(serde::Serialize)]
struct JsonQueueRow<'a> {
    bench: String,
    #[serde(rename = "impl")]
    imp: &'static str,
    size: usize,
    queues: u32,
    queue: Option<u32>,
    rate_pps: u64,
    cpu_ns_per_pkt: f64,
    sent: u64,
    arrived: Option<u64>,
    /// RX: packets the sockets dropped (both causes).
    socket_drops: Option<u64>,
    /// RX, the whole cell (all queues): sent, not received, not dropped
    /// at a socket.
    lost_elsewhere: Option<u64>,
    /// RX, the whole cell: veth's own drops on b (tx) and a (rx).
    veth_b_tx_dropped: Option<u64>,
    veth_a_rx_dropped: Option<u64>,
    /// All queues of a many-queue cell: its rate against one queue's.
    vs_one_queue: Option<f64>,
    pinned: &'a str,
    quick: bool,
}

/// The lines of the queues section: per cell, each queue, then (for more
/// than one) all of them.
fn queue_lines(cells: &[QueuesCell]) -> Vec<(&QueuesCell, Option<u32>)> {
    cells
        .iter()
        .flat_map(|c| {
            let each = (0..c.queues()).map(move |q| (c, Some(q)));
            let all = (c.queues() > 1).then_some((c, None));
            each.chain(all)
        })
        .collect()
}

pub(super) fn print_queues(cells: &[QueuesCell], pinned: &str, opts: &BenchArgs) {
    let lines = queue_lines(cells);
    let figures = |c: &QueuesCell, q: Option<u32>| match q {
        Some(q) => {
            let e = &c.each[q as usize];
            let got = match c.dir {
                Dir::Rx => e.got,
                Dir::Tx => None,
            };
            (
                e.rate,
                e.cpu_ns_per_pkt(),
                e.sent,
                got,
                e.socket.map(|k| k.rx_lost()),
            )
        }
        None => (
            c.rate(),
            c.cpu_ns_per_pkt(),
            c.sent(),
            c.got(),
            c.each.iter().map(|e| e.socket.map(|k| k.rx_lost())).sum(),
        ),
    };
    if opts.json {
        for (c, q) in lines {
            let (rate, cpu, sent, got, drops) = figures(c, q);
            let one = c.queues() == 1;
            let got = if one { c.got() } else { got };
            print_json(&JsonQueueRow {
                bench: format!("xdp_{}_queues", c.dir.name()),
                imp: Impl::Tilewire(AttachMode::Drv).name(),
                size: c.sz,
                queues: c.queues(),
                queue: q,
                rate_pps: rate.round() as u64,
                cpu_ns_per_pkt: round(cpu, 1),
                sent,
                arrived: got,
                socket_drops: drops,
                lost_elsewhere: (q.is_none() || one).then(|| c.lost_elsewhere()).flatten(),
                veth_b_tx_dropped: (q.is_none() || one)
                    .then(|| c.veth.map(|(_, b)| b.tx_dropped))
                    .flatten(),
                veth_a_rx_dropped: (q.is_none() || one)
                    .then(|| c.veth.map(|(a, _)| a.rx_dropped))
                    .flatten(),
                vs_one_queue: q
                    .is_none()
                    .then(|| vs_one_queue(cells, c))
                    .flatten()
                    .map(|v| round(v, 3)),
                pinned,
                quick: opts.quick,
            });
        }
        return;
    }
    if lines.is_empty() {
        return;
    }
    let dash = |s: Option<String>| s.unwrap_or_else(|| "-".to_string());
    println!();
    println!(
        "queues: {} with a socket per queue, registered in one program (a net tile per \
         queue), veth with 2 queues each side",
        Impl::Tilewire(AttachMode::Drv).name()
    );
    println!(
        "{:<5} {:>7}  {:>6} {:>5} {:>9} {:>10} {:>9} {:>9} {:>7} {:>8} {:>9}  {:>10}",
        "bench",
        "size",
        "queues",
        "queue",
        "M pkt/s",
        "CPU ns/pkt",
        "sent",
        "got",
        "got %",
        "drops",
        "elsewhere",
        "vs 1 queue"
    );
    for (c, q) in lines {
        let (rate, cpu, sent, got, drops) = figures(c, q);
        let got = if c.queues() == 1 { c.got() } else { got };
        println!(
            "{:<5} {:>5} B  {:>6} {:>5} {:>9.3} {:>10.0} {:>9} {:>9} {:>7} {:>8} {:>9}  {:>10}",
            c.dir.name(),
            c.sz,
            c.queues(),
            q.map_or("all".to_string(), |q| q.to_string()),
            rate / 1e6,
            cpu,
            sent,
            dash(got.map(|g| g.to_string())),
            dash(got.map(|g| format!("{:.2}", 100.0 * g as f64 / sent.max(1) as f64))),
            dash(drops.map(|d| d.to_string())),
            dash(
                (q.is_none() || c.queues() == 1)
                    .then(|| c.lost_elsewhere())
                    .flatten()
                    .map(|l| l.to_string())
            ),
            dash(
                q.is_none()
                    .then(|| vs_one_queue(cells, c))
                    .flatten()
                    .map(|v| format!("{v:.2}x"))
            ),
        );
    }
    println!(
        "tx: got is what b's veth counted received for the whole cell (all queues); rx: drops \
         are the sockets' (fill ring empty or rx ring full), elsewhere the rest of sent - got \
         (all queues)"
    );
}
