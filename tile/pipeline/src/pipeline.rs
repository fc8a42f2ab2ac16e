//! Pipelines from a [topology](crate::topo): make the workspace, run the tiles.
//!
//! # Making
//!
//! [`create`] makes everything a topology names, before any tile runs: the
//! workspace, every link (its consumers reliable or not, a link fed by
//! AF_XDP sized to be its socket's UMEM), every dedup tile's tcache, and a
//! copy of the topology text itself ([`TOPO_NAME`]). The copy is what lets
//! a tile in *another process* be started with nothing but the workspace's
//! name and its own ([`run_tile`] reads it back): `tilewire tile
//! --workspace W --name T`. If a step fails, the workspace is removed again:
//! a failed start leaves nothing behind.
//!
//! # Running
//!
//! [`run_tile`] runs one tile to the end on the calling thread: it enters
//! the tile's network namespace if it names one (that thread only), pins it
//! to its cpu if it names one, builds the tile from its kind and
//! parameters, joins its links and runs the [stem](tilewire_tile::stem) loop until
//! the tile is asked to stop ([`stop_all`], or any process joined to the
//! workspace through the tile's metrics). Whatever a tile needs beyond
//! its loop (an XDP program attached to an interface) is held for exactly
//! as long as it runs and released when it returns, even on a panic.
//!
//! Threads or processes is only a question of who calls [`run_tile`]: a
//! thread per tile of one process, or one `tilewire tile` process per tile.
//! The tiles are the same code either way and meet only in the workspace.

mod build;

use std::time::{Duration, Instant};

use tilewire_shmem::{
    load_bytes, store_bytes, Access, AllocError, CreateError, OpenError, Workspace,
};

use crate::kinds::dedup::tcache_name;
use crate::topo::{Kind, TopoErrors, Topology};
use tilewire_tile::link::{Link, LinkError};
use tilewire_tile::stem::metrics::{TileMetrics, TileMetricsHandle, TileState};
use tilewire_tile::stem::{metrics_name, RunEnd, Stem, StemConfig, TileError};
use tilewire_tile::tcache::Tcache;

pub use build::{build_tile, Built};

/// The allocation holding the topology text: a little-endian `u64` length,
/// then the UTF-8 text.
pub const TOPO_NAME: &str = "topology";

/// Why a pipeline could not be made or a tile run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The topology is wrong.
    #[error("{0}")]
    Topo(#[from] TopoErrors),
    /// A workspace of that name exists already.
    #[error(
        "workspace {name:?} exists already (another pipeline, or one left by a crash: \
         `tilewire shmem ls` says which; `tilewire shmem rm {name}` removes it)"
    )]
    Exists {
        /// The name.
        name: String,
    },
    /// Making the workspace failed.
    #[error("creating workspace {name:?}: {source}")]
    Create {
        /// The name.
        name: String,
        /// Why.
        source: CreateError,
    },
    /// Joining the workspace failed.
    #[error("joining workspace {name:?}: {source}")]
    Join {
        /// The name.
        name: String,
        /// Why.
        source: OpenError,
    },
    /// Allocating in the workspace failed.
    #[error("allocating {part:?}: {source}")]
    Alloc {
        /// The allocation.
        part: String,
        /// Why.
        source: AllocError,
    },
    /// The workspace's stored topology is missing or unreadable.
    #[error("workspace {name:?}: {why}")]
    Stored {
        /// The workspace.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A link could not be made or joined.
    #[error("link {link:?}: {source}")]
    Link {
        /// The link.
        link: String,
        /// Why.
        source: LinkError,
    },
    /// The topology has no tile of that name.
    #[error("the topology has no tile {0:?}")]
    NoSuchTile(String),
    /// The tile could not be set up (its metrics, its links).
    #[error("tile {tile:?}: {source}")]
    Tile {
        /// The tile.
        tile: String,
        /// Why.
        source: TileError,
    },
    /// The tile's own resources could not be made: a socket, an XDP
    /// program, a file, a network namespace, a cpu.
    #[error("tile {tile:?}: {why}")]
    Setup {
        /// The tile.
        tile: String,
        /// What failed, and how to fix it where that is known.
        why: String,
    },
}

/// Makes the workspace of `topo` with every link, tcache and the topology
/// text in it (see the [module docs](self)); the text is what tiles in
/// other processes build themselves from.
///
/// # Errors
/// [`PipelineError::Exists`] if the workspace exists; any failure to make a
/// part, after which the workspace is removed again.
pub fn create(topo: &Topology) -> Result<Workspace, PipelineError> {
    let spec = &topo.workspace;
    let ws = match Workspace::create(&spec.name, spec.size, spec.pages) {
        Ok(ws) => ws,
        Err(CreateError::Exists { .. }) => {
            return Err(PipelineError::Exists {
                name: spec.name.clone(),
            })
        }
        Err(source) => {
            return Err(PipelineError::Create {
                name: spec.name.clone(),
                source,
            })
        }
    };
    match fill(&ws, topo) {
        Ok(()) => Ok(ws),
        Err(e) => {
            let name = ws.name().to_owned();
            drop(ws);
            let _ = Workspace::unlink(&name);
            Err(e)
        }
    }
}

