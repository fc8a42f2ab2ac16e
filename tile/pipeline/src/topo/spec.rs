//! The data of a topology: the workspace, the links and the tiles, as the
//! text says them (kinds by name, parameters as written).

use tilewire_shmem::PageKind;
use tilewire_tile::stem::{IdlePolicy, ShareBy};

use super::de::RawParams;
use super::value::Loc;

/// The words a topology writes for the values of its keys, which the
/// parse reads and a [`PipelineBuilder`](crate::PipelineBuilder) writes:
/// `pages`, `mode`, `share`, `idle`, `restart`.
pub(crate) const PAGES: &[(&str, PageKind)] = &[
    ("normal", PageKind::Normal),
    ("huge", PageKind::Huge),
    ("gigantic", PageKind::Gigantic),
];
/// See [`PAGES`].
pub(crate) const MODES: &[(&str, Mode)] =
    &[("threads", Mode::Threads), ("processes", Mode::Processes)];
/// See [`PAGES`].
pub(crate) const SHARES: &[(&str, ShareBy)] =
    &[("round-robin", ShareBy::RoundRobin), ("sig", ShareBy::Sig)];
/// See [`PAGES`].
pub(crate) const IDLES: &[(&str, IdlePolicy)] =
    &[("spin", IdlePolicy::Spin), ("backoff", IdlePolicy::Backoff)];
/// See [`PAGES`].
pub(crate) const RESTARTS: &[(&str, Restart)] = &[
    ("never", Restart::Never),
    ("on-failure", Restart::OnFailure),
];

/// The word `words` has for `value`.
pub(crate) fn word_of<T: PartialEq>(words: &[(&'static str, T)], value: &T) -> &'static str {
    words
        .iter()
        .find(|(_, v)| v == value)
        .map_or("", |(w, _)| w)
}

/// Largest topology text: the runner keeps a copy in the workspace, and
/// [`Topology::footprint`](crate::Topology::footprint) counts this much for it.
pub const TOPOLOGY_TEXT_MAX: usize = 64 << 10;

/// How the runner runs the tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every tile a thread of the runner's process.
    #[default]
    Threads,
    /// Every tile a process of its own, joining the workspace by name.
    Processes,
}

/// Which share of its inputs' frags one of the `count = N` tiles of a
/// `[[tile]]` takes: frag by frag in turn, or by signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareSpec {
    /// This tile's index, `0..of`.
    pub index: u32,
    /// How many tiles share.
    pub of: u32,
    /// How frags are dealt.
    pub by: tilewire_tile::stem::ShareBy,
}

/// What the runner does when a tile's process fails (processes mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Report it when the run ends; the others go on.
    #[default]
    Never,
    /// Start it again, after a back-off (100 ms, doubling to 5 s), at most
    /// [`RESTART_LIMIT`] times in [`RESTART_WINDOW`]; past that it is
    /// reported as [`TileFailure::RestartLimit`](crate::TileFailure::RestartLimit).
    OnFailure,
}

/// Most restarts of one tile process in [`RESTART_WINDOW`].
pub const RESTART_LIMIT: usize = 5;
/// The window [`RESTART_LIMIT`] counts restarts in.
pub const RESTART_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The `[workspace]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSpec {
    /// Its name.
    pub name: String,
    /// Its size in bytes, a whole number of pages (given, rounded up; 0
    /// when not given, and binding makes it the footprint).
    pub size: usize,
    /// Its page kind.
    pub pages: PageKind,
    /// Threads or processes.
    pub mode: Mode,
    /// Where `size` was written (`None`: not given).
    pub(crate) size_at: Option<Loc>,
}

/// A `[[link]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// Its name.
    pub name: String,
    /// Frags in the ring.
    pub depth: u64,
    /// Largest payload.
    pub mtu: usize,
    /// Whether consumers give credits (all of them, or none).
    pub reliable: bool,
    /// Line of its `[[link]]` header.
    pub line: usize,
    pub(crate) at: Loc,
    pub(crate) mtu_at: Loc,
    pub(crate) depth_at: Loc,
}

