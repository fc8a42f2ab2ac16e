//! Which engine a UDP backend runs on, and why: the io_uring probe behind
//! `Engine::Auto`, checked where io_uring works and where a seccomp filter
//! refuses it (the way container runtimes do), in a forked child.

use tilewire_aio::udp::{uring_support, uring_support_raw, uring_sysctl, UringSupport};
use tilewire_aio::udp::{
    BindError, Engine, EngineNote, Fallback, UdpAio, UdpConfig, UringRecv, QUEUE_DEPTH_MAX,
};
use tilewire_aio::{Aio, MemAio, PktInfo};

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
fn auto_takes_io_uring_where_it_is_allowed_and_says_so() {
    let u = UdpAio::bind(&UdpConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let note = u.engine_note();
    assert_eq!(note.engine(), u.engine());
    if uring_support() == UringSupport::Available {
        assert_eq!(note, EngineNote::AutoUring);
        assert_eq!(u.engine(), Engine::Uring, "{note}");
        assert!(
            note.to_string()
                .starts_with("uring: Engine::Auto chose io_uring"),
            "{note}"
        );
    } else {
        assert_eq!(u.engine(), Engine::Mmsg, "{note}");
        assert!(matches!(note, EngineNote::AutoMmsg(_)), "{note}");
        assert!(note.to_string().starts_with("mmsg: Engine::Auto"), "{note}");
    }
}

#[test]
fn each_engine_can_be_forced() {
    let mut config = UdpConfig::new("127.0.0.1:0".parse().unwrap());
    config.engine = Engine::Mmsg;
    let m = UdpAio::bind(&config).unwrap();
    assert_eq!(m.engine(), Engine::Mmsg);
    assert_eq!(m.engine_note(), EngineNote::MmsgConfigured);
    assert_eq!(
        m.engine_note().to_string(),
        "mmsg: sendmmsg/recvmmsg, as configured"
    );
    assert!(m.tx_latency().is_none(), "mmsg keeps no send latency");
    if uring_support() != UringSupport::Available {
        eprintln!(
            "io_uring not available here: {}",
            uring_support().describe()
        );
        return;
    }
    config.engine = Engine::Uring;
    let u = UdpAio::bind(&config).unwrap();
    assert_eq!(u.engine(), Engine::Uring);
    assert_eq!(
        u.engine_note(),
        EngineNote::UringConfigured { multishot: true }
    );
    assert!(u.engine_note().to_string().contains("multishot"));
    config.uring_recv = UringRecv::Fixed;
    let f = UdpAio::bind(&config).unwrap();
    assert_eq!(
        f.engine_note(),
        EngineNote::UringConfigured { multishot: false }
    );
}

#[test]
fn bad_numbers_are_refused_before_any_socket() {
    let mut config = UdpConfig::new("127.0.0.1:0".parse().unwrap());
    config.batch = 0;
    assert!(matches!(
        UdpAio::bind(&config),
        Err(BindError::Batch { batch: 0 })
    ));
    config.batch = 1025;
    assert!(matches!(
        UdpAio::bind(&config),
        Err(BindError::Batch { .. })
    ));
    config.batch = 64;
    config.rx_buf_len = 0;
    assert!(matches!(
        UdpAio::bind(&config),
        Err(BindError::RxBufLen { len: 0 })
    ));
    config.rx_buf_len = 2048;
    for depth in [0, QUEUE_DEPTH_MAX + 1] {
        config.queue_depth = depth;
        let err = UdpAio::bind(&config).unwrap_err();
        assert!(matches!(err, BindError::QueueDepth { .. }), "{err}");
        assert!(err.to_string().contains("queue_depth"), "{err}");
    }
}

/// Set in the environment of the child run of
/// [`a_real_eperm_from_seccomp_makes_auto_fall_back_to_mmsg`].
const SECCOMP_CHILD: &str = "TILEWIRE_TEST_SECCOMP_CHILD";

/// A seccomp filter for this thread (and threads it starts) that fails
/// `io_uring_setup` with EPERM, as container runtimes' default profiles do.
/// `Err(10)`: PR_SET_NO_NEW_PRIVS failed; `Err(11)`: installing it failed.
/// Builds the filter on the stack, so a forked child may call it.
#[cfg(target_arch = "x86_64")]
fn refuse_io_uring_setup() -> Result<(), i32> {
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
    // SAFETY: prctl with these arguments reads only `prog` and the filter
    // it points to, both alive on this stack.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(10);
        }
        let p: *const libc::sock_fprog = &prog;
        if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, p) != 0 {
            return Err(11);
        }
    }
    Ok(())
}

