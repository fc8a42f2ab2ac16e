//! A pipeline made in Rust, without a topology file:
//!
//! ```text
//! cargo run -p tilewire-pipeline --example builder
//! ```
//!
//! `PipelineBuilder` names the links and tiles (the workspace is sized to
//! fit and removed when the pipeline is dropped). gen sends exactly three
//! passes over the built-in traffic mix; the example waits until gen is
//! done and stops the pipeline, and checks that `min-len` passed exactly
//! the packets of the mix that are long enough, three times over.

#[path = "common/min_len.rs"]
mod min_len;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tilewire_pipeline::aio::fixture::mix;
use tilewire_pipeline::{LinkDef, PipelineBuilder, Registry, RunOptions, TileDef};

const MIN_LEN: usize = 200;
const PASSES: u64 = 3;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("builder: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = mix();
    let frames = fixture.iter().count() as u64;
    let long = fixture.iter().filter(|f| f.bytes.len() >= MIN_LEN).count() as u64;

    let registry = Registry::with_builtins().with(min_len::MinLenKind)?;
    let pipeline = PipelineBuilder::new("example-builder")
        .link(LinkDef::new("raw", 512))
        .link(LinkDef::new("long", 512))
        .tile(
            TileDef::new("gen", "gen")
                .output("raw")
                .param("fixture", "builtin:mix")
                .param("count", (PASSES * frames) as i64),
        )
        .tile(
            TileDef::new("filter", "min-len")
                .input("raw")
                .output("long")
                .param("min_len", MIN_LEN as i64),
        )
        .tile(TileDef::new("sink", "sink").input("long"))
        .build(&registry)?;

    let running = pipeline.start(&RunOptions::new())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pipeline.counter("gen", "done") != Some(1) {
        if Instant::now() > deadline {
            return Err("gen did not finish in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    running.stop()?;

    let count = |tile: &str, name: &str| pipeline.counter(tile, name).unwrap_or(0);
    let passed = count("filter", "passed");
    let sunk = count("sink", "frags");
    println!(
        "gen sent {} ({PASSES} passes of {frames} frames); min-len passed {passed} \
         (expected {}); the sink got {sunk}",
        count("gen", "sent"),
        PASSES * long
    );
    if passed != PASSES * long || sunk != passed {
        return Err("the counts are not exact".into());
    }
    println!("exact");
    Ok(())
}
