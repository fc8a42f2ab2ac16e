//! The next-hop table: a shared object holding the mirrored routes and
//! neighbours behind a sequence lock.
//!
//! # Layout (words of 8 bytes)
//!
//! ```text
//! 0   magic                      8   events applied
//! 1   route capacity             9   overflows (ENOBUFS: a re-dump)
//! 2   neighbour slots (2^k)      10  routes left out (table full, unsupported)
//! 3   seq (odd while written)    11  neighbours left out (table full)
//! 4   routes held                12  solicits (resolutions asked for)
//! 5   neighbours held            13  the writer's pid
//! 6   generation (publishes)     14  CLOCK_MONOTONIC ns of the last publish
//! 7   dumps (full reads)         15  interface slots (2^k)
//! then `route capacity` routes of 8 words, sorted as the lookup reads them
//! then `neighbour slots` slots of 4 words, open addressing, linear probing
//! then `interface slots` slots of 4 words, by interface index, probing
//! ```
//!
//! # One writer, readers without a lock
//!
//! The mirror writes; any number of readers in any process read. A publish
//! makes `seq` odd, stores the words that changed, and makes it even again
//! (Release). A reader reads `seq` (Acquire), looks up what it needs, and
//! reads `seq` again after an Acquire fence: if it changed or was odd, the
//! reader looked at a table being written and tries again: it waits for
//! a publish in progress to end (up to [`WRITE_WAIT_MAX`]) and reads
//! again after a torn read (up to [`READ_TRIES`] times), then misses with
//! [`Miss::Busy`]. Every word is an atomic, so
//! a torn read is a retry, never undefined behaviour; decoded values are
//! checked (an entry no encoding gives is skipped), so garbage written
//! into the table by something else gives misses, never a panic.

use core::sync::atomic::{fence, AtomicU64, Ordering};
use std::net::IpAddr;

use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::object::{
    check_join, check_new, magic, publish_magic, retire_magic, DeleteError, JoinError, NewError,
    ShmObject,
};
use tilewire_shmem::Region;

use crate::answer::{Hop, Miss, NextHopsStats, Published, ReadOnly, Tables};
use crate::entry::{
    Interface, NeighState, Neighbour, Route, RouteKind, IFACE_WORDS, NEIGH_WORDS, ROUTE_WORDS,
    TABLES,
};

const KIND: &str = "next-hop table";
const MAGIC: u64 = magic(b"tw.nhop", 2);
const ALIGN: usize = 64;
const HDR_WORDS: usize = 16;
const W_ROUTE_CAP: usize = 1;
const W_NEIGH_CAP: usize = 2;
const W_SEQ: usize = 3;
const W_ROUTES: usize = 4;
const W_NEIGHS: usize = 5;
const W_GENERATION: usize = 6;
const W_DUMPS: usize = 7;
const W_EVENTS: usize = 8;
const W_OVERFLOWS: usize = 9;
const W_ROUTES_OUT: usize = 10;
const W_NEIGHS_OUT: usize = 11;
const W_SOLICITS: usize = 12;
const W_PID: usize = 13;
const W_PUBLISHED_NS: usize = 14;
const W_IFACE_CAP: usize = 15;

/// Most routes a table holds.
pub const ROUTES_MAX: usize = 1 << 16;
/// Most neighbour slots a table has.
pub const NEIGHBOUR_SLOTS_MAX: usize = 1 << 20;
/// Most interface slots a table has.
pub const INTERFACE_SLOTS_MAX: usize = 1 << 12;
/// Reads a reader makes that a publish tore before it gives up.
pub const READ_TRIES: u32 = 64;
/// Longest a reader waits for a publish in progress to end (a writer
/// that died in the middle of one leaves the table marked as being
/// written; readers then miss with [`Miss::Busy`]).
pub const WRITE_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(5);

/// The next-hop table's object (see the [module docs](self)).
#[derive(Debug)]
pub struct NextHops;

