//! Why a tile could not be set up: [`TileError`].

use crate::link::LinkError;
use crate::part::PartError;
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
    /// Its metrics or a latency histogram could not be made or joined.
    #[error(transparent)]
    Part(#[from] PartError),
}
