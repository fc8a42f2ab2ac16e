//! `tilewire-bench xdp`: AF_XDP receive and transmit over a veth pair
//! between two network namespaces, tilewire's AF_XDP socket side by side
//! with xsk-rs doing the same work (the loops of its `dev1_to_dev2`
//! example, [`tilewire_xdp::xskrs_peer`]) and with the sendmmsg/recvmmsg
//! path (tilewire's UDP aio on its mmsg engine), for 64- and 1232-byte
//! UDP payloads, in one run.
//!
//! Rows:
//! - `tilewire-xdp-skb` / `-drv`: tilewire's program attached to the veth
//!   end in generic (SKB) or native (DRV) mode, steering the port to a
//!   tilewire socket (copy mode: veth has no zero-copy);
//! - `xsk-rs-skb` / `-drv`: the xsk-rs socket, libxdp's program in that
//!   mode;
//! - `mmsg`: no program, the kernel's UDP stack and a socket read with
//!   `recvmmsg` / written with `sendmmsg`, 64 packets per call.
//!
//! Each row is over IPv4 (`family` ipv4), and tilewire's rows and `mmsg`
//! run again over IPv6 (`family` ipv6: addresses from RFC 5180's
//! benchmarking range on the veth ends, 62 header bytes instead of 42,
//! the UDP checksum that IPv6 requires kept right per packet, see
//! [`frames`]), each IPv6 cell right after its IPv4 cell in a round; an
//! IPv6 row shows its rate and CPU per packet against the same
//! implementation's IPv4 row (`vs_ipv4`, goal: within 10%). xsk-rs's rows
//! and the queues section are IPv4's alone.
//!
//! The queues section ([`queues`]) runs `tilewire-xdp-drv` on one queue
//! and on two of a veth pair with two queues each side, a socket per
//! queue in one program (a net tile per queue): the rate and CPU per
//! packet of each queue and of all together, against one queue.
//!
//! What a cell measures is in [`cells`]: RX is a fixed blaster (a tilewire
//! socket in the other namespace, the same for every receiver) on the
//! first core and the receiver under test on the second; TX is the
//! sender under test on the first core and a program on the far end that
//! drops the port at XDP, the same for every sender. Rates are packets
//! per second in a window after a warm-up; CPU is the measured thread's
//! own CPU time (`CLOCK_THREAD_CPUTIME_ID`) per packet. Rounds: the
//! implementations take turns within a round so machine noise hits them
//! alike, and the best round of each counts, as in `bench link`.
//!
//! Every received packet is checked (flow, length, payload pattern,
//! rising sequence number; over IPv6 also the UDP checksum of one packet
//! in [`frames::CSUM_EVERY`]); a failed check makes the command fail.

mod axes;
mod cells;
mod frames;
mod queue_report;
mod queues;
pub(crate) mod roles;

use crate::harness::{print_json, round, BenchArgs};
use std::time::Duration;

use tilewire_aio::netns::{NetnsError, VethPair};
use tilewire_shmem::{PageKind, Workspace};

use crate::harness::layout;
use crate::harness::pin::Cores;
use crate::harness::stats::best_of;
use axes::{Dir, Family, SIZES};
use cells::{Impl, RxCell, Timing, TxCell, IDLE_SLEEP};
use queue_report::{add_queue_notes, print_queues, run_queues};
use queues::QueuesCell;
use roles::{add_ipv6, drop_on_b, pinned, Umems};

/// One row: an implementation, a family, a direction and a size, its
/// best round.
struct Row {
    dir: Dir,
    sz: usize,
    imp: Impl,
    fam: Family,
    rate: f64,
    cpu_ns_per_pkt: f64,
    /// Packets sent in the whole cell (blasted for RX, completed for TX).
    sent: u64,
    /// Packets that arrived, whole cell (received for RX, counted by the
    /// far veth for TX).
    got: Option<u64>,
    /// RX: what the cell measured about its losses (`None` for TX).
    rx: Option<RxCell>,
}

/// A workspace for the UMEMs, unlinked when dropped (also on error).
struct RunWorkspace(Workspace);

