//! Tile kinds of a user's own for the runner's tests, and what the tests
//! ask of a finished pipeline.
#![allow(dead_code)]

use core::sync::atomic::AtomicU8;

use serde::Deserialize;
use tilewire_pipeline::tile::link::frag::FragMeta;
use tilewire_pipeline::tile::link::Link;
use tilewire_pipeline::tile::stem::{Filter, FragCopy, Outputs, Tile};
use tilewire_pipeline::{BuildCtx, BuildError, IoCounts, NoParams, Pipeline, Registry, TileKind};
use tilewire_shmem::Workspace;

/// Holds frags in a batch and passes them on only at housekeeping (or
/// when `size` are held): a tile with frags in hand whenever it is asked
/// to stop.
pub(crate) struct Batch {
    size: usize,
    copy: FragCopy,
    held: Vec<(Vec<u8>, u64, u32)>,
    passed: u64,
}

impl Batch {
    fn flush(&mut self, out: &mut Outputs<'_, '_>) {
        for (p, sig, ts) in self.held.drain(..) {
            out.publish_packet(0, &p, sig, 0, ts)
                .expect("a batch fits the output's burst and mtu");
            self.passed += 1;
        }
    }
}

impl Tile for Batch {
    fn kind(&self) -> &str {
        "batch"
    }
    fn burst(&self) -> u64 {
        self.size as u64
    }
    fn counters(&self) -> &'static [&'static str] {
        &["passed"]
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        self.held
            .push((self.copy.packet(meta).to_vec(), meta.sig, meta.tsorig));
        if self.held.len() == self.size {
            self.flush(out);
        }
    }
    fn housekeeping(&mut self, out: &mut Outputs<'_, '_>) {
        self.flush(out);
    }
    fn held(&self, _: usize) -> u64 {
        self.held.len() as u64
    }
    fn pending(&self) -> usize {
        self.held.len()
    }
    fn metrics_write(&mut self, c: &mut [u64]) {
        c[0] = self.passed;
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchParams {
    pub size: usize,
}

pub(crate) struct BatchKind;

impl TileKind for BatchKind {
    type Params = BatchParams;
    fn name(&self) -> &str {
        "batch"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 1..=1)
    }
    fn build<'w>(
        &self,
        p: &BatchParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Batch {
            size: p.size.max(1),
            copy: FragCopy::new(),
            held: Vec::new(),
            passed: 0,
        }))
    }
}

/// Never takes a frag: a tile that cannot drain.
pub(crate) struct StuckKind;

struct Stuck;

impl Tile for Stuck {
    fn kind(&self) -> &str {
        "stuck"
    }
    fn before_frag(&mut self, _: usize, _: u64, _: u64) -> Filter {
        Filter::Retry
    }
}

impl TileKind for StuckKind {
    type Params = NoParams;
    fn name(&self) -> &str {
        "stuck"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }
    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Stuck))
    }
}

/// Panics at its `after`-th frag.
pub(crate) struct BoomKind;

struct Boom {
    after: u64,
    seen: u64,
}

impl Tile for Boom {
    fn kind(&self) -> &str {
        "boom"
    }
    fn after_frag(&mut self, _: usize, _: &FragMeta, _: &mut Outputs<'_, '_>) {
        self.seen += 1;
        assert!(self.seen < self.after, "boom at frag {}", self.seen);
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct BoomParams {
    pub after: u64,
}

impl TileKind for BoomKind {
    type Params = BoomParams;
    fn name(&self) -> &str {
        "boom"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }
    fn build<'w>(
        &self,
        p: &BoomParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Boom {
            after: p.after,
            seen: 0,
        }))
    }
}

/// Its build always fails.
pub(crate) struct NoBuildKind;

impl TileKind for NoBuildKind {
    type Params = NoParams;
    fn name(&self) -> &str {
        "no-build"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }
    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Err(BuildError::new("its device /dev/nothing does not exist"))
    }
}

/// Output 0 carries every frag whose sig is odd; a frag with an even sig
/// goes to output 1 with its sig made odd, to come round once more (the
/// back edge of a cycle).
pub(crate) struct BounceKind;

struct Bounce {
    copy: FragCopy,
    out: u64,
    back: u64,
}

impl Tile for Bounce {
    fn kind(&self) -> &str {
        "bounce"
    }
    fn counters(&self) -> &'static [&'static str] {
        &["out", "back"]
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        let p = self.copy.packet(meta);
        if meta.sig & 1 == 1 {
            out.publish_packet(0, p, meta.sig, 0, meta.tsorig).unwrap();
            self.out += 1;
        } else {
            out.publish_packet(1, p, meta.sig | 1, 0, meta.tsorig)
                .unwrap();
            self.back += 1;
        }
    }
    fn metrics_write(&mut self, c: &mut [u64]) {
        c.copy_from_slice(&[self.out, self.back]);
    }
}

