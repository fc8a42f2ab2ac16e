//! A tick counter read as `CLOCK_MONOTONIC` nanoseconds, without a clock
//! call per reading.
//!
//! # What it reads
//!
//! - x86_64: the TSC (`rdtsc`), only when CPUID says it is invariant (leaf
//!   0x8000_0007, EDX bit 8: constant rate, running in every C-state, the
//!   `constant_tsc nonstop_tsc` pair of /proc/cpuinfo) and the process may
//!   execute `rdtsc` (`prctl(PR_GET_TSC)`).
//! - aarch64: the virtual counter `CNTVCT_EL0`, which the architecture makes
//!   constant-rate and readable from user space on Linux.
//! - anywhere else, when those checks fail, when calibration finds an
//!   implausible rate, or when the environment says `TILEWIRE_CLOCK=monotonic`:
//!   `clock_gettime(CLOCK_MONOTONIC)` itself ([`TickSource::Monotonic`]).
//!
//! # The time base: every process maps its ticks onto `CLOCK_MONOTONIC`
//!
//! A reading is nanoseconds of `CLOCK_MONOTONIC`, not raw ticks. Each
//! process calibrates once (lazily, on its first reading, about 2 ms: the
//! tick rate measured against `clock_gettime` between two tightly bracketed
//! samples) and then keeps an *anchor*: a tick, the `CLOCK_MONOTONIC`
//! nanoseconds at that tick, and a rate. Each thread reads a copy of it in
//! thread-local storage: a reading is `anchor_ns + (ticks - anchor_tick) *
//! rate`, one counter read, one multiply, no shared cache line. All threads
//! of a process use the same anchor, so a stamp one thread takes after
//! another thread's is not smaller (as with `clock_gettime`).
//!
//! This base was chosen over a calibration stored in the workspace because
//! the frag timestamps, heartbeats and deadlines of tilewire are already
//! `CLOCK_MONOTONIC` nanoseconds, compared across processes and against
//! `clock_gettime` readings (the monitor's heartbeat age, for one): the unit
//! stays what every reader assumes, a process needs no workspace to read the
//! clock, and two processes agree because each agrees with the kernel's
//! clock, which is one clock for the machine. They agree to the precision of
//! one bracketed `clock_gettime` (tens of nanoseconds, measured by the
//! `clock_cost` example), not exactly: a latency between stamps of two
//! processes is taken with [`crate::clock::ts_diff`], which reads a
//! difference that came out negative as 0.
//!
//! # Re-anchoring and drift
//!
//! `CLOCK_MONOTONIC` is slewed by NTP (up to 500 ppm), so a rate measured
//! once would drift away from it. The first thread to find the anchor
//! [`REANCHOR_NS`] (10 ms) old re-anchors it: one bracketed `clock_gettime`
//! (a few tens of nanoseconds every 10 ms, for the whole process), under a
//! lock the others only ever *try*: a thread that finds it held reads
//! `clock_gettime` once instead of waiting. The error `e` the re-anchor
//! finds (the kernel's clock minus the extrapolated reading) is absorbed by
//! *slewing*: the new anchor starts where the old one would have read (so
//! readings stay continuous and monotonic) and runs at `rate + e / 10 ms`
//! for the next interval. The rate itself is re-measured over the process's
//! whole history, so it converges to the kernel's long-run rate; the error
//! between anchors stays at the drift of one interval (tens of nanoseconds
//! at a few ppm).
//!
//! # A counter that jumps or runs backwards
//!
//! A VM that migrates, or a counter that is not synchronised across cores,
//! may jump. Readings never panic and never extrapolate without bound:
//!
//! - a thread whose counter reads a few ticks (up to 39 µs) below its
//!   previous reading reads that previous reading again;
//! - a counter that runs back before the anchor, or jumps forward by more
//!   than an interval, makes the reading re-anchor on the kernel's clock
//!   before it returns anything;
//! - a re-anchor that finds an error above 1/256 of the interval (39 µs, far
//!   beyond any real drift) *steps*: the reading becomes the kernel's clock
//!   at once, and the rate history starts again.
//!
//! What can show: a forward jump smaller than an interval makes readings
//! run ahead by at most that jump for at most one interval, then step back;
//! a backwards jump that stays after the anchor is followed back until the
//! next re-anchor. This is why a difference of two readings must be taken
//! saturating (a backwards step reads as 0): `u64::saturating_sub`, or
//! [`crate::clock::ts_diff`] for the compressed `u32` stamps.
//!
//! # Tests
//!
//! [`TickClock`] runs the same calibration and anchoring over any
//! [`Counter`], so a test drives a counter that jumps, stops or runs
//! backwards and checks what the readings do.
#![allow(unsafe_code)] // reads the CPU's counter and the kernel's clock; each use says why it is sound