impl Drop for RunWorkspace {
    fn drop(&mut self) {
        let _ = Workspace::unlink(self.0.name());
    }
}

/// Runs the benchmark.
///
/// # Errors
/// No root (namespaces, veth, XDP need CAP_SYS_ADMIN, CAP_NET_ADMIN and
/// CAP_BPF), the workspace cannot be made, or received packets failed
/// their check.
pub(crate) fn run(opts: &BenchArgs) -> Result<(), String> {
    let (rounds, t) = if opts.quick {
        (
            1,
            Timing {
                warm: Duration::from_millis(100),
                window: Duration::from_millis(300),
            },
        )
    } else {
        (
            2,
            Timing {
                warm: Duration::from_millis(200),
                window: Duration::from_millis(1000),
            },
        )
    };
    // libxdp (under xsk-rs) attaches its program straight away instead of
    // first trying its dispatcher, which needs a bpffs; see
    // `tilewire_xdp::xskrs_peer`. Set before any thread starts.
    if std::env::var_os("LIBXDP_SKIP_DISPATCHER").is_none() {
        std::env::set_var("LIBXDP_SKIP_DISPATCHER", "1");
    }
    let pair = VethPair::new("bxdp").map_err(|e| match e {
        NetnsError::NotPermitted { .. } => format!(
            "needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN for the network namespaces and \
             the veth pair, CAP_BPF for the XDP programs and AF_XDP sockets): {e}"
        ),
        e => format!("cannot make the veth pair: {e}"),
    })?;
    let ws_name = format!("bench-xdp-{}", std::process::id());
    let ws = RunWorkspace(
        Workspace::create(&ws_name, roles::WS_BYTES, PageKind::Normal)
            .map_err(|e| format!("workspace {ws_name}: {e}"))?,
    );
    let umems = Umems::new(&ws.0);
    let cores = Cores::detect();
    let mut notes = vec![format!("veth: {} <-> {}", pair.a(), pair.b())];
    let v6 = match add_ipv6(&pair) {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("ipv6: no rows: {e}"));
            false
        }
    };
    let cells = contestants(v6);
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let mut blaster_rates = Vec::new();
    for dir in [Dir::Rx, Dir::Tx] {
        let _b_drop = match drop_on_b(&pair, dir) {
            Ok(p) => p,
            Err(e) => {
                notes.push(format!("tx: no rows: {e}"));
                continue;
            }
        };
        for sz in SIZES {
            let best = best_of(
                rounds,
                cells.len(),
                |k| {
                    let cell = cells[k];
                    match dir {
                        Dir::Rx => cells::rx(&pair, &umems, cell, sz, t, cores).map(|c| {
                            check_rx(cell, sz, &c, &mut failures);
                            blaster_rates.push((sz, cell.1, c.blaster_rate));
                            rx_row(cell, sz, &c)
                        }),
                        Dir::Tx => cells::tx(&pair, &umems, cell, sz, t, cores)
                            .map(|c| tx_row(cell, sz, &c)),
                    }
                },
                |r| r.rate,
                |k, e| {
                    notes.push(format!(
                        "{} {sz} B {}: row left out: {e}",
                        dir.name(),
                        who(cells[k])
                    ))
                },
            );
            rows.extend(best.into_iter().flatten());
        }
    }
    drop(pair);
    let queue_rows = run_queues(&umems, t, rounds, cores, &mut notes, &mut failures);
    drop(ws);
    add_notes(&rows, &blaster_rates, &mut notes, t, rounds);
    add_queue_notes(&queue_rows, &mut notes);
    let pinned = pinned(&cores);
    let report = layout::report(&cores, &pinned);
    print(&rows, &queue_rows, &report, &pinned, &notes, opts);
    if failures.is_empty() {
        Ok(())
    } else {
        for f in &failures {
            eprintln!("check failed: {f}");
        }
        Err(format!(
            "{} cells had packets fail their check",
            failures.len()
        ))
    }
}