impl LinkSpec {
    /// Where `field` (`"mtu"`, `"depth"`) is written, or the link's header.
    pub(crate) fn field_loc(&self, field: &str) -> Loc {
        match field {
            "mtu" => self.mtu_at,
            "depth" => self.depth_at,
            _ => self.at,
        }
    }
}

/// A `[[tile]]`.
#[derive(Debug, Clone)]
pub struct TileSpec {
    /// Its name.
    pub name: String,
    /// The cpu to pin it to.
    pub cpu: Option<usize>,
    /// The group of tiles it shares a thread with, if the topology names
    /// one (see [`TopologySpec::layout`](crate::topo::TopologySpec::layout)).
    pub group: Option<String>,
    /// What the runner does when its process fails.
    pub restart: Restart,
    /// For one of the tiles a `count = N` made: which share of its
    /// inputs' frags it takes (see [`Registry::parse`](crate::Registry::parse)).
    pub share: Option<ShareSpec>,
    /// What its loop does while idle, if the topology says (see
    /// [`TopologySpec::idle_policy`](crate::topo::TopologySpec::idle_policy) for the default).
    pub idle: Option<IdlePolicy>,
    /// The links it consumes, by input index.
    pub inputs: Vec<String>,
    /// The links it produces, by output index.
    pub outputs: Vec<String>,
    /// Line of its `[[tile]]` header.
    pub line: usize,
    pub(crate) kind: String,
    pub(crate) params: RawParams,
    pub(crate) at: TileLocs,
}

impl TileSpec {
    /// Its kind's name, as written in `kind`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Where parameter `field` is written, or the tile's header.
    pub(crate) fn param_loc(&self, field: &str) -> Loc {
        self.at
            .params
            .iter()
            .find(|(k, _)| k == field)
            .map_or(self.at.header, |(_, at)| *at)
    }
}

/// Two tiles are equal when everything written about them is: name, kind,
/// parameters, cpu, links and line.
impl PartialEq for TileSpec {
    fn eq(&self, other: &TileSpec) -> bool {
        self.name == other.name
            && self.kind() == other.kind()
            && self.params == other.params
            && self.cpu == other.cpu
            && self.group == other.group
            && self.restart == other.restart
            && self.share == other.share
            && self.idle == other.idle
            && self.inputs == other.inputs
            && self.outputs == other.outputs
            && self.line == other.line
            && self.at == other.at
    }
}

impl Eq for TileSpec {}

/// Where the parts of a tile were written, for the checks' messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TileLocs {
    pub(crate) header: Loc,
    pub(crate) kind: Loc,
    pub(crate) cpu: Loc,
    pub(crate) group: Loc,
    pub(crate) restart: Loc,
    pub(crate) count: Loc,
    pub(crate) inputs: Vec<Loc>,
    pub(crate) outputs: Vec<Loc>,
    /// `inputs` / `outputs` keys (the header when absent).
    pub(crate) inputs_key: Loc,
    pub(crate) outputs_key: Loc,
    /// Each key of `params` and where its value is written.
    pub(crate) params: Vec<(String, Loc)>,
    /// How `share` deals the frags, if it is written.
    pub(crate) share_by: Option<tilewire_tile::stem::ShareBy>,
}

/// A topology as its text says it, before it is bound to kinds: see the
/// [module docs](crate::topo) for the format. [`TopologySpec::parse`] reads one;
/// a [`Registry`](crate::Registry) binds it to its kinds, checks it whole
/// and gives the [`Topology`](crate::Topology) a pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologySpec {
    /// The workspace.
    pub workspace: WorkspaceSpec,
    /// The links, in file order.
    pub links: Vec<LinkSpec>,
    /// The tiles, in file order.
    pub tiles: Vec<TileSpec>,
    pub(crate) text: String,
}
