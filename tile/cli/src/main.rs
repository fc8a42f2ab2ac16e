#![doc = include_str!("../README.md")]
//!
//! `tilewire`: the command line of the project, one user of the library.
//! `tilewire --help` and `tilewire <command> --help` print the usage; the
//! text below is the same, from the same definitions.
#![forbid(unsafe_code)]

mod demo;
mod monitor_cmd;
mod run_cmd;
mod shmem_cmd;
mod soak;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The packet I/O tile of a validator pipeline: AF_XDP and io_uring UDP
/// net tiles, links in shared memory, pipelines from a topology.
#[derive(Debug, Parser)]
#[command(name = "tilewire", version, propagate_version = true)]
struct Cli {
    /// What to log on stderr: error, warn, info, debug, trace, or a
    /// RUST_LOG-style filter (default: RUST_LOG, else warn)
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The pipeline on fixture traffic over its own veth pair (loopback UDP
    /// without root)
    Demo(demo::Args),
    /// A pipeline from a topology file
    Run(run_cmd::RunArgs),
    /// One tile of a running pipeline, in this process
    Tile(run_cmd::TileArgs),
    /// A live read-only view of a workspace
    Monitor(monitor_cmd::Args),
    /// A pipeline of processes under load, a tile killed every few
    /// seconds and restarted; then every frag accounted for
    Soak(soak::Args),
    /// List, inspect and remove workspaces
    Shmem {
        #[command(subcommand)]
        command: shmem_cmd::Command,
    },
    /// Moved: the benchmarks are the `tilewire-bench` binary
    #[command(hide = true, disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

/// What `tilewire bench ...` says: where the benchmarks went.
const BENCH_MOVED: &str = "the benchmarks are the `tilewire-bench` binary now: \
cargo run --release -p tilewire-bench -- <link|udp|xdp|pipeline|fanout|tcache|loop> [--json] [--quick]";

/// Logs to stderr: the runner's tile lifecycle (start, drain, end, failure)
/// with each tile's name, filtered by `level` or `RUST_LOG`.
fn logs(level: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let mut registry = tilewire_pipeline::Registry::with_builtins();
    // The soak's kinds, for its tile processes (this binary again, with
    // the same arguments) as much as for its runner.
    if let Err(e) = soak::register(&mut registry) {
        eprintln!("tilewire: {e}");
        return ExitCode::FAILURE;
    }
    // In a tile process of `tilewire run` or `tilewire soak` (processes
    // mode) this runs the tile and exits.
    tilewire_pipeline::tile_main(&registry);
    let cli = Cli::parse();
    if let Err(e) = logs(cli.log_level.as_deref()) {
        eprintln!("tilewire: {e}");
        return ExitCode::from(2);
    }
    let (what, result) = match cli.command {
        Command::Demo(a) => ("demo", demo::run(a)),
        Command::Run(a) => ("run", run_cmd::run(&registry, a)),
        Command::Tile(a) => ("tile", run_cmd::tile(&registry, a)),
        Command::Monitor(a) => ("monitor", monitor_cmd::run(a)),
        Command::Soak(a) => ("soak", soak::run(&registry, a)),
        Command::Shmem { command } => ("shmem", shmem_cmd::run(command)),
        Command::Bench { args } => {
            let which = args.first().map_or("", String::as_str);
            eprintln!("tilewire bench {which}: {BENCH_MOVED}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tilewire {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
