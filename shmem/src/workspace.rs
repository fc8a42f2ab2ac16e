//! Named workspaces: one shared-memory file, mapped by every process that
//! joins it, each at its own address.
//!
//! # Layout
//!
//! ```text
//! gaddr 0        header: static part (Pod, written before the magic),
//!                then the allocator lock and counters on their own lines
//! gaddr 4096     allocation table: `table_cap` entries of 80 bytes
//! gaddr data_off data region (4096-aligned): what `alloc` hands out
//! gaddr size     end
//! ```
//!
//! A *gaddr* is a byte offset from the start of the workspace. Shared records
//! hold gaddrs (or chunk indices), never pointers, because every process maps
//! the file at a different address; [`Workspace::laddr`] turns a gaddr into
//! this process's pointer after a bounds check, [`Workspace::gaddr`] goes back.
//!
//! # Creation is atomic
//!
//! `create` builds the file under a hidden temporary name, formats the header
//! (magic last, Release), and only then links it to its real name with a
//! call that fails if the name exists. A workspace visible by name is always
//! complete; two racing creators get one winner and one [`CreateError::Exists`].
//!
//! # What a join trusts
//!
//! Nothing: `join` maps exactly the file's size, then checks the magic's kind
//! and version, the header's size against the file, the page kind, the table
//! and data offsets and the stored name before it hands out a handle. A
//! garbage, truncated or foreign file gives an [`OpenError`], never a read
//! outside the mapping. (A process that truncates the file *while* others
//! have it mapped makes their next touch of the lost pages fault; files are
//! created 0600 so only the owner can do that.)
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};

use crate::alloc::{Entry, ENTRY_SZ};
use crate::name::{check_name, pack_name, unpack_name, NameError, NAME_MAX};
use crate::object::{self, JoinError};
use crate::page::{hugetlbfs_page_size, path_for, Config, PageKind, FILE_PREFIX};
use crate::region::{Access, Region};

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

/// A summary of one workspace file, as `list` finds it.
#[derive(Debug, Clone)]
pub struct WorkspaceInfo {
    /// Its name.
    pub name: String,
    /// Its page kind (from the directory it was found in).
    pub page: PageKind,
    /// Its file.
    pub path: PathBuf,
    /// The file's size.
    pub file_size: u64,
    /// The header, if it is a valid workspace; otherwise why not.
    pub header: Result<HeaderStatic, String>,
    /// Whether the creating process is still running (false for a crash
    /// left-over or a workspace whose creator exited normally).
    pub creator_alive: bool,
}

/// Options for [`Workspace::create_with`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Directories per page kind.
    pub config: Config,
    /// Entries in the allocation table (the most live allocations).
    pub table_cap: usize,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            config: Config::from_env(),
            table_cap: DEFAULT_TABLE_CAP,
        }
    }
}

/// A joined workspace: the mapping of one shared-memory file. Dropping it
/// leaves (unmaps) the workspace; the file stays until [`Workspace::unlink`].
pub struct Workspace {
    base: NonNull<u8>,
    size: usize,
    access: Access,
    page: PageKind,
    name: String,
    path: PathBuf,
    pub(crate) table_cap: usize,
    pub(crate) data_off: usize,
}

impl core::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workspace")
            .field("name", &self.name)
            .field("page", &self.page)
            .field("size", &self.size)
            .field("access", &self.access)
            .field("base", &self.base)
            .finish()
    }
}