impl TileKind for BounceKind {
    type Params = NoParams;
    fn name(&self) -> &str {
        "bounce"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 2..=2)
    }
    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Bounce {
            copy: FragCopy::new(),
            out: 0,
            back: 0,
        }))
    }
}

/// The built-ins and the kinds above.
pub(crate) fn registry() -> Registry {
    Registry::with_builtins()
        .with(BatchKind)
        .and_then(|r| r.with(StuckKind))
        .and_then(|r| r.with(BoomKind))
        .and_then(|r| r.with(NoBuildKind))
        .and_then(|r| r.with(BounceKind))
        .and_then(|r| r.with(TableSinkKind))
        .expect("none of these names is a built-in")
}

/// A workspace name no other test run uses.
pub(crate) fn ws_name(tag: &str) -> String {
    format!("tw-run-{}-{tag}", std::process::id())
}

/// Counter `name` of tile `tile` ([`Pipeline::counter`], which must have
/// it).
pub(crate) fn counter(p: &Pipeline, tile: &str, name: &str) -> u64 {
    p.counter(tile, name)
        .unwrap_or_else(|| panic!("tile {tile} has a counter {name}"))
}

/// For every reliable link of the pipeline: what its producer published
/// and what each consumer has consumed (published progress), which a stop
/// that drained makes equal.
pub(crate) fn reliable_links_drained(p: &Pipeline) -> Vec<(String, u64, Vec<u64>)> {
    let ws = p.workspace();
    p.topology()
        .links
        .iter()
        .filter(|l| l.reliable)
        .map(|l| {
            let link = Link::join(ws, &l.name).unwrap();
            let published = link.mcache().seq_query();
            let progress = link.fseqs().iter().map(|f| f.query()).collect();
            (l.name.clone(), published, progress)
        })
        .collect()
}

/// Asserts every reliable link was read to its end.
pub(crate) fn assert_drained(p: &Pipeline) {
    for (link, published, progress) in reliable_links_drained(p) {
        assert!(published > 0, "link {link} carried something");
        for (i, c) in progress.iter().enumerate() {
            assert_eq!(*c, published, "consumer {i} of link {link} read everything");
        }
    }
}

/// True if a workspace of this name exists.
pub(crate) fn exists(name: &str) -> bool {
    Workspace::join(name, tilewire_shmem::Access::ReadOnly).is_ok()
}

/// A sink that keeps a table of `kib` KiB in the workspace, formatted (its
/// first byte 0x5a) before any tile starts.
pub(crate) struct TableSinkKind;

#[derive(Debug, Deserialize)]
pub(crate) struct TableParams {
    pub kib: usize,
}

struct TableSink;

impl Tile for TableSink {
    fn kind(&self) -> &str {
        "table-sink"
    }
}

pub(crate) fn table_name(tile: &str) -> String {
    format!("{tile}.table")
}

impl TileKind for TableSinkKind {
    type Params = TableParams;
    fn name(&self) -> &str {
        "table-sink"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }
    fn objects(
        &self,
        p: &TableParams,
        tile: &tilewire_pipeline::topo::TileSpec,
    ) -> Vec<tilewire_pipeline::Object> {
        vec![tilewire_pipeline::Object::new(
            table_name(&tile.name),
            4096,
            p.kib << 10,
            |mem| {
                let b = mem.atomic_bytes(0, 1).ok_or("an empty table")?;
                tilewire_shmem::store_bytes(b, &[0x5a]);
                Ok(())
            },
        )]
    }
    fn build<'w>(
        &self,
        p: &TableParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let mem = ctx.object(&table_name(ctx.name()))?;
        let mut first = [0u8];
        tilewire_shmem::load_bytes(&mut first, mem.atomic_bytes(0, 1).unwrap());
        if mem.len() != p.kib << 10 || first != [0x5a] {
            return Err(BuildError::new("the table is not what the kind declared"));
        }
        Ok(Box::new(TableSink))
    }
}

/// Topology `text` with `group = "GROUP"` added to each tile of `tiles`.
pub(crate) fn grouped(text: &str, group: &str, tiles: &[&str]) -> String {
    tiles.iter().fold(text.to_owned(), |t, name| {
        t.replace(
            &format!("name = \"{name}\"\n"),
            &format!("name = \"{name}\"\ngroup = \"{group}\"\n"),
        )
    })
}