use std::cell::Cell;
use std::sync::{Mutex, OnceLock, TryLockError};

mod counter;

pub(crate) use counter::monotonic_ns;
use counter::{hardware_ticks, probe};
pub use counter::{Counter, Hardware, TickSource};

/// How old (in nanoseconds) the process's anchor (and a thread's copy of
/// it) may get before the next reading re-anchors it on `CLOCK_MONOTONIC`.
pub const REANCHOR_NS: u64 = 10_000_000;

/// How long the process's one calibration measures the tick rate.
pub const CALIBRATION_NS: u64 = 2_000_000;

/// The environment variable that can force the fallback:
/// `TILEWIRE_CLOCK=monotonic` makes every reading a `clock_gettime`. Unset,
/// empty, `auto` or `tick` mean: the tick counter where it can be trusted.
/// Any other value also means `monotonic` (a value nobody understood should
/// not silently pick the faster, riskier clock). Read once per process, at
/// calibration.
pub const CLOCK_ENV: &str = "TILEWIRE_CLOCK";

/// What a choice of clock asked for through [`CLOCK_ENV`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockRequest {
    /// The tick counter where it can be trusted, the kernel's clock elsewhere.
    Auto,
    /// The kernel's clock, always.
    Monotonic,
}

impl ClockRequest {
    /// Reads a value of [`CLOCK_ENV`] (`None` = unset).
    pub fn parse(value: Option<&str>) -> ClockRequest {
        match value.map(str::trim) {
            None | Some("" | "auto" | "tick") => ClockRequest::Auto,
            Some(_) => ClockRequest::Monotonic,
        }
    }
}

/// `dt * mult >> 32` (`mult` is nanoseconds per tick in 32.32 fixed point),
/// saturating at `u64::MAX`.
#[inline(always)]
fn scale(dt: u64, mult: u64) -> u64 {
    let v = (u128::from(dt) * u128::from(mult)) >> 32;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// A (tick, reference ns) pair read back to back.
#[derive(Clone, Copy, Debug)]
struct Pair {
    /// The tick halfway through the bracket.
    tick: u64,
    /// The reference clock inside the bracket.
    ns: u64,
    /// Ticks between the reads bracketing `ns` (its uncertainty).
    width: u64,
}

/// The narrowest of a few `ticks, reference_ns, ticks` brackets: a bracket
/// that was preempted or interrupted is wide and loses.
fn pair<C: Counter>(c: &mut C) -> Pair {
    let mut best: Option<Pair> = None;
    for _ in 0..4 {
        let t0 = c.ticks();
        let ns = c.reference_ns();
        let t1 = c.ticks();
        // A counter that ran backwards inside the bracket: as wide as can be.
        let width = t1.checked_sub(t0).unwrap_or(u64::MAX);
        let p = Pair {
            tick: t0.wrapping_add(width.min(u64::MAX - 1) / 2),
            ns,
            width,
        };
        if best.is_none_or(|b| p.width < b.width) {
            best = Some(p);
        }
    }
    best.expect("four tries")
}

/// One process's calibration: the tick rate measured against the reference
/// clock, and the first pair (every thread's rate history starts there).
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Nanoseconds per tick, 32.32 fixed point.
    mult: u64,
    /// The pair the calibration started with.
    start: Pair,
    /// Ticks in [`REANCHOR_NS`].
    interval_ticks: u64,
}

