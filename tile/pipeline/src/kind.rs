//! Tile kinds: the [`TileKind`] trait and the contexts its methods get.

use core::any::Any;
use core::fmt;
use core::ops::RangeInclusive;

use serde::de::DeserializeOwned;
use tilewire_shmem::{Region, Workspace};
use tilewire_tile::link::{Link, LinkError};
use tilewire_tile::stem::Tile;

use crate::tile_params::TileParams;
use crate::topo::{LinkSpec, Loc, TileSpec, TopoError, TopologySpec};

/// A kind of tile: what a topology's `kind = "..."` names.
///
/// A kind is a type implementing [`TileKind`]. It says everything the
/// pipeline needs to know about tiles of that kind *before* any of them
/// runs, so a topology naming it is checked whole, sized exactly and made
/// in one go:
///
/// - its [name](TileKind::name) and the [inputs and outputs](TileKind::io)
///   a tile of it takes;
/// - its [parameters](TileKind::Params): any serde `Deserialize` type, read
///   from the tile's `params` table. A wrong type, a value out of range, an
///   unknown key (with `#[serde(deny_unknown_fields)]`) or a missing one is
///   reported with its line, like every other mistake in a topology;
/// - what it [checks](TileKind::check) beyond the types: one parameter
///   against another, against the tile's links, against the machine;
/// - the [workspace objects](TileKind::objects) a tile of it needs besides
///   its links and metrics (a dedup tile's tag cache), with their
///   footprint, so the topology's size check stays exact and the objects
///   exist before any tile starts, for any process to join;
/// - how a tile of it is [built](TileKind::build), on the thread (or in
///   the process) that then runs it.
///
/// The built-in kinds ([`kinds`](crate::kinds)) are written exactly this way and
/// registered in a [`Registry`](crate::Registry) like a user's.
///
/// Every method but [`TileKind::name`], [`TileKind::io`] and
/// [`TileKind::build`] has a default that does nothing.
pub trait TileKind: Send + Sync + 'static {
    /// The parameters of a tile of this kind, read from its `params`
    /// table (an absent table is an empty one, so every field needs a
    /// `#[serde(default)]` or is required). A kind without parameters
    /// uses [`NoParams`].
    type Params: DeserializeOwned + fmt::Debug + Send + Sync + 'static;

    /// The name a topology's `kind` gives: 1 to 32 bytes of lowercase
    /// letters, digits and `-`, starting with a letter. Tiles of the kind
    /// report it as their kind in their metrics.
    fn name(&self) -> &str;

    /// How many inputs and outputs a tile of this kind takes.
    fn io(&self) -> IoCounts;

    /// Checks a tile's parameters against each other and against the rest
    /// of the topology, once every tile parsed; each problem goes to `ctx`
    /// with the place it concerns.
    fn check(&self, _params: &Self::Params, _ctx: &mut CheckCtx<'_>) {}

    /// The workspace objects a tile of this kind needs besides its links
    /// and metrics. They are made (and formatted) with the links, before
    /// any tile starts, and their footprint counts in the size check.
    fn objects(&self, _params: &Self::Params, _tile: &TileSpec) -> Vec<Object> {
        Vec::new()
    }

    /// The data region, in mtus, of output `output` (link `link`) when this
    /// kind needs it larger than the usual `depth + 1` (an AF_XDP output's
    /// dcache is the whole UMEM); `None` keeps the usual size.
    fn output_data_mtus(
        &self,
        _params: &Self::Params,
        _output: usize,
        _link: &LinkSpec,
    ) -> Option<u64> {
        None
    }

    /// How many tiles a `[[tile]]` of this kind makes because of its
    /// parameters, as the tile key `count` does (a net-xdp tile's
    /// `queues`: a tile per queue); `None`, the default, leaves it to
    /// `count`. Called once as the topology is parsed, before it expands
    /// into tiles; may look at the machine (the net-xdp kind reads the
    /// interface's queue count). The stored copy of the topology says the
    /// number in place of what the text said ([`ParamCount::param`]), so
    /// every later reading (tile processes, monitors) makes the same
    /// tiles.
    ///
    /// # Errors
    /// Why the parameters give no count; the parse reports it at the
    /// parameter.
    fn count(&self, _params: &Self::Params) -> Result<Option<ParamCount>, String> {
        Ok(None)
    }

    /// The network namespace the tile's thread enters before it is built,
    /// for kinds with a socket.
    fn netns<'p>(&self, _params: &'p Self::Params) -> Option<&'p str> {
        None
    }

    /// Builds a tile on the thread that will run it. Everything a tile
    /// needs from the workspace is in `ctx`; whatever must live as long as
    /// the tile runs but is not the tile goes to [`BuildCtx::keep`].
    ///
    /// # Errors
    /// What could not be made, and how to fix it where that is known; the
    /// runner names the tile.
    fn build<'w>(
        &self,
        params: &Self::Params,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError>;

    /// What a tile of this kind does with a frag that comes twice. A tile
    /// process that a restart policy starts again resumes its inputs
    /// where its predecessor last published its progress, so what the
    /// predecessor passed on after that comes again on its outputs (a
    /// reliable link loses nothing across a kill; it may deliver twice).
    /// The default, [`Replays::Pass`], takes them and passes them on. A
    /// kind that must see each frag once says [`Replays::Refuse`]: a
    /// topology where a tile with `restart = "on-failure"` feeds it, over
    /// any chain of links and tiles that pass replays on, is refused at
    /// that `restart`.
    fn replays(&self) -> Replays {
        Replays::Pass
    }

    /// What the tiles of this kind share, made once by the runner before
    /// any of them starts and held until the run ends, whichever tile
    /// dies meanwhile: the XDP program every net-xdp tile of an interface
    /// puts its socket in. Called with every tile of this kind in the
    /// topology and its parameters; the default makes nothing.
    ///
    /// # Errors
    /// What could not be made; the run does not start then.
    fn setup(
        &self,
        _tiles: &[(&TileSpec, &Self::Params)],
    ) -> Result<Option<Box<dyn Any + Send>>, BuildError> {
        Ok(None)
    }
}

