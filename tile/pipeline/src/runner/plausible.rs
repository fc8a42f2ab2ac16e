//! The runner's checks of shared words that its tiles count but cannot
//! end a run by themselves: frags pointing outside their dcache.
//!
//! A consumer refuses a frag whose chunk or size falls outside every
//! dcache it may read (its link's, and those of links forwarded onto it),
//! reads not a byte of it, and counts it in its fseq with the chunk and
//! size of the last one ([`DIAG_BAD_CNT`], [`DIAG_BAD_LAST`]). No healthy
//! producer publishes such a frag, so each is corruption: the runner
//! reports it as [`TileFailure::BadChunks`], naming the reader, the link,
//! the value seen and the chunks the link's dcache holds, and ends the run.

use tilewire_shmem::Workspace;
use tilewire_tile::link::frag::CHUNK_SZ;
use tilewire_tile::link::fseq::{bad_frag, DIAG_BAD_CNT, DIAG_BAD_LAST};
use tilewire_tile::link::Link;

use super::failure::TileFailure;
use crate::topology::Topology;

/// Every consumer of `topo`'s links that refused frags outside its
/// dcache, as a failure.
pub(super) fn bad_chunks(ws: &Workspace, topo: &Topology) -> Vec<TileFailure> {
    let mut found = Vec::new();
    for l in &topo.links {
        let Ok(link) = Link::join(ws, &l.name) else {
            continue;
        };
        let dc = link.dcache();
        for ((t, _), f) in topo.consumers(&l.name).iter().zip(link.fseqs()) {
            let frags = f.diag(DIAG_BAD_CNT);
            if frags == 0 {
                continue;
            }
            let (chunk, sz) = bad_frag(f.diag(DIAG_BAD_LAST)).unwrap_or((0, 0));
            found.push(TileFailure::BadChunks {
                tile: t.name.clone(),
                link: l.name.clone(),
                frags,
                chunk,
                sz,
                chunks: (
                    dc.chunk0(),
                    dc.chunk0() + (dc.data().len() / CHUNK_SZ) as u32,
                ),
            });
        }
    }
    found
}
