//! tilewire's side: the pipeline as a topology, run by the library's
//! runner in threads mode.
//!
//! The topologies are made per cell with the library's
//! [`PipelineBuilder`]. Their layout (see
//! `tile`): on a machine with fewer cpus than the tiles,
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

use tilewire_pipeline::{LinkDef, Mode, PipelineBuilder, TileDef, Topology};

/// Frags per link. 512, not the demo's 4096: in memory at saturation
/// (one run each, this 2-core VM) p50 latency was 0.9-1.0 ms at 4096,
/// 0.16-0.31 ms at 1024 and 0.12-0.15 ms at 512, the rate within the
/// runs' noise: a deep ring only holds a longer queue, and its payloads
/// fall out of the caches before they are read.
const DEPTH: u64 = 512;

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
    /// As `Xdp`, and the `net-xdp` tile sends too: verify readdresses each
    /// frame from `src` (the pipeline's address, `src_mac` its
    /// interface's) to the collector at `dst_mac`, and the net tile sends
    /// it as it is. The receive link is unreliable (it closes the cycle
    /// net -> dedup -> verify -> net, which a stop breaks there).
    XdpBoth {
        ifname: &'a str,
        port: u16,
        src: &'a str,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
    },
}

/// `"02:00:c6:12:00:01"`.
fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// The UDP pipeline's topology: `bind --> net --raw--> dedup --uniq-->
/// verify --ok--> tx --> collector`, the receiving tile bound to `bind`
/// (`nets` of them, if more than one: `count`; over UDP sharing the port,
/// the kernel spreading flows over their sockets with SO_REUSEPORT; over
/// AF_XDP one per queue), the sending one to the same address, any port.
pub(super) fn udp_text(
    ws: &str,
    bind: &str,
    engine: &str,
    netns: Option<&str>,
    collector: &str,
    nets: u32,
    receive: Receive<'_>,
) -> String {
    let in_netns = |t: TileDef| match netns {
        Some(n) => t.param("netns", n),
        None => t,
    };
    let txbind = format!("{}:0", bind.split(':').next().unwrap_or("127.0.0.1"));
    let (net, raw) = match receive {
        Receive::Udp => (
            tile("net", "net-udp")
                .param("bind", bind)
                .param("engine", engine),
            LinkDef::new("raw", DEPTH),
        ),
        // The receive link's data region is the socket's UMEM: one
        // frame per frag.
        Receive::Xdp { ifname, port } | Receive::XdpBoth { ifname, port, .. } => (
            tile("net", "net-xdp")
                .param("ifname", ifname)
                .param("ports", vec![i64::from(port)])
                .param("attach", "drv")
                .param("bind", "copy"),
            LinkDef::new("raw", DEPTH).mtu(tilewire_pipeline::kinds::net_xdp::XDP_MTU),
        ),
    };
    let mut verify = tile("verify", "verify")
        .input("uniq")
        .output("ok")
        .param("dst", collector);
    let (net, raw) = match receive {
        Receive::XdpBoth {
            src,
            src_mac,
            dst_mac,
            ..
        } => {
            verify = verify
                .param("src", src)
                .param("src_mac", mac(src_mac))
                .param("dst_mac", mac(dst_mac));
            (net.input("ok"), raw.unreliable())
        }
        _ => (net, raw),
    };
    // More than one receiving tile: `count` of them (`net.0` ..).
    let net = if nets > 1 { net.count(nets) } else { net };
    let builder = PipelineBuilder::new(ws)
        .mode(Mode::Threads)
        .link(raw)
        .link(LinkDef::new("uniq", DEPTH))
        .link(LinkDef::new("ok", DEPTH))
        .tile(in_netns(net.output("raw")))
        .tile(tile("dedup", "dedup").input("raw").output("uniq"))
        .tile(verify);
    let builder = if matches!(receive, Receive::XdpBoth { .. }) {
        builder
    } else {
        builder.tile(in_netns(
            tile("tx", "net-udp")
                .input("ok")
                .param("bind", txbind)
                .param("engine", engine),
        ))
    };
    builder.text()
}

/// The in-memory pipeline's topology: `gen --raw--> dedup --uniq-->
/// verify --ok--> collect`, on one thread on a small machine, or
/// (`two_threads`) gen and dedup on one, verify and collect on another.
pub(super) fn memory_text(
    ws: &str,
    fixture: &str,
    rate: u64,
    burst: usize,
    two_threads: bool,
) -> String {
    let place = |name: &str, kind: &str| {
        if two_threads {
            placed(name, kind, "two")
        } else {
            mem_tile(name, kind)
        }
    };
    PipelineBuilder::new(ws)
        .mode(Mode::Threads)
        .link(LinkDef::new("raw", DEPTH))
        .link(LinkDef::new("uniq", DEPTH))
        .link(LinkDef::new("ok", DEPTH))
        .tile(
            place("gen", "gen")
                .output("raw")
                .param("fixture", fixture)
                .param("rate", rate as i64)
                .param("burst", burst as i64),
        )
        .tile(place("dedup", "dedup").input("raw").output("uniq"))
        .tile(place("verify", "verify").input("uniq").output("ok"))
        .tile(place("collect", "bench-collect").input("ok"))
        .text()
}

