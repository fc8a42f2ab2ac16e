//! The registry: which tile kinds a topology may name ([`Registry`]).

use core::any::Any;
use core::fmt;
use std::sync::Arc;

use tilewire_tile::stem::Tile;

use crate::kind::{
    BuildCtx, BuildError, CheckCtx, IoCounts, Object, ParamCount, Replays, TileKind,
};
use crate::tile_params::TileParams;
use crate::topo::{LinkSpec, ParamsAt, TileSpec, TopoError};

/// Longest kind name: a tile's metrics keep its kind in 32 bytes.
pub(crate) const KIND_NAME_MAX: usize = tilewire_tile::stem::metrics::TILE_KIND_MAX;

/// Why a kind could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A kind of that name is registered already.
    #[error("a tile kind named {name:?} is registered already")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The name is not a usable kind name.
    #[error("{name:?} is not a usable tile kind name: {why}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// The tile kinds a topology may name.
///
/// A [`Registry`] maps kind names to [`TileKind`]s. Parsing a topology
/// against it turns each tile's `kind` and `params` into the kind and its
/// typed parameters; a name it does not hold is an error that lists the
/// ones it does. [`Registry::with_builtins`] holds the kinds tilewire
/// ships (`net-xdp` with the default feature `xdp`, `net-udp`, `dedup`,
/// `echo`, `forward`, `sink`, `pcap`, `gen`); a pipeline binary adds its
/// own with [`Registry::register`], and from then on they are checked,
/// sized, made and run exactly like the built-ins.
///
/// In processes mode every tile process parses the stored topology again,
/// so it needs the same registry as the runner: build it the same way in
/// `main` before calling [`tile_main`](crate::tile_main).
#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<KindRef>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry with no kinds.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds `kind`.
    ///
    /// # Errors
    /// [`RegistryError::Duplicate`] if a kind of its name is registered;
    /// [`RegistryError::BadName`] if the name is not 1 to 32 bytes (what
    /// a tile's metrics keep of its kind) of lowercase letters, digits
    /// and `-` starting with a letter.
    pub fn register<K: TileKind>(&mut self, kind: K) -> Result<&mut Registry, RegistryError> {
        let name = kind.name().to_owned();
        check_kind_name(&name).map_err(|why| RegistryError::BadName {
            name: name.clone(),
            why,
        })?;
        if self.get(&name).is_some() {
            return Err(RegistryError::Duplicate { name });
        }
        self.kinds.push(KindRef(Arc::new(Erased(kind))));
        Ok(self)
    }

    /// [`Registry::register`], by value: `Registry::with_builtins().with(MyKind)?`.
    ///
    /// # Errors
    /// As [`Registry::register`].
    pub fn with<K: TileKind>(mut self, kind: K) -> Result<Registry, RegistryError> {
        self.register(kind)?;
        Ok(self)
    }

    /// The registered kind names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.iter().map(|k| k.0.name())
    }

    /// True if a kind `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&KindRef> {
        self.kinds.iter().find(|k| k.0.name() == name)
    }
}

/// Kind names: what a topology writes and what metrics keep.
fn check_kind_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > KIND_NAME_MAX {
        return Err("it must be 1 to 32 bytes long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("it may hold only lowercase letters, digits and '-'");
    }
    Ok(())
}

/// A registered kind, shared by the registry and every tile of the kind.
#[derive(Clone)]
pub(crate) struct KindRef(Arc<dyn ErasedKind>);

impl KindRef {
    pub(crate) fn kind(&self) -> &dyn ErasedKind {
        &*self.0
    }
}

impl fmt::Debug for KindRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// [`TileKind`] without its parameter type, so kinds of every type share
/// one registry.
pub(crate) trait ErasedKind: Send + Sync {
    fn name(&self) -> &str;
    fn io(&self) -> IoCounts;
    fn parse(&self, params: ParamsAt<'_>) -> Result<TileParams, TopoError>;
    fn check(&self, params: &TileParams, ctx: &mut CheckCtx<'_>);
    fn count(&self, params: &TileParams) -> Result<Option<ParamCount>, String>;
    fn objects(&self, params: &TileParams, tile: &TileSpec) -> Vec<Object>;
    fn output_data_mtus(&self, params: &TileParams, output: usize, link: &LinkSpec) -> Option<u64>;
    fn netns<'p>(&self, params: &'p TileParams) -> Option<&'p str>;
    fn replays(&self) -> Replays;
    fn build<'w>(
        &self,
        params: &TileParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError>;
    fn setup(
        &self,
        tiles: &[(&TileSpec, &TileParams)],
    ) -> Result<Option<Box<dyn Any + Send>>, BuildError>;
}

struct Erased<K>(K);

impl<K: TileKind> Erased<K> {
    fn typed<'p>(&self, params: &'p TileParams) -> &'p K::Params {
        params
            .get::<K::Params>()
            .expect("a tile's parameters are always of its own kind's type")
    }
}

impl<K: TileKind> ErasedKind for Erased<K> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn io(&self) -> IoCounts {
        self.0.io()
    }
    fn parse(&self, params: ParamsAt<'_>) -> Result<TileParams, TopoError> {
        crate::topo::from_params::<K::Params>(params).map(TileParams::new)
    }
    fn check(&self, params: &TileParams, ctx: &mut CheckCtx<'_>) {
        self.0.check(self.typed(params), ctx)
    }
    fn count(&self, params: &TileParams) -> Result<Option<ParamCount>, String> {
        self.0.count(self.typed(params))
    }
    fn objects(&self, params: &TileParams, tile: &TileSpec) -> Vec<Object> {
        self.0.objects(self.typed(params), tile)
    }
    fn output_data_mtus(&self, params: &TileParams, output: usize, link: &LinkSpec) -> Option<u64> {
        self.0.output_data_mtus(self.typed(params), output, link)
    }
    fn netns<'p>(&self, params: &'p TileParams) -> Option<&'p str> {
        self.0.netns(self.typed(params))
    }
    fn replays(&self) -> Replays {
        self.0.replays()
    }
    fn build<'w>(
        &self,
        params: &TileParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        self.0.build(self.typed(params), ctx)
    }
    fn setup(
        &self,
        tiles: &[(&TileSpec, &TileParams)],
    ) -> Result<Option<Box<dyn Any + Send>>, BuildError> {
        let typed: Vec<(&TileSpec, &K::Params)> =
            tiles.iter().map(|(t, p)| (*t, self.typed(p))).collect();
        self.0.setup(&typed)
    }
}
