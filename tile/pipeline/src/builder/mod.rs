//! Pipelines made in Rust, without a topology file: for tests and small
//! programs.
//!
//! A [`PipelineBuilder`] collects links and tiles by name and makes the
//! same topology a file would hold (so it is checked, sized and stored in
//! the workspace the same way, and tile processes can read it back); the
//! workspace is sized just large enough unless a size is given, and
//! [`PipelineBuilder::build`] returns the [`Pipeline`], which removes the
//! workspace when dropped.
//!
//! ```
//! use std::time::Duration;
//! use tilewire_pipeline::builder::{LinkDef, PipelineBuilder, TileDef};
//! use tilewire_pipeline::{Registry, RunOptions};
//!
//! let registry = Registry::with_builtins();
//! let pipeline = PipelineBuilder::new("doc-builder")
//!     .link(LinkDef::new("pkts", 256))
//!     .tile(TileDef::new("gen", "gen").output("pkts").param("count", 1000))
//!     .tile(TileDef::new("sink", "sink").input("pkts"))
//!     .build(&registry)?;
//! // Stops once gen sent its 1000 and the sink read them all.
//! pipeline.run(&RunOptions::new().duration(Duration::from_millis(300)))?;
//! assert_eq!(pipeline.counter("sink", "frags"), Some(1000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use toml::{Table, Value};

use crate::error::PipelineError;
use crate::runner::Pipeline;
use crate::topo::Mode;
use crate::Registry;

/// A link of a [`PipelineBuilder`].
#[derive(Debug, Clone)]
pub struct LinkDef {
    table: Table,
}

impl LinkDef {
    /// A reliable link of `depth` frags (a power of two) and mtu 2048.
    pub fn new(name: &str, depth: u64) -> LinkDef {
        let mut table = Table::new();
        table.insert("name".into(), name.into());
        table.insert("depth".into(), Value::Integer(depth as i64));
        LinkDef { table }
    }

    /// Its largest payload.
    pub fn mtu(mut self, mtu: usize) -> LinkDef {
        self.table.insert("mtu".into(), Value::Integer(mtu as i64));
        self
    }

    /// Consumers never slow the producer; one that falls a ring behind is
    /// overrun.
    pub fn unreliable(mut self) -> LinkDef {
        self.table.insert("reliable".into(), false.into());
        self
    }
}

/// A tile of a [`PipelineBuilder`].
#[derive(Debug, Clone)]
pub struct TileDef {
    table: Table,
    params: Table,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
}

impl TileDef {
    /// Tile `name` of kind `kind` (a kind of the registry the pipeline is
    /// built with).
    pub fn new(name: &str, kind: &str) -> TileDef {
        let mut table = Table::new();
        table.insert("name".into(), name.into());
        table.insert("kind".into(), kind.into());
        TileDef {
            table,
            params: Table::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Consumes link `link` as its next input.
    pub fn input(mut self, link: &str) -> TileDef {
        self.inputs.push(link.into());
        self
    }

    /// Produces link `link` as its next output.
    pub fn output(mut self, link: &str) -> TileDef {
        self.outputs.push(link.into());
        self
    }

    /// Pins it to `cpu`.
    pub fn cpu(mut self, cpu: usize) -> TileDef {
        self.table.insert("cpu".into(), Value::Integer(cpu as i64));
        self
    }

    /// Runs it on one thread with the other tiles of group `group` (see
    /// [`Topology::layout`](crate::TopologySpec::layout)).
    pub fn group(mut self, group: &str) -> TileDef {
        self.table
            .insert("group".into(), Value::String(group.into()));
        self
    }

    /// What its loop does while idle: `"spin"` or `"backoff"`.
    pub fn idle(mut self, idle: &str) -> TileDef {
        self.table.insert("idle".into(), Value::String(idle.into()));
        self
    }

    /// Sets parameter `key` of its kind: what `[tile.params]` would say
    /// (`.param("count", 1000)`, `.param("bind", "127.0.0.1:9000")`,
    /// `.param("ports", vec![9000])`).
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> TileDef {
        self.params.insert(key.into(), value.into());
        self
    }
}

/// Makes a [`Pipeline`] from links and tiles named in Rust. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    workspace: Table,
    links: Vec<Value>,
    tiles: Vec<Value>,
}

impl PipelineBuilder {
    /// A pipeline in a workspace named `workspace`, its tiles threads of
    /// this process, sized to fit.
    pub fn new(workspace: &str) -> PipelineBuilder {
        let mut t = Table::new();
        t.insert("name".into(), workspace.into());
        PipelineBuilder {
            workspace: t,
            links: Vec::new(),
            tiles: Vec::new(),
        }
    }

    /// Threads of this process or a process per tile (then this binary's
    /// `main` must call [`tile_main`](crate::tile_main) first).
    pub fn mode(mut self, mode: Mode) -> PipelineBuilder {
        let m = match mode {
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        };
        self.workspace.insert("mode".into(), m.into());
        self
    }

    /// The workspace's size in bytes (default: just what it needs).
    pub fn size(mut self, bytes: usize) -> PipelineBuilder {
        self.workspace
            .insert("size".into(), Value::Integer(bytes as i64));
        self
    }

    /// Adds a link.
    pub fn link(mut self, link: LinkDef) -> PipelineBuilder {
        self.links.push(Value::Table(link.table));
        self
    }

    /// Adds a tile.
    pub fn tile(mut self, tile: TileDef) -> PipelineBuilder {
        let TileDef {
            mut table,
            params,
            inputs,
            outputs,
        } = tile;
        table.insert("inputs".into(), Value::Array(inputs));
        table.insert("outputs".into(), Value::Array(outputs));
        if !params.is_empty() {
            table.insert("params".into(), Value::Table(params));
        }
        self.tiles.push(Value::Table(table));
        self
    }

    /// The topology text this builder makes (what the workspace stores).
    pub fn text(&self) -> String {
        let mut root = Table::new();
        root.insert("workspace".into(), Value::Table(self.workspace.clone()));
        root.insert("link".into(), Value::Array(self.links.clone()));
        root.insert("tile".into(), Value::Array(self.tiles.clone()));
        toml::to_string(&root).expect("a table of strings, integers and arrays is TOML")
    }

    /// Parses and checks the topology against `registry` and makes the
    /// pipeline's workspace.
    ///
    /// # Errors
    /// As [`Topology::parse`](crate::TopologySpec::parse) (the lines are those
    /// of [`PipelineBuilder::text`]) and [`Pipeline::create`].
    pub fn build(&self, registry: &Registry) -> Result<Pipeline, PipelineError> {
        let topo = registry.parse(&self.text())?;
        Pipeline::create(topo)
    }
}
