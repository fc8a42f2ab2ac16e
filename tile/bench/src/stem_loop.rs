//! `tilewire-bench loop`: what the tile run loop itself costs a frag.
//!
//! The pipelines of `tilewire-bench loop` do as little as a pipeline can:
//! `gen` publishes small synthetic frames as fast as credits allow, and
//! `sink` counts them (and folds them into its checksum); in the second
//! pipeline a `forward` tile sits between them, passing each frag on
//! (by chunk: no payload byte copied). Every tile runs in one group, on
//! one thread, taking turns, so what the thread spends is what the loop,
//! the links and these two or three small tiles cost, with no second core
//! and no cache line crossing cores.
//!
//! Figures: frags a second through the sink, and the thread's CPU time
//! per frag (the process's CPU less nothing else: the bench's own thread
//! sleeps while the window runs), the best of several rounds. Compare a
//! build with another (before and after a change of the loop) in one
//! sitting; the absolute figures move with the machine's mood.

use std::time::{Duration, Instant};

use tilewire_pipeline::tile::stem::IdlePolicy;
use tilewire_pipeline::{LinkDef, Mode, PipelineBuilder, Registry, RunOptions, TileDef};

use crate::harness::cpu::{process_cpu_ns, read_tiles, tiles_per_pkt, TileCost};
use crate::harness::{print_json, round, BenchArgs};

/// Frags per link.
const DEPTH: u64 = 1024;

/// One measured pipeline.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    bench: &'static str,
    #[serde(rename = "impl")]
    imp: String,
    payload: usize,
    frags_per_sec: f64,
    ns_per_frag: f64,
    /// Each tile's share of it: its work per frag and busy share.
    tiles: Vec<TileCost>,
}

/// The pipelines: with or without a forwarding tile in the middle.
const SHAPES: [(&str, bool); 2] = [("gen -> sink", false), ("gen -> forward -> sink", true)];

/// Runs the benchmark and prints it.
///
/// # Errors
/// A pipeline that could not be made or run, or whose sink counted no
/// frag in a window.
pub(crate) fn run(args: &BenchArgs) -> Result<(), String> {
    let (window, rounds) = if args.quick {
        (Duration::from_millis(300), 2)
    } else {
        (Duration::from_secs(1), 5)
    };
    let mut rows = Vec::new();
    for payload in [64usize, 1024] {
        for (name, forward) in SHAPES {
            let mut best: Option<(f64, f64, Vec<TileCost>)> = None;
            for r in 0..rounds {
                let (rate, ns, tiles) = measure(forward, payload, window, r)?;
                if best.as_ref().is_none_or(|(b, _, _)| rate > *b) {
                    best = Some((rate, ns, tiles));
                }
            }
            let (rate, ns, tiles) = best.expect("at least one round");
            rows.push(Row {
                bench: "loop",
                imp: name.into(),
                payload,
                frags_per_sec: round(rate, 0),
                ns_per_frag: round(ns, 1),
                tiles,
            });
        }
    }
    if args.json {
        rows.iter().for_each(print_json);
        return Ok(());
    }
    println!(
        "tilewire-bench loop: the run loop's own cost, every tile in one group on one thread \
         (not pinned), synthetic frames, links of {DEPTH}; best of {rounds} windows of {} ms",
        window.as_millis()
    );
    println!();
    println!(
        "{:<24} {:>8} {:>12} {:>10}  each tile: work per frag, busy share of the window",
        "pipeline", "payload", "frags/s", "ns/frag"
    );
    for r in &rows {
        let tiles: Vec<String> = r.tiles.iter().map(TileCost::short).collect();
        println!(
            "{:<24} {:>6} B {:>10.2} M {:>10.1}  {}",
            r.imp,
            r.payload,
            r.frags_per_sec / 1e6,
            r.ns_per_frag,
            tiles.join(", ")
        );
    }
    println!();
    println!(
        "ns/frag is the thread's CPU time per frag; a tile's work is the time its loop spent \
         on iterations that did something, so the tiles' sum is a little less (polls that \
         found nothing, the turns' own switching)"
    );
    Ok(())
}

/// One window of one pipeline: frags a second through the sink, the
/// process's CPU ns per frag, and each tile's share.
fn measure(
    forward: bool,
    payload: usize,
    window: Duration,
    round: usize,
) -> Result<(f64, f64, Vec<TileCost>), String> {
    let registry = Registry::with_builtins();
    let ws = format!("bench-loop-{}-{round}", std::process::id());
    let one = |t: TileDef| t.group("all").idle(IdlePolicy::Backoff);
    let gen = one(TileDef::new("gen", "gen"))
        .output("a")
        .param("size", payload as i64)
        .param("burst", 64);
    let mut b = PipelineBuilder::new(&ws)
        .mode(Mode::Threads)
        .link(LinkDef::new("a", DEPTH))
        .tile(gen);
    b = if forward {
        b.link(LinkDef::new("b", DEPTH))
            .tile(
                one(TileDef::new("forward", "forward"))
                    .input("a")
                    .output("b"),
            )
            .tile(one(TileDef::new("sink", "sink")).input("b"))
    } else {
        b.tile(one(TileDef::new("sink", "sink")).input("a"))
    };
    let pipeline = b.build(&registry).map_err(|e| e.to_string())?;
    let running = pipeline
        .start(&RunOptions::new())
        .map_err(|e| e.to_string())?;
    let frags = || pipeline.counter("sink", "frags").unwrap_or(0);
    // Warm up: the first frags through, the caches filled. (The sink
    // writes its counters at housekeeping, a few microseconds stale at
    // either end of the window.)
    std::thread::sleep(Duration::from_millis(100));
    let (f0, c0, w0, t0) = (
        frags(),
        process_cpu_ns(),
        read_tiles(&pipeline),
        Instant::now(),
    );
    std::thread::sleep(window);
    let (f1, c1, w1, t1) = (
        frags(),
        process_cpu_ns(),
        read_tiles(&pipeline),
        Instant::now(),
    );
    running.stop().map_err(|e| e.to_string())?;
    let n = f1.saturating_sub(f0);
    if n == 0 {
        return Err("the sink counted no frag in the window".into());
    }
    let elapsed = t1.duration_since(t0);
    let tiles = tiles_per_pkt(&w0, &w1, n, elapsed.as_nanos() as u64);
    Ok((
        n as f64 / elapsed.as_secs_f64(),
        (c1 - c0) as f64 / n as f64,
        tiles,
    ))
}
