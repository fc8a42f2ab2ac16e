//! What a run reports: each tile's failure, and all of them together.

use std::fmt;
use std::process::ExitStatus;

use super::report::RunReport;

use crate::error::PipelineError;

/// Something that went wrong with one tile of a run.
#[derive(Debug)]
#[non_exhaustive]
pub enum TileFailure {
    /// The tile could not be started, or did not run in time.
    Start {
        /// The tile.
        tile: String,
        /// Why.
        why: String,
    },
    /// The tile could not be built or set up (threads mode).
    Failed {
        /// The tile.
        tile: String,
        /// Why.
        error: PipelineError,
    },
    /// The tile's thread panicked.
    Panicked {
        /// The tile.
        tile: String,
        /// The panic's message.
        message: String,
    },
    /// The tile's process exited with a failure (or was killed).
    Exited {
        /// The tile.
        tile: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The process of a group of tiles exited with a failure (or was
    /// killed): one of them failed or panicked (its own message is on the
    /// process's stderr), or the process died.
    GroupExited {
        /// The group.
        group: String,
        /// Its tiles.
        tiles: Vec<String>,
        /// How it ended.
        status: ExitStatus,
    },
    /// The tile's process failed again and again: its restart policy
    /// gave up.
    RestartLimit {
        /// The tile (or group).
        tile: String,
        /// Restarts made.
        restarts: usize,
        /// In this window.
        window: std::time::Duration,
    },
    /// The tile halted with frags left unread on an input it was to drain.
    Undrained {
        /// The tile.
        tile: String,
        /// The input link.
        link: String,
        /// Frags published on the link it never read.
        frags: u64,
    },
    /// The tile halted holding packets it could not pass on.
    Held {
        /// The tile.
        tile: String,
        /// The packets.
        packets: usize,
    },
    /// The tile did not stop in time (a process is killed then; a thread
    /// is left behind).
    DidNotStop {
        /// The tile.
        tile: String,
    },
    /// The tile's producer read a consumer's progress on one of its
    /// outputs that no healthy link can hold (a word of the workspace was
    /// written by something else): the output stalled rather than overrun
    /// that consumer, and the run was ended.
    Corrupt {
        /// The tile (the producer).
        tile: String,
        /// The output link.
        link: String,
        /// Which consumer's word, the value read and the most it may be.
        what: tilewire_tile::link::producer::Corruption,
    },
    /// The tile, reading one of its inputs, found lines of the link's ring
    /// holding a seq no producer puts there (a word of the workspace was
    /// written by something else): it skipped those frags, counted them,
    /// and the run was ended.
    CorruptLines {
        /// The tile (the consumer).
        tile: String,
        /// The input link.
        link: String,
        /// Frags skipped.
        frags: u64,
    },
    /// The tile, reading one of its inputs, refused frags whose chunk or
    /// size fell outside every dcache it may read (a word of the
    /// workspace was written by something else): it read none of their
    /// bytes, counted them, and the run was ended.
    BadChunks {
        /// The tile (the consumer).
        tile: String,
        /// The input link.
        link: String,
        /// Frags refused.
        frags: u64,
        /// The last one's chunk.
        chunk: u32,
        /// The last one's size.
        sz: u16,
        /// The chunks `[first, end)` the link's own dcache holds.
        chunks: (u32, u32),
    },
}

impl TileFailure {
    /// The kind, tile and link a corruption failure is known by; `None`
    /// for a failure that is not corruption.
    pub(super) fn corruption_key(&self) -> Option<(u8, String, String)> {
        match self {
            TileFailure::Corrupt { tile, link, .. } => Some((0, tile.clone(), link.clone())),
            TileFailure::CorruptLines { tile, link, .. } => Some((1, tile.clone(), link.clone())),
            TileFailure::BadChunks { tile, link, .. } => Some((2, tile.clone(), link.clone())),
            _ => None,
        }
    }

    /// The tile it concerns (the group, for [`TileFailure::GroupExited`]).
    pub fn tile(&self) -> &str {
        match self {
            TileFailure::Start { tile, .. }
            | TileFailure::Failed { tile, .. }
            | TileFailure::Panicked { tile, .. }
            | TileFailure::Exited { tile, .. }
            | TileFailure::Undrained { tile, .. }
            | TileFailure::Held { tile, .. }
            | TileFailure::RestartLimit { tile, .. }
            | TileFailure::DidNotStop { tile }
            | TileFailure::Corrupt { tile, .. }
            | TileFailure::CorruptLines { tile, .. }
            | TileFailure::BadChunks { tile, .. } => tile,
            TileFailure::GroupExited { group, .. } => group,
        }
    }
}

impl fmt::Display for TileFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TileFailure::Start { tile, why } => write!(f, "tile {tile:?} did not start: {why}"),
            TileFailure::Failed { error, .. } => write!(f, "{error}"),
            TileFailure::Panicked { tile, message } => {
                write!(f, "tile {tile:?} panicked: {message}")
            }
            TileFailure::Exited { tile, status } => {
                write!(f, "tile {tile:?} (its process) exited: {status}")
            }
            TileFailure::GroupExited {
                group,
                tiles,
                status,
            } => write!(
                f,
                "group {group:?} (its process, with tiles {}) exited: {status}",
                tiles.join(", ")
            ),
            TileFailure::RestartLimit {
                tile,
                restarts,
                window,
            } => write!(
                f,
                "tile {tile:?} kept failing: its process was restarted {restarts} times within \
                 {}s, and is not restarted again",
                window.as_secs()
            ),
            TileFailure::Undrained { tile, link, frags } => write!(
                f,
                "tile {tile:?} could not drain within its grace time: it left {frags} frags \
                 unread on link {link:?}"
            ),
            TileFailure::Corrupt { tile, link, what } => write!(
                f,
                "tile {tile:?}'s output link {link:?} is corrupt: {what}; the link was \
                 stalled, not overrun, and the run ended"
            ),
            TileFailure::CorruptLines { tile, link, frags } => write!(
                f,
                "tile {tile:?} found {frags} lines of its input link {link:?} corrupt (a seq \
                 no producer puts there): it skipped those frags, and the run ended"
            ),
            TileFailure::BadChunks {
                tile,
                link,
                frags,
                chunk,
                sz,
                chunks,
            } => write!(
                f,
                "tile {tile:?} refused {frags} frags of its input link {link:?} pointing outside \
                 its dcache (last: chunk {chunk} size {sz}; the dcache holds chunks [{}, {})): \
                 it read none of their bytes, and the run ended",
                chunks.0, chunks.1
            ),
            TileFailure::Held { tile, packets } => write!(
                f,
                "tile {tile:?} stopped holding {packets} packets it could not pass on"
            ),
            TileFailure::DidNotStop { tile } => write!(f, "tile {tile:?} did not stop in time"),
        }
    }
}

