//! Links: one producer, any number of consumers, in a workspace.
//!
//! A link named `net.rx` is three kinds of named allocations in a workspace:
//! `net.rx.mc` (the [mcache](crate::mcache): frag metadata), `net.rx.dc`
//! (the [dcache](crate::dcache): payloads) and `net.rx.fs0`, `net.rx.fs1`, ...
//! (one [fseq](crate::fseq) per consumer). Any process that joins the
//! workspace joins the link by name; what it finds is checked like any
//! shared object.
//!
//! # Flow control
//!
//! The producer holds *credits*: how many more frags it may publish before
//! it would overwrite one the slowest *reliable* consumer has not read.
//! Credits are `depth - (seq - min reliable progress)`, recomputed only when
//! they run out (one cache-line read per reliable consumer). With no credits
//! [`Producer::publish`] returns [`Backpressure`] and the caller waits,
//! retries or drops; it is never blocked inside the call. Unreliable
//! consumers never slow the producer: when they fall a ring behind they are
//! overrun, resync to the newest frag and count what they lost.
//!
//! # Restarts
//!
//! A producer that joins an existing link starts one past the newest seq
//! found on any mcache line, and writes payloads after that frag's, so a
//! restarted producer continues the stream instead of republishing old
//! sequence numbers or overwriting payloads still on the ring. A consumer that joins
//! starts at the progress its fseq last published, so a restarted consumer
//! continues where its predecessor left off (re-reading at most the frags
//! since that predecessor's last progress publish).

use core::sync::atomic::AtomicU8;

use tilewire_shmem::clock::mono_ts;
use tilewire_shmem::{check_name, AddrError, AllocError, JoinError, NewError, Workspace, NAME_MAX};

use crate::dcache::{DCache, DCacheHandle};
use crate::frag::{seq_diff, FragMeta};
use crate::fseq::{
    Fseq, FseqHandle, DIAG_BAD_CNT, DIAG_FILT_CNT, DIAG_FILT_SZ, DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS,
    DIAG_OVRNR_CNT, DIAG_PUB_CNT, DIAG_PUB_SZ,
};
use crate::mcache::{MCache, MCacheHandle, Peek};

/// Most consumers on one link.
pub const CONSUMERS_MAX: usize = 64;
/// Longest link name (room for the `.fsNN` suffix within a name).
pub const LINK_NAME_MAX: usize = NAME_MAX - 5;

/// Whether the producer waits for a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// The producer never overruns it (back-pressure instead).
    Reliable,
    /// The producer ignores it; it is overrun if it falls a ring behind.
    Unreliable,
}

/// What a link is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParams {
    /// Frags in the ring (a power of two).
    pub depth: u64,
    /// Largest payload in bytes.
    pub mtu: usize,
    /// One entry per consumer.
    pub consumers: Vec<Reliability>,
    /// Seq of the first frag (0 normally; tests start near `u64::MAX`).
    pub seq0: u64,
}

