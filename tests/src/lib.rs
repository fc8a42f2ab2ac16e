//! Workspace-level integration tests for tilewire, and the helper programs
//! they run as peer processes (`src/bin/`).
//!
//! Helpers shared by the tests live here.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A per-run unique name for workspaces and other test objects.
pub fn uniq(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{}-{}", std::process::id(), n, tag)
}

/// Reads lines from a child's stdout until one starts with `prefix`, for at
/// most `timeout`. Returns that line.
///
/// # Panics
/// If the child closes stdout or the time runs out first.
pub fn wait_for_line(out: &mut BufReader<ChildStdout>, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut line = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {prefix:?}"
        );
        line.clear();
        let n = out.read_line(&mut line).expect("read child stdout");
        assert!(n > 0, "child closed stdout before printing {prefix:?}");
        if line.starts_with(prefix) {
            return line.trim_end().to_owned();
        }
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, also when the
/// test fails.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True if this process is root (has the capabilities the privileged tests
/// need). When not, prints the line CI looks for, so a privileged test that
/// did not run can never pass unnoticed there.
pub fn privileged(test: &str, cap: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    // Straight to the stderr stream, past the test harness's capture, so
    // the line shows in every log and `.ci/test` can count it.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: needs {cap} ({test})");
    false
}
