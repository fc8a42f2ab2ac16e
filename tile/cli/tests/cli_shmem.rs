//! `tilewire shmem ls|info|rm` and `tilewire monitor`, run as the binary
//! against workspaces in a temporary directory of their own (the
//! `TILEWIRE_*_DIR` variables point there), removed even when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tilewire_aio::mem::MemAio;
use tilewire_aio::{Aio, PktInfo, SendError};
use tilewire_shmem::workspace::CreateOptions;
use tilewire_shmem::{Config, PageKind, Workspace};
use tilewire_tile::link::{Link, LinkParams, Reliability};
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::metrics::TileMetricsHandle;
use tilewire_tile::stem::{Stem, StemConfig};

const MTU: usize = 256;
const DEADLINE: Duration = Duration::from_secs(20);

/// A fresh directory for workspaces, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tilewire-cli-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn config(&self) -> Config {
        Config {
            shm_dir: self.0.clone(),
            // Directories that do not exist: listing skips them.
            huge_dir: self.0.join("no-huge"),
            gigantic_dir: self.0.join("no-gigantic"),
        }
    }

    fn create(&self, name: &str) -> Workspace {
        let opts = CreateOptions {
            config: self.config(),
            table_cap: 64,
        };
        Workspace::create_with(name, 1 << 22, PageKind::Normal, &opts).unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(format!("tilewire.{name}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let c = self.config();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tilewire"));
        cmd.args(args)
            .env("TILEWIRE_SHM_DIR", &c.shm_dir)
            .env("TILEWIRE_HUGE_DIR", &c.huge_dir)
            .env("TILEWIRE_GIGANTIC_DIR", &c.gigantic_dir);
        cmd
    }

    /// Runs `tilewire args...` to its end (killed after the deadline).
    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let end = Instant::now() + DEADLINE;
        while child.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "tilewire {args:?} did not finish");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut out = Output {
            status: child.0.wait().unwrap(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        child
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out.stdout)
            .unwrap();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut out.stderr)
            .unwrap();
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills and reaps a child when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks a tile to stop when dropped (a failed assertion must not leave the
/// scope waiting on a tile thread).
struct StopOnDrop<'w>(TileMetricsHandle<'w>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.request_stop();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A downstream that takes everything and keeps nothing.
struct Discard(MemAio);

impl Aio for Discard {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        let r = self.0.send(batch, flush);
        self.0.clear();
        r
    }
}

/// Link `net` and a drain tile `drain` reading it, in `ws`.
fn pipeline(ws: &Workspace) -> (Link<'_>, Stem<'_, Drain<Discard>>) {
    let params = LinkParams {
        depth: 64,
        mtu: MTU,
        consumers: vec![Reliability::Reliable],
        seq0: 0,
    };
    let link = Link::create(ws, "net", &params).unwrap();
    let aio = Discard(MemAio::with_capacity(tilewire_tile::stem::drain::BATCH_MAX));
    let config = StemConfig {
        lazy: 256,
        stop_grace: Duration::from_millis(100),
    };
    let stem = Stem::new(
        ws,
        "drain",
        Drain::new(aio, MTU),
        &[(&link, 0)],
        &[],
        config,
    )
    .unwrap();
    (link, stem)
}

