//! CPU accounting: a thread's own CPU time over a window (what a
//! measured thread spends), the whole process's (what a pipeline of
//! threads spends), and the cost per packet.
#![allow(unsafe_code)] // one clock_gettime, sound as said there

use std::time::Instant;

pub(crate) use tilewire_shmem::clock::thread_cpu_ns;

/// CPU time of the whole process (every thread, live or ended), in ns
/// (`CLOCK_PROCESS_CPUTIME_ID`); 0 if the clock cannot be read.
pub(crate) fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's CPU time and the wall clock since it was
/// started: one measured window of a thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadWindow {
    cpu0: u64,
    wall0: Instant,
}

impl ThreadWindow {
    /// Starts a window now, on the calling thread.
    pub(crate) fn start() -> ThreadWindow {
        ThreadWindow {
            cpu0: thread_cpu_ns(),
            wall0: Instant::now(),
        }
    }

    /// CPU ns the calling thread (the one that started it) spent since.
    pub(crate) fn cpu_ns(&self) -> u64 {
        thread_cpu_ns().saturating_sub(self.cpu0)
    }

    /// When it started (a deadline base).
    pub(crate) fn started_at(&self) -> Instant {
        self.wall0
    }

    /// Wall seconds since the start.
    pub(crate) fn secs(&self) -> f64 {
        self.wall0.elapsed().as_secs_f64()
    }
}

/// `cpu_ns` per packet of `pkts` (per one packet if there were none).
pub(crate) fn ns_per(cpu_ns: u64, pkts: u64) -> f64 {
    cpu_ns as f64 / pkts.max(1) as f64
}

/// One reading of a tile's metrics: its work so far (`work_ns`: time
/// the loop spent on iterations that worked) and what it forwarded.
#[derive(Debug, Clone, Default)]
pub(crate) struct TileReading {
    pub tile: String,
    pub work_ns: u64,
    pub by_chunk: u64,
    pub copied: u64,
}

/// Each tile of `pipeline` that has metrics, read now.
pub(crate) fn read_tiles(pipeline: &tilewire_pipeline::Pipeline) -> Vec<TileReading> {
    let ws = pipeline.workspace();
    pipeline
        .topology()
        .tiles
        .iter()
        .filter_map(|t| {
            let m = tilewire_pipeline::tile_metrics(ws, &t.name)?.snapshot();
            Some(TileReading {
                tile: t.name.clone(),
                work_ns: m.work_ns,
                by_chunk: m.forwarded_by_chunk,
                copied: m.forwarded_copied,
            })
        })
        .collect()
}

/// What each tile worked and forwarded between two readings of
/// [`read_tiles`], its work per packet of `pkts`, and as a share of
/// `window_ns` (1.0: busy the whole window).
pub(crate) fn tiles_per_pkt(
    before: &[TileReading],
    after: &[TileReading],
    pkts: u64,
    window_ns: u64,
) -> Vec<TileCost> {
    after
        .iter()
        .map(|a| {
            let b = before
                .iter()
                .find(|b| b.tile == a.tile)
                .cloned()
                .unwrap_or_default();
            let work = a.work_ns.saturating_sub(b.work_ns);
            TileCost {
                tile: a.tile.clone(),
                ns_per_pkt: ns_per(work, pkts),
                busy: work as f64 / window_ns.max(1) as f64,
                by_chunk: a.by_chunk.saturating_sub(b.by_chunk),
                copied: a.copied.saturating_sub(b.copied),
            }
        })
        .collect()
}

/// One tile's cost over a window.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TileCost {
    pub tile: String,
    /// Its work per packet delivered, ns.
    pub ns_per_pkt: f64,
    /// Its work as a share of the window (1.0: busy throughout).
    pub busy: f64,
    /// Frags it passed on by chunk (no byte copied) in the window.
    pub by_chunk: u64,
    /// Frags it passed on by a copy in the window.
    pub copied: u64,
}

impl TileCost {
    /// `gen 25 ns 48%`: for tables.
    pub(crate) fn short(&self) -> String {
        format!(
            "{} {:.0} ns {:.0}%",
            self.tile,
            self.ns_per_pkt,
            self.busy * 100.0
        )
    }
}
