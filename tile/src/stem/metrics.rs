//! Tile metrics: what a running tile says about itself, in the workspace.
//!
//! Every tile the [run loop](crate::stem) drives owns one `TileMetrics`
//! object, named `<tile>.tm`, so a monitor in another process (joined
//! read-only) sees the tile live: whether it runs, its heartbeat, its
//! back-pressure, and counters of the tile's own (a dedup tile's
//! duplicates, a drain tile's retries). What flows on each link the tile
//! consumes is counted in that link's [fseq](crate::link::fseq) (frags, bytes,
//! filtered, overruns, frags lost, bad frags), and the latency of those
//! frags in a [hist](crate::hist) named `<tile>.lat<i>`; the metrics object
//! names the links so a monitor can find both.
//!
//! # Layout
//!
//! ```text
//! 0     magic, inputs, outputs, counters          (static after new)
//! 32    tile kind, 32 bytes, NUL padded
//! 64    16 input slots of 64 B: link name (48 B, NUL padded), consumer index
//! 1088  16 output slots of 64 B: link name (48 B)
//! 2112  16 counter names of 32 B
//! 2688  pid, state, heartbeat, housekeeping runs, loop iterations,
//!       back-pressure episodes and nanoseconds, boots, work nanoseconds,
//!       frags forwarded by chunk and by a copy, corrupt progress read on
//!       an output (reads, output and consumer, value, limit) (written by
//!       the tile; 16 words)
//! 2816  stop request                              (written by anyone)
//!       0: none; 1: stop now; 2^63 | mask: drain the inputs of mask
//!       (bit i: input i, bits 0..16), then stop; any other value: stop now
//! 2944  back-pressure episodes per output         (written by the tile)
//! 3072  the tile's counters                       (written by the tile)
//! ```
//!
//! The tile is the only writer of everything but the stop request, and
//! writes at housekeeping (not per frag), so a reader pays nothing on the
//! hot path. Words are read one at a time: a snapshot is a set of recent
//! values, not an atomic picture.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::link::producer::Corruption;

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{
    load_bytes, store_bytes, DeleteError, JoinError, NewError, Region, ShmObject,
};

const KIND: &str = "tile metrics";

/// Most input links of one tile.
pub const IN_MAX: usize = 16;
/// Most output links of one tile.
pub const OUT_MAX: usize = 16;
/// Most counters of a tile's own.
pub const COUNTERS_MAX: usize = 16;
/// Longest tile kind, in bytes.
pub const TILE_KIND_MAX: usize = 32;
/// Longest counter name, in bytes.
pub const COUNTER_NAME_MAX: usize = 32;
const LINK_NAME_SLOT: usize = 48;

const KIND_OFF: usize = 32;
const IN_OFF: usize = 64;
const SLOT_SZ: usize = 64;
const OUT_OFF: usize = IN_OFF + IN_MAX * SLOT_SZ;
const CTR_NAME_OFF: usize = OUT_OFF + OUT_MAX * SLOT_SZ;
const LIVE_OFF: usize = 2688;
const STOP_OFF: usize = LIVE_OFF + 128;
const OUT_BP_OFF: usize = STOP_OFF + 128;
const CTR_OFF: usize = OUT_BP_OFF + OUT_MAX * 8;
const FOOTPRINT: usize = CTR_OFF + COUNTERS_MAX * 8;

const _: () = assert!(CTR_NAME_OFF + COUNTERS_MAX * COUNTER_NAME_MAX <= LIVE_OFF);
const _: () = assert!(LIVE_OFF.is_multiple_of(128) && FOOTPRINT.is_multiple_of(128));

// Word indices of the live block.
const PID: usize = 0;
const STATE: usize = 1;
const HEARTBEAT: usize = 2;
const HK_CNT: usize = 3;
const LOOP_CNT: usize = 4;
const BP_CNT: usize = 5;
const BP_NS: usize = 6;
const BOOTS: usize = 7;
const WORK_NS: usize = 8;
const FWD_CHUNK: usize = 9;
const FWD_COPIED: usize = 10;
const CORRUPT_READS: usize = 11;
const CORRUPT_WHERE: usize = 12;
const CORRUPT_FOUND: usize = 13;
const CORRUPT_LIMIT: usize = 14;