fn ls_json(dir: &TempDir) -> Vec<Value> {
    let out = ok(&dir.run(&["shmem", "ls", "--json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn entry<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|w| w["name"] == name)
}

#[test]
fn ls_lists_info_names_objects_and_rm_removes() {
    let dir = TempDir::new("lsrm");
    let ws = dir.create("cli-a");
    let (_link, mut stem) = pipeline(&ws);
    stem.metrics().request_stop();
    stem.run(); // asked to stop before it ran: it runs once and halts

    let out = ok(&dir.run(&["shmem", "ls"]));
    let line = out.lines().find(|l| l.starts_with("cli-a ")).expect(&out);
    assert!(
        line.contains("normal") && line.contains("1 halted"),
        "{line}"
    );
    assert!(
        line.ends_with("live"),
        "its creator (this test) is alive: {line}"
    );
    let list = ls_json(&dir);
    let a = entry(&list, "cli-a").unwrap();
    assert_eq!(a["status"], "live");
    assert_eq!(a["creator_pid"], std::process::id());
    assert_eq!(a["tiles"]["halted"], 1);
    assert!(a["allocated_bytes"].as_u64().unwrap() > 0);

    let out = ok(&dir.run(&["shmem", "info", "cli-a"]));
    for (alloc, object) in [
        ("net.mc", "mcache"),
        ("net.dc", "dcache"),
        ("net.fs0", "fseq"),
        ("drain.tm", "tile metrics"),
        ("drain.lat0", "hist"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{alloc} ")))
            .unwrap_or_else(|| panic!("no {alloc} in\n{out}"));
        assert!(line.ends_with(object), "{line}");
    }
    assert!(
        out.contains(&format!("by pid {} (alive)", std::process::id())),
        "{out}"
    );
    let info: Value =
        serde_json::from_str(&ok(&dir.run(&["shmem", "info", "cli-a", "--json"]))).unwrap();
    assert_eq!(info["page"], "normal");
    assert_eq!(info["allocations"].as_array().unwrap().len(), 5);
    assert!(info["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "drain.tm" && a["object"] == "tile metrics"));

    let out = ok(&dir.run(&["shmem", "rm", "cli-a"]));
    assert!(out.contains("removed cli-a"), "{out}");
    assert!(!dir.file("cli-a").exists());
    assert!(entry(&ls_json(&dir), "cli-a").is_none());
    let out = dir.run(&["shmem", "info", "cli-a"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn rm_refuses_a_workspace_with_a_running_tile_unless_forced() {
    let dir = TempDir::new("rmlive");
    let ws = dir.create("cli-busy");
    let (_link, mut stem) = pipeline(&ws);
    let m = stem.metrics();
    std::thread::scope(|s| {
        let _guard = StopOnDrop(m);
        let h = s.spawn(|| stem.run());
        let end = Instant::now() + DEADLINE;
        while m.snapshot().heartbeat_ns == 0 {
            assert!(Instant::now() < end, "the tile never beat");
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = dir.run(&["shmem", "rm", "cli-busy"]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        let pid = std::process::id().to_string();
        assert!(err.contains("\"drain\"") && err.contains(&pid), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert!(dir.file("cli-busy").exists(), "refused means not removed");

        ok(&dir.run(&["shmem", "rm", "cli-busy", "--force"]));
        assert!(!dir.file("cli-busy").exists());
        m.request_stop();
        h.join().unwrap();
    });
}

#[test]
fn garbage_and_truncated_files_are_invalid_and_ls_goes_on() {
    let dir = TempDir::new("invalid");
    drop(dir.create("cli-ok"));
    drop(dir.create("cli-cut"));
    // Half the file gone: the header says 4 MiB.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file("cli-cut"))
        .unwrap();
    f.set_len(1 << 21).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(dir.file("cli-junk"), garbage).unwrap();

    let out = ok(&dir.run(&["shmem", "ls"]));
    for name in ["cli-cut", "cli-junk"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .expect(&out);
        assert!(line.ends_with("invalid"), "{line}");
    }
    assert!(
        out.contains("cli-cut: invalid:") && out.contains("header says"),
        "{out}"
    );
    assert!(
        out.contains("cli-junk: invalid:") && out.contains("wrong magic"),
        "{out}"
    );
    let list = ls_json(&dir);
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(entry(&list, "cli-ok").unwrap()["status"], "live");
    for name in ["cli-cut", "cli-junk"] {
        let w = entry(&list, name).unwrap();
        assert_eq!(w["status"], "invalid");
        assert!(!w["why"].as_str().unwrap().is_empty());
    }
    // An invalid workspace can still be removed.
    ok(&dir.run(&["shmem", "rm", "cli-junk", "cli-cut"]));
    assert_eq!(ls_json(&dir).len(), 1);
}

#[test]
fn monitor_once_json_names_the_running_tile() {
    let dir = TempDir::new("mononce");
    let ws = dir.create("cli-mon");
    let (_link, mut stem) = pipeline(&ws);
    let m = stem.metrics();
    std::thread::scope(|s| {
        let _guard = StopOnDrop(m);
        let h = s.spawn(|| stem.run());
        let out = ok(&dir.run(&["monitor", "cli-mon", "--once", "--json"]));
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["workspace"], "cli-mon");
        assert!(v["interval_ns"].as_u64().unwrap() >= 150_000_000, "{v}");
        let tiles = v["tiles"].as_array().unwrap();
        assert_eq!(tiles.len(), 1);
        assert_eq!(tiles[0]["name"], "drain");
        assert_eq!(tiles[0]["kind"], "drain");
        assert_eq!(tiles[0]["health"], "running");
        assert_eq!(v["links"][0]["name"], "net");
        assert_eq!(v["links"][0]["consumers"][0]["tile"], "drain");
        m.request_stop();
        h.join().unwrap();
    });
}

#[test]
fn monitor_serves_prometheus_on_loopback() {
    let dir = TempDir::new("monprom");
    let ws = dir.create("cli-prom");
    let (_link, _stem) = pipeline(&ws);
    let child = dir
        .command(&[
            "monitor",
            "cli-prom",
            "--prometheus",
            "127.0.0.1:0",
            "--interval-ms",
            "50",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // The monitor says where it listens on its first line of stderr.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(DEADLINE).expect("the monitor said nothing");
    let url = line.split("http://").nth(1).expect(&line).trim();
    let addr = url.trim_end_matches("/metrics");
    let mut body = String::new();
    let end = Instant::now() + DEADLINE;
    // The first report may not be drawn yet: ask until it is.
    while !body.contains("tilewire_tile_up") {
        assert!(Instant::now() < end, "no metrics served: {body}");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        body.clear();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        body.contains("tilewire_tile_up{workspace=\"cli-prom\",tile=\"drain\",kind=\"drain\"} 1"),
        "{body}"
    );
    assert!(body.contains("tilewire_link_published_total{workspace=\"cli-prom\",link=\"net\"} 0"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    // A client that connects and says half a request stalls no scrape
    // (a server reading requests one at a time waits out its read timeout,
    // 2 s, first).
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let asked = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.contains("tilewire_tile_up"), "{resp}");
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "served in {:?} beside a stalled client",
        asked.elapsed()
    );
    drop(slow);
    let refused = dir.run(&["monitor", "cli-prom", "--prometheus", "0.0.0.0:0"]);
    // A bad value is a usage error: exit 2, naming the flag.
    assert_eq!(refused.status.code(), Some(2));
    let why = text(&refused.stderr);
    assert!(
        why.contains("--prometheus") && why.contains("loopback"),
        "{why}"
    );
}

#[test]
fn monitor_prints_a_table_per_interval_and_exits_cleanly_on_ctrl_c() {
    let dir = TempDir::new("monloop");
    let ws = dir.create("cli-loop");
    let (_link, _stem) = pipeline(&ws);
    let child = dir
        .command(&["monitor", "cli-loop", "--interval-ms", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("workspace cli-loop"))
        .count()
        < 3
    {
        lines.push(rx.recv_timeout(DEADLINE).expect("fewer than three tables"));
    }
    // Not a terminal: tables one after another, no screen control.
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("drain ") && l.contains("booting")));
    assert!(lines.iter().any(|l| l.contains("rates over")), "{lines:?}");
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the monitor ignored SIGINT");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(0), "Ctrl-C is a normal end");
}

#[test]
fn monitor_on_a_missing_workspace_exits_1_and_says_so() {
    let dir = TempDir::new("monmissing");
    let out = dir.run(&["monitor", "no-such-ws", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no workspace named \"no-such-ws\""), "{err}");
    assert!(
        err.contains(&dir.0.display().to_string()),
        "says where it looked: {err}"
    );
    assert!(out.stdout.is_empty());
}

/// A pid that no process has: a child that ran and was reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Makes workspace file `path` say it was created by `pid` (the header's
/// `creator_pid`, a u32 at byte 56), as if that process had made it.
fn set_creator(path: &Path, pid: u32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&pid.to_le_bytes(), 56).unwrap();
}

#[test]
fn a_crash_left_over_is_abandoned_and_a_finished_workspace_stopped() {
    let dir = TempDir::new("crash");
    let dead = dead_pid();
    {
        // What a crashed tile leaves: its metrics' live words (pid at byte
        // 2688, state at 2696, heartbeat at 2704 of `<tile>.tm`) say it
        // runs, in a process that is gone, with a heartbeat 2 s old.
        let ws = dir.create("cli-crash");
        let (_link, _stem) = pipeline(&ws);
        let tm = ws.lookup("drain.tm").unwrap();
        let mem = ws.region(tm.gaddr, tm.size as usize).unwrap();
        let word = |off| mem.atomic_u64(off).unwrap();
        let two_s_ago = tilewire_shmem::clock::mono_ns() - 2_000_000_000;
        word(2688).store(u64::from(dead), Ordering::Relaxed);
        word(2696).store(1, Ordering::Relaxed);
        word(2704).store(two_s_ago, Ordering::Relaxed);
    }
    {
        let ws = dir.create("cli-done");
        let (_link, mut stem) = pipeline(&ws);
        stem.metrics().request_stop();
        stem.run();
    }
    drop(dir.create("cli-empty"));
    for name in ["cli-crash", "cli-done", "cli-empty"] {
        set_creator(&dir.file(name), dead);
    }

    let out = ok(&dir.run(&["shmem", "ls"]));
    let status = |name: &str| {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .expect(&out);
        line.rsplit(' ').next().unwrap().to_string()
    };
    assert_eq!(status("cli-crash"), "abandoned", "{out}");
    assert_eq!(status("cli-done"), "stopped", "{out}");
    assert_eq!(status("cli-empty"), "stopped", "{out}");
    assert!(out.contains("`tilewire shmem rm cli-crash`"), "{out}");
    assert!(out.contains(&format!("{dead} gone")), "{out}");
    let list = ls_json(&dir);
    assert_eq!(entry(&list, "cli-crash").unwrap()["tiles"]["dead"], 1);
    assert_eq!(entry(&list, "cli-crash").unwrap()["creator_alive"], false);

    let out = ok(&dir.run(&["monitor", "cli-crash", "--once", "--json"]));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["tiles"][0]["state"], "running");
    assert_eq!(v["tiles"][0]["health"], "dead");
    assert!(v["tiles"][0]["heartbeat_age_ns"].as_u64().unwrap() >= 2_000_000_000);
    // Nothing alive holds it: no --force needed.
    ok(&dir.run(&["shmem", "rm", "cli-crash"]));
    assert!(!dir.file("cli-crash").exists());
}

/// The directory a path lives in exists only while its guard does.
#[test]
fn the_temporary_directory_goes_with_its_guard() {
    let path: PathBuf;
    {
        let dir = TempDir::new("guard");
        drop(dir.create("cli-gone"));
        path = dir.0.clone();
        assert!(Path::new(&path).join("tilewire.cli-gone").exists());
    }
    assert!(!path.exists());
}
