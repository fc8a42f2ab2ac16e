//! Links: one producer, any number of consumers, in a workspace.
//!
//! A link named `net.rx` is three kinds of named allocations in a workspace:
//! `net.rx.mc` (the [mcache]: frag metadata), `net.rx.dc`
//! (the [dcache]: payloads) and `net.rx.fs0`, `net.rx.fs1`, ...
//! (one [fseq] per consumer). Any process that joins the
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

pub mod consumer;
pub mod dcache;
pub mod frag;
pub mod fseq;
pub mod ledger;
pub mod mcache;
pub mod producer;
pub mod tx;

use tilewire_shmem::{check_name, AddrError, AllocError, JoinError, NewError, Workspace, NAME_MAX};

use crate::link::dcache::{DCache, DCacheHandle};
use crate::link::fseq::{Fseq, FseqHandle};
use crate::link::mcache::{MCache, MCacheHandle};

pub use crate::link::consumer::{Consumer, Next, Poll};
pub use crate::link::producer::{Backpressure, Producer};

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
        Link::create_with_data(ws, name, params, params.depth.saturating_add(1))
    }

    /// [`Link::create`] with a dcache data region of `data_mtus` mtus
    /// instead of the usual `depth + 1`: room for payloads that are not
    /// written through the producer's ring allocation. A link that
    /// receives zero-copy from AF_XDP uses it: its data region is the UMEM,
    /// which also holds the fill ring's and the transmit side's frames
    /// (see `tilewire_xdp::umem`).
    ///
    /// # Errors
    /// As [`Link::create`]; [`LinkError::Params`] if `data_mtus` is below
    /// `depth + 1`.
    pub fn create_with_data(
        ws: &'w Workspace,
        name: &str,
        params: &LinkParams,
        data_mtus: u64,
    ) -> Result<Link<'w>, LinkError> {
        check_link_name(name)?;
        if data_mtus <= params.depth {
            return Err(LinkError::Params(
                "a link's data region holds at least depth + 1 mtus",
            ));
        }
        let mc_fp = MCache::footprint(params.depth).ok_or(LinkError::Params(
            "depth must be a power of two in 2..=2^28",
        ))?;
        let dc_fp = DCache::footprint(params.mtu, data_mtus - 1)
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
            DCache::new(mem, params.mtu, data_mtus - 1)
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
        // A dcache may hold more than the mcache's depth (see
        // `create_with_data`), never less.
        if dcache.depth() < mcache.depth() {
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