// Values of the stop request word (see the layout table).
const STOP_NONE: u64 = 0;
const STOP_NOW: u64 = 1;
const STOP_DRAIN: u64 = 1 << 63;
const DRAIN_INPUTS: u64 = (1 << IN_MAX) - 1;

/// What a tile has been asked about stopping (see
/// [`TileMetricsHandle::stop_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopRequest {
    /// Nothing: run on.
    None,
    /// Stop now: read no more input, pass on what is pending, halt
    /// ([`TileMetricsHandle::request_stop`]).
    Now,
    /// Drain, then stop: keep reading the inputs whose bit is set in
    /// `inputs` (bit i: input i) until each is caught up, read none of the
    /// others, then stop as [`StopRequest::Now`] does
    /// ([`TileMetricsHandle::request_drain`]).
    Drain {
        /// The inputs to drain, bit i for input i.
        inputs: u64,
    },
}

impl StopRequest {
    fn from_word(w: u64) -> StopRequest {
        match w {
            STOP_NONE => StopRequest::None,
            w if w & !DRAIN_INPUTS == STOP_DRAIN => StopRequest::Drain {
                inputs: w & DRAIN_INPUTS,
            },
            // STOP_NOW, or a value nobody writes (a corrupt word): stopping
            // is the safe reading, as it was before drains existed.
            _ => StopRequest::Now,
        }
    }
}

/// What a tile is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileState {
    /// Its metrics exist; its loop has not started (or it is restarting).
    Booting,
    /// Its loop runs (if the heartbeat is fresh).
    Running,
    /// It stopped cleanly: links were left consistent.
    Halted,
}

impl TileState {
    fn from_word(w: u64) -> Option<TileState> {
        match w {
            0 => Some(TileState::Booting),
            1 => Some(TileState::Running),
            2 => Some(TileState::Halted),
            _ => None,
        }
    }
    fn word(self) -> u64 {
        match self {
            TileState::Booting => 0,
            TileState::Running => 1,
            TileState::Halted => 2,
        }
    }
}

/// Names a tile's metrics carry: what a monitor shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileLayout {
    /// The tile's kind (`drain`, `dedup`, ...), at most [`TILE_KIND_MAX`] bytes.
    pub kind: String,
    /// Input links and the consumer index the tile reads each as.
    pub inputs: Vec<(String, u32)>,
    /// Output links.
    pub outputs: Vec<String>,
    /// The tile's own counters, at most [`COUNTERS_MAX`], each at most
    /// [`COUNTER_NAME_MAX`] bytes.
    pub counters: Vec<String>,
}

impl TileLayout {
    /// Why this layout does not fit the object, if it does not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.kind.len() > TILE_KIND_MAX {
            return Err("tile kind longer than 32 bytes");
        }
        if self.inputs.len() > IN_MAX || self.outputs.len() > OUT_MAX {
            return Err("a tile has at most 16 inputs and 16 outputs");
        }
        if self.counters.len() > COUNTERS_MAX {
            return Err("a tile has at most 16 counters");
        }
        let names = self.inputs.iter().map(|(n, _)| n).chain(&self.outputs);
        if names.into_iter().any(|n| n.len() > LINK_NAME_SLOT) {
            return Err("link name longer than 48 bytes");
        }
        if self.counters.iter().any(|c| c.len() > COUNTER_NAME_MAX) {
            return Err("counter name longer than 32 bytes");
        }
        Ok(())
    }
}

/// The tile metrics object (its verbs; handles are [`TileMetricsHandle`]).
#[derive(Debug)]
pub enum TileMetrics {}

impl TileMetrics {
    /// Versioned magic.
    pub const MAGIC: u64 = magic(b"tw.tile", 2);
    /// Alignment of the object.
    pub const ALIGN: usize = 128;

    /// Bytes for the object (fixed).
    pub const fn footprint() -> usize {
        FOOTPRINT
    }

