//! One cell: a sender fanning shreds out over the pair while b counts,
//! a warm-up, a measured window, then the sender stops and b drains, and
//! every packet sent is found received or dropped at a counted place.
//!
//! CPU per packet is the process's CPU time in the window less the
//! counting thread's, per packet b counted in the window: the sender's
//! threads (for tilewire, every tile's thread) and the kernel work they
//! do, which on veth includes b's receive path (the XDP run and the copy
//! into b's UMEM run in the sending cpu's softirq), the same for every
//! sender.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tilewire_pipeline::{Pipeline, Registry, RunOptions};
use tilewire_shmem::Workspace;

use super::peer::{Counter, Counts, Live, Net};
use super::peers::{self, Sent};
use super::tilewire::{net_tiles, topology, ShredsKind, SourceShared};
use crate::harness::cpu::{process_cpu_ns, read_tiles, tiles_per_pkt, TileCost, TileReading};
use crate::harness::pin::{pin, Cores};
use tilewire_pipeline::kinds::retransmit::skip_counters;

/// Queues of the pair: b counts on both in every cell.
pub(super) const QUEUES: u32 = 2;

/// The contestants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Impl {
    Mmsg,
    AgaveXdp,
    /// The agave-xdp-style sender with multi-buffer packets: a header
    /// frame per destination chained to the shred's one payload frame.
    AgaveXdpMultiBuf,
    /// tilewire with this many net tiles (queues).
    Tilewire(u32),
}

impl Impl {
    pub(super) fn name(self) -> String {
        match self {
            Impl::Mmsg => "sendmmsg".into(),
            Impl::AgaveXdp => "agave-xdp-style".into(),
            Impl::AgaveXdpMultiBuf => "xdp-multibuf".into(),
            Impl::Tilewire(1) => "tilewire".into(),
            Impl::Tilewire(n) => format!("tilewire-{n}q"),
        }
    }

    pub(super) fn queues(self) -> u32 {
        match self {
            Impl::Tilewire(n) => n,
            _ => 1,
        }
    }
}

pub(super) use crate::harness::Timing;

/// What one cell measured.
#[derive(Debug, Clone, Default)]
pub(super) struct Measured {
    /// The window.
    pub secs: f64,
    pub good_w: u64,
    pub cpu_w: u64,
    /// The whole cell.
    pub sent: Sent,
    pub counts: Counts,
    /// Dropped by a's veth end on its way out.
    pub veth_tx_drops: u64,
    /// Dropped by b's veth end: among them, in DRV mode, every frame
    /// b's program could not redirect to a full socket (which the socket
    /// counts too).
    pub veth_rx_drops: u64,
    /// tilewire: each tile's work per packet in the window.
    pub tiles: Vec<TileCost>,
    /// How the sender ran.
    pub layout: String,
}

impl Measured {
    pub(super) fn rate(&self) -> f64 {
        self.good_w as f64 / self.secs.max(1e-9)
    }
    pub(super) fn cpu_per_pkt(&self) -> f64 {
        self.cpu_w as f64 / self.good_w.max(1) as f64
    }
    pub(super) fn sent_total(&self) -> u64 {
        self.sent.per_dest.iter().sum()
    }
    /// Sent less received, per destination: (least, most, all).
    pub(super) fn losses(&self) -> (i64, i64, i64) {
        let l: Vec<i64> = self
            .sent
            .per_dest
            .iter()
            .zip(&self.counts.per_dest)
            .map(|(&s, &r)| s as i64 - r as i64)
            .collect();
        let (min, max) = (l.iter().min().copied(), l.iter().max().copied());
        (min.unwrap_or(0), max.unwrap_or(0), l.iter().sum())
    }
    /// What veth and b's sockets dropped: a's tx drops, and b's rx drops
    /// or its sockets' drops, whichever is more (a socket's drop is one
    /// of b's too, see `veth_rx_drops`).
    pub(super) fn drops(&self) -> u64 {
        self.veth_tx_drops + self.veth_rx_drops.max(self.counts.socket_drops)
    }
    /// Losses no counter explains: sent, less what arrived (good, bad or
    /// to a wrong address) and what was dropped ([`Measured::drops`]).
    pub(super) fn unexplained(&self) -> i64 {
        let c = &self.counts;
        self.sent_total() as i64
            - self.sent.unplaced as i64
            - (c.good() + c.bad + c.wrong + self.drops()) as i64
    }
}

