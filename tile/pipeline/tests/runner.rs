//! The runner in threads mode: kinds of a user's own registered beside the
//! built-ins, a stop that loses nothing (through a tile that holds frags,
//! and around a cycle with an unreliable edge), and what goes wrong: a
//! kind registered twice, an unregistered kind, params that do not
//! deserialize, a build that fails, a tile that panics, a drain that
//! cannot finish.

mod runner_support;

use std::time::Duration;

use runner_support::{assert_drained, counter, exists, grouped, registry, ws_name, BatchKind};
use tilewire_pipeline::tile::stem::metrics::TileState;
use tilewire_pipeline::tile::stem::StemConfig;
use tilewire_pipeline::topo::TopologySpec;
use tilewire_pipeline::{Pipeline, Registry, RegistryError, RunOptions, TileFailure, Topology};

fn chain(ws: &str, middle: &str, params: &str) -> String {
    format!(
        r#"[workspace]
name = "{ws}"

[[link]]
name = "a"
depth = 256

[[link]]
name = "b"
depth = 256

[[tile]]
name = "gen"
kind = "gen"
outputs = ["a"]
params = {{ burst = 8 }}

[[tile]]
name = "mid"
kind = "{middle}"
inputs = ["a"]
outputs = ["b"]
{params}

[[tile]]
name = "sink"
kind = "sink"
inputs = ["b"]
"#
    )
}

fn run(
    topo: Topology,
    opts: &RunOptions,
) -> (
    Pipeline,
    Result<tilewire_pipeline::RunReport, tilewire_pipeline::RunError>,
) {
    let p = Pipeline::create(topo).unwrap();
    let r = p.run(opts);
    (p, r)
}

// ---- registering --------------------------------------------------------

#[test]
fn a_kind_registered_twice_is_refused() {
    let r = Registry::with_builtins().with(BatchKind).unwrap();
    let e = r.with(BatchKind).unwrap_err();
    assert_eq!(
        e,
        RegistryError::Duplicate {
            name: "batch".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "a tile kind named \"batch\" is registered already"
    );
    // A built-in name is taken too.
    struct Sink;
    impl tilewire_pipeline::TileKind for Sink {
        type Params = tilewire_pipeline::NoParams;
        fn name(&self) -> &str {
            "sink"
        }
        fn io(&self) -> tilewire_pipeline::IoCounts {
            tilewire_pipeline::IoCounts::new(1..=1, 0..=0)
        }
        fn build<'w>(
            &self,
            _: &tilewire_pipeline::NoParams,
            _: &mut tilewire_pipeline::BuildCtx<'w, '_>,
        ) -> Result<Box<dyn tilewire_pipeline::tile::stem::Tile + 'w>, tilewire_pipeline::BuildError>
        {
            unreachable!("never registered")
        }
    }
    assert!(matches!(
        Registry::with_builtins().with(Sink),
        Err(RegistryError::Duplicate { name }) if name == "sink"
    ));
}

#[test]
fn a_kind_name_must_be_usable() {
    struct Named(&'static str);
    impl tilewire_pipeline::TileKind for Named {
        type Params = tilewire_pipeline::NoParams;
        fn name(&self) -> &str {
            self.0
        }
        fn io(&self) -> tilewire_pipeline::IoCounts {
            tilewire_pipeline::IoCounts::new(1..=1, 0..=0)
        }
        fn build<'w>(
            &self,
            _: &tilewire_pipeline::NoParams,
            _: &mut tilewire_pipeline::BuildCtx<'w, '_>,
        ) -> Result<Box<dyn tilewire_pipeline::tile::stem::Tile + 'w>, tilewire_pipeline::BuildError>
        {
            unreachable!("never registered")
        }
    }
    for bad in ["", "Verify", "9lives", "sig verify", &"x".repeat(33)] {
        let name: &'static str = Box::leak(bad.to_owned().into_boxed_str());
        let e = Registry::new().with(Named(name)).unwrap_err();
        assert!(matches!(e, RegistryError::BadName { .. }), "{bad:?}: {e}");
    }
    assert!(Registry::new().with(Named("sig-verify2")).is_ok());
}

#[test]
fn a_topology_naming_an_unregistered_kind_lists_the_registered_ones() {
    let e = registry()
        .parse(&chain("unreg", "sigverify", ""))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("line 20: tile \"mid\": `kind` names the unknown tile kind \"sigverify\""),
        "{msg}"
    );
    assert!(
        msg.ends_with("(registered: net-xdp, net-udp, dedup, echo, verify, forward, sink, pcap, gen, netlink, retransmit, batch, stuck, boom, no-build, bounce, table-sink)"),
        "{msg}"
    );
    // A registry without the built-ins knows only its own.
    let own = Registry::new().with(BatchKind).unwrap();
    let msg = own
        .parse(&chain("unreg2", "verify", ""))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unknown tile kind \"gen\" (registered: batch)"),
        "{msg}"
    );
}

