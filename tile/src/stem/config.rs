//! How a stem runs: its [`StemConfig`], its [`IdlePolicy`] (and the
//! backoff's steps, shared by a [`Group`](super::Group)), and how tiles
//! that share a link's work deal its frags ([`ShareBy`]).

use std::time::Duration;

use tilewire_shmem::clock::{mono_ns_fast, mono_ts};

/// How the loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StemConfig {
    /// Mean loop iterations between housekeeping runs (each interval is
    /// drawn uniformly from `[lazy/2, 3*lazy/2)`).
    pub lazy: u64,
    /// Longest a stopping tile drains its inputs and waits for
    /// [`Tile::pending`] to reach zero, counted from when it saw the
    /// request.
    ///
    /// [`Tile::pending`]: super::Tile::pending
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
    ///
    /// [`Tile::external_input`]: super::Tile::external_input
    Backoff,
}

/// How the tiles that share a link's work deal its frags
/// ([`Stem::set_share`](super::Stem::set_share)).
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
pub(super) struct Share {
    pub(super) index: u64,
    pub(super) of: u64,
    pub(super) by: ShareBy,
}

impl Share {
    #[inline]
    pub(super) fn mine(&self, seq: u64, sig: u64) -> bool {
        let key = match self.by {
            ShareBy::RoundRobin => seq,
            // Fibonacci hashing: the high bits of the product mix all of
            // the signature's.
            ShareBy::Sig => sig.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32,
        };
        key % self.of == self.index
    }
}

/// Idle turns a backing-off tile spins before it yields (at least; see
/// [`Patience`]).
const SPIN_TURNS: u32 = 32;
/// Idle turns, after the spinning, it yields before it sleeps.
const YIELD_TURNS: u32 = 8;
/// Longest sleep on an input link before housekeeping (a wake ends it
/// sooner).
pub(super) const PARK_MAX: Duration = Duration::from_millis(5);
/// The first nap of a tile that cannot sleep on a link (the naps that
/// follow double, up to 16 times it).
const NAP: Duration = Duration::from_micros(50);

/// The most a backing-off loop learns to keep polling before it yields
/// and sleeps (see [`Patience`]).
const PATIENCE_MAX: Duration = Duration::from_micros(100);
/// What a park that cost more than it saved first teaches.
const PATIENCE_STEP: Duration = Duration::from_micros(8);

/// How long a backing-off loop keeps polling an idle input before it
/// yields and sleeps, learnt from its parks. A park costs a wake: on a
/// VM, tens of microseconds from the producer's publish to the sleeper
/// running. When the frag a park waited for came sooner than that wake
/// took, polling on would have caught it for less: patience doubles (from
/// [`PATIENCE_STEP`], up to [`PATIENCE_MAX`]). When the frag came later
/// than the patience covered, polling only burnt the core: patience
/// halves. Two threads handing frags to each other at full
/// rate therefore stop parking between frags, and a pipeline that idles
/// between bursts (a source at 50 k pkt/s) polls no longer than before.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Patience {
    ns: u64,
}

impl Patience {
    /// Nanoseconds to keep polling.
    #[inline]
    pub(super) fn ns(&self) -> u64 {
        self.ns
    }

    /// A park started at `parked` (a frag timestamp, see [`mono_ts`])
    /// ended with a frag
    /// published at `published`, and the loop ran again at `woke`.
    pub(super) fn learn(&mut self, parked: u32, published: u32, woke: u32) {
        let max = PATIENCE_MAX.as_nanos() as u64;
        // Wrapping differences of the compressed stamps, as i32: a frag
        // published before the park began came at gap 0.
        let gap = (published.wrapping_sub(parked) as i32).max(0) as u64;
        let wake = (woke.wrapping_sub(published) as i32).max(0) as u64;
        if gap < wake && gap < max {
            let step = PATIENCE_STEP.as_nanos() as u64;
            self.ns = (self.ns * 2).clamp(step, max);
        } else if gap > self.ns {
            self.ns /= 2;
        }
    }
}

