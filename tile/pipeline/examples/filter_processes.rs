//! The same pipeline as `filter_threads`, every tile a process of its own,
//! all started from this example's own binary:
//!
//! ```text
//! cargo run -p tilewire-pipeline --example filter_processes
//! ```
//!
//! The runner starts this binary once per tile, with `TILEWIRE_TILE` in
//! its environment; `tile_main`, called first thing in `main`, sees it,
//! runs that one tile (joining the workspace by name and reading the
//! topology stored there, against the same registry) and exits. The tiles
//! meet only in the workspace, yet the stop still drains: passed + dropped
//! = sent, and the sink got every one passed.

#[path = "common/account.rs"]
mod account;
#[path = "common/min_len.rs"]
mod min_len;

use std::process::ExitCode;
use std::time::Duration;

use tilewire_pipeline::{Pipeline, Registry, RunOptions};

const TOPOLOGY: &str = r#"
[workspace]
name = "example-filter-processes"
mode = "processes"

[[link]]
name = "raw"
depth = 1024

[[link]]
name = "long"
depth = 1024

[[tile]]
name = "gen"
kind = "gen"
outputs = ["raw"]
params = { fixture = "builtin:mix", rate = 200000, burst = 32 }

[[tile]]
name = "filter"
kind = "min-len"
inputs = ["raw"]
outputs = ["long"]
params = { min_len = 200 }

[[tile]]
name = "sink"
kind = "sink"
inputs = ["long"]
"#;

fn registry() -> Registry {
    Registry::with_builtins()
        .with(min_len::MinLenKind)
        .expect("min-len is not a built-in name")
}

fn main() -> ExitCode {
    // In a tile process: run the tile, then exit. Anywhere else: return.
    tilewire_pipeline::tile_main(&registry());
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filter_processes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let topo = registry().parse(TOPOLOGY)?;
    let pipeline = Pipeline::create(topo)?;
    pipeline.run(&RunOptions::new().duration(Duration::from_secs(2)))?;

    println!("3 tile processes: {}", account::account(&pipeline)?);
    println!("every packet is accounted for");
    Ok(())
}