#[test]
fn params_that_do_not_deserialize_are_reported_at_their_line_and_field() {
    let bad = |params: &str| {
        registry()
            .parse(&chain("params", "batch", params))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("params = { size = \"four\" }"),
        "line 23: tile \"mid\" params: `size` must be an integer, found the string \"four\""
    );
    assert_eq!(
        bad("params = { size = 4, colour = \"red\" }"),
        "line 23: tile \"mid\" params: unknown field `colour` (expected one of: size)"
    );
    assert_eq!(
        bad(""),
        "line 18: tile \"mid\" params: missing required field `size`"
    );
    assert_eq!(
        bad("[tile.params]\nsize = -1"),
        "line 24: tile \"mid\" params: `size` must not be negative, found -1"
    );
}

#[test]
fn a_kinds_objects_count_in_the_size_check_and_exist_before_it_runs() {
    let text = |size: &str| {
        format!(
            "[workspace]\nname = \"{}\"\n{size}\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
             [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ count = 10 }}\n\n\
             [[tile]]\nname = \"t\"\nkind = \"table-sink\"\ninputs = [\"a\"]\nparams = {{ kib = 1024 }}\n",
            ws_name("objects")
        )
    };
    let r = registry();
    let sized = r.parse(&text("")).unwrap();
    let without = r
        .parse(
            &text("")
                .replace("table-sink", "sink")
                .replace("params = { kib = 1024 }", ""),
        )
        .unwrap();
    let need = sized.footprint();
    assert!(need >= without.footprint() + (1 << 20), "the table counts");
    // A workspace of exactly the footprint holds it all; a page less is
    // refused at the size line.
    let exact = r.parse(&text(&format!("size = {need}"))).unwrap();
    let p = Pipeline::create(exact).unwrap();
    p.run(&RunOptions::new().duration(Duration::from_millis(50)))
        .unwrap();
    drop(p);
    let e = r
        .parse(&text(&format!("size = {}", need - 4096)))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line 3: the topology needs"), "{e}");
}

// ---- stopping -----------------------------------------------------------

#[test]
fn a_stop_in_threads_mode_delivers_every_frag_gen_sent() {
    for _ in 0..3 {
        let topo = registry()
            .parse(&chain(&ws_name("chain"), "forward", ""))
            .unwrap();
        let (p, r) = run(
            topo,
            &RunOptions::new().duration(Duration::from_millis(200)),
        );
        let report = r.unwrap();
        let sent = counter(&p, "gen", "sent");
        assert!(sent > 1000, "gen ran: {sent}");
        assert_eq!(counter(&p, "mid", "forwarded"), sent);
        assert_eq!(
            counter(&p, "sink", "frags"),
            sent,
            "the sink got all gen sent"
        );
        assert_drained(&p);
        // The run's report says the same, without the workspace.
        assert_eq!(report.counter("gen", "sent"), Some(sent));
        assert_eq!(report.counter("sink", "frags"), Some(sent));
        assert!(report.restarts.is_empty());
        for t in &report.tiles {
            assert_eq!((t.boots, t.halted), (1, true), "{}", t.name);
        }
        for name in ["a", "b"] {
            let l = report.link(name).unwrap();
            assert_eq!(l.published, sent, "{name}");
            let c = &l.consumers[0];
            assert_eq!((c.consumed, c.lost, c.unread), (sent, 0, 0), "{name}");
        }
        eprintln!("threads, gen -> forward -> sink: gen sent {sent}, the sink got {sent}");
    }
}

#[test]
fn a_stop_drains_a_tile_that_holds_frags() {
    let topo = registry()
        .parse(&chain(&ws_name("batch"), "batch", "params = { size = 32 }"))
        .unwrap();
    let (p, r) = run(
        topo,
        &RunOptions::new().duration(Duration::from_millis(200)),
    );
    r.unwrap();
    let sent = counter(&p, "gen", "sent");
    assert!(sent > 1000, "gen ran: {sent}");
    assert_eq!(counter(&p, "mid", "passed"), sent);
    assert_eq!(counter(&p, "sink", "frags"), sent);
    assert_drained(&p);
    eprintln!("threads, gen -> batch(32) -> sink: gen sent {sent}, the sink got {sent}");
}

