//! A topology bound to its kinds and checked: what a
//! [`Pipeline`](crate::Pipeline) runs. A [`Registry`](crate::Registry)
//! makes one ([`Registry::parse`](crate::Registry::parse),
//! [`Registry::load`](crate::Registry::load),
//! [`Registry::bind`](crate::Registry::bind)); it is the topology's data
//! ([`TopologySpec`], which it dereferences to) with each tile's kind and
//! parameters, and answers what needs them: each link's data region, the
//! workspace footprint, a tile's network namespace.

use core::ops::Deref;

use tilewire_shmem::alloc::{ENTRY_SZ, MIN_ALIGN};
use tilewire_shmem::hist::Hist;
use tilewire_shmem::workspace::{DEFAULT_TABLE_CAP, HEADER_SZ};
use tilewire_tile::link::dcache::DCache;
use tilewire_tile::link::fseq::Fseq;
use tilewire_tile::link::mcache::MCache;
use tilewire_tile::stem::metrics::TileMetrics;

use crate::kind::IoCounts;
use crate::registry::{ErasedKind, KindRef};
use crate::tile_params::TileParams;
use crate::topo::{LinkSpec, TopologySpec, TOPOLOGY_TEXT_MAX};

/// A topology bound to its kinds and checked: what a
/// [`Pipeline`](crate::Pipeline) runs. A [`Registry`](crate::Registry)
/// makes one from a text or a file
/// ([`Registry::parse`](crate::Registry::parse),
/// [`Registry::load`](crate::Registry::load),
/// [`Registry::bind`](crate::Registry::bind)), a
/// [`PipelineBuilder`](crate::PipelineBuilder) from Rust
/// ([`PipelineBuilder::topology`](crate::PipelineBuilder::topology)); it
/// is the topology's data ([`TopologySpec`], which it dereferences to)
/// with each tile's kind and parameters.
#[derive(Debug, Clone)]
pub struct Topology {
    spec: TopologySpec,
    /// `kinds[i]`, `params[i]`: tile `i`'s.
    kinds: Vec<KindRef>,
    params: Vec<Option<TileParams>>,
}

/// The topology's data: its workspace, links and tiles.
impl Deref for Topology {
    type Target = TopologySpec;
    fn deref(&self) -> &TopologySpec {
        &self.spec
    }
}

/// Two topologies are equal when their data and every tile's parameters
/// are.
impl PartialEq for Topology {
    fn eq(&self, other: &Topology) -> bool {
        self.spec == other.spec && format!("{:?}", self.params) == format!("{:?}", other.params)
    }
}

impl Eq for Topology {}

impl Topology {
    /// `spec` with tile `i` of kind `kinds[i]` and parameters `params[i]`
    /// (every one read).
    pub(crate) fn new(spec: TopologySpec, kinds: Vec<KindRef>, params: Vec<TileParams>) -> Self {
        Topology {
            spec,
            kinds,
            params: params.into_iter().map(Some).collect(),
        }
    }

    /// The topology's data.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// The topology's data, to change what needs no new check (where the
    /// tiles run).
    pub(crate) fn spec_mut(&mut self) -> &mut TopologySpec {
        &mut self.spec
    }

    /// Index of tile `tile` among the tiles.
    fn index(&self, tile: &str) -> Option<usize> {
        self.spec.tiles.iter().position(|t| t.name == tile)
    }

