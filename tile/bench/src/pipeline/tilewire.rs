//! tilewire's side: the pipeline as a topology, run by the library's
//! runner in threads mode.
//!
//! The topologies are small TOML texts kept here, filled in per cell.
//! Their layout (see `fit`): on a machine with fewer cpus than the tiles,
//! the source and the collector need, two groups of two tiles, each
//! taking turns on one thread. Before groups, the best the runner offered was:
//! no tile pinned, every tile backing off when idle (spin, yield,
//! then sleep on its input link; a net tile, which has a socket to
//! watch, naps), so the kernel puts the busy tiles where the cores are
//! free. Pinning each tile to a core of its own is not possible with
//! four tiles, a source and a collector on two cores.
//!
//! Over UDP: `net -> dedup -> verify -> tx`, a `net-udp` tile receiving
//! on the pipeline's socket and another sending from a socket of its
//! own, verify readdressing each packet to the collector; every link
//! reliable, so a pipeline that falls behind stops reading and the
//! kernel drops at the socket (counted there) before any work is spent
//! on the packet. The demo's layout, one net tile receiving and sending
//! on one socket, makes a cycle that needs an unreliable receive link:
//! at saturation its net tile kept reading at the source's pace and
//! dedup, on the same two cores, was overrun for 60-80% of what it read
//! (this bench, on this machine), losing the work done on them. In
//! memory: `gen -> dedup -> verify -> collect`, every link reliable, so
//! the slowest tile sets the pace and nothing is lost.
//!
//! Pinning was tried (all four UDP tiles on the second cpu; net and
//! dedup on one, verify and tx on the other; in memory gen and dedup on
//! one, verify and collect on the other): none beat the unpinned layout
//! beyond this shared machine's run-to-run noise.

use tilewire_pipeline::Topology;

/// Frags per link: the demo's depth.
const DEPTH: u32 = 4096;

const UDP_TOPOLOGY: &str = r#"
# tilewire bench pipeline, over UDP: {bind} --> net --raw--> dedup --uniq--> verify --ok--> tx --> {collector}
[workspace]
name = "{ws}"
mode = "threads"

[[link]]
name = "raw"
depth = {depth}
{raw_mtu}

[[link]]
name = "uniq"
depth = {depth}

[[link]]
name = "ok"
depth = {depth}

[[tile]]
name = "net"
{net}

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
params = { dst = "{collector}" }

[[tile]]
name = "tx"
kind = "net-udp"
inputs = ["ok"]
[tile.params]
bind = "{txbind}"
engine = "{engine}"
{netns}
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

/// How the UDP pipeline receives.
#[derive(Debug, Clone, Copy)]
pub(super) enum Receive<'a> {
    /// A `net-udp` tile bound to the pipeline's address.
    Udp,
    /// A `net-xdp` tile on queue 0 of `ifname` (DRV, copy mode), its
    /// program steering UDP port `port` to it; the sending tile stays
    /// `net-udp`.
    Xdp { ifname: &'a str, port: u16 },
}

/// The receiving tile's kind and params (after its name).
const NET_UDP: &str = r#"kind = "net-udp"
outputs = ["raw"]
[tile.params]
bind = "{bind}"
engine = "{engine}"
{netns}"#;

const NET_XDP: &str = r#"kind = "net-xdp"
outputs = ["raw"]
[tile.params]
ifname = "{ifname}"
ports = [{port}]
attach = "drv"
bind = "copy"
{netns}"#;

/// The UDP pipeline's topology text: the receiving tile bound to
/// `bind` (`nets` of them, if more than one: `count`; over UDP sharing the
/// port, the kernel spreading flows over their sockets with SO_REUSEPORT;
/// over AF_XDP one per queue), the sending one to the same address, any
/// port.
pub(super) fn udp_text(
    ws: &str,
    bind: &str,
    engine: &str,
    netns: Option<&str>,
    collector: &str,
    nets: u32,
    receive: Receive<'_>,
) -> String {
    let netns = netns.map_or(String::new(), |n| format!("netns = \"{n}\""));
    let txbind = format!("{}:0", bind.split(':').next().unwrap_or("127.0.0.1"));
    let (net, raw_mtu) = match receive {
        Receive::Udp => (NET_UDP.to_string(), String::new()),
        // The receive link's data region is the socket's UMEM: one
        // frame per frag.
        Receive::Xdp { ifname, port } => (
            NET_XDP
                .replace("{ifname}", ifname)
                .replace("{port}", &port.to_string()),
            format!("mtu = {}", tilewire_pipeline::kinds::net_xdp::XDP_MTU),
        ),
    };
    let text = UDP_TOPOLOGY
        .replace("{net}", &net)
        .replace("{raw_mtu}", &raw_mtu)
        .replace("{txbind}", &txbind)
        .replace("{ws}", ws)
        .replace("{depth}", &DEPTH.to_string())
        .replace("{bind}", bind)
        .replace("{engine}", engine)
        .replace("{netns}", &netns)
        .replace("{collector}", collector);
    let text = match nets {
        1 => text,
        n => text.replacen(
            "name = \"net\"\n",
            &format!("name = \"net\"\ncount = {n}\n"),
            1,
        ),
    };
    fit(text)
}

/// The in-memory pipeline's topology text.
pub(super) fn memory_text(ws: &str, fixture: &str, rate: u64, burst: usize) -> String {
    fit(MEMORY_TOPOLOGY
        .replace("{ws}", ws)
        .replace("{depth}", &DEPTH.to_string())
        .replace("{fixture}", fixture)
        .replace("{rate}", &rate.to_string())
        .replace("{burst}", &burst.to_string()))
}

/// The layout for this machine: with fewer cpus than the four tiles, the
/// source and the collector need, two groups (receive and dedup on one
/// thread, verify and send or collect on the other: a thread a core, and
/// the fewest switches); else a thread each. `TILEWIRE_BENCH_LAYOUT`
/// chooses: `threads`, `two`, or `group` (every tile on one thread).
/// Measured on this 2-core VM (`--quick`, against the Agave-style
/// pipeline, rate at saturation / CPU per packet at 50 k pkt/s): threads
/// 0.93-0.95x / 0.81-0.87x; one group 0.59-0.62x / 0.27-0.39x; two
/// groups 0.85-1.01x / 0.32-0.37x.
fn fit(text: String) -> String {
    let cpus = tilewire_pipeline::topo::Machine::this().cpus.len();
    let layout = std::env::var("TILEWIRE_BENCH_LAYOUT")
        .unwrap_or_else(|_| if cpus < 6 { "two" } else { "threads" }.into());
    let group_of = |tile: &str| match layout.as_str() {
        "group" => Some("pipeline"),
        "two" if matches!(tile, "net" | "gen" | "dedup") => Some("rx"),
        "two" => Some("tx"),
        _ => None,
    };
    ["net", "gen", "dedup", "verify", "tx", "collect"]
        .iter()
        .fold(text, |t, name| match group_of(name) {
            Some(g) => t.replacen(
                &format!("name = \"{name}\"\n"),
                &format!("name = \"{name}\"\ngroup = \"{g}\"\n"),
                1,
            ),
            None => t,
        })
}

/// How the tiles of `topo` run, for the output.
pub(super) fn layout(topo: &Topology) -> String {
    crate::harness::layout::pipeline_layout(topo)
}
