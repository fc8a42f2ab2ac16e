//! `tilewire run` (a pipeline from a topology file) and `tilewire tile`
//! (one tile of a running pipeline, in a process of its own).
//!
//! ```text
//! tilewire run TOPO.toml [--duration SECS] [--keep] [--quiet]
//! tilewire tile --workspace WS --name TILE [--parent PID]
//! ```
//!
//! `run` checks the whole topology first (nothing starts if any of it is
//! wrong; every error is printed with its line), makes the workspace, and
//! runs every tile, as threads of this process or as `tilewire tile`
//! processes, as the topology's `mode` says. It shows the monitor's table
//! each second, and ends on Ctrl-C (or SIGTERM) or after `--duration`:
//! every tile is asked to stop, leaves its links consistent and halts; the
//! final table is printed and the workspace removed (kept with `--keep`).
//!
//! `tile` runs one tile of the workspace `WS` (made by `run`, whose
//! topology it reads from the workspace) until the tile is asked to stop,
//! or, with `--parent`, until that process is gone. A tile started again
//! after a crash rejoins its links where its predecessor left them.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tilewire_monitor::{self as monitor, pid_alive, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_pipeline::pipeline::{self, PipelineError};
use tilewire_pipeline::topo::{Machine, Mode, Topology};
use tilewire_shmem::Workspace;
use tilewire_tile::stem::StemConfig;

/// How long stopping tiles get before they are killed (processes) or
/// reported (threads).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Sets a flag on Ctrl-C and SIGTERM, once per process.
pub fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed))
        .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    Ok(stop)
}

/// `tilewire run`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut path = None;
    let mut duration = None;
    let mut keep = false;
    let mut quiet = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--duration" => {
                let v = it.next().ok_or("--duration needs seconds")?;
                let s: f64 = v.parse().map_err(|e| format!("--duration {v:?}: {e}"))?;
                duration = Some(Duration::from_secs_f64(s));
            }
            "--keep" => keep = true,
            "--quiet" => quiet = true,
            _ if a.starts_with("--") => return Err(format!("unknown option {a:?}")),
            _ if path.is_none() => path = Some(a.clone()),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let path = path.ok_or("usage: tilewire run TOPO.toml [--duration SECS] [--keep]")?;
    let topo = Topology::load(Path::new(&path), &Machine::this()).map_err(|e| e.to_string())?;
    let stop = stop_flag()?;
    let ws = pipeline::create(&topo).map_err(|e| e.to_string())?;
    let name = ws.name().to_owned();
    eprintln!(
        "tilewire run: workspace {name} ({} tiles, {} links, {}); Ctrl-C stops",
        topo.tiles.len(),
        topo.links.len(),
        match topo.workspace.mode {
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        }
    );
    let until = duration.map(|d| Instant::now() + d);
    let result = match topo.workspace.mode {
        Mode::Threads => run_threads(&ws, &topo, &stop, until, quiet),
        Mode::Processes => run_processes(&ws, &topo, &stop, until, quiet),
    };
    if !keep {
        drop(ws);
        let _ = Workspace::unlink(&name);
    } else {
        eprintln!("tilewire run: workspace {name} kept (`tilewire shmem rm {name}` removes it)");
    }
    result
}

