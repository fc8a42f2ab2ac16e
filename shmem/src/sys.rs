//! The system calls behind a workspace: mapping a file, and linking a
//! finished file to its name without replacing one that exists.
#![allow(unsafe_code)] // talks to the kernel; each use says why it is sound

use core::ptr::NonNull;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::region::Access;

/// `p` as a C string.
fn cpath(p: &Path) -> CString {
    // Paths built here come from checked names and configured directories;
    // an interior NUL could only come from a directory setting.
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Maps `len` bytes of `fd`.
pub(crate) fn map(fd: &File, len: usize, access: Access) -> io::Result<NonNull<u8>> {
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

/// Unmaps a mapping [`map`] made.
pub(crate) fn unmap(base: NonNull<u8>, len: usize) {
    // SAFETY: `base..base+len` is a mapping `map` made and nobody else
    // unmaps; callers drop every Region borrowed from it first (lifetimes).
    unsafe {
        libc::munmap(base.as_ptr().cast(), len);
    }
}

/// Wall-clock time, nanoseconds since the Unix epoch (0 before it).
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Links `tmp` to `dst`, failing if `dst` exists.
pub(crate) fn link_noreplace(tmp: &Path, dst: &Path) -> io::Result<()> {
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
