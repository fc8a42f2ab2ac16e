//! Workspace create / join / leave / unlink / list, and every bad input.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use common::{uniq, Dir};
use tilewire_shmem::workspace::{HEADER_SZ, WKSP_MAGIC};
use tilewire_shmem::{
    object, Access, AddrError, AllocError, CreateError, CreateOptions, FreeError, JoinError,
    NameError, OpenError, PageKind, UnlinkError, Workspace,
};

#[test]
fn create_join_find_by_name_unlink() {
    let dir = Dir::new("life");
    let name = uniq("life");
    let ws = dir.create(&name, 1 << 20);
    assert_eq!(ws.size(), 1 << 20);
    assert_eq!(ws.name(), name);
    let meta = std::fs::metadata(ws.path()).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "workspace files are 0600"
    );

    let g = ws.alloc_named("net.rx.mcache", 128, 1000, 7).unwrap();
    assert_eq!(g % 128, 0);
    ws.region(g, 1000).unwrap().as_ptr().cast::<u32>();
    // SAFETY: the allocation is 1000 bytes, 128-aligned, ours alone.
    unsafe {
        ws.laddr(g, 4)
            .unwrap()
            .as_ptr()
            .cast::<u32>()
            .write(0xdead_beef)
    };

    let other = Workspace::join_with(&name, Access::ReadWrite, &dir.config).unwrap();
    let a = other
        .lookup("net.rx.mcache")
        .expect("named allocation found from a second join");
    assert_eq!((a.gaddr, a.size, a.tag), (g, 1000, 7));
    assert_eq!(a.owner_pid, std::process::id());
    // SAFETY: same allocation, seen through the second mapping.
    let v = unsafe {
        other
            .laddr(a.gaddr, 4)
            .unwrap()
            .as_ptr()
            .cast::<u32>()
            .read()
    };
    assert_eq!(
        v, 0xdead_beef,
        "the second mapping sees the first one's write"
    );
    assert_ne!(
        ws.laddr_unchecked(g),
        other.laddr_unchecked(g),
        "each join maps at its own address"
    );

    drop(other);
    Workspace::unlink_with(&name, &dir.config).unwrap();
    assert!(matches!(
        Workspace::join_with(&name, Access::ReadOnly, &dir.config),
        Err(OpenError::NotFound { .. })
    ));
    // The creator's mapping survives the unlink.
    assert_eq!(ws.lookup("net.rx.mcache").map(|a| a.gaddr), Some(g));
    assert!(matches!(
        Workspace::unlink_with(&name, &dir.config),
        Err(UnlinkError::NotFound(_))
    ));
}

#[test]
fn read_only_join_maps_prot_read_and_refuses_writes() {
    let dir = Dir::new("ro");
    let name = uniq("ro");
    let ws = dir.create(&name, 1 << 20);
    let g = ws.alloc_named("metrics", 64, 64, 1).unwrap();
    let ro = Workspace::join_with(&name, Access::ReadOnly, &dir.config).unwrap();
    assert_eq!(ro.access(), Access::ReadOnly);
    assert_eq!(
        ro.lookup("metrics").map(|a| a.gaddr),
        Some(g),
        "lookup works without the lock"
    );
    assert_eq!(ro.alloc(64, 64, 0), Err(AllocError::ReadOnly));
    assert_eq!(ro.free(g), Err(FreeError::ReadOnly));
    assert!(!ro.region(g, 64).unwrap().is_writable());

    // The kernel agrees: the mapping of this file is r--s in /proc/self/maps.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let base = ro.laddr_unchecked(0) as usize;
    let line = maps
        .lines()
        .find(|l| l.starts_with(&format!("{base:x}-")))
        .expect("read-only mapping listed");
    assert!(line.contains(" r--s "), "{line}");
}