/// Prints the table every second until `stop`, the deadline, or `done`
/// says so; returns why it ended.
fn watch(
    ws: &Workspace,
    stop: &AtomicBool,
    until: Option<Instant>,
    quiet: bool,
    mut done: impl FnMut() -> Option<String>,
) -> Option<String> {
    let mut prev = Snapshot::take(ws);
    let mut next = Instant::now() + Duration::from_secs(1);
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return None;
        }
        if let Some(why) = done() {
            return Some(why);
        }
        if Instant::now() >= next {
            let cur = Snapshot::take(ws);
            if !quiet {
                println!("{}", table(&cur, Some(&prev)));
            }
            prev = cur;
            next += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_threads(
    ws: &Workspace,
    topo: &Topology,
    stop: &AtomicBool,
    until: Option<Instant>,
    quiet: bool,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<(String, Result<(), PipelineError>)>();
    let mut failures = Vec::new();
    let mut spawned = 0;
    std::thread::scope(|s| {
        for t in &topo.tiles {
            let tx = tx.clone();
            let name = t.name.clone();
            let spawned_now =
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(s, move || {
                        let r = pipeline::run_tile(ws, topo, &name, StemConfig::default());
                        let _ = tx.send((name, r.map(|_| ())));
                    });
            match spawned_now {
                Ok(_) => spawned += 1,
                Err(e) => failures.push(format!("tile {:?}: cannot start a thread: {e}", t.name)),
            }
        }
        drop(tx);
        let mut ended = 0;
        if failures.is_empty() {
            let why = watch(ws, stop, until, quiet, || match rx.try_recv() {
                Ok((name, r)) => {
                    ended += 1;
                    Some(match r {
                        Ok(()) => format!("tile {name} halted"),
                        Err(e) => {
                            failures.push(e.to_string());
                            e.to_string()
                        }
                    })
                }
                Err(_) => None,
            });
            if let Some(why) = why {
                eprintln!("tilewire run: stopping: {why}");
            }
        }
        pipeline::stop_all(ws, topo);
        // Tiles that had not made their metrics yet when asked to stop
        // may still be starting: ask again until every thread ended.
        let deadline = Instant::now() + STOP_WAIT;
        while ended < spawned {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((_, r)) => {
                    ended += 1;
                    if let Err(e) = r {
                        failures.push(e.to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    pipeline::stop_all(ws, topo);
                    if Instant::now() > deadline {
                        failures.push("tiles did not stop in time".into());
                        std::process::exit(1);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    finish(ws, failures)
}

fn run_processes(
    ws: &Workspace,
    topo: &Topology,
    stop: &AtomicBool,
    until: Option<Instant>,
    quiet: bool,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut children: Vec<(String, Child)> = Vec::new();
    let mut failures = Vec::new();
    for t in &topo.tiles {
        match Command::new(&exe)
            .args(["tile", "--workspace", ws.name(), "--name", &t.name])
            .args(["--parent", &std::process::id().to_string()])
            .spawn()
        {
            Ok(c) => children.push((t.name.clone(), c)),
            Err(e) => failures.push(format!("tile {:?}: cannot start: {e}", t.name)),
        }
    }
    if failures.is_empty() {
        eprintln!(
            "tilewire run: tiles {}",
            children
                .iter()
                .map(|(n, c)| format!("{n}={}", c.id()))
                .collect::<Vec<_>>()
                .join(" ")
        );
        // A tile process that ends is reported, not restarted: the others
        // go on (`tilewire tile` starts it again by hand).
        let mut reported = vec![false; children.len()];
        watch(ws, stop, until, quiet, || {
            for (i, (name, c)) in children.iter_mut().enumerate() {
                if let (false, Ok(Some(status))) = (reported[i], c.try_wait()) {
                    reported[i] = true;
                    eprintln!(
                        "tilewire run: tile {name} (pid {}) exited: {status}",
                        c.id()
                    );
                }
            }
            None
        });
    }
    pipeline::stop_all(ws, topo);
    let deadline = Instant::now() + STOP_WAIT;
    for (name, c) in &mut children {
        loop {
            match c.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() && status.code() != Some(0) {
                        failures.push(format!("tile {name} exited: {status}"));
                    }
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    pipeline::stop_all(ws, topo);
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    failures.push(format!("tile {name} did not stop in time; killed"));
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
    finish(ws, failures)
}

/// The monitor's table of `cur`, with rates since `prev`.
fn table(cur: &Snapshot, prev: Option<&Snapshot>) -> String {
    let rates = prev.map(|p| Rates::between(p, cur));
    let report = Report::new(cur, rates.as_ref(), HEARTBEAT_TIMEOUT, pid_alive);
    monitor::render::table(&report)
}

fn finish(ws: &Workspace, failures: Vec<String>) -> Result<(), String> {
    let last = Snapshot::take(ws);
    println!("{}", table(&last, None));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// `tilewire tile`.
pub fn tile(args: &[String]) -> Result<(), String> {
    let (mut ws_name, mut name, mut parent) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--workspace" => ws_name = Some(val()?),
            "--name" => name = Some(val()?),
            "--parent" => {
                let v = val()?;
                parent = Some(
                    v.parse::<u32>()
                        .map_err(|e| format!("--parent {v:?}: {e}"))?,
                );
            }
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let usage = "usage: tilewire tile --workspace WS --name TILE [--parent PID]";
    let (ws_name, name) = (ws_name.ok_or(usage)?, name.ok_or(usage)?);
    let ws = pipeline::join(&ws_name).map_err(|e| e.to_string())?;
    let topo = pipeline::stored_topology(&ws).map_err(|e| e.to_string())?;
    let stop = stop_flag()?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Ctrl-C, SIGTERM or the parent's end ask the tile to stop, the
        // same way a monitor or the runner would.
        let watcher = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let parent_gone = parent.is_some_and(|p| !pid_alive(p));
                // Asked again every turn until the tile ended: a request
                // made while it was still starting (its metrics not made
                // yet, or reset by its boot) would otherwise be lost.
                if stop.load(Ordering::Relaxed) || parent_gone {
                    if let Some(m) = pipeline::tile_metrics(&ws, &name) {
                        m.request_stop();
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = pipeline::run_tile(&ws, &topo, &name, StemConfig::default());
        done.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        r.map(|_| ()).map_err(|e| e.to_string())
    })
}