#[test]
fn a_cycle_with_an_unreliable_edge_stops_without_losing_a_reliable_frag() {
    // gen -> merge -> bounce -> sink, and bounce -> merge again over the
    // unreliable `back`: each packet goes round once. Synthetic frames
    // carry dst port 9000 as their sig, so they come in even.
    let text = format!(
        r#"[workspace]
name = "{}"

[[link]]
name = "fresh"
depth = 256

[[link]]
name = "mixed"
depth = 256

[[link]]
name = "back"
depth = 4096
reliable = false

[[link]]
name = "out"
depth = 256

[[tile]]
name = "gen"
kind = "gen"
outputs = ["fresh"]
params = {{ rate = 100000, burst = 8 }}

[[tile]]
name = "merge"
kind = "forward"
inputs = ["fresh", "back"]
outputs = ["mixed"]

[[tile]]
name = "bounce"
kind = "bounce"
inputs = ["mixed"]
outputs = ["out", "back"]

[[tile]]
name = "sink"
kind = "sink"
inputs = ["out"]
"#,
        ws_name("cycle")
    );
    let topo = registry().parse(&text).unwrap();
    let (p, r) = run(
        topo,
        &RunOptions::new().duration(Duration::from_millis(300)),
    );
    r.unwrap();
    let (sent, out, back) = (
        counter(&p, "gen", "sent"),
        counter(&p, "bounce", "out"),
        counter(&p, "bounce", "back"),
    );
    assert!(sent > 1000, "gen ran: {sent}");
    // Every fresh packet reached bounce (reliable), and every packet it
    // passed out reached the sink (reliable).
    assert_eq!(back, sent, "each fresh packet was sent round");
    assert_eq!(counter(&p, "sink", "frags"), out);
    // Only what was still on the unreliable back edge at the stop did not
    // come round; merge read the rest.
    assert!(out <= back && out + 4096 >= back, "out {out}, back {back}");
    assert_eq!(counter(&p, "merge", "forwarded"), sent + out);
    assert_drained(&p);
    eprintln!(
        "threads, cycle: gen sent {sent}, bounce sent {back} round and {out} out, the sink got {out}"
    );
}

#[test]
fn a_stop_that_cannot_drain_names_the_tile_and_what_it_left() {
    let text = format!(
        "[workspace]\nname = \"{}\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ count = 10 }}\n\n\
         [[tile]]\nname = \"stuck\"\nkind = \"stuck\"\ninputs = [\"a\"]\n",
        ws_name("stuck")
    );
    let topo = registry().parse(&text).unwrap();
    let opts = RunOptions::new()
        .duration(Duration::from_millis(100))
        .stem(StemConfig {
            lazy: 64,
            stop_grace: Duration::from_millis(100),
        });
    let (_p, r) = run(topo, &opts);
    let e = r.unwrap_err();
    let [TileFailure::Undrained { tile, link, frags }] = e.failures() else {
        panic!("one failure: {e}");
    };
    assert_eq!((tile.as_str(), link.as_str(), *frags), ("stuck", "a", 10));
    assert_eq!(
        e.to_string(),
        "tile \"stuck\" could not drain within its grace time: it left 10 frags unread on link \"a\""
    );
}

#[test]
fn a_tile_whose_build_fails_is_named_and_nothing_is_left_behind() {
    let name = ws_name("nobuild");
    let text = format!(
        "[workspace]\nname = \"{name}\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n\n\
         [[tile]]\nname = \"dev\"\nkind = \"no-build\"\ninputs = [\"a\"]\n"
    );
    let topo = registry().parse(&text).unwrap();
    let p = Pipeline::create(topo).unwrap();
    assert!(exists(&name));
    let e = p.run(&RunOptions::new()).unwrap_err();
    assert!(
        e.failures()
            .iter()
            .any(|f| matches!(f, TileFailure::Failed { tile, .. } if tile == "dev")),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("tile \"dev\": its device /dev/nothing does not exist"),
        "{e}"
    );
    // The other tile was stopped again.
    let gen = tilewire_pipeline::tile_metrics(p.workspace(), "gen").unwrap();
    assert_eq!(gen.state(), Some(TileState::Halted));
    drop(p);
    assert!(!exists(&name), "the workspace and its objects are gone");
}

