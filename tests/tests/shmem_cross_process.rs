//! Workspaces shared between processes: a second process finds objects by
//! name, a read-only joiner cannot write, and a process killed while it holds
//! the allocator does not wedge the others.

use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::Duration;

use tilewire_shmem::{AllocError, Config, CreateOptions, PageKind, Workspace};
use tilewire_tests::{uniq, wait_for_line, KillOnDrop};

struct Env {
    config: Config,
}

impl Env {
    fn new() -> Env {
        let d = std::path::Path::new("/dev/shm").join(format!("tilewire-test-{}", uniq("x")));
        std::fs::create_dir_all(&d).unwrap();
        Env {
            config: Config {
                shm_dir: d.clone(),
                huge_dir: d.join("none"),
                gigantic_dir: d.join("none"),
            },
        }
    }
    fn create(&self, name: &str) -> Workspace {
        let o = CreateOptions {
            config: self.config.clone(),
            table_cap: 256,
        };
        Workspace::create_with(name, 4 << 20, PageKind::Normal, &o).unwrap()
    }
    fn peer(&self, args: &[&str]) -> (KillOnDrop, BufReader<std::process::ChildStdout>) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_shmem-peer"))
            .args(args)
            .env("TILEWIRE_SHM_DIR", &self.config.shm_dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn shmem-peer");
        let out = BufReader::new(c.stdout.take().unwrap());
        (KillOnDrop(c), out)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config.shm_dir);
    }
}

#[test]
fn another_process_finds_objects_by_name_and_cannot_write_read_only() {
    let env = Env::new();
    let name = uniq("xp");
    let ws = env.create(&name);
    let g = ws.alloc_named("net.rx.dcache", 4096, 10_000, 42).unwrap();
    let reg = ws.region(g, 10_000).unwrap();
    // SAFETY: our own fresh allocation of 10_000 bytes.
    unsafe { std::ptr::write_bytes(reg.as_ptr(), 3, 10_000) };
    let (_child, mut out) = env.peer(&["read", &name, "net.rx.dcache"]);
    let found = wait_for_line(&mut out, "found", Duration::from_secs(10));
    assert_eq!(
        found,
        format!("found gaddr={g} size=10000 tag=42 sum=30000")
    );
    let alloc = wait_for_line(&mut out, "alloc:", Duration::from_secs(10));
    assert_eq!(alloc, "alloc: workspace is joined read-only");
}

#[test]
fn process_killed_holding_the_lock_is_recovered_and_its_half_write_rolled_back() {
    let env = Env::new();
    let name = uniq("kl");
    let ws = env.create(&name);
    let before = ws.alloc_named("before", 64, 1000, 1).unwrap();
    let (mut child, mut out) = env.peer(&["stall", &name, "half"]);
    wait_for_line(&mut out, "held", Duration::from_secs(10));

    // A live owner is not robbed: the waiter gives up with a clear error.
    let pid = child.0.id();
    assert_eq!(
        ws.alloc(64, 64, 0),
        Err(AllocError::LockTimeout { owner_pid: pid })
    );
    assert_eq!(ws.lock_recoveries(), 0);

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let g = ws
        .alloc_named("after", 64, 1000, 2)
        .expect("alloc after the owner died");
    assert_eq!(ws.lock_recoveries(), 1);
    let live = ws.allocations();
    assert_eq!(
        live.len(),
        2,
        "the half-written entry was rolled back: {live:?}"
    );
    assert!(live.iter().any(|a| a.gaddr == before) && live.iter().any(|a| a.gaddr == g));
    assert!(live.iter().all(|a| a.size == 1000));
}

#[test]
fn killing_allocating_processes_at_random_points_never_wedges_the_parent() {
    let env = Env::new();
    let name = uniq("rk");
    let ws = env.create(&name);
    let mut seed = 0x9e37_79b9_u64 ^ std::process::id() as u64;
    for round in 0..20 {
        let (mut child, mut out) = env.peer(&["alloc-loop", &name]);
        wait_for_line(&mut out, "ready", Duration::from_secs(10));
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_micros(200 + (seed >> 40) % 5000));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let g = ws
            .alloc(64, 4096, round)
            .unwrap_or_else(|e| panic!("round {round}: alloc after kill failed: {e}"));
        let mut v: Vec<(u64, u64)> = ws
            .allocations()
            .iter()
            .map(|a| (a.gaddr, a.gaddr + a.size))
            .collect();
        v.sort_unstable();
        assert!(
            v.windows(2).all(|w| w[0].1 <= w[1].0),
            "overlap after kill: {v:?}"
        );
        ws.free(g).unwrap();
    }
    // The child frees what it allocates, so at most one allocation per
    // killed child can remain (allocated, not yet freed when killed).
    assert!(ws.allocations().len() <= 20);
    eprintln!("lock recoveries over 20 kills: {}", ws.lock_recoveries());
}
