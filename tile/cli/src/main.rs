//! `tilewire`: the command line of the project.
//!
//! ```text
//! tilewire demo [--duration S] [--rate PPS] [--mix CLASSES] [--udp]
//!                                          the pipeline on fixture traffic over its own veth pair
//! tilewire run TOPO.toml [--duration S] [--keep] [--quiet]
//!                                          a pipeline from a topology file
//! tilewire tile --workspace WS --name TILE [--parent PID]
//!                                          one tile of a running pipeline, in this process
//! tilewire monitor WS [--once] [--json] [--interval-ms N] [--prometheus ADDR]
//!                                          a live read-only view of a workspace
//! tilewire shmem ls|info|rm ...            list, inspect and remove workspaces
//! tilewire bench link [--json] [--quick]   link throughput and latency vs rtrb and crossbeam
//! tilewire bench udp [--json] [--quick]    UDP TX/RX rate and RTT: aio engines vs quinn-udp
//! tilewire bench xdp [--json] [--quick]    AF_XDP RX/TX rate over veth vs xsk-rs and sendmmsg
//! ```
#![forbid(unsafe_code)]

mod bench_link;
mod bench_udp;
mod bench_xdp;
mod demo;
mod monitor_cmd;
mod run_cmd;
mod shmem_cmd;

fn usage() -> ! {
    eprintln!(
        "usage:\n  \
         tilewire demo [--duration S] [--rate PPS] [--mix CLASSES] [--udp]\n  \
         tilewire run TOPO.toml [--duration S] [--keep] [--quiet]\n  \
         tilewire tile --workspace WS --name TILE [--parent PID]\n  \
         tilewire monitor WS [--once] [--json] [--interval-ms N] [--prometheus 127.0.0.1:PORT]\n  \
         tilewire shmem ls [--json] | info WS [--json] | rm WS... [--force]\n  \
         tilewire bench link|udp|xdp [--json] [--quick]"
    );
    std::process::exit(2);
}

fn main() {
    let registry = tilewire_pipeline::Registry::with_builtins();
    // In a tile process of `tilewire run` (processes mode) this runs the
    // tile and exits.
    tilewire_pipeline::tile_main(&registry);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    match (
        args.first().map(String::as_str),
        args.get(1).map(String::as_str),
    ) {
        (Some("bench"), Some("link")) => {
            let opts = bench_link::Opts {
                json: flag("--json"),
                quick: flag("--quick"),
            };
            if let Err(e) = bench_link::run(&opts) {
                eprintln!("tilewire bench link: {e}");
                std::process::exit(1);
            }
        }
        (Some("bench"), Some("udp")) => {
            let opts = bench_udp::Opts {
                json: flag("--json"),
                quick: flag("--quick"),
            };
            if let Err(e) = bench_udp::run(&opts) {
                eprintln!("tilewire bench udp: {e}");
                std::process::exit(1);
            }
        }
        (Some("bench"), Some("xdp")) => {
            let opts = bench_xdp::Opts {
                json: flag("--json"),
                quick: flag("--quick"),
            };
            if let Err(e) = bench_xdp::run(&opts) {
                eprintln!("tilewire bench xdp: {e}");
                std::process::exit(1);
            }
        }
        (Some("demo"), _) => {
            if let Err(e) = demo::run(&args[1..]) {
                eprintln!("tilewire demo: {e}");
                std::process::exit(1);
            }
        }
        (Some("run"), _) => {
            if let Err(e) = run_cmd::run(&registry, &args[1..]) {
                eprintln!("tilewire run: {e}");
                std::process::exit(1);
            }
        }
        (Some("tile"), _) => {
            if let Err(e) = run_cmd::tile(&registry, &args[1..]) {
                eprintln!("tilewire tile: {e}");
                std::process::exit(1);
            }
        }
        (Some("monitor"), _) => {
            if let Err(e) = monitor_cmd::run(&args[1..]) {
                eprintln!("tilewire monitor: {e}");
                std::process::exit(1);
            }
        }
        (Some("shmem"), _) => {
            if let Err(e) = shmem_cmd::run(&args[1..]) {
                eprintln!("tilewire shmem: {e}");
                std::process::exit(1);
            }
        }
        _ => usage(),
    }
}