    /// Formats `mem` for a tile with `layout`, in state
    /// [`TileState::Booting`] with every counter zero.
    ///
    /// # Errors
    /// Misaligned, too small or read-only memory, or a layout that does not
    /// fit ([`NewError::BadParams`]).
    pub fn new(mem: Region<'_>, layout: &TileLayout) -> Result<(), NewError> {
        check_new(&mem, Self::ALIGN, FOOTPRINT)?;
        layout
            .check()
            .map_err(|what| NewError::BadParams { what })?;
        let too_small = NewError::TooSmall {
            len: mem.len(),
            need: FOOTPRINT,
        };
        let w = mem.atomic_u64s(0, FOOTPRINT / 8).ok_or(too_small.clone())?;
        let b = mem.atomic_bytes(0, FOOTPRINT).ok_or(too_small)?;
        // Relaxed: publish_magic's Release orders all of these.
        for x in &w[1..] {
            x.store(0, Ordering::Relaxed);
        }
        w[1].store(layout.inputs.len() as u64, Ordering::Relaxed);
        w[2].store(layout.outputs.len() as u64, Ordering::Relaxed);
        w[3].store(layout.counters.len() as u64, Ordering::Relaxed);
        store_bytes(
            &b[KIND_OFF..KIND_OFF + layout.kind.len()],
            layout.kind.as_bytes(),
        );
        for (i, (name, consumer)) in layout.inputs.iter().enumerate() {
            let at = IN_OFF + i * SLOT_SZ;
            store_bytes(&b[at..at + name.len()], name.as_bytes());
            w[(at + LINK_NAME_SLOT) / 8].store(*consumer as u64, Ordering::Relaxed);
        }
        for (i, name) in layout.outputs.iter().enumerate() {
            let at = OUT_OFF + i * SLOT_SZ;
            store_bytes(&b[at..at + name.len()], name.as_bytes());
        }
        for (i, name) in layout.counters.iter().enumerate() {
            let at = CTR_NAME_OFF + i * COUNTER_NAME_MAX;
            store_bytes(&b[at..at + name.len()], name.as_bytes());
        }
        publish_magic(&mem, Self::MAGIC);
        Ok(())
    }

    /// Joins the tile metrics at `mem` (read-only memory is fine for a
    /// monitor; it can then only read).
    ///
    /// # Errors
    /// Misaligned or too small memory, wrong magic or version, or counts
    /// out of range (a corrupt object).
    pub fn join(mem: Region<'_>) -> Result<TileMetricsHandle<'_>, JoinError> {
        check_join(&mem, KIND, Self::MAGIC, Self::ALIGN, FOOTPRINT)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let w = mem.atomic_u64s(0, FOOTPRINT / 8).ok_or(bad("layout"))?;
        let b = mem.atomic_bytes(0, FOOTPRINT).ok_or(bad("layout"))?;
        // SYNC: Relaxed; check_join's Acquire load of the magic pairs with
        // new's Release, so the static fields are visible.
        let count = |i: usize, max: usize, what| {
            let n = w[i].load(Ordering::Relaxed);
            if n > max as u64 {
                Err(bad(what))
            } else {
                Ok(n as usize)
            }
        };
        let inputs = count(1, IN_MAX, "input count")?;
        let outputs = count(2, OUT_MAX, "output count")?;
        let counters = count(3, COUNTERS_MAX, "counter count")?;
        Ok(TileMetricsHandle {
            mem,
            words: w,
            bytes: b,
            inputs,
            outputs,
            counters,
        })
    }

    /// Leaves: gives the memory back.
    pub fn leave(h: TileMetricsHandle<'_>) -> Region<'_> {
        h.mem
    }

    /// Deletes the object at `mem` (zeroes the magic).
    ///
    /// # Errors
    /// Read-only memory, or no live object there.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, Self::MAGIC, Self::ALIGN)
    }
}

impl ShmObject for TileMetrics {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = TileMetrics::MAGIC;
    const ALIGN: usize = TileMetrics::ALIGN;
    type Params = ();
    fn footprint(_: &()) -> Option<usize> {
        Some(FOOTPRINT)
    }
}

/// A joined tile metrics object.
#[derive(Debug, Clone, Copy)]
pub struct TileMetricsHandle<'a> {
    mem: Region<'a>,
    words: &'a [AtomicU64],
    bytes: &'a [AtomicU8],
    inputs: usize,
    outputs: usize,
    counters: usize,
}