/// Why a link could not be made or joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The link name is invalid or too long.
    #[error("invalid link name {name:?}: {why}")]
    Name {
        /// The name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Depth, mtu or the consumer list is invalid.
    #[error("invalid link parameters: {0}")]
    Params(&'static str),
    /// A named part of the link is missing from the workspace.
    #[error("link part {0:?} not found in the workspace")]
    NotFound(String),
    /// Allocating a part failed.
    #[error("allocating {part:?}: {source}")]
    Alloc {
        /// The part.
        part: String,
        /// Why.
        source: AllocError,
    },
    /// Formatting a part failed.
    #[error("formatting {part:?}: {source}")]
    New {
        /// The part.
        part: String,
        /// Why.
        source: NewError,
    },
    /// A part is not what it should be (wrong kind of object, magic,
    /// version, or a corrupt header).
    #[error("joining {part:?}: {source}")]
    Join {
        /// The part.
        part: String,
        /// Why.
        source: JoinError,
    },
    /// The allocation table places a part outside the workspace (a corrupt
    /// table); nothing was read there.
    #[error("link part {part:?} lies outside the workspace: {source}")]
    Addr {
        /// The part.
        part: String,
        /// Where it claims to be.
        source: AddrError,
    },
    /// The link exists but is not the link the caller expected.
    #[error("link {link:?} has {what} {found}, expected {expected}")]
    Mismatch {
        /// The link.
        link: String,
        /// Which parameter.
        what: &'static str,
        /// What the caller expected.
        expected: u64,
        /// What the link has.
        found: u64,
    },
    /// No consumer with that index.
    #[error("link {link:?} has {count} consumers; there is no consumer {index}")]
    NoSuchConsumer {
        /// The link.
        link: String,
        /// Index asked for.
        index: usize,
        /// Consumers the link has.
        count: usize,
    },
}

fn part(name: &str, what: &str) -> String {
    format!("{name}.{what}")
}

/// A joined link.
#[derive(Debug, Clone)]
pub struct Link<'w> {
    name: String,
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    fseqs: Vec<FseqHandle<'w>>,
}

fn check_link_name(name: &str) -> Result<(), LinkError> {
    let err = |why: String| LinkError::Name {
        name: name.into(),
        why,
    };
    check_name(name).map_err(|e| err(e.to_string()))?;
    if name.len() > LINK_NAME_MAX {
        return Err(err(format!("longer than {LINK_NAME_MAX} bytes")));
    }
    Ok(())
}

