//! The topology file's rules: each one broken in a small topology and
//! refused with the right line and reason, every problem of a file
//! reported at once.

mod topo_support;

use tilewire_pipeline::topo::Machine;
use topo_support::{assert_problem, bind, gen_sink, machine, parse_ok, problems, WS};

#[test]
fn the_base_of_the_bad_cases_is_good() {
    let t = parse_ok(&gen_sink(""));
    assert_eq!(t.tiles.len(), 2);
    assert_eq!(t.link("a").unwrap().line, 5);
}

// ---- 1. syntax, missing, unknown, wrong type -------------------------------

#[test]
fn syntax_error_names_its_line() {
    let text = "[workspace]\nname = \"t\"\nsize = \n";
    assert_problem(text, 3, &["TOML syntax"]);
    assert_eq!(problems(text).len(), 1);
}

#[test]
fn missing_required_field_points_at_the_table() {
    // Line 5 is the [[link]] header.
    let text = format!("{WS}\n[[link]]\nname = \"a\"\n");
    assert_problem(&text, 5, &["link \"a\"", "missing required field `depth`"]);
    assert_problem(
        "[workspace]\nsize = 4096\n",
        1,
        &["missing required field `name`"],
    );
    assert_problem(
        "[[link]]\nname = \"a\"\ndepth = 2\n",
        1,
        &["missing the [workspace] table"],
    );
}

#[test]
fn unknown_field_points_at_the_key() {
    let text = format!("{WS}\n[[link]]\nname = \"a\"\ndpeth = 8\n");
    assert_problem(
        &text,
        7,
        &["unknown field `dpeth`", "name, depth, mtu, reliable"],
    );
    assert_problem(
        "[workspace]\nname = \"t\"\n[links]\n",
        3,
        &["unknown field `links`"],
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = format!("{WS}\n[[link]]\nname = \"a\"\ndepth = \"big\"\nreliable = 1\n");
    assert_problem(
        &text,
        7,
        &["`depth` must be an integer, found the string \"big\""],
    );
    assert_problem(&text, 8, &["`reliable` must be true or false"]);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 3
mtu = 0

[[tile]]
name = \"x\"
kind = \"sink\"
cpu = -1
"
    );
    let found = problems(&text);
    let lines: Vec<usize> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![7, 8, 13], "{found:#?}");
    assert!(found[0].1.contains("power of two"), "{found:#?}");
    assert!(
        found[1].1.contains("`mtu` must be in 1..=65535"),
        "{found:#?}"
    );
    assert!(found[2].1.contains("`cpu` must be in"), "{found:#?}");
}

// ---- 2. names --------------------------------------------------------------

#[test]
fn duplicate_names_are_refused() {
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 4

[[link]]
name = \"a\"
depth = 8

[[tile]]
name = \"t\"
kind = \"sink\"

[[tile]]
name = \"t\"
kind = \"echo\"
"
    );
    assert_problem(&text, 9, &["duplicate link name \"a\"", "line 5"]);
    assert_problem(&text, 17, &["duplicate tile name \"t\"", "line 13"]);
}

#[test]
fn invalid_and_too_long_names_are_refused() {
    let long_link = "l".repeat(36);
    let long_tile = "t".repeat(35);
    let text = format!(
        "{WS}
[[link]]
name = \"a/b\"
depth = 4

[[link]]
name = \"{long_link}\"
depth = 4

[[tile]]
name = \"{long_tile}\"
kind = \"sink\"
"
    );
    assert_problem(&text, 6, &["not a valid name", "'/'"]);
    assert_problem(&text, 10, &["36 bytes long; the limit is 35"]);
    assert_problem(&text, 14, &["35 bytes long; the limit is 34"]);
}

#[test]
fn invalid_workspace_name_is_refused() {
    assert_problem(
        "[workspace]\nname = \".hidden\"\n",
        2,
        &["workspace: `name`", "not a valid name"],
    );
}

// ---- 3. kinds and params ---------------------------------------------------