impl Calibration {
    /// Measures the tick rate of `c` over `span_ns` of its reference clock
    /// (busy-waiting), or `None` when the counter is unusable: it does not
    /// advance, runs backwards, or runs outside 1 MHz..16 GHz.
    pub fn measure<C: Counter>(c: &mut C, span_ns: u64) -> Option<Calibration> {
        let mut best: Option<(Calibration, u64)> = None;
        // A bracket wider than 1/1000 of the span is a preempted one; try
        // again (three times at most) and keep the narrowest.
        for _ in 0..3 {
            let p0 = pair(c);
            let mut spins = 0u64;
            while c.reference_ns().wrapping_sub(p0.ns) < span_ns && spins < 100_000_000 {
                spins += 1;
                std::hint::spin_loop();
            }
            let p1 = pair(c);
            let dticks = p1.tick.checked_sub(p0.tick).filter(|&d| d > 0)?;
            let dns = p1.ns.checked_sub(p0.ns).filter(|&d| d > 0)?;
            let mult = u64::try_from((u128::from(dns) << 32) / u128::from(dticks)).ok()?;
            // 16 GHz .. 1 MHz: 1/16 ns .. 1000 ns per tick.
            if !((1u64 << 32) / 16..=1000u64 << 32).contains(&mult) {
                return None;
            }
            let width = scale(p0.width.max(p1.width), mult);
            let cal = Calibration {
                mult,
                start: p0,
                interval_ticks: ((u128::from(REANCHOR_NS) << 32) / u128::from(mult)) as u64,
            };
            if best.is_none_or(|(_, w)| width < w) {
                best = Some((cal, width));
            }
            if width <= span_ns / 1000 {
                break;
            }
        }
        best.map(|(cal, _)| cal)
    }

    /// Nanoseconds per tick as measured.
    pub fn ns_per_tick(&self) -> f64 {
        self.mult as f64 / (1u64 << 32) as f64
    }
}

/// A thread's anchor: where its readings extrapolate from.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    /// The tick the anchor was set at.
    base_tick: u64,
    /// The reading at `base_tick`.
    base_ns: u64,
    /// Nanoseconds per tick for the first interval after `base_tick`
    /// (`rate` plus the slew that absorbs the last error), 32.32.
    mult: u64,
    /// The best estimate of nanoseconds per tick, 32.32.
    rate: u64,
    /// Ticks an anchor stays valid; 0 = no anchor yet (or no counter).
    interval_ticks: u64,
    /// The oldest trusted pair of the anchor's history: `rate` is measured
    /// from it.
    history: Pair,
}

/// Above this error a re-anchor steps instead of slewing: 1/256 of the
/// interval, a slew of at most 0.4 % of the rate.
const SLEW_LIMIT_NS: u64 = REANCHOR_NS / 256;

/// A rate history shorter than this keeps the rate it had.
const HISTORY_MIN_NS: u64 = 50_000_000;

impl Anchor {
    const UNSET: Anchor = Anchor {
        base_tick: 0,
        base_ns: 0,
        mult: 0,
        rate: 0,
        interval_ticks: 0,
        history: Pair {
            tick: 0,
            ns: 0,
            width: 0,
        },
    };

    /// The reading at `t` when `t` lies in this anchor's interval and not
    /// before `last`, the thread's previous tick (so a counter that steps
    /// back even by one tick takes the slow path, [`read_slow`]).
    #[inline(always)]
    fn near(&self, t: u64, last: u64) -> Option<u64> {
        let dt = t.wrapping_sub(self.base_tick);
        // `dt * mult` stays below 2^64 << 32 here: `dt` is under an
        // interval, and `mult` within 0.4 % of the rate that makes an
        // interval 10 ms.
        (dt < self.interval_ticks && t >= last).then(|| {
            let ns = (u128::from(dt) * u128::from(self.mult)) >> 32;
            self.base_ns.wrapping_add(ns as u64)
        })
    }

    /// The reading this anchor predicts for `t`: the slewed rate over the
    /// first interval, the plain rate after it. `None` when `t` lies before
    /// the anchor (the counter ran backwards).
    fn predict(&self, t: u64) -> Option<u64> {
        let dt = t.checked_sub(self.base_tick)?;
        let first = dt.min(self.interval_ticks);
        Some(
            self.base_ns
                .saturating_add(scale(first, self.mult))
                .saturating_add(scale(dt - first, self.rate)),
        )
    }

