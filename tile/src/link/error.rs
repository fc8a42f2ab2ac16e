//! Why a link could not be made or joined: [`LinkError`].

use tilewire_shmem::{AddrError, AllocError, JoinError, NewError};

/// Why a link could not be made or joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The link name is invalid or too long.
    #[error("invalid link name {name:?}: {why}")]
    Name {
        /// The name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Depth, mtu or the consumer list is invalid.
    #[error("invalid link parameters: {0}")]
    Params(&'static str),
    /// A named part of the link is missing from the workspace.
    #[error("link part {0:?} not found in the workspace")]
    NotFound(String),
    /// Allocating a part failed.
    #[error("allocating {part:?}: {source}")]
    Alloc {
        /// The part.
        part: String,
        /// Why.
        source: AllocError,
    },
    /// Formatting a part failed.
    #[error("formatting {part:?}: {source}")]
    New {
        /// The part.
        part: String,
        /// Why.
        source: NewError,
    },
    /// A part is not what it should be (wrong kind of object, magic,
    /// version, or a corrupt header).
    #[error("joining {part:?}: {source}")]
    Join {
        /// The part.
        part: String,
        /// Why.
        source: JoinError,
    },
    /// The allocation table places a part outside the workspace (a corrupt
    /// table); nothing was read there.
    #[error("link part {part:?} lies outside the workspace: {source}")]
    Addr {
        /// The part.
        part: String,
        /// Where it claims to be.
        source: AddrError,
    },
    /// The link exists but is not the link the caller expected.
    #[error("link {link:?} has {what} {found}, expected {expected}")]
    Mismatch {
        /// The link.
        link: String,
        /// Which parameter.
        what: &'static str,
        /// What the caller expected.
        expected: u64,
        /// What the link has.
        found: u64,
    },
    /// No consumer with that index.
    #[error("link {link:?} has {count} consumers; there is no consumer {index}")]
    NoSuchConsumer {
        /// The link.
        link: String,
        /// Index asked for.
        index: usize,
        /// Consumers the link has.
        count: usize,
    },
}