/// What sizes a [`NextHops`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHopsParams {
    /// Routes it holds, 1 to [`ROUTES_MAX`].
    pub routes: usize,
    /// Neighbour slots, a power of two up to [`NEIGHBOUR_SLOTS_MAX`]; it
    /// holds up to three quarters of that many neighbours.
    pub neighbour_slots: usize,
    /// Interface slots, a power of two up to [`INTERFACE_SLOTS_MAX`]; it
    /// holds up to three quarters of that many interfaces.
    pub interface_slots: usize,
}

impl Default for NextHopsParams {
    /// 1024 routes, 4096 neighbour slots, 64 interface slots: 194 KiB.
    fn default() -> Self {
        NextHopsParams {
            routes: 1024,
            neighbour_slots: 4096,
            interface_slots: 64,
        }
    }
}

fn check_params(p: &NextHopsParams) -> Result<usize, &'static str> {
    if p.routes == 0 || p.routes > ROUTES_MAX {
        return Err("route capacity must be 1 to 65536");
    }
    if !p.neighbour_slots.is_power_of_two() || p.neighbour_slots > NEIGHBOUR_SLOTS_MAX {
        return Err("neighbour slots must be a power of two up to 2^20");
    }
    if !p.interface_slots.is_power_of_two() || p.interface_slots > INTERFACE_SLOTS_MAX {
        return Err("interface slots must be a power of two up to 2^12");
    }
    Ok(8 * (HDR_WORDS
        + p.routes * ROUTE_WORDS
        + p.neighbour_slots * NEIGH_WORDS
        + p.interface_slots * IFACE_WORDS))
}

impl ShmObject for NextHops {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = MAGIC;
    const ALIGN: usize = ALIGN;
    type Params = NextHopsParams;

    fn footprint(p: &NextHopsParams) -> Option<usize> {
        check_params(p).ok()
    }
}

/// The header, routes, neighbour slots and interface slots of a table.
type Words<'a> = (
    &'a [AtomicU64],
    &'a [AtomicU64],
    &'a [AtomicU64],
    &'a [AtomicU64],
);

fn words<'a>(mem: &Region<'a>, p: &NextHopsParams) -> Option<Words<'a>> {
    let all = mem.atomic_u64s(0, check_params(p).ok()? / 8)?;
    let (hdr, rest) = all.split_at(HDR_WORDS);
    let (routes, rest) = rest.split_at(p.routes * ROUTE_WORDS);
    let (neigh, ifaces) = rest.split_at(p.neighbour_slots * NEIGH_WORDS);
    Some((hdr, routes, neigh, ifaces))
}

