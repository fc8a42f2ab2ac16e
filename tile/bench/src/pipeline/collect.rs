//! The end of both pipelines: every delivered packet checked
//! ([`Check`]) and its latency kept while the window is open.
//!
//! Over UDP the collector is a socket of the bench's own (in the peer's
//! namespace on veth) that both pipelines send to; its thread is not a
//! part of either pipeline and its CPU time is left out. In memory the
//! collector is the pipeline's last stage: tilewire's is a tile of the
//! bench's own kind, [`CollectKind`], registered beside the built-ins;
//! the peer's is its last thread. Both run the same [`Collector`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use core::sync::atomic::AtomicU8;
use tilewire_aio::frame::UdpFrame;
use tilewire_pipeline::tile::link::frag::FragMeta;
use tilewire_pipeline::tile::stem::{FragCopy, Outputs, Tile};
use tilewire_pipeline::{BuildCtx, BuildError, IoCounts, NoParams, TileKind};
use tilewire_shmem::clock::mono_ts;

use super::traffic::{Check, Traffic};

/// Latency samples kept at most (a few seconds at a few M/s).
const SAMPLES_MAX: usize = 1 << 24;

/// What the main thread sees of a collector while it runs.
#[derive(Debug, Default)]
pub(super) struct Live {
    /// Packets delivered (good or not) so far.
    pub delivered: AtomicU64,
    /// While set, latencies are kept.
    pub window: AtomicBool,
    /// The collecting thread's CPU time, when it is a helper whose CPU is
    /// left out (UDP); updated as it goes.
    pub cpu_ns: AtomicU64,
}

/// Checks what arrives and keeps the latencies of the window.
#[derive(Debug)]
pub(super) struct Collector {
    traffic: Arc<Traffic>,
    pub check: Check,
    /// Latencies (ns) of packets delivered while the window was open.
    pub latency: Vec<u32>,
    pub live: Arc<Live>,
}

impl Collector {
    pub(super) fn new(traffic: Arc<Traffic>, live: Arc<Live>) -> Collector {
        Collector {
            traffic,
            check: Check::new(),
            latency: Vec::with_capacity(1 << 20),
            live,
        }
    }

    /// One delivered payload, `latency_ns` after it was sent.
    #[inline]
    pub(super) fn packet(&mut self, payload: &[u8], latency_ns: u64, window: bool) {
        if self.check.payload(&self.traffic, payload).is_ok()
            && window
            && self.latency.len() < SAMPLES_MAX
        {
            self.latency
                .push(latency_ns.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// Publishes the count for the main thread (after a batch).
    #[inline]
    pub(super) fn publish(&self) {
        let n = self.check.good + self.check.bad();
        // SYNC: Relaxed; a progress count the main thread samples, no
        // data rides on it.
        self.live.delivered.store(n, Ordering::Relaxed);
    }

    /// Whether latencies are kept now.
    #[inline]
    pub(super) fn window(&self) -> bool {
        // SYNC: Relaxed; a flag for sampling, no data rides on it.
        self.live.window.load(Ordering::Relaxed)
    }
}

/// Where the collect tile leaves its collector when it ends.
#[derive(Debug)]
pub(super) struct CollectShared {
    pub traffic: Arc<Traffic>,
    pub live: Arc<Live>,
    pub result: Mutex<Option<Collector>>,
}

/// `bench-collect`: the last tile of tilewire's in-memory pipeline: 1
/// input, no outputs, runs a [`Collector`] over each frame's UDP payload
/// with the latency from the frag's `tsorig` (the gen tile's publish
/// time). Threads mode only: it hands its collector back through memory.
#[derive(Debug)]
pub(super) struct CollectKind(pub Arc<CollectShared>);

impl TileKind for CollectKind {
    type Params = NoParams;

    fn name(&self) -> &str {
        "bench-collect"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }

    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let col = Collector::new(self.0.traffic.clone(), self.0.live.clone());
        Ok(Box::new(CollectTile {
            copy: FragCopy::new(),
            col: Some(col),
            shared: self.0.clone(),
            window: false,
        }))
    }
}

struct CollectTile {
    copy: FragCopy,
    col: Option<Collector>,
    shared: Arc<CollectShared>,
    /// The window flag, read once per burst.
    window: bool,
}

impl Tile for CollectTile {
    fn kind(&self) -> &str {
        "bench-collect"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["good", "bad"]
    }

    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }

    fn after_frag(&mut self, _: usize, meta: &FragMeta, _: &mut Outputs<'_, '_>) {
        let Some(col) = self.col.as_mut() else {
            return;
        };
        let lat = u64::from(mono_ts().wrapping_sub(meta.tsorig));
        match UdpFrame::new_checked(self.copy.packet(meta)) {
            Ok(f) => col.packet(f.payload(), lat, self.window),
            Err(_) => col.packet(&[], 0, false),
        }
        if (col.check.good + col.check.bad()) % 256 == 0 {
            self.sync();
        }
    }

    fn end_of_burst(&mut self, _: usize, _: &mut Outputs<'_, '_>) {
        self.sync();
    }

    fn housekeeping(&mut self, _: &mut Outputs<'_, '_>) {
        self.sync();
    }

    fn metrics_write(&mut self, c: &mut [u64]) {
        if let Some(col) = self.col.as_ref() {
            c[0] = col.check.good;
            c[1] = col.check.bad();
        }
    }
}

impl CollectTile {
    /// Publishes the count and reads the window flag.
    fn sync(&mut self) {
        if let Some(col) = self.col.as_ref() {
            col.publish();
            self.window = col.window();
        }
    }
}

impl Drop for CollectTile {
    fn drop(&mut self) {
        if let Some(col) = self.col.take() {
            col.publish();
            if let Ok(mut r) = self.shared.result.lock() {
                *r = Some(col);
            }
        }
    }
}
