//! Why a tile could not be set up: [`TileError`].

use tilewire_shmem::{AddrError, AllocError, JoinError, NewError};

use crate::link::LinkError;
use crate::stem::metrics::TileLayout;

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
