//! Surviving a workspace file truncated under a read-only mapping.
//!
//! # The problem
//!
//! A mapping outlives changes to its file: if something truncates a
//! workspace's file (a stray `truncate`, a `tilewire shmem rm` racing a
//! re-create, a full disk on a hugetlbfs quota), the next touch of a page
//! past the new end raises SIGBUS, whose default action kills the process.
//! For a tile that is the right end (it cannot go on without its links),
//! but a monitor exists to report what went wrong, not to die of it.
//!
//! # What is done, and why this way
//!
//! Two layers, because neither is enough alone:
//!
//! - **A check of the file's size.** A workspace joined with
//!   [`Workspace::join`](crate::Workspace::join) keeps its file open, and
//!   [`Workspace::check_intact`](crate::Workspace::check_intact) compares
//!   the file's size (`fstat`) with the mapping. A monitor calls it before
//!   and after each reading; a truncation between two readings is then an
//!   error that names the workspace, and nothing past the end is touched.
//!   But the file can shrink *during* a reading, after the check.
//! - **A SIGBUS handler for that window.** Every read-only mapping is
//!   registered (a fixed table of address ranges, read with atomics, as a
//!   signal handler may). On SIGBUS at an address inside a registered
//!   range, the handler maps a private zero page over the lost page
//!   (`mmap` with `MAP_FIXED`, a plain system call, safe in a handler),
//!   counts the fault for that mapping and returns: the faulting load runs
//!   again and reads zeros. Zeros are what an unformatted object holds, so
//!   every checked `join` of the objects there fails cleanly and the
//!   reading finishes with problems, not figures; the counted fault makes
//!   the next `check_intact` an error. A SIGBUS anywhere else goes to the
//!   handler that was installed before (Rust's own, for stack guard pages)
//!   or to the default action, as if this one did not exist.
//!
//! Read-write mappings are not registered: a tile whose workspace shrank
//! must not go on writing into zero pages that nobody else sees, so it
//! dies of the SIGBUS as it always did (and the runner or a restart policy
//! deals with that).
//!
//! Alternatives not taken: `MAP_POPULATE` or `mlock` do not help (a
//! truncation drops the pages anyway); reading through `pread` instead of
//! the mapping would give up the lock-free atomics the monitor reads;
//! `sigsetjmp`/`siglongjmp` out of the handler cannot be done soundly
//! across Rust frames.

#![allow(unsafe_code)] // installs a signal handler and maps pages; each use says why it is sound

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Most read-only mappings registered at once in one process; joins past
/// that are not guarded (their checks of the file's size still work).
const SLOTS: usize = 64;

struct Slot {
    /// First byte of the mapping (0: the slot is free).
    base: AtomicUsize,
    len: AtomicUsize,
    /// The mapping's page size: what a replacement page covers.
    page: AtomicUsize,
    /// Faults answered with a zero page.
    faults: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // only to build the array below
const FREE: Slot = Slot {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    page: AtomicUsize::new(0),
    faults: AtomicU64::new(0),
};
static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

/// The SIGBUS action before ours, set once when ours is installed.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A read-only mapping registered with the handler; dropping it
/// unregisters the mapping (drop it before unmapping).
#[derive(Debug)]
pub(crate) struct Guard {
    slot: usize,
}

impl Guard {
    /// Registers `[base, base + len)`, mapped on pages of `page` bytes,
    /// installing the handler on first use. `None` if every slot is taken
    /// or the handler could not be installed.
    pub(crate) fn register(base: NonNull<u8>, len: usize, page: usize) -> Option<Guard> {
        install()?;
        for (i, s) in TABLE.iter().enumerate() {
            // SYNC: the slot is claimed with its base (AcqRel), then its
            // length and page are stored and the base re-published with
            // Release; the handler reads base with Acquire first and takes
            // the slot only if len is non-zero.
            if s.base
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                s.len.store(len, Ordering::Relaxed);
                s.page.store(page, Ordering::Relaxed);
                s.faults.store(0, Ordering::Relaxed);
                s.base.store(base.as_ptr() as usize, Ordering::Release);
                return Some(Guard { slot: i });
            }
        }
        None
    }

    /// Faults in this mapping answered with a zero page so far.
    pub(crate) fn faults(&self) -> u64 {
        TABLE[self.slot].faults.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let s = &TABLE[self.slot];
        s.len.store(0, Ordering::Relaxed);
        // SYNC: Release; frees the slot after its length was cleared,
        // pairs with register's compare_exchange.
        s.base.store(0, Ordering::Release);
    }
}

/// Installs the handler once per process; `None` if sigaction failed.
fn install() -> Option<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid "no handler" value; the
        // handler has the three-argument signature SA_SIGINFO asks for
        // and only does what a signal handler may (atomics, mmap,
        // sigaction, a call to the previous handler).
        unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &act, &mut old) != 0 {
                return false;
            }
            let _ = PREVIOUS.set(old);
        }
        true
    });
    ok.then_some(())
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in &TABLE {
        let base = s.base.load(Ordering::Acquire);
        let len = s.len.load(Ordering::Relaxed);
        if base == 0 || base == usize::MAX || len == 0 || addr < base || addr - base >= len {
            continue;
        }
        let page = s.page.load(Ordering::Relaxed).max(4096);
        let at = base + (addr - base) / page * page;
        // SAFETY: `at..at + page` lies inside a registered read-only
        // mapping of ours (page-aligned from its base); replacing that
        // page with a private zero page changes what later loads read,
        // which is the point, and nothing else.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            s.faults.fetch_add(1, Ordering::AcqRel);
            return;
        }
    }
    // Not ours: what would have happened without this handler.
    let Some(prev) = PREVIOUS.get() else {
        return;
    };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // SAFETY: restoring the default action; returning re-runs the
        // faulting instruction, which then takes it (a SIGBUS raised by
        // kill(2) is simply not caught again).
        unsafe {
            let mut dfl: libc::sigaction = core::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, core::ptr::null_mut());
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler asked for SA_SIGINFO: this is its
        // signature, and these are the arguments it would have had.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a one-argument handler, as installed without SA_SIGINFO.
        let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
}
