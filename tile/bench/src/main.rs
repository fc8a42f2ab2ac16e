#![doc = include_str!("../README.md")]
//!
//! `tilewire-bench`: every benchmark of the project, tilewire and its
//! peers side by side in one run. `tilewire-bench --help` and
//! `tilewire-bench <bench> --help` print the usage.
// The Agave-style peer of `pipeline` calls recvmmsg/sendmmsg through libc
// as Agave does: that one module allows unsafe code.
#![deny(unsafe_code)]

mod fanout;
mod harness;
mod link;
mod pipeline;
mod stem_loop;
mod tcache;
mod udp;
mod xdp;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::BenchArgs;

/// The benchmarks: tilewire and its peers side by side in one run.
#[derive(Debug, Parser)]
#[command(name = "tilewire-bench", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    which: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Link throughput and latency against rtrb and crossbeam
    Link(BenchArgs),
    /// UDP TX/RX rate and RTT: the aio engines against quinn-udp
    Udp(BenchArgs),
    /// AF_XDP RX/TX rate over veth against xsk-rs and sendmmsg
    Xdp(BenchArgs),
    /// The whole path (receive, dedup, verify, send) against an
    /// Agave-style pipeline, in memory, on loopback and over veth
    Pipeline(pipeline::Args),
    /// Turbine-style fan-out over veth: one shred to 200 destinations by
    /// sendmmsg, an agave-xdp-style sender and retransmit -> net-xdp (root)
    Fanout(fanout::Args),
    /// The dedup tag cache against HashSet + VecDeque (std and hashbrown)
    Tcache(BenchArgs),
    /// The run loop's own cost per frag: gen -> (forward ->) sink on one thread
    Loop(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (what, result) = match cli.which {
        Bench::Link(a) => ("link", link::run(&a)),
        Bench::Udp(a) => ("udp", udp::run(&a)),
        Bench::Xdp(a) => ("xdp", xdp::run(&a)),
        Bench::Pipeline(a) => ("pipeline", pipeline::run(&a)),
        Bench::Fanout(a) => ("fanout", fanout::run(&a)),
        Bench::Tcache(a) => ("tcache", tcache::run(&a)),
        Bench::Loop(a) => ("loop", stem_loop::run(&a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tilewire-bench {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
