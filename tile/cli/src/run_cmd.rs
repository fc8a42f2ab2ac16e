//! `tilewire run` (a pipeline from a topology file) and `tilewire tile`
//! (one tile of a running pipeline, in a process of its own).
//!
//! (The flags: see `--help`, made from the same definitions as the
//! parser.)
//!
//! Both are the library's runner ([`tilewire_pipeline::Pipeline`]) with the
//! built-in kinds: `run` checks the whole topology first (nothing starts if
//! any of it is wrong; every error is printed with its line), makes the
//! workspace and runs every tile, as threads of this process or as tile
//! processes (this binary again), as the topology's `mode` says. It shows
//! the monitor's table each second, and ends on Ctrl-C (or SIGTERM), after
//! `--duration`, or when a tile ends by itself: the tiles stop in order,
//! each draining its inputs once its upstream halted; the final table is
//! printed and the workspace removed (kept with `--keep`).
//!
//! `tile` runs one tile of the workspace `WS` (made by `run`, whose
//! topology it reads from the workspace) until the tile is asked to stop,
//! or, with `--parent`, until that process is gone. A tile started again
//! after a crash rejoins its links where its predecessor left them.

use std::path::PathBuf;
use std::time::Duration;

use tilewire_monitor::{self as monitor, pid_alive, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_pipeline::topo::Machine;
use tilewire_pipeline::Mode;
use tilewire_pipeline::{run_tile_process, Pipeline, Registry, RunOptions, StopFlag};
use tilewire_tile::stem::{MemberEnd, StemConfig};

/// `tilewire run`: a pipeline from a topology file.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The topology file (TOML; see the rustdoc of tilewire_pipeline::topo)
    topology: PathBuf,
    /// Stop after this many seconds (default: on Ctrl-C or SIGTERM)
    #[arg(long, value_name = "SECS", value_parser = seconds, allow_negative_numbers = true)]
    duration: Option<Duration>,
    /// Keep the workspace after the run (`tilewire shmem rm` removes it)
    #[arg(long)]
    keep: bool,
    /// Print only the final table, not one each second
    #[arg(long)]
    quiet: bool,
}

/// Seconds, as a positive number below a day.
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{v} is not in (0, 86400] seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `tilewire run`.
pub(crate) fn run(registry: &Registry, args: RunArgs) -> Result<(), String> {
    let RunArgs {
        topology: path,
        duration,
        keep,
        quiet,
    } = args;
    let mut topo = registry.load(&path).map_err(|e| e.to_string())?;
    let fitted = topo.fit_to_machine(&Machine::this());
    eprintln!(
        "tilewire run: {}{}",
        topo.layout_summary(),
        if fitted {
            " (the topology names no cpu or group: laid out for this machine)"
        } else {
            ""
        }
    );
    let stop = StopFlag::on_signals().map_err(|e| e.to_string())?;
    let (tiles, links, mode) = (topo.tiles.len(), topo.links.len(), topo.workspace.mode);
    let mut pipeline = Pipeline::create(topo).map_err(|e| e.to_string())?;
    pipeline.keep_workspace(keep);
    let name = pipeline.workspace().name().to_owned();
    eprintln!(
        "tilewire run: workspace {name} ({tiles} tiles, {links} links, {}); Ctrl-C stops",
        match mode {
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        }
    );
    let mut opts = RunOptions::new().stop_on(stop);
    opts.duration = duration;
    let result = watch(&pipeline, &opts, quiet);
    println!("{}", table(&Snapshot::take(pipeline.workspace()), None));
    if keep {
        eprintln!("tilewire run: workspace {name} kept (`tilewire shmem rm {name}` removes it)");
    }
    result
}

/// Starts the tiles, shows the table each second until a stop, the
/// duration or the tiles' end ([`Running::wait`](tilewire_pipeline::Running::wait)),
/// then stops them in order.
fn watch(pipeline: &Pipeline, opts: &RunOptions, quiet: bool) -> Result<(), String> {
    let mut running = pipeline.start(opts).map_err(|e| e.to_string())?;
    let pids = running.pids();
    if !pids.is_empty() {
        let list: Vec<String> = pids.iter().map(|(n, p)| format!("{n}={p}")).collect();
        eprintln!("tilewire run: tiles {}", list.join(" "));
    }
    let mut prev = Snapshot::take(pipeline.workspace());
    running.wait(opts, |ws| {
        let cur = Snapshot::take(ws);
        if !quiet {
            println!("{}", table(&cur, Some(&prev)));
        }
        prev = cur;
    });
    let report = running.stop().map_err(|e| e.to_string())?;
    // A restart recovered, so the run succeeded; say each one all the same.
    for r in &report.restarts {
        eprintln!(
            "tilewire run: tile {} restarted after {:.1}s ({})",
            r.tile,
            r.after.as_secs_f64(),
            r.cause
        );
    }
    Ok(())
}

/// The monitor's table of `cur`, with rates since `prev`.
fn table(cur: &Snapshot, prev: Option<&Snapshot>) -> String {
    let rates = prev.map(|p| Rates::between(p, cur));
    let report = Report::new(cur, rates.as_ref(), HEARTBEAT_TIMEOUT, pid_alive);
    monitor::render::table(&report)
}

/// `tilewire tile`: one tile of a running pipeline, in this process.
#[derive(Debug, clap::Args)]
pub(crate) struct TileArgs {
    /// The pipeline's workspace
    #[arg(long, value_name = "WS")]
    workspace: String,
    /// The tile, as the topology names it, or a group of tiles (they run
    /// on this process's one thread)
    #[arg(long, value_name = "TILE")]
    name: String,
    /// Stop when this process is gone
    #[arg(long, value_name = "PID")]
    parent: Option<u32>,
}

/// `tilewire tile`.
pub(crate) fn tile(registry: &Registry, args: TileArgs) -> Result<(), String> {
    let TileArgs {
        workspace: ws_name,
        name,
        parent,
    } = args;
    let ends = run_tile_process(&ws_name, &name, parent, registry, StemConfig::default())
        .map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for (tile, end) in ends {
        match end {
            MemberEnd::Halted(end) if end.pending > 0 => problems.push(format!(
                "tile {tile} stopped holding {} packets it could not pass on",
                end.pending
            )),
            MemberEnd::Halted(_) => {}
            MemberEnd::Panicked(m) => problems.push(format!("tile {tile} panicked: {m}")),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(())
}