impl NextHops {
    /// Formats a table at `mem`, empty.
    ///
    /// # Errors
    /// [`NewError::BadParams`] for sizes out of range; [`NewError::ReadOnly`],
    /// [`NewError::Misaligned`], [`NewError::TooSmall`].
    // `new` formats caller memory, as every shared object's does.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(mem: Region<'_>, p: NextHopsParams) -> Result<(), NewError> {
        let need = check_params(&p).map_err(|what| NewError::BadParams { what })?;
        check_new(&mem, ALIGN, need)?;
        let (hdr, routes, neigh, ifaces) = words(&mem, &p).ok_or(NewError::TooSmall {
            len: mem.len(),
            need,
        })?;
        publish_magic(&mem, 0);
        for w in hdr[1..].iter().chain(routes).chain(neigh).chain(ifaces) {
            // SYNC: Relaxed; published by the Release store of the magic.
            w.store(0, Ordering::Relaxed);
        }
        // SYNC: as above.
        hdr[W_ROUTE_CAP].store(p.routes as u64, Ordering::Relaxed);
        // SYNC: as above.
        hdr[W_NEIGH_CAP].store(p.neighbour_slots as u64, Ordering::Relaxed);
        // SYNC: as above.
        hdr[W_IFACE_CAP].store(p.interface_slots as u64, Ordering::Relaxed);
        publish_magic(&mem, MAGIC);
        Ok(())
    }

    /// Joins the table at `mem`: to read it (any mapping) or, on a
    /// writable one, to publish into it as its one writer.
    ///
    /// # Errors
    /// What [`check_join`] finds, and [`JoinError::BadParams`] for stored
    /// sizes out of range or larger than `mem`.
    pub fn join(mem: Region<'_>) -> Result<NextHopsHandle<'_>, JoinError> {
        check_join(&mem, KIND, MAGIC, ALIGN, HDR_WORDS * 8)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let hdr = mem
            .atomic_u64s(0, HDR_WORDS)
            .ok_or(bad("header unreadable"))?;
        let load = |i: usize| usize::try_from(hdr[i].load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let p = NextHopsParams {
            routes: load(W_ROUTE_CAP),
            neighbour_slots: load(W_NEIGH_CAP),
            interface_slots: load(W_IFACE_CAP),
        };
        let need = check_params(&p).map_err(bad)?;
        if mem.len() < need {
            return Err(JoinError::TooSmall {
                len: mem.len(),
                need,
            });
        }
        let (hdr, routes, neigh, ifaces) = words(&mem, &p).ok_or(bad("layout out of bounds"))?;
        Ok(NextHopsHandle {
            mem,
            hdr,
            routes,
            neigh,
            ifaces,
            p,
        })
    }

    /// Deletes the table at `mem` (zeroes its magic).
    ///
    /// # Errors
    /// [`DeleteError::ReadOnly`], or why `mem` holds no live table.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, MAGIC, ALIGN)
    }
}

/// A joined [`NextHops`] table.
#[derive(Debug)]
pub struct NextHopsHandle<'a> {
    mem: Region<'a>,
    hdr: &'a [AtomicU64],
    routes: &'a [AtomicU64],
    neigh: &'a [AtomicU64],
    ifaces: &'a [AtomicU64],
    p: NextHopsParams,
}

/// The rank of a route in the lookup order: table (local, main, default),
/// then longest prefix, then lowest metric.
fn rank(r: &Route) -> (usize, std::cmp::Reverse<u8>, u32) {
    let table = TABLES
        .iter()
        .position(|&t| t == r.table)
        .unwrap_or(TABLES.len());
    (table, std::cmp::Reverse(r.prefix_len), r.priority)
}

fn load_words<const N: usize>(w: &[AtomicU64]) -> [u64; N] {
    // SYNC: Relaxed; the seqlock's Acquire fence and re-read of seq order
    // these loads (see the module docs).
    core::array::from_fn(|i| w[i].load(Ordering::Relaxed))
}

impl<'a> NextHopsHandle<'a> {
    /// The sizes the table was made with.
    pub fn params(&self) -> NextHopsParams {
        self.p
    }

    /// Reads under the sequence lock: `f` runs on a consistent table or
    /// the read gives up after [`READ_TRIES`].
    fn read<R>(&self, mut f: impl FnMut() -> R) -> Option<R> {
        let mut torn = 0;
        let mut waiting: Option<std::time::Instant> = None;
        while torn < READ_TRIES {
            // SYNC: Acquire; pairs with the Release store that ended the
            // last publish, so the words it wrote are seen.
            let s1 = self.hdr[W_SEQ].load(Ordering::Acquire);
            if s1 & 1 == 1 {
                // Being written: wait for the writer, a while at most (a
                // writer that died mid-publish leaves it odd for good).
                let since = *waiting.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > WRITE_WAIT_MAX {
                    return None;
                }
                std::hint::spin_loop();
                continue;
            }
            let r = f();
            // SYNC: the loads in `f` happen before the re-read of seq.
            fence(Ordering::Acquire);
            // SYNC: Relaxed; ordered by the fence above.
            if self.hdr[W_SEQ].load(Ordering::Relaxed) == s1 {
                return Some(r);
            }
            torn += 1;
        }
        None
    }

