//! The topology as the runner uses it: the footprint proven by building
//! everything in a workspace of exactly that size, the example topologies,
//! the defaults, and the questions the runner asks (consumers, data
//! regions).

mod topo_support;

use tilewire_pipeline::kinds::dedup::DedupParams;
use tilewire_pipeline::kinds::generator::{GenFixture, GenParams};
use tilewire_pipeline::kinds::net_xdp::NetXdpParams;
use tilewire_pipeline::kinds::pcap::PcapParams;
use tilewire_pipeline::topo::{Machine, TopoErrors, TopologySpec, TOPOLOGY_TEXT_MAX};
use tilewire_pipeline::{Mode, Registry, Topology};
use tilewire_shmem::hist::Hist;
use tilewire_shmem::workspace::DEFAULT_TABLE_CAP;
use tilewire_shmem::{Config, CreateOptions, PageKind, Workspace};
use tilewire_tile::link::Link;
use tilewire_tile::stem::metrics::TileMetrics;
use tilewire_tile::stem::{latency_name, metrics_name};
use tilewire_tile::tcache::Tcache;
use tilewire_xdp::bpf::AttachMode;
use tilewire_xdp::BindMode;
use topo_support::{assert_problem, examples, gen_sink, load, machine, parse_ok, TempDir, WS};

// ---- 8. sizes --------------------------------------------------------------

#[test]
fn a_workspace_too_small_is_refused_at_its_size_line() {
    let text = gen_sink("")
        .replace("size = \"64MiB\"", "size = \"1MiB\"")
        .replace("depth = 64", "depth = 4096\nmtu = 9000");
    // The footprint does not depend on the size the workspace is given.
    let topo = parse_ok(&text.replace("size = \"1MiB\"\n", ""));
    let need = topo.footprint();
    assert!(need > 1 << 20);
    assert_problem(
        &text,
        3,
        &[
            &format!("needs {need} bytes ("),
            "workspace size is 1048576 (1.0 MiB)",
        ],
    );
}

#[test]
fn sizes_take_units_and_default_to_the_footprint() {
    let size_of = |s: &str| {
        let t =
            TopologySpec::parse(&gen_sink("").replace("\"64MiB\"", s)).map(|t| t.workspace.size);
        t.map_err(|e| e.to_string())
    };
    assert_eq!(size_of("\"1 GiB\""), Ok(1 << 30));
    assert_eq!(size_of("\"8KiB\""), Ok(8 << 10));
    assert_eq!(size_of("5000"), Ok(8192), "rounded up to a page");
    assert!(size_of("\"12MB\"")
        .unwrap_err()
        .contains("line 3: workspace: `size` must be a byte count"));
    assert!(size_of("-1").unwrap_err().contains("line 3"));
    let auto = parse_ok(&gen_sink("").replace("size = \"64MiB\"\n", ""));
    assert_eq!(auto.workspace.size, auto.footprint().next_multiple_of(4096));
}

/// Makes everything the runner makes for `topo` in `ws`, in the runner's
/// order: the topology text, each link, then each tile's metrics, latency
/// histograms and tag cache.
fn build_all(ws: &Workspace, topo: &Topology) -> Result<(), String> {
    let text = topo.text();
    ws.alloc_named("topology", 64, TOPOLOGY_TEXT_MAX.max(text.len()), 0)
        .map_err(|e| format!("topology text: {e}"))?;
    for link in &topo.links {
        Link::create_with_data(
            ws,
            &link.name,
            &topo.link_params(link),
            topo.data_mtus(link),
        )
        .map_err(|e| format!("link {}: {e}", link.name))?;
    }
    for tile in &topo.tiles {
        let alloc = |name: String, align, size| {
            ws.alloc_named(&name, align, size, 0)
                .map(|_| ())
                .map_err(|e| format!("{name}: {e}"))
        };
        alloc(
            metrics_name(&tile.name),
            TileMetrics::ALIGN,
            TileMetrics::footprint(),
        )?;
        for i in 0..tile.inputs.len() {
            alloc(latency_name(&tile.name, i), Hist::ALIGN, Hist::footprint())?;
        }
        if let Some(p) = topo.params::<DedupParams>(&tile.name) {
            let map = Tcache::default_map_cnt(p.depth).unwrap();
            let fp = Tcache::footprint(p.depth, map).unwrap();
            alloc(format!("{}.tc", tile.name), Tcache::ALIGN, fp)?;
        }
    }
    Ok(())
}

