//! The shared-object lifecycle: align, footprint, new, join, leave, delete.
//!
//! Every object that lives in shared memory (an aio, a link's rings, the
//! workspace itself) goes through the same six verbs, after Firedancer's
//! `fd_*_new / join / leave / delete`:
//!
//! - `ALIGN` and `footprint(params) -> Option<usize>` say how much memory the
//!   object needs, `None` meaning the parameters are invalid.
//! - `new(mem, params)` formats caller memory: it checks alignment and size,
//!   writes every field, and only then stores the magic with Release ordering.
//!   A joiner that sees the magic (Acquire) therefore sees every field.
//! - `join(mem)` checks alignment, size, the magic's kind and version, and
//!   the object's own parameters, and returns a typed handle, never a bare
//!   cast of the bytes.
//! - `leave(handle)` gives the memory back (a handle does not own it).
//! - `delete(mem)` checks the magic and zeroes it (Release), so a later join
//!   fails with [`JoinError::NotInitialized`] instead of using stale fields.
//!
//! Magic values are versioned: the high seven bytes name the kind of object,
//! the low byte its layout version. A join compares both and says which one
//! was wrong ([`JoinError::BadMagic`] or [`JoinError::BadVersion`]).
//!
//! Every object starts with its magic in its first eight bytes.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::sync::atomic::{AtomicU64, Ordering};

use crate::region::Region;

/// Builds a versioned magic: seven ASCII bytes naming the kind, then the
/// layout version in the low byte.
pub const fn magic(kind: &[u8; 7], version: u8) -> u64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < 7 {
        m = (m << 8) | kind[i] as u64;
        i += 1;
    }
    (m << 8) | version as u64
}

/// The kind part of a magic (everything but the version byte).
pub const fn magic_kind(m: u64) -> u64 {
    m >> 8
}

/// The layout version part of a magic.
pub const fn magic_version(m: u64) -> u8 {
    (m & 0xff) as u8
}

/// The common shape of a shared object, so layout tests and tools can treat
/// them generically. Each object also has inherent `new`, `join`, `leave` and
/// `delete` functions with typed handles.
pub trait ShmObject {
    /// Human-readable kind, used in errors and `shmem info`.
    const KIND: &'static str;
    /// The versioned magic stored in the first eight bytes.
    const MAGIC: u64;
    /// Required alignment of the object's first byte (a power of two >= 8).
    const ALIGN: usize;
    /// Whatever sizes the object.
    type Params;
    /// Bytes needed for an object with `params`, `None` if they are invalid.
    fn footprint(params: &Self::Params) -> Option<usize>;
}

/// Why an object could not be formatted over some memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewError {
    /// The memory's first byte is not aligned as the object needs.
    #[error("memory at {addr:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// Address of the first byte.
        addr: usize,
        /// Alignment required.
        align: usize,
    },
    /// The memory is smaller than the object's footprint.
    #[error("memory of {len} bytes is smaller than the footprint of {need} bytes")]
    TooSmall {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The parameters are invalid (the footprint is `None`).
    #[error("invalid parameters: {what}")]
    BadParams {
        /// Which parameter and why.
        what: &'static str,
    },
    /// The memory is mapped read-only.
    #[error("memory is mapped read-only")]
    ReadOnly,
}

/// Why a join failed. Nothing was read past the checked size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The memory's first byte is not aligned as the object needs.
    #[error("memory at {addr:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// Address of the first byte.
        addr: usize,
        /// Alignment required.
        align: usize,
    },
    /// The memory is too small to hold the object (or even its header).
    #[error("memory of {len} bytes is too small: need {need} bytes")]
    TooSmall {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The magic is zero: never formatted, or deleted.
    #[error("no object here (magic is zero: never created or deleted)")]
    NotInitialized,
    /// The magic names another kind of object (or garbage).
    #[error("wrong magic {found:#018x}: expected a {kind} ({expected:#018x})")]
    BadMagic {
        /// Magic found.
        found: u64,
        /// Magic expected.
        expected: u64,
        /// Kind expected.
        kind: &'static str,
    },
    /// The right kind of object, but another layout version.
    #[error(
        "{kind} layout version {found} is not supported (this build reads version {expected})"
    )]
    BadVersion {
        /// Version found.
        found: u8,
        /// Version this build understands.
        expected: u8,
        /// Kind of object.
        kind: &'static str,
    },
    /// The header's own fields are inconsistent or do not match what the
    /// joiner asked for.
    #[error("bad {kind} header: {what}")]
    BadParams {
        /// Kind of object.
        kind: &'static str,
        /// Which field and why.
        what: &'static str,
    },
}

/// Why a delete failed. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteError {
    /// The memory is mapped read-only.
    #[error("memory is mapped read-only")]
    ReadOnly,
    /// The memory does not hold a live object of this kind.
    #[error(transparent)]
    Join(#[from] JoinError),
}

/// The magic cell at the start of `mem`. The caller has checked that `mem`
/// is at least eight bytes long and 8-aligned.
fn magic_cell<'a>(mem: &Region<'a>) -> &'a AtomicU64 {
    debug_assert!(mem.len() >= 8 && mem.is_aligned(8));
    // SAFETY: the region is live for 'a, at least 8 bytes and 8-aligned
    // (checked by every caller), and AtomicU64 has the layout of u64; all
    // accesses to this cell, in any process, are atomic.
    unsafe { &*(mem.as_ptr() as *const AtomicU64) }
}

