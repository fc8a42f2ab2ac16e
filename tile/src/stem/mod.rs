//! The tile run loop: one generic loop that drives any [`Tile`].
//!
//! A tile is a single-threaded job (dedup, echo, forward, drain into a
//! socket) written as a handful of callbacks; [`Stem`] owns its input
//! consumers and output producers and calls the callbacks in a fixed order,
//! so flow control, overrun handling, housekeeping and metrics are written
//! once, here, and every tile gets them the same way.
//!
//! # One iteration
//!
//! 1. Housekeeping, when due (every [`StemConfig::lazy`] iterations on
//!    average, randomised so tiles sharing links do not fall into step):
//!    inputs publish their progress (handing credits back upstream),
//!    outputs refresh their credits and publish their position, the tile's
//!    own [`Tile::housekeeping`] runs, then the heartbeat and metrics are
//!    written and a stop request is looked for.
//! 2. [`Tile::before_credit`].
//! 3. Credits: every output must have at least [`Tile::burst`] credits, or
//!    the iteration ends here *back-pressured* (counted per episode, with
//!    its duration, and per output). A back-pressured tile reads no input,
//!    which is how back-pressure travels upstream over reliable links.
//! 4. [`Tile::after_credit`].
//! 5. The next input in turn is polled. Nothing new:
//!    [`Tile::end_of_burst`] (the place to flush). Overrun: counted in the
//!    input's fseq, the consumer resyncs, the iteration ends.
//! 6. A frag: [`Tile::before_frag`] sees its seq and signature and says
//!    [`Filter::Process`], [`Filter::Skip`] (counted as filtered, the
//!    payload never read) or [`Filter::Retry`] (leave it, come back later).
//! 7. [`Tile::during_frag`] reads the payload *speculatively*: the
//!    producer may be overwriting it at that very moment. Copy, do not act.
//! 8. The frag's seq is checked again. Only if it did not change does
//!    [`Tile::after_frag`] run: now the copy is good and the tile may act on
//!    it and publish. Otherwise the copy is discarded (counted as an overrun
//!    while reading) and the consumer resyncs.
//!
//! # Stopping
//!
//! A tile can be asked, from any thread or process joined to the
//! workspace, for one of two stops. The loop sees either at its next
//! housekeeping (until then it reads every input as before; the running
//! loop looks for nothing else), and [`StemConfig::stop_grace`] bounds
//! what follows, counted from then.
//!
//! - **Stop now** ([`TileMetricsHandle::request_stop`]): the loop polls no
//!   more input, and keeps calling [`Tile::after_credit`] and
//!   [`Tile::housekeeping`] until [`Tile::pending`] is zero (whatever the
//!   tile had taken in got out) or the grace passed. What is still on its
//!   input links stays there, for whoever reads them next.
//! - **Drain, then stop** ([`TileMetricsHandle::request_drain`], with a
//!   mask of inputs): the loop runs on as usual (credits, back-pressure,
//!   every callback, housekeeping) but polls only the inputs of the mask,
//!   in turn; the others are not polled again, their frags stay on their
//!   links. It is done once every input of the mask was found caught up
//!   (its latest poll found nothing new; a frag the tile answered
//!   [`Filter::Retry`] is not caught up) and [`Tile::pending`] is zero.
//!   Caught up means drained only if nothing more will come: ask for a
//!   drain once the producers of those inputs halted (a pipeline stops its
//!   tiles in topological order, sources first, each once everything
//!   upstream of it halted), and nothing published over a reliable link
//!   is lost by the stop. When the grace passes first, or a stop now is
//!   asked meanwhile, the tile stops as a stop now does, and
//!   [`RunEnd::unread`] says how many frags it left on the inputs of the
//!   mask. A drain with no input of the tile in its mask is a stop now.
//!
//! Either way the tile ends the same: every input publishes its exact
//! progress, every output its position, the metrics are written and the
//! state set to [`TileState::Halted`], and [`Stem::run`] returns a
//! [`RunEnd`] with what was left ([`RunEnd::pending`] in the tile's hands,
//! [`RunEnd::unread`] on drained inputs). A tile started again on the same
//! links continues where this one stopped.
//!
//! # Idling, turns and groups
//!
//! What the loop does with nothing to do is the tile's [`IdlePolicy`]:
//! spin, or back off (spin, yield, then sleep on the input link until its
//! producer publishes, or nap). [`Stem::run`] owns its thread;
//! [`Stem::turn`] runs the same loop a bounded turn at a time, so a
//! [`Group`] can run several tiles on one thread, taking turns, each with
//! its own metrics, heartbeat and stop. [`Stem::set_share`] makes a tile
//! one of N that share its inputs' frags (a topology's `count`).
//!
//! # Crashes
//!
//! A tile process can die at any instruction (SIGKILL, a panic). What it
//! leaves is consistent by construction: an output line is either
//! published or not (a successor producer continues past the newest one),
//! and an input's published progress never counts a frag the tile still
//! held ([`Tile::held`]), so over a reliable link a successor reads again
//! whatever the dead tile had not passed on. The price is duplicates: up to
//! the frags between two progress publishes (a few per cent of the ring)
//! may be passed on twice, which is why pipelines put a dedup tile where it
//! matters. A dead tile's metrics keep saying `Running` with a heartbeat
//! that no longer moves: that is how a monitor tells it is dead.