/// The counting thread's CPU and b's count, and the process's CPU, now.
struct Snap {
    at: Instant,
    cpu: u64,
    counter_cpu: u64,
    good: u64,
    tiles: Vec<TileReading>,
}

fn snap(live: &Live, tiles: &dyn Fn() -> Vec<TileReading>) -> Snap {
    // SYNC: Relaxed; progress counts.
    Snap {
        at: Instant::now(),
        cpu: process_cpu_ns(),
        counter_cpu: live.cpu_ns.load(Ordering::Relaxed),
        good: live.good.load(Ordering::Relaxed),
        tiles: tiles(),
    }
}

/// Warms up, then measures the window into `m`.
fn window(t: Timing, live: &Live, tiles: &dyn Fn() -> Vec<TileReading>, m: &mut Measured) {
    std::thread::sleep(t.warm);
    let a = snap(live, tiles);
    std::thread::sleep(t.window);
    let b = snap(live, tiles);
    m.secs = b.at.duration_since(a.at).as_secs_f64();
    m.good_w = b.good - a.good;
    let counter = b.counter_cpu.saturating_sub(a.counter_cpu);
    m.cpu_w = b.cpu.saturating_sub(a.cpu).saturating_sub(counter);
    let ns = b.at.duration_since(a.at).as_nanos() as u64;
    m.tiles = tiles_per_pkt(&a.tiles, &b.tiles, m.good_w, ns);
}

/// Runs one cell of `imp` (see the [module docs](self)).
///
/// # Errors
/// A part that could not be set up or failed.
pub(super) fn run(
    imp: Impl,
    net: &Net,
    ws: &Workspace,
    cores: &Cores,
    t: Timing,
    cell: usize,
) -> Result<Measured, String> {
    let live = Live::default();
    let stop_counter = AtomicBool::new(false);
    let veth0 = net.veth();
    let mut m = Measured::default();
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (live, stop_counter) = (&live, &stop_counter);
        let counter = s.spawn(move || {
            pin(cores.second);
            match Counter::new(net, ws, QUEUES) {
                Ok(mut c) => {
                    let _ = ready_tx.send(Ok(()));
                    Ok(c.run(net, stop_counter, live))
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    Err(e)
                }
            }
        });
        let ready = ready_rx
            .recv()
            .map_err(|_| "the counting thread ended".to_string())
            .and_then(|r| r);
        let sent = ready.and_then(|()| match imp {
            Impl::Mmsg | Impl::AgaveXdp | Impl::AgaveXdpMultiBuf => {
                peer_cell(imp, net, cores, t, live, &mut m)
            }
            Impl::Tilewire(q) => tilewire_cell(q, net, t, live, cell, &mut m),
        });
        // SYNC: Relaxed; a flag (the join orders the result).
        stop_counter.store(true, Ordering::Relaxed);
        let counts = counter
            .join()
            .map_err(|_| "the counting thread panicked".to_string())?;
        m.sent = sent?;
        m.counts = counts?;
        Ok::<(), String>(())
    })?;
    let (a0, b0) = veth0;
    let (a1, b1) = net.veth();
    m.veth_tx_drops = a0.delta(a1).tx_dropped;
    m.veth_rx_drops = b0.delta(b1).rx_dropped;
    Ok(m)
}