impl<'w> Link<'w> {
    /// Makes link `name` in `ws` and joins it. The first frag will be seq 0.
    ///
    /// # Errors
    /// A bad name or parameters, a name already taken, or a full workspace.
    /// On error nothing is left allocated.
    pub fn create(
        ws: &'w Workspace,
        name: &str,
        params: &LinkParams,
    ) -> Result<Link<'w>, LinkError> {
        check_link_name(name)?;
        let mc_fp = MCache::footprint(params.depth).ok_or(LinkError::Params(
            "depth must be a power of two in 2..=2^28",
        ))?;
        let dc_fp = DCache::footprint(params.mtu, params.depth)
            .ok_or(LinkError::Params("mtu must be 1..=65535"))?;
        if params.consumers.is_empty() || params.consumers.len() > CONSUMERS_MAX {
            return Err(LinkError::Params("a link has 1..=64 consumers"));
        }
        let mut made: Vec<String> = Vec::new();
        let result = (|| {
            let mut alloc = |what: String, align: usize, size: usize| {
                let g =
                    ws.alloc_named(&what, align, size, 0)
                        .map_err(|source| LinkError::Alloc {
                            part: what.clone(),
                            source,
                        })?;
                made.push(what.clone());
                let mem = ws
                    .region(g, size)
                    .expect("a fresh allocation is inside the workspace");
                Ok::<_, LinkError>((what, mem))
            };
            let (p, mem) = alloc(part(name, "mc"), MCache::ALIGN, mc_fp)?;
            MCache::new(mem, params.depth, params.seq0)
                .map_err(|source| LinkError::New { part: p, source })?;
            let (p, mem) = alloc(part(name, "dc"), DCache::ALIGN, dc_fp)?;
            DCache::new(mem, params.mtu, params.depth)
                .map_err(|source| LinkError::New { part: p, source })?;
            for (i, r) in params.consumers.iter().enumerate() {
                let (p, mem) = alloc(
                    part(name, &format!("fs{i}")),
                    Fseq::ALIGN,
                    Fseq::footprint(),
                )?;
                Fseq::new(mem, params.seq0, *r == Reliability::Reliable)
                    .map_err(|source| LinkError::New { part: p, source })?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for p in made {
                let _ = ws.free_named(&p);
            }
            return Err(e);
        }
        Link::join(ws, name)
    }

    /// Joins link `name` of `ws`.
    ///
    /// # Errors
    /// A bad name, a missing part, or a part that is not the object it
    /// should be.
    pub fn join(ws: &'w Workspace, name: &str) -> Result<Link<'w>, LinkError> {
        check_link_name(name)?;
        // One read of the allocation table serves every part (each lookup
        // would read the whole table again).
        let allocs = ws.allocations();
        let find = |what: &str| {
            let p = part(name, what);
            let Some(a) = allocs
                .iter()
                .find(|a| a.name.as_deref() == Some(p.as_str()))
            else {
                return Err(LinkError::NotFound(p));
            };
            match ws.region(a.gaddr, a.size as usize) {
                Ok(mem) => Ok((p, a.gaddr, mem)),
                Err(source) => Err(LinkError::Addr { part: p, source }),
            }
        };
        let (p, _, mem) = find("mc")?;
        let mcache = MCache::join(mem).map_err(|source| LinkError::Join { part: p, source })?;
        let (p, gaddr, mem) = find("dc")?;
        let dcache =
            DCache::join(mem, gaddr).map_err(|source| LinkError::Join { part: p, source })?;
        if dcache.depth() != mcache.depth() {
            return Err(LinkError::Mismatch {
                link: name.into(),
                what: "dcache depth",
                expected: mcache.depth(),
                found: dcache.depth(),
            });
        }
        let mut fseqs = Vec::new();
        for i in 0..CONSUMERS_MAX {
            let (p, _, mem) = match find(&format!("fs{i}")) {
                Err(LinkError::NotFound(_)) => break,
                found => found?,
            };
            fseqs.push(Fseq::join(mem).map_err(|source| LinkError::Join { part: p, source })?);
        }
        if fseqs.is_empty() {
            return Err(LinkError::NotFound(part(name, "fs0")));
        }
        Ok(Link {
            name: name.into(),
            mcache,
            dcache,
            fseqs,
        })
    }

    /// Joins link `name` and checks it has the expected depth and mtu.
    ///
    /// # Errors
    /// As [`Link::join`], and [`LinkError::Mismatch`].
    pub fn join_expect(
        ws: &'w Workspace,
        name: &str,
        depth: u64,
        mtu: usize,
    ) -> Result<Link<'w>, LinkError> {
        let l = Link::join(ws, name)?;
        let mismatch = |what, expected, found| LinkError::Mismatch {
            link: name.into(),
            what,
            expected,
            found,
        };
        if l.depth() != depth {
            return Err(mismatch("depth", depth, l.depth()));
        }
        if l.mtu() != mtu {
            return Err(mismatch("mtu", mtu as u64, l.mtu() as u64));
        }
        Ok(l)
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Frags in the ring.
    pub fn depth(&self) -> u64 {
        self.mcache.depth()
    }
    /// Largest payload.
    pub fn mtu(&self) -> usize {
        self.dcache.mtu()
    }
    /// The mcache.
    pub fn mcache(&self) -> &MCacheHandle<'w> {
        &self.mcache
    }
    /// The dcache.
    pub fn dcache(&self) -> &DCacheHandle<'w> {
        &self.dcache
    }
    /// The consumers' fseqs.
    pub fn fseqs(&self) -> &[FseqHandle<'w>] {
        &self.fseqs
    }

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
        let fseq = *self.fseqs.get(index).ok_or(LinkError::NoSuchConsumer {
            link: self.name.clone(),
            index,
            count: self.fseqs.len(),
        })?;
        Ok(Consumer::new(self.mcache, self.dcache, fseq))
    }
}

/// The producer has no credits: publishing now would overrun a reliable
/// consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("back-pressure: a reliable consumer is a full ring behind")]
pub struct Backpressure;

/// Publishes frags into a link.
#[derive(Debug)]
pub struct Producer<'w> {
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    reliable: Vec<FseqHandle<'w>>,
    seq: u64,
    chunk: u32,
    credits: u64,
    backpressure: u64,
}