#[test]
fn unknown_kind_lists_the_known_ones() {
    let text = gen_sink("\n[[tile]]\nname = \"d\"\nkind = \"dedupe\"\n");
    assert_problem(
        &text,
        21,
        &["unknown tile kind \"dedupe\" (registered: net-xdp, net-udp, dedup, echo, verify, forward, sink, pcap, gen, netlink, retransmit)"],
    );
}

#[test]
fn params_must_fit_the_kind() {
    // echo takes no params; dedup's depth must be a power of two; net-xdp
    // needs an ifname and each port once. Each params table reports its
    // first problem.
    let text = format!(
        "{WS}
[[tile]]
name = \"e\"
kind = \"echo\"
params = {{ depth = 8 }}

[[tile]]
name = \"d\"
kind = \"dedup\"
params = {{ depth = 1000 }}

[[tile]]
name = \"n\"
kind = \"net-xdp\"
[tile.params]
ports = [9000]

[[tile]]
name = \"n2\"
kind = \"net-xdp\"
params = {{ ifname = \"veth0\", ports = [9000, 9000] }}
"
    );
    assert_problem(
        &text,
        8,
        &["tile \"e\" params: unknown field `depth` (it takes none)"],
    );
    assert_problem(&text, 13, &["`depth` must be a power of two", "1000"]);
    // A missing param: the [tile.params] header.
    assert_problem(
        &text,
        18,
        &["tile \"n\" params: missing required field `ifname`"],
    );
    assert_problem(
        &text,
        24,
        &["tile \"n2\" params: `ports` must list each port once; 9000 is there twice"],
    );
}

#[test]
fn netns_only_on_network_kinds() {
    let text = gen_sink(
        "\n[[tile]]\nname = \"d\"\nkind = \"sink\"\ninputs = [\"a\"]\nparams = { netns = \"ns1\" }\n",
    );
    assert_problem(
        &text,
        23,
        &["tile \"d\" params: unknown field `netns` (it takes none)"],
    );
    // On a network kind it is a param, not a tile field.
    let text = format!(
        "{WS}\n[[tile]]\nname = \"u\"\nkind = \"net-udp\"\nnetns = \"ns1\"\nparams = {{ bind = \"127.0.0.1:9000\" }}\n"
    );
    assert_problem(&text, 8, &["`netns` belongs in the tile's params"]);
}

// ---- 4. links named, io counts, net-xdp mtu --------------------------------

#[test]
fn a_tile_naming_a_missing_link_is_refused() {
    let text = gen_sink("\n[[tile]]\nname = \"s2\"\nkind = \"sink\"\ninputs = [\"a\", \"nope\"]\n");
    assert_problem(
        &text,
        22,
        &["tile \"s2\": input \"nope\" names no [[link]] (links: a)"],
    );
}

#[test]
fn input_and_output_counts_follow_the_kind() {
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 4

[[tile]]
name = \"g\"
kind = \"gen\"
inputs = [\"a\"]
outputs = [\"a\"]

[[tile]]
name = \"s\"
kind = \"sink\"
outputs = []

[[tile]]
name = \"u\"
kind = \"net-udp\"
params = {{ bind = \"127.0.0.1:9000\" }}
"
    );
    assert_problem(&text, 12, &["a gen tile takes no inputs, found 1"]);
    // sink without inputs: the header, since `inputs` is not written.
    assert_problem(&text, 15, &["a sink tile takes 1 to 16 inputs, found 0"]);
    assert_problem(
        &text,
        20,
        &["a net-udp tile needs an input, an output or both"],
    );
}

#[test]
fn net_xdp_output_mtu_must_be_one_frame() {
    let text = format!(
        "{WS}
[[link]]
name = \"rx\"
depth = 64
mtu = 1500

[[tile]]
name = \"net\"
kind = \"net-xdp\"
outputs = [\"rx\"]
params = {{ ifname = \"veth0\", ports = [9000] }}

[[tile]]
name = \"s\"
kind = \"sink\"
inputs = [\"rx\"]
"
    );
    assert_problem(&text, 8, &["link \"rx\" has mtu 1500", "must be 2048"]);
}

// ---- 5. producers and consumers --------------------------------------------

#[test]
fn a_link_without_producer_is_refused() {
    let text = gen_sink("\n[[link]]\nname = \"b\"\ndepth = 4\n\n[[tile]]\nname = \"s2\"\nkind = \"sink\"\ninputs = [\"b\"]\n");
    assert_problem(&text, 19, &["link \"b\" has no producer"]);
}

#[test]
fn a_link_with_two_producers_is_refused() {
    let text = gen_sink("\n[[tile]]\nname = \"g2\"\nkind = \"gen\"\noutputs = [\"a\"]\n");
    assert_problem(
        &text,
        22,
        &["link \"a\" already has a producer, tile \"gen\" (line 9); a link has exactly one"],
    );
}

#[test]
fn a_link_without_consumer_is_refused() {
    let text = gen_sink("\n[[link]]\nname = \"b\"\ndepth = 4\n\n[[tile]]\nname = \"g2\"\nkind = \"gen\"\noutputs = [\"b\"]\n");
    assert_problem(&text, 19, &["link \"b\" has no consumer"]);
}

#[test]
fn a_tile_consuming_a_link_twice_is_refused() {
    let text = gen_sink("\n[[tile]]\nname = \"f\"\nkind = \"forward\"\ninputs = [\"a\", \"a\"]\noutputs = [\"a\"]\n");
    // The second "a" (column of the item) on line 22.
    assert_problem(
        &text,
        22,
        &["tile \"f\" consumes link \"a\" twice (inputs 0 and 1)"],
    );
    let e = bind(&text, &machine()).unwrap_err();
    let twice = e
        .errors()
        .iter()
        .find(|e| e.reason.contains("twice"))
        .unwrap();
    assert_eq!((twice.line, twice.col), (22, 16), "the second \"a\"");
}

// ---- 6. cycles -------------------------------------------------------------

/// net -> dedup -> echo -> net, with `reliable` of the net -> dedup link
/// as given.
fn echo_cycle(rx_reliable: bool) -> String {
    format!(
        "{WS}
[[link]]
name = \"rx\"
depth = 64
reliable = {rx_reliable}

[[link]]
name = \"uniq\"
depth = 64

[[link]]
name = \"tx\"
depth = 64

[[tile]]
name = \"net\"
kind = \"net-udp\"
inputs = [\"tx\"]
outputs = [\"rx\"]
params = {{ bind = \"127.0.0.1:9000\" }}

[[tile]]
name = \"dedup\"
kind = \"dedup\"
inputs = [\"rx\"]
outputs = [\"uniq\"]

[[tile]]
name = \"echo\"
kind = \"echo\"
inputs = [\"uniq\"]
outputs = [\"tx\"]
"
    )
}

#[test]
fn a_cycle_of_reliable_links_is_refused_naming_its_tiles() {
    let text = echo_cycle(true);
    assert_problem(
        &text,
        18,
        &[
            "tiles net -> dedup -> echo -> net form a cycle",
            "(rx, uniq, tx) are all reliable",
            "deadlock",
        ],
    );
    assert_eq!(problems(&text).len(), 1, "one error per cycle");
}

#[test]
fn a_cycle_with_an_unreliable_link_is_fine() {
    parse_ok(&echo_cycle(false));
}

#[test]
fn a_reliable_self_loop_is_a_cycle() {
    let text = gen_sink("\n[[link]]\nname = \"b\"\ndepth = 4\n\n[[tile]]\nname = \"f\"\nkind = \"forward\"\ninputs = [\"b\"]\noutputs = [\"b\"]\n");
    assert_problem(&text, 23, &["tiles f -> f form a cycle whose links (b)"]);
}

// ---- 7. cpus ---------------------------------------------------------------

#[test]
fn a_cpu_the_machine_lacks_is_refused_naming_the_cpus() {
    let text = gen_sink("cpu = 7\n");
    assert_problem(
        &text,
        18,
        &["tile \"sink\": cpu 7 does not exist on this machine (cpus: 0-3)"],
    );
    let odd = Machine {
        cpus: vec![0, 1, 2, 5, 7, 8],
    };
    let e = bind(&gen_sink("cpu = 4\n"), &odd).unwrap_err();
    assert!(e.to_string().contains("(cpus: 0-2, 5, 7-8)"), "{e}");
}

#[test]
fn two_tiles_may_share_a_cpu() {
    let text = format!(
        "{WS}
[[link]]
name = \"a\"
depth = 64

[[tile]]
name = \"gen\"
kind = \"gen\"
cpu = 3
outputs = [\"a\"]

[[tile]]
name = \"sink\"
kind = \"sink\"
cpu = 3
inputs = [\"a\"]
"
    );
    let t = parse_ok(&text);
    assert_eq!(t.tiles[0].cpu, Some(3));
    assert_eq!(t.tiles[1].cpu, Some(3));
}

#[test]
fn the_reference_example_is_valid() {
    // The example at the top of the format reference (the module docs).
    let src = include_str!("../src/topo/mod.rs");
    let start = src.find("//! ```toml\n").expect("the example") + "//! ```toml\n".len();
    let end = start + src[start..].find("//! ```\n").unwrap();
    let text: String = src[start..end]
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap().trim_start_matches(' '))
        .map(|l| format!("{l}\n"))
        .collect();
    let t = bind(&text, &Machine::with_cpus(1)).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(t.tiles.len(), 3);
}

#[test]
fn a_parameter_error_is_reported_with_the_graph_errors() {
    // A bad parameter (line 16) and a link nobody consumes (line 5): both
    // at once, so one run shows every fix to make.
    let text = gen_sink("").replace(
        "outputs = [\"a\"]\n",
        "outputs = [\"a\", \"b\"]\nparams = { burst = \"x\" }\n",
    ) + "\n[[link]]\nname = \"b\"\ndepth = 64\n";
    let found = problems(&text);
    assert!(
        found.iter().any(|(_, r)| r.contains("`burst` must be")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|(_, r)| r.contains("link \"b\" has no consumer")),
        "{found:#?}"
    );
}

#[test]
fn a_negative_value_for_an_unsigned_parameter_is_refused_plainly() {
    let text = gen_sink("").replace(
        "outputs = [\"a\"]\n",
        "outputs = [\"a\"]\nparams = { count = -1 }\n",
    );
    assert_problem(
        &text,
        13,
        &["tile \"gen\" params: `count` must not be negative, found -1"],
    );
    let found = problems(&text);
    assert!(
        found
            .iter()
            .all(|(_, r)| !r.contains("18446744073709551615")),
        "{found:#?}"
    );
}

// ---- 8. one parse checks everything ----------------------------------------

/// `Registry::parse` (what a pipeline binary calls) checks the graph as
/// `Registry::load` and `Registry::bind` do: a reliable cycle fails there,
/// not later at `Pipeline::create`.
#[test]
fn registry_parse_refuses_a_reliable_cycle() {
    let registry = tilewire_pipeline::Registry::with_builtins();
    let e = registry.parse(&echo_cycle(true)).unwrap_err();
    assert_eq!(e.errors().len(), 1, "{e}");
    assert!(
        e.to_string()
            .starts_with("line 18: tiles net -> dedup -> echo -> net form a cycle"),
        "{e}"
    );
    registry.parse(&echo_cycle(false)).unwrap();
}

/// One parse reports a parameter error and the graph errors of the same
/// topology together: fixing one does not reveal the other.
#[test]
fn registry_parse_reports_a_parameter_error_with_the_graph_errors() {
    let text = echo_cycle(true).replace(
        "outputs = [\"uniq\"]\n",
        "outputs = [\"uniq\"]\nparams = { depth = 3 }\n",
    );
    let e = tilewire_pipeline::Registry::with_builtins()
        .parse(&text)
        .unwrap_err();
    let found: Vec<(usize, &str)> = e
        .errors()
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{e}");
    assert_eq!(found[0].0, 18, "{e}");
    assert!(
        found[0]
            .1
            .starts_with("tiles net -> dedup -> echo -> net form a cycle"),
        "{e}"
    );
    assert_eq!(found[1].0, 30, "{e}");
    assert!(
        found[1]
            .1
            .starts_with("tile \"dedup\" params: `depth` must be"),
        "{e}"
    );
}
