//! Tiles of a pipeline, run on the calling thread.
//!
//! [`run_tile`] runs one tile to the end on the calling thread: it enters
//! the tile's network namespace if it names one (that thread only), pins it
//! to its cpu if it names one, builds the tile from its kind and
//! parameters, joins its links and runs the [stem](tilewire_tile::stem)
//! loop until the tile is asked to stop (by the runner, or by any process
//! joined to the workspace through the tile's metrics). Whatever a tile
//! needs beyond its loop (an XDP program attached to an interface) is held
//! for exactly as long as it runs and released when it returns, even on a
//! panic. [`run_group`] does the same for the tiles of a
//! [group](crate::topo::TileGroup), which take turns on the one thread
//! ([`Group`]).
//!
//! Threads or processes is only a question of who calls these: a thread
//! per group of one process, or one process per group. The tiles are the
//! same code either way and meet only in the workspace.

use tilewire_shmem::Workspace;
use tilewire_tile::link::Link;
use tilewire_tile::stem::metrics::{TileMetrics, TileMetricsHandle};
use tilewire_tile::stem::{metrics_name, Group, MemberEnd, RunEnd, Stem, StemConfig, Tile};

use crate::error::PipelineError;
use crate::kind::BuildCtx;
use crate::topo::{TileGroup, TileSpec};
use crate::Topology;

/// Runs tile `name` of `topo` (in `ws`) on the calling thread until it is
/// asked to stop; see the [module docs](self).
///
/// # Errors
/// Anything that keeps the tile from being built; nothing of it is left
/// running then.
pub(crate) fn run_tile(
    ws: &Workspace,
    topo: &Topology,
    name: &str,
    config: StemConfig,
) -> Result<RunEnd, PipelineError> {
    let spec = topo
        .tile(name)
        .ok_or_else(|| PipelineError::NoSuchTile(name.into()))?;
    enter(topo.netns(name), spec.cpu, name)?;
    let (mut stem, keep) = build(ws, topo, spec, config)?;
    stem.set_idle(topo.idle_policy(spec));
    let end = stem.run();
    drop(stem);
    drop(keep);
    Ok(end)
}

/// Runs the tiles of `group` (one of `topo`'s [layout](crate::topo::TopologySpec::layout))
/// on the calling thread, taking turns, until each was asked to stop or
/// panicked; calls `ended` with each tile's name and end as soon as it
/// ends, and returns every tile's end. With `stop_on_panic`, a tile that
/// panics makes the others drain their inputs and stop (what a group in a
/// process of its own does: nobody else would stop them).
///
/// # Errors
/// Anything that keeps one of the tiles from being built; none of them
/// is left running then.
pub(crate) fn run_group(
    ws: &Workspace,
    topo: &Topology,
    group: &TileGroup,
    config: StemConfig,
    stop_on_panic: bool,
    mut ended: impl FnMut(&str, &MemberEnd),
) -> Result<Vec<(String, MemberEnd)>, PipelineError> {
    let specs: Vec<&TileSpec> = group.tiles.iter().map(|&i| &topo.tiles[i]).collect();
    let first = specs.first().map_or("", |s| s.name.as_str());
    enter(
        specs.iter().find_map(|s| topo.netns(&s.name)),
        group.cpu,
        first,
    )?;
    let (mut stems, mut kept) = (Vec::new(), Vec::new());
    for s in &specs {
        let (stem, keep) = build(ws, topo, s, config)?;
        stems.push(stem);
        kept.push(keep);
    }
    let mut g = Group::new(stems);
    g.set_idle(group.idle);
    g.stop_on_panic(stop_on_panic);
    let ends = g.run(|i, e| ended(&specs[i].name, e));
    drop(g);
    drop(kept);
    Ok(specs.iter().map(|s| s.name.clone()).zip(ends).collect())
}

/// Enters network namespace `netns` and pins the thread to `cpu`, as tile
/// `tile` asks.
fn enter(netns: Option<&str>, cpu: Option<usize>, tile: &str) -> Result<(), PipelineError> {
    let setup = |why: String| PipelineError::Setup {
        tile: tile.into(),
        why,
    };
    if let Some(ns) = netns {
        tilewire_aio::netns::enter_thread(ns).map_err(|e| setup(e.to_string()))?;
    }
    if let Some(cpu) = cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(setup(format!("cannot pin to cpu {cpu}")));
        }
    }
    Ok(())
}

/// What a tile's kind keeps for as long as the tile runs (an attached XDP
/// program); dropped after the tile's stem.
type Kept = Vec<Box<dyn std::any::Any>>;

/// Tile `spec`'s stem: the tile built from its kind, its links joined.
fn build<'w>(
    ws: &'w Workspace,
    topo: &Topology,
    spec: &TileSpec,
    config: StemConfig,
) -> Result<(Stem<'w, Box<dyn Tile + 'w>>, Kept), PipelineError> {
    let name = spec.name.as_str();
    let index = topo
        .tiles
        .iter()
        .position(|t| t.name == spec.name)
        .ok_or_else(|| PipelineError::NoSuchTile(name.into()))?;
    let (kind, params) = topo.erased(index);
    let mut ctx = BuildCtx::new(ws, topo.spec(), topo.all_params(), spec);
    let tile = kind
        .build(params, &mut ctx)
        .map_err(|e| PipelineError::Setup {
            tile: name.into(),
            why: e.to_string(),
        })?;
    let keep = ctx.into_kept();
    let join = |names: &[String]| -> Result<Vec<Link<'w>>, PipelineError> {
        names.iter().map(|l| join_link(ws, l)).collect()
    };
    let (inputs, outputs) = (join(&spec.inputs)?, join(&spec.outputs)?);
    let ins: Vec<(&Link<'_>, usize)> = inputs
        .iter()
        .enumerate()
        .map(|(i, l)| (l, topo.consumer_index(name, i).unwrap_or(usize::MAX)))
        .collect();
    let outs: Vec<&Link<'_>> = outputs.iter().collect();
    let mut stem =
        Stem::new(ws, name, tile, &ins, &outs, config).map_err(|source| PipelineError::Tile {
            tile: name.into(),
            source,
        })?;
    if let Some(share) = spec.share {
        stem.set_share(share.index, share.of, share.by);
    }
    Ok((stem, keep))
}

fn join_link<'w>(ws: &'w Workspace, name: &str) -> Result<Link<'w>, PipelineError> {
    Link::join(ws, name).map_err(|source| PipelineError::Link {
        link: name.into(),
        source,
    })
}

/// The metrics of tile `name` in `ws`, if it has started.
pub fn tile_metrics<'w>(ws: &'w Workspace, name: &str) -> Option<TileMetricsHandle<'w>> {
    let a = ws.lookup(&metrics_name(name))?;
    let mem = ws.region(a.gaddr, a.size as usize).ok()?;
    TileMetrics::join(mem).ok()
}
