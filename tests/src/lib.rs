//! Workspace-level integration tests for tilewire, and the helper programs
//! they run as peer processes (`src/bin/`).
//!
//! Helpers shared by the tests live here.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use tilewire_shmem::TempWorkspace;
use tilewire_tile::link::{Link, LinkParams, Reliability};

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

/// The payload frag `seq` carries in the cross-process link tests. Its
/// length (0..=`mtu`) and every byte derive from the seq alone, so the
/// producer and a consumer in another process agree on it without talking,
/// and a frag read at the wrong seq, torn or shifted shows as a mismatch.
pub fn link_payload(seq: u64, mtu: usize, buf: &mut Vec<u8>) {
    // splitmix64: neighbouring seqs get unrelated lengths and bytes.
    fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    let mut x = mix(seq);
    let len = (x % (mtu as u64 + 1)) as usize;
    buf.clear();
    while buf.len() < len {
        x = mix(x);
        let take = (len - buf.len()).min(8);
        buf.extend_from_slice(&x.to_le_bytes()[..take]);
    }
}

/// The number after `key=` in a `word key=value ...` line, if there is one.
pub fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// A child's stdout read line by line on a thread of its own, so the test
/// can wait for a line with a real time bound (a blocked `read_line` has
/// none) and keep publishing while the child talks, and the child never
/// blocks on a full pipe.
#[derive(Debug)]
pub struct ChildLines {
    rx: Receiver<String>,
    recent: VecDeque<String>,
}

impl ChildLines {
    /// Lines kept for the message of a failed wait.
    const RECENT: usize = 8;

    /// Starts reading `out`. The thread ends when the child closes its
    /// stdout (exits or is killed).
    pub fn new(out: ChildStdout) -> ChildLines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildLines {
            rx,
            recent: VecDeque::new(),
        }
    }

    fn keep(&mut self, line: &str) {
        if self.recent.len() == Self::RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_owned());
    }

    /// The next line if one has arrived, without waiting.
    ///
    /// # Panics
    /// If the child closed its stdout and every line was taken.
    pub fn try_next(&mut self) -> Option<String> {
        match self.rx.try_recv() {
            Ok(line) => {
                self.keep(&line);
                Some(line)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                panic!("child closed stdout; last lines: {:?}", self.recent)
            }
        }
    }

    /// Every line not taken yet, up to the child closing its stdout (for a
    /// child that exited or was killed: what it wrote before is still in
    /// the pipe).
    ///
    /// # Panics
    /// If the child keeps its stdout open longer than `timeout`.
    pub fn rest(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.keep(&line);
                    rest.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child still writing after {timeout:?}: {:?}", self.recent)
                }
                Err(RecvTimeoutError::Disconnected) => return rest,
            }
        }
    }

    /// Waits at most `timeout` for a line starting with `prefix`, skipping
    /// others, and returns it.
    ///
    /// # Panics
    /// If the time runs out or the child closes its stdout first; the
    /// message shows the child's last lines.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        self.wait_until(timeout, |l| l.starts_with(prefix))
    }

    /// Waits at most `timeout` for a line that satisfies `want`, skipping
    /// others, and returns it.
    ///
    /// # Panics
    /// As [`ChildLines::wait_for`].
    pub fn wait_until(&mut self, timeout: Duration, mut want: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.keep(&line);
                    if want(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out after {timeout:?}; last lines: {:?}", self.recent)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("child closed stdout; last lines: {:?}", self.recent)
                }
            }
        }
    }
}

/// A workspace of its own for one test, unlinked when dropped (also when
/// the test fails).
#[derive(Debug)]
pub struct TestWs {
    /// The workspace.
    pub ws: TempWorkspace,
}

impl TestWs {
    /// A fresh workspace of `size` bytes on normal pages, named from `tag`.
    ///
    /// # Panics
    /// If it cannot be made.
    pub fn new(tag: &str, size: usize) -> TestWs {
        TestWs {
            ws: TempWorkspace::new(tag, size).unwrap(),
        }
    }

    /// Makes link `name` with one consumer of the given reliability.
    ///
    /// # Panics
    /// If it cannot be made.
    pub fn link(&self, name: &str, depth: u64, mtu: usize, r: Reliability) -> Link<'_> {
        let p = LinkParams {
            depth,
            mtu,
            consumers: vec![r],
            seq0: 0,
        };
        Link::create(&self.ws, name, &p).unwrap()
    }
}

/// For the peer programs: prints one line on stdout and flushes it at once
/// (the parent test reads lines as they come). A parent that stopped
/// listening is no reason for a peer to stop working, so errors are ignored.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// For the peer programs: [`say`]s `line` and exits with `code`.
pub fn fail(code: i32, line: std::fmt::Arguments<'_>) -> ! {
    say(line);
    std::process::exit(code)
}