    fn route(&self, i: usize) -> Option<Route> {
        let w = self.routes.get(i * ROUTE_WORDS..(i + 1) * ROUTE_WORDS)?;
        Route::decode(&load_words(w))
    }

    fn slot(&self, i: usize) -> [u64; NEIGH_WORDS] {
        let base = (i & (self.p.neighbour_slots - 1)) * NEIGH_WORDS;
        load_words(&self.neigh[base..base + NEIGH_WORDS])
    }

    fn held(&self, w: usize, cap: usize) -> usize {
        // SYNC: Relaxed; read under the seqlock.
        usize::try_from(self.hdr[w].load(Ordering::Relaxed)).map_or(cap, |n| n.min(cap))
    }

    fn iface_slot(&self, i: usize) -> [u64; IFACE_WORDS] {
        let base = (i & (self.p.interface_slots - 1)) * IFACE_WORDS;
        load_words(&self.ifaces[base..base + IFACE_WORDS])
    }

    /// Interface `ifindex`, looked up in its slots.
    fn interface(&self, ifindex: u32) -> Option<Interface> {
        for k in 0..self.p.interface_slots {
            let w = self.iface_slot((ifindex as usize).wrapping_add(k));
            if w[0] == 0 {
                return None;
            }
            match Interface::decode(&w) {
                Some(i) if i.ifindex == ifindex => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// The interface named `name`, as the table holds it now; `None` if
    /// it has none of that name (or was rewritten through every try).
    pub fn interface_named(&self, name: &str) -> Option<Interface> {
        let want = Interface::name_bytes(name);
        self.read(|| {
            (0..self.p.interface_slots)
                .filter_map(|i| Interface::decode(&self.iface_slot(i)))
                .find(|i| i.name == want)
        })
        .flatten()
    }

    /// The neighbour entry of `ip` on `ifindex`, looked up in the slots.
    fn neighbour(&self, ifindex: u32, ip: IpAddr) -> Option<Neighbour> {
        let start = Neighbour::hash(ifindex, ip) as usize;
        for k in 0..self.p.neighbour_slots {
            let w = self.slot(start.wrapping_add(k));
            if w[0] == 0 {
                return None;
            }
            match Neighbour::decode(&w) {
                Some(n) if n.ifindex == ifindex && n.ip == ip => return Some(n),
                _ => {}
            }
        }
        None
    }

    /// Where a frame to `dst` goes, as the mirrored tables say now.
    ///
    /// # Errors
    /// Why it goes nowhere yet ([`Miss`]).
    pub fn resolve(&self, dst: IpAddr) -> Result<Hop, Miss> {
        let dst = match dst {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(dst, IpAddr::V4),
            v4 => v4,
        };
        self.read(|| {
            let n = self.held(W_ROUTES, self.p.routes);
            let route = (0..n)
                .filter_map(|i| self.route(i))
                .find(|r| r.contains(dst))
                .ok_or(Miss::NoRoute)?;
            match route.kind {
                RouteKind::Unicast => {}
                RouteKind::Local => return Err(Miss::Local),
                k => return Err(Miss::Refused(k)),
            }
            let next_hop = route.gateway.unwrap_or(dst);
            let (ifindex, src) = (route.oif, route.prefsrc);
            let n = self.neighbour(ifindex, next_hop);
            match n {
                Some(Neighbour {
                    mac: Some(mac),
                    state,
                    ..
                }) if state.usable() => match self.interface(ifindex) {
                    Some(Interface {
                        mac: Some(src_mac),
                        mtu,
                        ..
                    }) => Ok(Hop {
                        ifindex,
                        src_mac,
                        mtu,
                        next_hop,
                        mac,
                        src,
                    }),
                    _ => Err(Miss::NoInterface { ifindex }),
                },
                Some(Neighbour {
                    state: NeighState::Failed,
                    ..
                }) => Err(Miss::Failed { ifindex, next_hop }),
                Some(Neighbour {
                    state: NeighState::Incomplete,
                    ..
                }) => Err(Miss::Pending { ifindex, next_hop }),
                _ => Err(Miss::NoNeighbour { ifindex, next_hop }),
            }
        })
        .unwrap_or(Err(Miss::Busy))
    }

    /// A consistent copy of every route (in lookup order), neighbour and
    /// interface; `None` if the table was rewritten through every try.
    pub fn snapshot(&self) -> Option<Tables> {
        self.read(|| {
            let n = self.held(W_ROUTES, self.p.routes);
            Tables {
                routes: (0..n).filter_map(|i| self.route(i)).collect(),
                neighbours: (0..self.p.neighbour_slots)
                    .filter_map(|i| Neighbour::decode(&self.slot(i)))
                    .collect(),
                interfaces: (0..self.p.interface_slots)
                    .filter_map(|i| Interface::decode(&self.iface_slot(i)))
                    .collect(),
            }
        })
    }

    /// Publishes so far: it changes whenever the table's contents may
    /// have, so a reader may keep what it resolved while it stays the same
    /// (one load, no lock).
    pub fn generation(&self) -> u64 {
        // SYNC: Acquire; pairs with the Release that ends a publish (the
        // generation is written inside it).
        self.hdr[W_GENERATION].load(Ordering::Acquire)
    }

    /// The table's counters.
    pub fn stats(&self) -> NextHopsStats {
        // SYNC: Relaxed; counters, each read on its own.
        let l = |i: usize| self.hdr[i].load(Ordering::Relaxed);
        NextHopsStats {
            routes: l(W_ROUTES),
            neighbours: l(W_NEIGHS),
            generation: l(W_GENERATION),
            dumps: l(W_DUMPS),
            events: l(W_EVENTS),
            overflows: l(W_OVERFLOWS),
            routes_left_out: l(W_ROUTES_OUT),
            neighbours_left_out: l(W_NEIGHS_OUT),
            solicits: l(W_SOLICITS),
            writer_pid: l(W_PID),
            published_ns: l(W_PUBLISHED_NS),
        }
    }

    /// Replaces the table's contents with `t` (the writer's; one writer at
    /// a time). Routes are stored in lookup order; routes beyond the
    /// capacity, and neighbours and interfaces beyond three quarters of
    /// their slots, are left out and counted. Only words that change are
    /// stored, so readers retry only while something changed.
    ///
    /// # Errors
    /// [`ReadOnly`] on a read-only mapping (a monitor's); nothing is
    /// written then.
    pub fn publish(&self, t: &Tables) -> Result<Published, ReadOnly> {
        if !self.mem.is_writable() {
            return Err(ReadOnly);
        }
        let (routes, neighbours) = (&t.routes, &t.neighbours);
        let islots = self.p.interface_slots;
        let mut itable = vec![[0u64; IFACE_WORDS]; islots];
        let mut kept_ifaces = 0;
        for i in t.interfaces.iter().take(islots - islots / 4) {
            for k in 0..islots {
                let at = (i.ifindex as usize).wrapping_add(k) & (islots - 1);
                if itable[at][0] == 0 {
                    itable[at] = i.encode();
                    kept_ifaces += 1;
                    break;
                }
            }
        }
        let mut sorted: Vec<&Route> = routes.iter().collect();
        sorted.sort_by_key(|r| rank(r));
        let kept_routes = sorted.len().min(self.p.routes);
        let slots = self.p.neighbour_slots;
        let mut table = vec![[0u64; NEIGH_WORDS]; slots];
        let mut kept_neigh = 0;
        for n in neighbours.iter().take(slots - slots / 4) {
            let start = Neighbour::hash(n.ifindex, n.ip) as usize;
            for k in 0..slots {
                let at = start.wrapping_add(k) & (slots - 1);
                if table[at][0] == 0 {
                    table[at] = n.encode();
                    kept_neigh += 1;
                    break;
                }
            }
        }
        // What changes, found before the write section (the one writer's
        // words hold still meanwhile), so that section is only the stores:
        // readers wait on a publish for as long as it stores, not for as
        // long as the table is to compare.
        let mut changes: Vec<(&AtomicU64, u64)> = Vec::new();
        let mut want = |w: &'a AtomicU64, v: u64| {
            // SYNC: Relaxed; the writer reads back its own words.
            if w.load(Ordering::Relaxed) != v {
                changes.push((w, v));
            }
        };
        for (i, r) in sorted.iter().take(kept_routes).enumerate() {
            for (w, v) in self.routes[i * ROUTE_WORDS..].iter().zip(r.encode()) {
                want(w, v);
            }
        }
        for w in &self.routes[kept_routes * ROUTE_WORDS..] {
            want(w, 0);
        }
        for (i, slot) in table.iter().enumerate() {
            for (w, &v) in self.neigh[i * NEIGH_WORDS..].iter().zip(slot) {
                want(w, v);
            }
        }
        for (i, slot) in itable.iter().enumerate() {
            for (w, &v) in self.ifaces[i * IFACE_WORDS..].iter().zip(slot) {
                want(w, v);
            }
        }
        want(&self.hdr[W_ROUTES], kept_routes as u64);
        want(&self.hdr[W_NEIGHS], kept_neigh as u64);
        let seq = &self.hdr[W_SEQ];
        // SYNC: Relaxed load (the one writer); the odd store is ordered
        // before the data stores by the Release fence, so a reader that
        // sees any new word also sees seq odd or changed.
        let s = seq.load(Ordering::Relaxed);
        seq.store(
            (s | 1).wrapping_add(if s & 1 == 1 { 2 } else { 0 }),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
        for (w, v) in changes {
            // SYNC: Relaxed; inside the seqlock's write section.
            w.store(v, Ordering::Relaxed);
        }
        let store = |w: &AtomicU64, v: u64| {
            // SYNC: Relaxed; inside the seqlock's write section.
            w.store(v, Ordering::Relaxed);
        };
        let out = |w: usize, n: usize| {
            // SYNC: Relaxed; a counter.
            self.hdr[w].fetch_add(n as u64, Ordering::Relaxed);
        };
        out(W_ROUTES_OUT, routes.len() - kept_routes);
        out(W_NEIGHS_OUT, neighbours.len() - kept_neigh);
        out(W_GENERATION, 1);
        store(&self.hdr[W_PID], u64::from(std::process::id()));
        store(&self.hdr[W_PUBLISHED_NS], mono_ns());
        // SYNC: Release; ends the write section: a reader that reads this
        // even value (Acquire) sees every word written above.
        let now = seq.load(Ordering::Relaxed);
        seq.store(now.wrapping_add(1), Ordering::Release);
        Ok(Published {
            routes: kept_routes,
            neighbours: kept_neigh,
            interfaces: kept_ifaces,
        })
    }

    /// Whether this handle's mapping may be written (a writer's).
    pub fn is_writable(&self) -> bool {
        self.mem.is_writable()
    }

    /// Counts what the writer did: full dumps, events applied, overflows,
    /// solicits.
    pub(crate) fn count(&self, what: Count, n: u64) {
        if !self.mem.is_writable() {
            return;
        }
        let w = match what {
            Count::Dump => W_DUMPS,
            Count::Event => W_EVENTS,
            Count::Overflow => W_OVERFLOWS,
            Count::Solicit => W_SOLICITS,
            Count::RouteLeftOut => W_ROUTES_OUT,
        };
        // SYNC: Relaxed; a counter.
        self.hdr[w].fetch_add(n, Ordering::Relaxed);
    }

    /// Leaves: gives the memory back.
    pub fn leave(self) -> Region<'a> {
        self.mem
    }
}

/// The writer's counters ([`NextHopsHandle::count`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Dump,
    Event,
    Overflow,
    Solicit,
    RouteLeftOut,
}
