//! A tile kind of your own between tilewire's gen and sink, from a
//! topology, every tile a thread of this process:
//!
//! ```text
//! cargo run -p tilewire-pipeline --example filter_threads
//! ```
//!
//! gen plays the built-in traffic mix as fast as it can; `min-len` (see
//! `common/min_len.rs`) passes the packets of at least 200 bytes; the sink
//! counts them. After a second the pipeline stops in order (gen first,
//! then each tile once it drained its input), so every packet gen sent is
//! accounted for: passed + dropped = sent, and the sink got every one
//! passed.

#[path = "common/account.rs"]
mod account;
#[path = "common/min_len.rs"]
mod min_len;

use std::process::ExitCode;
use std::time::Duration;

use tilewire_pipeline::{Pipeline, Registry, RunOptions};

const TOPOLOGY: &str = r#"
[workspace]
name = "example-filter-threads"

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
params = { fixture = "builtin:mix", burst = 16 }

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

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filter_threads: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::with_builtins().with(min_len::MinLenKind)?;
    let topo = registry.parse(TOPOLOGY)?;
    let pipeline = Pipeline::create(topo)?;
    pipeline.run(&RunOptions::new().duration(Duration::from_secs(1)))?;

    println!("{}", account::account(&pipeline)?);
    println!("every packet is accounted for");
    Ok(())
}
