//! Settled reads and forwarding: how a filter passes a frag on without
//! copying it.
//!
//! A tile whose [`Tile::reading`](crate::stem::Tile::reading) is
//! [`Reading::Settled`] is handed each frag once its read proved good, as
//! a [`Frag`]: its metadata and its payload as plain bytes. On a reliable
//! input those bytes are the input link's own, read in place: the
//! producer cannot reuse them before this tile passes the frag on (its
//! credits), so nothing can change them while the tile looks. On an
//! unreliable input the producer may overwrite them at any moment, so the
//! run loop copies them once into the tile's own buffer and re-checks the
//! frag's line before handing over the copy.
//!
//! [`Outputs::forward`](crate::stem::Outputs::forward) passes a `Frag` on.
//! When its bytes are in place and every consumer of the output is
//! reliable, the output's frag points at the same chunk: nothing is copied,
//! and the tile's published progress on the input waits until the output's
//! readers passed that frag (see [`crate::link::ledger`] for why that is
//! safe). Otherwise the payload is copied once, straight into the output's
//! dcache. [`Stem::forwarded`](crate::stem::Stem::forwarded) counts both.

use crate::link::frag::{seq_diff, FragMeta};
use crate::link::ledger::Ledger;
use crate::link::{Consumer, Producer};

/// How a tile reads its frags' payloads (see [`Tile::reading`]).
///
/// [`Tile::reading`]: crate::stem::Tile::reading
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// [`Tile::during_frag`] sees the payload while it may still be
    /// changing and copies what it needs; [`Tile::after_frag`] acts once
    /// the read proved good. The tile owns its copies.
    ///
    /// [`Tile::during_frag`]: crate::stem::Tile::during_frag
    /// [`Tile::after_frag`]: crate::stem::Tile::after_frag
    #[default]
    Speculative,
    /// [`Tile::on_frag`] alone, with a [`Frag`] whose bytes are settled:
    /// read in place on a reliable input, a copy the run loop made on an
    /// unreliable one. The tile copies nothing and may pass the frag on
    /// with [`Outputs::forward`].
    ///
    /// [`Tile::on_frag`]: crate::stem::Tile::on_frag
    /// [`Outputs::forward`]: crate::stem::Outputs::forward
    Settled,
}

/// Where a [`Frag`]'s bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the input link's dcache (or in a dcache upstream of it, for a
    /// frag forwarded onto the input), read in place.
    InPlace,
    /// In the run loop's copy (an unreliable input).
    Copy,
}

/// A frag whose read proved good, as [`Tile::on_frag`] gets it.
///
/// [`Tile::on_frag`]: crate::stem::Tile::on_frag
#[derive(Debug, Clone, Copy)]
pub struct Frag<'a> {
    pub(crate) input: usize,
    pub(crate) meta: FragMeta,
    pub(crate) bytes: &'a [u8],
    pub(crate) place: Place,
}

impl<'a> Frag<'a> {
    /// The input it came from.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Its metadata.
    pub fn meta(&self) -> &FragMeta {
        &self.meta
    }

    /// Its signature.
    pub fn sig(&self) -> u64 {
        self.meta.sig
    }

    /// Its whole payload (`meta().sz` bytes).
    pub fn payload(&self) -> &'a [u8] {
        self.bytes
    }

    /// The packet in it: the bytes from the frag's origin on (empty if the
    /// origin lies beyond them).
    pub fn packet(&self) -> &'a [u8] {
        self.meta.packet(self.bytes)
    }

    /// True if the bytes are the input link's own, read in place (no copy
    /// was made to read them).
    pub fn in_place(&self) -> bool {
        self.place == Place::InPlace
    }
}

/// The bytes of a frag read in place, as a plain slice.
///
/// Only for a frag the run loop holds on a reliable input (see
/// [`Place::InPlace`]): the one protocol state in which no process stores
/// to those bytes while the tile reads them.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn settled(bytes: &[core::sync::atomic::AtomicU8]) -> &[u8] {
    // SAFETY: the caller holds this frag on a reliable input, its
    // published progress stopping before it: the input's producer reuses
    // no chunk a reliable consumer has not passed (its credits, see
    // `crate::link`), the producer of every link the frag was forwarded
    // from holds its own progress until this consumer passed the frag
    // (`crate::link::ledger`), and nothing else writes a link's dcache.
    // So no store to these bytes happens while the view lives (the frag's
    // handling ends before the consumer's progress can pass it).
    unsafe { tilewire_shmem::view_bytes(bytes) }
}

/// What a stem's outputs passed on with [`Outputs::forward`].
///
/// [`Outputs::forward`]: crate::stem::Outputs::forward
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// Frags passed on by chunk: no byte copied.
    pub by_chunk: u64,
    /// Frags passed on by copying their payload once into the output.
    pub copied: u64,
}

/// How often, in frags forwarded by chunk, the holds are recomputed from
/// the outputs' readers' progress (also at every housekeeping and whenever
/// an input is found caught up).
const REFRESH_EVERY: u32 = 64;

