//! `tilewire run` and `tilewire demo`, run as the binary.
//!
//! Workspaces go to a temporary directory of each test's own
//! (`TILEWIRE_SHM_DIR`), removed at the end even on failure. The demo over
//! AF_XDP needs root (it makes its own namespaces and veth pair, and checks
//! here that it removed them); the loopback demo runs as `nobody` when the
//! test is root, so the fallback is what is tested. Both paths run over
//! IPv6 too (`--ipv6`, and `--udp --ipv6` on [::1]).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tilewire_pipeline::kinds::generator::{stamp_pass, synthetic};
use tilewire_pipeline::kinds::sink::packet_checksum;
use tilewire_pipeline::tile_metrics;
use tilewire_shmem::{Access, Config, Workspace};

/// Pipelines spin their tiles on two cores: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        // tmpfs where there is one: the kernel pins an AF_XDP UMEM only in
        // memory like it, not in a file of a disk file system.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "tilewire-run-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // Readable and writable by the unprivileged demo too.
        let _ = Command::new("chmod").arg("1777").arg(&dir).status();
        TempDir(dir)
    }

    fn config(&self) -> Config {
        Config {
            shm_dir: self.0.clone(),
            huge_dir: self.0.join("huge"),
            gigantic_dir: self.0.join("gigantic"),
        }
    }

    fn workspaces(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "topo.toml")
            .collect()
    }

    fn tilewire(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tilewire"));
        c.env("TILEWIRE_SHM_DIR", &self.0);
        c
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `tilewire run` on `topo` and returns what it printed on stderr,
/// checking it failed and made nothing.
fn refused(topo: &str) -> String {
    let dir = TempDir::new("bad");
    let path = dir.0.join("topo.toml");
    std::fs::write(&path, topo).unwrap();
    let out = dir
        .tilewire()
        .args(["run", path.to_str().unwrap()])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(dir.workspaces().is_empty(), "nothing was made");
    err
}

#[test]
fn a_wrong_topology_is_refused_with_its_lines_before_anything_starts() {
    let err = refused(
        r#"[workspace]
name = "tw-bad"
size = "4MiB"

[[link]]
name = "a"
depth = 1024

[[tile]]
name = "gen"
kind = "gen"
outputs = ["a"]
cpu = 4096

[[tile]]
name = "next"
kind = "dedupe"
inputs = ["a"]
"#,
    );
    assert!(
        err.contains("topo.toml: line 17") && err.contains("unknown tile kind \"dedupe\""),
        "{err}"
    );
    // Once it parses, the whole of it is checked: size, cycle, cpu.
    let err = refused(
        r#"[workspace]
name = "tw-bad"
size = "4MiB"

[[link]]
name = "a"
depth = 1024

[[link]]
name = "b"
depth = 1024

[[tile]]
name = "one"
kind = "forward"
inputs = ["b"]
outputs = ["a"]
cpu = 4096

[[tile]]
name = "two"
kind = "forward"
inputs = ["a"]
outputs = ["b"]
"#,
    );
    assert!(err.contains("line 18") && err.contains("cpu 4096"), "{err}");
    assert!(err.contains("line 13") && err.contains("cycle"), "{err}");
    assert!(
        err.contains("line 3") && err.contains("workspace size"),
        "{err}"
    );
}

#[test]
fn run_in_threads_delivers_exactly_what_gen_sent() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("threads");
    let path = dir.0.join("topo.toml");
    const COUNT: usize = 5000;
    std::fs::write(
        &path,
        format!(
            r#"[workspace]
name = "tw-run-threads"
size = "8MiB"

[[link]]
name = "a"
depth = 512
mtu = 256

[[link]]
name = "b"
depth = 512
mtu = 256

[[tile]]
name = "gen"
kind = "gen"
outputs = ["a"]
params = {{ size = 64, count = {COUNT}, src = "198.18.0.1:4000", dst = "198.18.0.2:9000" }}

[[tile]]
name = "forward"
kind = "forward"
inputs = ["a"]
outputs = ["b"]

[[tile]]
name = "sink"
kind = "sink"
inputs = ["b"]
"#
        ),
    )
    .unwrap();
    let out = dir
        .tilewire()
        .args(["run", path.to_str().unwrap(), "--duration", "1.5", "--keep"])
        .output()
        .unwrap();
    let (table, err) = text(&out);
    assert!(out.status.success(), "{err}\n{table}");
    assert!(table.contains("halted"), "{table}");
    let ws = Workspace::join_with("tw-run-threads", Access::ReadOnly, &dir.config()).unwrap();
    let sink = tile_metrics(&ws, "sink").unwrap().snapshot();
    let c = |n: &str| sink.counters.iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(c("frags"), COUNT as u64);
    // What gen sent: its synthetic frames in order, each pass stamped.
    let frames = synthetic(
        64,
        "198.18.0.1:4000".parse().unwrap(),
        "198.18.0.2:9000".parse().unwrap(),
    );
    let mut sum = 0u64;
    let mut bytes = 0u64;
    for i in 0..COUNT {
        let mut f = frames[i % frames.len()].clone();
        stamp_pass(&mut f, (i / frames.len()) as u64);
        sum = sum.wrapping_add(packet_checksum(&f));
        bytes += f.len() as u64;
    }
    assert_eq!(c("bytes"), bytes);
    assert_eq!(c("checksum"), sum, "every frame arrived unaltered");
    drop(ws);
    let rm = dir
        .tilewire()
        .args(["shmem", "rm", "tw-run-threads"])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{:?}", text(&rm));
}

