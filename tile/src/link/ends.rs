//! A link's two ends: its producer ([`Link::producer`]) and its
//! consumers ([`Link::consumer`]).

use crate::link::consumer::Consumer;
use crate::link::error::LinkError;
use crate::link::handle::Link;
use crate::link::producer::Producer;

impl<'w> Link<'w> {
    /// A producer for this link. There must be only one at a time (nothing
    /// enforces it across processes; the topology does).
    pub fn producer(&self) -> Producer<'w> {
        Producer::new(self)
    }

    /// Consumer `index`.
    ///
    /// # Errors
    /// [`LinkError::NoSuchConsumer`].
    pub fn consumer(&self, index: usize) -> Result<Consumer<'w>, LinkError> {
        let fseqs = self.fseqs();
        let fseq = *fseqs.get(index).ok_or(LinkError::NoSuchConsumer {
            link: self.name().to_owned(),
            index,
            count: fseqs.len(),
        })?;
        Ok(Consumer::new(*self.mcache(), *self.dcache(), fseq))
    }
}
