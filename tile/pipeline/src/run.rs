//! One tile of a pipeline, run on the calling thread.
//!
//! [`run_tile`] runs one tile to the end on the calling thread: it enters
//! the tile's network namespace if it names one (that thread only), pins it
//! to its cpu if it names one, builds the tile from its kind and
//! parameters, joins its links and runs the [stem](tilewire_tile::stem)
//! loop until the tile is asked to stop (by the runner, or by any process
//! joined to the workspace through the tile's metrics). Whatever a tile
//! needs beyond its loop (an XDP program attached to an interface) is held
//! for exactly as long as it runs and released when it returns, even on a
//! panic.
//!
//! Threads or processes is only a question of who calls [`run_tile`]: a
//! thread per tile of one process, or one process per tile. The tiles are
//! the same code either way and meet only in the workspace.

use tilewire_shmem::Workspace;
use tilewire_tile::link::Link;
use tilewire_tile::stem::metrics::{TileMetrics, TileMetricsHandle};
use tilewire_tile::stem::{metrics_name, RunEnd, Stem, StemConfig};

use crate::error::PipelineError;
use crate::kind::BuildCtx;
use crate::topo::Topology;

/// Runs tile `name` of `topo` (in `ws`) on the calling thread until it is
/// asked to stop; see the [module docs](self). `started` is called once the
/// tile is built, just before its loop starts.
///
/// # Errors
/// Anything that keeps the tile from being built; nothing of it is left
/// running then.
pub fn run_tile(
    ws: &Workspace,
    topo: &Topology,
    name: &str,
    config: StemConfig,
) -> Result<RunEnd, PipelineError> {
    let spec = topo
        .tiles
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| PipelineError::NoSuchTile(name.into()))?;
    let setup = |why: String| PipelineError::Setup {
        tile: name.into(),
        why,
    };
    if let Some(ns) = spec.netns() {
        tilewire_aio::netns::enter_thread(ns).map_err(|e| setup(e.to_string()))?;
    }
    if let Some(cpu) = spec.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(setup(format!("cannot pin to cpu {cpu}")));
        }
    }
    let (kind, params) = spec.erased();
    let mut ctx = BuildCtx::new(ws, topo, spec);
    let tile = kind
        .build(params, &mut ctx)
        .map_err(|e| setup(e.to_string()))?;
    let keep = ctx.into_kept();
    let inputs: Vec<Link<'_>> = spec
        .inputs
        .iter()
        .map(|l| join_link(ws, l))
        .collect::<Result<_, _>>()?;
    let outputs: Vec<Link<'_>> = spec
        .outputs
        .iter()
        .map(|l| join_link(ws, l))
        .collect::<Result<_, _>>()?;
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
    stem.set_idle(topo.idle_policy(spec));
    let end = stem.run();
    drop(stem);
    drop(keep);
    Ok(end)
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
