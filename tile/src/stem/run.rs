//! Running a [`Stem`]: a whole run on a thread of its own
//! ([`Stem::run`]) or a bounded turn at a time ([`Stem::turn`], what a
//! [`Group`](super::Group) calls), the stop and the drain (see the
//! [module docs](super#stopping)), the halt and what it reports
//! ([`RunEnd`]), and the backoff of [`IdlePolicy::Backoff`].

use tilewire_shmem::clock::{mono_ns, mono_ts};
use tilewire_shmem::tick::ticks;

use crate::link::frag::seq_diff;
use crate::link::mcache::{MCacheHandle, Peek};
use crate::stem::config::{Idle, IdlePolicy, PARK_MAX};
use crate::stem::metrics::{StopRequest, TileState};
use crate::stem::step::{Phase, Polled, Read, Stem};
use crate::stem::tile::Tile;

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
    /// Runs the loop until a stop or a drain is requested (see the [stem
    /// docs](super#stopping)), then leaves every link consistent and the tile
    /// [`TileState::Halted`]. A stem may run again after it halted.
    pub fn run(&mut self) -> RunEnd {
        self.begin();
        let mut request = self.metrics.stop_request();
        while request == StopRequest::None {
            let due = self.next_housekeeping;
            match self.idle {
                IdlePolicy::Spin => {
                    self.restart_ticks();
                    while self.loops < due {
                        self.loops += 1;
                        self.step_worked(Read::All);
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
    ///
    /// [`Group`]: super::Group
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
        self.backoff.worked();
        self.phase = Phase::Running;
    }

    /// One iteration, and whether it did anything (polled a frag, or
    /// published one from `after_credit`). An iteration that worked adds
    /// its time, from the end of the one before, to the tile's work (one
    /// read of the tick counter an iteration; a caller that did anything
    /// else in between restarts the count with [`Stem::restart_ticks`]).
    #[inline]
    fn step_worked(&mut self, read: Read) -> (Polled, bool) {
        let published = self.published();
        let polled = self.step(read);
        let worked = matches!(polled, Polled::Busy(_)) || self.published() != published;
        let now = ticks();
        if worked {
            self.work_ticks = self
                .work_ticks
                .wrapping_add(now.saturating_sub(self.last_tick));
        }
        self.last_tick = now;
        (polled, worked)
    }

    /// Starts the work count afresh: what ran since the last iteration
    /// (another tile of the group, a sleep) is not this tile's work.
    #[inline]
    fn restart_ticks(&mut self) {
        self.last_tick = ticks();
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
        self.restart_ticks();
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

    /// Moves on to the stop `request` asks for (see the stem docs),
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
        self.restart_ticks();
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
        // A drained input's producer halted before the drain was asked
        // (see the module docs), so nothing will reuse the chunks this
        // tile forwarded from it: its progress may say exactly what the
        // tile read, whether or not the outputs' readers passed them yet.
        for i in (0..self.inputs.len()).filter(|i| drained & (1 << i) != 0) {
            self.fwd.release(i);
            self.fwd.apply(i, &mut self.inputs[i]);
        }
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
        self.restart_ticks();
        while self.loops < due {
            self.loops += 1;
            let (polled, worked) = self.step_worked(Read::All);
            if worked {
                self.backoff.worked();
                continue;
            }
            match self.backoff.idle(self.backpressure_since != 0) {
                Idle::Spin => core::hint::spin_loop(),
                Idle::Yield => {
                    std::thread::yield_now();
                    self.restart_ticks();
                }
                Idle::Sleep => {
                    self.sleep(polled);
                    return;
                }
            }
        }
    }

    /// Sleeps while there is nothing to do: on the input link the last poll
    /// found empty, until its producer publishes (no wake is lost) or
    /// [`PARK_MAX`]; or a nap (see `Backoff::nap`) for a tile with work from outside, with
    /// several inputs, or waiting for credits.
    #[cold]
    fn sleep(&mut self, polled: Polled) {
        self.settle_holds();
        let parked = mono_ts();
        let published = match polled {
            // A tile holding forwarded frags naps rather than sleep on its
            // input: that input's producer may be waiting for the credits
            // the hold gives back once the outputs' readers move on, and
            // would not wake it.
            Polled::Empty(i)
                if !self.tile.external_input() && self.inputs.len() == 1 && !self.fwd.holding() =>
            {
                let seq = self.inputs[i].seq();
                self.input_mcaches[i].park(seq, PARK_MAX);
                match self.input_mcaches[i].peek(seq) {
                    Peek::Ready(meta) => Some(meta.tspub),
                    _ => None,
                }
            }
            _ => {
                std::thread::sleep(self.backoff.nap(self.backpressure_since != 0));
                None
            }
        };
        self.backoff.slept(parked, published);
    }
}
