//! Why a link could not be made or joined: [`LinkError`].

use crate::part::PartError;

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
    /// A part (the mcache, the dcache, an fseq) could not be made or
    /// joined.
    #[error("{}{}", link_part(.0), .0)]
    Part(#[from] PartError),
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

/// How [`LinkError::Part`] begins: a link's messages call a part that lies
/// outside the workspace a "link part", as they do a missing one.
fn link_part(e: &PartError) -> &'static str {
    match e {
        PartError::Addr { .. } => "link part ",
        _ => "",
    }
}