/// What a backing-off loop does with an idle turn (see [`Backoff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// Poll again at once.
    Spin,
    /// Poll again after a `yield`.
    Yield,
    /// Sleep: park on a link, or nap.
    Sleep,
}

/// Where a backing-off loop ([`IdlePolicy::Backoff`]) is in an idle
/// spell: spin [`SPIN_TURNS`] idle turns, then yield, at least
/// [`YIELD_TURNS`] times and as long as its [`Patience`] says (the longest,
/// [`PATIENCE_MAX`], while waiting for credits), then sleep; naps lengthen
/// with the sleeps in a row. A [`Group`](super::Group) keeps one, and so
/// does a [`Stem`](super::Stem) on a thread of its own.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Backoff {
    /// Idle turns in a row, and when the first began.
    idle_turns: u32,
    idle_since: u64,
    /// Yields and sleeps since the loop last worked.
    yields: u32,
    sleeps: u32,
    patience: Patience,
}

impl Backoff {
    /// The loop worked: the idle spell is over.
    #[inline]
    pub(super) fn worked(&mut self) {
        (self.idle_turns, self.yields, self.sleeps) = (0, 0, 0);
    }

    /// An idle turn: what to do next. `waiting_for_credits`: a tile of
    /// the loop is back-pressured (its reader works on a full link and
    /// hands credits back soon).
    #[inline]
    pub(super) fn idle(&mut self, waiting_for_credits: bool) -> Idle {
        self.idle_turns = self.idle_turns.saturating_add(1);
        if self.idle_turns == 1 {
            self.idle_since = mono_ns_fast();
        }
        if self.idle_turns < SPIN_TURNS {
            return Idle::Spin;
        }
        let patient = if waiting_for_credits {
            PATIENCE_MAX.as_nanos() as u64
        } else {
            self.patience.ns()
        };
        // A yield polls on where the core is free and lets another thread
        // run where it is not (a source, the kernel's network work).
        if self.yields < YIELD_TURNS
            || (patient > 0 && mono_ns_fast().saturating_sub(self.idle_since) < patient)
        {
            self.yields = self.yields.saturating_add(1);
            return Idle::Yield;
        }
        Idle::Sleep
    }

    /// How long to nap, for a loop that cannot park on a link: [`NAP`]
    /// while waiting for credits (they come back within one), else
    /// doubling with the sleeps in a row, to 16 times it.
    pub(super) fn nap(&self, waiting_for_credits: bool) -> Duration {
        if waiting_for_credits {
            NAP
        } else {
            NAP * (1 << self.sleeps.min(4))
        }
    }

    /// The loop slept, starting at `parked` (a frag timestamp, see
    /// [`mono_ts`]); `published`: the `tspub` of the frag a park ended
    /// with, which teaches the patience.
    pub(super) fn slept(&mut self, parked: u32, published: Option<u32>) {
        self.sleeps = self.sleeps.saturating_add(1);
        if let Some(published) = published {
            self.patience.learn(parked, published, mono_ts());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_grows_when_parks_wake_late_and_shrinks_when_gaps_are_long() {
        let mut p = Patience::default();
        assert_eq!(p.ns(), 0);
        // The frag came 2 us after the park; the wake took 40 us.
        p.learn(1_000, 3_000, 43_000);
        assert_eq!(p.ns(), PATIENCE_STEP.as_nanos() as u64);
        for _ in 0..10 {
            p.learn(1_000, 3_000, 43_000);
        }
        assert_eq!(p.ns(), PATIENCE_MAX.as_nanos() as u64, "capped");
        // A source idle 150 us between bursts: polling would not catch it.
        for _ in 0..20 {
            p.learn(1_000, 151_000, 190_000);
        }
        assert_eq!(p.ns(), 0, "back to none");
        // Stamps that wrap around u32 and a frag published before the park.
        p.learn(u32::MAX - 500, 500, 40_000);
        assert!(p.ns() > 0, "a gap of 1 us across the wrap");
        // A frag already there when the park began: a park for nothing.
        let before = p.ns();
        p.learn(5_000, 4_000, 5_100);
        assert_eq!(p.ns(), before * 2);
    }
}
