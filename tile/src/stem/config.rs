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

/// Idle turns a backing-off tile spins before it yields.
pub(super) const SPIN_TURNS: u32 = 32;
/// Idle turns, after the spinning, it yields before it sleeps.
pub(super) const YIELD_TURNS: u32 = 8;
/// Longest sleep on an input link before housekeeping (a wake ends it
/// sooner).
pub(super) const PARK_MAX: Duration = Duration::from_millis(5);
/// The first nap of a tile that cannot sleep on a link (the naps that
/// follow double, up to 16 times it).
pub(super) const NAP: Duration = Duration::from_micros(50);
