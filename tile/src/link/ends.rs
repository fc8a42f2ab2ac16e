//! A link's two ends: its producer ([`Link::producer`]) and its
//! consumers ([`Link::consumer`]).

use crate::link::consumer::Consumer;
use crate::link::error::LinkError;
use crate::link::handle::Link;
use crate::link::ledger::forward_sources;
use crate::link::producer::Producer;

impl<'w> Link<'w> {
    /// A producer for this link. There must be only one at a time (nothing
    /// enforces it across processes; the topology does).
    pub fn producer(&self) -> Producer<'w> {
        Producer::new(self)
    }

    /// Consumer `index`. It reads frags whose payload lies in this link's
    /// dcache or in that of any other link of the workspace: a tile
    /// upstream may have forwarded them onto this link by chunk, without a
    /// copy (see [`crate::link::ledger`]); a frag pointing anywhere else is
    /// counted as bad and skipped unread.
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
        let mut c = Consumer::new(*self.mcache(), *self.dcache(), fseq);
        for d in forward_sources(self.workspace()) {
            c.accept_chunks_of(d);
        }
        Ok(c)
    }
}
