//! The CLI on a workspace something else wrote: `tilewire monitor` ends
//! with an error naming a workspace truncated under it (no SIGBUS), and
//! `tilewire shmem ls` names corrupt allocation table entries.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tilewire_shmem::workspace::HEADER_SZ;
use tilewire_shmem::{Config, CreateOptions, PageKind, Workspace};

/// A private workspace directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("tilewire-cli-corrupt-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn create(&self, name: &str) -> Workspace {
        let opts = CreateOptions {
            config: Config {
                shm_dir: self.0.clone(),
                huge_dir: self.0.join("huge"),
                gigantic_dir: self.0.join("gigantic"),
            },
            table_cap: 64,
        };
        Workspace::create_with(name, 4 << 20, PageKind::Normal, &opts).unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tilewire"));
        c.args(args).env("TILEWIRE_SHM_DIR", &self.0);
        c
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tilewire_monitor_ends_with_an_error_naming_a_workspace_truncated_under_it() {
    let dir = Dir::new("trunc");
    let name = format!("tw-trunc-{}", std::process::id());
    let ws = dir.create(&name);
    ws.alloc_named("x.tm", 64, 8192, 0).unwrap();
    let mut child = dir
        .command(&["monitor", &name, "--json", "--interval-ms", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the monitor runs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(ws.path())
        .unwrap()
        .set_len(4096)
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the monitor went on after its workspace was truncated");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        None,
        "not killed by a signal: {status} {err}"
    );
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&format!("workspace {name:?}")) && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn shmem_ls_names_allocation_entries_outside_the_data_region() {
    let dir = Dir::new("table");
    let name = format!("tw-table-{}", std::process::id());
    let ws = dir.create(&name);
    ws.alloc_named("victim", 64, 4096, 0).unwrap();
    // The only entry is entry 0: its gaddr word, 8 bytes in.
    ws.whole()
        .atomic_u64(HEADER_SZ + 8)
        .unwrap()
        .store(ws.size() as u64 * 2, Ordering::Relaxed);
    let out = dir.command(&["shmem", "ls"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{name}: CORRUPT: allocation table entry \"victim\""
        )) && text.contains("outside the data region"),
        "{text}"
    );
    let json = dir.command(&["shmem", "ls", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let corrupt = v[0]["corrupt"].as_array().expect("a corrupt list");
    assert_eq!(corrupt.len(), 1);
}
