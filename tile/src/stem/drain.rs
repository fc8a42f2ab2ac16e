//! The drain tile: the edge out of a pipeline, from a link into an [`Aio`].
//!
//! A [`Drain`] reads frags from its one input link, batches their payloads
//! (up to [`BATCH_MAX`]) and sends each batch to a downstream aio: a
//! socket, an AF_XDP ring, a pcap writer, the next pipeline. A full batch
//! is sent without flush; the batch at the end of a burst (the input had
//! nothing new) and at housekeeping is sent with `flush = true`, so a
//! packet never waits long for its flush.
//!
//! Nothing is lost silently. When the downstream answers `Again`, the
//! packets from its index on stay in the batch and are offered again; a
//! full batch stops the tile taking input (`before_frag` says
//! [`Filter::Retry`]), so over a reliable link the back-pressure reaches
//! the producer. A packet the downstream refuses as `Inval` is dropped and
//! counted (it would never go); the rest of the batch goes on. A stopping
//! drain keeps offering what it holds until the downstream takes it or the
//! stop grace ends (see [`crate::stem`]). What it holds is never counted
//! as read in the link's progress ([`Tile::held`]), so a drain that dies
//! or gives up holding packets leaves them for its successor.
//!
//! Each packet goes out with the frag's signature as `meta.user` and, if
//! one was set with [`Drain::with_dest`], that destination address.

use core::sync::atomic::AtomicU8;
use std::net::SocketAddr;

use tilewire_aio::{Aio, PktInfo, PktMeta, SendErrorKind};
use tilewire_shmem::load_bytes;

use crate::link::frag::FragMeta;
use crate::stem::{Filter, Outputs, Tile};

/// Most packets in one send.
pub const BATCH_MAX: usize = 64;

/// What a drain counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// Packets the downstream took.
    pub sent: u64,
    /// Calls to the downstream's send.
    pub sends: u64,
    /// Sends answered `Again`.
    pub again: u64,
    /// Packets refused as `Inval`, dropped.
    pub inval: u64,
}

/// Drains a link into an aio (see the module docs).
#[derive(Debug)]
pub struct Drain<A: Aio> {
    aio: A,
    mtu: usize,
    dest: Option<SocketAddr>,
    bufs: Vec<u8>,
    lens: [usize; BATCH_MAX],
    sigs: [u64; BATCH_MAX],
    /// Batch slots `[head, len)` wait to be sent.
    head: usize,
    len: usize,
    stats: DrainStats,
}

impl<A: Aio> Drain<A> {
    /// A drain into `aio` for a link of `mtu` bytes.
    pub fn new(aio: A, mtu: usize) -> Drain<A> {
        Drain {
            aio,
            mtu,
            dest: None,
            bufs: vec![0; mtu * BATCH_MAX],
            lens: [0; BATCH_MAX],
            sigs: [0; BATCH_MAX],
            head: 0,
            len: 0,
            stats: DrainStats::default(),
        }
    }

    /// Sends every packet to `addr`.
    #[must_use]
    pub fn with_dest(mut self, addr: SocketAddr) -> Drain<A> {
        self.dest = Some(addr);
        self
    }

    /// The downstream aio.
    pub fn aio(&self) -> &A {
        &self.aio
    }

    /// The downstream aio, mutably.
    pub fn aio_mut(&mut self) -> &mut A {
        &mut self.aio
    }

    /// Counts so far.
    pub fn stats(&self) -> DrainStats {
        self.stats
    }

    /// Offers the waiting packets to the downstream.
    fn send(&mut self, flush: bool) {
        while self.head < self.len {
            let (head, len, mtu) = (self.head, self.len, self.mtu);
            let (bufs, lens, sigs, dest) = (&self.bufs, &self.lens, &self.sigs, self.dest);
            let batch: [PktInfo<'_>; BATCH_MAX] = core::array::from_fn(|k| {
                let s = (head + k).min(BATCH_MAX - 1);
                PktInfo::new(&bufs[s * mtu..s * mtu + lens[s]]).with_meta(PktMeta {
                    addr: dest,
                    user: sigs[s],
                })
            });
            self.stats.sends += 1;
            match self.aio.send(&batch[..len - head], flush) {
                Ok(()) => {
                    self.stats.sent += (len - head) as u64;
                    self.head = len;
                }
                Err(e) => {
                    let took = e.batch_idx.min(len - head);
                    self.stats.sent += took as u64;
                    self.head += took;
                    if e.kind == SendErrorKind::Again {
                        self.stats.again += 1;
                        break;
                    }
                    // Inval: this packet will never go; drop it, go on.
                    self.stats.inval += 1;
                    self.head += 1;
                }
            }
        }
        if self.head >= self.len {
            self.head = 0;
            self.len = 0;
        }
    }
}

impl<A: Aio> Tile for Drain<A> {
    fn kind(&self) -> &str {
        "drain"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["sent", "sends", "again", "inval"]
    }

    fn after_credit(&mut self, _out: &mut Outputs<'_, '_>) {
        if self.len == BATCH_MAX {
            self.send(true);
        }
    }

    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        if self.len == BATCH_MAX {
            Filter::Retry
        } else {
            Filter::Process
        }
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        let s = self.len;
        let n = (meta.sz as usize).min(self.mtu).min(payload.len());
        load_bytes(
            &mut self.bufs[s * self.mtu..s * self.mtu + n],
            &payload[..n],
        );
        self.lens[s] = n;
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, _out: &mut Outputs<'_, '_>) {
        self.sigs[self.len] = meta.sig;
        self.len += 1;
        if self.len == BATCH_MAX {
            self.send(false);
        }
    }

    fn end_of_burst(&mut self, _input: usize, _out: &mut Outputs<'_, '_>) {
        if self.len > self.head {
            self.send(true);
        }
    }

    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {
        if self.len > self.head {
            self.send(true);
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in counters.iter_mut().zip([s.sent, s.sends, s.again, s.inval]) {
            *c = v;
        }
    }

    fn held(&self, _input: usize) -> u64 {
        (self.len - self.head) as u64
    }

    fn pending(&self) -> usize {
        self.len - self.head
    }
}
