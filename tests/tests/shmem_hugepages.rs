//! Huge-page workspaces for real (needs root): mount a private hugetlbfs,
//! reserve a few 2 MiB pages, use them, and give everything back.

use std::path::PathBuf;
use std::process::Command;

use tilewire_shmem::{Access, Config, CreateError, CreateOptions, PageKind, Workspace};
use tilewire_tests::{privileged, uniq};

const NR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

/// Restores the page reservation and unmounts on drop, also on failure.
struct HugeSetup {
    dir: PathBuf,
    nr_before: u64,
}

impl HugeSetup {
    fn new(extra_pages: u64) -> HugeSetup {
        let dir = std::env::temp_dir().join(format!("tilewire-huge-{}", uniq("h")));
        std::fs::create_dir_all(&dir).unwrap();
        let nr_before: u64 = std::fs::read_to_string(NR).unwrap().trim().parse().unwrap();
        let s = HugeSetup { dir, nr_before };
        let ok = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "none"])
            .arg(&s.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount hugetlbfs failed");
        std::fs::write(NR, (nr_before + extra_pages).to_string()).unwrap();
        s
    }
}

impl Drop for HugeSetup {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::write(NR, self.nr_before.to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn huge_page_workspace_for_real_and_the_not_enough_pages_error() {
    if !privileged("huge_page_workspace_for_real", "CAP_SYS_ADMIN") {
        return;
    }
    let setup = HugeSetup::new(3);
    let free = PageKind::Huge.free_pages().unwrap();
    assert!(
        free >= 2,
        "the kernel reserved only {free} free 2 MiB pages"
    );
    let config = Config {
        shm_dir: "/dev/shm".into(),
        huge_dir: setup.dir.clone(),
        gigantic_dir: setup.dir.join("none"),
    };
    let opts = CreateOptions {
        config: config.clone(),
        table_cap: 64,
    };
    let name = uniq("hp");
    let ws = Workspace::create_with(&name, 3 << 20, PageKind::Huge, &opts).unwrap();
    assert_eq!(ws.size(), 4 << 20, "rounded up to whole 2 MiB pages");
    assert_eq!(ws.page_kind(), PageKind::Huge);
    let g = ws.alloc_named("umem", 2 << 20, 1 << 20, 0).unwrap();
    assert_eq!(g % (2 << 20), 0);
    assert_eq!(ws.laddr(g, 1).unwrap().as_ptr() as usize % (2 << 20), 0);
    let ro = Workspace::join_with(&name, Access::ReadOnly, &config).unwrap();
    assert_eq!(ro.lookup("umem").map(|a| a.gaddr), Some(g));
    assert_eq!(ro.page_kind(), PageKind::Huge);

    // Far more pages than are free: the error says how to reserve them.
    match Workspace::create_with(&uniq("big"), 512 << 20, PageKind::Huge, &opts) {
        Err(e @ CreateError::NoHugePages { need: 256, .. }) => {
            let m = e.to_string();
            assert!(m.contains("hugepages-2048kB/nr_hugepages"), "{m}");
        }
        other => panic!("expected NoHugePages, got {other:?}"),
    }
    drop(ro);
    drop(ws);
    Workspace::unlink_with(&name, &config).unwrap();
    let left: Vec<_> = std::fs::read_dir(&setup.dir).unwrap().collect();
    assert!(left.is_empty(), "files left on hugetlbfs: {left:?}");
}
