//! Whether this host lets the process use io_uring: the check behind
//! [`Engine::Auto`](super::Engine::Auto).
//!
//! io_uring can be missing (an old kernel: `ENOSYS`) or refused (`EPERM`):
//! by the `kernel.io_uring_disabled` sysctl (1: only the group in
//! `kernel.io_uring_group`, 2: nobody), or by a seccomp filter, as container
//! runtimes install. The only reliable test is to ask: [`uring_support`]
//! makes a one-entry ring and closes it.

use super::sys;

const SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

/// What [`uring_support`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UringSupport {
    /// io_uring works for this process.
    Available,
    /// The kernel has no io_uring (`ENOSYS`).
    NotInKernel,
    /// `io_uring_setup` was refused with `EPERM`, by the sysctl (its value
    /// when it is not 0) or, with the sysctl at 0 or absent, a seccomp
    /// filter.
    Denied {
        /// `kernel.io_uring_disabled`, if readable.
        sysctl: Option<u8>,
    },
    /// Another error (its errno): out of memory or locked-memory limits.
    Failed(i32),
}

impl UringSupport {
    /// One line for a log: what was found and what it means.
    pub fn describe(self) -> &'static str {
        match self {
            UringSupport::Available => "io_uring is available",
            UringSupport::NotInKernel => "io_uring is not in this kernel (ENOSYS)",
            UringSupport::Denied { sysctl: Some(1) } => {
                "io_uring is denied (EPERM): kernel.io_uring_disabled=1 and this \
                 process is not in kernel.io_uring_group"
            }
            UringSupport::Denied { sysctl: Some(2) } => {
                "io_uring is denied (EPERM): kernel.io_uring_disabled=2"
            }
            UringSupport::Denied { .. } => {
                "io_uring is denied (EPERM) with kernel.io_uring_disabled=0: \
                 a seccomp filter (a container runtime's?)"
            }
            UringSupport::Failed(_) => "io_uring_setup failed (out of memory or locked memory)",
        }
    }
}

/// Reads `kernel.io_uring_disabled`; `None` if the file is missing or odd.
pub fn uring_sysctl() -> Option<u8> {
    std::fs::read_to_string(SYSCTL).ok()?.trim().parse().ok()
}

/// Asks the kernel whether this process may use io_uring (see the module
/// docs).
pub fn uring_support() -> UringSupport {
    match sys::uring_setup_probe() {
        Ok(()) => UringSupport::Available,
        Err(libc::ENOSYS) => UringSupport::NotInKernel,
        Err(libc::EPERM) => UringSupport::Denied {
            sysctl: uring_sysctl(),
        },
        Err(e) => UringSupport::Failed(e),
    }
}

/// [`uring_support`] without touching the heap or the file system (the
/// sysctl is not read): for a forked child in a test.
#[doc(hidden)]
pub fn uring_support_raw() -> UringSupport {
    match sys::uring_setup_probe() {
        Ok(()) => UringSupport::Available,
        Err(libc::ENOSYS) => UringSupport::NotInKernel,
        Err(libc::EPERM) => UringSupport::Denied { sysctl: None },
        Err(e) => UringSupport::Failed(e),
    }
}
