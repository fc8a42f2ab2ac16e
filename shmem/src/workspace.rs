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
//! outside the mapping. A process that truncates the file *while* others
//! have it mapped makes their next touch of the lost pages fault (files are
//! created 0600 so only the owner can do that): a read-only join survives
//! it and [`Workspace::check_intact`] says so (see [`crate::sigbus`]); a
//! read-write join dies of it.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::header::{align_up, data_off_for, validate_header, HeaderProblem};
use crate::name::{check_name, pack_name};
use crate::object;
use crate::page::{hugetlbfs_page_size, path_for, Config, PageKind, FILE_PREFIX};
use crate::pid::pid_exists;
use crate::region::{Access, Region};
use crate::sigbus::Guard;
use crate::sys::{link_noreplace, map, now_ns, unmap};
use crate::table::{Entry, ENTRY_SZ};

pub use crate::header::{HeaderStatic, DEFAULT_TABLE_CAP, HEADER_SZ, MAX_TABLE_CAP, WKSP_MAGIC};
pub use crate::pid::pid_alive;
pub use crate::workspace_error::{AddrError, CreateError, OpenError, TruncatedError, UnlinkError};

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
    /// The file, kept open to compare its size with the mapping (see
    /// [`Workspace::check_intact`]).
    pub(crate) file: Option<File>,
    /// A read-only mapping's registration with the SIGBUS handler (see
    /// [`crate::sigbus`]).
    pub(crate) guard: Option<Guard>,
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
            file: file.try_clone().ok(),
            guard: None,
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
            file: file.try_clone().ok(),
            // A monitor's mapping survives its file being truncated (a
            // tile's does not: see crate::sigbus).
            guard: match access {
                Access::ReadOnly => Guard::register(base, size, page.size()),
                Access::ReadWrite => None,
            },
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

    /// The smallest region of this workspace that starts and ends on an
    /// `align` boundary (a power of two; a page, say) and holds every one
    /// of `parts`, or `None` if `parts` is empty or one of them lies
    /// outside the mapping. The end is cut at the mapping's end.
    pub fn region_covering(&self, parts: &[Region<'_>], align: usize) -> Option<Region<'_>> {
        debug_assert!(align.is_power_of_two());
        let mut lo = u64::MAX;
        let mut hi = 0u64;
        for r in parts {
            let g = self.gaddr(r.as_ptr()).ok()?;
            let end = g.checked_add(r.len() as u64)?;
            if end > self.size as u64 {
                return None;
            }
            lo = lo.min(g);
            hi = hi.max(end);
        }
        if parts.is_empty() {
            return None;
        }
        let a = align as u64;
        let lo = lo & !(a - 1);
        let hi = hi.checked_add(a - 1)? & !(a - 1);
        let hi = hi.min(self.size as u64);
        self.region(lo, (hi - lo) as usize).ok()
    }

    /// A live header word at byte offset `off` of the header.
    pub(crate) fn live_word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= HEADER_SZ);
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
        // Unregistered first: the handler must not answer for a range
        // that is about to be someone else's.
        self.guard.take();
        unmap(self.base, self.size);
    }
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
