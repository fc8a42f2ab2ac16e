//! The layout of tiles on threads: tiles naming one `group` or one `cpu`
//! share a thread; a group pinned to two cpus, two groups on one cpu and
//! a group across network namespaces are refused at their line.

mod topo_support;

use tilewire_pipeline::topo::TileGroup;
use tilewire_tile::stem::IdlePolicy::{Backoff, Spin};
use topo_support::{assert_problem, parse_ok, WS};

/// gen -> fwd -> sink, each tile given `extra[i]`: gen's header is line
/// 13 and its extra lines 17 on; fwd's extra lines are 25 on.
fn chain(extra: [&str; 3]) -> String {
    format!(
        "{WS}
[[link]]
name = \"a\"
depth = 64

[[link]]
name = \"b\"
depth = 64

[[tile]]
name = \"gen\"
kind = \"gen\"
outputs = [\"a\"]
{}
[[tile]]
name = \"fwd\"
kind = \"forward\"
inputs = [\"a\"]
outputs = [\"b\"]
{}
[[tile]]
name = \"sink\"
kind = \"sink\"
inputs = [\"b\"]
{}",
        extra[0], extra[1], extra[2]
    )
}

fn layout(text: &str) -> Vec<(String, Vec<usize>, Option<usize>, bool)> {
    parse_ok(text)
        .layout()
        .into_iter()
        .map(|g: TileGroup| (g.name, g.tiles, g.cpu, g.idle == Spin))
        .collect()
}

#[test]
fn every_tile_has_a_thread_of_its_own_unless_it_names_a_group_or_shares_a_cpu() {
    let own = |n: &str, i: usize| (n.to_owned(), vec![i], None, false);
    assert_eq!(
        layout(&chain(["", "", ""])),
        [own("gen", 0), own("fwd", 1), own("sink", 2)]
    );
    assert_eq!(
        layout(&chain(["group = \"io\"\n", "", "group = \"io\"\n"])),
        [("io".into(), vec![0, 2], None, false), own("fwd", 1)],
        "a group takes the first member's place, its tiles in file order"
    );
    assert_eq!(
        layout(&chain(["cpu = 0\n", "cpu = 1\n", "cpu = 1\n"])),
        [
            ("gen".into(), vec![0], Some(0), true),
            ("cpu1".into(), vec![1, 2], Some(1), false)
        ],
        "a tile alone on its cpu spins; tiles sharing one take turns and back off"
    );
    assert_eq!(
        layout(&chain([
            "group = \"all\"\n",
            "group = \"all\"\ncpu = 1\n",
            "cpu = 1\ngroup = \"all\"\n"
        ])),
        [("all".into(), vec![0, 1, 2], Some(1), false)],
        "a group runs on the cpu one of its tiles names"
    );
    assert_eq!(
        layout(&chain(["group = \"g\"\ncpu = 1\n", "cpu = 1\n", ""])),
        [("g".into(), vec![0, 1], Some(1), false), own("sink", 2)],
        "a tile naming a group's cpu joins the group"
    );
    let t = parse_ok(&chain([
        "group = \"g\"\nidle = \"spin\"\n",
        "group = \"g\"\nidle = \"spin\"\n",
        "",
    ]));
    assert_eq!(t.layout()[0].idle, Spin, "every tile of it says spin");
    assert_eq!(t.idle_policy(t.tile("sink").unwrap()), Backoff);
}

#[test]
fn a_group_on_two_cpus_is_refused_at_the_second_cpu() {
    // Line 26 is fwd's `cpu`.
    let text = chain(["group = \"g\"\ncpu = 0\n", "group = \"g\"\ncpu = 1\n", ""]);
    assert_problem(
        &text,
        26,
        &[
            "tile \"fwd\" names cpu 1, but it shares a thread with tile \"gen\" (group \"g\")",
            "which names cpu 0 at line 18",
            "one cpu",
        ],
    );
}

#[test]
fn two_groups_on_one_cpu_are_refused_at_the_group() {
    // Line 26 is fwd's `group`.
    let text = chain(["group = \"g\"\ncpu = 1\n", "cpu = 1\ngroup = \"h\"\n", ""]);
    assert_problem(
        &text,
        26,
        &["tile \"fwd\" of group \"h\" shares cpu 1 with tile \"gen\" of group \"g\" (line 13)"],
    );
}

#[test]
fn a_group_across_two_network_namespaces_is_refused() {
    let net = |ns: &str, port: u16| {
        format!("[tile.params]\nbind = \"127.0.0.1:{port}\"\nnetns = \"{ns}\"\n")
    };
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 64

[[tile]]
name = \"rx\"
kind = \"net-udp\"
group = \"g\"
outputs = [\"a\"]
{}
[[tile]]
name = \"sink\"
kind = \"sink\"
group = \"g\"
inputs = [\"a\"]

[[tile]]
name = \"tx\"
kind = \"net-udp\"
group = \"g\"
outputs = [\"b\"]
{}
[[link]]
name = \"b\"
depth = 64

[[tile]]
name = \"sink2\"
kind = \"sink\"
inputs = [\"b\"]
",
        net("tw-x", 9000),
        net("tw-y", 9001)
    );
    // The sink names no namespace: it runs in its thread's, any.
    assert_problem(
        &text,
        24,
        &[
            "tile \"tx\" runs in network namespace \"tw-y\"",
            "tile \"rx\" (line 9), which runs in \"tw-x\"",
        ],
    );
}

#[test]
fn a_bad_group_name_is_refused() {
    let text = chain(["group = \"no/slash\"\n", "", ""]);
    assert_problem(&text, 17, &["`group`", "not a valid name"]);
    let text = chain([&format!("group = \"{}\"\n", "g".repeat(33)), "", ""]);
    assert_problem(&text, 17, &["33 bytes long; the limit is 32"]);
}

// ---- laid out for the machine ------------------------------------------------

use tilewire_pipeline::topo::Machine;

/// The layout as (group name, tile names, cpu, idle).
fn groups(topo: &tilewire_pipeline::Topology) -> Vec<(String, Vec<String>, Option<usize>, bool)> {
    topo.layout()
        .into_iter()
        .map(|g| {
            let names = g
                .tiles
                .iter()
                .map(|&i| topo.tiles[i].name.clone())
                .collect();
            (g.name, names, g.cpu, g.idle == Spin)
        })
        .collect()
}

#[test]
fn a_topology_that_names_no_placement_takes_one_thread_on_a_small_machine() {
    let mut topo = parse_ok(&chain(["", "", ""]));
    assert!(topo.names_no_placement());
    assert!(topo.fit_to_machine(&Machine::with_cpus(2)));
    let names: Vec<String> = ["gen", "fwd", "sink"].map(String::from).into();
    assert_eq!(
        groups(&topo),
        vec![("pipeline".to_owned(), names, None, false)]
    );
    assert!(
        topo.layout_summary().starts_with("3 tiles on 1 thread on "),
        "{}",
        topo.layout_summary()
    );
}

#[test]
fn a_topology_that_names_no_placement_gets_a_core_a_tile_on_a_large_machine() {
    let mut topo = parse_ok(&chain(["", "", ""]));
    assert!(topo.fit_to_machine(&Machine::with_cpus(8)));
    // The last cores, one each, spinning.
    assert_eq!(
        groups(&topo),
        vec![
            ("gen".to_owned(), vec!["gen".to_owned()], Some(5), true),
            ("fwd".to_owned(), vec!["fwd".to_owned()], Some(6), true),
            ("sink".to_owned(), vec!["sink".to_owned()], Some(7), true),
        ]
    );
}

#[test]
fn a_topology_that_places_a_tile_or_runs_processes_is_left_as_it_says() {
    let text = chain(["", "group = \"mine\"\n", ""]);
    let mut topo = parse_ok(&text);
    let before = groups(&topo);
    assert!(!topo.names_no_placement());
    assert!(!topo.fit_to_machine(&Machine::with_cpus(2)));
    assert_eq!(groups(&topo), before);

    let procs = chain(["", "", ""]).replace(WS, &format!("{WS}mode = \"processes\"\n"));
    let mut topo = parse_ok(&procs);
    let before = groups(&topo);
    assert!(!topo.fit_to_machine(&Machine::with_cpus(2)));
    assert_eq!(groups(&topo), before);
    assert!(topo.layout_summary().contains(" processes on "));
}

#[test]
fn tiles_in_two_network_namespaces_take_a_thread_each_when_laid_out() {
    let net = |name: &str, ns: &str, port: u16, link: &str| {
        format!(
            "[[tile]]\nname = \"{name}\"\nkind = \"net-udp\"\noutputs = [\"{link}\"]\n\
             [tile.params]\nbind = \"127.0.0.1:{port}\"\nnetns = \"{ns}\"\n\n"
        )
    };
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 64

[[link]]
name = \"b\"
depth = 64

{}{}[[tile]]
name = \"sink\"
kind = \"sink\"
inputs = [\"a\", \"b\"]
",
        net("rx", "tw-x", 9000, "a"),
        net("rx2", "tw-y", 9001, "b"),
    );
    let mut topo = parse_ok(&text);
    assert!(topo.fit_to_machine(&Machine::with_cpus(2)));
    let layout: Vec<(String, Vec<String>)> = groups(&topo)
        .into_iter()
        .map(|(g, t, _, _)| (g, t))
        .collect();
    // The sink has no namespace: it joins the first one's thread.
    assert_eq!(
        layout,
        vec![
            (
                "pipeline".to_owned(),
                vec!["rx".to_owned(), "sink".to_owned()]
            ),
            ("pipeline-2".to_owned(), vec!["rx2".to_owned()]),
        ]
    );
}
