//! Which engine a UDP backend runs on, and why: the io_uring probe behind
//! `Engine::Auto`, checked where io_uring works and where a seccomp filter
//! refuses it (the way container runtimes do), in a forked child.

use tilewire_aio::udp::{uring_support, uring_support_raw, uring_sysctl, UringSupport};
use tilewire_aio::udp::{Engine, UdpAio, UdpConfig};

#[test]
fn the_probe_agrees_with_the_sysctl() {
    let found = uring_support();
    match uring_sysctl() {
        Some(0) => assert_eq!(
            found,
            UringSupport::Available,
            "kernel.io_uring_disabled=0, yet io_uring is refused here: {}",
            found.describe()
        ),
        Some(2) => assert_eq!(found, UringSupport::Denied { sysctl: Some(2) }),
        other => eprintln!("kernel.io_uring_disabled={other:?}: {}", found.describe()),
    }
}

#[test]
fn auto_says_why_it_chose_mmsg() {
    let u = UdpAio::bind(&UdpConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    assert_eq!(u.engine(), Engine::Mmsg);
    let note = u.engine_note();
    assert!(note.starts_with("mmsg: Engine::Auto"), "{note}");
    if uring_support() == UringSupport::Available {
        assert!(note.contains("not built yet"), "{note}");
    }
}

/// In a forked child: installs a seccomp filter that fails
/// `io_uring_setup` with EPERM, probes, and exits with a code for what the
/// probe said. The child only makes system calls (no allocation, no locks):
/// the parent is a multi-threaded test process.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_seccomp_filter_refusing_io_uring_is_reported_as_denied() {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const NR_IO_URING_SETUP: u32 = 425;
    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }
    let filter = [
        // The arch (offset 4 of seccomp_data), then the syscall number.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            0,
            3,
        ),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            NR_IO_URING_SETUP,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: fork has no preconditions; the child below only makes system
    // calls and exits with _exit, so no lock another thread held at the
    // fork is ever taken in it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl with these arguments reads only `prog` and the
        // filter it points to, both alive on this stack; _exit never
        // returns.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(10);
            }
            let p: *const libc::sock_fprog = &prog;
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, p) != 0 {
                libc::_exit(11);
            }
            let code = match uring_support_raw() {
                UringSupport::Available => 0,
                UringSupport::NotInKernel => 1,
                UringSupport::Denied { .. } => 2,
                _ => 3,
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is writable.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(code, 10, "PR_SET_NO_NEW_PRIVS failed");
    assert_ne!(code, 11, "installing the seccomp filter failed");
    assert_eq!(
        code, 2,
        "the probe under a seccomp filter (0 available, 1 ENOSYS, 3 other)"
    );
}