/// The cells of one direction and size in the order they take turns in
/// a round: each implementation over IPv4, then (if `v6`, and it runs
/// there) over IPv6 straight after, so the machine's noise hits an IPv6
/// row and the IPv4 row it is compared with alike.
fn contestants(v6: bool) -> Vec<(Impl, Family)> {
    Impl::ALL
        .iter()
        .flat_map(|&imp| {
            let six = (v6 && imp.has_ipv6()).then_some((imp, Family::V6));
            std::iter::once((imp, Family::V4)).chain(six)
        })
        .collect()
}

/// An implementation's name, with the family when it is IPv6.
fn who((imp, fam): (Impl, Family)) -> String {
    match fam {
        Family::V4 => imp.name().to_string(),
        Family::V6 => format!("{} ipv6", imp.name()),
    }
}

fn check_rx(cell: (Impl, Family), sz: usize, c: &RxCell, failures: &mut Vec<String>) {
    if c.bad > 0 {
        failures.push(format!(
            "rx {sz} B {}: {} packets with a wrong length, pattern, checksum or sequence number",
            who(cell),
            c.bad
        ));
    }
    if c.disorder > 0 {
        failures.push(format!(
            "rx {sz} B {}: {} packets out of order or repeated",
            who(cell),
            c.disorder
        ));
    }
}

fn rx_row((imp, fam): (Impl, Family), sz: usize, c: &RxCell) -> Row {
    Row {
        dir: Dir::Rx,
        sz,
        imp,
        fam,
        rate: c.rate,
        cpu_ns_per_pkt: c.cpu_ns_per_pkt,
        sent: c.sent,
        got: Some(c.received),
        rx: Some(*c),
    }
}

fn tx_row((imp, fam): (Impl, Family), sz: usize, c: &TxCell) -> Row {
    Row {
        dir: Dir::Tx,
        sz,
        imp,
        fam,
        rate: c.rate,
        cpu_ns_per_pkt: c.cpu_ns_per_pkt,
        sent: c.sent,
        got: c.delivered,
        rx: None,
    }
}

/// The row of `imp` over `fam` in `r`'s direction and size.
fn find<'r>(rows: &'r [Row], r: &Row, imp: Impl, fam: Family) -> Option<&'r Row> {
    rows.iter()
        .find(|p| p.dir == r.dir && p.sz == r.sz && p.imp == imp && p.fam == fam)
}

/// The row's rate against xsk-rs in the same mode and family (tilewire
/// rows only).
fn vs_xskrs(rows: &[Row], r: &Row) -> Option<f64> {
    let p = find(rows, r, r.imp.xskrs_peer()?, r.fam)?;
    (p.rate > 0.0).then(|| r.rate / p.rate)
}

/// The row's rate against the mmsg row of its family.
fn vs_mmsg(rows: &[Row], r: &Row) -> Option<f64> {
    if r.imp == Impl::Mmsg {
        return None;
    }
    let p = find(rows, r, Impl::Mmsg, r.fam)?;
    (p.rate > 0.0).then(|| r.rate / p.rate)
}

/// The IPv4 row an IPv6 row compares with: the same implementation,
/// direction and size.
fn ipv4_twin<'r>(rows: &'r [Row], r: &Row) -> Option<&'r Row> {
    (r.fam == Family::V6).then(|| find(rows, r, r.imp, Family::V4))?
}

/// An IPv6 row's rate against its IPv4 twin's.
fn vs_ipv4(rows: &[Row], r: &Row) -> Option<f64> {
    let p = ipv4_twin(rows, r)?;
    (p.rate > 0.0).then(|| r.rate / p.rate)
}

/// An IPv6 row's CPU per packet against its IPv4 twin's.
fn cpu_vs_ipv4(rows: &[Row], r: &Row) -> Option<f64> {
    let p = ipv4_twin(rows, r)?;
    (p.cpu_ns_per_pkt > 0.0).then(|| r.cpu_ns_per_pkt / p.cpu_ns_per_pkt)
}

/// Arrived / sent, in percent.
fn got_pct(r: &Row) -> Option<f64> {
    r.got.map(|g| 100.0 * g as f64 / r.sent.max(1) as f64)
}