    /// The parameters of tile `tile`, as its kind's
    /// [`Params`](crate::TileKind::Params) type; `None` if `P` is not that
    /// type or there is no such tile.
    pub fn params<P: 'static>(&self, tile: &str) -> Option<&P> {
        self.params.get(self.index(tile)?)?.as_ref()?.get::<P>()
    }

    /// The inputs and outputs tile `tile`'s kind allows.
    pub fn io(&self, tile: &str) -> Option<IoCounts> {
        Some(self.kinds.get(self.index(tile)?)?.kind().io())
    }

    /// The network namespace tile `tile`'s thread enters, for kinds with a
    /// socket.
    pub fn netns(&self, tile: &str) -> Option<&str> {
        let i = self.index(tile)?;
        self.kinds[i].kind().netns(self.params[i].as_ref()?)
    }

    /// Tile `i`'s kind and parameters.
    pub(crate) fn erased(&self, i: usize) -> (&dyn ErasedKind, &TileParams) {
        (
            self.kinds[i].kind(),
            self.params[i]
                .as_ref()
                .expect("a bound topology has every tile's parameters"),
        )
    }

    /// Sets the workspace's size (one the text did not give).
    pub(crate) fn set_size(&mut self, size: usize) {
        self.spec.workspace.size = size;
    }

    /// How many allocations the runner makes in the workspace.
    pub(crate) fn allocation_count(&self) -> usize {
        allocations(&self.spec, &self.kinds, &self.params).len()
    }

    /// Every tile's parameters, by index (for the kinds' contexts).
    pub(crate) fn all_params(&self) -> &[Option<TileParams>] {
        &self.params
    }

    /// The size of `link`'s dcache data region in mtus, as
    /// [`Link::create_with_data`](tilewire_tile::link::Link::create_with_data)
    /// takes it: `depth + 1`, or what its producer's kind asks for
    /// ([`TileKind::output_data_mtus`](crate::TileKind::output_data_mtus):
    /// a net-xdp output is the whole UMEM).
    pub fn data_mtus(&self, link: &LinkSpec) -> u64 {
        data_mtus(&self.spec, &self.kinds, &self.params, link)
    }

    /// Bytes the workspace must hold for this topology: its header and
    /// allocation table (of the default capacity), then every allocation
    /// the runner makes (see the [topology docs](crate::topo#sizes)) with
    /// room for its alignment.
    pub fn footprint(&self) -> usize {
        footprint(&allocations(&self.spec, &self.kinds, &self.params))
    }
}

/// [`Topology::data_mtus`](crate::Topology::data_mtus) of `spec` whose tile `i` has kind `kinds[i]`
/// and parameters `params[i]`.
pub(crate) fn data_mtus(
    spec: &TopologySpec,
    kinds: &[KindRef],
    params: &[Option<TileParams>],
    link: &LinkSpec,
) -> u64 {
    let asked = spec.tiles.iter().enumerate().find_map(|(i, t)| {
        let out = t.outputs.iter().position(|l| *l == link.name)?;
        kinds[i]
            .kind()
            .output_data_mtus(params[i].as_ref()?, out, link)
    });
    asked.unwrap_or(link.depth + 1)
}

/// The `(align, size)` of every allocation the runner makes in the
/// workspace of `spec`, as [`data_mtus`] takes its kinds (sizes of invalid
/// parameters count as 0; the check refuses those).
pub(crate) fn allocations(
    spec: &TopologySpec,
    kinds: &[KindRef],
    params: &[Option<TileParams>],
) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for link in &spec.links {
        v.push((MCache::ALIGN, MCache::footprint(link.depth).unwrap_or(0)));
        let data = data_mtus(spec, kinds, params, link).saturating_sub(1);
        v.push((
            DCache::ALIGN,
            DCache::footprint(link.mtu, data).unwrap_or(0),
        ));
        let consumers = spec.consumers(&link.name).len();
        v.extend(std::iter::repeat_n(
            (Fseq::ALIGN, Fseq::footprint()),
            consumers,
        ));
    }
    for (i, tile) in spec.tiles.iter().enumerate() {
        v.push((TileMetrics::ALIGN, TileMetrics::footprint()));
        v.extend(std::iter::repeat_n(
            (Hist::ALIGN, Hist::footprint()),
            tile.inputs.len(),
        ));
        if let Some(p) = &params[i] {
            v.extend(
                kinds[i]
                    .kind()
                    .objects(p, tile)
                    .iter()
                    .map(|o| (o.align(), o.size())),
            );
        }
    }
    // The runner's copy of the topology text, at any alignment up to a
    // page.
    v.push((4096, TOPOLOGY_TEXT_MAX));
    v
}

/// The bytes `allocations` take after the workspace's header and table.
pub(crate) fn footprint(allocations: &[(usize, usize)]) -> usize {
    let table = HEADER_SZ + DEFAULT_TABLE_CAP * ENTRY_SZ;
    let data_off = table.next_multiple_of(4096);
    allocations.iter().fold(data_off, |sum, &(align, size)| {
        sum.saturating_add(size)
            .saturating_add(align.max(MIN_ALIGN))
    })
}
