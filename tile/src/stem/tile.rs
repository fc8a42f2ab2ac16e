//! The [`Tile`] trait: the callbacks the run loop calls (see the
//! [module docs](super) for when), what [`Tile::before_frag`] decides
//! ([`Filter`]), and the outputs the callbacks publish on ([`Outputs`]).

use core::sync::atomic::AtomicU8;

use crate::link::frag::{FragMeta, CTL_ERR, CTL_PKT};
use crate::link::producer::{Backpressure, Producer};
use crate::stem::forward::{Forwarding, Frag, Place, Reading};
use tilewire_shmem::clock::mono_ts;
use tilewire_shmem::store_bytes;

/// What [`Tile::before_frag`] decides about a frag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Read it: `during_frag`, then `after_frag` if the read was good.
    Process,
    /// Pass over it without reading its payload (counted as filtered).
    Skip,
    /// Not now: leave it where it is and ask again later.
    Retry,
}

/// The tile's outputs, as the callbacks see them.
#[derive(Debug)]
pub struct Outputs<'a, 'w> {
    pub(super) producers: &'a mut [Producer<'w>],
    /// What [`Outputs::forward`] needs: which outputs may take which
    /// inputs' frags by chunk, and the ledgers of those it did.
    pub(super) fwd: &'a mut Forwarding,
    /// The `tspub` of the frags published through these outputs (this
    /// iteration's), read from the clock at the first of them.
    pub(super) tspub: Option<u32>,
}