impl<'w> Producer<'w> {
    fn new(link: &Link<'w>) -> Producer<'w> {
        let mc = link.mcache;
        // Continue one past the newest seq on any line (see "Restarts").
        let (base, newest) = (mc.seq_query(), mc.newest_seq());
        let seq = if seq_diff(newest, base) >= 0 {
            newest.wrapping_add(1)
        } else {
            base
        };
        // And put payloads after the newest frag's, so frags still on the
        // ring keep their bytes.
        let dc = link.dcache;
        let chunk = match mc.peek(seq.wrapping_sub(1)) {
            Peek::Ready(m) if dc.offset(m.chunk, m.sz as usize).is_some() => {
                dc.next_chunk(m.chunk, m.sz as usize)
            }
            _ => dc.chunk0(),
        };
        let mut p = Producer {
            mcache: mc,
            dcache: dc,
            reliable: link
                .fseqs
                .iter()
                .copied()
                .filter(|f| f.reliable())
                .collect(),
            seq,
            chunk,
            credits: 0,
            backpressure: 0,
        };
        p.refresh_credits();
        p
    }

    /// The seq the next frag will get.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Frags that may be published before credits must be refreshed.
    pub fn credits(&self) -> u64 {
        self.credits
    }

    /// Times [`Producer::publish`] returned [`Backpressure`].
    pub fn backpressure_count(&self) -> u64 {
        self.backpressure
    }

    /// Recomputes credits from the reliable consumers' progress.
    pub fn refresh_credits(&mut self) -> u64 {
        let depth = self.mcache.depth();
        let mut in_flight = 0u64;
        for f in &self.reliable {
            // A consumer "ahead" of us (a restarted producer) counts as 0.
            let d = seq_diff(self.seq, f.query()).clamp(0, depth as i64) as u64;
            in_flight = in_flight.max(d);
        }
        self.credits = depth - in_flight;
        self.credits
    }

    /// Publishes `payload` as the next frag, stamping `tspub` now.
    ///
    /// # Errors
    /// [`Backpressure`] when a reliable consumer is a ring behind; nothing
    /// was published.
    ///
    /// # Panics
    /// If `payload` is longer than the link's mtu.
    #[inline]
    pub fn publish(
        &mut self,
        payload: &[u8],
        sig: u64,
        ctl: u16,
        tsorig: u32,
    ) -> Result<u64, Backpressure> {
        if self.credits == 0 && self.refresh_credits() == 0 {
            self.backpressure += 1;
            return Err(Backpressure);
        }
        let seq = self.seq;
        let chunk = self.chunk;
        // Invalidate before overwriting payload bytes (see mcache docs).
        self.mcache.invalidate(seq);
        self.dcache.write(chunk, payload);
        self.mcache.commit(
            seq,
            sig,
            chunk,
            payload.len() as u16,
            ctl,
            tsorig,
            mono_ts(),
        );
        self.chunk = self.dcache.next_chunk(chunk, payload.len());
        self.seq = seq.wrapping_add(1);
        self.credits -= 1;
        Ok(seq)
    }

    /// Publishes the producer's position for consumers that resync and for
    /// a producer that restarts. Call it at housekeeping.
    pub fn housekeeping(&mut self) {
        self.mcache.seq_update(self.seq);
    }
}

/// What one poll of a consumer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<R> {
    /// A frag, and what the reader made of its payload.
    Frag(FragMeta, R),
    /// Nothing new.
    Empty,
    /// The producer lapped this consumer; it resynced and lost `lost` frags
    /// (0 when the frag was overwritten while being read).
    Overrun {
        /// Frags skipped.
        lost: u64,
    },
    /// The frag's chunk or size fell outside the dcache; it was counted and
    /// skipped without reading a byte.
    Dropped(FragMeta),
}

