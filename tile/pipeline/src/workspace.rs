//! A pipeline's workspace, made from a [topology](crate::topo).
//!
//! # Making
//!
//! [`create`] makes everything a topology names, before any tile runs: the
//! workspace, every link (its consumers reliable or not, a link fed by
//! AF_XDP sized to be its socket's UMEM), every dedup tile's tcache, and a
//! copy of the topology text itself ([`TOPO_NAME`]). The copy is what lets
//! a tile in *another process* be started with nothing but the workspace's
//! name and its own ([`run_tile`](crate::run::run_tile) reads it back): `tilewire tile
//! --workspace W --name T`. If a step fails, the workspace is removed again:
//! a failed start leaves nothing behind.
//!

use tilewire_shmem::{load_bytes, store_bytes, Access, CreateError, Workspace};
use tilewire_tile::link::Link;

use crate::error::PipelineError;
use crate::Registry;
use crate::Topology;

/// The allocation holding the topology text: a little-endian `u64` length,
/// then the UTF-8 text.
pub(crate) const TOPO_NAME: &str = "topology";

/// Makes the workspace of `topo` with every link, tcache and the topology
/// text in it (see the [module docs](self)); the text is what tiles in
/// other processes build themselves from.
///
/// # Errors
/// [`PipelineError::Exists`] if the workspace exists; any failure to make a
/// part, after which the workspace is removed again.
pub(crate) fn create(topo: &Topology) -> Result<Workspace, PipelineError> {
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
    for (i, t) in topo.tiles.iter().enumerate() {
        let (kind, params) = topo.erased(i);
        for o in kind.objects(params, t) {
            let g = ws
                .alloc_named(o.name(), o.align(), o.size(), 0)
                .map_err(|source| PipelineError::Alloc {
                    part: o.name().to_owned(),
                    source,
                })?;
            let mem = ws
                .region(g, o.size())
                .expect("a fresh allocation is inside");
            o.init(mem).map_err(|why| PipelineError::Setup {
                tile: t.name.clone(),
                why,
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
pub(crate) fn stored_text(ws: &Workspace) -> Result<String, PipelineError> {
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
/// As [`stored_text`]; [`PipelineError::Topo`] if it does not parse
/// against `registry` (a tile process needs the runner's registry).
pub(crate) fn stored_topology(
    ws: &Workspace,
    registry: &Registry,
) -> Result<Topology, PipelineError> {
    let spec = crate::topo::TopologySpec::parse(&stored_text(ws)?)?;
    Ok(registry.bind_on(spec, None)?)
}

/// Joins workspace `name` read-write, for a tile of it.
///
/// # Errors
/// [`PipelineError::Join`] if it does not exist or cannot be mapped.
pub(crate) fn join(name: &str) -> Result<Workspace, PipelineError> {
    Workspace::join(name, Access::ReadWrite).map_err(|source| PipelineError::Join {
        name: name.into(),
        source,
    })
}