impl<'w> Outputs<'_, 'w> {
    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True if the tile has no output.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The producer of output `i`.
    ///
    /// # Panics
    /// If there is no output `i`.
    pub fn producer(&mut self, i: usize) -> &mut Producer<'w> {
        &mut self.producers[i]
    }

    /// Publishes `payload` on output `i` as one frag with control word
    /// `ctl` (see [`Producer::publish`]); its `tspub` is the one every frag
    /// published in this callback shares.
    ///
    /// # Errors
    /// [`PublishError::TooLong`] if `payload` is longer than the output's
    /// mtu; [`PublishError::Backpressure`] only if the tile publishes more
    /// than [`Tile::burst`] frags on one output for one input frag. Nothing
    /// is published then.
    ///
    /// # Panics
    /// If there is no output `i` (the topology gives a kind the outputs it
    /// declared, so this is a bug in the tile).
    #[inline]
    pub fn publish(
        &mut self,
        i: usize,
        payload: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, PublishError> {
        let p = &mut self.producers[i];
        let mtu = p.mtu();
        if payload.len() > mtu {
            return Err(PublishError::TooLong {
                len: payload.len(),
                mtu,
            });
        }
        let tspub = *self.tspub.get_or_insert_with(mono_ts);
        p.publish_at(payload, sig, ctl, tsorig, tspub)
            .map_err(|Backpressure| PublishError::Backpressure)
    }

    /// Publishes `packet` on output `i` as one whole-packet frag (SOM and
    /// EOM, origin 0), with `sig`, `tsorig` and the ERR flag of `ctl`: what
    /// a tile that passes packets on does with the packet of a frag it read
    /// ([`FragCopy::packet`](super::FragCopy::packet)).
    ///
    /// # Errors
    /// As [`Outputs::publish`].
    ///
    /// # Panics
    /// As [`Outputs::publish`].
    #[inline]
    pub fn publish_packet(
        &mut self,
        i: usize,
        packet: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, PublishError> {
        self.publish(i, packet, sig, CTL_PKT | (ctl & CTL_ERR), tsorig)
    }
}

impl Outputs<'_, '_> {
    /// Publishes the concatenation of `parts` on output `o` as one
    /// whole-packet frag (as [`Outputs::publish_packet`]), each part
    /// copied once, straight into the output's dcache: what a tile that
    /// rewrites a packet's headers does with a rewritten copy of the
    /// headers and the rest of the packet where it lies.
    ///
    /// # Errors
    /// As [`Outputs::publish`]; nothing is published then.
    ///
    /// # Panics
    /// If there is no output `o`.
    pub fn publish_parts(
        &mut self,
        o: usize,
        parts: &[&[u8]],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, PublishError> {
        let p = &mut self.producers[o];
        let (len, mtu) = (parts.iter().map(|b| b.len()).sum::<usize>(), p.mtu());
        if len > mtu {
            return Err(PublishError::TooLong { len, mtu });
        }
        let bytes = p
            .reserve()
            .map_err(|Backpressure| PublishError::Backpressure)?;
        let mut at = 0;
        for part in parts {
            store_bytes(&bytes[at..at + part.len()], part);
            at += part.len();
        }
        let tspub = *self.tspub.get_or_insert_with(mono_ts);
        Ok(p.commit_at(len, sig, CTL_PKT | (ctl & CTL_ERR), tsorig, tspub))
    }

    /// Passes `frag` on on output `o` unchanged: the same payload (origin
    /// included), signature, control word and `tsorig`, a new `tspub`.
    /// By chunk, copying nothing, when the frag was read in place and
    /// every consumer of the output is reliable; otherwise by one copy
    /// straight into the output's dcache (see [`forward`](super::forward)).
    ///
    /// # Errors
    /// As [`Outputs::publish`]: [`PublishError::TooLong`] if the payload is
    /// longer than the output's mtu, [`PublishError::Backpressure`] only if
    /// the tile publishes more than its burst for one input frag. Nothing
    /// is published then.
    ///
    /// # Panics
    /// If there is no output `o`.
    #[inline]
    pub fn forward(&mut self, o: usize, frag: &Frag<'_>) -> Result<u64, PublishError> {
        let m = frag.meta;
        let p = &mut self.producers[o];
        let mtu = p.mtu();
        let len = usize::from(m.sz);
        if len > mtu {
            return Err(PublishError::TooLong { len, mtu });
        }
        let fwd = &mut *self.fwd;
        if frag.place == Place::InPlace && fwd.by_chunk(o, frag.input) {
            let tspub = *self.tspub.get_or_insert_with(mono_ts);
            let seq = p
                .publish_chunk(m.chunk, len, m.sig, m.ctl, m.tsorig, tspub)
                .map_err(|Backpressure| PublishError::Backpressure)?;
            fwd.note(o, frag.input, seq, m.seq);
            return Ok(seq);
        }
        let tspub = *self.tspub.get_or_insert_with(mono_ts);
        let seq = p
            .publish_at(frag.bytes, m.sig, m.ctl, m.tsorig, tspub)
            .map_err(|Backpressure| PublishError::Backpressure)?;
        fwd.counts.copied += 1;
        Ok(seq)
    }
}

/// Why [`Outputs::publish`] published nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The payload is longer than the output's mtu.
    #[error("a payload of {len} bytes is longer than the output's mtu {mtu}")]
    TooLong {
        /// The payload's length.
        len: usize,
        /// The output's mtu.
        mtu: usize,
    },
    /// The output has no credits (the tile published more than its burst).
    #[error("the output has no credits")]
    Backpressure,
}

/// A tile: the callbacks the run loop calls (see the [module
/// docs](super) for when). Every method but [`Tile::kind`] has a default
/// that does nothing.
pub trait Tile {
    /// The tile's kind, shown by monitors (at most 32 bytes).
    fn kind(&self) -> &str;

    /// Most frags the tile publishes on one output per input frag or per
    /// `after_credit`; the loop only reads input when every output has this
    /// many credits.
    fn burst(&self) -> u64 {
        1
    }

    /// Names of the tile's own counters, written by
    /// [`Tile::metrics_write`] (at most 16, each at most 32 bytes).
    fn counters(&self) -> &'static [&'static str] {
        &[]
    }

    /// Start of every iteration, before credits are checked.
    fn before_credit(&mut self, _out: &mut Outputs<'_, '_>) {}

    /// After credits were found sufficient.
    fn after_credit(&mut self, _out: &mut Outputs<'_, '_>) {}

    /// A frag is waiting on `input`: process, skip or retry it?
    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        Filter::Process
    }

    /// How the tile reads payloads, asked once when its [`Stem`] is made:
    /// [`Reading::Speculative`] (the default) calls `during_frag` while the
    /// payload may still change and `after_frag` once the read proved good;
    /// [`Reading::Settled`] calls [`Tile::on_frag`] alone, with the payload
    /// settled and, on a reliable input, read in place. A filter that
    /// passes frags on unchanged reads settled and calls
    /// [`Outputs::forward`]: it copies no byte (see
    /// [`forward`](super::forward)).
    ///
    /// [`Stem`]: super::Stem
    fn reading(&self) -> Reading {
        Reading::Speculative
    }

    /// A frag whose read proved good, for a tile that reads
    /// [`Reading::Settled`]: its metadata and payload, as plain bytes that
    /// nothing changes while this call runs. Pass it on with
    /// [`Outputs::forward`], publish something else with
    /// [`Outputs::publish`], or drop it by doing neither.
    fn on_frag(&mut self, _input: usize, _frag: &Frag<'_>, _out: &mut Outputs<'_, '_>) {}

    /// Reads the frag's payload speculatively (it may be torn: the result
    /// is only to be trusted once `after_frag` is called).
    fn during_frag(&mut self, _input: usize, _meta: &FragMeta, _payload: &[AtomicU8]) {}

    /// The frag read in `during_frag` was not overwritten: act on it.
    fn after_frag(&mut self, _input: usize, _meta: &FragMeta, _out: &mut Outputs<'_, '_>) {}

    /// A poll of `input` found nothing new: the end of a burst, the place
    /// to flush what was batched.
    fn end_of_burst(&mut self, _input: usize, _out: &mut Outputs<'_, '_>) {}

    /// Periodic work (see [`StemConfig::lazy`](super::StemConfig::lazy)).
    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {}

    /// Writes the tile's counters, in the order of [`Tile::counters`].
    fn metrics_write(&mut self, _counters: &mut [u64]) {}

    /// Frags of `input` the tile has taken in (its `after_frag` ran) and
    /// not yet passed on: the newest ones it read. The input's published
    /// progress stops before them, so a tile that dies holding them hands
    /// them to its successor, which reads them again: over a reliable link
    /// nothing is lost across a crash (some frags may come twice).
    fn held(&self, _input: usize) -> u64 {
        0
    }

    /// True if the tile takes work from outside its input links (a socket,
    /// a clock): a backing-off tile ([`IdlePolicy::Backoff`]) with nothing
    /// to do then naps briefly instead of sleeping until a frag arrives.
    ///
    /// [`IdlePolicy::Backoff`]: super::IdlePolicy::Backoff
    fn external_input(&self) -> bool {
        false
    }

    /// Packets the tile has taken from its inputs and not yet passed on.
    /// A stopping tile keeps running its `after_credit` and `housekeeping`
    /// (a draining one, every callback) until this is zero (or the grace
    /// time ends; whatever it still holds then is not counted as read, see
    /// [`Tile::held`]).
    fn pending(&self) -> usize {
        0
    }
}