/// One reading of a tile's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSnapshot {
    /// Process id of the tile's process (0 before it first ran).
    pub pid: u32,
    /// State; `None` for an unknown value (a corrupt object).
    pub state: Option<TileState>,
    /// `CLOCK_MONOTONIC` ns of the last heartbeat (0: never).
    pub heartbeat_ns: u64,
    /// Housekeeping runs.
    pub housekeeping: u64,
    /// Loop iterations (written at housekeeping).
    pub loops: u64,
    /// Back-pressure episodes: times the loop found an output without
    /// credits after having had them.
    pub backpressure: u64,
    /// Nanoseconds spent back-pressured (closed episodes).
    pub backpressure_ns: u64,
    /// Back-pressure episodes by output (which output had no credits).
    pub out_backpressure: Vec<u64>,
    /// The tile's own counters, by name.
    pub counters: Vec<(String, u64)>,
    /// Times a loop started on these metrics: 1 for a tile that ran once,
    /// and one more for each restart (by a runner's restart policy, or by
    /// hand after a crash).
    pub boots: u64,
    /// Nanoseconds the loop spent on iterations that did work (read,
    /// skipped or published frags), over every boot: the tile's busy time.
    /// The rest of its thread's time it polled empty inputs, waited for
    /// credits, slept, or ran the other tiles of its group. Per packet, or
    /// as a share of a window, it says which tile is the limit.
    pub work_ns: u64,
    /// Frags the tile passed on with `Outputs::forward` by chunk, copying
    /// no byte, since this boot.
    pub forwarded_by_chunk: u64,
    /// Frags it passed on with `Outputs::forward` by one copy (an
    /// unreliable link on either side), since this boot.
    pub forwarded_copied: u64,
    /// A consumer progress on one of the tile's outputs that no healthy
    /// link can hold, as the tile's producer last read it; `None` while
    /// none was read. The producer gives no credits on it: the output
    /// stalls rather than overrun (see
    /// [`Producer::corruption`](crate::link::producer::Producer::corruption)).
    pub corrupt: Option<CorruptOutput>,
}

/// What a tile's producer found corrupt on one of its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptOutput {
    /// The output (index among the tile's outputs).
    pub output: usize,
    /// Which consumer's progress, the value read and the most it may be.
    pub what: Corruption,
    /// Credit refreshes that found a corrupt progress so far.
    pub reads: u64,
}

