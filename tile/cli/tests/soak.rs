//! The CI soak: `tilewire soak --duration 60 --seed 1 --json`, a pipeline
//! of processes under load with a tile killed every few seconds, and its
//! report read back: kills and restarts happened and match, every frag
//! the source sent is accounted for, and the runner's and tiles' memory
//! and open files did not grow past the stated bound.
//!
//! Its workspace lives in a temporary directory of the test's own (the
//! `TILEWIRE_SHM_DIR` of the process it starts); the process is killed
//! and reaped if it outlives its deadline, and the directory removed. It
//! sends nothing on any network.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest the 60 s soak may take, its stop and books included.
const DEADLINE: Duration = Duration::from_secs(240);

/// A temporary workspace directory, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

#[test]
fn a_60_s_soak_kills_and_restarts_tiles_and_accounts_for_every_frag() {
    let dir = Dir(std::env::temp_dir().join(format!("tilewire-soak-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tilewire"))
        .args(["soak", "--duration", "60", "--seed", "1", "--json"])
        .env("TILEWIRE_SHM_DIR", &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tilewire soak");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tilewire soak still ran after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    eprintln!("{stderr}");
    eprintln!("{stdout}");
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the report is one JSON object ({e}): {stdout}"));

    let kills = u(&report, "/kills");
    let restarts = u(&report, "/restarts");
    assert!(kills >= 10, "at least 10 kills in 60 s: {kills}");
    assert_eq!(restarts, kills, "every kill restarted, nothing else did");
    for t in report["tiles"].as_array().unwrap() {
        assert_eq!(
            u(t, "/boots"),
            u(t, "/kills") + 1,
            "{}: a boot per kill and the first",
            t["tile"]
        );
    }
    let (sent, delivered) = (u(&report, "/sent"), u(&report, "/delivered"));
    assert!(
        sent > 0 && delivered > 0,
        "traffic flowed: {sent} {delivered}"
    );
    assert!(delivered <= sent);
    assert_eq!(u(&report, "/books/unexplained"), 0, "every frag explained");
    let missing = u(&report, "/books/missing");
    assert_eq!(missing, sent - delivered);
    assert!(
        u(&report, "/books/lost") + u(&report, "/books/dropped") >= missing,
        "what is missing is counted lost or dropped"
    );
    assert!(
        u(&report, "/books/counted_lost_but_delivered")
            <= u(&report, "/books/counted_lost_but_delivered_bound")
    );
    for l in report["lost"].as_array().unwrap() {
        if l["reliable"] == Value::Bool(true) {
            assert_eq!(u(l, "/frags"), 0, "a reliable link lost nothing: {l}");
        }
    }
    assert_eq!(
        report["resources"]["within_bound"],
        Value::Bool(true),
        "resources within {}",
        report["resources"]["bound"]
    );
    assert_eq!(
        u(&report, "/resources/start/allocations"),
        u(&report, "/resources/end/allocations")
    );
    assert!(u(&report, "/resources/end/tile_processes") == 4);
    assert_eq!(report["failures"], Value::Array(vec![]), "no failure");
    assert_eq!(report["ok"], Value::Bool(true), "{}", report["problems"]);
    assert!(status.success(), "a soak that is ok exits 0: {status}");
}
