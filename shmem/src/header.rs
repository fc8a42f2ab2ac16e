//! The layout of a workspace: the header, the allocation table and the
//! data region, and the check a join makes of a header (the picture is in
//! [`crate::workspace`]).
#![allow(unsafe_code)] // reads the header out of a checked mapping; the use says why it is sound

use bytemuck::{Pod, Zeroable};

use crate::name::{unpack_name, NAME_MAX};
use crate::object::{self, JoinError};
use crate::page::PageKind;
use crate::region::Region;
use crate::table::ENTRY_SZ;

/// Magic of a workspace header, layout version 1.
pub const WKSP_MAGIC: u64 = object::magic(b"tw.wksp", 1);
/// Bytes reserved for the header; the allocation table starts here.
pub const HEADER_SZ: usize = 4096;
/// Default number of allocation table entries.
pub const DEFAULT_TABLE_CAP: usize = 1024;
/// Largest allocation table.
pub const MAX_TABLE_CAP: usize = 1 << 20;

/// The static part of the header, written once before the magic.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct HeaderStatic {
    /// [`WKSP_MAGIC`]; written last with Release, read first with Acquire.
    pub magic: u64,
    /// Total bytes, equal to the file's size.
    pub size: u64,
    /// Page size in bytes.
    pub page_sz: u64,
    /// gaddr of the allocation table ([`HEADER_SZ`]).
    pub table_off: u64,
    /// Entries in the allocation table.
    pub table_cap: u64,
    /// gaddr of the data region.
    pub data_off: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Process id of the creator.
    pub creator_pid: u32,
    /// [`PageKind`] as `u32`.
    pub page_kind: u32,
    /// The workspace's name, NUL-padded.
    pub name: [u8; NAME_MAX],
    /// Zero; room for later versions.
    pub reserved: [u8; 24],
}

/// Offset of the allocator lock word (its own cache line).
pub(crate) const LOCK_OFF: usize = 128;
/// Offset of the count of locks recovered from dead owners.
pub(crate) const STEALS_OFF: usize = 192;
/// Offset of the allocation generation, bumped by every alloc and free.
pub(crate) const GEN_OFF: usize = 200;

/// `x` rounded up to a multiple of `a` (a power of two), or `None` on
/// overflow.
pub(crate) const fn align_up(x: usize, a: usize) -> Option<usize> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

/// gaddr of the data region for a table of `cap` entries.
pub(crate) fn data_off_for(cap: usize) -> Option<usize> {
    align_up(HEADER_SZ.checked_add(cap.checked_mul(ENTRY_SZ)?)?, 4096)
}

/// Why a header failed its check.
pub(crate) enum HeaderProblem {
    /// A field is wrong (magic, version, offsets, name, page kind).
    Join(JoinError),
    /// The header records this size, which is not the mapping's.
    Size(u64),
}

/// Checks a mapped workspace header. `name` and `page`, when given, must
/// match what is stored.
pub(crate) fn validate_header(
    mem: &Region<'_>,
    name: Option<&str>,
    page: Option<PageKind>,
) -> Result<HeaderStatic, HeaderProblem> {
    const KIND: &str = "workspace";
    let bad = |what| HeaderProblem::Join(JoinError::BadParams { kind: KIND, what });
    object::check_join(mem, KIND, WKSP_MAGIC, 4096, HEADER_SZ).map_err(HeaderProblem::Join)?;
    // SAFETY: check_join proved at least HEADER_SZ readable, aligned bytes;
    // the static header is written once before the magic we just acquired.
    let hdr: HeaderStatic = unsafe { core::ptr::read(mem.as_ptr() as *const HeaderStatic) };
    if hdr.size != mem.len() as u64 {
        return Err(HeaderProblem::Size(hdr.size));
    }
    let kind = PageKind::from_u32(hdr.page_kind).ok_or(bad("unknown page kind"))?;
    if page.is_some_and(|p| p != kind) {
        return Err(bad("page kind does not match the directory it is in"));
    }
    if hdr.page_sz != kind.size() as u64 {
        return Err(bad("page size does not match the page kind"));
    }
    if hdr.table_off != HEADER_SZ as u64 {
        return Err(bad("allocation table offset"));
    }
    if hdr.table_cap == 0 || hdr.table_cap > MAX_TABLE_CAP as u64 {
        return Err(bad("allocation table capacity"));
    }
    if data_off_for(hdr.table_cap as usize) != Some(hdr.data_off as usize)
        || hdr.data_off >= hdr.size
    {
        return Err(bad("data region offset"));
    }
    match (unpack_name(&hdr.name), name) {
        (None, _) => return Err(bad("stored name is not a valid name")),
        (Some(stored), Some(n)) if stored != n => {
            return Err(bad("stored name does not match the file name"))
        }
        _ => {}
    }
    Ok(hdr)
}
