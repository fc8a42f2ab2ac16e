//! A retransmit tile's topology checks, each at its line: a destination
//! set larger than `max_destinations`, more sets than `sets`, a resolver
//! that is not a netlink tile, an output link shallower than a frag's
//! frames.

use tilewire_pipeline::topo::{Machine, TopologySpec};
use tilewire_pipeline::Registry;

fn topology(rt_params: &str, tx_depth: u64, resolver_kind: &str) -> String {
    format!(
        r#"[workspace]
name = "rtcheck"

[[link]]
name = "shreds"
depth = 64

[[link]]
name = "tx"
depth = {tx_depth}

[[tile]]
name = "src"
kind = "gen"
outputs = ["shreds"]

[[tile]]
name = "nl"
kind = "{resolver_kind}"

[[tile]]
name = "rt"
kind = "retransmit"
inputs = ["shreds"]
outputs = ["tx"]
params = {{ resolver = "nl", ifname = "eth0", src_port = 8000, {rt_params} }}

[[tile]]
name = "out"
kind = "sink"
inputs = ["tx"]
"#
    )
}

fn problems(text: &str) -> Vec<(usize, String)> {
    let spec = TopologySpec::parse(text).unwrap();
    match Registry::with_builtins().bind(spec, &Machine::with_cpus(4)) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.line, e.reason.clone()))
            .collect(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn a_good_retransmit_tile_passes() {
    let text = topology(
        r#"max_destinations = 4, destinations = [["198.18.0.2:8001", "[2001:2::2]:8001"]]"#,
        64,
        "netlink",
    );
    assert_eq!(problems(&text), vec![]);
}

#[test]
fn a_destination_set_larger_than_the_maximum_is_refused_at_its_line() {
    let text = topology(
        r#"max_destinations = 2, destinations = [["198.18.0.2:1", "198.18.0.3:1", "198.18.0.4:1"]]"#,
        64,
        "netlink",
    );
    let found = problems(&text);
    let rt = line_of(&text, "kind = \"retransmit\"");
    assert!(
        found.iter().any(|(l, why)| *l >= rt
            && why.contains("set 0 has 3 destinations, more than max_destinations (2)")),
        "{found:#?}"
    );
}

#[test]
fn more_sets_than_declared_a_wrong_resolver_and_a_shallow_link_are_named() {
    let text = topology(r#"sets = 1, destinations = [[], []]"#, 64, "sink");
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|(_, w)| w.contains("2 sets given, and `sets` is 1")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|(_, w)| w.contains("\"nl\" is a \"sink\" tile, not a netlink tile")),
        "{found:#?}"
    );
    let text = topology("max_destinations = 128", 64, "netlink");
    let found = problems(&text);
    let tx_depth = line_of(&text, "name = \"tx\"") + 1;
    assert!(
        found
            .iter()
            .any(|(l, w)| *l == tx_depth && w.contains("64 frags deep")),
        "the tx link's depth, at its line {tx_depth}: {found:#?}"
    );
}

#[test]
fn an_asks_link_shallower_than_a_frag_s_asks_is_refused_at_its_depth() {
    let text = topology("max_destinations = 64", 64, "netlink")
        .replace(
            "[[tile]]\nname = \"src\"",
            "[[link]]\nname = \"asks\"\ndepth = 16\nreliable = false\n\n[[tile]]\nname = \"src\"",
        )
        .replace("outputs = [\"tx\"]", "outputs = [\"tx\", \"asks\"]")
        .replace(
            "name = \"nl\"\nkind = \"netlink\"",
            "name = \"nl\"\nkind = \"netlink\"\ninputs = [\"asks\"]",
        );
    let found = problems(&text);
    let depth = line_of(&text, "name = \"asks\"") + 1;
    assert!(
        found
            .iter()
            .any(|(l, w)| *l == depth && w.contains("16 frags deep")),
        "the asks link's depth, at its line {depth}: {found:#?}"
    );
}