fn add_notes(
    rows: &[Row],
    blaster_rates: &[(usize, Family, f64)],
    notes: &mut Vec<String>,
    t: Timing,
    rounds: usize,
) {
    notes.push(format!(
        "sizes are UDP payload bytes (each frame is 42 bytes more: Ethernet, IPv4, UDP; 62 \
         over IPv6); {rounds} round(s) per cell, the implementations taking turns (each \
         IPv6 cell right after its IPv4 cell), best round shown; window {} ms after {} ms \
         of warm-up",
        t.window.as_millis(),
        t.warm.as_millis()
    ));
    for sz in SIZES {
        let max = |fam: Family| {
            blaster_rates
                .iter()
                .filter(|(s, f, _)| *s == sz && *f == fam)
                .map(|(_, _, r)| *r)
                .fold(0.0, f64::max)
        };
        let (max4, max6) = (max(Family::V4), max(Family::V6));
        if max4 > 0.0 {
            notes.push(format!(
                "rx {sz} B: the blaster (tilewire AF_XDP, copy mode, in b) reached at most \
                 {:.3} M pkt/s{}; the kernel's receive path on a (veth, XDP program, copy \
                 into the UMEM or the UDP stack) runs in the blaster's softirq on its core, \
                 so the receive rate is capped by what that one core does for both",
                max4 / 1e6,
                if max6 > 0.0 {
                    format!(" over IPv4, {:.3} M over IPv6", max6 / 1e6)
                } else {
                    String::new()
                }
            ));
        }
        let kept: Vec<String> = rows
            .iter()
            .filter(|r| r.dir == Dir::Rx && r.sz == sz)
            .filter(|r| got_pct(r).is_some_and(|p| p >= 99.9))
            .map(|r| who((r.imp, r.fam)))
            .collect();
        for r in rows.iter().filter(|r| r.dir == Dir::Rx && r.sz == sz) {
            let Some(c) = r.rx.as_ref() else { continue };
            let lost = c.sent.saturating_sub(c.received);
            if lost == 0 {
                continue;
            }
            let at_socket = match c.socket {
                Some(k) => format!(
                    "{} at the AF_XDP socket ({} with the fill ring empty, {} with the rx ring \
                     full), {} before it",
                    k.rx_lost(),
                    k.rx_dropped,
                    k.rx_ring_full,
                    c.lost_elsewhere()
                ),
                None => "all before the program-less socket (its buffer or the veth \
                         backlog)"
                    .to_string(),
            };
            let veth_b = c.veth_b.map_or(0, |v| v.tx_dropped);
            notes.push(format!(
                "rx {sz} B {}: {lost} of {} blasted packets not received: {at_socket}; veth \
                 itself dropped {veth_b} on b's side; the receiver waited {:.1} ms runnable \
                 for its cpu{}",
                who((r.imp, r.fam)),
                c.sent,
                c.sched.run_delay_ns as f64 / 1e6,
                c.max_gap_ns.map_or_else(String::new, |g| format!(
                    ", {:.1} ms at most between two polls",
                    g as f64 / 1e6
                )),
            ));
        }
        if !kept.is_empty() {
            notes.push(format!(
                "rx {sz} B: {} received every packet the blaster got out: their rate is \
                 the blaster's pace (a lower bound of what they could take), and their \
                 ns/pkt is their own CPU cost",
                kept.join(", ")
            ));
        }
    }
    let gaps: Vec<u64> = rows.iter().filter_map(|r| r.rx?.max_gap_ns).collect();
    let delays: Vec<u64> = rows
        .iter()
        .filter(|r| matches!(r.imp, Impl::Tilewire(_)))
        .filter_map(|r| Some(r.rx?.sched.run_delay_ns))
        .collect();
    if let (Some(gmin), Some(gmax)) = (gaps.iter().min(), gaps.iter().max()) {
        notes.push(format!(
            "rx drops at the socket: every AF_XDP receiver here (tilewire's and xsk-rs's) \
             has {} rx-ring slots and as many frames on its fill ring; the kernel takes a \
             fill frame for every packet while the receiver is off its cpu, and this run's \
             tilewire receivers went {:.1} to {:.1} ms between two polls at worst (waiting \
             runnable {:.1} to {:.1} ms per cell: other threads on the shared cpu), which \
             {} frames cover up to {:.1} M pkt/s; with 2048 (1 ms of packets at the \
             blaster's pace) each RX cell lost 0.1 to 3% to an empty fill ring",
            roles::RX_RING,
            *gmin as f64 / 1e6,
            *gmax as f64 / 1e6,
            delays.iter().min().copied().unwrap_or(0) as f64 / 1e6,
            delays.iter().max().copied().unwrap_or(0) as f64 / 1e6,
            roles::RX_RING,
            f64::from(roles::RX_RING) / (*gmax as f64 / 1e9) / 1e6,
        ));
    }
    notes.push(format!(
        "rx CPU: the receiver thread's CPU time in the window per packet; tilewire's and \
         mmsg's loops sleep {} us when a poll finds nothing, xsk-rs's waits in poll(2), \
         so idle time is not counted for any of them",
        IDLE_SLEEP.as_micros()
    ));
    notes.push(
        "tx: rate = packets the kernel completed (AF_XDP completion ring, sendmmsg's \
         count); b's tilewire program (DRV) drops the port at XDP for every sender; \
         'got' = what b's veth counted received over the whole cell; the sender's CPU \
         includes b's XDP run, which happens in the sender's softirq on the same core"
            .to_string(),
    );
    notes.push(
        "what limits it: veth has no AF_XDP zero-copy, so every socket here is in copy \
         mode: on TX the kernel builds an skb per frame and sends at most 32 frames per \
         sendto wakeup; on RX each frame is an skb (SKB mode: generic XDP after the veth's \
         backlog; DRV mode: veth's own XDP, which copies the skb into a page first) and \
         then copied into the UMEM. That kernel work is the same for tilewire and xsk-rs \
         and dominates a packet's cost, so their user-space ring handling differs little \
         in rate. Two shared vCPUs only: the blaster/sender core also does the kernel \
         work of the far end"
            .to_string(),
    );
    for dir in [Dir::Rx, Dir::Tx] {
        for sz in SIZES {
            let best = |f: &dyn Fn(&Row) -> Option<f64>| {
                rows.iter()
                    .filter(|r| r.dir == dir && r.sz == sz && r.fam == Family::V4)
                    .filter(|r| matches!(r.imp, Impl::Tilewire(_)))
                    .filter_map(f)
                    .fold(None::<f64>, |m, v| Some(m.map_or(v, |m| m.max(v))))
            };
            let (x, m) = (best(&|r| vs_xskrs(rows, r)), best(&|r| vs_mmsg(rows, r)));
            if let (Some(x), Some(m)) = (x, m) {
                let verdict = |v: f64, goal: f64| if v >= goal { "met" } else { "not met" };
                notes.push(format!(
                    "goal {} {sz} B: tilewire AF_XDP at best {x:.2}x xsk-rs (same mode; goal \
                     1.5x, {}) and {m:.2}x mmsg (goal 3x, {})",
                    dir.name(),
                    verdict(x, 1.5),
                    verdict(m, 3.0)
                ));
            }
        }
    }
    add_ipv6_notes(rows, notes);
}