    /// The first anchor, at pair `p`.
    fn start(cal: &Calibration, p: Pair) -> Anchor {
        // The calibration is the longest history there is: use the rate
        // from its first pair when it is plausible (within 0.4 % of the
        // calibrated one) and long enough.
        let mut rate = cal.mult;
        let mut history = p;
        if let Some(r) = history_rate(cal.start, p, cal.mult) {
            rate = r;
            history = cal.start;
        }
        Anchor {
            base_tick: p.tick,
            base_ns: p.ns,
            mult: rate,
            rate,
            interval_ticks: cal.interval_ticks,
            history,
        }
    }

    /// Re-anchors on a fresh pair; returns the reading for now. `last` is
    /// a tick no later reading may lie before (the anchor's own, for the
    /// process's anchor): a pair before it means the counter ran backwards,
    /// and the reading steps to the reference clock (which never does)
    /// instead of following the counter back.
    fn reanchor(&mut self, cal: &Calibration, p: Pair, last: u64) -> u64 {
        if p.tick < last {
            // Far back: the history is no good. A few ticks back (a core
            // whose counter lags a little): keep it.
            let back_ns = scale(last - p.tick, self.rate);
            return self.step(p, back_ns > SLEW_LIMIT_NS);
        }
        let Some(predicted) = self.predict(p.tick) else {
            return self.step(p, true);
        };
        let error = i128::from(p.ns) - i128::from(predicted);
        let width_ns = scale(p.width, self.rate);
        if width_ns > SLEW_LIMIT_NS {
            // A bracket this wide says little about the kernel's clock:
            // coast on the prediction if it is not far from it, else step.
            if error.unsigned_abs() > u128::from(width_ns) + u128::from(REANCHOR_NS) {
                return self.step(p, true);
            }
            self.base_tick = p.tick;
            self.base_ns = predicted;
            self.mult = self.rate;
            return predicted;
        }
        if error.unsigned_abs() > u128::from(SLEW_LIMIT_NS) {
            // The counter jumped, or nobody read the clock for long while
            // the rates differed: the history is kept only in the second
            // case (an error small against the time it built up in).
            let elapsed = p.ns.saturating_sub(self.base_ns);
            let jumped = error.unsigned_abs() > u128::from(elapsed / 256);
            return self.step(p, jumped);
        }
        if let Some(r) = history_rate(self.history, p, cal.mult) {
            self.rate = r;
        }
        // Absorb the error over the next interval.
        let slew = (error << 32) / i128::from(cal.interval_ticks.max(1));
        let mult = (i128::from(self.rate) + slew).clamp(1, i128::from(u64::MAX));
        self.base_tick = p.tick;
        self.base_ns = predicted;
        self.mult = mult as u64;
        predicted
    }

    /// Takes the reference clock as it is: the reading may jump (either
    /// way). `forget` drops the rate history (the counter misbehaved).
    fn step(&mut self, p: Pair, forget: bool) -> u64 {
        if forget {
            self.history = p;
        }
        self.base_tick = p.tick;
        self.base_ns = p.ns;
        self.mult = self.rate;
        p.ns
    }
}

/// The rate between two pairs, when they are far enough apart and the rate
/// is within 0.4 % of `calibrated` (anything else is a counter that jumped).
fn history_rate(from: Pair, to: Pair, calibrated: u64) -> Option<u64> {
    let dns = to.ns.checked_sub(from.ns)?;
    let dticks = to.tick.checked_sub(from.tick)?;
    if dns < HISTORY_MIN_NS || dticks == 0 {
        return None;
    }
    let rate = u64::try_from((u128::from(dns) << 32) / u128::from(dticks)).ok()?;
    (rate.abs_diff(calibrated) <= calibrated / 256).then_some(rate)
}

/// A tick clock over any [`Counter`]: the calibration, the shared anchor
/// and one thread's copy of it, run by the same code as the process-wide
/// readings, with the counter in the caller's hands (tests make it jump or
/// run backwards).
#[derive(Debug)]
pub struct TickClock<C> {
    counter: C,
    calibration: Option<Calibration>,
    /// The process's anchor.
    shared: Anchor,
    /// The thread's copy, and the tick of its previous reading.
    local: Anchor,
    last_tick: u64,
}

impl<C: Counter> TickClock<C> {
    /// Calibrates `counter` over `span_ns` of its reference clock. A counter
    /// that fails calibration makes a clock that reads the reference.
    pub fn new(mut counter: C, span_ns: u64) -> TickClock<C> {
        let calibration = Calibration::measure(&mut counter, span_ns);
        TickClock {
            counter,
            calibration,
            shared: Anchor::UNSET,
            local: Anchor::UNSET,
            last_tick: 0,
        }
    }

