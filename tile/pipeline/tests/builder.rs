//! `PipelineBuilder` says all a topology file says, and its errors name
//! the tile (or link) and key they concern, never a line of the text it
//! generated.

use tilewire_pipeline::shmem::PageKind;
use tilewire_pipeline::tile::stem::{IdlePolicy, ShareBy};
use tilewire_pipeline::topo::{Machine, TopologySpec};
use tilewire_pipeline::{LinkDef, Mode, PipelineBuilder, Registry, Restart, TileDef};

/// Every key of every table, set through the builder.
fn everything() -> PipelineBuilder {
    PipelineBuilder::new("b-every")
        .mode(Mode::Processes)
        .size(8 << 20)
        .pages(PageKind::Normal)
        .link(LinkDef::new("raw", 256).mtu(1500).unreliable())
        .link(LinkDef::new("out", 64))
        .tile(
            TileDef::new("gen", "gen")
                .output("raw")
                .cpu(0)
                .idle(IdlePolicy::Backoff)
                .param("count", 10),
        )
        .tile(
            TileDef::new("fwd", "forward")
                .input("raw")
                .output("out")
                .group("g")
                .restart(Restart::OnFailure)
                .count(2)
                .share(ShareBy::Sig),
        )
        .tile(TileDef::new("sink", "sink").input("out").group("g"))
}

/// The same, as a file says it.
const EVERYTHING: &str = r#"
[workspace]
name = "b-every"
mode = "processes"
size = 8388608
pages = "normal"

[[link]]
name = "raw"
depth = 256
mtu = 1500
reliable = false

[[link]]
name = "out"
depth = 64

[[tile]]
name = "gen"
kind = "gen"
outputs = ["raw"]
cpu = 0
idle = "backoff"
params = { count = 10 }

[[tile]]
name = "fwd"
kind = "forward"
inputs = ["raw"]
outputs = ["out"]
group = "g"
restart = "on-failure"
count = 2
share = "sig"

[[tile]]
name = "sink"
kind = "sink"
inputs = ["out"]
group = "g"
"#;

#[test]
fn the_builder_says_all_a_topology_file_says() {
    let registry = Registry::with_builtins();
    let built = everything()
        .topology(&registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let file = registry
        .bind(TopologySpec::parse(EVERYTHING).unwrap(), &Machine::this())
        .unwrap_or_else(|e| panic!("{e}"));
    let (b, f) = (built.spec(), file.spec());
    assert_eq!(b.workspace.name, f.workspace.name);
    assert_eq!(b.workspace.size, f.workspace.size);
    assert_eq!(b.workspace.pages, f.workspace.pages);
    assert_eq!(b.workspace.mode, Mode::Processes);
    assert_eq!(b.workspace.mode, f.workspace.mode);
    let links = |s: &TopologySpec| -> Vec<(String, u64, usize, bool)> {
        s.links
            .iter()
            .map(|l| (l.name.clone(), l.depth, l.mtu, l.reliable))
            .collect()
    };
    assert_eq!(links(b), links(f));
    assert_eq!(b.links.len(), 3, "`count = 2` made out.0 and out.1");
    let tiles = |s: &TopologySpec| -> Vec<String> {
        s.tiles
            .iter()
            .map(|t| {
                format!(
                    "{} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    t.name,
                    t.kind(),
                    t.cpu,
                    t.group,
                    t.restart,
                    t.share,
                    t.idle,
                    t.inputs,
                    t.outputs
                )
            })
            .collect()
    };
    assert_eq!(tiles(b), tiles(f));
    let fwd = b.tile("fwd.1").expect("count made fwd.0 and fwd.1");
    assert_eq!(fwd.restart, Restart::OnFailure);
    assert_eq!(
        fwd.share.map(|s| (s.index, s.of, s.by)),
        Some((1, 2, ShareBy::Sig))
    );
    assert_eq!(b.tile("gen").unwrap().idle, Some(IdlePolicy::Backoff));
}

/// The text of a builder's error: it must not cite a line of the text the
/// builder generated.
fn error_of(builder: PipelineBuilder) -> String {
    let e = builder
        .topology(&Registry::with_builtins())
        .expect_err("a bad topology");
    let text = e.to_string();
    assert!(!text.contains("line "), "cites a generated line: {text}");
    text
}

#[test]
fn a_bad_parameter_is_named_by_its_tile_and_parameter() {
    let text = error_of(
        PipelineBuilder::new("b-param")
            .link(LinkDef::new("a", 64))
            .tile(
                TileDef::new("gen", "gen")
                    .output("a")
                    .param("burst", "lots"),
            )
            .tile(TileDef::new("sink", "sink").input("a")),
    );
    assert!(
        text.starts_with("tile \"gen\" params: `burst` must be"),
        "{text}"
    );
}

#[test]
fn every_error_of_a_builder_is_named_by_its_place() {
    // A bad parameter, a link no tile consumes, an output too many and a
    // cpu the machine lacks: each named by its table and key, all at once.
    let text = error_of(
        PipelineBuilder::new("b-all")
            .link(LinkDef::new("a", 64))
            .link(LinkDef::new("lost", 64))
            .tile(
                TileDef::new("gen", "gen")
                    .output("a")
                    .output("lost")
                    .param("rate", -1),
            )
            .tile(TileDef::new("sink", "sink").input("a").cpu(1 << 19)),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("link \"lost\" has no consumer"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("tile \"gen\": a gen tile takes exactly 1 outputs"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("tile \"gen\" params: `rate` must not be negative"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("tile \"sink\": cpu 524288 does not exist"),
        "{text}"
    );
}

#[test]
fn an_error_that_names_no_table_is_told_with_its_place() {
    let text = error_of(
        PipelineBuilder::new("b-small")
            .size(4096)
            .link(LinkDef::new("a", 64))
            .tile(TileDef::new("gen", "gen").output("a"))
            .tile(TileDef::new("sink", "sink").input("a")),
    );
    assert!(
        text.starts_with("workspace \"b-small\", `size`: the topology needs"),
        "{text}"
    );
}

#[test]
fn a_bad_key_of_a_link_or_a_tile_is_named_by_its_table() {
    let text = error_of(
        PipelineBuilder::new("b-keys")
            .link(LinkDef::new("a", 3))
            .tile(TileDef::new("gen", "gen").output("a").group("no room"))
            .tile(TileDef::new("sink", "sink").input("a")),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("link \"a\": `depth` must be"),
        "{text}"
    );
    assert!(lines[1].starts_with("tile \"gen\": `group` "), "{text}");
}
