//! What a cell measures: the readings at both ends of its window, the
//! figures made of them ([`Measured`]), and the checks of every packet
//! the collector got.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::collect::{Collector, Live};
use super::traffic::Traffic;
use crate::harness::cpu::{tiles_per_pkt, TileCost, TileReading};
use crate::harness::stats::p50_p99;

pub(super) use crate::harness::Timing;

/// What one cell measured.
#[derive(Debug, Clone, Default)]
pub(super) struct Measured {
    // The window.
    pub secs: f64,
    pub offered_w: u64,
    pub rx_w: u64,
    pub delivered_w: u64,
    pub cpu_ns_w: u64,
    pub latency: Option<(u64, u64)>,
    // The whole cell.
    pub offered: u64,
    pub rx: u64,
    /// The pipeline socket's kernel drops (UDP).
    pub sock_drops: Option<u64>,
    pub dups_dropped: u64,
    pub dups_expected: u64,
    /// Lost inside the pipeline at a counted place (link overruns, send
    /// errors).
    pub inner_lost: u64,
    pub out: u64,
    pub delivered: u64,
    pub collector_drops: Option<u64>,
    /// Failed checks (wrong, twice, never sent).
    pub bad: u64,
    pub twice: u64,
    /// Packets no counter explains.
    pub unexplained: i64,
    /// What the source was.
    pub source: String,
    /// The tilewire layout, or the peer's threads.
    pub layout: String,
    /// tilewire over UDP: what each receiving net tile took from the
    /// socket, whole cell.
    pub nets_rx: Vec<u64>,
    /// tilewire: each tile's work per delivered packet and busy share, in
    /// the window.
    pub tiles: Vec<TileCost>,
}

impl Measured {
    pub(super) fn rate(&self) -> f64 {
        self.delivered_w as f64 / self.secs.max(1e-9)
    }
    pub(super) fn offered_rate(&self) -> f64 {
        self.offered_w as f64 / self.secs.max(1e-9)
    }
    pub(super) fn rx_rate(&self) -> f64 {
        self.rx_w as f64 / self.secs.max(1e-9)
    }
    pub(super) fn cpu_per_pkt(&self) -> f64 {
        self.cpu_ns_w as f64 / self.delivered_w.max(1) as f64
    }
    /// Lost before the pipeline's socket (veth, backlog): what the
    /// source sent that the socket neither took nor counted dropped.
    pub(super) fn lost_before_socket(&self) -> u64 {
        self.offered
            .saturating_sub(self.rx)
            .saturating_sub(self.sock_drops.unwrap_or(0))
    }
    /// Every loss of the cell.
    pub(super) fn lost(&self) -> u64 {
        (self.offered - self.dups_dropped.min(self.offered)).saturating_sub(self.delivered)
    }
}

/// One reading of the running counters.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub at: Instant,
    pub cpu: u64,
    pub helpers_cpu: u64,
    pub offered: u64,
    pub rx: u64,
    pub delivered: u64,
    /// tilewire: each tile's work so far (empty for the peer).
    pub work: Vec<TileReading>,
}

/// Frags consumer `index` of `link` lost to overruns (while polling and
/// while reading); 0 for a link or consumer the workspace does not hold.
pub(super) fn link_lost(ws: &tilewire_shmem::Workspace, link: &str, index: usize) -> u64 {
    tilewire_tile::link::Link::join(ws, link)
        .ok()
        .and_then(|l| l.fseqs().get(index).map(|f| f.lost()))
        .unwrap_or(0)
}

/// Warms up, then measures the window with `sample`; `window` is the
/// collector's flag for latencies.
pub(super) fn window(t: Timing, live: &Live, mut sample: impl FnMut() -> Sample, m: &mut Measured) {
    std::thread::sleep(t.warm);
    let a = sample();
    // SYNC: Relaxed; a flag the collector samples.
    live.window.store(true, Ordering::Relaxed);
    std::thread::sleep(t.window);
    live.window.store(false, Ordering::Relaxed);
    let b = sample();
    m.secs = b.at.duration_since(a.at).as_secs_f64();
    m.offered_w = b.offered - a.offered;
    m.rx_w = b.rx - a.rx;
    m.delivered_w = b.delivered - a.delivered;
    let helpers = b.helpers_cpu.saturating_sub(a.helpers_cpu);
    m.cpu_ns_w = b.cpu.saturating_sub(a.cpu).saturating_sub(helpers);
    let window_ns = b.at.duration_since(a.at).as_nanos() as u64;
    m.tiles = tiles_per_pkt(&a.work, &b.work, m.delivered_w, window_ns);
}

/// What a UDP cell reads of the pipeline under test.
pub(super) struct Probe {
    /// Packets it took from its socket.
    pub rx: u64,
    /// tilewire: each tile's work so far.
    pub work: Vec<TileReading>,
}

pub(super) fn finish_check(m: &mut Measured, col: &mut Collector, traffic: &Traffic) {
    m.delivered = col.check.good + col.check.bad();
    m.twice = col.check.twice;
    m.bad = col.check.bad() + col.check.never_sent(m.offered);
    m.dups_expected = traffic.dups_in(m.offered);
    m.latency = p50_p99(&mut col.latency);
}