/// Checks that `mem` can take an object of `align` and `footprint` bytes.
///
/// # Errors
/// [`NewError::ReadOnly`], [`NewError::Misaligned`], [`NewError::TooSmall`].
pub fn check_new(mem: &Region<'_>, align: usize, footprint: usize) -> Result<(), NewError> {
    debug_assert!(align.is_power_of_two() && align >= 8);
    if !mem.is_writable() {
        return Err(NewError::ReadOnly);
    }
    if !mem.is_aligned(align) {
        return Err(NewError::Misaligned {
            addr: mem.as_ptr() as usize,
            align,
        });
    }
    if mem.len() < footprint.max(8) {
        return Err(NewError::TooSmall {
            len: mem.len(),
            need: footprint.max(8),
        });
    }
    Ok(())
}

/// Publishes the magic: the last store of every `new`.
///
/// SYNC: Release; pairs with the Acquire load in [`check_join`], so a joiner
/// that sees the magic sees every field written before this call.
pub fn publish_magic(mem: &Region<'_>, magic: u64) {
    debug_assert!(mem.is_writable());
    magic_cell(mem).store(magic, Ordering::Release);
}

/// Checks alignment, minimum size and magic of an object at `mem`.
///
/// `min_len` is the size of the fixed header: the object's full footprint
/// depends on parameters stored in that header, which the caller checks
/// next (and must check against `mem.len()`).
///
/// SYNC: Acquire on the magic; pairs with the Release in [`publish_magic`].
///
/// # Errors
/// [`JoinError::Misaligned`], [`JoinError::TooSmall`],
/// [`JoinError::NotInitialized`], [`JoinError::BadMagic`],
/// [`JoinError::BadVersion`].
pub fn check_join(
    mem: &Region<'_>,
    kind: &'static str,
    magic: u64,
    align: usize,
    min_len: usize,
) -> Result<(), JoinError> {
    debug_assert!(align.is_power_of_two() && align >= 8);
    if !mem.is_aligned(align) {
        return Err(JoinError::Misaligned {
            addr: mem.as_ptr() as usize,
            align,
        });
    }
    let need = min_len.max(8);
    if mem.len() < need {
        return Err(JoinError::TooSmall {
            len: mem.len(),
            need,
        });
    }
    let found = magic_cell(mem).load(Ordering::Acquire);
    check_magic(found, kind, magic)
}

/// Compares a magic read from memory with the expected one.
///
/// # Errors
/// [`JoinError::NotInitialized`], [`JoinError::BadMagic`],
/// [`JoinError::BadVersion`].
pub fn check_magic(found: u64, kind: &'static str, expected: u64) -> Result<(), JoinError> {
    if found == expected {
        Ok(())
    } else if found == 0 {
        Err(JoinError::NotInitialized)
    } else if magic_kind(found) != magic_kind(expected) {
        Err(JoinError::BadMagic {
            found,
            expected,
            kind,
        })
    } else {
        Err(JoinError::BadVersion {
            found: magic_version(found),
            expected: magic_version(expected),
            kind,
        })
    }
}

/// Checks that `mem` holds a live object of this kind and zeroes its magic.
///
/// SYNC: Release; a joiner's Acquire load then sees zero and refuses.
///
/// # Errors
/// [`DeleteError::ReadOnly`], or the [`JoinError`] of [`check_join`].
pub fn retire_magic(
    mem: &Region<'_>,
    kind: &'static str,
    magic: u64,
    align: usize,
) -> Result<(), DeleteError> {
    if !mem.is_writable() {
        return Err(DeleteError::ReadOnly);
    }
    check_join(mem, kind, magic, align, 8)?;
    // Only one deleter wins; a racing second one sees zero and reports it.
    magic_cell(mem)
        .compare_exchange(magic, 0, Ordering::Release, Ordering::Relaxed)
        .map(|_| ())
        .map_err(|_| DeleteError::Join(JoinError::NotInitialized))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = magic(b"testobj", 3);

    #[test]
    fn magic_splits_into_kind_and_version() {
        assert_eq!(magic_version(M), 3);
        assert_eq!(magic_kind(M), magic_kind(magic(b"testobj", 9)));
        assert_ne!(magic_kind(M), magic_kind(magic(b"testob2", 3)));
        assert_eq!(M.to_be_bytes(), *b"testobj\x03");
    }

    #[test]
    fn lifecycle_over_heap_memory() {
        let mut buf = vec![0u64; 8];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let mem = Region::from_mut(bytes);
        assert_eq!(
            check_join(&mem, "t", M, 8, 64),
            Err(JoinError::NotInitialized)
        );
        check_new(&mem, 8, 64).unwrap();
        publish_magic(&mem, M);
        check_join(&mem, "t", M, 8, 64).unwrap();
        assert!(matches!(
            check_join(&mem, "t", magic(b"testobj", 4), 8, 64),
            Err(JoinError::BadVersion {
                found: 3,
                expected: 4,
                ..
            })
        ));
        assert!(matches!(
            check_join(&mem, "t", magic(b"otherob", 3), 8, 64),
            Err(JoinError::BadMagic { .. })
        ));
        assert_eq!(
            check_join(&mem, "t", M, 8, 65),
            Err(JoinError::TooSmall { len: 64, need: 65 })
        );
        retire_magic(&mem, "t", M, 8).unwrap();
        assert_eq!(
            retire_magic(&mem, "t", M, 8),
            Err(DeleteError::Join(JoinError::NotInitialized))
        );
        let ro = mem.read_only();
        assert_eq!(check_new(&ro, 8, 64), Err(NewError::ReadOnly));
    }

    #[test]
    fn misaligned_memory_is_refused() {
        let mut buf = vec![0u64; 9];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let mem = Region::from_mut(&mut bytes[1..]);
        assert!(matches!(
            check_new(&mem, 8, 8),
            Err(NewError::Misaligned { align: 8, .. })
        ));
        assert!(matches!(
            check_join(&mem, "t", M, 8, 8),
            Err(JoinError::Misaligned { align: 8, .. })
        ));
    }
}
