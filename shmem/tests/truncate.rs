//! A workspace file truncated under a mapping: a read-only join reads
//! zeros from the lost pages instead of dying of SIGBUS, and
//! `check_intact` names the workspace; a SIGBUS elsewhere is not taken.

mod common;

use common::{uniq, Dir};
use tilewire_shmem::{Access, Workspace};

#[test]
fn a_read_only_join_survives_its_file_truncated_and_says_so() {
    let dir = Dir::new("trunc");
    let name = uniq("trunc");
    let ws = dir.create(&name, 1 << 20);
    let g = ws.alloc_named("obj", 64, 4096, 0).unwrap();
    let rw = ws.region(g, 4096).unwrap().atomic_u64s(0, 512).unwrap();
    rw[0].store(0x5eed, std::sync::atomic::Ordering::Relaxed);
    let ro = Workspace::join_with(&name, Access::ReadOnly, &dir.config).unwrap();
    let word = &ro.region(g, 4096).unwrap().atomic_u64s(0, 512).unwrap()[0];
    assert_eq!(word.load(std::sync::atomic::Ordering::Relaxed), 0x5eed);
    ro.check_intact().unwrap();

    // Truncated to its header: the object's page is gone.
    std::fs::OpenOptions::new()
        .write(true)
        .open(ws.path())
        .unwrap()
        .set_len(4096)
        .unwrap();
    let e = ro
        .check_intact()
        .expect_err("the file is shorter than the mapping");
    assert_eq!((e.file_size, e.mapped, e.faults), (Some(4096), 1 << 20, 0));
    // The race a size check cannot close: a load after the truncation.
    // Without the handler this load kills the test process.
    assert_eq!(word.load(std::sync::atomic::Ordering::Relaxed), 0);
    let e = ro.check_intact().expect_err("still truncated");
    assert_eq!(e.faults, 1, "the lost page was answered once");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("workspace {name:?}"))
            && msg.contains("4096 bytes of the 1048576 bytes mapped")
            && msg.contains("1 reads of lost pages"),
        "{msg}"
    );
    drop(ro);
    drop(ws);
}

#[test]
fn a_sigbus_outside_every_guarded_mapping_still_kills() {
    // In a child process: a read-only join installs the handler, then a
    // read-write mapping of a truncated file (not guarded) is touched.
    // The child dies: its workspace lives in the parent's directory,
    // which the parent removes.
    if let Ok(path) = std::env::var("TILEWIRE_SIGBUS_CHILD") {
        let shm_dir = std::path::PathBuf::from(std::env::var("TILEWIRE_SIGBUS_DIR").unwrap());
        let config = tilewire_shmem::Config {
            huge_dir: shm_dir.join("no-huge"),
            gigantic_dir: shm_dir.join("no-gigantic"),
            shm_dir,
        };
        let name = uniq("sigbus-child");
        let opts = tilewire_shmem::CreateOptions {
            config: config.clone(),
            table_cap: 64,
        };
        let ws = Workspace::create_with(&name, 1 << 20, tilewire_shmem::PageKind::Normal, &opts)
            .unwrap();
        let _ro = Workspace::join_with(&name, Access::ReadOnly, &config).unwrap();
        let g = ws.alloc_named("obj", 64, 4096, 0).unwrap();
        let word = &ws.region(g, 4096).unwrap().atomic_u64s(0, 1).unwrap()[0];
        std::fs::OpenOptions::new()
            .write(true)
            .open(ws.path())
            .unwrap()
            .set_len(4096)
            .unwrap();
        std::fs::write(&path, b"touching").unwrap();
        word.load(std::sync::atomic::Ordering::Relaxed);
        std::fs::write(&path, b"survived").unwrap();
        return;
    }
    let dir = Dir::new("sigbus");
    let mark = dir.config.shm_dir.join("mark");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_sigbus_outside_every_guarded_mapping_still_kills",
            "--exact",
            "--nocapture",
        ])
        .env("TILEWIRE_SIGBUS_CHILD", &mark)
        .env("TILEWIRE_SIGBUS_DIR", &dir.config.shm_dir)
        .output()
        .unwrap();
    let said = std::fs::read_to_string(&mark).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        said, "touching",
        "the child reached the load and no further"
    );
    assert_eq!(out.status.signal(), Some(libc_sigbus()), "{out:?}");
}

fn libc_sigbus() -> i32 {
    7 // SIGBUS on Linux (x86_64 and aarch64)
}