#[test]
fn a_tile_that_panics_is_named_and_the_others_stop_and_drain() {
    // boom reads link a beside fwd; a is unreliable, so gen goes on when
    // boom is gone, and the stop can drain the rest.
    let name = ws_name("boom");
    let text = format!(
        "[workspace]\nname = \"{name}\"\n\n[[link]]\nname = \"a\"\ndepth = 1024\nreliable = false\n\n\
         [[link]]\nname = \"b\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ rate = 20000, burst = 4 }}\n\n\
         [[tile]]\nname = \"fwd\"\nkind = \"forward\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"b\"]\n\n\
         [[tile]]\nname = \"boom\"\nkind = \"boom\"\ninputs = [\"a\"]\nparams = {{ after = 500 }}\n"
    );
    let topo = registry().parse(&text).unwrap();
    let p = Pipeline::create(topo).unwrap();
    // No duration: the panic is what ends the run.
    let e = p.run(&RunOptions::new()).unwrap_err();
    let [TileFailure::Panicked { tile, message }] = e.failures() else {
        panic!("one failure, the panic: {e}");
    };
    assert_eq!(
        (tile.as_str(), message.as_str()),
        ("boom", "boom at frag 500")
    );
    // The panic, then what the dead tile left on its input.
    let text = e.to_string();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("tile \"boom\" panicked: boom at frag 500")
    );
    let left = e.report().unwrap().link("a").unwrap().consumers[1].unread;
    if left > 0 {
        let said = format!("link \"a\": {left} frags left unread by tile \"boom\"");
        assert_eq!(lines.next(), Some(said.as_str()));
    }
    assert_eq!(lines.next(), None, "{text}");
    let ws = p.workspace();
    for t in ["gen", "fwd", "sink"] {
        let m = tilewire_pipeline::tile_metrics(ws, t).unwrap();
        assert_eq!(m.state(), Some(TileState::Halted), "{t} halted");
    }
    // fwd and the sink drained all gen sent before it stopped.
    let sent = counter(&p, "gen", "sent");
    assert!(sent >= 500);
    let a = tilewire_pipeline::tile::link::Link::join(ws, "a").unwrap();
    let lost = a.fseqs()[0].diag(tilewire_pipeline::tile::link::fseq::DIAG_OVRNP_FRAGS);
    assert_eq!(lost, 0, "fwd kept up with gen");
    assert_eq!(counter(&p, "fwd", "forwarded"), sent);
    assert_eq!(counter(&p, "sink", "frags"), sent);
    drop(p);
    assert!(!exists(&name));
}

#[test]
fn a_group_runs_its_tiles_on_one_thread_and_a_stop_delivers_every_frag() {
    for middle in ["forward", "batch"] {
        let params = if middle == "batch" {
            "params = { size = 32 }"
        } else {
            ""
        };
        let text = grouped(
            &chain(&ws_name("group"), middle, params),
            "g",
            &["gen", "mid", "sink"],
        );
        let topo = registry().parse(&text).unwrap();
        let layout = topo.layout();
        assert_eq!(layout.len(), 1, "one thread: {layout:?}");
        assert_eq!(layout[0].tiles, [0, 1, 2]);
        let (p, r) = run(
            topo,
            &RunOptions::new().duration(Duration::from_millis(200)),
        );
        r.unwrap();
        let sent = counter(&p, "gen", "sent");
        assert!(sent > 1000, "gen ran: {sent}");
        assert_eq!(
            counter(&p, "sink", "frags"),
            sent,
            "the sink got all gen sent"
        );
        for t in ["gen", "mid", "sink"] {
            let m = tilewire_pipeline::tile_metrics(p.workspace(), t).unwrap();
            let snap = m.snapshot();
            assert_eq!(snap.state, Some(TileState::Halted), "{t} halted on its own");
            assert!(snap.housekeeping > 0, "{t} kept its own heartbeat");
        }
        assert_drained(&p);
        eprintln!(
            "threads, one group gen -> {middle} -> sink: gen sent {sent}, the sink got {sent}"
        );
    }
}

#[test]
fn a_tile_of_a_group_that_panics_is_named_and_the_others_stop_and_drain() {
    // As the test of a panicking tile above, with every tile but gen on
    // one thread: boom's panic ends boom alone.
    let name = ws_name("gboom");
    let text = format!(
        "[workspace]\nname = \"{name}\"\n\n[[link]]\nname = \"a\"\ndepth = 1024\nreliable = false\n\n\
         [[link]]\nname = \"b\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ rate = 20000, burst = 4 }}\n\n\
         [[tile]]\nname = \"fwd\"\nkind = \"forward\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n\n\
         [[tile]]\nname = \"boom\"\nkind = \"boom\"\ninputs = [\"a\"]\nparams = {{ after = 500 }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"b\"]\n"
    );
    let topo = registry()
        .parse(&grouped(&text, "g", &["fwd", "boom", "sink"]))
        .unwrap();
    let p = Pipeline::create(topo).unwrap();
    let e = p.run(&RunOptions::new()).unwrap_err();
    let [TileFailure::Panicked { tile, message }] = e.failures() else {
        panic!("one failure, the panic: {e}");
    };
    assert_eq!(
        (tile.as_str(), message.as_str()),
        ("boom", "boom at frag 500")
    );
    let ws = p.workspace();
    for t in ["gen", "fwd", "sink"] {
        let m = tilewire_pipeline::tile_metrics(ws, t).unwrap();
        assert_eq!(m.state(), Some(TileState::Halted), "{t} halted");
    }
    // fwd shares boom's thread, and the panic hook (a backtrace, when
    // RUST_BACKTRACE asks for one) holds that thread while gen goes on
    // into unreliable a: fwd may be lapped then. What it lost is counted
    // on its fseq, and with that every frag gen sent is accounted for;
    // the sink, over reliable b, got every frag fwd forwarded.
    let sent = counter(&p, "gen", "sent");
    assert!(sent >= 500);
    let a = tilewire_pipeline::tile::link::Link::join(ws, "a").unwrap();
    let lost = a.fseqs()[0].lost();
    let forwarded = counter(&p, "fwd", "forwarded");
    assert_eq!(
        forwarded + lost,
        sent,
        "fwd forwarded {forwarded}, lost {lost}"
    );
    assert_eq!(counter(&p, "sink", "frags"), forwarded);
    drop(a);
    drop(p);
    assert!(!exists(&name));
}

