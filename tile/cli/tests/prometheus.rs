//! A real Prometheus server scrapes `tilewire monitor --prometheus` on a
//! running pipeline, and its HTTP API gives back what the workspace says:
//! the sink's frag counter, exactly, and a latency quantile
//! (`histogram_quantile`) inside the workspace histogram's bucket. The
//! endpoint also passes `promtool check metrics`.
//!
//! Needs the `prometheus` package (`.ci/deps` installs it); without it the
//! test says so, and under CI that is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tilewire_monitor::{pid_alive, Report, Snapshot, HEARTBEAT_TIMEOUT, LATENCY_BOUNDS_NS};
use tilewire_shmem::{Access, Config, Workspace};

const DEADLINE: Duration = Duration::from_secs(60);
const FRAGS: u64 = 20_000;

/// Children killed and a directory removed on drop, also on failure.
struct Scene {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// GET `path` from `127.0.0.1:port`: the body, if the answer was 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Waits until `f` gives something, up to the deadline.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The one value of a Prometheus instant query, if it has one yet.
fn query(port: u16, promql: &str) -> Option<f64> {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(port, &format!("/api/v1/query?query={q}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    let [one] = result.as_slice() else {
        return None;
    };
    one["value"][1].as_str()?.parse().ok()
}

fn tilewire(scene: &Scene) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tilewire"));
    c.env("TILEWIRE_SHM_DIR", &scene.dir);
    c
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn prometheus_scrapes_the_monitor_and_agrees_with_the_workspace() {
    if !have("prometheus") || !have("promtool") {
        eprintln!("\nskipped: needs prometheus (apt-get install prometheus; .ci/deps does)");
        assert!(std::env::var_os("CI").is_none(), "CI installs prometheus");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tilewire-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut scene = Scene {
        dir,
        children: Vec::new(),
    };
    let ws = format!("tw-prom-{}", std::process::id());

    // A pipeline that sends exactly FRAGS and then idles.
    let topo = scene.dir.join("topo.toml");
    std::fs::write(
        &topo,
        format!(
            "[workspace]\nname = \"{ws}\"\n\n[[link]]\nname = \"pkts\"\ndepth = 1024\n\n\
             [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"pkts\"]\n\
             params = {{ count = {FRAGS}, rate = 50000, burst = 8 }}\n\n\
             [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"pkts\"]\n"
        ),
    )
    .unwrap();
    let run = tilewire(&scene)
        .args(["run", topo.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    scene.children.push(run);
    let config = Config {
        shm_dir: scene.dir.clone(),
        huge_dir: scene.dir.join("no-huge"),
        gigantic_dir: scene.dir.join("no-gigantic"),
    };
    let joined = wait_for("the workspace", || {
        Workspace::join_with(&ws, Access::ReadOnly, &config).ok()
    });
    let report = || Report::new(&Snapshot::take(&joined), None, HEARTBEAT_TIMEOUT, pid_alive);
    let sink_frags = |r: &Report| {
        r.tile("sink")?
            .counters
            .iter()
            .find(|c| c.name == "frags")
            .map(|c| c.value)
    };
    wait_for("gen to send them all", || {
        (sink_frags(&report()) == Some(FRAGS)).then_some(())
    });

    // The monitor's endpoint, which promtool accepts.
    let metrics_port = free_port();
    let mut monitor = tilewire(&scene)
        .args(["monitor", &ws, "--interval-ms", "200"])
        .args(["--prometheus", &format!("127.0.0.1:{metrics_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = BufReader::new(monitor.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    scene.children.push(monitor);
    assert!(
        said.contains(&format!("127.0.0.1:{metrics_port}/metrics")),
        "{said}"
    );
    let exposition = wait_for("the first exposition", || {
        get(metrics_port, "/metrics").filter(|b| b.contains("tilewire_tile_events_total"))
    });
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );

    // A Prometheus server of our own, scraping it every second.
    let prom_port = free_port();
    let conf = scene.dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tilewire\n    static_configs:\n\
             \x20     - targets: [\"127.0.0.1:{metrics_port}\"]\n"
        ),
    )
    .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            Path::new(&scene.dir).join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    scene.children.push(prometheus);

    let selector =
        format!("tilewire_tile_events_total{{workspace=\"{ws}\",tile=\"sink\",name=\"frags\"}}");
    let frags = wait_for("Prometheus to scrape the sink's counter", || {
        query(prom_port, &selector)
    });
    assert_eq!(
        frags as u64, FRAGS,
        "Prometheus says what the workspace says"
    );

    let quantile = format!(
        "histogram_quantile(0.99, tilewire_tile_input_latency_seconds_bucket{{workspace=\"{ws}\",tile=\"sink\"}})"
    );
    let p99 = wait_for("a latency quantile", || query(prom_port, &quantile));
    // The workspace's own p99, and the exported bucket it falls in.
    let r = report();
    let lat = r.tile("sink").unwrap().inputs[0].latency.unwrap();
    assert_eq!(lat.count, FRAGS);
    let i = LATENCY_BOUNDS_NS.partition_point(|&b| b < lat.p99_ns);
    let hi = LATENCY_BOUNDS_NS
        .get(i)
        .map_or(f64::INFINITY, |&b| b as f64 / 1e9);
    let lo = if i == 0 {
        0.0
    } else {
        LATENCY_BOUNDS_NS[i - 1] as f64 / 1e9
    };
    // Prometheus interpolates inside a bucket; a fine bucket straddling a
    // bound may move the 99th frag one bucket up or down.
    let lo2 = if i <= 1 {
        0.0
    } else {
        LATENCY_BOUNDS_NS[i - 2] as f64 / 1e9
    };
    let hi2 = LATENCY_BOUNDS_NS
        .get(i + 1)
        .map_or(f64::INFINITY, |&b| b as f64 / 1e9);
    eprintln!(
        "prometheus: sink frags {frags}; histogram_quantile(0.99) = {p99} s; \
         the workspace's p99 {} ns, in bucket ({lo}, {hi}] s",
        lat.p99_ns
    );
    assert!(
        p99 > lo2 && p99 <= hi2,
        "p99 {p99} s outside ({lo2}, {hi2}] s"
    );
}