/// What went wrong in a run: every failure, one per line when printed,
/// then the frags each link's consumers left unread, and the run's report
/// as far as there was one.
#[derive(Debug)]
pub struct RunError {
    pub(super) failures: Vec<TileFailure>,
    pub(super) report: Option<Box<RunReport>>,
}

impl RunError {
    pub(super) fn new(failures: Vec<TileFailure>) -> RunError {
        RunError {
            failures,
            report: None,
        }
    }

    /// The failures, in the order they were found.
    pub fn failures(&self) -> &[TileFailure] {
        &self.failures
    }

    /// What the run did up to its end; `None` if its tiles never started
    /// (what they share could not be set up).
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_deref()
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        // What a dead or stuck tile left behind, which its failure alone
        // does not say (an undrained tile's line above says it already).
        let Some(report) = &self.report else {
            return Ok(());
        };
        for l in &report.links {
            for c in l.consumers.iter().filter(|c| c.unread > 0) {
                let said = self.failures.iter().any(|x| {
                    matches!(x, TileFailure::Undrained { tile, link, .. }
                        if *tile == c.tile && *link == l.name)
                });
                if !said {
                    write!(
                        f,
                        "\nlink {:?}: {} frags left unread by tile {:?}",
                        l.name, c.unread, c.tile
                    )?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}