#[test]
fn the_footprint_is_enough_for_every_example() {
    let dir = TempDir::new("fp");
    let opts = CreateOptions {
        config: Config {
            shm_dir: dir.0.clone(),
            ..Config::default()
        },
        table_cap: DEFAULT_TABLE_CAP,
    };
    for (path, topo) in examples() {
        let need = topo.footprint();
        let name = format!("tw-topo-{}-{}", std::process::id(), topo.workspace.name);
        let ws = Workspace::create_with(&name, need, PageKind::Normal, &opts).unwrap();
        let built = build_all(&ws, &topo);
        drop(ws);
        Workspace::unlink_with(&name, &opts.config).unwrap();
        built.unwrap_or_else(|e| panic!("{}: a workspace of {need} bytes: {e}", path.display()));

        // A workspace 10% smaller is refused by check, at `size`.
        let mut spec = TopologySpec::parse(topo.text()).unwrap();
        spec.workspace.size = need - need / 10;
        let e = Registry::with_builtins()
            .bind(spec, &Machine::with_cpus(2))
            .unwrap_err();
        assert!(
            e.errors()
                .iter()
                .any(|e| e.reason.contains(&format!("needs {need} bytes"))),
            "{}: {e}",
            path.display()
        );
    }
}

#[test]
fn the_footprint_counts_what_a_full_build_uses() {
    // A build in a workspace a quarter of the footprint fails: the
    // footprint is not padding a tiny need.
    let dir = TempDir::new("fp-small");
    let config = Config {
        shm_dir: dir.0.clone(),
        ..Config::default()
    };
    let opts = CreateOptions {
        config: config.clone(),
        table_cap: DEFAULT_TABLE_CAP,
    };
    let (_, topo) = examples()
        .into_iter()
        .find(|(p, _)| p.ends_with("xdp_echo.toml"))
        .unwrap();
    let name = format!("tw-topo-{}-small", std::process::id());
    let ws = Workspace::create_with(&name, topo.footprint() / 4, PageKind::Normal, &opts).unwrap();
    let built = build_all(&ws, &topo);
    drop(ws);
    Workspace::unlink_with(&name, &config).unwrap();
    assert!(built.is_err());
}

// ---- queries and examples --------------------------------------------------

#[test]
fn the_examples_parse_and_check() {
    let all = examples();
    let names: Vec<&str> = all.iter().map(|(_, t)| t.workspace.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tw-gen-dedup-pcap",
            "tw-gen-forward-sink",
            "tw-retransmit",
            "tw-xdp-echo"
        ]
    );
    let (_, pcap) = &all[0];
    assert_eq!(pcap.workspace.mode, Mode::Processes);
    let g = pcap.params::<GenParams>("gen").expect("gen params");
    assert_eq!(g.fixture, Some(GenFixture::BuiltinMix));
    assert_eq!((g.count, g.rate, g.burst), (10000, 100000, 32));
    let (_, xdp) = &all[3];
    let n = xdp.params::<NetXdpParams>("net").expect("netxdp params");
    assert_eq!(n.ports, [9001, 9002, 9003, 9004]);
    assert_eq!(n.netns.as_deref(), Some("tw-demo"));
    assert_eq!((n.bind, n.attach), (BindMode::Copy, AttachMode::Skb));
    let (_, rt) = &all[2];
    let r = rt
        .params::<tilewire_pipeline::kinds::retransmit::RetransmitParams>("retransmit")
        .expect("retransmit params");
    assert_eq!(
        (r.resolver.as_str(), r.set, r.destinations[0].len()),
        ("netlink", Some(0), 3)
    );
    assert_eq!(
        r.input,
        tilewire_pipeline::kinds::retransmit::Input::UdpFrame
    );
}

