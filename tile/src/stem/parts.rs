//! A tile's parts in the workspace: the names of its allocations (its
//! metrics, one latency histogram per input), and finding or making them.

use tilewire_shmem::{AllocError, JoinError, NewError, Region, Workspace};

use crate::stem::error::TileError;

/// Longest tile name (room for the `.latNN` suffix).
pub const TILE_NAME_MAX: usize = tilewire_shmem::NAME_MAX - 6;

/// The named allocation holding tile `tile`'s metrics.
pub fn metrics_name(tile: &str) -> String {
    format!("{tile}.tm")
}

/// The named allocation holding the latency histogram of tile `tile`'s
/// input `i`.
pub fn latency_name(tile: &str, i: usize) -> String {
    format!("{tile}.lat{i}")
}

/// Finds allocation `part`, or makes it with `make` if it does not exist.
/// Returns its memory and whether it was made now.
pub(super) fn get_or_make<'w>(
    ws: &'w Workspace,
    part: &str,
    align: usize,
    size: usize,
    make: impl Fn(Region<'w>) -> Result<(), NewError>,
) -> Result<(Region<'w>, bool), TileError> {
    let region = |gaddr, size| {
        ws.region(gaddr, size).map_err(|source| TileError::Addr {
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
            let a = ws.lookup(part).ok_or_else(|| TileError::Join {
                part: part.into(),
                source: JoinError::NotInitialized,
            })?;
            return Ok((region(a.gaddr, a.size as usize)?, false));
        }
        Err(source) => {
            return Err(TileError::Alloc {
                part: part.into(),
                source,
            })
        }
    };
    let mem = region(gaddr, size)?;
    if let Err(source) = make(mem) {
        let _ = ws.free_named(part);
        return Err(TileError::New {
            part: part.into(),
            source,
        });
    }
    Ok((mem, true))
}