#[test]
fn names_are_checked_everywhere() {
    let dir = Dir::new("names");
    let o = dir.opts();
    for (bad, want) in [
        ("", NameError::Empty),
        ("a/b", NameError::BadChar { ch: '/', pos: 1 }),
        ("..", NameError::BadStart('.')),
    ] {
        match Workspace::create_with(bad, 1 << 20, PageKind::Normal, &o) {
            Err(CreateError::Name(e)) => assert_eq!(e, want),
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(matches!(
            Workspace::join_with(bad, Access::ReadOnly, &dir.config),
            Err(OpenError::Name(_))
        ));
        assert!(matches!(
            Workspace::unlink_with(bad, &dir.config),
            Err(UnlinkError::Name(_))
        ));
    }
    let long = "x".repeat(41);
    assert!(matches!(
        Workspace::create_with(&long, 1 << 20, PageKind::Normal, &o),
        Err(CreateError::Name(NameError::TooLong { len: 41, max: 40 }))
    ));
    let ws = dir.create(&uniq("n"), 1 << 20);
    assert!(matches!(
        ws.alloc_named("a/b", 64, 64, 0),
        Err(AllocError::Name(NameError::BadChar { .. }))
    ));
}

#[test]
fn sizes_that_do_not_work_are_refused() {
    let dir = Dir::new("size");
    let o = dir.opts();
    for size in [
        0usize,
        4096,
        usize::MAX,
        usize::MAX - 4094,
        isize::MAX as usize,
    ] {
        let r = Workspace::create_with(&uniq("s"), size, PageKind::Normal, &o);
        assert!(
            matches!(r, Err(CreateError::InvalidSize { .. })),
            "{size}: {r:?}"
        );
    }
    let bad_cap = CreateOptions {
        table_cap: 0,
        ..dir.opts()
    };
    assert!(matches!(
        Workspace::create_with(&uniq("s"), 1 << 20, PageKind::Normal, &bad_cap),
        Err(CreateError::InvalidTableCap(0))
    ));
    // Rounded up to a whole page.
    let ws = dir.create(&uniq("s"), (1 << 20) + 1);
    assert_eq!(ws.size(), (1 << 20) + 4096);
}

#[test]
fn second_create_of_a_name_fails_with_exists() {
    let dir = Dir::new("dup");
    let name = uniq("dup");
    let _ws = dir.create(&name, 1 << 20);
    let r = Workspace::create_with(&name, 1 << 20, PageKind::Normal, &dir.opts());
    assert!(matches!(r, Err(CreateError::Exists { .. })), "{r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("tilewire shmem rm"), "{msg}");
}

#[test]
fn racing_creators_get_one_winner() {
    let dir = Dir::new("race");
    let name = uniq("race");
    let results: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    Workspace::create_with(&name, 1 << 20, PageKind::Normal, &dir.opts()).is_ok()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|&&ok| ok).count(), 1, "{results:?}");
    // No temporary files are left behind.
    let left: Vec<_> = std::fs::read_dir(&dir.config.shm_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![format!("tilewire.{name}")]);
}

fn plant(dir: &Dir, name: &str, bytes: &[u8]) {
    let p = dir.config.shm_dir.join(format!("tilewire.{name}"));
    std::fs::File::create(p).unwrap().write_all(bytes).unwrap();
}

fn join(dir: &Dir, name: &str) -> Result<Workspace, OpenError> {
    Workspace::join_with(name, Access::ReadOnly, &dir.config)
}

#[test]
fn truncated_and_foreign_files_are_refused() {
    let dir = Dir::new("bad");
    plant(&dir, "empty", b"");
    plant(&dir, "short", &[0x5a; 100]);
    plant(&dir, "foreign", &[0x5a; 3 * 4096]);
    plant(&dir, "zeros", &[0; 3 * 4096]);
    assert!(matches!(
        join(&dir, "empty"),
        Err(OpenError::Truncated { size: 0, .. })
    ));
    assert!(matches!(
        join(&dir, "short"),
        Err(OpenError::Truncated { size: 100, .. })
    ));
    match join(&dir, "foreign") {
        Err(OpenError::Corrupt {
            source: JoinError::BadMagic { found, .. },
            ..
        }) => assert_eq!(found, 0x5a5a_5a5a_5a5a_5a5a),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        join(&dir, "zeros"),
        Err(OpenError::Corrupt {
            source: JoinError::NotInitialized,
            ..
        })
    ));
}

/// Copies a valid workspace file, lets `edit` damage it, plants it under a
/// new name and joins that.
fn damaged(dir: &Dir, edit: impl FnOnce(&mut Vec<u8>)) -> Result<Workspace, OpenError> {
    let name = uniq("src");
    let ws = dir.create(&name, 1 << 20);
    let mut bytes = std::fs::read(ws.path()).unwrap();
    edit(&mut bytes);
    let copy = uniq("dmg");
    // The stored name must match the file name for a join to pass, so
    // rewrite it (40 bytes at offset 64) unless the edit damaged it.
    if bytes.len() >= 104 && bytes[64..64 + name.len()] == *name.as_bytes() {
        bytes[64..104].fill(0);
        bytes[64..64 + copy.len()].copy_from_slice(copy.as_bytes());
    }
    plant(dir, &copy, &bytes);
    join(dir, &copy)
}