fn read_str(bytes: &[AtomicU8]) -> String {
    let mut buf = vec![0u8; bytes.len()];
    load_bytes(&mut buf, bytes);
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl<'a> TileMetricsHandle<'a> {
    fn live(&self, i: usize) -> &'a AtomicU64 {
        &self.words[LIVE_OFF / 8 + i]
    }

    /// The tile's kind.
    pub fn kind(&self) -> String {
        read_str(&self.bytes[KIND_OFF..KIND_OFF + TILE_KIND_MAX])
    }

    /// Input links, with the consumer index the tile reads each as.
    pub fn inputs(&self) -> Vec<(String, u32)> {
        (0..self.inputs)
            .map(|i| {
                let at = IN_OFF + i * SLOT_SZ;
                let name = read_str(&self.bytes[at..at + LINK_NAME_SLOT]);
                // SYNC: Relaxed; static since new (see join).
                let c = self.words[(at + LINK_NAME_SLOT) / 8].load(Ordering::Relaxed);
                (name, c as u32)
            })
            .collect()
    }

    /// Output links.
    pub fn outputs(&self) -> Vec<String> {
        (0..self.outputs)
            .map(|i| {
                let at = OUT_OFF + i * SLOT_SZ;
                read_str(&self.bytes[at..at + LINK_NAME_SLOT])
            })
            .collect()
    }

    /// Names of the tile's own counters.
    pub fn counter_names(&self) -> Vec<String> {
        (0..self.counters)
            .map(|i| {
                let at = CTR_NAME_OFF + i * COUNTER_NAME_MAX;
                read_str(&self.bytes[at..at + COUNTER_NAME_MAX])
            })
            .collect()
    }

    /// The layout the object was made with.
    pub fn layout(&self) -> TileLayout {
        TileLayout {
            kind: self.kind(),
            inputs: self.inputs(),
            outputs: self.outputs(),
            counters: self.counter_names(),
        }
    }

    /// The tile's state; `None` for an unknown value (a corrupt object).
    pub fn state(&self) -> Option<TileState> {
        // SYNC: Acquire; pairs with the Release in set_state.
        TileState::from_word(self.live(STATE).load(Ordering::Acquire))
    }

    /// Reads every live value (see the module docs on consistency).
    pub fn snapshot(&self) -> TileSnapshot {
        // SYNC: Relaxed throughout; each word is a single-writer counter
        // and a monitor only wants recent values.
        let l = |i| self.live(i).load(Ordering::Relaxed);
        let names = self.counter_names();
        TileSnapshot {
            pid: l(PID) as u32,
            state: self.state(),
            heartbeat_ns: l(HEARTBEAT),
            housekeeping: l(HK_CNT),
            loops: l(LOOP_CNT),
            backpressure: l(BP_CNT),
            backpressure_ns: l(BP_NS),
            boots: l(BOOTS),
            work_ns: l(WORK_NS),
            forwarded_by_chunk: l(FWD_CHUNK),
            forwarded_copied: l(FWD_COPIED),
            corrupt: self.corrupt(),
            out_backpressure: (0..self.outputs)
                .map(|i| self.words[OUT_BP_OFF / 8 + i].load(Ordering::Relaxed))
                .collect(),
            counters: names
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, self.words[CTR_OFF / 8 + i].load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Asks the tile to stop at its next housekeeping: it reads no more
    /// input, passes on what it holds, and halts (see
    /// [the run loop](crate::stem#stopping)). Any process joined read-write
    /// may ask. A drain asked before ([`TileMetricsHandle::request_drain`])
    /// becomes this plain stop.
    ///
    /// # Panics
    /// On a read-only join.
    pub fn request_stop(&self) {
        assert!(self.mem.is_writable(), "request_stop on a read-only join");
        // SYNC: Release; pairs with the Acquire in stop_request and
        // stop_requested, so what the requester wrote before asking is
        // visible to the stopping tile.
        self.words[STOP_OFF / 8].store(STOP_NOW, Ordering::Release);
    }

    /// Asks the tile to drain, then stop, from its next housekeeping: it
    /// keeps reading the inputs whose bit is set in `inputs` (bit i: input
    /// i) until each is caught up, reads none of the others from then on,
    /// and then stops as [`TileMetricsHandle::request_stop`] does (see
    /// [the run loop](crate::stem#stopping)). Bits of inputs the tile does
    /// not have are dropped; with none left this is a plain stop.
    ///
    /// A plain stop asked before or after wins: a drain never turns a stop
    /// back into a drain. A drain asked over an earlier drain replaces its
    /// inputs, but a tile that already began draining keeps the inputs it
    /// saw first.
    ///
    /// # Panics
    /// On a read-only join.
    pub fn request_drain(&self, inputs: u64) {
        assert!(self.mem.is_writable(), "request_drain on a read-only join");
        let mine = DRAIN_INPUTS & ((1u64 << self.inputs) - 1);
        let want = STOP_DRAIN | (inputs & mine);
        let word = &self.words[STOP_OFF / 8];
        // SYNC: Relaxed; only a guess for the compare-exchange below, which
        // checks it again.
        let mut seen = word.load(Ordering::Relaxed);
        while StopRequest::from_word(seen) != StopRequest::Now {
            // SYNC: Release on success; pairs with the Acquire in
            // stop_request and stop_requested, as in request_stop. Relaxed
            // on failure: the value found is only looked at, as above.
            match word.compare_exchange_weak(seen, want, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(found) => seen = found,
            }
        }
    }

    /// True once a stop or a drain was requested (and not cleared by a new
    /// run).
    pub fn stop_requested(&self) -> bool {
        // SYNC: Acquire; pairs with request_stop and request_drain.
        self.words[STOP_OFF / 8].load(Ordering::Acquire) != STOP_NONE
    }

    /// What the tile has been asked about stopping (and not cleared by a
    /// new run).
    pub fn stop_request(&self) -> StopRequest {
        // SYNC: Acquire; pairs with request_stop and request_drain.
        StopRequest::from_word(self.words[STOP_OFF / 8].load(Ordering::Acquire))
    }

    // The writer's side: used by the run loop, which is the only writer.
    // SYNC: Relaxed throughout; single writer, readers want recent values.

    pub(crate) fn boot(&self, pid: u32) {
        self.live(PID).store(pid as u64, Ordering::Relaxed);
        let boots = self.live(BOOTS);
        boots.store(boots.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.live(STATE)
            .store(TileState::Booting.word(), Ordering::Relaxed);
        // SYNC: Release; a stop or drain asked of the previous run is
        // forgotten; pairs with the Acquire in stop_request and
        // stop_requested.
        self.words[STOP_OFF / 8].store(STOP_NONE, Ordering::Release);
    }

    pub(crate) fn set_state(&self, s: TileState) {
        // SYNC: Release; a reader that sees Halted sees the final
        // progress and counters written before it.
        self.live(STATE).store(s.word(), Ordering::Release);
    }

    pub(crate) fn heartbeat(&self, now_ns: u64, loops: u64) {
        self.live(HEARTBEAT).store(now_ns, Ordering::Relaxed);
        self.live(LOOP_CNT).store(loops, Ordering::Relaxed);
        let hk = self.live(HK_CNT);
        hk.store(hk.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub(crate) fn backpressure_begin(&self, out: usize) {
        let bp = self.live(BP_CNT);
        bp.store(bp.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if out < self.outputs {
            let o = &self.words[OUT_BP_OFF / 8 + out];
            o.store(o.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// Stores what the tile passed on with `Outputs::forward` so far: by
    /// chunk, and by a copy.
    pub(crate) fn set_forwarded(&self, by_chunk: u64, copied: u64) {
        self.live(FWD_CHUNK).store(by_chunk, Ordering::Relaxed);
        self.live(FWD_COPIED).store(copied, Ordering::Relaxed);
    }

    /// What one of the tile's producers last found corrupt (see
    /// [`CorruptOutput`]); `None` while none did. A few loads, no
    /// allocation: what a runner polls.
    pub fn corrupt(&self) -> Option<CorruptOutput> {
        // SYNC: Relaxed; single-writer words, read for a report.
        let l = |i| self.live(i).load(Ordering::Relaxed);
        let reads = l(CORRUPT_READS);
        (reads > 0).then(|| {
            let at = l(CORRUPT_WHERE);
            CorruptOutput {
                output: (at & 0xffff_ffff) as usize,
                what: Corruption {
                    consumer: (at >> 32) as usize,
                    found: l(CORRUPT_FOUND),
                    limit: l(CORRUPT_LIMIT),
                },
                reads,
            }
        })
    }

    /// Records what output `output`'s producer found corrupt, `reads`
    /// times so far (see [`CorruptOutput`]).
    pub(crate) fn set_corrupt(&self, output: usize, c: &Corruption, reads: u64) {
        let at = output as u64 | ((c.consumer as u64) << 32);
        self.live(CORRUPT_WHERE).store(at, Ordering::Relaxed);
        self.live(CORRUPT_FOUND).store(c.found, Ordering::Relaxed);
        self.live(CORRUPT_LIMIT).store(c.limit, Ordering::Relaxed);
        self.live(CORRUPT_READS).store(reads, Ordering::Relaxed);
    }

    /// Adds `ns` to the time the loop spent on iterations that worked.
    pub(crate) fn add_work(&self, ns: u64) {
        let w = self.live(WORK_NS);
        w.store(
            w.load(Ordering::Relaxed).wrapping_add(ns),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn backpressure_end(&self, ns: u64) {
        let t = self.live(BP_NS);
        t.store(t.load(Ordering::Relaxed) + ns, Ordering::Relaxed);
    }

    pub(crate) fn counter_count(&self) -> usize {
        self.counters
    }

    pub(crate) fn set_counters(&self, values: &[u64]) {
        for (w, v) in self.words[CTR_OFF / 8..CTR_OFF / 8 + self.counters]
            .iter()
            .zip(values)
        {
            w.store(*v, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::HeapMem;

    fn layout() -> TileLayout {
        TileLayout {
            kind: "drain".into(),
            inputs: vec![("net.rx".into(), 1), ("gossip".into(), 0)],
            outputs: vec!["out".into()],
            counters: vec!["sent".into(), "again".into()],
        }
    }

    #[test]
    fn layout_round_trips_and_live_values_read_back() {
        let mut m = HeapMem::new(FOOTPRINT);
        TileMetrics::new(m.region(), &layout()).unwrap();
        let h = TileMetrics::join(m.region()).unwrap();
        assert_eq!(h.layout(), layout());
        h.boot(42);
        h.set_state(TileState::Running);
        h.heartbeat(1234, 99);
        h.backpressure_begin(0);
        h.backpressure_end(500);
        h.set_counters(&[7, 8]);
        let s = h.snapshot();
        assert_eq!(s.pid, 42);
        assert_eq!(s.state, Some(TileState::Running));
        assert_eq!((s.heartbeat_ns, s.loops, s.housekeeping), (1234, 99, 1));
        assert_eq!((s.backpressure, s.backpressure_ns), (1, 500));
        assert_eq!(s.out_backpressure, vec![1]);
        assert_eq!(
            s.counters,
            vec![("sent".to_string(), 7), ("again".to_string(), 8)]
        );
    }

    #[test]
    fn stop_request_is_seen_and_cleared_by_boot() {
        let mut m = HeapMem::new(FOOTPRINT);
        TileMetrics::new(m.region(), &layout()).unwrap();
        let h = TileMetrics::join(m.region()).unwrap();
        assert!(!h.stop_requested());
        h.request_stop();
        assert!(h.stop_requested());
        h.boot(1);
        assert!(!h.stop_requested());
    }

    #[test]
    fn drain_request_encodes_its_inputs_and_a_stop_overrides_it() {
        let mut m = HeapMem::new(FOOTPRINT);
        TileMetrics::new(m.region(), &layout()).unwrap();
        let h = TileMetrics::join(m.region()).unwrap();
        let word = |h: &TileMetricsHandle<'_>| h.words[STOP_OFF / 8].load(Ordering::Relaxed);
        assert_eq!(h.stop_request(), StopRequest::None);
        for inputs in [0b01, 0b10, 0b11, 0] {
            h.request_drain(inputs);
            assert_eq!(h.stop_request(), StopRequest::Drain { inputs });
            assert_eq!(word(&h), (1 << 63) | inputs, "the layout table's encoding");
            assert!(h.stop_requested());
        }
        // The layout has two inputs: bits of inputs it lacks are dropped.
        h.request_drain(0b1110);
        assert_eq!(h.stop_request(), StopRequest::Drain { inputs: 0b10 });
        h.request_drain(u64::MAX);
        assert_eq!(h.stop_request(), StopRequest::Drain { inputs: 0b11 });
        // A stop turns the drain into a plain stop, and a drain does not
        // turn it back.
        h.request_stop();
        assert_eq!(h.stop_request(), StopRequest::Now);
        assert_eq!(word(&h), 1);
        h.request_drain(0b01);
        assert_eq!(h.stop_request(), StopRequest::Now);
        assert!(h.stop_requested());
        // A new run forgets both kinds.
        h.boot(1);
        assert_eq!(h.stop_request(), StopRequest::None);
        assert!(!h.stop_requested());
        h.request_drain(0b01);
        h.boot(1);
        assert_eq!(h.stop_request(), StopRequest::None);
        // A word nobody writes reads as a plain stop.
        for w in [2, 3, (1 << 63) | (1 << 16), u64::MAX] {
            h.words[STOP_OFF / 8].store(w, Ordering::Relaxed);
            assert_eq!(h.stop_request(), StopRequest::Now, "{w:#x}");
            h.request_drain(0b01);
            assert_eq!(h.stop_request(), StopRequest::Now, "{w:#x} is kept");
        }
    }

    #[test]
    fn bad_layouts_are_refused() {
        let mut m = HeapMem::new(FOOTPRINT);
        let mut l = layout();
        l.kind = "k".repeat(33);
        assert!(matches!(
            TileMetrics::new(m.region(), &l),
            Err(NewError::BadParams { .. })
        ));
        let mut l = layout();
        l.counters = (0..17).map(|i| format!("c{i}")).collect();
        assert!(TileMetrics::new(m.region(), &l).is_err());
        let mut l = layout();
        l.outputs = vec!["x".repeat(49)];
        assert!(TileMetrics::new(m.region(), &l).is_err());
    }

    #[test]
    fn corrupt_counts_are_refused_on_join() {
        let mut m = HeapMem::new(FOOTPRINT);
        TileMetrics::new(m.region(), &layout()).unwrap();
        let r = m.region();
        r.atomic_u64(8).unwrap().store(17, Ordering::Relaxed);
        assert!(matches!(
            TileMetrics::join(r),
            Err(JoinError::BadParams {
                what: "input count",
                ..
            })
        ));
    }

    #[test]
    fn wrong_object_is_refused() {
        let mut m = HeapMem::new(FOOTPRINT);
        crate::link::fseq::Fseq::new(m.region(), 0, true).unwrap();
        assert!(matches!(
            TileMetrics::join(m.region()),
            Err(JoinError::BadMagic { .. })
        ));
    }
}
