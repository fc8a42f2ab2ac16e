//! Why a workspace could not be created, joined, removed or addressed.

use std::io;
use std::path::PathBuf;

use crate::header::MAX_TABLE_CAP;
use crate::name::NameError;
use crate::object::JoinError;
use crate::page::PageKind;

/// Why a workspace could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The name breaks the naming rules.
    #[error("invalid workspace name: {0}")]
    Name(#[from] NameError),
    /// A workspace of that name already exists.
    #[error("workspace {name:?} already exists at {}; join it or remove it with `tilewire shmem rm {name}`", path.display())]
    Exists {
        /// Name asked for.
        name: String,
        /// File found.
        path: PathBuf,
    },
    /// The size is zero, too small for the header and table, or overflows.
    #[error("invalid workspace size {size}: {reason}")]
    InvalidSize {
        /// Size asked for.
        size: usize,
        /// Why it does not work.
        reason: &'static str,
    },
    /// The table capacity is zero or larger than [`MAX_TABLE_CAP`].
    #[error("invalid allocation table capacity {0}: must be 1..={MAX_TABLE_CAP}")]
    InvalidTableCap(usize),
    /// The directory for this page kind is not a hugetlbfs mount of the
    /// right page size.
    #[error("{} is not a hugetlbfs mount with {page} pages; {hint}", dir.display())]
    NoHugetlbfs {
        /// Page kind asked for.
        page: PageKind,
        /// Directory tried.
        dir: PathBuf,
        /// What to run to fix it.
        hint: String,
    },
    /// Not enough huge or gigantic pages are free.
    #[error("not enough free {page} pages: need {need}, {free} free; {hint}")]
    NoHugePages {
        /// Page kind asked for.
        page: PageKind,
        /// Pages needed.
        need: u64,
        /// Pages free (or 0 if the kernel did not say).
        free: u64,
        /// What to run to fix it.
        hint: String,
    },
    /// The tmpfs has no room for the workspace.
    #[error("no space for {size} bytes in {}: grow the tmpfs (mount -o remount,size=...) or ask for less", dir.display())]
    NoSpace {
        /// Directory tried.
        dir: PathBuf,
        /// Bytes asked for.
        size: usize,
    },
    /// Some other system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Why a workspace could not be joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The name breaks the naming rules.
    #[error("invalid workspace name: {0}")]
    Name(#[from] NameError),
    /// No workspace of that name in any of the configured directories.
    #[error("no workspace named {name:?} (looked in {searched})")]
    NotFound {
        /// Name asked for.
        name: String,
        /// Directories searched, comma separated.
        searched: String,
    },
    /// The file is shorter than a workspace header.
    #[error("{} is {size} bytes, too short for a workspace header ({need} bytes): truncated or not a workspace", path.display())]
    Truncated {
        /// File found.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The header is not a valid workspace header (wrong magic or version,
    /// inconsistent fields).
    #[error("{} is not a usable workspace: {source}", path.display())]
    Corrupt {
        /// File found.
        path: PathBuf,
        /// What was wrong.
        source: JoinError,
    },
    /// The header's size does not match the file's size.
    #[error("{} is {file} bytes but its header says {header}: truncated or overwritten", path.display())]
    SizeMismatch {
        /// File found.
        path: PathBuf,
        /// Size the header records.
        header: u64,
        /// Size of the file.
        file: u64,
    },
    /// Some system call failed (permission denied, for one).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// File involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Why a workspace could not be removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnlinkError {
    /// The name breaks the naming rules.
    #[error("invalid workspace name: {0}")]
    Name(#[from] NameError),
    /// No workspace of that name.
    #[error("no workspace named {0:?}")]
    NotFound(String),
    /// The OS refused.
    #[error("remove {}: {source}", path.display())]
    Io {
        /// File involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A gaddr or pointer that is not inside the workspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// `[gaddr, gaddr+len)` does not fit in `[0, size)`.
    #[error("gaddr range {gaddr:#x}+{len} is outside the workspace of {size} bytes")]
    OutOfBounds {
        /// Start asked for.
        gaddr: u64,
        /// Length asked for.
        len: usize,
        /// Workspace size.
        size: usize,
    },
    /// The pointer does not point into this process's mapping.
    #[error("address {addr:#x} is not inside this workspace's mapping")]
    NotMapped {
        /// The pointer.
        addr: usize,
    },
}

/// A workspace whose file is shorter than this process's mapping of it:
/// something truncated it after the join (see [`crate::sigbus`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "workspace {name:?} ({}) was truncated under this mapping: the file is {} of the {mapped} \
     bytes mapped; {faults} reads of lost pages were answered with zeros",
    path.display(),
    file_size.map_or_else(|| "gone (no size)".to_string(), |s| format!("{s} bytes")),
)]
pub struct TruncatedError {
    /// The workspace.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Bytes mapped.
    pub mapped: u64,
    /// The file's size now (`None`: it could not be read).
    pub file_size: Option<u64>,
    /// Loads of lost pages the SIGBUS handler answered with a zero page.
    pub faults: u64,
}