/// The whole fallback under a real EPERM: this test runs itself again as a
/// child process with [`SECCOMP_CHILD`] set; the child installs the filter
/// on its test thread, binds with `Engine::Auto`, checks it got mmsg with a
/// note naming seccomp, that `Engine::Uring` is refused with the step and
/// the errno, and moves packets both ways through the fallback.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_real_eperm_from_seccomp_makes_auto_fall_back_to_mmsg() {
    const NAME: &str = "a_real_eperm_from_seccomp_makes_auto_fall_back_to_mmsg";
    if std::env::var_os(SECCOMP_CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(SECCOMP_CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child run failed:\n{text}");
        assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
        assert!(text.contains("child: fell back"), "{text}");
        return;
    }
    refuse_io_uring_setup().expect("installing the seccomp filter");
    assert_eq!(
        uring_support(),
        UringSupport::Denied {
            sysctl: uring_sysctl()
        }
    );
    let mut config = UdpConfig::new("127.0.0.1:0".parse().unwrap());
    config.engine = Engine::Uring;
    match UdpAio::bind(&config) {
        Err(BindError::Os {
            step: "io_uring_setup",
            source,
        }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{source}");
        }
        other => panic!("Engine::Uring under the filter: {other:?}"),
    }
    config.engine = Engine::Auto;
    let mut aio = UdpAio::bind(&config).unwrap();
    assert_eq!(aio.engine(), Engine::Mmsg);
    let note = aio.engine_note();
    if uring_sysctl().unwrap_or(0) == 0 {
        assert_eq!(note, EngineNote::AutoMmsg(Fallback::DeniedBySeccomp));
        assert!(note.to_string().contains("seccomp"), "{note}");
    }
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let pkts: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let batch: Vec<PktInfo<'_>> = pkts
        .iter()
        .map(|p| PktInfo::with_addr(p, peer.local_addr().unwrap()))
        .collect();
    aio.send(&batch, true).unwrap();
    let mut buf = [0u8; 2048];
    for p in &pkts {
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&p[..], aio.local_addr()));
        peer.send_to(&buf[..n], aio.local_addr()).unwrap();
    }
    let mut sink = MemAio::with_capacity(16);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut back = Vec::new();
    while back.len() < pkts.len() && std::time::Instant::now() < deadline {
        aio.poll(&mut sink);
        back.extend(sink.drain().map(|p| p.buf.to_vec()));
    }
    assert_eq!(back, pkts);
    println!(
        "child: fell back to mmsg and moved {} packets each way",
        pkts.len()
    );
}

/// In a forked child: installs a seccomp filter that fails
/// `io_uring_setup` with EPERM, probes, and exits with a code for what the
/// probe said. The child only makes system calls (no allocation, no locks):
/// the parent is a multi-threaded test process.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_seccomp_filter_refusing_io_uring_is_reported_as_denied() {
    // SAFETY: fork has no preconditions; the child below only makes system
    // calls and exits with _exit, so no lock another thread held at the
    // fork is ever taken in it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // The filter is built on the stack: no allocation in the child.
        let code = match refuse_io_uring_setup() {
            Err(step) => step,
            Ok(()) => match uring_support_raw() {
                UringSupport::Available => 0,
                UringSupport::NotInKernel => 1,
                UringSupport::Denied { .. } => 2,
                _ => 3,
            },
        };
        // SAFETY: _exit ends the child without running the parent's
        // destructors or atexit handlers; it never returns.
        unsafe { libc::_exit(code) };
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
