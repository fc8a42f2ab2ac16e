//! [`Stem`]: a tile with its links, and one iteration of its loop
//! (steps 2 to 8 of the [module docs](super)) with the housekeeping
//! between them. Running it, a whole run or a turn at a time, and its
//! stop are in `run`.

use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::tick::{self, ticks};
use tilewire_shmem::{check_name, Workspace};

use crate::hist::{Hist, HistHandle};
use crate::link::consumer::{Consumer, Next};
use crate::link::mcache::MCacheHandle;
use crate::link::producer::Producer;
use crate::link::Link;
use crate::part::{get_or_make, PartError};
use crate::stem::config::{Backoff, IdlePolicy, Share, ShareBy, StemConfig};
use crate::stem::copy::FragCopy;
use crate::stem::error::TileError;
use crate::stem::forward::{settled, Forwarded, Forwarding, Frag, Place, Reading};
use crate::stem::metrics::{TileLayout, TileMetrics, TileMetricsHandle, COUNTERS_MAX};
use crate::stem::names::{latency_name, metrics_name, TILE_NAME_MAX};
use crate::stem::tile::{Filter, Outputs, Tile};

/// A tile with its links, ready to run.
#[derive(Debug)]
pub struct Stem<'w, T: Tile> {
    pub(super) name: String,
    pub(super) tile: T,
    pub(super) config: StemConfig,
    pub(super) inputs: Vec<Consumer<'w>>,
    /// Each input link's mcache, where a stop counts what was left unread.
    pub(super) input_mcaches: Vec<MCacheHandle<'w>>,
    pub(super) latency: Vec<HistHandle<'w>>,
    pub(super) outputs: Vec<Producer<'w>>,
    pub(super) metrics: TileMetricsHandle<'w>,
    pub(super) counters: [u64; COUNTERS_MAX],
    pub(super) burst: u64,
    pub(super) rng: u64,
    pub(super) loops: u64,
    pub(super) next_housekeeping: u64,
    pub(super) next_input: usize,
    /// When the current back-pressure episode began (0: not in one).
    pub(super) backpressure_since: u64,
    pub(super) idle: IdlePolicy,
    /// Where it is in an idle spell (backoff only).
    pub(super) backoff: Backoff,
    /// Where the run is (see [`Stem::turn`]).
    pub(super) phase: Phase,
    /// Its share of its inputs' frags, if it shares them.
    pub(super) share: Option<Share>,
    /// `loops` when the current run began.
    pub(super) first: u64,
    /// The tile reads [`Reading::Settled`].
    pub(super) settled: bool,
    /// Where a settled tile's frags from an unreliable input are copied.
    pub(super) copy: FragCopy,
    /// Forwarding by chunk: ledgers and holds (see [`super::forward`]).
    pub(super) fwd: Forwarding,
    /// The tick counter at the end of the last timed iteration (see
    /// `Stem::step_worked`).
    pub(super) last_tick: u64,
    /// Ticks of iterations that worked, not yet added to the metrics.
    pub(super) work_ticks: u64,
    /// Nanoseconds per tick of the counter.
    pub(super) ns_per_tick: f64,
}

/// Where a stem is in a run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
    /// Not running: never started, or halted (a turn starts it again).
    Ready,
    /// Running until a stop is asked.
    Running,
    /// Draining the inputs of `mask`; `caught` are those found caught up.
    Draining {
        mask: u64,
        caught: u64,
        deadline: u64,
    },
    /// Taking nothing in, waiting for [`Tile::pending`] to reach zero;
    /// `drained` were the inputs of the drain, if any.
    Stopping { drained: u64, deadline: u64 },
}

/// Which inputs one iteration may poll.
#[derive(Debug, Clone, Copy)]
pub(super) enum Read {
    /// Every input in turn (running).
    All,
    /// Every input in turn, without `before_credit` and `after_credit`
    /// (the rest of a turn that published its share).
    Quiet,
    /// The inputs whose bit is set, in turn (draining; never 0).
    Only(u64),
    /// None (stopping).
    Nothing,
}

