//! Without privileges, loading the program and making a socket fail with
//! errors that say what is missing. The test (as root) runs itself again as
//! user `nobody` with every capability dropped (`setpriv`), and the child
//! checks the errors. As a user the test prints the line CI counts.

use std::io::Write;
use std::process::Command;

use tilewire_shmem::Region;
use tilewire_xdp::bpf::{BpfError, FilterSpec, XdpProgram};
use tilewire_xdp::{Umem, Xsk, XskConfig, XskError};

/// Set in the child's environment.
const CHILD: &str = "TILEWIRE_TEST_XDP_UNPRIVILEGED";

#[test]
fn without_privileges_the_errors_say_what_is_missing() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unprivileged_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the unprivileged child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("unprivileged: load refused"), "{stdout}");
    assert!(stdout.contains("unprivileged: bind refused"), "{stdout}");
}

/// Not a test on its own: the child of the test above. Returns at once
/// unless [`CHILD`] is set.
#[test]
fn unprivileged_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_ne!(unsafe { libc::geteuid() }, 0, "the child runs as nobody");
    let e = XdpProgram::load(&FilterSpec::new([9000]).unwrap(), 1).unwrap_err();
    assert!(matches!(e, BpfError::NotPermitted { .. }), "{e:?}");
    assert!(e.to_string().contains("root"), "{e}");
    println!("\nunprivileged: load refused: {e}");

    #[repr(C, align(4096))]
    struct Pages([u8; 64 * 4096]);
    let mut mem = Box::new(Pages([0; 64 * 4096]));
    let umem = Umem::new(Region::from_mut(&mut mem.0)).unwrap();
    let cfg = XskConfig {
        ifname: "lo".into(),
        rx_size: 32,
        fill_size: 32,
        tx_size: 32,
        ..XskConfig::default()
    };
    let e = Xsk::bind(umem, &cfg).unwrap_err();
    assert!(matches!(e, XskError::NotPermitted { .. }), "{e:?}");
    assert!(e.to_string().contains("run as root"), "{e}");
    println!("\nunprivileged: bind refused: {e}");
}
