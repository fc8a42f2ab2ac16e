//! Pipelines made in Rust, without a topology file: [`PipelineBuilder`],
//! [`LinkDef`], [`TileDef`].

mod text;

use tilewire_shmem::PageKind;
use tilewire_tile::stem::{IdlePolicy, ShareBy};
use toml::Value;

use crate::error::PipelineError;
use crate::runner::Pipeline;
use crate::topo::spec::{word_of, IDLES, MODES, PAGES, RESTARTS, SHARES};
use crate::topo::{Mode, Restart, TopoErrors};
use crate::topology::Topology;
use crate::Registry;
use text::{Table, Text};

/// A link of a [`PipelineBuilder`]: what a `[[link]]` table says.
#[derive(Debug, Clone)]
pub struct LinkDef {
    table: Table,
}

impl LinkDef {
    /// Link `name` (`name`) of `depth` frags (`depth`, a power of two):
    /// reliable, mtu 2048, until said otherwise.
    pub fn new(name: &str, depth: u64) -> LinkDef {
        let mut table = Table::new("[[link]]", "link", name);
        table.set("depth", Value::Integer(depth as i64));
        LinkDef { table }
    }

    /// Its largest payload in bytes (`mtu`).
    pub fn mtu(mut self, mtu: usize) -> LinkDef {
        self.table.set("mtu", Value::Integer(mtu as i64));
        self
    }

    /// Consumers never slow the producer; one that falls a ring behind is
    /// overrun (`reliable = false`).
    pub fn unreliable(mut self) -> LinkDef {
        self.table.set("reliable", false.into());
        self
    }
}

/// A tile of a [`PipelineBuilder`]: what a `[[tile]]` table says (see the
/// [format reference](crate::topo#tile-one-per-tile) for each key).
#[derive(Debug, Clone)]
pub struct TileDef {
    table: Table,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
}

impl TileDef {
    /// Tile `name` (`name`) of kind `kind` (`kind`: a kind of the registry
    /// the pipeline is built with).
    pub fn new(name: &str, kind: &str) -> TileDef {
        let mut table = Table::new("[[tile]]", "tile", name);
        table.set("kind", kind.into());
        TileDef {
            table,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Consumes link `link` as its next input (`inputs`).
    pub fn input(mut self, link: &str) -> TileDef {
        self.inputs.push(link.into());
        self
    }

    /// Produces link `link` as its next output (`outputs`).
    pub fn output(mut self, link: &str) -> TileDef {
        self.outputs.push(link.into());
        self
    }

    /// Pins it to `cpu` (`cpu`).
    pub fn cpu(mut self, cpu: usize) -> TileDef {
        self.table.set("cpu", Value::Integer(cpu as i64));
        self
    }

    /// Runs it on one thread with the other tiles of group `group`
    /// (`group`; see [`TopologySpec::layout`](crate::topo::TopologySpec::layout)).
    pub fn group(mut self, group: &str) -> TileDef {
        self.table.set("group", group.into());
        self
    }

    /// What its loop does while idle (`idle`; the default depends on its
    /// cpu: see [`TopologySpec::idle_policy`](crate::topo::TopologySpec::idle_policy)).
    pub fn idle(mut self, idle: IdlePolicy) -> TileDef {
        self.table.set("idle", word_of(IDLES, &idle).into());
        self
    }

    /// What the runner does when its process fails, in processes mode
    /// (`restart`).
    pub fn restart(mut self, restart: Restart) -> TileDef {
        self.table
            .set("restart", word_of(RESTARTS, &restart).into());
        self
    }

    /// Makes `count` tiles of this one (`count`, 1 to 64), `NAME.0`,
    /// `NAME.1`, ..., sharing its inputs' frags, each with an output link
    /// of its own.
    pub fn count(mut self, count: u32) -> TileDef {
        self.table.set("count", Value::Integer(i64::from(count)));
        self
    }

    /// With [`TileDef::count`]: how the tiles share the frags (`share`):
    /// [`ShareBy::RoundRobin`](crate::tile::stem::ShareBy::RoundRobin) or
    /// [`ShareBy::Sig`](crate::tile::stem::ShareBy::Sig).
    pub fn share(mut self, by: ShareBy) -> TileDef {
        self.table.set("share", word_of(SHARES, &by).into());
        self
    }

    /// Sets parameter `key` of its kind: what `[tile.params]` would say
    /// (`.param("count", 1000)`, `.param("bind", "127.0.0.1:9000")`,
    /// `.param("ports", vec![9000])`, `.param("netns", "ns-a")` for the
    /// kinds with a socket).
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> TileDef {
        self.table.set_param(key, value.into());
        self
    }
}

/// Makes a [`Pipeline`] from links and tiles named in Rust: for tests and
/// small programs, and for topologies a program computes.
///
/// It says all a topology file says (a key each method names) and makes
/// that topology's text, so the pipeline is checked, sized and stored in
/// the workspace the same way and tile processes read it back. The
/// workspace is sized just large enough unless a size is given;
/// [`PipelineBuilder::build`] returns the [`Pipeline`], which removes the
/// workspace when dropped. Its errors name the tile (or link) and key
/// they concern, never a line of the text it made.
///
/// ```
/// use std::time::Duration;
/// use tilewire_pipeline::{LinkDef, PipelineBuilder, Registry, RunOptions, TileDef};
///
/// let registry = Registry::with_builtins();
/// let pipeline = PipelineBuilder::new("doc-builder")
///     .link(LinkDef::new("pkts", 256))
///     .tile(TileDef::new("gen", "gen").output("pkts").param("count", 1000))
///     .tile(TileDef::new("sink", "sink").input("pkts"))
///     .build(&registry)?;
/// // Stops once gen sent its 1000 and the sink read them all.
/// pipeline.run(&RunOptions::new().duration(Duration::from_millis(300)))?;
/// assert_eq!(pipeline.counter("sink", "frags"), Some(1000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    workspace: Table,
    links: Vec<Table>,
    tiles: Vec<Table>,
}

impl PipelineBuilder {
    /// A pipeline in a workspace named `workspace` (`name`), its tiles
    /// threads of this process, sized to fit.
    pub fn new(workspace: &str) -> PipelineBuilder {
        PipelineBuilder {
            workspace: Table::new("[workspace]", "workspace", workspace),
            links: Vec::new(),
            tiles: Vec::new(),
        }
    }