#[test]
fn idle_policy_spins_only_a_tile_with_a_core_of_its_own_unless_told() {
    use tilewire_pipeline::tile::stem::IdlePolicy::{Backoff, Spin};
    let text = "[workspace]\nname = \"idle\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
                [[link]]\nname = \"b\"\ndepth = 64\n\n\
                [[tile]]\nname = \"gen\"\nkind = \"gen\"\ncpu = 0\noutputs = [\"a\"]\n\n\
                [[tile]]\nname = \"fwd\"\nkind = \"forward\"\ncpu = 1\ninputs = [\"a\"]\noutputs = [\"b\"]\n\n\
                [[tile]]\nname = \"sink\"\nkind = \"sink\"\ncpu = 1\ninputs = [\"b\"]\n";
    let t = registry().parse(text).unwrap();
    let policy = |n: &str| t.idle_policy(t.tile(n).unwrap());
    assert_eq!(policy("gen"), Spin, "alone on cpu 0");
    assert_eq!(policy("fwd"), Backoff, "shares cpu 1");
    assert_eq!(policy("sink"), Backoff, "shares cpu 1");
    let unpinned = registry().parse(&text.replace("cpu = 0\n", "")).unwrap();
    assert_eq!(unpinned.idle_policy(unpinned.tile("gen").unwrap()), Backoff);
    let told = registry()
        .parse(&text.replace("name = \"sink\"\n", "name = \"sink\"\nidle = \"spin\"\n"))
        .unwrap();
    assert_eq!(told.idle_policy(told.tile("sink").unwrap()), Spin);
    let bad = registry()
        .parse(&text.replace("name = \"sink\"\n", "name = \"sink\"\nidle = \"nap\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("`idle` must be one of \"spin\", \"backoff\", found \"nap\""),
        "{bad}"
    );
}

// ---- net-udp tiles sharing a port -------------------------------------

/// Two net-udp tiles on one port, each into a sink of its own.
fn shared_port(ws: &str, port: u16, second_output: bool) -> String {
    let out2 = if second_output {
        "outputs = [\"b\"]\n"
    } else {
        "inputs = [\"back\"]\n"
    };
    format!(
        "[workspace]\nname = \"{ws}\"\n\n\
         [[link]]\nname = \"a\"\ndepth = 1024\n\n[[link]]\nname = \"{}\"\ndepth = 1024\n\n\
         [[tile]]\nname = \"net0\"\nkind = \"net-udp\"\noutputs = [\"a\"]\n\
         params = {{ bind = \"127.0.0.1:{port}\" }}\n\n\
         [[tile]]\nname = \"net1\"\nkind = \"net-udp\"\n{out2}\
         params = {{ bind = \"127.0.0.1:{port}\" }}\n\n\
         [[tile]]\nname = \"sink0\"\nkind = \"sink\"\ninputs = [\"a\"]\n\n\
         [[tile]]\nname = \"sink1\"\nkind = \"{}\"\n{}",
        if second_output { "b" } else { "back" },
        if second_output { "sink" } else { "gen" },
        if second_output {
            "inputs = [\"b\"]\n"
        } else {
            "outputs = [\"back\"]\nparams = { count = 1 }\n"
        },
    )
}

#[test]
fn net_udp_tiles_naming_one_address_share_it_and_both_receive() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let topo = registry()
        .parse(&shared_port(&ws_name("reuse"), port, true))
        .unwrap();
    let p = Pipeline::create(topo).unwrap();
    let opts = RunOptions::new();
    let running = p.start(&opts).unwrap();
    // 64 flows (source ports), 50 datagrams each, paced: loopback drops
    // nothing and the kernel spreads the flows over both sockets.
    let dst: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let socks: Vec<_> = (0..64)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for round in 0..50u32 {
        for s in &socks {
            s.send_to(&round.to_le_bytes(), dst).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent = 64 * 50;
    let got = |p: &Pipeline| counter(p, "sink0", "frags") + counter(p, "sink1", "frags");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got(&p) < sent && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    running.stop().unwrap();
    let (a, b) = (
        counter(&p, "net0", "rx_pkts"),
        counter(&p, "net1", "rx_pkts"),
    );
    eprintln!("one port, two net-udp tiles: {a} + {b} of {sent}");
    assert_eq!(a + b, sent, "every datagram reached one of them");
    assert!(a > 0 && b > 0, "both received: {a} and {b}");
    assert_eq!(got(&p), sent, "and its sink");
}

#[test]
fn a_net_udp_tile_sharing_a_port_without_an_output_is_refused() {
    let text = shared_port(&ws_name("reuse2"), 9100, false);
    let e = registry().parse(&text).unwrap_err().to_string();
    assert!(
        e.contains("net1 shares 127.0.0.1:9100 with tile \"net0\"")
            && e.contains("this tile has no output"),
        "{e}"
    );
}

#[test]
fn restart_is_refused_in_threads_mode_and_read_in_processes_mode() {
    let text = chain(&ws_name("restart"), "forward", "restart = \"on-failure\"");
    let e = registry().parse(&text).unwrap_err().to_string();
    assert!(
        e.contains("line 23: tile \"mid\": `restart` restarts a tile's process")
            && e.contains("set `mode = \"processes\"`"),
        "{e}"
    );
    let procs = text.replace("[workspace]\n", "[workspace]\nmode = \"processes\"\n");
    let t = registry().parse(&procs).unwrap();
    use tilewire_pipeline::Restart;
    assert_eq!(t.tile("mid").unwrap().restart, Restart::OnFailure);
    assert_eq!(t.tile("gen").unwrap().restart, Restart::Never);
    assert_eq!(t.group_of("mid").unwrap().restart, Restart::OnFailure);
    let bad = registry()
        .parse(&procs.replace("on-failure", "always"))
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("`restart` must be one of \"never\", \"on-failure\""),
        "{bad}"
    );
}