/// Reads frags from a link.
#[derive(Debug)]
pub struct Consumer<'w> {
    mcache: MCacheHandle<'w>,
    dcache: DCacheHandle<'w>,
    fseq: FseqHandle<'w>,
    seq: u64,
    publish_mask: u64,
}

impl<'w> Consumer<'w> {
    fn new(
        mcache: MCacheHandle<'w>,
        dcache: DCacheHandle<'w>,
        fseq: FseqHandle<'w>,
    ) -> Consumer<'w> {
        // Progress is published every depth/8 frags (at least every frag
        // for tiny rings), so the producer sees credits return in steps.
        let every = (mcache.depth() / 8).max(1).next_power_of_two();
        Consumer {
            seq: fseq.query(),
            mcache,
            dcache,
            fseq,
            publish_mask: every - 1,
        }
    }

    /// The next seq this consumer will read.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// This consumer's fseq (progress and counters).
    pub fn fseq(&self) -> &FseqHandle<'w> {
        &self.fseq
    }

    /// Polls for the next frag and, if there is one, lets `read` look at its
    /// metadata and payload (shared bytes, read with relaxed atomics; see
    /// [`tilewire_shmem::load_bytes`]). The result of `read` is returned
    /// only if the frag was not overwritten while it ran; otherwise it is
    /// discarded and the overrun counted.
    #[inline]
    pub fn poll_with<R>(&mut self, read: impl FnOnce(&FragMeta, &[AtomicU8]) -> R) -> Poll<R> {
        let seq = self.seq;
        match self.mcache.peek(seq) {
            Peek::NotYet => {
                self.fseq.update(seq);
                Poll::Empty
            }
            Peek::Overrun { seq_found } => {
                // Resync to the newest frag seen: a consumer slow enough to
                // be lapped once would be lapped again at once if it
                // resumed at the oldest frag still on the ring.
                let lost = seq_found.wrapping_sub(seq);
                self.fseq.diag_add(DIAG_OVRNP_CNT, 1);
                self.fseq.diag_add(DIAG_OVRNP_FRAGS, lost);
                self.seq = seq_found;
                Poll::Overrun { lost }
            }
            Peek::Ready(meta) => {
                let Some(bytes) = self.dcache.bytes(meta.chunk, meta.sz as usize) else {
                    self.fseq.diag_add(DIAG_BAD_CNT, 1);
                    self.advance();
                    return Poll::Dropped(meta);
                };
                let r = read(&meta, bytes);
                if !self.mcache.check(seq) {
                    self.fseq.diag_add(DIAG_OVRNR_CNT, 1);
                    return Poll::Overrun { lost: 0 };
                }
                self.fseq.diag_add(DIAG_PUB_CNT, 1);
                self.fseq.diag_add(DIAG_PUB_SZ, meta.sz as u64);
                self.advance();
                Poll::Frag(meta, r)
            }
        }
    }

    /// Polls and copies the payload into `buf` (which must hold an mtu);
    /// returns the frag with its size.
    #[inline]
    pub fn poll_copy(&mut self, buf: &mut [u8]) -> Poll<()> {
        self.poll_with(|m, bytes| {
            let n = (m.sz as usize).min(buf.len());
            tilewire_shmem::load_bytes(&mut buf[..n], &bytes[..n]);
        })
    }

    /// Skips the frag at the current seq without reading its payload (a
    /// filter said no), counting it.
    pub fn skip(&mut self, sz: u16) {
        self.fseq.diag_add(DIAG_FILT_CNT, 1);
        self.fseq.diag_add(DIAG_FILT_SZ, sz as u64);
        self.advance();
    }

    #[inline]
    fn advance(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        if self.seq & self.publish_mask == 0 {
            self.fseq.update(self.seq);
        }
    }

    /// Publishes progress now. Call it at housekeeping and before leaving.
    pub fn housekeeping(&mut self) {
        self.fseq.update(self.seq);
    }
}