    /// Threads of this process or a process per tile (`mode`; then this
    /// binary's `main` must call [`tile_main`](crate::tile_main) first).
    pub fn mode(mut self, mode: Mode) -> PipelineBuilder {
        self.workspace.set("mode", word_of(MODES, &mode).into());
        self
    }

    /// The workspace's size in bytes (`size`; default: just what it needs).
    pub fn size(mut self, bytes: usize) -> PipelineBuilder {
        self.workspace.set("size", Value::Integer(bytes as i64));
        self
    }

    /// The workspace's pages (`pages`; default
    /// [`PageKind::Normal`](crate::shmem::PageKind::Normal)).
    pub fn pages(mut self, pages: PageKind) -> PipelineBuilder {
        self.workspace.set("pages", word_of(PAGES, &pages).into());
        self
    }

    /// Adds a link.
    pub fn link(mut self, link: LinkDef) -> PipelineBuilder {
        self.links.push(link.table);
        self
    }

    /// Adds a tile.
    pub fn tile(mut self, tile: TileDef) -> PipelineBuilder {
        let TileDef {
            mut table,
            inputs,
            outputs,
        } = tile;
        table.set("inputs", Value::Array(inputs));
        table.set("outputs", Value::Array(outputs));
        self.tiles.push(table);
        self
    }

    fn made(&self) -> Text {
        let tables = core::iter::once(&self.workspace)
            .chain(&self.links)
            .chain(&self.tiles);
        Text::new(tables)
    }

    /// The topology text this builder makes (what the workspace stores).
    pub fn text(&self) -> String {
        self.made().text
    }

    /// Binds the topology to `registry`'s kinds and checks it, as
    /// [`Registry::parse`] does a file: the [`Topology`] a
    /// [`Pipeline`] is made from.
    ///
    /// # Errors
    /// Every problem found, as [`Registry::parse`] finds them; each is
    /// told by the tile (or link) and key it concerns (`` tile "filter"
    /// params: `min_len` must be ... ``), not by a line of the text.
    pub fn topology(&self, registry: &Registry) -> Result<Topology, TopoErrors> {
        let made = self.made();
        registry.parse(&made.text).map_err(|e| made.name_places(e))
    }

    /// [`PipelineBuilder::topology`], then [`Pipeline::create`]: makes the
    /// pipeline's workspace.
    ///
    /// # Errors
    /// As [`PipelineBuilder::topology`] and [`Pipeline::create`].
    pub fn build(&self, registry: &Registry) -> Result<Pipeline, PipelineError> {
        Pipeline::create(self.topology(registry)?)
    }
}