/// A boxed tile is a tile: a pipeline built from a topology file runs
/// tiles of kinds chosen at run time as `Stem<Box<dyn Tile + Send>>`
/// (one indirect call per callback, a few nanoseconds a frag).
impl<T: Tile + ?Sized> Tile for Box<T> {
    fn kind(&self) -> &str {
        (**self).kind()
    }
    fn burst(&self) -> u64 {
        (**self).burst()
    }
    fn counters(&self) -> &'static [&'static str] {
        (**self).counters()
    }
    #[inline]
    fn before_credit(&mut self, out: &mut Outputs<'_, '_>) {
        (**self).before_credit(out)
    }
    #[inline]
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        (**self).after_credit(out)
    }
    #[inline]
    fn before_frag(&mut self, input: usize, seq: u64, sig: u64) -> Filter {
        (**self).before_frag(input, seq, sig)
    }
    fn reading(&self) -> Reading {
        (**self).reading()
    }
    #[inline]
    fn on_frag(&mut self, input: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        (**self).on_frag(input, frag, out)
    }
    #[inline]
    fn during_frag(&mut self, input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        (**self).during_frag(input, meta, payload)
    }
    #[inline]
    fn after_frag(&mut self, input: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        (**self).after_frag(input, meta, out)
    }
    #[inline]
    fn end_of_burst(&mut self, input: usize, out: &mut Outputs<'_, '_>) {
        (**self).end_of_burst(input, out)
    }
    fn housekeeping(&mut self, out: &mut Outputs<'_, '_>) {
        (**self).housekeeping(out)
    }
    fn metrics_write(&mut self, counters: &mut [u64]) {
        (**self).metrics_write(counters)
    }
    fn held(&self, input: usize) -> u64 {
        (**self).held(input)
    }
    fn external_input(&self) -> bool {
        (**self).external_input()
    }
    fn pending(&self) -> usize {
        (**self).pending()
    }
}
