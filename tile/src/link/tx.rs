//! The chaining edge: an [`Aio`] whose send publishes each packet into a
//! link.
//!
//! Whatever speaks aio (a net backend's receive side, a pcap replay, a
//! test) can feed a pipeline through a [`LinkTx`]: each packet of a batch
//! becomes one frag (`CTL_PKT`, the packet's `meta.user` as its signature,
//! the send's start time as both its `tsorig` and its `tspub`: one clock
//! read per batch). The payload is copied into the
//! link's dcache before `send` returns, so, as the contract asks, the
//! backend keeps no interest in the caller's buffers.
//!
//! A full link is the aio's `Again`: when a reliable consumer is a ring
//! behind, `send` stops at the first packet it could not publish and
//! returns its index; packets before it are on the link. A packet longer
//! than the link's mtu (or [`BUF_MAX`]) is `Inval` at its index. `flush`
//! publishes the producer's position for consumers that resync; the frags
//! themselves are visible as soon as they are published.

use tilewire_aio::{Aio, PktInfo, SendError, BUF_MAX};
use tilewire_shmem::clock::mono_ts;

use crate::link::frag::CTL_PKT;
use crate::link::{Link, Producer};

/// An aio that publishes into a link (see the module docs).
#[derive(Debug)]
pub struct LinkTx<'w> {
    producer: Producer<'w>,
    max: usize,
    again: u64,
}

impl<'w> LinkTx<'w> {
    /// The aio over `link`: this becomes the link's producer (a link has one
    /// producer at a time).
    pub fn new(link: &Link<'w>) -> LinkTx<'w> {
        LinkTx {
            producer: link.producer(),
            max: link.mtu().min(BUF_MAX),
            again: 0,
        }
    }

    /// Longest packet taken.
    pub fn max_pkt_len(&self) -> usize {
        self.max
    }

    /// The producer (its seq, credits and back-pressure count).
    pub fn producer(&self) -> &Producer<'w> {
        &self.producer
    }

    /// Sends that stopped with `Again`.
    pub fn again_count(&self) -> u64 {
        self.again
    }
}

impl Aio for LinkTx<'_> {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        // One clock read per batch: every packet of it arrived together.
        let tsorig = mono_ts();
        for (i, pkt) in batch.iter().enumerate() {
            if pkt.buf.len() > self.max {
                return Err(SendError::inval(i));
            }
            if self
                .producer
                .publish_at(pkt.buf, pkt.meta.user, CTL_PKT, tsorig, tsorig)
                .is_err()
            {
                self.again += 1;
                return Err(SendError::again(i));
            }
        }
        if flush {
            self.producer.housekeeping();
        }
        Ok(())
    }
}
