//! Page kinds and where each kind of workspace lives.
//!
//! - [`PageKind::Normal`] (4 KiB pages) lives in a tmpfs directory, `/dev/shm`
//!   by default. It needs nothing set up and is the embedded default.
//! - [`PageKind::Huge`] (2 MiB) and [`PageKind::Gigantic`] (1 GiB) live on
//!   hugetlbfs mounts. Huge pages cut TLB misses on the packet path; they
//!   must be reserved by the administrator first, and the errors say how.
//!
//! The directories come from [`Config`]: defaults, overridden by the
//! environment variables `TILEWIRE_SHM_DIR`, `TILEWIRE_HUGE_DIR` and
//! `TILEWIRE_GIGANTIC_DIR`, overridden again by whatever the caller sets.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use std::path::{Path, PathBuf};

/// The page size backing a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PageKind {
    /// 4 KiB pages on tmpfs.
    Normal = 1,
    /// 2 MiB huge pages on hugetlbfs.
    Huge = 2,
    /// 1 GiB gigantic pages on hugetlbfs.
    Gigantic = 3,
}

impl PageKind {
    /// All kinds, smallest page first.
    pub const ALL: [PageKind; 3] = [PageKind::Normal, PageKind::Huge, PageKind::Gigantic];

    /// Page size in bytes.
    pub const fn size(self) -> usize {
        match self {
            PageKind::Normal => 4096,
            PageKind::Huge => 2 << 20,
            PageKind::Gigantic => 1 << 30,
        }
    }

    /// Lower-case name, as used on the command line and in topology files.
    pub const fn as_str(self) -> &'static str {
        match self {
            PageKind::Normal => "normal",
            PageKind::Huge => "huge",
            PageKind::Gigantic => "gigantic",
        }
    }

    pub(crate) fn from_u32(v: u32) -> Option<PageKind> {
        match v {
            1 => Some(PageKind::Normal),
            2 => Some(PageKind::Huge),
            3 => Some(PageKind::Gigantic),
            _ => None,
        }
    }

    /// The sysfs directory holding this kind's reservation counters.
    fn sysfs_dir(self) -> Option<&'static str> {
        match self {
            PageKind::Normal => None,
            PageKind::Huge => Some("/sys/kernel/mm/hugepages/hugepages-2048kB"),
            PageKind::Gigantic => Some("/sys/kernel/mm/hugepages/hugepages-1048576kB"),
        }
    }

    /// Pages free for new mappings right now (free minus reserved), if the
    /// kernel says.
    pub fn free_pages(self) -> Option<u64> {
        let dir = self.sysfs_dir()?;
        let read = |f: &str| -> Option<u64> {
            std::fs::read_to_string(format!("{dir}/{f}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some(read("free_hugepages")?.saturating_sub(read("resv_hugepages").unwrap_or(0)))
    }

    /// What an administrator runs to make `pages` more pages of this kind
    /// available, and to mount hugetlbfs at `dir`.
    pub fn reserve_hint(self, pages: u64, dir: &Path) -> String {
        match self.sysfs_dir() {
            None => String::new(),
            Some(sys) => format!(
                "reserve them as root with `echo $(( $(cat {sys}/nr_hugepages) + {pages} )) > {sys}/nr_hugepages` \
                 (gigantic pages are best reserved at boot: hugepagesz=1G hugepages=N), and mount hugetlbfs with \
                 `mkdir -p {d} && mount -t hugetlbfs -o pagesize={ps} none {d}`",
                d = dir.display(),
                ps = if self == PageKind::Huge { "2M" } else { "1G" },
            ),
        }
    }
}

impl core::fmt::Display for PageKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for PageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(PageKind::Normal),
            "huge" => Ok(PageKind::Huge),
            "gigantic" => Ok(PageKind::Gigantic),
            _ => Err(format!(
                "unknown page kind {s:?}: expected normal, huge or gigantic"
            )),
        }
    }
}

/// Where workspaces of each page kind live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// tmpfs directory for [`PageKind::Normal`]; default `/dev/shm`.
    pub shm_dir: PathBuf,
    /// hugetlbfs mount (2 MiB pages) for [`PageKind::Huge`]; default `/dev/hugepages`.
    pub huge_dir: PathBuf,
    /// hugetlbfs mount (1 GiB pages) for [`PageKind::Gigantic`]; default `/dev/hugepages1G`.
    pub gigantic_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shm_dir: "/dev/shm".into(),
            huge_dir: "/dev/hugepages".into(),
            gigantic_dir: "/dev/hugepages1G".into(),
        }
    }
}

impl Config {
    /// The defaults, with each directory overridden by its environment
    /// variable when set and non-empty.
    pub fn from_env() -> Self {
        let mut cfg = Config::default();
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = var("TILEWIRE_SHM_DIR") {
            cfg.shm_dir = p;
        }
        if let Some(p) = var("TILEWIRE_HUGE_DIR") {
            cfg.huge_dir = p;
        }
        if let Some(p) = var("TILEWIRE_GIGANTIC_DIR") {
            cfg.gigantic_dir = p;
        }
        cfg
    }

    /// The directory for `page`.
    pub fn dir(&self, page: PageKind) -> &Path {
        match page {
            PageKind::Normal => &self.shm_dir,
            PageKind::Huge => &self.huge_dir,
            PageKind::Gigantic => &self.gigantic_dir,
        }
    }
}

/// Prefix of every workspace file, so `list` tells ours from other files.
pub(crate) const FILE_PREFIX: &str = "tilewire.";

/// The file backing workspace `name` of kind `page`.
pub(crate) fn path_for(cfg: &Config, page: PageKind, name: &str) -> PathBuf {
    cfg.dir(page).join(format!("{FILE_PREFIX}{name}"))
}

/// The page size of the hugetlbfs mounted at `dir`, or `None` if `dir` is not
/// a hugetlbfs mount.
pub(crate) fn hugetlbfs_page_size(dir: &Path) -> Option<usize> {
    use std::os::unix::ffi::OsStrExt;
    const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes only into the zeroed struct we own; `c` is a
    // valid NUL-terminated path.
    let st = unsafe {
        let mut st: libc::statfs = core::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    #[allow(clippy::unnecessary_cast)]
    if st.f_type as i64 == HUGETLBFS_MAGIC {
        Some(st.f_bsize as usize)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_sizes() {
        for k in PageKind::ALL {
            assert_eq!(k.as_str().parse::<PageKind>(), Ok(k));
            assert_eq!(PageKind::from_u32(k as u32), Some(k));
            assert!(k.size().is_power_of_two());
        }
        assert!("tiny".parse::<PageKind>().is_err());
        assert_eq!(PageKind::from_u32(0), None);
        assert_eq!(PageKind::Huge.size(), 2 * 1024 * 1024);
    }

    #[test]
    fn hint_names_the_sysfs_knob_and_mount() {
        let h = PageKind::Huge.reserve_hint(3, Path::new("/mnt/huge"));
        assert!(h.contains("hugepages-2048kB/nr_hugepages"), "{h}");
        assert!(h.contains("+ 3"), "{h}");
        assert!(
            h.contains("mount -t hugetlbfs -o pagesize=2M none /mnt/huge"),
            "{h}"
        );
        assert_eq!(hugetlbfs_page_size(Path::new("/definitely/not/here")), None);
    }
}
