//! tilewire's side: the pipeline as a topology, run by the library's
//! runner in threads mode.
//!
//! The topologies are small TOML texts kept here, filled in per cell,
//! so that a layout key (a tile's `cpu`, `idle`, or the `group` of tiles
//! sharing one thread once the runner has groups) is one line to add.
//! Their layout is this 2-core machine's best that the runner offers
//! today: no tile pinned, every tile backing off when idle (spin, yield,
//! then sleep on its input link; a net tile, which has a socket to
//! watch, naps), so the kernel puts the busy tiles where the cores are
//! free. Pinning each tile to a core of its own is not possible with
//! three or four tiles, a source and a collector on two cores.
//!
//! Over UDP one `net-udp` tile receives and sends on one socket, as a
//! net tile does: `net -> dedup -> verify -> net`, verify readdressing
//! each packet to the collector. The receive link is unreliable (the
//! cycle needs one, and the net tile must never wait for dedup): frags
//! dedup could not keep up with are overrun and counted. In memory:
//! `gen -> dedup -> verify -> bench-collect`, every link reliable, so
//! the slowest tile sets the pace and nothing is lost.

use tilewire_pipeline::Topology;

/// Frags per link: the demo's depth.
const DEPTH: u32 = 4096;

const UDP_TOPOLOGY: &str = r#"
# tilewire bench pipeline, over UDP: {bind} --> net --rx--> dedup --uniq--> verify --tx--> net --> {collector}
[workspace]
name = "{ws}"
mode = "threads"

[[link]]
name = "rx"
depth = {depth}
reliable = false

[[link]]
name = "uniq"
depth = {depth}

[[link]]
name = "tx"
depth = {depth}

[[tile]]
name = "net"
kind = "net-udp"
inputs = ["tx"]
outputs = ["rx"]
[tile.params]
bind = "{bind}"
engine = "{engine}"
{netns}

[[tile]]
name = "dedup"
kind = "dedup"
inputs = ["rx"]
outputs = ["uniq"]

[[tile]]
name = "verify"
kind = "verify"
inputs = ["uniq"]
outputs = ["tx"]
params = { dst = "{collector}" }
"#;

const MEMORY_TOPOLOGY: &str = r#"
# tilewire bench pipeline, in memory: gen --raw--> dedup --uniq--> verify --ok--> collect
[workspace]
name = "{ws}"
mode = "threads"

[[link]]
name = "raw"
depth = {depth}

[[link]]
name = "uniq"
depth = {depth}

[[link]]
name = "ok"
depth = {depth}

[[tile]]
name = "gen"
kind = "gen"
outputs = ["raw"]
params = { fixture = "{fixture}", rate = {rate}, burst = {burst} }

[[tile]]
name = "dedup"
kind = "dedup"
inputs = ["raw"]
outputs = ["uniq"]

[[tile]]
name = "verify"
kind = "verify"
inputs = ["uniq"]
outputs = ["ok"]

[[tile]]
name = "collect"
kind = "bench-collect"
inputs = ["ok"]
"#;

/// A workspace name no other cell or process uses.
pub(super) fn ws_name(cell: usize) -> String {
    format!("bench-pipe-{}-{cell}", std::process::id())
}

/// The UDP pipeline's topology text.
pub(super) fn udp_text(
    ws: &str,
    bind: &str,
    engine: &str,
    netns: Option<&str>,
    collector: &str,
) -> String {
    let netns = netns.map_or(String::new(), |n| format!("netns = \"{n}\""));
    UDP_TOPOLOGY
        .replace("{ws}", ws)
        .replace("{depth}", &DEPTH.to_string())
        .replace("{bind}", bind)
        .replace("{engine}", engine)
        .replace("{netns}", &netns)
        .replace("{collector}", collector)
}

/// The in-memory pipeline's topology text.
pub(super) fn memory_text(ws: &str, fixture: &str, rate: u64, burst: usize) -> String {
    MEMORY_TOPOLOGY
        .replace("{ws}", ws)
        .replace("{depth}", &DEPTH.to_string())
        .replace("{fixture}", fixture)
        .replace("{rate}", &rate.to_string())
        .replace("{burst}", &burst.to_string())
}

/// How the tiles of `topo` run, for the output.
pub(super) fn layout(topo: &Topology) -> String {
    crate::demo::layout(topo)
}
