//! What the bench tests share: running `tilewire-bench` and reading its
//! `--json` lines.

use std::process::Command;

/// Runs `tilewire-bench` with `args` (which ask for `--json`), asserts it
/// succeeded, and returns every line of its output as JSON, with its
/// stderr for assertion messages.
pub(crate) fn run_json(args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tilewire-bench"))
        .args(args)
        .output()
        .expect("running tilewire-bench");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tilewire-bench {args:?}: {stderr}");
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    (rows, stderr)
}