mod copy;
pub mod drain;
pub mod group;
pub mod metrics;

pub use copy::FragCopy;
pub use group::{Group, MemberEnd};

use core::sync::atomic::AtomicU8;
use std::time::Duration;

use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::{check_name, AddrError, AllocError, JoinError, NewError, Region, Workspace};

use crate::hist::{Hist, HistHandle};
use crate::link::consumer::{Consumer, Next};
use crate::link::frag::{seq_diff, FragMeta, CTL_ERR, CTL_PKT};
use crate::link::mcache::{MCacheHandle, Peek};
use crate::link::producer::{Backpressure, Producer};
use crate::link::{Link, LinkError};
use crate::stem::metrics::{
    StopRequest, TileLayout, TileMetrics, TileMetricsHandle, TileState, COUNTERS_MAX,
};

/// What [`Tile::before_frag`] decides about a frag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Read it: `during_frag`, then `after_frag` if the read was good.
    Process,
    /// Pass over it without reading its payload (counted as filtered).
    Skip,
    /// Not now: leave it where it is and ask again later.
    Retry,
}

/// The tile's outputs, as the callbacks see them.
#[derive(Debug)]
pub struct Outputs<'a, 'w> {
    producers: &'a mut [Producer<'w>],
}

impl<'w> Outputs<'_, 'w> {
    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True if the tile has no output.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The producer of output `i`.
    ///
    /// # Panics
    /// If there is no output `i`.
    pub fn producer(&mut self, i: usize) -> &mut Producer<'w> {
        &mut self.producers[i]
    }

    /// Publishes `payload` on output `i` as one frag with control word
    /// `ctl` (see [`Producer::publish`]).
    ///
    /// # Errors
    /// [`PublishError::TooLong`] if `payload` is longer than the output's
    /// mtu; [`PublishError::Backpressure`] only if the tile publishes more
    /// than [`Tile::burst`] frags on one output for one input frag. Nothing
    /// is published then.
    ///
    /// # Panics
    /// If there is no output `i` (the topology gives a kind the outputs it
    /// declared, so this is a bug in the tile).
    #[inline]
    pub fn publish(
        &mut self,
        i: usize,
        payload: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, PublishError> {
        let p = &mut self.producers[i];
        let mtu = p.mtu();
        if payload.len() > mtu {
            return Err(PublishError::TooLong {
                len: payload.len(),
                mtu,
            });
        }
        p.publish(payload, sig, ctl, tsorig)
            .map_err(|Backpressure| PublishError::Backpressure)
    }

    /// Publishes `packet` on output `i` as one whole-packet frag (SOM and
    /// EOM, origin 0), with `sig`, `tsorig` and the ERR flag of `ctl`: what
    /// a tile that passes packets on does with the packet of a frag it read
    /// ([`FragCopy::packet`]).
    ///
    /// # Errors
    /// As [`Outputs::publish`].
    ///
    /// # Panics
    /// As [`Outputs::publish`].
    #[inline]
    pub fn publish_packet(
        &mut self,
        i: usize,
        packet: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, PublishError> {
        self.publish(i, packet, sig, CTL_PKT | (ctl & CTL_ERR), tsorig)
    }
}

/// Why [`Outputs::publish`] published nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The payload is longer than the output's mtu.
    #[error("a payload of {len} bytes is longer than the output's mtu {mtu}")]
    TooLong {
        /// The payload's length.
        len: usize,
        /// The output's mtu.
        mtu: usize,
    },
    /// The output has no credits (the tile published more than its burst).
    #[error("the output has no credits")]
    Backpressure,
}

/// A tile: the callbacks the run loop calls (see the module docs for when).
/// Every method but [`Tile::kind`] has a default that does nothing.
pub trait Tile {
    /// The tile's kind, shown by monitors (at most 32 bytes).
    fn kind(&self) -> &str;

    /// Most frags the tile publishes on one output per input frag or per
    /// `after_credit`; the loop only reads input when every output has this
    /// many credits.
    fn burst(&self) -> u64 {
        1
    }