// ---- count = N ------------------------------------------------------------

#[test]
fn count_makes_tiles_that_split_a_links_frags_exactly() {
    for share in ["", "share = \"sig\""] {
        let text = chain(&ws_name("count"), "forward", &format!("count = 3\n{share}"))
            .replace("{ burst = 8 }", "{ burst = 8, fixture = \"builtin:mix\" }");
        let topo = registry().parse(&text).unwrap();
        let names: Vec<&str> = topo.tiles.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["gen", "mid.0", "mid.1", "mid.2", "sink"]);
        assert_eq!(topo.tile("sink").unwrap().inputs, ["b.0", "b.1", "b.2"]);
        assert_eq!(topo.tile("mid.1").unwrap().outputs, ["b.1"]);
        assert!(topo.link("b").is_none() && topo.link("b.2").is_some());
        let pinned = TopologySpec::parse(&text.replace("count = 3", "count = 3\ncpu = 1")).unwrap();
        let pinned = registry()
            .bind(pinned, &tilewire_pipeline::topo::Machine::with_cpus(4))
            .unwrap();
        let cpus: Vec<_> = pinned.tiles.iter().map(|t| t.cpu).collect();
        assert_eq!(cpus, [None, Some(1), Some(2), Some(3), None], "a core each");
        let (p, r) = run(
            topo,
            &RunOptions::new().duration(Duration::from_millis(300)),
        );
        r.unwrap();
        let sent = counter(&p, "gen", "sent");
        let each: Vec<u64> = (0..3)
            .map(|i| counter(&p, &format!("mid.{i}"), "forwarded"))
            .collect();
        eprintln!("count = 3 {share}: gen sent {sent}, the three forwarded {each:?}");
        assert!(sent > 1000, "gen ran: {sent}");
        assert_eq!(
            each.iter().sum::<u64>(),
            sent,
            "each frag forwarded by exactly one"
        );
        assert_eq!(counter(&p, "sink", "frags"), sent, "the sink got every one");
        // Each skipped the others' frags, counted as filtered on link a.
        let a = tilewire_pipeline::tile::link::Link::join(p.workspace(), "a").unwrap();
        for (i, n) in each.iter().enumerate() {
            let filtered = a.fseqs()[i].diag(tilewire_pipeline::tile::link::fseq::DIAG_FILT_CNT);
            assert_eq!(filtered, sent - n, "mid.{i} skipped the rest");
        }
        if share.is_empty() {
            assert!(
                each.iter().all(|n| n.abs_diff(sent / 3) <= 1),
                "round robin: {each:?}"
            );
            assert_drained(&p);
        } else {
            // The signature is the UDP destination port: the mix's few
            // ports land on some of the three, each port on one.
            assert!(
                each.iter().filter(|n| **n > 0).count() >= 2,
                "by port: {each:?}"
            );
        }
    }
}