/// A stem's forwarding state: which (output, input) pairs may forward by
/// chunk, their ledgers, and the hold each input's progress is under.
#[derive(Debug, Default)]
pub(crate) struct Forwarding {
    /// `ledgers[o][i]`: `Some` where output `o` may take input `i`'s frags
    /// by chunk.
    ledgers: Vec<Vec<Option<Ledger>>>,
    /// Per input: the seq its published progress must not pass.
    holds: Vec<Option<u64>>,
    /// Per input: its frags are read in place (a reliable input).
    in_place: Vec<bool>,
    since_refresh: u32,
    pub(crate) counts: Forwarded,
}

impl Forwarding {
    /// The forwarding state of a stem with these links. A restarted tile
    /// holds each input's progress where it starts until the readers of
    /// every forwarding output passed what was on it already: its
    /// predecessor may have forwarded those frags by chunk.
    pub(crate) fn new(inputs: &[Consumer<'_>], outputs: &[Producer<'_>]) -> Forwarding {
        let in_place: Vec<bool> = inputs.iter().map(Consumer::is_reliable).collect();
        let mut holds = vec![None; inputs.len()];
        let ledgers = outputs
            .iter()
            .map(|p| {
                inputs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if !(in_place[i] && p.all_reliable()) {
                            return None;
                        }
                        let mut l = Ledger::new(p.mcache().depth());
                        if p.reliable_progress() != p.seq() {
                            l.barrier(p.seq(), c.seq());
                            holds[i] = Some(c.seq());
                        }
                        Some(l)
                    })
                    .collect()
            })
            .collect();
        Forwarding {
            ledgers,
            holds,
            in_place,
            since_refresh: 0,
            counts: Forwarded::default(),
        }
    }

    /// True if input `i` is read in place.
    #[inline]
    pub(crate) fn in_place(&self, i: usize) -> bool {
        self.in_place[i]
    }

    /// True if input `i`'s frags may go out on output `o` by chunk.
    #[inline]
    pub(crate) fn by_chunk(&self, o: usize, i: usize) -> bool {
        matches!(self.ledgers.get(o).and_then(|l| l.get(i)), Some(Some(_)))
    }

    /// True if some input's progress is held for its forwarded frags.
    #[inline]
    pub(crate) fn holding(&self) -> bool {
        self.holds.iter().any(Option::is_some)
    }

    /// Notes that input `i`'s frag `input_seq` went out on output `o` as
    /// frag `output_seq`, by chunk. An input with no hold yet is held at
    /// this frag; the run loop hands the hold to the consumer
    /// ([`Forwarding::apply`]) before its next progress publish.
    #[inline]
    pub(crate) fn note(&mut self, o: usize, i: usize, output_seq: u64, input_seq: u64) {
        self.counts.by_chunk += 1;
        self.since_refresh += 1;
        if let Some(Some(l)) = self.ledgers.get_mut(o).and_then(|l| l.get_mut(i)) {
            l.push(output_seq, input_seq);
        }
        self.holds[i].get_or_insert(input_seq);
    }

    /// True if the holds are due for a refresh (every
    /// [`REFRESH_EVERY`] frags forwarded by chunk).
    #[inline]
    pub(crate) fn refresh_due(&self) -> bool {
        self.since_refresh >= REFRESH_EVERY
    }

    /// Recomputes every input's hold from its outputs' readers' progress
    /// and hands it to the input's consumer.
    pub(crate) fn refresh(&mut self, inputs: &mut [Consumer<'_>], outputs: &[Producer<'_>]) {
        self.since_refresh = 0;
        if !self.holding() {
            return;
        }
        for h in &mut self.holds {
            *h = None;
        }
        for (o, row) in self.ledgers.iter_mut().enumerate() {
            if row.iter().all(|l| l.as_ref().is_none_or(Ledger::is_empty)) {
                continue;
            }
            let progress = outputs[o].reliable_progress();
            for (i, l) in row.iter_mut().enumerate() {
                let Some(l) = l else { continue };
                if let Some(s) = l.retire(progress) {
                    let h = &mut self.holds[i];
                    // The oldest of the outputs' holds (seqs of one input
                    // are in order).
                    if h.is_none_or(|cur| seq_diff(s, cur) < 0) {
                        *h = Some(s);
                    }
                }
            }
        }
        for (c, h) in inputs.iter_mut().zip(&self.holds) {
            c.limit_progress(*h);
        }
    }

    /// Lets input `i`'s progress go: its producer halted, so nothing can
    /// reuse the chunks forwarded from it (a drained input at a stop). Its
    /// ledgers are emptied; the next refresh hands the consumer no hold.
    pub(crate) fn release(&mut self, i: usize) {
        for row in &mut self.ledgers {
            if let Some(Some(l)) = row.get_mut(i) {
                *l = Ledger::new(l.capacity());
            }
        }
        self.holds[i] = None;
    }

    /// Hands input `i`'s hold to its consumer.
    #[inline]
    pub(crate) fn apply(&self, i: usize, input: &mut Consumer<'_>) {
        input.limit_progress(self.holds[i]);
    }
}