#[test]
fn defaults_are_as_documented() {
    let text = "[workspace]\nname = \"t\"\n
[[link]]
name = \"rx\"
depth = 64

[[link]]
name = \"u\"
depth = 64

[[tile]]
name = \"net\"
kind = \"net-xdp\"
outputs = [\"rx\"]
params = { ifname = \"veth0\", ports = [1] }

[[tile]]
name = \"d\"
kind = \"dedup\"
inputs = [\"rx\"]
outputs = [\"u\"]

[[tile]]
name = \"g\"
kind = \"gen\"
outputs = [\"x\"]

[[tile]]
name = \"p\"
kind = \"pcap\"
inputs = [\"u\"]
params = { path = \"out.pcap\" }

[[link]]
name = \"x\"
depth = 64

[[tile]]
name = \"s\"
kind = \"sink\"
inputs = [\"x\"]
";
    let t = parse_ok(text);
    assert_eq!(t.workspace.pages, PageKind::Normal);
    assert_eq!(t.workspace.mode, Mode::Threads);
    let rx = t.link("rx").unwrap();
    assert_eq!((rx.mtu, rx.reliable, rx.line), (2048, true, 4));
    let n = t.params::<NetXdpParams>("net").expect("netxdp params");
    assert_eq!(
        (
            n.queue,
            n.bind,
            n.attach,
            n.budget,
            n.busy_poll,
            n.dst_addr,
            n.netns.clone()
        ),
        (0, BindMode::Auto, AttachMode::Skb, 64, false, None, None)
    );
    assert_eq!((n.rx_size, n.fill_size, n.tx_size), (2048, 2048, 2048));
    let d = t.params::<DedupParams>("d").expect("dedup params");
    assert_eq!(d.depth, 65536);
    let g = t.params::<GenParams>("g").expect("gen params");
    assert_eq!(
        (
            g.fixture.clone(),
            g.payload_size(),
            g.rate,
            g.count,
            g.burst
        ),
        (None, 64, 0, 0, 1)
    );
    assert_eq!((g.src, g.dst), (None, None));
    let p = t.params::<PcapParams>("p").expect("pcap params");
    assert_eq!(p.snaplen, 65535);
    assert_eq!(t.tile("p").unwrap().kind(), "pcap");
}

#[test]
fn consumers_are_numbered_in_file_order() {
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 64
reliable = false

[[link]]
name = \"b\"
depth = 64

[[tile]]
name = \"g\"
kind = \"gen\"
outputs = [\"a\"]

[[tile]]
name = \"g2\"
kind = \"gen\"
outputs = [\"b\"]

[[tile]]
name = \"s1\"
kind = \"sink\"
inputs = [\"b\", \"a\"]

[[tile]]
name = \"s2\"
kind = \"sink\"
inputs = [\"a\"]
"
    );
    let t = parse_ok(&text);
    let a: Vec<(&str, usize)> = t
        .consumers("a")
        .iter()
        .map(|(t, i)| (t.name.as_str(), *i))
        .collect();
    assert_eq!(a, [("s1", 1), ("s2", 0)]);
    assert_eq!(
        t.consumer_index("s1", 0),
        Some(0),
        "s1 is b's only consumer"
    );
    assert_eq!(t.consumer_index("s1", 1), Some(0));
    assert_eq!(t.consumer_index("s2", 0), Some(1));
    assert_eq!(t.consumer_index("s2", 1), None);
    assert_eq!(t.consumer_index("nope", 0), None);
    assert_eq!(t.producer("a").unwrap().name, "g");
    let p = t.link_params(t.link("a").unwrap());
    assert_eq!(
        p.consumers,
        vec![tilewire_tile::link::Reliability::Unreliable; 2]
    );
    assert_eq!((p.depth, p.mtu), (64, 2048));
}

#[test]
fn data_mtus_of_a_net_xdp_output_hold_the_whole_umem() {
    let (_, xdp) = examples().pop().unwrap();
    assert_eq!(xdp.data_mtus(xdp.link("rx").unwrap()), 4096 + 2048 + 2048);
    assert_eq!(xdp.data_mtus(xdp.link("tx").unwrap()), 1024 + 1);
}

#[test]
fn errors_name_the_file_when_loaded_from_one() {
    let dir = TempDir::new("load");
    let path = dir.0.join("bad.toml");
    std::fs::write(&path, gen_sink("cpu = 9\n")).unwrap();
    let e: TopoErrors = load(&path, &machine()).unwrap_err();
    assert_eq!(e.file(), Some(path.as_path()));
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: line 18: tile \"sink\": cpu 9",
            path.display()
        )),
        "{shown}"
    );
    let missing = Registry::with_builtins()
        .load(dir.0.join("none.toml"))
        .unwrap_err();
    assert!(
        missing.to_string().contains("cannot read the topology"),
        "{missing}"
    );
}

#[test]
fn this_machine_has_cpus() {
    let m = Machine::this();
    assert!(!m.cpus.is_empty());
    assert!(m.cpus.windows(2).all(|w| w[0] < w[1]), "{:?}", m.cpus);
}

#[test]
fn two_net_xdp_tiles_on_one_queue_are_refused_at_the_second_queue() {
    let net = |name: &str, out: &str, queue: u32| {
        format!(
            "[[tile]]\nname = \"{name}\"\nkind = \"net-xdp\"\noutputs = [\"{out}\"]\n\
             params = {{ ifname = \"eth1\", queue = {queue}, ports = [9001] }}\n\n\
             [[tile]]\nname = \"sink_{name}\"\nkind = \"sink\"\ninputs = [\"{out}\"]\n\n"
        )
    };
    let links = "[[link]]\nname = \"a\"\ndepth = 64\n\n[[link]]\nname = \"b\"\ndepth = 64\n\n";
    // Line 13 is net0's header, 28 net1's params.
    let text = format!(
        "{WS}\n{links}{}{}",
        net("net0", "a", 1),
        net("net1", "b", 1)
    );
    assert_problem(
        &text,
        28,
        &["`queue` 1 of eth1 is taken by tile \"net0\" (line 13): one AF_XDP socket per queue"],
    );
    let text = format!(
        "{WS}\n{links}{}{}",
        net("net0", "a", 0),
        net("net1", "b", 1)
    );
    let found = topo_support::problems(&text);
    assert!(
        found.iter().all(|(_, r)| !r.contains("is taken by")),
        "queues 0 and 1 are fine: {found:?}"
    );
}

/// A net-xdp `[[tile]]` on `ifname` (line 5 is its header, line 8 the
/// first of `extra`'s tile keys, then outputs and the params, with
/// `params` added), feeding a sink.
fn net_xdp_per_queue(ifname: &str, extra: &str, params: &str) -> String {
    format!(
        "{WS}\n[[tile]]\nname = \"net\"\nkind = \"net-xdp\"\n{extra}outputs = [\"rx\"]\n\
         params = {{ ifname = \"{ifname}\", ports = [9001]{params} }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"rx\"]\n\n\
         [[link]]\nname = \"rx\"\ndepth = 64\n"
    )
}

#[test]
fn queues_n_makes_a_net_xdp_tile_per_queue_from_queue_up() {
    let topo = parse_ok(&net_xdp_per_queue("eth1", "", ", queue = 1, queues = 2"));
    let nets: Vec<(&str, u32)> = topo
        .tiles
        .iter()
        .filter_map(|t| {
            let p = topo.params::<NetXdpParams>(&t.name)?;
            Some((t.name.as_str(), p.queue + t.share.map_or(0, |s| s.index)))
        })
        .collect();
    assert_eq!(nets, [("net.0", 1), ("net.1", 2)]);
    assert_eq!(topo.tiles.iter().filter(|t| t.name == "sink").count(), 1);
    let sink = topo.tiles.iter().find(|t| t.name == "sink").unwrap();
    assert_eq!(sink.inputs, ["rx.0", "rx.1"], "the sink reads both");
    // A number stays as written.
    assert!(topo.text().contains("queues = 2 }"));
}

#[test]
fn queues_and_count_together_are_refused_and_queues_out_of_range_too() {
    let both = net_xdp_per_queue("eth1", "count = 2\n", ", queues = 2");
    assert_problem(
        &both,
        8,
        &["give `count` or its params' `queues`, not both"],
    );
    for bad in ["0", "65", "\"some\""] {
        let text = net_xdp_per_queue("eth1", "", &format!(", queues = {bad}"));
        assert_problem(
            &text,
            9,
            &["must be \"all\" or a number of queues, 1 to 64, found"],
        );
    }
}

#[test]
fn queues_all_on_a_missing_interface_says_what_it_ran() {
    let text = net_xdp_per_queue("tw-noif0", "", ", queues = \"all\"");
    assert_problem(
        &text,
        9,
        &[
            "`queues = \"all\"` needs the receive queues of tw-noif0",
            "ip -d link show dev tw-noif0",
            "`queues = N`",
        ],
    );
}

#[test]
fn queues_all_reads_the_interface_and_the_stored_text_has_the_number() {
    // Loopback is in every namespace, with one receive queue.
    let text = net_xdp_per_queue("lo", "", ", queues = \"all\"");
    let topo = parse_ok(&text);
    let names: Vec<&str> = topo.tiles.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["net", "sink"],
        "one queue: one tile, named as written"
    );
    assert!(
        topo.text().contains("ports = [9001], queues = 1 }"),
        "{}",
        topo.text()
    );
    // From queue 1 up, lo has none: the fix is named.
    let text = net_xdp_per_queue("lo", "", ", queue = 1, queues = \"all\"");
    assert_problem(
        &text,
        9,
        &[
            "lo has 1 receive queue, so `queue = 1` leaves none",
            "ethtool -L lo combined 2",
        ],
    );
}