#[test]
fn a_bad_count_is_refused_at_its_line() {
    for (count, want) in [("0", "`count` must be"), ("65", "`count` must be")] {
        let text = chain(&ws_name("count0"), "forward", &format!("count = {count}"));
        let e = registry().parse(&text).unwrap_err().to_string();
        assert!(e.contains("line 23") && e.contains(want), "{e}");
    }
    // echo takes one input: a counted tile before it is refused, saying why.
    let text = chain(&ws_name("countio"), "forward", "count = 2").replace(
        "name = \"sink\"\nkind = \"sink\"",
        "name = \"sink\"\nkind = \"echo\"\noutputs = [\"c\"]",
    ) + "\n[[link]]\nname = \"c\"\ndepth = 64\n\n[[tile]]\nname = \"end\"\nkind = \"sink\"\ninputs = [\"c\"]\n";
    let e = registry().parse(&text).unwrap_err().to_string();
    assert!(
        e.contains("an echo tile takes exactly 1 inputs, found 2 (the 2 tiles `count` made of \"mid\" each feed it a link)"),
        "{e}"
    );
    // The size check counts every tile and link a count makes.
    let small = chain(&ws_name("countsize"), "forward", "count = 64")
        .replace("[workspace]\n", "[workspace]\nsize = \"4MiB\"\n");
    let e = registry().parse(&small).unwrap_err().to_string();
    assert!(
        e.contains("the topology needs") && e.contains("raise `size`"),
        "{e}"
    );
    let long = "m".repeat(33);
    let text = chain(&ws_name("countlong"), "forward", "count = 2")
        .replace("\"mid\"", &format!("\"{long}\""));
    let e = registry().parse(&text).unwrap_err().to_string();
    assert!(
        e.contains("is longer than 34 bytes; give the tile a shorter name"),
        "{e}"
    );
}

#[test]
fn two_net_udp_tiles_from_one_count_share_the_port_and_the_sending() {
    // net (count = 2, one port) -> forward -> echo -> net: the kernel
    // spreads the flows over the two sockets, and each echo is sent by
    // exactly one of the two (round robin over the tx link).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let text = format!(
        "[workspace]\nname = \"{}\"\n\n\
         [[link]]\nname = \"rx\"\ndepth = 1024\nreliable = false\n\n\
         [[link]]\nname = \"all\"\ndepth = 1024\n\n[[link]]\nname = \"tx\"\ndepth = 1024\n\n\
         [[tile]]\nname = \"net\"\nkind = \"net-udp\"\ncount = 2\ninputs = [\"tx\"]\noutputs = [\"rx\"]\n\
         params = {{ bind = \"127.0.0.1:{port}\" }}\n\n\
         [[tile]]\nname = \"merge\"\nkind = \"forward\"\ninputs = [\"rx\"]\noutputs = [\"all\"]\n\n\
         [[tile]]\nname = \"echo\"\nkind = \"echo\"\ninputs = [\"all\"]\noutputs = [\"tx\"]\n",
        ws_name("udpcount")
    );
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let running = p.start(&RunOptions::new()).unwrap();
    let dst: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let socks: Vec<_> = (0..32)
        .map(|_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            s
        })
        .collect();
    let rounds = 40u32;
    for round in 0..rounds {
        for s in &socks {
            s.send_to(&round.to_le_bytes(), dst).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Every flow gets each of its datagrams back once.
    let mut buf = [0u8; 64];
    for s in &socks {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < rounds as usize && std::time::Instant::now() < deadline {
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                got.push(u32::from_le_bytes(buf[..n].try_into().unwrap()));
            }
        }
        got.sort_unstable();
        assert_eq!(got, (0..rounds).collect::<Vec<_>>(), "each echo once");
    }
    running.stop().unwrap();
    let sent = u64::from(rounds) * socks.len() as u64;
    let rx: Vec<u64> = (0..2)
        .map(|i| counter(&p, &format!("net.{i}"), "rx_pkts"))
        .collect();
    let tx: Vec<u64> = (0..2)
        .map(|i| counter(&p, &format!("net.{i}"), "tx_pkts"))
        .collect();
    eprintln!("two net-udp tiles on one port: received {rx:?}, sent {tx:?} of {sent}");
    assert_eq!(rx.iter().sum::<u64>(), sent);
    assert_eq!(
        tx.iter().sum::<u64>(),
        sent,
        "nothing sent twice, nothing skipped"
    );
    assert!(rx.iter().all(|n| *n > 0), "both received: {rx:?}");
    assert!(
        tx[0].abs_diff(tx[1]) <= 1,
        "round robin over the tx link: {tx:?}"
    );
}

/// A sink that says, through a shared flag, when it was dropped.
struct DropFlagKind(std::sync::Arc<std::sync::atomic::AtomicBool>);