/// What the IPv6 rows are, and each one's verdict against its IPv4 twin.
fn add_ipv6_notes(rows: &[Row], notes: &mut Vec<String>) {
    if !rows.iter().any(|r| r.fam == Family::V6) {
        return;
    }
    notes.push(format!(
        "ipv6: tilewire's AF_XDP rows and mmsg run over IPv6 too ({} on a, {} on b, RFC \
         5180's benchmarking range; tilewire's program steers IPv6 UDP by port as IPv4's, b's \
         drops it at XDP alike), each IPv6 cell right after its IPv4 twin in every round; \
         xsk-rs's rows and the queues section are IPv4 only. An IPv6 frame carries the UDP \
         checksum IPv6 requires (the blaster updates it with each sequence number, a few \
         adds a packet); the IPv4 frames carry none (0, allowed), so on RX the kernel's UDP \
         stack (mmsg) verifies IPv6's checksum and not IPv4's; the AF_XDP receivers verify \
         one IPv6 packet in {}. The AF_XDP paths do the same work for both families (20 \
         bytes more to copy over IPv6); the kernel's UDP stack does not: an unconnected \
         socket's IPv6 send looks its route up in the FIB for every datagram and hashes a \
         flow label, so mmsg's IPv6 TX costs more CPU per packet than its IPv4 TX",
        roles::ADDR6_A,
        roles::ADDR6_B,
        frames::CSUM_EVERY
    ));
    // The share of its window a TX sender was on its cpu: the rate is
    // packets over wall time, so a sender that other work kept off its
    // cpu shows a lower rate at the same CPU per packet.
    let busy = |r: &Row| 100.0 * r.rate * r.cpu_ns_per_pkt / 1e9;
    for r in rows.iter().filter(|r| r.fam == Family::V6) {
        let (Some(v), Some(twin)) = (vs_ipv4(rows, r), ipv4_twin(rows, r)) else {
            continue;
        };
        let on_cpu = match r.dir {
            Dir::Tx => format!(
                " (the sender on its cpu {:.0}% of its window, IPv4's {:.0}%)",
                busy(r),
                busy(twin)
            ),
            Dir::Rx => String::new(),
        };
        notes.push(format!(
            "ipv6 {} {} B {}: {v:.2}x the IPv4 rate, {} its CPU/pkt{on_cpu}; goal: within 10% \
             of IPv4: {}",
            r.dir.name(),
            r.sz,
            r.imp.name(),
            cpu_vs_ipv4(rows, r).map_or_else(|| "-".to_string(), |c| format!("{c:.2}x")),
            if v >= 0.9 { "met" } else { "not met" }
        ));
    }
}

