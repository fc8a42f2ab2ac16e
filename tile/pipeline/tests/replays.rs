//! A restart replays: a topology where a tile with `restart =
//! "on-failure"` feeds, over any chain of tiles that pass replays on, a
//! kind that must see each frag once is refused at that `restart`; a
//! dedup between them takes the replays out, and is accepted.

use tilewire_pipeline::kinds::sink::SinkKind;
use tilewire_pipeline::tile::stem::Tile;
use tilewire_pipeline::topo::{Machine, TopologySpec};
use tilewire_pipeline::{BuildCtx, BuildError, IoCounts, NoParams, Registry, Replays, TileKind};

/// A sink that must see each frag once (a ledger, say).
struct OnceKind;

impl TileKind for OnceKind {
    type Params = NoParams;
    fn name(&self) -> &str {
        "once"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }
    fn replays(&self) -> Replays {
        Replays::Refuse
    }
    fn build<'w>(
        &self,
        p: &NoParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        SinkKind.build(p, ctx)
    }
}

/// gen -> (middle tiles) -> once, in processes mode; `restart` goes on
/// tile `restarting`, on the line after its `kind`.
fn topology(middle: &[&str], restarting: &str) -> String {
    let mut text = String::from("[workspace]\nname = \"replays\"\nmode = \"processes\"\n");
    let n = middle.len() + 1;
    for i in 0..n {
        text += &format!("\n[[link]]\nname = \"l{i}\"\ndepth = 64\n");
    }
    let mut tile = |name: &str, kind: &str, input: Option<usize>, output: Option<usize>| {
        text += &format!("\n[[tile]]\nname = \"{name}\"\nkind = \"{kind}\"\n");
        if name == restarting {
            text += "restart = \"on-failure\"\n";
        }
        if let Some(i) = input {
            text += &format!("inputs = [\"l{i}\"]\n");
        }
        if let Some(o) = output {
            text += &format!("outputs = [\"l{o}\"]\n");
        }
    };
    tile("gen", "gen", None, Some(0));
    for (i, kind) in middle.iter().enumerate() {
        tile(&format!("m{i}"), kind, Some(i), Some(i + 1));
    }
    tile("once", "once", Some(n - 1), None);
    text
}

fn problems(text: &str) -> Vec<(usize, String)> {
    let registry = Registry::with_builtins().with(OnceKind).unwrap();
    let spec = TopologySpec::parse(text).unwrap();
    match registry.bind(spec, &Machine::with_cpus(4)) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.line, e.reason.clone()))
            .collect(),
    }
}

fn restart_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with("restart"))
        .expect("a restart line")
        + 1
}

#[test]
fn a_restarting_tile_feeding_a_kind_that_refuses_replays_is_refused_at_its_restart() {
    let text = topology(&["forward"], "m0");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (line, why) = &found[0];
    assert_eq!(*line, restart_line(&text), "{why}");
    for needle in ["tile \"m0\"", "tile \"once\"", "over l1", "put a dedup"] {
        assert!(why.contains(needle), "{needle:?} in {why}");
    }
}

#[test]
fn replays_pass_through_tiles_that_pass_them_on() {
    let text = topology(&["forward", "verify"], "gen");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, restart_line(&text));
    assert!(found[0].1.contains("over l0 -> l1 -> l2"), "{}", found[0].1);
}

#[test]
fn a_dedup_between_takes_the_replays_out() {
    assert_eq!(problems(&topology(&["forward", "dedup"], "m0")), vec![]);
    assert_eq!(problems(&topology(&["dedup", "forward"], "gen")), vec![]);
    // No restart: nothing to refuse.
    assert_eq!(problems(&topology(&["forward"], "none")), vec![]);
}

#[test]
fn a_group_mate_of_a_restarting_tile_replays_too() {
    // gen restarts; m1 (a forward right before `once`) shares its group,
    // so its process restarts with gen's.
    let text = topology(&["dedup", "forward"], "gen")
        .replace(
            "name = \"gen\"\nkind = \"gen\"\n",
            "name = \"gen\"\nkind = \"gen\"\ngroup = \"g\"\n",
        )
        .replace(
            "name = \"m1\"\nkind = \"forward\"\n",
            "name = \"m1\"\nkind = \"forward\"\ngroup = \"g\"\n",
        );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].1.contains("over l2"), "{}", found[0].1);
}