#[test]
fn a_counted_tile_shows_each_of_its_tiles_and_their_sum() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("count");
    let path = dir.0.join("topo.toml");
    std::fs::write(
        &path,
        r#"[workspace]
name = "tw-run-count"
size = "8MiB"

[[link]]
name = "a"
depth = 512
mtu = 256

[[link]]
name = "b"
depth = 512
mtu = 256

[[tile]]
name = "gen"
kind = "gen"
outputs = ["a"]
params = { size = 64, count = 5000, src = "198.18.0.1:4000", dst = "198.18.0.2:9000" }

[[tile]]
name = "forward"
kind = "forward"
count = 2
inputs = ["a"]
outputs = ["b"]

[[tile]]
name = "sink"
kind = "sink"
inputs = ["b"]
"#,
    )
    .unwrap();
    let out = dir
        .tilewire()
        .args(["run", path.to_str().unwrap(), "--duration", "1", "--quiet"])
        .output()
        .unwrap();
    let (table, err) = text(&out);
    assert!(out.status.success(), "{err}\n{table}");
    let row = |start: &str| {
        table
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no row {start:?}: {table}"))
            .to_owned()
    };
    assert!(row("forward.0 ").contains("forwarded=2.5k"), "{table}");
    assert!(row("forward.1 ").contains("forwarded=2.5k"), "{table}");
    assert!(
        row("forward (sum of 2)").contains("forwarded=5.0k"),
        "{table}"
    );
    assert!(row("sink ").contains("frags=5.0k"), "{table}");
}

/// Namespaces whose names a process with `pid` made (`tw-<pid>-...`).
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("tw-{pid}-")))
        .map(str::to_owned)
        .collect()
}

fn check_summary(out: &str, net: &str) {
    assert!(out.contains(&format!("({net}")), "{out}");
    assert!(out.contains("every packet is accounted for"), "{out}");
    assert!(out.contains("checksums agree"), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("dropped"))
        .unwrap_or_else(|| panic!("no dropped line: {out}"));
    assert!(line.split_whitespace().nth(1) == Some("0"), "{out}");
}