/// One line of `--json` (a ratio or count not measured is `null`).
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    bench: String,
    #[serde(rename = "impl")]
    imp: &'static str,
    /// "ipv4" or "ipv6".
    family: &'static str,
    size: usize,
    rate_pps: u64,
    cpu_ns_per_pkt: f64,
    /// Against xsk-rs in the same mode and family.
    vs_xsk_rs: Option<f64>,
    /// Against mmsg in the same family.
    vs_sendmmsg: Option<f64>,
    /// IPv6 rows: the rate against the same implementation's IPv4 row.
    vs_ipv4: Option<f64>,
    /// IPv6 rows: the CPU per packet against that IPv4 row's.
    cpu_vs_ipv4: Option<f64>,
    sent: u64,
    arrived: Option<u64>,
    /// RX on AF_XDP: packets lost at the socket (both causes).
    socket_drops: Option<u64>,
    /// ... of them with the fill ring empty (`rx_dropped`).
    drop_fill_empty: Option<u64>,
    /// ... of them with the rx ring full (`rx_ring_full`).
    drop_rx_ring_full: Option<u64>,
    /// The kernel's `rx_fill_ring_empty_descs`.
    fill_ring_empty_descs: Option<u64>,
    /// RX: sent, not received, not dropped at the socket.
    lost_elsewhere: Option<u64>,
    /// RX: veth's own drops on b (tx) and a (rx) over the cell.
    veth_b_tx_dropped: Option<u64>,
    veth_a_rx_dropped: Option<u64>,
    /// RX: the receiver's rx and fill ring entries.
    rx_ring: Option<u32>,
    /// RX: time the receiver thread waited runnable for its cpu, us.
    recv_run_delay_us: Option<u64>,
    /// RX: times it was preempted.
    recv_preempted: Option<u64>,
    /// RX, tilewire: longest time between two polls, us.
    recv_max_gap_us: Option<u64>,
    /// RX, tilewire: receive wakeups (`recvfrom`) it made.
    rx_wakeups: Option<u64>,
    pinned: &'a str,
    quick: bool,
}