    /// Names of the tile's own counters, written by
    /// [`Tile::metrics_write`] (at most 16, each at most 32 bytes).
    fn counters(&self) -> &'static [&'static str] {
        &[]
    }

    /// Start of every iteration, before credits are checked.
    fn before_credit(&mut self, _out: &mut Outputs<'_, '_>) {}

    /// After credits were found sufficient.
    fn after_credit(&mut self, _out: &mut Outputs<'_, '_>) {}

    /// A frag is waiting on `input`: process, skip or retry it?
    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        Filter::Process
    }

    /// Reads the frag's payload speculatively (it may be torn: the result
    /// is only to be trusted once `after_frag` is called).
    fn during_frag(&mut self, _input: usize, _meta: &FragMeta, _payload: &[AtomicU8]) {}

    /// The frag read in `during_frag` was not overwritten: act on it.
    fn after_frag(&mut self, _input: usize, _meta: &FragMeta, _out: &mut Outputs<'_, '_>) {}

    /// A poll of `input` found nothing new: the end of a burst, the place
    /// to flush what was batched.
    fn end_of_burst(&mut self, _input: usize, _out: &mut Outputs<'_, '_>) {}

    /// Periodic work (see [`StemConfig::lazy`]).
    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {}

    /// Writes the tile's counters, in the order of [`Tile::counters`].
    fn metrics_write(&mut self, _counters: &mut [u64]) {}

    /// Frags of `input` the tile has taken in (its `after_frag` ran) and
    /// not yet passed on: the newest ones it read. The input's published
    /// progress stops before them, so a tile that dies holding them hands
    /// them to its successor, which reads them again: over a reliable link
    /// nothing is lost across a crash (some frags may come twice).
    fn held(&self, _input: usize) -> u64 {
        0
    }

    /// True if the tile takes work from outside its input links (a socket,
    /// a clock): a backing-off tile ([`IdlePolicy::Backoff`]) with nothing
    /// to do then naps briefly instead of sleeping until a frag arrives.
    fn external_input(&self) -> bool {
        false
    }

    /// Packets the tile has taken from its inputs and not yet passed on.
    /// A stopping tile keeps running its `after_credit` and `housekeeping`
    /// (a draining one, every callback) until this is zero (or the grace
    /// time ends; whatever it still holds then is not counted as read, see
    /// [`Tile::held`]).
    fn pending(&self) -> usize {
        0
    }
}

/// A boxed tile is a tile: a pipeline built from a topology file runs
/// tiles of kinds chosen at run time as `Stem<Box<dyn Tile + Send>>`
/// (one indirect call per callback, a few nanoseconds a frag).
impl<T: Tile + ?Sized> Tile for Box<T> {
    fn kind(&self) -> &str {
        (**self).kind()
    }
    fn burst(&self) -> u64 {
        (**self).burst()
    }
    fn counters(&self) -> &'static [&'static str] {
        (**self).counters()
    }
    #[inline]
    fn before_credit(&mut self, out: &mut Outputs<'_, '_>) {
        (**self).before_credit(out)
    }
    #[inline]
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        (**self).after_credit(out)
    }
    #[inline]
    fn before_frag(&mut self, input: usize, seq: u64, sig: u64) -> Filter {
        (**self).before_frag(input, seq, sig)
    }
    #[inline]
    fn during_frag(&mut self, input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        (**self).during_frag(input, meta, payload)
    }
    #[inline]
    fn after_frag(&mut self, input: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        (**self).after_frag(input, meta, out)
    }
    #[inline]
    fn end_of_burst(&mut self, input: usize, out: &mut Outputs<'_, '_>) {
        (**self).end_of_burst(input, out)
    }
    fn housekeeping(&mut self, out: &mut Outputs<'_, '_>) {
        (**self).housekeeping(out)
    }
    fn metrics_write(&mut self, counters: &mut [u64]) {
        (**self).metrics_write(counters)
    }
    fn held(&self, input: usize) -> u64 {
        (**self).held(input)
    }
    fn external_input(&self) -> bool {
        (**self).external_input()
    }
    fn pending(&self) -> usize {
        (**self).pending()
    }
}

/// How the loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StemConfig {
    /// Mean loop iterations between housekeeping runs (each interval is
    /// drawn uniformly from `[lazy/2, 3*lazy/2)`).
    pub lazy: u64,
    /// Longest a stopping tile drains its inputs and waits for
    /// [`Tile::pending`] to reach zero, counted from when it saw the
    /// request.
    pub stop_grace: Duration,
}

impl Default for StemConfig {
    fn default() -> Self {
        StemConfig {
            lazy: 1024,
            stop_grace: Duration::from_secs(1),
        }
    }
}