/// A peer's cell: its sender on a thread of its own until the window
/// ends.
fn peer_cell(
    imp: Impl,
    net: &Net,
    cores: &Cores,
    t: Timing,
    live: &Live,
    m: &mut Measured,
) -> Result<Sent, String> {
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    m.layout = match imp {
        Impl::Mmsg => "one thread pinned to the first cpu".into(),
        _ => "producer not pinned -> channel -> TX thread pinned to the first cpu (queue 0)".into(),
    };
    std::thread::scope(|s| {
        let (stop, sent) = (&stop, &sent);
        let h = s.spawn(move || match imp {
            Impl::Mmsg => peers::mmsg(net, cores, stop, sent),
            Impl::AgaveXdpMultiBuf => peers::agave_xdp(net, cores, stop, sent, true),
            _ => peers::agave_xdp(net, cores, stop, sent, false),
        });
        window(t, live, &Vec::new, m);
        // SYNC: Relaxed; a flag (the join orders the result).
        stop.store(true, Ordering::Relaxed);
        h.join().map_err(|_| "the sender panicked".to_string())?
    })
}

/// tilewire's cell: the pipeline with `queues` net tiles.
fn tilewire_cell(
    queues: u32,
    net: &Net,
    t: Timing,
    live: &Live,
    cell: usize,
    m: &mut Measured,
) -> Result<Sent, String> {
    let shared = Arc::new(SourceShared::default());
    let registry = Registry::with_builtins()
        .with(ShredsKind(shared.clone()))
        .map_err(|e| e.to_string())?;
    let ws = format!("bench-fan-{}-{cell}", std::process::id());
    let topo = registry
        .parse(&topology(&ws, net, queues).text())
        .map_err(|e| e.to_string())?;
    m.layout = topo.layout_summary();
    let pipeline = Pipeline::create(topo).map_err(|e| e.to_string())?;
    let running = pipeline
        .start(&RunOptions::new())
        .map_err(|e| e.to_string())?;
    window(t, live, &|| read_tiles(&pipeline), m);
    // SYNC: Relaxed; a flag.
    shared.stop.store(true, Ordering::Relaxed);
    let count = |tile: &str, c: &str| pipeline.counter(tile, c).unwrap_or(0);
    let nets = net_tiles(queues);
    let net_sum = |c: &str| nets.iter().map(|n| count(n, c)).sum::<u64>();
    // Until every shred went through rt and every frame out of the net
    // tiles (or 2 s).
    let deadline = Instant::now() + Duration::from_secs(2);
    let published = || shared.published.load(Ordering::Relaxed);
    while Instant::now() < deadline
        && (count("rt", "frags") < published()
            || net_sum("tx_pkts") + net_sum("tx_refused") < count("rt", "sent"))
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    let report = running.stop().map_err(|e| e.to_string())?;
    let c = |tile: &str, n: &str| report.counter(tile, n).unwrap_or(0);
    let frags = c("rt", "frags");
    let skipped: u64 = skip_counters().iter().map(|r| c("rt", r)).sum();
    let refused: u64 = nets.iter().map(|n| c(n, "tx_refused")).sum();
    let mut why: Vec<String> = skip_counters()
        .iter()
        .map(|r| (format!("rt.{r}"), c("rt", r)))
        .chain(
            nets.iter()
                .map(|n| (format!("{n}.tx_refused"), c(n, "tx_refused"))),
        )
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    why.sort();
    let dests = net.dests.len();
    // rt sends each frag to every destination of the set, in order,
    // unless it counts a skip; a skip or a refusal is not placed at its
    // destination here, so it is counted `failed` and the destinations'
    // losses show where it went missing.
    Ok(Sent {
        per_dest: vec![frags; dests],
        failed: skipped + refused,
        calls: nets.iter().map(|n| c(n, "tx_wakeups")).sum(),
        shreds: frags,
        unplaced: skipped + refused,
        why: why.join(", "),
    })
}
