//! What a run did, for the program that ran it: [`RunReport`].

use std::fmt;
use std::time::Duration;

/// What a run did: each tile's boots and counters summed over them, each
/// link's figures, and every restart with its cause. The same figures a
/// monitor shows, read by the runner itself: no monitor and no `tracing`
/// subscriber needed.
///
/// [`Running::stop`](crate::Running::stop) and [`Pipeline::run`](crate::Pipeline::run)
/// return it (inside the [`RunError`](crate::RunError) when the run
/// failed); [`Running::report`](crate::Running::report) reads one while
/// the tiles run.
///
/// # Counters across boots
///
/// A tile process that the restart policy starts again begins its
/// counters at 0; the runner adds what the dead process last wrote (at
/// its last housekeeping) to the new one's. What it did after that
/// housekeeping is not in its counters: a sum across a kill may fall
/// short by up to one housekeeping interval's work. The links' figures
/// ([`LinkReport`]) are kept on the links themselves and are exact
/// across kills: count what went where with those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// Every tile, in topology order.
    pub tiles: Vec<TileReport>,
    /// Every link, in topology order.
    pub links: Vec<LinkReport>,
    /// Every restart of a tile process, in order.
    pub restarts: Vec<TileRestart>,
}

/// One tile of a [`RunReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TileReport {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Times its loop started: 1, and one more for each restart; 0 if it
    /// never ran.
    pub boots: u64,
    /// Its kind's counters, by name, summed over its boots.
    pub counters: Vec<(String, u64)>,
    /// Whether it halted (a stop that drained it; `false` for a tile that
    /// died or still runs).
    pub halted: bool,
}

impl TileReport {
    /// Counter `name` summed over the tile's boots.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// One link of a [`RunReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkReport {
    /// Its name.
    pub name: String,
    /// Frags its ring holds.
    pub depth: u64,
    /// Frags published on it since it was made.
    pub published: u64,
    /// Its consumers, in the order of their fseqs.
    pub consumers: Vec<ConsumerReport>,
}

/// One consumer of a link, in a [`LinkReport`]: its counts are kept on
/// the link (its fseq), so they run on across the consumer's restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerReport {
    /// The consuming tile.
    pub tile: String,
    /// Whether its producer waits for it.
    pub reliable: bool,
    /// Frags it consumed.
    pub consumed: u64,
    /// Frags it skipped (its filter, or another tile's share of a count).
    pub filtered: u64,
    /// Frags it lost: lapped while polling, the producer overwrote them
    /// before it read them (an unreliable link only).
    pub lost: u64,
    /// Frags overwritten while it read them, dropped rather than
    /// delivered torn (an unreliable link only).
    pub torn: u64,
    /// Frags whose size or chunk lay outside the link, dropped.
    pub bad: u64,
    /// Frags skipped because their ring line held a seq no producer puts
    /// there (a corrupt word).
    pub corrupt: u64,
    /// Frags published that it has not read (at most the depth: an
    /// unreliable consumer lapped further counts the rest in
    /// [`ConsumerReport::lost`] when it next reads).
    pub unread: u64,
}

/// A restart of a tile process by its restart policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TileRestart {
    /// The tile (or the group, for a process of several tiles).
    pub tile: String,
    /// When its process was found dead, from the start of the run.
    pub after: Duration,
    /// How it ended (`signal: 9 (SIGKILL)`, `exit status: 1`).
    pub cause: String,
}

impl RunReport {
    /// Tile `name`.
    pub fn tile(&self, name: &str) -> Option<&TileReport> {
        self.tiles.iter().find(|t| t.name == name)
    }

    /// Link `name`.
    pub fn link(&self, name: &str) -> Option<&LinkReport> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Counter `counter` of tile `tile`, summed over its boots.
    pub fn counter(&self, tile: &str, counter: &str) -> Option<u64> {
        self.tile(tile)?.counter(counter)
    }

    /// Frags lost on every link, by consumers lapped or torn.
    pub fn lost(&self) -> u64 {
        self.links
            .iter()
            .flat_map(|l| &l.consumers)
            .map(|c| c.lost + c.torn)
            .sum()
    }
}

impl fmt::Display for RunReport {
    /// One line per tile, link consumer and restart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tiles {
            write!(f, "tile {} ({}): boots {}", t.name, t.kind, t.boots)?;
            for (n, v) in &t.counters {
                write!(f, ", {n} {v}")?;
            }
            writeln!(f, "{}", if t.halted { "" } else { ", not halted" })?;
        }
        for l in &self.links {
            write!(f, "link {}: published {}", l.name, l.published)?;
            for c in &l.consumers {
                write!(
                    f,
                    "; {} consumed {}, filtered {}, lost {}, torn {}, unread {}",
                    c.tile, c.consumed, c.filtered, c.lost, c.torn, c.unread
                )?;
                if c.bad + c.corrupt > 0 {
                    write!(f, ", bad {}, corrupt {}", c.bad, c.corrupt)?;
                }
            }
            writeln!(f)?;
        }
        for r in &self.restarts {
            writeln!(
                f,
                "restart of {} after {:.1}s: {}",
                r.tile,
                r.after.as_secs_f64(),
                r.cause
            )?;
        }
        Ok(())
    }
}