/// What a tile kind does with frags that come twice, replayed by a
/// restarted tile upstream ([`TileKind::replays`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replays {
    /// It takes them and passes them on (most kinds: a forward, a verify,
    /// a net tile sends them again).
    Pass,
    /// It takes them and drops the repeats (the dedup kind): nothing
    /// replayed goes past it.
    Remove,
    /// It must see each frag once: no restarting tile may feed it.
    Refuse,
}

/// What [`TileKind::count`] gives: how many tiles one `[[tile]]` makes,
/// and from which of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// Tiles to make, 1 to 64 (as `count`).
    pub tiles: u32,
    /// The parameter the number comes from. When its value in the text
    /// is not that number (`queues = "all"`), the stored topology has the
    /// number written there instead.
    pub param: &'static str,
}

/// The parameters of a kind that takes none: any key in its `params` is
/// refused as unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The input and output counts a kind allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoCounts {
    /// Inputs allowed.
    pub inputs: RangeInclusive<usize>,
    /// Outputs allowed.
    pub outputs: RangeInclusive<usize>,
}

impl IoCounts {
    /// `inputs` inputs and `outputs` outputs.
    pub fn new(inputs: RangeInclusive<usize>, outputs: RangeInclusive<usize>) -> IoCounts {
        IoCounts { inputs, outputs }
    }
}