    /// The calibration, `None` when the counter failed it.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The counter, to move it.
    pub fn counter_mut(&mut self) -> &mut C {
        &mut self.counter
    }

    /// The time now, in the reference clock's nanoseconds.
    pub fn now_ns(&mut self) -> u64 {
        let Some(cal) = &self.calibration else {
            return self.counter.reference_ns();
        };
        if self.local.interval_ticks != 0 {
            let t = self.counter.ticks();
            if let Some(ns) = self.local.near(t, self.last_tick) {
                self.last_tick = t;
                return ns;
            }
        }
        read_slow(
            cal,
            &mut self.counter,
            &mut self.local,
            &mut self.last_tick,
            Some(&mut self.shared),
        )
    }
}

/// A reading the thread's copy of the anchor could not give: the copy is
/// old (or there is none yet), or the counter reads below the thread's
/// previous tick `last`. `shared` is the process's anchor, `None` when
/// another thread holds it: the reading is then the reference clock's.
fn read_slow<C: Counter>(
    cal: &Calibration,
    c: &mut C,
    local: &mut Anchor,
    last: &mut u64,
    shared: Option<&mut Anchor>,
) -> u64 {
    let t = c.ticks();
    if local.interval_ticks != 0 && t < *last && scale(*last - t, local.rate) <= SLEW_LIMIT_NS {
        // A few ticks behind this thread's previous reading (a core whose
        // counter lags a little): read as that reading, not before it.
        if let Some(ns) = local.near(*last, *last) {
            return ns;
        }
    }
    let Some(shared) = shared else {
        return c.reference_ns();
    };
    if shared.interval_ticks == 0 {
        *shared = Anchor::start(cal, pair(c));
    } else if shared.near(t, shared.base_tick).is_none() {
        let base = shared.base_tick;
        shared.reanchor(cal, pair(c), base);
    }
    let a = *shared;
    // The anchor may be newer than `t`: read the counter again.
    let t = c.ticks();
    let Some(ns) = a.near(t, a.base_tick) else {
        // An interval since (a preemption), or the counter jumped again.
        return c.reference_ns();
    };
    *local = a;
    *last = t;
    ns
}

/// The process's source and calibration (`None` = the kernel's clock).
struct Process {
    source: TickSource,
    calibration: Option<Calibration>,
}

// SYNC: the `OnceLock` is the only shared state: the first reading of the
// process calibrates inside `get_or_init` while any other thread's first
// reading waits; every later `get` is an Acquire load that pairs with the
// Release store publishing the calibration. Anchors are thread-local and
// need no synchronisation.
static PROCESS: OnceLock<Process> = OnceLock::new();

fn process() -> &'static Process {
    PROCESS.get_or_init(|| {
        let request = ClockRequest::parse(std::env::var(CLOCK_ENV).ok().as_deref());
        let source = match request {
            ClockRequest::Monotonic => TickSource::Monotonic,
            ClockRequest::Auto => probe(),
        };
        let calibration = match source {
            TickSource::Monotonic => None,
            _ => Calibration::measure(&mut Hardware, CALIBRATION_NS),
        };
        Process {
            source: if calibration.is_some() {
                source
            } else {
                TickSource::Monotonic
            },
            calibration,
        }
    })
}

/// Calibrates the process's clock now, if no reading did yet: about 2 ms
/// of busy measuring, and one read of [`CLOCK_ENV`] (which allocates).
/// Otherwise the first reading does it; a program whose first stamp lies on
/// a path that must not stall or allocate calls this during its set-up.
pub fn calibrate() {
    process();
}

/// The counter this process reads (calibrating it on first use).
pub fn tick_source() -> TickSource {
    process().source
}

/// The process's calibration (made on first use), `None` on the fallback.
pub fn calibration() -> Option<&'static Calibration> {
    process().calibration.as_ref()
}

