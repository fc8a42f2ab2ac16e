//! How a stem runs: its [`StemConfig`], its [`IdlePolicy`] (and the
//! backoff's steps, shared by a [`Group`](super::Group)), and how tiles
//! that share a link's work deal its frags ([`ShareBy`]).

use std::time::Duration;

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
pub(super) const SPIN_TURNS: u32 = 32;
/// Idle turns, after the spinning, it yields before it sleeps.
pub(super) const YIELD_TURNS: u32 = 8;
/// Longest sleep on an input link before housekeeping (a wake ends it
/// sooner).
pub(super) const PARK_MAX: Duration = Duration::from_millis(5);
/// The first nap of a tile that cannot sleep on a link (the naps that
/// follow double, up to 16 times it).
pub(super) const NAP: Duration = Duration::from_micros(50);

/// The most a backing-off loop learns to keep polling before it yields
/// and sleeps (see [`Patience`]).
pub(super) const PATIENCE_MAX: Duration = Duration::from_micros(100);
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

    /// A park started at `parked` (a frag timestamp, see
    /// [`mono_ts`](tilewire_shmem::clock::mono_ts)) ended with a frag
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