/// What one iteration's poll found.
#[derive(Debug, Clone, Copy)]
pub(super) enum Polled {
    /// No input was polled (back-pressure, or none to read).
    Nothing,
    /// Input `i` had nothing new: it is caught up.
    Empty(usize),
    /// Input `i` had something (a frag, a frag to retry, an overrun): it
    /// is not caught up.
    Busy(usize),
}

/// Most frags one iteration takes from one input: enough that the
/// iteration's own work (the credit check, `before_credit` and
/// `after_credit`, choosing the input) is spread thin, few enough that an
/// iteration stays short (a tile's other inputs, its housekeeping and the
/// other tiles of its group wait for it).
pub const FRAG_BATCH: u64 = 16;

/// The input to poll after `from` among those of `mask` (not 0, and only
/// bits of inputs that exist): the first at or after `from`, else the
/// first.
#[inline]
fn next_of(mask: u64, from: usize) -> usize {
    let later = mask >> from;
    if later != 0 {
        from + later.trailing_zeros() as usize
    } else {
        mask.trailing_zeros() as usize
    }
}

impl<'w, T: Tile> Stem<'w, T> {
    /// Sets up tile `name` of workspace `ws`, reading each `(link, consumer
    /// index)` of `inputs` and publishing on `outputs`. Its metrics and
    /// latency histograms are made in the workspace, or, when a tile of this
    /// name ran before with the same links, joined (its counters go on).
    ///
    /// # Errors
    /// See [`TileError`]; nothing is left half made.
    pub fn new(
        ws: &'w Workspace,
        name: &str,
        tile: T,
        inputs: &[(&Link<'w>, usize)],
        outputs: &[&Link<'w>],
        config: StemConfig,
    ) -> Result<Stem<'w, T>, TileError> {
        check_name(name).map_err(|e| TileError::Name {
            name: name.into(),
            why: e.to_string(),
        })?;
        if name.len() > TILE_NAME_MAX {
            return Err(TileError::Name {
                name: name.into(),
                why: format!("longer than {TILE_NAME_MAX} bytes"),
            });
        }
        let layout = TileLayout {
            kind: tile.kind().into(),
            inputs: inputs
                .iter()
                .map(|(l, i)| (l.name().to_owned(), *i as u32))
                .collect(),
            outputs: outputs.iter().map(|l| l.name().to_owned()).collect(),
            counters: tile.counters().iter().map(|c| (*c).to_owned()).collect(),
        };
        layout.check().map_err(|what| TileError::Layout {
            tile: name.into(),
            what,
        })?;
        let consumers = inputs
            .iter()
            .map(|(l, i)| l.consumer(*i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TileError::Link {
                tile: name.into(),
                source,
            })?;
        let producers: Vec<Producer<'w>> = outputs.iter().map(|l| l.producer()).collect();
        let mut consumers = consumers;
        let fwd = Forwarding::new(&consumers, &producers);
        for (i, c) in consumers.iter_mut().enumerate() {
            fwd.apply(i, c);
        }

        let part = metrics_name(name);
        let (mem, _) = get_or_make(
            ws,
            &part,
            TileMetrics::ALIGN,
            TileMetrics::footprint(),
            |mem| TileMetrics::new(mem, &layout),
        )?;
        let metrics = TileMetrics::join(mem).map_err(|source| PartError::Join { part, source })?;
        let found = metrics.layout();
        if found != layout {
            return Err(TileError::Mismatch {
                tile: name.into(),
                found: Box::new(found),
            });
        }
        let mut latency = Vec::new();
        for i in 0..inputs.len() {
            let part = latency_name(name, i);
            let (mem, _) = get_or_make(ws, &part, Hist::ALIGN, Hist::footprint(), Hist::new)?;
            latency.push(Hist::join(mem).map_err(|source| PartError::Join { part, source })?);
        }

        metrics.boot(std::process::id());
        let seed = mono_ns() ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        let settled = tile.reading() == Reading::Settled;
        let mut stem = Stem {
            name: name.into(),
            burst: tile.burst().max(1),
            tile,
            config: StemConfig {
                lazy: config.lazy.max(2),
                ..config
            },
            inputs: consumers,
            input_mcaches: inputs.iter().map(|(l, _)| *l.mcache()).collect(),
            latency,
            outputs: producers,
            metrics,
            counters: [0; COUNTERS_MAX],
            rng: seed | 1,
            loops: 0,
            next_housekeeping: 0,
            next_input: 0,
            backpressure_since: 0,
            idle: IdlePolicy::Spin,
            backoff: Backoff::default(),
            phase: Phase::Ready,
            first: 0,
            share: None,
            settled,
            copy: FragCopy::new(),
            fwd,
            last_tick: ticks(),
            work_ticks: 0,
            ns_per_tick: tick::calibration().map_or(1.0, |c| c.ns_per_tick()),
        };
        stem.schedule_housekeeping();
        Ok(stem)
    }

    /// What the loop does while the tile has nothing to do (default
    /// [`IdlePolicy::Spin`]).
    pub fn set_idle(&mut self, idle: IdlePolicy) {
        self.idle = idle;
    }

    /// Makes the tile one of `of` that share the work of its inputs: it
    /// takes frag `seq` of an input only when `by` deals it to `index`
    /// (see [`ShareBy`]) and passes over the others without reading them
    /// (counted as filtered, as [`Filter::Skip`] is), so over a reliable
    /// link each frag is processed by exactly one of the `of` tiles.
    ///
    /// # Panics
    /// If `index >= of`.
    pub fn set_share(&mut self, index: u32, of: u32, by: ShareBy) {
        assert!(index < of, "share {index} of {of}");
        self.share = (of > 1).then_some(Share {
            index: u64::from(index),
            of: u64::from(of),
            by,
        });
    }

    /// The tile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tile's metrics (also the way to ask it to stop).
    pub fn metrics(&self) -> TileMetricsHandle<'w> {
        self.metrics
    }

    /// The tile.
    pub fn tile(&self) -> &T {
        &self.tile
    }

    /// The tile, mutably (between runs).
    pub fn tile_mut(&mut self) -> &mut T {
        &mut self.tile
    }

    /// The input consumers (their seqs and fseqs).
    pub fn inputs(&self) -> &[Consumer<'w>] {
        &self.inputs
    }

    /// The output producers.
    pub fn outputs(&self) -> &[Producer<'w>] {
        &self.outputs
    }

    /// What the tile passed on with [`Outputs::forward`]: by chunk (no
    /// byte copied) and by one copy.
    pub fn forwarded(&self) -> Forwarded {
        self.fwd.counts
    }

    /// Takes the tile back.
    pub fn into_tile(self) -> T {
        self.tile
    }

    fn schedule_housekeeping(&mut self) {
        // xorshift64: cheap, and only needs to break lockstep.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let lazy = self.config.lazy;
        self.next_housekeeping = self.loops + lazy / 2 + self.rng % lazy;
    }

    pub(super) fn housekeeping(&mut self) {
        for p in &mut self.outputs {
            p.refresh_credits();
            p.housekeeping();
        }
        self.tile.housekeeping(&mut Outputs {
            producers: &mut self.outputs,
            fwd: &mut self.fwd,
            tspub: None,
        });
        // After the tile's housekeeping: it may have passed frags on.
        self.publish_inputs();
        self.write_metrics();
        self.schedule_housekeeping();
    }

    /// Before the tile sleeps: hands back the holds its outputs' readers
    /// no longer need (they may have caught up since its last refresh,
    /// say the next tile of its group) and publishes its inputs' progress,
    /// so no producer waits for credits this tile could give while it
    /// sleeps. True if it still holds forwarded frags: some reader of an
    /// output has not passed them yet, and will not wake this tile when it
    /// does, so the tile must nap rather than sleep until a frag comes.
    pub(super) fn settle_holds(&mut self) -> bool {
        if !self.fwd.holding() {
            return false;
        }
        self.publish_inputs();
        self.fwd.holding()
    }

    /// Publishes each input's progress, less what the tile holds: the
    /// holds for frags forwarded by chunk first, from the outputs'
    /// readers' progress.
    fn publish_inputs(&mut self) {
        self.fwd.refresh(&mut self.inputs, &self.outputs);
        for (i, c) in self.inputs.iter_mut().enumerate() {
            c.hold(self.tile.held(i));
            c.housekeeping();
        }
    }

    fn write_metrics(&mut self) {
        if self.work_ticks != 0 {
            self.metrics
                .add_work((self.work_ticks as f64 * self.ns_per_tick) as u64);
            self.work_ticks = 0;
        }
        let f = self.fwd.counts;
        self.metrics.set_forwarded(f.by_chunk, f.copied);
        for (o, p) in self.outputs.iter().enumerate() {
            if let Some((c, reads)) = p.corruption() {
                self.metrics.set_corrupt(o, &c, reads);
            }
        }
        let n = self.metrics.counter_count();
        self.tile.metrics_write(&mut self.counters[..n]);
        self.metrics.set_counters(&self.counters[..n]);
        self.metrics.heartbeat(mono_ns(), self.loops);
    }

    /// Closes the current back-pressure episode, if any, adding its
    /// duration to the metrics.
    #[inline]
    pub(super) fn end_backpressure(&mut self) {
        if self.backpressure_since != 0 {
            let ns = mono_ns().saturating_sub(self.backpressure_since);
            self.metrics.backpressure_end(ns);
            self.backpressure_since = 0;
        }
    }

    /// True if every output has a burst of credits; otherwise notes the
    /// back-pressure.
    #[inline]
    fn credits_ok(&mut self) -> bool {
        let burst = self.burst;
        let short = self
            .outputs
            .iter_mut()
            .position(|p| p.credits() < burst && p.refresh_credits() < burst);
        match short {
            None => {
                self.end_backpressure();
                true
            }
            Some(out) => {
                if self.backpressure_since == 0 {
                    self.backpressure_since = mono_ns().max(1);
                    self.metrics.backpressure_begin(out);
                }
                false
            }
        }
    }

    /// Frags one iteration may read from one input: as many as every
    /// output has a burst of credits for (at least one: the credit check
    /// before `after_credit` found a burst), at most [`FRAG_BATCH`].
    #[inline]
    fn batch_room(&self) -> u64 {
        let least = self
            .outputs
            .iter()
            .map(Producer::credits)
            .min()
            .unwrap_or(u64::MAX);
        (least / self.burst).clamp(1, FRAG_BATCH)
    }

    /// One iteration, steps 2 to 8 of the stem docs, polling one of the
    /// inputs `read` allows and taking up to a batch of frags from it (see
    /// [`FRAG_BATCH`]): the credit check, `before_credit` and `after_credit`
    /// run once for the batch. Always inlined, and always called with a
    /// constant `read`, so the running loop's `Read::All` costs nothing
    /// over a loop that had no choice.
    #[inline(always)]
    pub(super) fn step(&mut self, read: Read) -> Polled {
        let quiet = matches!(read, Read::Quiet);
        if !quiet {
            self.tile.before_credit(&mut Outputs {
                producers: &mut self.outputs,
                fwd: &mut self.fwd,
                tspub: None,
            });
        }
        if !self.credits_ok() {
            return Polled::Nothing;
        }
        if !quiet {
            self.tile.after_credit(&mut Outputs {
                producers: &mut self.outputs,
                fwd: &mut self.fwd,
                tspub: None,
            });
        }
        let i = match read {
            Read::All | Read::Quiet if !self.inputs.is_empty() => self.next_input,
            Read::Only(mask) => next_of(mask, self.next_input),
            Read::All | Read::Quiet | Read::Nothing => return Polled::Nothing,
        };
        self.next_input = if i + 1 == self.inputs.len() { 0 } else { i + 1 };
        let room = self.batch_room();
        // One clock read stamps every frag the batch forwards.
        let mut out = Outputs {
            producers: &mut self.outputs,
            fwd: &mut self.fwd,
            tspub: None,
        };
        let mut taken = 0;
        let polled = loop {
            let input = &mut self.inputs[i];
            let meta = match input.next_frag() {
                Next::Empty => {
                    self.tile.end_of_burst(i, &mut out);
                    input.hold(self.tile.held(i));
                    if out.fwd.holding() {
                        // Caught up while holding frags for the outputs'
                        // readers: hand back what they passed meanwhile, or
                        // the input's producer may wait for credits this
                        // tile could give.
                        out.fwd.refresh(&mut self.inputs, &*out.producers);
                        self.inputs[i].housekeeping();
                    }
                    // A batch that took frags was work; the next poll
                    // finds the input caught up again and says so.
                    break if taken == 0 {
                        Polled::Empty(i)
                    } else {
                        Polled::Busy(i)
                    };
                }
                Next::Overrun { .. } => break Polled::Busy(i),
                Next::Ready(meta) => meta,
            };
            taken += 1;
            if let Some(share) = self.share {
                if !share.mine(meta.seq, meta.sig) {
                    input.skip(meta.sz);
                    if taken == room {
                        break Polled::Busy(i);
                    }
                    continue;
                }
            }
            match self.tile.before_frag(i, meta.seq, meta.sig) {
                Filter::Process => {}
                Filter::Skip => {
                    input.skip(meta.sz);
                    if taken == room {
                        break Polled::Busy(i);
                    }
                    continue;
                }
                Filter::Retry => break Polled::Busy(i),
            }
            let Some(payload) = input.payload(&meta) else {
                break Polled::Busy(i);
            };
            if !self.settled {
                self.tile.during_frag(i, &meta, payload);
            } else if !out.fwd.in_place(i) {
                // An unreliable input: its producer may be overwriting the
                // bytes now. Copy them, and trust the copy once the line's
                // re-check below passed.
                self.copy.copy(&meta, payload);
            }
            // Until after_frag says otherwise, count this frag as held: a
            // progress publish inside finish must not claim it passed on.
            let held = self.tile.held(i);
            input.hold(held + 1);
            if !input.finish(&meta) {
                input.hold(held);
                break Polled::Busy(i);
            }
            self.latency[i].record(u64::from(meta.tspub.wrapping_sub(meta.tsorig)));
            if !self.settled {
                self.tile.after_frag(i, &meta, &mut out);
                input.hold(self.tile.held(i));
            } else {
                let frag = if out.fwd.in_place(i) {
                    // A reliable input, and the frag still held (its
                    // progress stops before it): its producer cannot reuse
                    // these bytes until this tile passed it on, nor can the
                    // producer of any link it was forwarded from (their
                    // holds wait for this consumer's progress).
                    Frag {
                        input: i,
                        meta,
                        bytes: settled(payload),
                        place: Place::InPlace,
                    }
                } else {
                    Frag {
                        input: i,
                        meta,
                        bytes: self.copy.bytes(),
                        place: Place::Copy,
                    }
                };
                self.tile.on_frag(i, &frag, &mut out);
                if out.fwd.holding() {
                    out.fwd.apply(i, input);
                    if out.fwd.refresh_due() {
                        input.hold(self.tile.held(i));
                        out.fwd.refresh(&mut self.inputs, &*out.producers);
                        break Polled::Busy(i);
                    }
                }
                input.hold(self.tile.held(i));
            }
            if taken == room {
                break Polled::Busy(i);
            }
        };
        polled
    }
}
