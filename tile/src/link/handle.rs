//! [`Link`]: a link made or joined by name (its mcache, dcache and
//! fseqs), its [`LinkParams`] when it is made, and the [`Reliability`] of
//! each of its consumers (see the [link docs](super)). Its two ends, the
//! producer and the consumers, are taken in `ends`.

use tilewire_shmem::{check_name, Workspace, NAME_MAX};

use crate::link::dcache::{DCache, DCacheHandle};
use crate::link::error::LinkError;
use crate::link::fseq::{Fseq, FseqHandle};
use crate::link::mcache::{MCache, MCacheHandle};
use crate::part::PartError;

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

fn part(name: &str, what: &str) -> String {
    format!("{name}.{what}")
}

/// A joined link.
#[derive(Debug, Clone)]
pub struct Link<'w> {
    /// The workspace it lives in: its consumers accept chunks of every
    /// link dcache there (frags forwarded onto it by chunk).
    ws: &'w Workspace,
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
                        .map_err(|source| PartError::Alloc {
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
                .map_err(|source| PartError::New { part: p, source })?;
            let (p, mem) = alloc(part(name, "dc"), DCache::ALIGN, dc_fp)?;
            DCache::new(mem, params.mtu, data_mtus - 1)
                .map_err(|source| PartError::New { part: p, source })?;
            for (i, r) in params.consumers.iter().enumerate() {
                let (p, mem) = alloc(
                    part(name, &format!("fs{i}")),
                    Fseq::ALIGN,
                    Fseq::footprint(),
                )?;
                Fseq::new(mem, params.seq0, *r == Reliability::Reliable)
                    .map_err(|source| PartError::New { part: p, source })?;
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
                Err(source) => Err(PartError::Addr { part: p, source }.into()),
            }
        };
        let (p, _, mem) = find("mc")?;
        let mcache = MCache::join(mem).map_err(|source| PartError::Join { part: p, source })?;
        let (p, gaddr, mem) = find("dc")?;
        let dcache =
            DCache::join(mem, gaddr).map_err(|source| PartError::Join { part: p, source })?;
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
            fseqs.push(Fseq::join(mem).map_err(|source| PartError::Join { part: p, source })?);
        }
        if fseqs.is_empty() {
            return Err(LinkError::NotFound(part(name, "fs0")));
        }
        Ok(Link {
            ws,
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
    /// The workspace the link lives in.
    pub fn workspace(&self) -> &'w Workspace {
        self.ws
    }
}
