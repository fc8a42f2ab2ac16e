//! What can go wrong making a pipeline or running one of its tiles.

use tilewire_shmem::{AllocError, CreateError, OpenError};
use tilewire_tile::link::LinkError;
use tilewire_tile::stem::TileError;

use crate::topo::TopoErrors;

/// Why a pipeline could not be made or a tile run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The topology is wrong.
    #[error("{0}")]
    Topo(#[from] TopoErrors),
    /// A workspace of that name exists already.
    #[error(
        "workspace {name:?} exists already (another pipeline, or one left by a crash: \
         `tilewire shmem ls` says which; `tilewire shmem rm {name}` removes it)"
    )]
    Exists {
        /// The name.
        name: String,
    },
    /// Making the workspace failed.
    #[error("creating workspace {name:?}: {source}")]
    Create {
        /// The name.
        name: String,
        /// Why.
        source: CreateError,
    },
    /// Joining the workspace failed.
    #[error("joining workspace {name:?}: {source}")]
    Join {
        /// The name.
        name: String,
        /// Why.
        source: OpenError,
    },
    /// Allocating in the workspace failed.
    #[error("allocating {part:?}: {source}")]
    Alloc {
        /// The allocation.
        part: String,
        /// Why.
        source: AllocError,
    },
    /// The workspace's stored topology is missing or unreadable.
    #[error("workspace {name:?}: {why}")]
    Stored {
        /// The workspace.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A link could not be made or joined.
    #[error("link {link:?}: {source}")]
    Link {
        /// The link.
        link: String,
        /// Why.
        source: LinkError,
    },
    /// The topology has no tile of that name.
    #[error("the topology has no tile {0:?}")]
    NoSuchTile(String),
    /// The tile could not be set up (its metrics, its links).
    #[error("tile {tile:?}: {source}")]
    Tile {
        /// The tile.
        tile: String,
        /// Why.
        source: TileError,
    },
    /// A process started as a tile made a pipeline: its `main` did not
    /// call [`tile_main`](crate::tile_main) first.
    #[error(
        "this process was started as tile {tile} (TILEWIRE_TILE), but its main made a pipeline \
         instead of running the tile: call tilewire_pipeline::tile_main(&registry) first thing in main"
    )]
    NotATileMain {
        /// `WORKSPACE/TILE` from the environment.
        tile: String,
    },
    /// The Ctrl-C and SIGTERM handler could not be installed.
    #[error("{0}")]
    Signals(String),
    /// The tile's own resources could not be made: a socket, an XDP
    /// program, a file, a network namespace, a cpu.
    #[error("tile {tile:?}: {why}")]
    Setup {
        /// The tile.
        tile: String,
        /// What failed, and how to fix it where that is known.
        why: String,
    },
}