/// Starts `tilewire demo` with `args`, its workspaces in `dir`.
fn spawn_demo(dir: &TempDir, args: &[&str]) -> std::process::Child {
    dir.tilewire()
        .arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the demo `child` and checks its summary and that it left no
/// namespace and no workspace behind.
fn check_demo(dir: &TempDir, child: std::process::Child) -> String {
    check_demo_on(dir, child, "net-xdp")
}

/// [`check_demo`] of a demo whose net tile is of kind `net`.
fn check_demo_on(dir: &TempDir, child: std::process::Child, net: &str) -> String {
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    check_summary(&stdout, net);
    assert!(namespaces_of(pid).is_empty(), "namespaces left behind");
    assert!(dir.workspaces().is_empty(), "{:?}", dir.workspaces());
    stdout
}

/// The number a summary line starting with `label` shows first.
fn summary_count(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count {label:?}: {out}"))
}

/// The demo's summary says well-formed datagrams went in and every one
/// that was not a repeat came back.
fn assert_every_unique_echoed(stdout: &str) {
    let (wf, dups) = (
        summary_count(stdout, "well-formed"),
        summary_count(stdout, "of them repeats"),
    );
    assert!(wf > 0, "{stdout}");
    assert_eq!(
        summary_count(stdout, "peer received"),
        wf - dups,
        "{stdout}"
    );
}

#[test]
fn demo_over_af_xdp_accounts_for_every_packet_and_cleans_up() {
    if !is_root() {
        eprintln!("\nskipped: needs CAP_NET_ADMIN");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("demo");
    let child = spawn_demo(&dir, &["--duration", "1", "--rate", "5000"]);
    let stdout = check_demo(&dir, child);
    assert!(stdout.contains("malformed"), "{stdout}");
    // A mix of one class: only transactions, and nothing malformed.
    let child = spawn_demo(&dir, &["--duration", "0.5", "--mix", "txn"]);
    let stdout = check_demo(&dir, child);
    assert!(
        stdout.contains("(txn ") && !stdout.contains("shred"),
        "{stdout}"
    );
    let bad = dir
        .tilewire()
        .args(["demo", "--mix", "txns"])
        .output()
        .unwrap();
    let (_, err) = text(&bad);
    assert!(
        !bad.status.success() && err.contains("unknown class \"txns\""),
        "{err}"
    );
}

/// `--ipv6` over AF_XDP: IPv6 addresses on the veth ends, the peer's
/// frames IPv6 (the fixture's own IPv6 frames among them, which the XDP
/// program now steers), every packet accounted for, every echo back.
#[test]
fn demo_over_ipv6_on_af_xdp_accounts_for_every_packet() {
    if !is_root() {
        eprintln!("\nskipped: needs CAP_NET_ADMIN");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("demo-v6");
    let child = spawn_demo(&dir, &["--ipv6", "--duration", "1", "--rate", "5000"]);
    let stdout = check_demo(&dir, child);
    assert!(stdout.contains("(net-xdp; IPv6)"), "{stdout}");
    assert!(
        stdout.contains("2001:2::1") && stdout.contains("2001:2::2"),
        "{stdout}"
    );
    assert_eq!(summary_count(&stdout, "unexplained"), 0, "{stdout}");
    assert!(summary_count(&stdout, "malformed") > 0, "{stdout}");
    assert_every_unique_echoed(&stdout);
    // Only the fixture's IPv6 frames: every one a datagram for the
    // pipeline, as the XDP program steers them.
    let child = spawn_demo(&dir, &["--ipv6", "--duration", "0.5", "--mix", "ipv6_udp"]);
    let stdout = check_demo(&dir, child);
    let sent = summary_count(&stdout, "peer sent");
    assert!(sent > 0, "{stdout}");
    assert_eq!(summary_count(&stdout, "well-formed"), sent, "{stdout}");
    assert!(summary_count(&stdout, "peer received") > 0, "{stdout}");
}

/// `--udp --ipv6`: the loopback path on [::1], as any user.
#[test]
fn demo_over_ipv6_on_udp_loopback_accounts_for_every_packet() {
    if let Err(e) = std::net::UdpSocket::bind("[::1]:0") {
        eprintln!("no IPv6 loopback here ({e}); the IPv6 loopback demo did not run");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("demo-udp-v6");
    let child = spawn_demo(
        &dir,
        &["--udp", "--ipv6", "--duration", "1", "--rate", "5000"],
    );
    let stdout = check_demo_on(&dir, child, "net-udp");
    assert!(stdout.contains("loopback [::1]:"), "{stdout}");
    assert!(stdout.contains("; IPv6)"), "{stdout}");
    assert_eq!(summary_count(&stdout, "unexplained"), 0, "{stdout}");
    assert_every_unique_echoed(&stdout);
}

#[test]
fn demo_stopped_by_ctrl_c_summarises_and_cleans_up() {
    if !is_root() {
        eprintln!("\nskipped: needs CAP_NET_ADMIN");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("demo-int");
    let child = spawn_demo(&dir, &["--duration", "60", "--rate", "5000"]);
    let pid = child.id();
    let start = Instant::now();
    while namespaces_of(pid).is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    check_demo(&dir, child);
    assert!(start.elapsed() < Duration::from_secs(30), "stopped early");
}

#[test]
fn demo_without_root_runs_on_udp_loopback_and_says_why() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("demo-udp");
    let exe = env!("CARGO_BIN_EXE_tilewire");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            exe,
        ]);
        c
    } else {
        Command::new(exe)
    };
    let out = cmd
        .args(["demo", "--duration", "1", "--rate", "5000"])
        .env("TILEWIRE_SHM_DIR", &dir.0)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("need root"), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
    check_summary(&stdout, "net-udp");
    assert!(dir.workspaces().is_empty(), "{:?}", dir.workspaces());
}

/// The topology of the README's tour is a valid topology.
#[test]
fn the_readme_topology_parses_and_checks() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("```toml\n").expect("a toml block") + 8;
    let len = readme[start..].find("```").unwrap();
    let spec = tilewire_pipeline::topo::TopologySpec::parse(&readme[start..start + len])
        .unwrap_or_else(|e| panic!("{e}"));
    let topo = tilewire_pipeline::Registry::with_builtins()
        .bind(spec, &tilewire_pipeline::topo::Machine::with_cpus(2))
        .unwrap_or_else(|e| panic!("{e}"));
    // net.0 and net.1 (`queues = 2`), dedup, cap.
    assert_eq!(topo.tiles.len(), 4);
}