struct DropFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl tilewire_pipeline::tile::stem::Tile for DropFlag {
    fn kind(&self) -> &str {
        "drop-flag"
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        // A tile that owns something slow to close (a file to flush).
        std::thread::sleep(Duration::from_millis(50));
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl tilewire_pipeline::TileKind for DropFlagKind {
    type Params = tilewire_pipeline::NoParams;
    fn name(&self) -> &str {
        "drop-flag"
    }
    fn io(&self) -> tilewire_pipeline::IoCounts {
        tilewire_pipeline::IoCounts::new(1..=1, 0..=0)
    }
    fn build<'w>(
        &self,
        _: &tilewire_pipeline::NoParams,
        _: &mut tilewire_pipeline::BuildCtx<'w, '_>,
    ) -> Result<Box<dyn tilewire_pipeline::tile::stem::Tile + 'w>, tilewire_pipeline::BuildError>
    {
        Ok(Box::new(DropFlag(self.0.clone())))
    }
}

#[test]
fn a_stop_returns_once_every_tile_was_dropped() {
    for group in [false, true] {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let registry = Registry::with_builtins()
            .with(DropFlagKind(dropped.clone()))
            .unwrap();
        let g = if group { "group = \"one\"\n" } else { "" };
        let text = format!(
            "[workspace]\nname = \"{}\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
             [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n{g}\n\
             [[tile]]\nname = \"last\"\nkind = \"drop-flag\"\ninputs = [\"a\"]\n{g}",
            ws_name(if group { "dropg" } else { "drop" })
        );
        let pipeline = Pipeline::create(registry.parse(&text).unwrap()).unwrap();
        pipeline
            .run(&RunOptions::new().duration(Duration::from_millis(100)))
            .unwrap();
        assert!(
            dropped.load(std::sync::atomic::Ordering::SeqCst),
            "the tile was dropped before the stop returned (group: {group})"
        );
    }
}

#[test]
fn a_consumer_progress_past_its_producer_is_corruption_the_link_stalls_and_the_run_fails_naming_it()
{
    let text = format!(
        "[workspace]\nname = \"{}\"\n\n\
         [[link]]\nname = \"a\"\ndepth = 256\n\n[[link]]\nname = \"b\"\ndepth = 256\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ rate = 200000, burst = 16 }}\n\n\
         [[tile]]\nname = \"fwd\"\nkind = \"forward\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"b\"]\n",
        ws_name("corrupt")
    );
    let pipeline = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let mut running = pipeline.start(&RunOptions::new()).unwrap();
    let b = tilewire_pipeline::tile::link::Link::join(pipeline.workspace(), "b").unwrap();
    let sink_fseq = b.fseqs()[0];
    // Another writer puts the sink's progress 5 M frags past anything
    // published, again and again (the sink itself keeps writing the truth).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        let now = b.mcache().seq_query();
        sink_fseq.update(now.wrapping_add(5_000_000));
        if running.poll() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        ended,
        "the run ends by itself once the corrupt word is seen"
    );
    let lost_on_b = sink_fseq.lost();
    let err = running.stop().unwrap_err();
    let corrupt: Vec<&TileFailure> = err
        .failures()
        .iter()
        .filter(|f| matches!(f, TileFailure::Corrupt { .. }))
        .collect();
    assert_eq!(corrupt.len(), 1, "{err}");
    match corrupt[0] {
        TileFailure::Corrupt { tile, link, what } => {
            assert_eq!(
                (tile.as_str(), link.as_str(), what.consumer),
                ("fwd", "b", 0)
            );
            assert!(what.found > what.limit, "{what}");
        }
        _ => unreachable!(),
    }
    let text = err.to_string();
    assert!(
        text.contains("tile \"fwd\"'s output link \"b\" is corrupt: consumer 0's progress is"),
        "{text}"
    );
    // Stalled, not overrun: the sink lost nothing.
    assert_eq!(lost_on_b, 0, "frags lost on b");
}

#[test]
fn a_ring_line_holding_a_seq_no_producer_puts_there_ends_the_run_naming_its_reader() {
    let text = format!(
        "[workspace]\nname = \"{}\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ rate = 2000 }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"a\"]\n",
        ws_name("corruptline")
    );
    let pipeline = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let mut running = pipeline.start(&RunOptions::new()).unwrap();
    let ws = pipeline.workspace();
    let a = ws.lookup("a.mc").unwrap();
    let mem = ws.region(a.gaddr, a.size as usize).unwrap();
    let link = tilewire_pipeline::tile::link::Link::join(ws, "a").unwrap();
    // A stray writer puts garbage on the lines of the next few frags: the
    // sink, waiting there, finds a seq no producer writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        let next = link.mcache().newest_seq().wrapping_add(1);
        for k in 0..4u64 {
            let line = ((next + k) & 63) as usize;
            mem.atomic_u64(128 + line * 32)
                .unwrap()
                .store(0x0bad_5eed_0000_0007, std::sync::atomic::Ordering::Relaxed);
        }
        if running.poll() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        ended,
        "the run ends by itself once the reader counted a corrupt line"
    );
    let err = running.stop().unwrap_err();
    let found = err.failures().iter().find_map(|f| match f {
        TileFailure::CorruptLines { tile, link, frags } => {
            Some((tile.clone(), link.clone(), *frags))
        }
        _ => None,
    });
    let (tile, link_name, frags) = found.unwrap_or_else(|| panic!("{err}"));
    assert_eq!((tile.as_str(), link_name.as_str()), ("sink", "a"));
    assert!(frags > 0);
    assert_eq!(
        link.fseqs()[0].diag(tilewire_pipeline::tile::link::fseq::DIAG_OVRNP_FRAGS),
        0,
        "nothing counted lost"
    );
}