fn print(
    rows: &[Row],
    queue_rows: &[QueuesCell],
    report: &str,
    pinned: &str,
    notes: &[String],
    opts: &BenchArgs,
) {
    if opts.json {
        for r in rows {
            print_json(&JsonRow {
                bench: format!("xdp_{}", r.dir.name()),
                imp: r.imp.name(),
                family: r.fam.name(),
                size: r.sz,
                rate_pps: r.rate.round() as u64,
                cpu_ns_per_pkt: round(r.cpu_ns_per_pkt, 1),
                vs_xsk_rs: vs_xskrs(rows, r).map(|v| round(v, 3)),
                vs_sendmmsg: vs_mmsg(rows, r).map(|v| round(v, 3)),
                vs_ipv4: vs_ipv4(rows, r).map(|v| round(v, 3)),
                cpu_vs_ipv4: cpu_vs_ipv4(rows, r).map(|v| round(v, 3)),
                sent: r.sent,
                arrived: r.got,
                socket_drops: r.rx.and_then(|c| c.socket_lost()),
                drop_fill_empty: r.rx.and_then(|c| Some(c.socket?.rx_dropped)),
                drop_rx_ring_full: r.rx.and_then(|c| Some(c.socket?.rx_ring_full)),
                fill_ring_empty_descs: r.rx.and_then(|c| Some(c.socket?.rx_fill_ring_empty_descs)),
                lost_elsewhere: r.rx.map(|c| c.lost_elsewhere()),
                veth_b_tx_dropped: r.rx.and_then(|c| Some(c.veth_b?.tx_dropped)),
                veth_a_rx_dropped: r.rx.and_then(|c| Some(c.veth_a?.rx_dropped)),
                rx_ring: r
                    .rx
                    .and_then(|_| (r.imp != Impl::Mmsg).then_some(roles::RX_RING)),
                recv_run_delay_us: r.rx.map(|c| c.sched.run_delay_ns / 1000),
                recv_preempted: r.rx.map(|c| c.sched.preempted),
                recv_max_gap_us: r.rx.and_then(|c| c.max_gap_ns).map(|g| g / 1000),
                rx_wakeups: r.rx.and_then(|c| c.rx_wakeups),
                pinned,
                quick: opts.quick,
            });
        }
        print_queues(queue_rows, pinned, opts);
        return;
    }
    let dash = |s: Option<String>| s.unwrap_or_else(|| "-".to_string());
    println!(
        "tilewire-bench xdp ({}): veth pair between two namespaces, UDP payload sizes",
        if opts.quick { "quick" } else { "full" }
    );
    println!("{report}");
    println!();
    println!(
        "{:<5} {:>7}  {:<17} {:<6} {:>9} {:>10} {:>9} {:>9} {:>7} {:>10} {:>8} {:>9}  {:>9} {:>8} {:>8}",
        "bench",
        "size",
        "impl",
        "family",
        "M pkt/s",
        "CPU ns/pkt",
        "sent",
        "got",
        "got %",
        "fill-empty",
        "rx-full",
        "elsewhere",
        "vs xsk-rs",
        "vs mmsg",
        "vs ipv4"
    );
    for r in rows {
        let k = r.rx.and_then(|c| c.socket);
        println!(
            "{:<5} {:>5} B  {:<17} {:<6} {:>9.3} {:>10.0} {:>9} {:>9} {:>7} {:>10} {:>8} {:>9}  {:>9} {:>8} {:>8}",
            r.dir.name(),
            r.sz,
            r.imp.name(),
            r.fam.name(),
            r.rate / 1e6,
            r.cpu_ns_per_pkt,
            r.sent,
            dash(r.got.map(|g| g.to_string())),
            dash(got_pct(r).map(|p| format!("{p:.2}"))),
            dash(k.map(|k| k.rx_dropped.to_string())),
            dash(k.map(|k| k.rx_ring_full.to_string())),
            dash(r.rx.map(|c| c.lost_elsewhere().to_string())),
            dash(vs_xskrs(rows, r).map(|v| format!("{v:.2}x"))),
            dash(vs_mmsg(rows, r).map(|v| format!("{v:.2}x"))),
            dash(vs_ipv4(rows, r).map(|v| format!("{v:.2}x"))),
        );
    }
    println!();
    println!(
        "rx: fill-empty and rx-full are the packets the kernel dropped at the AF_XDP socket \
         (XDP_STATISTICS rx_dropped and rx_ring_full), elsewhere the rest of sent - got; \
         vs xsk-rs and vs mmsg compare within a family, vs ipv4 an IPv6 row's rate with \
         the same implementation's IPv4 row (its CPU/pkt ratio is in the notes)"
    );
    print_queues(queue_rows, pinned, opts);
    println!();
    for n in notes {
        println!("- {n}");
    }
}
