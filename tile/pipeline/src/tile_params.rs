//! A tile's parameters, of its kind's type, held without their type so
//! kinds of every type share one topology.

use core::any::Any;
use core::fmt;
use std::sync::Arc;

/// A tile's parameters, typed by its kind and held without their type.
#[derive(Clone)]
pub(crate) struct TileParams {
    value: Arc<dyn Any + Send + Sync>,
    debug: fn(&dyn Any, &mut fmt::Formatter<'_>) -> fmt::Result,
}

impl TileParams {
    pub(crate) fn new<P: fmt::Debug + Send + Sync + 'static>(p: P) -> TileParams {
        TileParams {
            value: Arc::new(p),
            debug: |v, f| match v.downcast_ref::<P>() {
                Some(p) => fmt::Debug::fmt(p, f),
                None => f.write_str("?"),
            },
        }
    }

    pub(crate) fn get<P: 'static>(&self) -> Option<&P> {
        self.value.downcast_ref::<P>()
    }
}

impl fmt::Debug for TileParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.debug)(&*self.value, f)
    }
}
