//! A pcap tile whose disk fills, as root (a 1 MiB tmpfs the test mounts
//! in a directory of its own and unmounts at the end, also when it
//! fails; otherwise each test says `skipped: needs CAP_SYS_ADMIN`):
//! gen -> `a` -> pcap and sink (two reliable readers of `a`), the capture
//! filling the tmpfs within a fraction of a second.
//!
//! - `on_error = "stop"`: the run ends with the pcap tile's failure, its
//!   message naming the file, `No space left on device` and the records
//!   kept; the other tiles halt in order and the sink got all gen sent;
//! - `on_error = "drop"` (the default): the run goes on (gen keeps
//!   sending, the sink keeps receiving), the pcap tile counts one write
//!   error and drops the rest; every packet it read is written or
//!   dropped.
//!
//! Either way the file is a valid capture (the `pcap-file` crate and
//! `tcpdump -r` read it to the end) of exactly the records the tile says
//! it wrote.

mod runner_support;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pcap_file::pcap::PcapReader;
use runner_support::{registry, ws_name};
use tilewire_pipeline::{Pipeline, RunOptions, TileFailure};

/// Both tests fill a disk with a pipeline of three tiles on two cores:
/// one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// UDP payload bytes of gen's frames; each frame is 42 bytes more.
const PAYLOAD: u64 = 1400;
const FRAME: u64 = PAYLOAD + 42;
/// Whole records in a full 1 MiB tmpfs: the writes fill it to its last
/// byte, 250 bytes into record 720, which the tile cuts off.
const WHOLE: u64 = ((1 << 20) - 24) / (16 + FRAME);

/// A tmpfs of `size` mounted on a directory of its own; dropping it
/// unmounts it and removes the directory.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (after saying `skipped: needs CAP_SYS_ADMIN` straight to
    /// stderr, the line CI counts) when not root.
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_SYS_ADMIN");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("tilewire-full-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fs = Tmpfs(dir);
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&fs.0)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs on {}: {}",
            fs.0.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(fs)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.0).status().is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn topology(ws: &str, path: &Path, on_error: &str) -> String {
    format!(
        "[workspace]\nname = \"{ws}\"\nsize = \"8MiB\"\n\n\
         [[link]]\nname = \"a\"\ndepth = 256\nmtu = 2048\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n\
         params = {{ size = {PAYLOAD}, rate = 20000, burst = 16 }}\n\n\
         [[tile]]\nname = \"cap\"\nkind = \"pcap\"\ninputs = [\"a\"]\n\
         params = {{ path = \"{}\"{on_error} }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"a\"]\n",
        path.display()
    )
}

/// The records of the capture at `path`, checked to be gen's frames to
/// the end of the file: a partial record at the end fails here.
fn records(path: &Path) -> u64 {
    let mut r = PcapReader::new(File::open(path).unwrap()).expect("a pcap global header");
    assert_eq!(r.header().snaplen, 65535);
    let mut n = 0;
    while let Some(p) = r.next_raw_packet() {
        let p = p.unwrap_or_else(|e| panic!("record {n} of {}: {e}", path.display()));
        assert_eq!((p.incl_len, p.orig_len), (FRAME as u32, FRAME as u32));
        assert_eq!(p.data.len() as u64, FRAME);
        n += 1;
    }
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, 24 + n * (16 + FRAME), "nothing after the last record");
    // tcpdump, where it is installed, reads it to the end too.
    if let Ok(out) = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(path)
        .output()
    {
        assert!(
            out.status.success(),
            "tcpdump -r: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
        assert_eq!(lines, n, "tcpdump reads every record");
    }
    n
}

/// Waits up to 20 s for `done`.
fn wait_for(what: &str, done: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_pcap_tile_whose_disk_fills_with_on_error_stop_ends_the_run_naming_the_file_and_enospc() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(fs) = Tmpfs::mount("stop", "1m") else {
        return;
    };
    let path = fs.0.join("cap.pcap");
    let text = topology(&ws_name("pcapstop"), &path, ", on_error = \"stop\"");
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let start = Instant::now();
    let e = p
        .run(&RunOptions::new().duration(Duration::from_secs(30)))
        .expect_err("the full disk ends the run");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "ended by the error, not the duration"
    );
    let [TileFailure::Panicked { tile, message }] = e.failures() else {
        panic!("one failure, the pcap tile's: {e}");
    };
    assert_eq!(tile, "cap");
    let file = path.display().to_string();
    assert!(
        message.contains(&format!("writing {file} failed: No space left on device")),
        "the message names the file and ENOSPC: {message}"
    );
    let kept: u64 = message
        .split(" whole records")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the message says how many records: {message}"));
    let n = records(&path);
    assert_eq!(n, kept, "the file holds the records the message says");
    assert_eq!(
        n, WHOLE,
        "the tmpfs filled to its last byte, less the cut record"
    );
    let report = e.report().expect("the run's report");
    for t in ["gen", "sink"] {
        assert!(report.tile(t).unwrap().halted, "{t} halted in order");
    }
    let sent = report.counter("gen", "sent").unwrap();
    assert!(sent > n, "gen ran past the capture: {sent}");
    assert_eq!(
        report.counter("sink", "frags"),
        Some(sent),
        "the sink got all gen sent"
    );
    eprintln!("on_error = stop: {n} records kept, gen sent {sent}; {message}");
}

#[test]
fn a_pcap_tile_whose_disk_fills_drops_and_counts_while_the_pipeline_runs_on() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(fs) = Tmpfs::mount("drop", "1m") else {
        return;
    };
    let path = fs.0.join("cap.pcap");
    // No on_error: "drop" is the default.
    let text = topology(&ws_name("pcapdrop"), &path, "");
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let running = p.start(&RunOptions::new()).unwrap();
    wait_for("the write error", &|| {
        p.counter("cap", "write_errors").unwrap_or(0) == 1
    });
    let (sent0, sink0) = (
        p.counter("gen", "sent").unwrap_or(0),
        p.counter("sink", "frags").unwrap_or(0),
    );
    let dropped0 = p.counter("cap", "dropped").unwrap_or(0);
    wait_for("gen, the sink and the dropping go on", &|| {
        p.counter("gen", "sent").unwrap_or(0) > sent0 + 2000
            && p.counter("sink", "frags").unwrap_or(0) > sink0 + 2000
            && p.counter("cap", "dropped").unwrap_or(0) > dropped0 + 2000
    });
    let report = running.stop().expect("a full capture disk is no failure");
    let c = |name| report.counter("cap", name).unwrap();
    let (written, dropped) = (c("written"), c("dropped"));
    assert_eq!(
        c("write_errors"),
        1,
        "one failed write: the capture stopped"
    );
    let sent = report.counter("gen", "sent").unwrap();
    let a = report.link("a").unwrap();
    assert_eq!(a.published, sent);
    for r in &a.consumers {
        assert_eq!(r.consumed, sent, "{} read all gen sent", r.tile);
    }
    assert_eq!(
        written + dropped,
        sent,
        "every packet the pcap tile read is written or dropped"
    );
    assert_eq!(report.counter("sink", "frags"), Some(sent));
    assert_eq!(c("bytes"), written * FRAME);
    assert_eq!(
        records(&path),
        written,
        "the file holds what the tile wrote"
    );
    assert_eq!(
        written, WHOLE,
        "the tmpfs filled to its last byte, less the cut record"
    );
    eprintln!("on_error = drop: {written} records written, {dropped} dropped, gen sent {sent}");
    drop(p);
    drop(fs);
}