/// How an [`Object`] is formatted in its fresh memory.
type Init = Box<dyn Fn(Region<'_>) -> Result<(), String> + Send + Sync>;

/// A workspace object a kind needs (see [`TileKind::objects`]): a named
/// allocation, made and formatted before any tile starts.
pub struct Object {
    name: String,
    align: usize,
    size: usize,
    init: Init,
}

impl Object {
    /// An allocation `name` of `size` bytes at `align`, formatted by
    /// `init` (which gets exactly `size` bytes, zeroed). Names are
    /// workspace-wide: derive them from the tile's name
    /// (`format!("{tile}.tags")`).
    pub fn new(
        name: impl Into<String>,
        align: usize,
        size: usize,
        init: impl Fn(Region<'_>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Object {
        Object {
            name: name.into(),
            align,
            size,
            init: Box::new(init),
        }
    }

    /// An allocation left zeroed.
    pub fn zeroed(name: impl Into<String>, align: usize, size: usize) -> Object {
        Object::new(name, align, size, |_| Ok(()))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its alignment.
    pub fn align(&self) -> usize {
        self.align
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn init(&self, mem: Region<'_>) -> Result<(), String> {
        (self.init)(mem)
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("name", &self.name)
            .field("align", &self.align)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Where a kind's [`TileKind::check`] reports problems, and what it may
/// look at: the tile and the whole topology.
#[derive(Debug)]
pub struct CheckCtx<'a> {
    topo: &'a TopologySpec,
    params: &'a [Option<TileParams>],
    tile: &'a TileSpec,
    errors: &'a mut Vec<TopoError>,
}

impl<'a> CheckCtx<'a> {
    /// `params[i]`: the parameters of `topo.tiles[i]`, if they were read.
    pub(crate) fn new(
        topo: &'a TopologySpec,
        params: &'a [Option<TileParams>],
        tile: &'a TileSpec,
        errors: &'a mut Vec<TopoError>,
    ) -> CheckCtx<'a> {
        CheckCtx {
            topo,
            params,
            tile,
            errors,
        }
    }

    /// The topology.
    pub fn topology(&self) -> &'a TopologySpec {
        self.topo
    }

    /// The parameters of tile `tile` of the topology, if they are a `P`
    /// (the kind's [`TileKind::Params`]) and were read.
    pub fn params_of<P: 'static>(&self, tile: &TileSpec) -> Option<&'a P> {
        params_of(self.topo, self.params, tile)
    }

    /// The tile being checked.
    pub fn tile(&self) -> &'a TileSpec {
        self.tile
    }

    /// A problem with the tile as a whole, reported at its `[[tile]]`
    /// header: `tile "name": {reason}`.
    pub fn error(&mut self, reason: impl fmt::Display) {
        let at = self.tile.at.header;
        self.errors
            .push(at.err(format!("tile {:?}: {reason}", self.tile.name)));
    }

    /// A problem with parameter `field`, reported where it is written (at
    /// the tile's header when it is not): `` tile "name" params: `field`
    /// {reason} ``.
    pub fn field_error(&mut self, field: &str, reason: impl fmt::Display) {
        let at = self.tile.param_loc(field);
        self.errors.push(at.err(format!(
            "tile {:?} params: `{field}` {reason}",
            self.tile.name
        )));
    }

    /// A problem with link `link`'s `field` (`"mtu"`, `"depth"`), reported
    /// at that field (at the link's header when it is not written).
    pub fn link_error(&mut self, link: &str, field: &str, reason: impl fmt::Display) {
        let at: Loc = match self.topo.link(link) {
            Some(l) => l.field_loc(field),
            None => self.tile.at.header,
        };
        self.errors.push(at.err(reason.to_string()));
    }
}

/// Why a tile could not be built: what failed, and how to fix it where
/// that is known. The runner adds the tile's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

impl BuildError {
    /// A build error saying `why`.
    pub fn new(why: impl fmt::Display) -> BuildError {
        BuildError(why.to_string())
    }
}

impl From<String> for BuildError {
    fn from(why: String) -> BuildError {
        BuildError(why)
    }
}

impl From<&str> for BuildError {
    fn from(why: &str) -> BuildError {
        BuildError(why.to_owned())
    }
}

/// What a kind's [`TileKind::build`] builds from: the workspace (its links
/// and objects made), the topology and the tile, and a place to keep what
/// must outlive the build.
pub struct BuildCtx<'w, 'a> {
    ws: &'w Workspace,
    topo: &'a TopologySpec,
    params: &'a [Option<TileParams>],
    tile: &'a TileSpec,
    keep: Vec<Box<dyn Any>>,
}

impl fmt::Debug for BuildCtx<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildCtx")
            .field("workspace", &self.ws.name())
            .field("tile", &self.tile.name)
            .field("keep", &self.keep.len())
            .finish()
    }
}