// SAFETY: all state shared through the mapping is touched via atomics or
// checked copies; the struct's own fields are immutable after join.
unsafe impl Send for Workspace {}
// SAFETY: as above.
unsafe impl Sync for Workspace {}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> CreateError + 'p {
    move |source| CreateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn cpath(p: &Path) -> CString {
    // Paths built here come from checked names and configured directories;
    // an interior NUL could only come from a directory setting.
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

const fn align_up(x: usize, a: usize) -> Option<usize> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

/// gaddr of the data region for a table of `cap` entries.
pub(crate) fn data_off_for(cap: usize) -> Option<usize> {
    align_up(HEADER_SZ.checked_add(cap.checked_mul(ENTRY_SZ)?)?, 4096)
}

/// Maps `len` bytes of `fd`.
fn map(fd: &File, len: usize, access: Access) -> io::Result<NonNull<u8>> {
    let prot = match access {
        Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        Access::ReadOnly => libc::PROT_READ,
    };
    // SAFETY: a fresh shared mapping of a file we hold open; the kernel picks
    // the address, so nothing existing is replaced.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

fn unmap(base: NonNull<u8>, len: usize) {
    // SAFETY: `base..base+len` is a mapping this module made and nobody else
    // unmaps; callers drop every Region borrowed from it first (lifetimes).
    unsafe {
        libc::munmap(base.as_ptr().cast(), len);
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// True if process `pid` exists (in this pid namespace), zombies included:
/// what a lock's owner check needs. [`pid_alive`] also says no to zombies.
pub(crate) fn pid_exists(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// True if process `pid` exists and is not a zombie, judged from `/proc`
/// (in this process's pid namespace). Where `/proc` is not mounted nothing
/// can be told and every pid counts as alive: the heartbeat still tells.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let proc_root = std::path::Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        // The state is the first field after the command, which is in
        // parentheses and may itself hold spaces and parentheses.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Links `tmp` to `dst`, failing if `dst` exists.
fn link_noreplace(tmp: &Path, dst: &Path) -> io::Result<()> {
    let (t, d) = (cpath(tmp), cpath(dst));
    // SAFETY: both are valid NUL-terminated paths.
    if unsafe { libc::link(t.as_ptr(), d.as_ptr()) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EOPNOTSUPP) => {
            // Filesystems without hard links: an exclusive rename does the same.
            // SAFETY: as above; AT_FDCWD resolves relative paths as usual.
            let r = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    t.as_ptr(),
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        _ => Err(err),
    }
}

impl Workspace {
    /// Creates workspace `name` of at least `size` bytes on pages of kind
    /// `page`, with directories from the environment (see [`Config`]), and
    /// joins it read-write.
    ///
    /// `size` is rounded up to a whole number of pages. The file is created
    /// 0600, fully backed (tmpfs space is allocated now, huge pages are
    /// reserved now) so later touches cannot fault for lack of memory.
    ///
    /// # Errors
    /// See [`CreateError`]: a bad name, an existing workspace, a bad size, a
    /// missing hugetlbfs mount or too few huge pages (with the commands that
    /// fix it), a full tmpfs, or another OS error.
    pub fn create(name: &str, size: usize, page: PageKind) -> Result<Workspace, CreateError> {
        Self::create_with(name, size, page, &CreateOptions::default())
    }

    /// [`Workspace::create`] with explicit directories and table capacity.
    ///
    /// # Errors
    /// As [`Workspace::create`], and [`CreateError::InvalidTableCap`].
    pub fn create_with(
        name: &str,
        size: usize,
        page: PageKind,
        opts: &CreateOptions,
    ) -> Result<Workspace, CreateError> {
        check_name(name)?;
        let cap = opts.table_cap;
        if cap == 0 || cap > MAX_TABLE_CAP {
            return Err(CreateError::InvalidTableCap(cap));
        }
        let bad = |reason| CreateError::InvalidSize { size, reason };
        let data_off = data_off_for(cap).ok_or(bad("overflows"))?;
        let size_r = align_up(size, page.size()).ok_or(bad("overflows when rounded to pages"))?;
        if size_r > isize::MAX as usize / 2 {
            return Err(bad("larger than this process can map"));
        }
        if size_r <= data_off {
            return Err(bad(
                "leaves no data region after the header and allocation table",
            ));
        }
        let dir = opts.config.dir(page).to_path_buf();
        if page != PageKind::Normal && hugetlbfs_page_size(&dir) != Some(page.size()) {
            return Err(CreateError::NoHugetlbfs {
                page,
                hint: page.reserve_hint((size_r / page.size()) as u64, &dir),
                dir,
            });
        }
        let path = path_for(&opts.config, page, name);
        if path.exists() {
            return Err(CreateError::Exists {
                name: name.into(),
                path,
            });
        }
        let tmp = dir.join(format!(
            ".{FILE_PREFIX}{name}.{}.{}.tmp",
            std::process::id(),
            now_ns()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let result = Self::format_and_link(&file, &tmp, &path, name, size_r, page, cap, data_off);
        // The temporary name goes whatever happened; on success the real
        // name holds the file.
        let _ = std::fs::remove_file(&tmp);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn format_and_link(
        file: &File,
        tmp: &Path,
        path: &Path,
        name: &str,
        size: usize,
        page: PageKind,
        cap: usize,
        data_off: usize,
    ) -> Result<Workspace, CreateError> {
        file.set_len(size as u64).map_err(io_err("resize", tmp))?;
        if page == PageKind::Normal {
            // SAFETY: plain syscall on a descriptor we own.
            let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
            if r == libc::ENOSPC {
                return Err(CreateError::NoSpace {
                    dir: tmp.parent().unwrap_or(tmp).to_path_buf(),
                    size,
                });
            } else if r != 0 && r != libc::EOPNOTSUPP && r != libc::EINVAL {
                return Err(io_err("allocate", tmp)(io::Error::from_raw_os_error(r)));
            }
        }
        let base = map(file, size, Access::ReadWrite).map_err(|e| {
            if page != PageKind::Normal && e.raw_os_error() == Some(libc::ENOMEM) {
                let need = (size / page.size()) as u64;
                CreateError::NoHugePages {
                    page,
                    need,
                    free: page.free_pages().unwrap_or(0),
                    hint: page.reserve_hint(need, tmp.parent().unwrap_or(tmp)),
                }
            } else {
                io_err("map", tmp)(e)
            }
        })?;
        let ws = Workspace {
            base,
            size,
            access: Access::ReadWrite,
            page,
            name: name.into(),
            path: path.to_path_buf(),
            table_cap: cap,
            data_off,
        };
        let hdr = HeaderStatic {
            magic: 0,
            size: size as u64,
            page_sz: page.size() as u64,
            table_off: HEADER_SZ as u64,
            table_cap: cap as u64,
            data_off: data_off as u64,
            created_ns: now_ns(),
            creator_pid: std::process::id(),
            page_kind: page as u32,
            name: pack_name(name),
            reserved: [0; 24],
        };
        // SAFETY: the mapping is at least data_off > HEADER_SZ bytes, page
        // aligned, writable, and not yet visible to any other process.
        unsafe {
            core::ptr::write(base.as_ptr() as *mut HeaderStatic, hdr);
        }
        // The table and live fields are zero: a new file reads as zeroes.
        object::publish_magic(&ws.whole(), WKSP_MAGIC);
        link_noreplace(tmp, path).map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                CreateError::Exists {
                    name: name.into(),
                    path: path.to_path_buf(),
                }
            } else {
                io_err("link", path)(e)
            }
        })?;
        Ok(ws)
    }

    /// Joins workspace `name` with directories from the environment.
    ///
    /// # Errors
    /// See [`OpenError`].
    pub fn join(name: &str, access: Access) -> Result<Workspace, OpenError> {
        Self::join_with(name, access, &Config::from_env())
    }

    /// Joins workspace `name`, looking in each page kind's directory of
    /// `config` in turn. A read-only join maps `PROT_READ`.
    ///
    /// # Errors
    /// See [`OpenError`]: a bad name, no such workspace, a file too short,
    /// a header with the wrong magic, version or inconsistent fields, a size
    /// that does not match the file, or an OS error such as permission denied.
    pub fn join_with(name: &str, access: Access, config: &Config) -> Result<Workspace, OpenError> {
        check_name(name)?;
        for page in PageKind::ALL {
            let path = path_for(config, page, name);
            match std::fs::OpenOptions::new()
                .read(true)
                .write(access == Access::ReadWrite)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => return Self::join_file(&file, path, name, page, access),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(OpenError::Io {
                        op: "open",
                        path,
                        source,
                    })
                }
            }
        }
        Err(OpenError::NotFound {
            name: name.into(),
            searched: PageKind::ALL
                .iter()
                .map(|p| config.dir(*p).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn join_file(
        file: &File,
        path: PathBuf,
        name: &str,
        page: PageKind,
        access: Access,
    ) -> Result<Workspace, OpenError> {
        let file_size = file
            .metadata()
            .map_err(|source| OpenError::Io {
                op: "stat",
                path: path.clone(),
                source,
            })?
            .len();
        if file_size < HEADER_SZ as u64 || file_size > isize::MAX as u64 / 2 {
            return Err(OpenError::Truncated {
                path,
                size: file_size,
                need: HEADER_SZ as u64,
            });
        }
        let size = file_size as usize;
        let base = map(file, size, access).map_err(|source| OpenError::Io {
            op: "map",
            path: path.clone(),
            source,
        })?;
        let mut ws = Workspace {
            base,
            size,
            access,
            page,
            name: name.into(),
            path,
            table_cap: 0,
            data_off: 0,
        };
        // On error `ws` drops here and unmaps.
        let hdr = validate_header(&ws.whole(), Some(name), Some(page)).map_err(|e| match e {
            HeaderProblem::Size(header) => OpenError::SizeMismatch {
                path: ws.path.clone(),
                header,
                file: file_size,
            },
            HeaderProblem::Join(source) => OpenError::Corrupt {
                path: ws.path.clone(),
                source,
            },
        })?;
        ws.table_cap = hdr.table_cap as usize;
        ws.data_off = hdr.data_off as usize;
        Ok(ws)
    }

    /// Removes workspace `name` (looking in every configured directory).
    /// Processes that have it joined keep their mapping; the memory goes
    /// back to the system when the last one leaves.
    ///
    /// # Errors
    /// See [`UnlinkError`].
    pub fn unlink(name: &str) -> Result<(), UnlinkError> {
        Self::unlink_with(name, &Config::from_env())
    }

    /// [`Workspace::unlink`] with explicit directories.
    ///
    /// # Errors
    /// See [`UnlinkError`].
    pub fn unlink_with(name: &str, config: &Config) -> Result<(), UnlinkError> {
        check_name(name)?;
        for page in PageKind::ALL {
            let path = path_for(config, page, name);
            match std::fs::remove_file(&path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(UnlinkError::Io { path, source }),
            }
        }
        Err(UnlinkError::NotFound(name.into()))
    }

    /// Lists the workspaces in every configured directory, valid or not.
    /// Directories that do not exist are skipped.
    pub fn list(config: &Config) -> Vec<WorkspaceInfo> {
        let mut out = Vec::new();
        for page in PageKind::ALL {
            let Ok(rd) = std::fs::read_dir(config.dir(page)) else {
                continue;
            };
            for ent in rd.flatten() {
                let fname = ent.file_name();
                let Some(name) = fname.to_str().and_then(|f| f.strip_prefix(FILE_PREFIX)) else {
                    continue;
                };
                if check_name(name).is_err() {
                    continue;
                }
                out.push(inspect(ent.path(), name, page));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Leaves the workspace (the same as dropping it).
    pub fn leave(self) {}

    /// The workspace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file backing it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Total bytes mapped.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Its page kind.
    pub fn page_kind(&self) -> PageKind {
        self.page
    }

    /// How this process mapped it.
    pub fn access(&self) -> Access {
        self.access
    }

    /// gaddr of the first byte `alloc` can hand out.
    pub fn data_off(&self) -> u64 {
        self.data_off as u64
    }

    /// The static header.
    pub fn header(&self) -> HeaderStatic {
        // SAFETY: the mapping holds at least HEADER_SZ bytes and the static
        // header is never written after the magic was published.
        unsafe { core::ptr::read(self.base.as_ptr() as *const HeaderStatic) }
    }

    /// The whole mapping as a region.
    pub fn whole(&self) -> Region<'_> {
        // SAFETY: the mapping is live for as long as `self` is borrowed, and
        // writable exactly when `access` says so.
        unsafe { Region::from_raw(self.base, self.size, self.access) }
    }

    /// This process's address of `[gaddr, gaddr+len)`, after a bounds check.
    ///
    /// # Errors
    /// [`AddrError::OutOfBounds`] if the range leaves the workspace.
    pub fn laddr(&self, gaddr: u64, len: usize) -> Result<NonNull<u8>, AddrError> {
        self.region(gaddr, len).map(|r| {
            // SAFETY: a region's pointer is never null.
            unsafe { NonNull::new_unchecked(r.as_ptr()) }
        })
    }

    /// This process's address of `gaddr`, without a check.
    ///
    /// The result is only meaningful for `gaddr <= size`; computing it is
    /// safe (wrapping arithmetic), dereferencing an out-of-range one is not.
    pub fn laddr_unchecked(&self, gaddr: u64) -> *mut u8 {
        self.base.as_ptr().wrapping_add(gaddr as usize)
    }

    /// The gaddr of `laddr`, a pointer into this process's mapping.
    ///
    /// # Errors
    /// [`AddrError::NotMapped`] if it points elsewhere.
    pub fn gaddr(&self, laddr: *const u8) -> Result<u64, AddrError> {
        let (b, a) = (self.base.as_ptr() as usize, laddr as usize);
        if a < b || a - b > self.size {
            return Err(AddrError::NotMapped { addr: a });
        }
        Ok((a - b) as u64)
    }

    /// The gaddr of `laddr`, without a check.
    pub fn gaddr_unchecked(&self, laddr: *const u8) -> u64 {
        (laddr as usize).wrapping_sub(self.base.as_ptr() as usize) as u64
    }

    /// The bytes `[gaddr, gaddr+len)` as a region, after a bounds check.
    ///
    /// # Errors
    /// [`AddrError::OutOfBounds`] if the range leaves the workspace.
    pub fn region(&self, gaddr: u64, len: usize) -> Result<Region<'_>, AddrError> {
        let oob = AddrError::OutOfBounds {
            gaddr,
            len,
            size: self.size,
        };
        let off = usize::try_from(gaddr).map_err(|_| oob.clone())?;
        self.whole().sub(off, len).ok_or(oob)
    }

    /// A live header word at byte offset `off` of the header.
    pub(crate) fn live_word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= HEADER_SZ);
        // SAFETY: the header page is mapped for the life of `self`, the
        // offset is 8-aligned inside it, and every process touches these
        // words only atomically.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }

    /// Entry `i` of the allocation table (`i < table_cap`).
    pub(crate) fn entry(&self, i: usize) -> &Entry {
        assert!(i < self.table_cap);
        // SAFETY: join checked that the table lies inside the mapping and
        // that table_cap entries fit before data_off; i < table_cap. Entries
        // are all atomics and 8-aligned (HEADER_SZ and ENTRY_SZ are multiples
        // of 8).
        unsafe { &*(self.base.as_ptr().add(HEADER_SZ + i * ENTRY_SZ) as *const Entry) }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        unmap(self.base, self.size);
    }
}

enum HeaderProblem {
    Join(JoinError),
    Size(u64),
}

/// Checks a mapped workspace header. `name` and `page`, when given, must
/// match what is stored.
fn validate_header(
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

/// What `list` says of one file.
fn inspect(path: PathBuf, name: &str, page: PageKind) -> WorkspaceInfo {
    let mut info = WorkspaceInfo {
        name: name.into(),
        page,
        path,
        file_size: 0,
        header: Err("unreadable".into()),
        creator_alive: false,
    };
    let file = match File::open(&info.path) {
        Ok(f) => f,
        Err(e) => {
            info.header = Err(e.to_string());
            return info;
        }
    };
    info.file_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    info.header = match Workspace::join_file(&file, info.path.clone(), name, page, Access::ReadOnly)
    {
        Ok(ws) => Ok(ws.header()),
        Err(e) => Err(e.to_string()),
    };
    if let Ok(h) = &info.header {
        info.creator_alive = pid_exists(h.creator_pid);
    }
    info
}