// SYNC: the process's anchor, shared by its threads so that they all read
// the same mapping (a stamp one thread takes after another thread's is not
// smaller). Only slow paths take the lock, and only with `try_lock`: a
// thread that finds it held (another thread re-anchoring, or preempted
// holding it) reads `clock_gettime` for that one reading instead of
// waiting. The lock's acquire/release orders the anchor's fields between
// the re-anchoring thread and the threads that copy it.
static SHARED: Mutex<Anchor> = Mutex::new(Anchor::UNSET);

thread_local! {
    /// This thread's copy of the process's anchor. A `Cell` of a `Copy`
    /// value with a const initialiser: no destructor, so it is readable
    /// until the thread ends, and reaching it is one thread-pointer-relative
    /// load.
    static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor::UNSET) };
    /// The tick of this thread's previous reading: a counter read below it
    /// ran backwards.
    static LAST_TICK: Cell<u64> = const { Cell::new(0) };
}

/// `CLOCK_MONOTONIC` nanoseconds from the tick counter: one counter read
/// and a multiply on this thread's copy of the process's anchor; the copy
/// is renewed every [`REANCHOR_NS`] (and the anchor re-anchored by the
/// first thread to find it old: one bracketed `clock_gettime`). Every call
/// reads `clock_gettime` where the process has no trusted counter. See the
/// module docs for its accuracy and for what a counter that jumps does.
#[inline]
pub fn now_ns() -> u64 {
    ANCHOR.with(|cell| {
        let a = cell.get();
        if a.interval_ticks != 0 {
            let t = hardware_ticks();
            let last = LAST_TICK.with(Cell::get);
            if let Some(ns) = a.near(t, last) {
                LAST_TICK.with(|l| l.set(t));
                return ns;
            }
        }
        now_slow(cell)
    })
}