/// What a tile's loop does while it has nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Keep polling, always: the lowest latency, for a tile with a core of
    /// its own (what Firedancer's tiles do).
    #[default]
    Spin,
    /// Spin a little, then yield the core, then sleep: on its input link
    /// until its producer publishes (a wake is never lost, see the mcache's
    /// Parking), or in short naps for a tile that also takes work from
    /// outside its links ([`Tile::external_input`]) or waits for credits.
    /// Heartbeat, metrics and stop requests are served between sleeps.
    /// For tiles that share cores.
    Backoff,
}

/// How the tiles that share a link's work deal its frags
/// ([`Stem::set_share`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareBy {
    /// Frag `seq` goes to tile `seq % n`: an even split.
    #[default]
    RoundRobin,
    /// By a hash of the frag's signature: every frag of one signature (a
    /// flow, a sender) goes to the same tile.
    Sig,
}

/// A tile's share of its inputs' frags: `index` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    index: u64,
    of: u64,
    by: ShareBy,
}

impl Share {
    #[inline]
    fn mine(&self, seq: u64, sig: u64) -> bool {
        let key = match self.by {
            ShareBy::RoundRobin => seq,
            // Fibonacci hashing: the high bits of the product mix all of
            // the signature's.
            ShareBy::Sig => sig.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32,
        };
        key % self.of == self.index
    }
}

/// Idle turns a backing-off tile spins before it yields.
const SPIN_TURNS: u32 = 32;
/// Idle turns, after the spinning, it yields before it sleeps.
const YIELD_TURNS: u32 = 8;
/// Longest sleep on an input link before housekeeping (a wake ends it
/// sooner).
const PARK_MAX: Duration = Duration::from_millis(5);
/// The first nap of a tile that cannot sleep on a link (the naps that
/// follow double, up to 16 times it).
const NAP: Duration = Duration::from_micros(50);

/// Why a tile could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The tile name is invalid or too long.
    #[error("invalid tile name {name:?}: {why}")]
    Name {
        /// The name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Too many inputs, outputs or counters, or names too long.
    #[error("tile {tile:?}: {what}")]
    Layout {
        /// The tile.
        tile: String,
        /// What does not fit.
        what: &'static str,
    },
    /// An input's consumer index does not exist on its link.
    #[error("tile {tile:?}: {source}")]
    Link {
        /// The tile.
        tile: String,
        /// Why.
        source: LinkError,
    },
    /// The tile's metrics exist from an earlier run with other links or
    /// counters (another tile of the same name?).
    #[error("tile {tile:?} exists with another layout: found {found:?}")]
    Mismatch {
        /// The tile.
        tile: String,
        /// The layout found in the workspace.
        found: Box<TileLayout>,
    },
    /// Allocating the metrics or a histogram failed.
    #[error("allocating {part:?}: {source}")]
    Alloc {
        /// The allocation.
        part: String,
        /// Why.
        source: AllocError,
    },
    /// Formatting the metrics or a histogram failed.
    #[error("formatting {part:?}: {source}")]
    New {
        /// The allocation.
        part: String,
        /// Why.
        source: NewError,
    },
    /// An existing part is not what it should be.
    #[error("joining {part:?}: {source}")]
    Join {
        /// The allocation.
        part: String,
        /// Why.
        source: JoinError,
    },
    /// The allocation table places a part outside the workspace.
    #[error("{part:?} lies outside the workspace: {source}")]
    Addr {
        /// The allocation.
        part: String,
        /// Where it claims to be.
        source: AddrError,
    },
}

/// Longest tile name (room for the `.latNN` suffix).
pub const TILE_NAME_MAX: usize = tilewire_shmem::NAME_MAX - 6;

/// The named allocation holding tile `tile`'s metrics.
pub fn metrics_name(tile: &str) -> String {
    format!("{tile}.tm")
}

/// The named allocation holding the latency histogram of tile `tile`'s
/// input `i`.
pub fn latency_name(tile: &str, i: usize) -> String {
    format!("{tile}.lat{i}")
}

