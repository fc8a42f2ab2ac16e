//! The parts of links and tiles: named allocations in a workspace.
//!
//! A link is made of parts (`net.rx.mc`, `net.rx.dc`, `net.rx.fs0`, ...),
//! and so is a tile (`dedup.tm` for its metrics, `dedup.lat0` for the
//! latency of its first input). Every part is found by name, made
//! (allocated, then formatted as its object) or joined (checked to be
//! that object), and each of those steps fails the same way whatever the
//! part belongs to: [`PartError`] says which step and which part.
//! [`LinkError`](crate::link::LinkError) and
//! [`TileError`](crate::stem::TileError) wrap it.

use tilewire_shmem::{AddrError, AllocError, JoinError, NewError, Region, Workspace};

/// Why a named part of a link or a tile could not be made or joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// Allocating the part failed (its name is taken, or the workspace is
    /// full).
    #[error("allocating {part:?}: {source}")]
    Alloc {
        /// The part.
        part: String,
        /// Why.
        source: AllocError,
    },
    /// Formatting the part as its object failed.
    #[error("formatting {part:?}: {source}")]
    New {
        /// The part.
        part: String,
        /// Why.
        source: NewError,
    },
    /// The part is not what it should be (wrong kind of object, magic,
    /// version, or a corrupt header).
    #[error("joining {part:?}: {source}")]
    Join {
        /// The part.
        part: String,
        /// Why.
        source: JoinError,
    },
    /// The allocation table places the part outside the workspace (a
    /// corrupt table); nothing was read there.
    #[error("{part:?} lies outside the workspace: {source}")]
    Addr {
        /// The part.
        part: String,
        /// Where it claims to be.
        source: AddrError,
    },
}

/// Finds part `part` of `ws`, or makes it with `make` (allocated with
/// `align` and `size`) if it does not exist. Returns its memory and
/// whether it was made now. Two processes may race to make it: the one
/// that loses uses the other's.
///
/// # Errors
/// [`PartError::Addr`] for a part placed outside the workspace,
/// [`PartError::Alloc`] if it cannot be allocated, [`PartError::New`] if
/// `make` fails (the allocation is freed again), [`PartError::Join`]
/// ([`JoinError::NotInitialized`]) if another process made it and it
/// vanished meanwhile.
pub(crate) fn get_or_make<'w>(
    ws: &'w Workspace,
    part: &str,
    align: usize,
    size: usize,
    make: impl Fn(Region<'w>) -> Result<(), NewError>,
) -> Result<(Region<'w>, bool), PartError> {
    let region = |gaddr, size| {
        ws.region(gaddr, size).map_err(|source| PartError::Addr {
            part: part.into(),
            source,
        })
    };
    if let Some(a) = ws.lookup(part) {
        return Ok((region(a.gaddr, a.size as usize)?, false));
    }
    let gaddr = match ws.alloc_named(part, align, size, 0) {
        Ok(g) => g,
        // Another process made it meanwhile: use theirs.
        Err(AllocError::NameTaken(_)) => {
            let a = ws.lookup(part).ok_or_else(|| PartError::Join {
                part: part.into(),
                source: JoinError::NotInitialized,
            })?;
            return Ok((region(a.gaddr, a.size as usize)?, false));
        }
        Err(source) => {
            return Err(PartError::Alloc {
                part: part.into(),
                source,
            })
        }
    };
    let mem = region(gaddr, size)?;
    if let Err(source) = make(mem) {
        let _ = ws.free_named(part);
        return Err(PartError::New {
            part: part.into(),
            source,
        });
    }
    Ok((mem, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkError;
    use crate::stem::TileError;

    /// The messages of a part's failures read as they did when links and
    /// tiles had an error variant each for them.
    #[test]
    fn messages_of_a_links_and_a_tiles_parts() {
        let addr = AddrError::OutOfBounds {
            gaddr: 0x1000,
            len: 64,
            size: 4096,
        };
        let outside = |part: &str| PartError::Addr {
            part: part.into(),
            source: addr.clone(),
        };
        assert_eq!(
            LinkError::from(outside("l.mc")).to_string(),
            format!("link part \"l.mc\" lies outside the workspace: {addr}")
        );
        assert_eq!(
            TileError::from(outside("t.tm")).to_string(),
            format!("\"t.tm\" lies outside the workspace: {addr}")
        );
        let alloc = PartError::Alloc {
            part: "x".into(),
            source: AllocError::ZeroSize,
        };
        let join = PartError::Join {
            part: "x".into(),
            source: JoinError::NotInitialized,
        };
        let new = PartError::New {
            part: "x".into(),
            source: NewError::ReadOnly,
        };
        for (e, want) in [
            (alloc, format!("allocating \"x\": {}", AllocError::ZeroSize)),
            (
                join,
                format!("joining \"x\": {}", JoinError::NotInitialized),
            ),
            (new, format!("formatting \"x\": {}", NewError::ReadOnly)),
        ] {
            assert_eq!(LinkError::from(e.clone()).to_string(), want);
            assert_eq!(TileError::from(e).to_string(), want);
        }
    }
}
