//! The layout report: what ran pinned where.

use tilewire_pipeline::Topology;

/// How the tiles of `topo` run: its threads, which tiles take turns on
/// each, their cpu and idle policy.
pub(crate) fn pipeline_layout(topo: &Topology) -> String {
    let cpus = tilewire_pipeline::topo::Machine::this().cpus.len();
    let groups = topo.layout();
    let threads: Vec<String> = groups
        .iter()
        .map(|g| {
            let idle = match g.idle {
                tilewire_tile::stem::IdlePolicy::Spin => "spin",
                tilewire_tile::stem::IdlePolicy::Backoff => "backoff",
            };
            let cpu = g
                .cpu
                .map_or_else(|| "unpinned".to_owned(), |c| format!("cpu {c}"));
            let tiles: Vec<&str> = g
                .tiles
                .iter()
                .map(|&i| topo.tiles[i].name.as_str())
                .collect();
            if g.is_shared() {
                format!("[{}] taking turns ({cpu}, {idle})", tiles.join(", "))
            } else {
                format!("{} ({cpu}, {idle})", tiles[0])
            }
        })
        .collect();
    format!(
        "{} tiles on {} threads on {cpus} cpus: {}",
        topo.tiles.len(),
        groups.len(),
        threads.join("; ")
    )
}