/// Tile `name` of kind `kind`, placed for this machine: with fewer cpus
/// than the four tiles, the
/// source and the collector need, two groups (receive and dedup on one
/// thread, verify and send or collect on the other: a thread a core, and
/// the fewest switches); else a thread each. `TILEWIRE_BENCH_LAYOUT`
/// chooses: `threads`, `two`, or `group` (every tile on one thread).
/// Measured on this 2-core VM (`--quick`, against the Agave-style
/// pipeline, rate at saturation / CPU per packet at 50 k pkt/s): threads
/// 0.93-0.95x / 0.81-0.87x; one group 0.59-0.62x / 0.27-0.39x; two
/// groups 0.85-1.01x / 0.32-0.37x.
fn tile(name: &str, kind: &str) -> TileDef {
    placed(name, kind, "two")
}

/// Tile `name` of kind `kind` in the in-memory pipeline on one thread:
/// no source or collector thread beside it, and on a machine with fewer
/// cpus than tiles, every tile on that thread (`tilewire-2t` runs the
/// two-thread layout beside it; the bench README has both).
fn mem_tile(name: &str, kind: &str) -> TileDef {
    placed(name, kind, "group")
}

/// A tile in the layout `TILEWIRE_BENCH_LAYOUT` asks for, or `small` on
/// a machine of fewer than 6 cpus, else a thread each.
fn placed(name: &str, kind: &str, small: &str) -> TileDef {
    let cpus = tilewire_pipeline::topo::Machine::this().cpus.len();
    let layout = std::env::var("TILEWIRE_BENCH_LAYOUT")
        .unwrap_or_else(|_| if cpus < 6 { small } else { "threads" }.into());
    let group = match layout.as_str() {
        "group" => Some("pipeline"),
        "two" if matches!(name, "net" | "gen" | "dedup") => Some("rx"),
        "two" => Some("tx"),
        _ => None,
    };
    let t = TileDef::new(name, kind);
    // `TILEWIRE_BENCH_IDLE=spin`: every thread spins while idle (the
    // threads own the cores), instead of backing off.
    let t = match std::env::var("TILEWIRE_BENCH_IDLE").as_deref() {
        Ok("spin") => t.idle(tilewire_pipeline::tile::stem::IdlePolicy::Spin),
        _ => t,
    };
    // `TILEWIRE_BENCH_PIN=1`: the two groups pinned, rx to cpu 0, tx to 1.
    let t = match (std::env::var("TILEWIRE_BENCH_PIN").as_deref(), group) {
        (Ok("1"), Some("rx")) => t.cpu(0),
        (Ok("1"), Some("tx")) => t.cpu(1),
        _ => t,
    };
    match group {
        Some(g) => t.group(g),
        None => t,
    }
}

/// How the tiles of `topo` run, for the output.
pub(super) fn layout(topo: &Topology) -> String {
    topo.layout_summary()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tilewire_pipeline::Registry;

    #[test]
    fn the_udp_topology_has_every_tile_its_count_and_its_namespace() {
        std::env::set_var("TILEWIRE_BENCH_LAYOUT", "two");
        let text = udp_text(
            "tw-bench-topo-test",
            "198.18.0.1:9000",
            "mmsg",
            Some("tw-ns-a"),
            "198.18.0.2:9001",
            2,
            Receive::Udp,
        );
        let topo = Registry::with_builtins().parse(&text).expect(&text);
        let names: Vec<&str> = topo.tiles.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["net.0", "net.1", "dedup", "verify", "tx"], "{text}");
        for t in &topo.tiles {
            let group = if t.name.starts_with("net") || t.name == "dedup" {
                "rx"
            } else {
                "tx"
            };
            assert_eq!(t.group.as_deref(), Some(group), "{}", t.name);
            let netns = matches!(t.kind(), "net-udp").then_some("tw-ns-a");
            assert_eq!(topo.netns(&t.name), netns, "{}", t.name);
        }
        let one = udp_text(
            "w",
            "127.0.0.1:9000",
            "auto",
            None,
            "127.0.0.1:9",
            1,
            Receive::Udp,
        );
        let topo = Registry::with_builtins().parse(&one).expect(&one);
        assert_eq!(topo.tiles[0].name, "net");
        assert_eq!(topo.netns("net"), None);
    }
}