fn fill(ws: &Workspace, topo: &Topology) -> Result<(), PipelineError> {
    store_topology(ws, topo.text())?;
    for l in &topo.links {
        Link::create_with_data(ws, &l.name, &topo.link_params(l), topo.data_mtus(l)).map_err(
            |source| PipelineError::Link {
                link: l.name.clone(),
                source,
            },
        )?;
    }
    for t in &topo.tiles {
        if let Kind::Dedup(p) = &t.kind {
            let part = tcache_name(&t.name);
            let map_cnt = Tcache::default_map_cnt(p.depth).ok_or_else(|| PipelineError::Setup {
                tile: t.name.clone(),
                why: format!("dedup depth {} is not a usable tcache depth", p.depth),
            })?;
            let fp = Tcache::footprint(p.depth, map_cnt).ok_or_else(|| PipelineError::Setup {
                tile: t.name.clone(),
                why: format!("dedup depth {} is too large", p.depth),
            })?;
            let alloc = |source| PipelineError::Alloc {
                part: part.clone(),
                source,
            };
            let g = ws.alloc_named(&part, Tcache::ALIGN, fp, 0).map_err(alloc)?;
            let mem = ws.region(g, fp).expect("a fresh allocation is inside");
            Tcache::new(mem, p.depth, map_cnt).map_err(|e| PipelineError::Setup {
                tile: t.name.clone(),
                why: format!("formatting its tcache: {e}"),
            })?;
        }
    }
    Ok(())
}

fn store_topology(ws: &Workspace, text: &str) -> Result<(), PipelineError> {
    let len = 8 + text.len();
    let g = ws
        .alloc_named(TOPO_NAME, 8, len, 0)
        .map_err(|source| PipelineError::Alloc {
            part: TOPO_NAME.into(),
            source,
        })?;
    let mem = ws.region(g, len).expect("a fresh allocation is inside");
    let bytes = mem.atomic_bytes(0, len).expect("in bounds");
    store_bytes(&bytes[..8], &(text.len() as u64).to_le_bytes());
    store_bytes(&bytes[8..], text.as_bytes());
    Ok(())
}

/// The topology text stored in `ws` by [`create`].
///
/// # Errors
/// [`PipelineError::Stored`] if there is none, or it is cut short or not
/// UTF-8 (a workspace not made by [`create`], or damaged).
pub fn stored_text(ws: &Workspace) -> Result<String, PipelineError> {
    let bad = |why: &str| PipelineError::Stored {
        name: ws.name().into(),
        why: why.into(),
    };
    let a = ws
        .lookup(TOPO_NAME)
        .ok_or_else(|| bad("holds no topology (not made by `tilewire run`?)"))?;
    let mem = ws
        .region(a.gaddr, a.size as usize)
        .map_err(|_| bad("its topology lies outside the workspace"))?;
    let bytes = mem
        .atomic_bytes(0, a.size as usize)
        .ok_or_else(|| bad("its topology is cut short"))?;
    let mut len = [0u8; 8];
    load_bytes(
        &mut len,
        bytes
            .get(..8)
            .ok_or_else(|| bad("its topology is cut short"))?,
    );
    let len = u64::from_le_bytes(len) as usize;
    let body = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or_else(|| bad("its topology's length runs past its allocation"))?;
    let mut text = vec![0u8; len];
    load_bytes(&mut text, body);
    String::from_utf8(text).map_err(|_| bad("its topology is not UTF-8"))
}

/// The topology stored in `ws`, parsed.
///
/// # Errors
/// As [`stored_text`]; [`PipelineError::Topo`] if it does not parse.
pub fn stored_topology(ws: &Workspace) -> Result<Topology, PipelineError> {
    Ok(Topology::parse(&stored_text(ws)?)?)
}

/// Joins workspace `name` read-write, for a tile of it.
///
/// # Errors
/// [`PipelineError::Join`] if it does not exist or cannot be mapped.
pub fn join(name: &str) -> Result<Workspace, PipelineError> {
    Workspace::join(name, Access::ReadWrite).map_err(|source| PipelineError::Join {
        name: name.into(),
        source,
    })
}

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
    if let Some(ns) = spec.kind.netns() {
        tilewire_aio::netns::enter_thread(ns).map_err(|e| setup(e.to_string()))?;
    }
    if let Some(cpu) = spec.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(setup(format!("cannot pin to cpu {cpu}")));
        }
    }
    let built = build_tile(ws, topo, spec)?;
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
    let Built { tile, keep } = built;
    let mut stem =
        Stem::new(ws, name, tile, &ins, &outs, config).map_err(|source| PipelineError::Tile {
            tile: name.into(),
            source,
        })?;
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

/// Asks every tile of `topo` that has started to stop.
pub fn stop_all(ws: &Workspace, topo: &Topology) {
    for t in &topo.tiles {
        if let Some(m) = tile_metrics(ws, &t.name) {
            m.request_stop();
        }
    }
}

/// Waits up to `timeout` until every tile of `topo` is
/// [`TileState::Running`]; returns the names of those that are not.
pub fn wait_running(ws: &Workspace, topo: &Topology, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<String> = topo
            .tiles
            .iter()
            .filter(|t| {
                tile_metrics(ws, &t.name).and_then(|m| m.state()) != Some(TileState::Running)
            })
            .map(|t| t.name.clone())
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