#[cold]
#[inline(never)]
fn now_slow(cell: &Cell<Anchor>) -> u64 {
    let Some(cal) = &process().calibration else {
        return monotonic_ns();
    };
    let mut local = cell.get();
    let mut last = LAST_TICK.with(Cell::get);
    let mut guard = match SHARED.try_lock() {
        Ok(guard) => Some(guard),
        // Nothing panics while holding the lock; were it poisoned, the
        // anchor is still whole (it is written as one value).
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    let ns = read_slow(
        cal,
        &mut Hardware,
        &mut local,
        &mut last,
        guard.as_deref_mut(),
    );
    drop(guard);
    cell.set(local);
    LAST_TICK.with(|l| l.set(last));
    ns
}

/// The raw counter, for measuring: ticks of [`tick_source`], or the
/// kernel's nanoseconds on the fallback.
pub fn ticks() -> u64 {
    match tick_source() {
        TickSource::Monotonic => monotonic_ns(),
        _ => hardware_ticks(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated counter: time moves `step_ns` per read of either clock
    /// (reads take time), the counter runs at `num / den` ticks per
    /// nanosecond plus `offset`, and a test moves any of them.
    #[derive(Debug)]
    struct Sim {
        ns: u64,
        step_ns: u64,
        num: u64,
        den: u64,
        /// Ticks counted before the current rate took over.
        base_ticks: i128,
        /// The reference time the current rate took over at.
        base_ns: u64,
        offset: i128,
    }

    impl Sim {
        /// A 3 GHz counter starting at a large value, 20 ns per read.
        fn new() -> Sim {
            Sim {
                ns: 5_000_000_000,
                step_ns: 20,
                num: 3,
                den: 1,
                base_ticks: 0,
                base_ns: 5_000_000_000,
                offset: 1 << 40,
            }
        }

        fn raw_ticks(&self) -> i128 {
            self.base_ticks
                + i128::from(self.ns - self.base_ns) * i128::from(self.num) / i128::from(self.den)
        }

        /// Changes the counter's rate from now on.
        fn set_rate(&mut self, num: u64, den: u64) {
            self.base_ticks = self.raw_ticks();
            self.base_ns = self.ns;
            self.num = num;
            self.den = den;
        }

        fn sleep(&mut self, ns: u64) {
            self.ns += ns;
        }
    }

    impl Counter for Sim {
        fn ticks(&mut self) -> u64 {
            self.ns += self.step_ns;
            (self.raw_ticks() + self.offset) as u64
        }
        fn reference_ns(&mut self) -> u64 {
            self.ns += self.step_ns;
            self.ns
        }
    }

    fn clock() -> TickClock<Sim> {
        TickClock::new(Sim::new(), CALIBRATION_NS)
    }

    /// How far `now` lies outside the reference's `[before, after]`
    /// (the reads inside a call take simulated time too).
    fn outside(now: u64, before: u64, after: u64) -> u64 {
        before.saturating_sub(now).max(now.saturating_sub(after))
    }

    /// Reads `n` times, `gap_ns` apart; returns the largest distance from
    /// the reference during each call and asserts the readings never go
    /// backwards.
    fn run(c: &mut TickClock<Sim>, n: u64, gap_ns: u64) -> u64 {
        let mut last = 0;
        let mut worst = 0;
        for _ in 0..n {
            c.counter_mut().sleep(gap_ns);
            let before = c.counter_mut().ns;
            let now = c.now_ns();
            assert!(now >= last, "backwards: {last} then {now}");
            last = now;
            worst = worst.max(outside(now, before, c.counter_mut().ns));
        }
        worst
    }

    #[test]
    fn calibration_measures_the_rate() {
        let c = clock();
        let per_tick = c.calibration().expect("a counter that ticks").ns_per_tick();
        assert!((per_tick - 1.0 / 3.0).abs() < 1e-6, "{per_tick}");
    }

    #[test]
    fn readings_follow_the_reference() {
        let mut c = clock();
        // 1 s of readings 10 µs apart: a hundred re-anchors.
        let worst = run(&mut c, 100_000, 10_000);
        assert!(worst < 200, "{worst} ns off");
    }

    #[test]
    fn a_counter_that_drifts_is_slewed_after() {
        let mut c = clock();
        run(&mut c, 1_000, 10_000);
        // The counter runs 100 ppm fast from now on (or the kernel's clock
        // is slewed that much): readings stay monotonic and close.
        c.counter_mut().set_rate(3_000_300, 1_000_000);
        let worst = run(&mut c, 200_000, 10_000);
        assert!(worst < 2_000, "{worst} ns off");
        // And once the history has learned the new rate, closer still.
        let worst = run(&mut c, 50_000, 10_000);
        assert!(worst < 200, "{worst} ns off once settled");
    }

    #[test]
    fn a_counter_that_runs_backwards_reads_the_reference() {
        for back in [1i128, 3_000, 3_000_000_000, 1 << 40] {
            let mut c = clock();
            run(&mut c, 1_000, 10_000);
            let before = c.now_ns();
            c.counter_mut().offset -= back;
            let after = c.now_ns();
            let reference = c.counter_mut().ns;
            assert!(
                after.abs_diff(reference) < 1_000,
                "back {back}: {after} vs {reference}"
            );
            assert!(after >= before, "back {back}: {before} then {after}");
            // And it goes on following the reference.
            let worst = run(&mut c, 10_000, 10_000);
            assert!(worst < 1_000, "back {back}: {worst} ns off");
        }
    }

    #[test]
    fn a_backwards_jump_after_the_anchor_is_followed_then_stepped_out_of() {
        let mut c = clock();
        run(&mut c, 1_000, 10_000);
        // Land in the middle of an interval, then go back 3 ms: still after
        // the anchor, so the readings follow the counter back...
        c.counter_mut().sleep(REANCHOR_NS / 2);
        let before = c.now_ns();
        c.counter_mut().offset -= 9_000_000;
        let back = c.now_ns();
        assert!(back < before, "followed back: {before} then {back}");
        assert!(before - back < 3_001_000, "by the jump: {}", before - back);
        assert_eq!(back.saturating_sub(before), 0, "a difference saturates");
        // ... until the next re-anchor finds the error and steps to the
        // reference; from there on, on track.
        c.counter_mut().sleep(REANCHOR_NS);
        let worst = run(&mut c, 5_000, 10_000);
        assert!(worst < 1_000, "{worst} ns off after the step");
    }

    #[test]
    fn a_busy_shared_anchor_reads_the_reference() {
        let mut c = clock();
        run(&mut c, 1_000, 10_000);
        c.counter_mut().sleep(2 * REANCHOR_NS); // the thread's copy is old
        let cal = *c.calibration().unwrap();
        let (mut local, mut last) = (c.local, c.last_tick);
        let ns = read_slow(&cal, &mut c.counter, &mut local, &mut last, None);
        assert_eq!(ns, c.counter.ns, "the reference itself");
        assert_eq!(last, c.last_tick, "the copy is left as it was");
        assert_eq!(local.base_tick, c.local.base_tick);
    }

    #[test]
    fn a_counter_that_jumps_forward_far_steps_before_reading() {
        for ahead in [3 * REANCHOR_NS as i128 * 2, 3_000_000_000_000, 1 << 62] {
            let mut c = clock();
            run(&mut c, 1_000, 10_000);
            c.counter_mut().offset += ahead;
            // The jump is more than an interval: the very next reading
            // re-anchors, nothing runs ahead.
            let now = c.now_ns();
            let reference = c.counter_mut().ns;
            assert!(
                now.abs_diff(reference) < 1_000,
                "ahead {ahead}: {now} vs {reference}"
            );
            let worst = run(&mut c, 10_000, 10_000);
            assert!(worst < 1_000, "ahead {ahead}: {worst} ns off");
        }
    }

    #[test]
    fn a_small_forward_jump_runs_ahead_for_one_interval_at_most() {
        let mut c = clock();
        run(&mut c, 1_000, 10_000);
        let jump_ns = 5_000_000u64;
        c.counter_mut().offset += i128::from(jump_ns) * 3;
        let mut last = c.now_ns();
        let mut stepped_back = 0;
        for _ in 0..3_000 {
            c.counter_mut().sleep(10_000);
            let now = c.now_ns();
            let reference = c.counter_mut().ns;
            assert!(now <= reference + jump_ns + 1_000, "{now} vs {reference}");
            if now < last {
                stepped_back += 1;
                // The step lands on the reference, and a difference taken
                // saturating reads 0, not 2^64 - 5 ms.
                assert!(now.abs_diff(reference) < 1_000);
                assert_eq!(now.saturating_sub(last), 0);
                let d =
                    crate::clock::ts_diff(crate::clock::ts_comp(now), crate::clock::ts_comp(last));
                assert_eq!(d, 0, "a compressed backwards step reads 0");
            }
            last = now;
        }
        assert_eq!(stepped_back, 1, "one step back, then on track");
        assert!(last.abs_diff(c.counter_mut().ns) < 1_000);
    }

    #[test]
    fn a_thread_that_sleeps_long_under_drift_keeps_its_history() {
        let mut c = clock();
        c.counter_mut().set_rate(3_000_030, 1_000_000); // 10 ppm off the calibration
        run(&mut c, 20_000, 10_000);
        // 20 s without a reading: the rate error builds up 200 µs.
        c.counter_mut().sleep(20_000_000_000);
        let now = c.now_ns();
        assert!(now.abs_diff(c.counter_mut().ns) < 1_000);
        let worst = run(&mut c, 10_000, 10_000);
        assert!(worst < 200, "{worst} ns off");
    }

    #[test]
    fn a_counter_that_does_not_tick_fails_calibration() {
        let mut sim = Sim::new();
        sim.set_rate(0, 1);
        let mut c = TickClock::new(sim, CALIBRATION_NS);
        assert!(c.calibration().is_none());
        // The clock then reads the reference itself.
        let now = c.now_ns();
        assert_eq!(now, c.counter_mut().ns);
        // Implausibly slow (100 kHz) or fast (100 GHz) counters fail too.
        for (num, den) in [(1, 10_000), (100, 1)] {
            let mut sim = Sim::new();
            sim.set_rate(num, den);
            assert!(
                Calibration::measure(&mut sim, CALIBRATION_NS).is_none(),
                "{num}/{den}"
            );
        }
    }

    #[test]
    fn the_environment_chooses() {
        assert_eq!(ClockRequest::parse(None), ClockRequest::Auto);
        for v in ["", "auto", "tick", " tick "] {
            assert_eq!(ClockRequest::parse(Some(v)), ClockRequest::Auto, "{v:?}");
        }
        for v in ["monotonic", "MONOTONIC", "clock_gettime", "tsc?"] {
            assert_eq!(
                ClockRequest::parse(Some(v)),
                ClockRequest::Monotonic,
                "{v:?}"
            );
        }
    }

    #[test]
    fn scale_saturates() {
        assert_eq!(scale(3, 1 << 32), 3);
        assert_eq!(scale(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(scale(1 << 32, 1 << 31), 1 << 31);
    }
}