/// Finds allocation `part`, or makes it with `make` if it does not exist.
/// Returns its memory and whether it was made now.
fn get_or_make<'w>(
    ws: &'w Workspace,
    part: &str,
    align: usize,
    size: usize,
    make: impl Fn(Region<'w>) -> Result<(), NewError>,
) -> Result<(Region<'w>, bool), TileError> {
    let region = |gaddr, size| {
        ws.region(gaddr, size).map_err(|source| TileError::Addr {
            part: part.into(),
            source,
        })
    };
    if let Some(a) = ws.lookup(part) {
        return Ok((region(a.gaddr, a.size as usize)?, false));
    }
    let gaddr = match ws.alloc_named(part, align, size, 0) {
        Ok(g) => g,
        // Another process made it meanwhile: use theirs.
        Err(AllocError::NameTaken(_)) => {
            let a = ws.lookup(part).ok_or_else(|| TileError::Join {
                part: part.into(),
                source: JoinError::NotInitialized,
            })?;
            return Ok((region(a.gaddr, a.size as usize)?, false));
        }
        Err(source) => {
            return Err(TileError::Alloc {
                part: part.into(),
                source,
            })
        }
    };
    let mem = region(gaddr, size)?;
    if let Err(source) = make(mem) {
        let _ = ws.free_named(part);
        return Err(TileError::New {
            part: part.into(),
            source,
        });
    }
    Ok((mem, true))
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd {
    /// Loop iterations of this run.
    pub loops: u64,
    /// [`Tile::pending`] when the loop gave up waiting for it (0 on a
    /// clean stop): packets the tile took in and could not pass on.
    pub pending: usize,
    /// Frags left unread on the inputs a drain was asked for, counted at
    /// the halt: on each of those inputs, the frags its link published
    /// past the tile's seq that are still on the ring (an unreliable
    /// input's frags already overrun are lost, not unread). 0 after a
    /// drain that finished while its producers stayed halted, and after a
    /// plain stop (its inputs are not drained, so not counted).
    pub unread: u64,
}

impl RunEnd {
    /// Frags the tile left behind: [`RunEnd::unread`] on its inputs plus
    /// [`RunEnd::pending`] in its hands. 0 when the stop lost nothing.
    pub fn left(&self) -> u64 {
        self.unread + self.pending as u64
    }
}

/// Which inputs one iteration may poll.
#[derive(Debug, Clone, Copy)]
enum Read {
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
enum Polled {
    /// No input was polled (back-pressure, or none to read).
    Nothing,
    /// Input `i` had nothing new: it is caught up.
    Empty(usize),
    /// Input `i` had something (a frag, a frag to retry, an overrun): it
    /// is not caught up.
    Busy(usize),
}

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

/// Frags published on `mc` at or past `seq` and still on the ring: what a
/// consumer at `seq` has left to read. An O(depth) scan of the ring when
/// the frag at `seq` is there; one load when it is not.
fn unread_from(mc: &MCacheHandle<'_>, seq: u64) -> u64 {
    if mc.peek(seq) == Peek::NotYet {
        return 0;
    }
    // The producer's next seq: its published position (refreshed at its
    // housekeeping), or one past the newest frag on any line if later (a
    // producer still running is ahead of what it published).
    let published = mc.seq_query();
    let newest = mc.newest_seq().wrapping_add(1);
    let next = if seq_diff(newest, published) > 0 {
        newest
    } else {
        published
    };
    // Frags more than a ring behind `next` were overwritten: an unreliable
    // consumer lost them, they are not left to read.
    seq_diff(next, seq).clamp(0, mc.depth() as i64) as u64
}

/// A tile with its links, ready to run.
#[derive(Debug)]
pub struct Stem<'w, T: Tile> {
    name: String,
    tile: T,
    config: StemConfig,
    inputs: Vec<Consumer<'w>>,
    /// Each input link's mcache, where a stop counts what was left unread.
    input_mcaches: Vec<MCacheHandle<'w>>,
    latency: Vec<HistHandle<'w>>,
    outputs: Vec<Producer<'w>>,
    metrics: TileMetricsHandle<'w>,
    counters: [u64; COUNTERS_MAX],
    burst: u64,
    rng: u64,
    loops: u64,
    next_housekeeping: u64,
    next_input: usize,
    /// When the current back-pressure episode began (0: not in one).
    backpressure_since: u64,
    idle: IdlePolicy,
    /// Idle turns in a row (backoff only).
    idle_turns: u32,
    /// Where the run is (see [`Stem::turn`]).
    phase: Phase,
    /// Its share of its inputs' frags, if it shares them.
    share: Option<Share>,
    /// `loops` when the current run began.
    first: u64,
}

/// Where a stem is in a run.
#[derive(Debug, Clone, Copy)]
enum Phase {
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

/// What one [`Stem::turn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Work: it read, skipped or published a frag, started, housekept or
    /// moved on in its stop.
    Busy,
    /// Nothing to do: every input caught up, or every output out of
    /// credits, and nothing published.
    Idle,
    /// It halted; what the run left. A turn after this starts the tile
    /// again, as [`Stem::run`] does.
    Halted(RunEnd),
}

/// Most iterations one [`Stem::turn`] runs.
const TURN_STEPS: u32 = 1024;
/// A [`Stem::turn`] ends once the tile published this many frags.
const TURN_FRAGS: u64 = 1024;

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

        let part = metrics_name(name);
        let (mem, _) = get_or_make(
            ws,
            &part,
            TileMetrics::ALIGN,
            TileMetrics::footprint(),
            |mem| TileMetrics::new(mem, &layout),
        )?;
        let metrics = TileMetrics::join(mem).map_err(|source| TileError::Join { part, source })?;
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
            latency.push(Hist::join(mem).map_err(|source| TileError::Join { part, source })?);
        }

        metrics.boot(std::process::id());
        let seed = mono_ns() ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
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
            outputs: outputs.iter().map(|l| l.producer()).collect(),
            metrics,
            counters: [0; COUNTERS_MAX],
            rng: seed | 1,
            loops: 0,
            next_housekeeping: 0,
            next_input: 0,
            backpressure_since: 0,
            idle: IdlePolicy::Spin,
            idle_turns: 0,
            phase: Phase::Ready,
            first: 0,
            share: None,
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

    fn housekeeping(&mut self) {
        for p in &mut self.outputs {
            p.refresh_credits();
            p.housekeeping();
        }
        self.tile.housekeeping(&mut Outputs {
            producers: &mut self.outputs,
        });
        // After the tile's housekeeping: it may have passed frags on.
        for (i, c) in self.inputs.iter_mut().enumerate() {
            c.hold(self.tile.held(i));
            c.housekeeping();
        }
        self.write_metrics();
        self.schedule_housekeeping();
    }

    fn write_metrics(&mut self) {
        let n = self.metrics.counter_count();
        self.tile.metrics_write(&mut self.counters[..n]);
        self.metrics.set_counters(&self.counters[..n]);
        self.metrics.heartbeat(mono_ns(), self.loops);
    }

    /// Closes the current back-pressure episode, if any, adding its
    /// duration to the metrics.
    #[inline]
    fn end_backpressure(&mut self) {
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

    /// One iteration, steps 2 to 8 of the module docs, polling one of the
    /// inputs `read` allows. Always inlined, and always called with a
    /// constant `read`, so the running loop's `Read::All` costs nothing
    /// over a loop that had no choice.
    #[inline(always)]
    fn step(&mut self, read: Read) -> Polled {
        let quiet = matches!(read, Read::Quiet);
        if !quiet {
            self.tile.before_credit(&mut Outputs {
                producers: &mut self.outputs,
            });
        }
        if !self.credits_ok() {
            return Polled::Nothing;
        }
        let mut out = Outputs {
            producers: &mut self.outputs,
        };
        if !quiet {
            self.tile.after_credit(&mut out);
        }
        let i = match read {
            Read::All | Read::Quiet if !self.inputs.is_empty() => self.next_input,
            Read::Only(mask) => next_of(mask, self.next_input),
            Read::All | Read::Quiet | Read::Nothing => return Polled::Nothing,
        };
        self.next_input = if i + 1 == self.inputs.len() { 0 } else { i + 1 };
        let input = &mut self.inputs[i];
        let meta = match input.next_frag() {
            Next::Empty => {
                self.tile.end_of_burst(i, &mut out);
                input.hold(self.tile.held(i));
                return Polled::Empty(i);
            }
            Next::Overrun { .. } => return Polled::Busy(i),
            Next::Ready(meta) => meta,
        };
        if let Some(share) = self.share {
            if !share.mine(meta.seq, meta.sig) {
                input.skip(meta.sz);
                return Polled::Busy(i);
            }
        }
        match self.tile.before_frag(i, meta.seq, meta.sig) {
            Filter::Process => {}
            Filter::Skip => {
                input.skip(meta.sz);
                return Polled::Busy(i);
            }
            Filter::Retry => return Polled::Busy(i),
        }
        let Some(payload) = input.payload(&meta) else {
            return Polled::Busy(i);
        };
        self.tile.during_frag(i, &meta, payload);
        // Until after_frag says otherwise, count this frag as held: a
        // progress publish inside finish must not claim it passed on.
        input.hold(self.tile.held(i) + 1);
        if !input.finish(&meta) {
            input.hold(self.tile.held(i));
            return Polled::Busy(i);
        }
        self.latency[i].record(u64::from(meta.tspub.wrapping_sub(meta.tsorig)));
        self.tile.after_frag(i, &meta, &mut out);
        input.hold(self.tile.held(i));
        Polled::Busy(i)
    }

    /// Runs the loop until a stop or a drain is requested (see the module
    /// docs), then leaves every link consistent and the tile
    /// [`TileState::Halted`]. A stem may run again after it halted.
    pub fn run(&mut self) -> RunEnd {
        self.begin();
        let mut request = self.metrics.stop_request();
        while request == StopRequest::None {
            let due = self.next_housekeeping;
            match self.idle {
                IdlePolicy::Spin => {
                    while self.loops < due {
                        self.loops += 1;
                        self.step(Read::All);
                    }
                }
                IdlePolicy::Backoff => self.run_backoff(due),
            }
            self.housekeeping();
            request = self.metrics.stop_request();
        }
        self.begin_stop(request);
        loop {
            if let Turn::Halted(end) = self.turn() {
                return end;
            }
        }
    }

    /// One turn of the loop, for a caller that runs several tiles on one
    /// thread (a [`Group`]): up to 1024 iterations, fewer when the tile
    /// runs out of work, with housekeeping when it is due and every step
    /// of a stop as [`Stem::run`] takes it. Once a turn published 1024
    /// frags, its remaining iterations only read the tile's inputs
    /// ([`Tile::before_credit`] and [`Tile::after_credit`] are not called
    /// in them), so a tile that takes in whole batches from outside (a net
    /// tile) cannot flood the tiles after it, nor starve what comes back to
    /// it, within one turn. The first turn starts the
    /// run; the turn that halts the tile returns [`Turn::Halted`]. A turn
    /// never sleeps: the caller decides what to do when every tile it runs
    /// is [`Turn::Idle`].
    pub fn turn(&mut self) -> Turn {
        match self.phase {
            Phase::Ready => {
                self.begin();
                let request = self.metrics.stop_request();
                if request != StopRequest::None {
                    self.begin_stop(request);
                }
                Turn::Busy
            }
            Phase::Running => self.turn_running(),
            Phase::Draining {
                mask,
                caught,
                deadline,
            } => self.turn_draining(mask, caught, deadline),
            Phase::Stopping { drained, deadline } => self.turn_stopping(drained, deadline),
        }
    }

    /// The start of a run: running, housekept.
    fn begin(&mut self) {
        self.first = self.loops;
        if self.metrics.state() == Some(TileState::Halted) {
            // Running again after a stop: that stop request is spent. (A
            // request made before the first run is honoured at once.)
            self.metrics.boot(std::process::id());
        }
        self.metrics.set_state(TileState::Running);
        self.housekeeping();
        self.idle_turns = 0;
        self.phase = Phase::Running;
    }

    /// One iteration, and whether it did anything (polled a frag, or
    /// published one from `after_credit`).
    #[inline]
    fn step_worked(&mut self, read: Read) -> (Polled, bool) {
        let published = self.published();
        let polled = self.step(read);
        (
            polled,
            matches!(polled, Polled::Busy(_)) || self.published() != published,
        )
    }

    /// The sum of the outputs' next seqs: it moves with every publish.
    #[inline]
    fn published(&self) -> u64 {
        self.outputs
            .iter()
            .fold(0u64, |sum, p| sum.wrapping_add(p.seq()))
    }

    /// Iterations in a row that may find nothing before a turn ends idle:
    /// one poll of each input.
    fn idle_steps(&self) -> u32 {
        self.inputs.len().max(1) as u32
    }

    /// A turn while running (with housekeeping when due, and at a stop
    /// request): ends after a poll of every input found nothing, or after
    /// [`TURN_STEPS`]; once it published
    /// [`TURN_FRAGS`] it only reads its inputs (no `before_credit` or
    /// `after_credit`), and ends then if it has none.
    fn turn_running(&mut self) -> Turn {
        let (mut worked, mut idle, mut quiet) = (false, 0, false);
        let start = self.published();
        for _ in 0..TURN_STEPS {
            self.loops += 1;
            let read = if quiet { Read::Quiet } else { Read::All };
            let (_, w) = self.step_worked(read);
            if w {
                (worked, idle) = (true, 0);
            } else {
                idle += 1;
            }
            if !quiet && self.published().wrapping_sub(start) >= TURN_FRAGS {
                // Enough for the tiles after it to read before it laps
                // them (a net tile takes in a whole batch a step): the
                // rest of the turn only reads its inputs, so what comes
                // back to it is not starved by what it takes in.
                if self.inputs.is_empty() {
                    break;
                }
                (quiet, idle) = (true, 0);
            }
            if self.loops >= self.next_housekeeping {
                self.housekeeping();
                let request = self.metrics.stop_request();
                if request != StopRequest::None {
                    self.begin_stop(request);
                    return Turn::Busy;
                }
            }
            if idle >= self.idle_steps() {
                break;
            }
        }
        if worked {
            Turn::Busy
        } else {
            Turn::Idle
        }
    }

    /// Moves on to the stop `request` asks for (see the module docs),
    /// counting its grace from now.
    #[inline(never)]
    fn begin_stop(&mut self, request: StopRequest) {
        let deadline = mono_ns() + self.config.stop_grace.as_nanos() as u64;
        let all = (1u64 << self.inputs.len()) - 1;
        let mask = match request {
            StopRequest::Drain { inputs } => inputs & all,
            _ => 0,
        };
        self.phase = if mask != 0 {
            Phase::Draining {
                mask,
                caught: 0,
                deadline,
            }
        } else {
            Phase::Stopping {
                drained: 0,
                deadline,
            }
        };
    }

    /// A turn of the drain: the loop as usual, polling only the inputs of
    /// `mask`, until each of them was found caught up (`caught`) and
    /// [`Tile::pending`] is zero, or (looked at each housekeeping) the clock
    /// passed `deadline` or a plain stop was asked.
    fn turn_draining(&mut self, mask: u64, mut caught: u64, deadline: u64) -> Turn {
        let (mut worked, mut idle) = (false, 0);
        let start = self.published();
        for _ in 0..TURN_STEPS {
            self.loops += 1;
            let (polled, w) = self.step_worked(Read::Only(mask));
            match polled {
                Polled::Empty(i) => {
                    caught |= 1 << i;
                    if caught == mask && self.tile.pending() == 0 {
                        return self.turn_stopping(mask, deadline);
                    }
                }
                Polled::Busy(i) => caught &= !(1 << i),
                Polled::Nothing => {}
            }
            if w {
                (worked, idle) = (true, 0);
            } else {
                idle += 1;
            }
            if self.published().wrapping_sub(start) >= TURN_FRAGS {
                idle = u32::MAX;
            }
            if self.loops >= self.next_housekeeping {
                self.housekeeping();
                if mono_ns() >= deadline || self.metrics.stop_request() == StopRequest::Now {
                    self.phase = Phase::Stopping {
                        drained: mask,
                        deadline,
                    };
                    return Turn::Busy;
                }
            }
            if idle >= self.idle_steps() {
                break;
            }
        }
        self.phase = Phase::Draining {
            mask,
            caught,
            deadline,
        };
        if worked {
            Turn::Busy
        } else {
            Turn::Idle
        }
    }

    /// A turn of the stop proper: take nothing more in; let the tile pass
    /// on what it has until [`Tile::pending`] is zero or `deadline`; then
    /// halt.
    fn turn_stopping(&mut self, drained: u64, deadline: u64) -> Turn {
        if self.tile.pending() > 0 && mono_ns() < deadline {
            for _ in 0..TURN_STEPS {
                self.loops += 1;
                self.step(Read::Nothing);
            }
            self.housekeeping();
            self.phase = Phase::Stopping { drained, deadline };
            return Turn::Busy;
        }
        Turn::Halted(self.halt(drained))
    }

    /// The end of a run: every link left consistent, the metrics written,
    /// the tile halted. Out of line, so the running loop's code is the same
    /// as a loop with no stop at all.
    #[inline(never)]
    fn halt(&mut self, drained: u64) -> RunEnd {
        self.end_backpressure();
        self.housekeeping();
        let unread = (0..self.inputs.len())
            .filter(|i| drained & (1 << i) != 0)
            .map(|i| unread_from(&self.input_mcaches[i], self.inputs[i].seq()))
            .sum();
        self.metrics.set_state(TileState::Halted);
        self.phase = Phase::Ready;
        RunEnd {
            loops: self.loops - self.first,
            pending: self.tile.pending(),
            unread,
        }
    }

    /// The loop of [`IdlePolicy::Backoff`] until housekeeping is due, or
    /// until the tile slept (housekeeping follows every sleep, so a
    /// sleeping tile keeps its heartbeat).
    #[inline(never)]
    fn run_backoff(&mut self, due: u64) {
        while self.loops < due {
            self.loops += 1;
            let (polled, worked) = self.step_worked(Read::All);
            if worked {
                self.idle_turns = 0;
                continue;
            }
            self.idle_turns = self.idle_turns.saturating_add(1);
            if self.idle_turns < SPIN_TURNS {
                core::hint::spin_loop();
            } else if self.idle_turns < SPIN_TURNS + YIELD_TURNS {
                std::thread::yield_now();
            } else {
                self.sleep(polled);
                return;
            }
        }
    }

    /// Sleeps while there is nothing to do: on the input link the last poll
    /// found empty, until its producer publishes (no wake is lost) or
    /// [`PARK_MAX`]; or a [`NAP`] for a tile with work from outside, with
    /// several inputs, or waiting for credits.
    #[cold]
    fn sleep(&mut self, polled: Polled) {
        match polled {
            Polled::Empty(i) if !self.tile.external_input() && self.inputs.len() == 1 => {
                let seq = self.inputs[i].seq();
                self.input_mcaches[i].park(seq, PARK_MAX);
            }
            _ => {
                // Naps lengthen while nothing comes, to 16 of them.
                let extra = self.idle_turns - SPIN_TURNS - YIELD_TURNS;
                std::thread::sleep(NAP * (1 << extra.min(4)));
            }
        }
    }
}