#[test]
fn header_damage_is_named() {
    let dir = Dir::new("dmg");
    assert!(damaged(&dir, |_| {}).is_ok(), "an undamaged copy joins");
    let v2 = object::magic(b"tw.wksp", 2).to_le_bytes();
    match damaged(&dir, |b| b[0..8].copy_from_slice(&v2)) {
        Err(OpenError::Corrupt {
            source:
                JoinError::BadVersion {
                    found: 2,
                    expected: 1,
                    ..
                },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        damaged(&dir, |b| b.truncate(8192)),
        Err(OpenError::SizeMismatch { header, file: 8192, .. }) if header == 1 << 20
    ));
    let field = |off: usize, v: u64| {
        move |b: &mut Vec<u8>| b[off..off + 8].copy_from_slice(&v.to_le_bytes())
    };
    for (what, edit) in [
        ("table cap", field(32, 0)),
        ("table cap huge", field(32, u64::MAX)),
        ("data off", field(40, 12345)),
        ("table off", field(24, 0)),
        ("page size", field(16, 1 << 21)),
    ] {
        let r = damaged(&dir, edit);
        assert!(
            matches!(
                r,
                Err(OpenError::Corrupt {
                    source: JoinError::BadParams { .. },
                    ..
                })
            ),
            "{what}: {r:?}"
        );
    }
    let r = damaged(&dir, |b| b[60..64].copy_from_slice(&9u32.to_le_bytes()));
    assert!(
        matches!(r, Err(OpenError::Corrupt { source: JoinError::BadParams { what, .. }, .. }) if what.contains("page kind"))
    );
    let r = damaged(&dir, |b| b[64] = b'/');
    assert!(
        matches!(r, Err(OpenError::Corrupt { source: JoinError::BadParams { what, .. }, .. }) if what.contains("name"))
    );
    assert_eq!(u64::from_le_bytes(v2) >> 8, WKSP_MAGIC >> 8);
}

#[test]
fn gaddr_and_laddr_are_checked() {
    let dir = Dir::new("addr");
    let ws = dir.create(&uniq("addr"), 1 << 20);
    let size = ws.size();
    assert!(ws.region(0, size).is_ok());
    assert_eq!(
        ws.region(size as u64 - 8, 9).unwrap_err(),
        AddrError::OutOfBounds {
            gaddr: size as u64 - 8,
            len: 9,
            size
        }
    );
    assert!(ws.laddr(u64::MAX, 1).is_err());
    assert!(ws.laddr(1, usize::MAX).is_err());
    let g = ws.alloc(64, 256, 0).unwrap();
    let p = ws.laddr(g, 256).unwrap();
    assert_eq!(ws.gaddr(p.as_ptr()), Ok(g));
    assert_eq!(ws.gaddr_unchecked(p.as_ptr()), g);
    assert_eq!(ws.laddr_unchecked(g), p.as_ptr());
    let outside = 0u8;
    assert!(matches!(
        ws.gaddr(&outside),
        Err(AddrError::NotMapped { .. })
    ));
    assert!(g >= ws.data_off() && (g as usize) < size);
    let _ = HEADER_SZ;
}

#[test]
fn a_region_covering_parts_is_aligned_and_holds_them_all() {
    let dir = Dir::new("cover");
    let ws = dir.create(&uniq("cover"), 1 << 20);
    let a = ws.alloc(64, 100, 0).unwrap();
    let gap = ws.alloc(64, 10_000, 0).unwrap();
    let b = ws.alloc(64, 3000, 0).unwrap();
    assert!(a < gap && gap < b);
    let (ra, rb) = (ws.region(a, 100).unwrap(), ws.region(b, 3000).unwrap());
    let c = ws.region_covering(&[rb, ra], 4096).unwrap();
    assert!(c.is_aligned(4096) && c.len() % 4096 == 0);
    let g = ws.gaddr(c.as_ptr()).unwrap();
    assert!(g <= a && b + 3000 <= g + c.len() as u64, "holds both");
    assert!(
        g + 4096 > a && b + 3000 + 4096 > g + c.len() as u64,
        "no page more"
    );
    assert_eq!(c.access(), Access::ReadWrite);
    assert!(ws.region_covering(&[], 4096).is_none());
    let mut outside = [0u8; 64];
    let foreign = tilewire_shmem::Region::from_mut(&mut outside);
    assert!(ws.region_covering(&[ra, foreign], 4096).is_none());
    // The end is cut at the mapping's end.
    let last = ws.region(ws.size() as u64 - 10, 10).unwrap();
    let c = ws.region_covering(&[last], 1 << 16).unwrap();
    assert_eq!(
        ws.gaddr(c.as_ptr()).unwrap() + c.len() as u64,
        ws.size() as u64
    );
}

#[test]
fn list_reports_valid_and_broken_workspaces() {
    let dir = Dir::new("list");
    let a = uniq("a");
    let _ws = dir.create(&a, 1 << 20);
    plant(&dir, "broken", &[1; 5000]);
    std::fs::write(dir.config.shm_dir.join("unrelated-file"), b"x").unwrap();
    let l = Workspace::list(&dir.config);
    assert_eq!(l.len(), 2, "{l:?}");
    let good = l.iter().find(|i| i.name == a).unwrap();
    let h = good.header.as_ref().unwrap();
    assert_eq!(h.creator_pid, std::process::id());
    assert!(good.creator_alive);
    assert_eq!(good.file_size, 1 << 20);
    let broken = l.iter().find(|i| i.name == "broken").unwrap();
    assert!(
        broken.header.as_ref().unwrap_err().contains("wrong magic"),
        "{broken:?}"
    );
}

#[test]
fn huge_pages_work_or_say_how_to_reserve_them() {
    // Uses the system's default hugetlbfs locations (or the environment's).
    let name = uniq("huge");
    match Workspace::create(&name, 4 << 20, PageKind::Huge) {
        Ok(ws) => {
            assert_eq!(ws.page_kind(), PageKind::Huge);
            assert_eq!(ws.size(), 4 << 20);
            let g = ws.alloc(1 << 21, 1 << 20, 0).unwrap();
            assert_eq!(g % (1 << 21), 0);
            let j = Workspace::join(&name, Access::ReadOnly).unwrap();
            assert_eq!(j.page_kind(), PageKind::Huge);
            Workspace::unlink(&name).unwrap();
        }
        Err(e @ CreateError::NoHugetlbfs { .. }) => {
            let m = e.to_string();
            assert!(m.contains("mount -t hugetlbfs -o pagesize=2M"), "{m}");
            assert!(m.contains("nr_hugepages"), "{m}");
        }
        Err(e @ CreateError::NoHugePages { .. }) => {
            let m = e.to_string();
            assert!(m.contains("hugepages-2048kB/nr_hugepages"), "{m}");
        }
        Err(e) => panic!("unexpected error for huge pages: {e}"),
    }
    match Workspace::create(&uniq("gig"), 1 << 30, PageKind::Gigantic) {
        Ok(ws) => {
            let n = ws.name().to_owned();
            drop(ws);
            Workspace::unlink(&n).unwrap();
        }
        Err(e @ (CreateError::NoHugetlbfs { .. } | CreateError::NoHugePages { .. })) => {
            assert!(e.to_string().contains("hugepages-1048576kB"), "{e}");
        }
        Err(e) => panic!("unexpected error for gigantic pages: {e}"),
    }
}

#[test]
fn threads_allocating_at_once_never_overlap() {
    let dir = Dir::new("thr");
    let opts = CreateOptions {
        table_cap: 1024,
        ..dir.opts()
    };
    let ws = Workspace::create_with(&uniq("thr"), 4 << 20, PageKind::Normal, &opts).unwrap();
    let all: Vec<(u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let ws = &ws;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..200u64 {
                        let sz = 64 + ((i * 37 + t * 11) % 1000) as usize;
                        let g = ws.alloc(64, sz, t).unwrap();
                        mine.push((g, g + sz as u64));
                        if i % 3 == 0 {
                            let (g, _) = mine.swap_remove(0);
                            ws.free(g).unwrap();
                        }
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut v = all.clone();
    v.sort_unstable();
    for w in v.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlap {w:?}");
    }
    assert_eq!(ws.allocations().len(), all.len());
}