impl<'w, 'a> BuildCtx<'w, 'a> {
    /// `params[i]`: the parameters of `topo.tiles[i]`.
    pub(crate) fn new(
        ws: &'w Workspace,
        topo: &'a TopologySpec,
        params: &'a [Option<TileParams>],
        tile: &'a TileSpec,
    ) -> Self {
        BuildCtx {
            ws,
            topo,
            params,
            tile,
            keep: Vec::new(),
        }
    }

    /// The workspace.
    pub fn workspace(&self) -> &'w Workspace {
        self.ws
    }

    /// The topology.
    pub fn topology(&self) -> &'a TopologySpec {
        self.topo
    }

    /// The parameters of tile `tile` of the topology, if they are a `P`
    /// (the kind's [`TileKind::Params`]).
    pub fn params_of<P: 'static>(&self, tile: &TileSpec) -> Option<&'a P> {
        params_of(self.topo, self.params, tile)
    }

    /// The tile being built.
    pub fn tile(&self) -> &'a TileSpec {
        self.tile
    }

    /// The tile's name.
    pub fn name(&self) -> &'a str {
        &self.tile.name
    }

    /// Joins the link of input `i`.
    ///
    /// # Errors
    /// There is no input `i`, or its link cannot be joined.
    pub fn input(&self, i: usize) -> Result<Link<'w>, BuildError> {
        let name = self.tile.inputs.get(i).ok_or_else(|| {
            BuildError::new(format!(
                "has {} inputs, no input {i}",
                self.tile.inputs.len()
            ))
        })?;
        join(self.ws, name)
    }

    /// Joins the link of output `i`.
    ///
    /// # Errors
    /// There is no output `i`, or its link cannot be joined.
    pub fn output(&self, i: usize) -> Result<Link<'w>, BuildError> {
        let name = self.tile.outputs.get(i).ok_or_else(|| {
            BuildError::new(format!(
                "has {} outputs, no output {i}",
                self.tile.outputs.len()
            ))
        })?;
        join(self.ws, name)
    }

    /// The memory of object `name`, one the kind declared in
    /// [`TileKind::objects`].
    ///
    /// # Errors
    /// It is missing from the workspace, or lies outside it.
    pub fn object(&self, name: &str) -> Result<Region<'w>, BuildError> {
        let a = self
            .ws
            .lookup(name)
            .ok_or_else(|| BuildError::new(format!("its object {name:?} is missing")))?;
        self.ws
            .region(a.gaddr, a.size as usize)
            .map_err(|e| BuildError::new(format!("its object {name:?}: {e}")))
    }

    /// Keeps `thing` until the tile's loop returns; it is dropped after
    /// the tile, in the order kept (an attached XDP program, a file lock).
    pub fn keep(&mut self, thing: impl Any) {
        self.keep.push(Box::new(thing));
    }

    pub(crate) fn into_kept(self) -> Vec<Box<dyn Any>> {
        self.keep
    }
}

fn join<'w>(ws: &'w Workspace, name: &str) -> Result<Link<'w>, BuildError> {
    Link::join(ws, name).map_err(|e: LinkError| BuildError::new(format!("link {name:?}: {e}")))
}

/// The parameters of `tile` in `params` (by its index in `topo`), if they
/// are a `P`.
fn params_of<'a, P: 'static>(
    topo: &TopologySpec,
    params: &'a [Option<TileParams>],
    tile: &TileSpec,
) -> Option<&'a P> {
    let i = topo.tiles.iter().position(|t| t.name == tile.name)?;
    params.get(i)?.as_ref()?.get::<P>()
}
