//! The netlink tile: the host's next-hop resolver.
//!
//! # What it does
//!
//! [`NetlinkKind`] mirrors the kernel's routes and neighbours (IPv4 and
//! IPv6, through [`tilewire_route::Mirror`]) into a next-hop table, a
//! workspace object ([`next_hops_name`] of the tile) that every tile that
//! builds frames for AF_XDP TX reads without a syscall or a lock
//! ([`tilewire_route::NextHops`]). It applies the kernel's announcements
//! within a millisecond of their arrival, re-reads everything after an
//! overflow, and publishes after every change.
//!
//! Its inputs (0 to 16) carry resolution requests: a tile that found no
//! neighbour for a next hop publishes a [`solicit_request`] frag, and the
//! netlink tile asks the kernel to resolve that address (at most once per
//! address per [`SOLICIT_EVERY`]); the answer comes back through the
//! mirror like any change.
//!
//! # Why a tile of its own
//!
//! One per host (per network namespace) rather than inside each net
//! tile's housekeeping: one netlink subscription and one dump for the
//! host, not one per queue; a dump of a big table (or a storm of changes)
//! never stalls a net tile's loop; every net tile, in any process, reads
//! the same table. A net tile's own work per frame stays a lookup in
//! shared memory.
//!
//! # Parameters
//!
//! - `netns`: the network namespace whose tables to mirror (default: the
//!   runner's);
//! - `routes`: routes the table holds (default 1024);
//! - `neighbour_slots`: neighbour slots, a power of two (default 4096;
//!   three quarters of them hold entries);
//! - `events_buffer`: the receive buffer for the kernel's announcements,
//!   in bytes (default 4 MiB, capped by `net.core.rmem_max`).
//!
//! # What it counts
//!
//! `routes` and `neighbours` held, `dumps` (full reads), `events`
//! (changes applied), `overflows` (announcements lost, each re-read),
//! `ignored` (routes not followed: policy routing and the rest, see
//! [`tilewire_route`]), `solicits` (resolutions asked), `solicit_errors`
//! (refused by the kernel), `bad_requests` (request frags that do not
//! parse), `publishes`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tilewire_route::{Mirror, NextHops, NextHopsHandle, NextHopsParams};
use tilewire_shmem::object::ShmObject;

use tilewire_tile::stem::{Frag, Outputs, Reading, Tile};

use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, Object, TileKind};
use crate::topo::TileSpec;

/// Bytes of a resolution request frag: interface index (u32, little
/// endian), family (4 or 6), and the address (16 bytes; an IPv4 address
/// in its first four).
pub const SOLICIT_LEN: usize = 21;
/// Least time between two requests to the kernel for one address.
pub const SOLICIT_EVERY: Duration = Duration::from_millis(100);
/// How often the tile reads the kernel's announcements.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// The named allocation holding netlink tile `tile`'s next-hop table.
pub fn next_hops_name(tile: &str) -> String {
    format!("{tile}.nh")
}

/// The payload of a frag asking the netlink tile to resolve `ip` on
/// interface `ifindex`.
pub fn solicit_request(ifindex: u32, ip: IpAddr) -> [u8; SOLICIT_LEN] {
    let mut b = [0u8; SOLICIT_LEN];
    b[..4].copy_from_slice(&ifindex.to_le_bytes());
    match ip {
        IpAddr::V4(v4) => {
            b[4] = 4;
            b[5..9].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            b[4] = 6;
            b[5..].copy_from_slice(&v6.octets());
        }
    }
    b
}

/// The interface and address a request frag asks for; `None` for bytes
/// that are not a request.
pub fn parse_solicit(b: &[u8]) -> Option<(u32, IpAddr)> {
    let b: &[u8; SOLICIT_LEN] = b.try_into().ok()?;
    let ifindex = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let ip = match b[4] {
        4 if b[9..].iter().all(|&x| x == 0) => IpAddr::V4(Ipv4Addr::new(b[5], b[6], b[7], b[8])),
        6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[5..]).ok()?)),
        _ => return None,
    };
    (ifindex != 0).then_some((ifindex, ip))
}

/// Next hops asked for lately: at most one request per interface and
/// address per `every` (what the netlink tile asks of the kernel, and what
/// a tile asks of the netlink tile). Entries older than that are dropped
/// once it holds more than a few thousand.
#[derive(Debug)]
pub(crate) struct Asked {
    every: Duration,
    at: HashMap<(u32, IpAddr), Instant>,
}

impl Asked {
    pub(crate) fn new(every: Duration) -> Asked {
        Asked {
            every,
            at: HashMap::new(),
        }
    }

    /// Whether `ip` on `ifindex` may be asked for now; if so, it counts
    /// as asked from now.
    pub(crate) fn due(&mut self, ifindex: u32, ip: IpAddr) -> bool {
        let now = Instant::now();
        let every = self.every;
        if self
            .at
            .get(&(ifindex, ip))
            .is_some_and(|&t| now.duration_since(t) < every)
        {
            return false;
        }
        if self.at.len() > 4096 {
            self.at.retain(|_, t| now.duration_since(*t) < every);
        }
        self.at.insert((ifindex, ip), now);
        true
    }
}

/// The `netlink` kind (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetlinkKind;

/// Parameters of a `netlink` tile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetlinkParams {
    /// The network namespace whose tables it mirrors.
    #[serde(default)]
    pub netns: Option<String>,
    /// Routes the table holds.
    #[serde(default = "default_routes")]
    pub routes: usize,
    /// Neighbour slots (a power of two).
    #[serde(default = "default_slots")]
    pub neighbour_slots: usize,
    /// Receive buffer for the announcements, in bytes.
    #[serde(default = "default_events_buffer")]
    pub events_buffer: usize,
}

fn default_routes() -> usize {
    NextHopsParams::default().routes
}
fn default_slots() -> usize {
    NextHopsParams::default().neighbour_slots
}
fn default_events_buffer() -> usize {
    4 << 20
}

impl NetlinkParams {
    fn table(&self) -> NextHopsParams {
        NextHopsParams {
            routes: self.routes,
            neighbour_slots: self.neighbour_slots,
            ..NextHopsParams::default()
        }
    }
}

const COUNTERS: &[&str] = &[
    "routes",
    "neighbours",
    "dumps",
    "events",
    "overflows",
    "ignored",
    "solicits",
    "solicit_errors",
    "bad_requests",
    "publishes",
];

/// A running netlink tile.
pub struct Netlink<'w> {
    mirror: Mirror,
    table: NextHopsHandle<'w>,
    next_poll: Instant,
    asked: Asked,
    solicit_errors: u64,
    bad_requests: u64,
    publishes: u64,
    /// A poll failed: read everything again at the next turn.
    resync: bool,
}

impl std::fmt::Debug for Netlink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("stats", &self.mirror.stats())
            .finish_non_exhaustive()
    }
}

impl<'w> Netlink<'w> {
    /// A tile publishing what `mirror` reads into `table` (its writer).
    pub fn new(mirror: Mirror, table: NextHopsHandle<'w>) -> Netlink<'w> {
        let mut t = Netlink {
            mirror,
            table,
            next_poll: Instant::now(),
            asked: Asked::new(SOLICIT_EVERY),
            solicit_errors: 0,
            bad_requests: 0,
            publishes: 0,
            resync: false,
        };
        t.publish();
        t
    }

    fn publish(&mut self) {
        if self.mirror.publish(&self.table).is_ok() {
            self.publishes += 1;
        }
    }

    /// Applies the kernel's announcements and publishes what changed.
    fn sync(&mut self) {
        if self.resync {
            self.resync = self.mirror.resync().is_err();
        }
        if self.mirror.poll().is_err() {
            self.resync = true;
        }
        if self.mirror.changed() {
            self.publish();
        }
    }

    fn solicit(&mut self, ifindex: u32, ip: IpAddr) {
        if self.asked.due(ifindex, ip) && self.mirror.solicit(ifindex, ip).is_err() {
            self.solicit_errors += 1;
        }
    }
}

impl Tile for Netlink<'_> {
    fn kind(&self) -> &str {
        "netlink"
    }

    fn counters(&self) -> &'static [&'static str] {
        COUNTERS
    }

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, _out: &mut Outputs<'_, '_>) {
        match parse_solicit(frag.payload()) {
            Some((ifindex, ip)) => self.solicit(ifindex, ip),
            None => self.bad_requests += 1,
        }
    }

    fn after_credit(&mut self, _out: &mut Outputs<'_, '_>) {
        let now = Instant::now();
        if now >= self.next_poll {
            self.next_poll = now + POLL_EVERY;
            self.sync();
        }
    }

    fn external_input(&self) -> bool {
        true
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let m = self.mirror.stats();
        let s = self.table.stats();
        let values = [
            s.routes,
            s.neighbours,
            m.dumps,
            m.events,
            m.overflows,
            m.ignored,
            m.solicits,
            self.solicit_errors,
            self.bad_requests,
            self.publishes,
        ];
        for (c, v) in counters.iter_mut().zip(values) {
            *c = v;
        }
    }
}

impl TileKind for NetlinkKind {
    type Params = NetlinkParams;

    fn name(&self) -> &str {
        "netlink"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(0..=16, 0..=0)
    }

    fn check(&self, p: &NetlinkParams, ctx: &mut CheckCtx<'_>) {
        if NextHops::footprint(&p.table()).is_none() {
            let why = "routes must be 1 to 65536 and neighbour_slots a power of two up to 2^20";
            ctx.error(format!("its next-hop table: {why}"));
        }
    }

    fn objects(&self, p: &NetlinkParams, tile: &TileSpec) -> Vec<Object> {
        let table = p.table();
        let size = NextHops::footprint(&table).unwrap_or(0);
        vec![Object::new(
            next_hops_name(&tile.name),
            NextHops::ALIGN,
            size,
            move |mem| {
                NextHops::new(mem, table).map_err(|e| format!("formatting its next-hop table: {e}"))
            },
        )]
    }

    fn netns<'p>(&self, p: &'p NetlinkParams) -> Option<&'p str> {
        p.netns.as_deref()
    }

    fn build<'w>(
        &self,
        p: &NetlinkParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let mem = ctx.object(&next_hops_name(ctx.name()))?;
        let table =
            NextHops::join(mem).map_err(|e| BuildError::new(format!("its next-hop table: {e}")))?;
        let mirror = Mirror::open_with(p.events_buffer).map_err(|e| {
            BuildError::new(format!("reading the kernel's routes over netlink: {e}"))
        })?;
        Ok(Box::new(Netlink::new(mirror, table)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_and_garbage_is_not_a_request() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            IpAddr::V6("2001:2::7".parse().unwrap()),
        ] {
            assert_eq!(parse_solicit(&solicit_request(3, ip)), Some((3, ip)));
        }
        let mut bad = solicit_request(3, IpAddr::V4(Ipv4Addr::LOCALHOST));
        bad[4] = 5;
        assert_eq!(parse_solicit(&bad), None, "family 5");
        assert_eq!(parse_solicit(&[0; 20]), None, "short");
        assert_eq!(
            parse_solicit(&solicit_request(0, IpAddr::V4(Ipv4Addr::LOCALHOST))),
            None,
            "interface 0"
        );
        let mut v4_tail = solicit_request(3, IpAddr::V4(Ipv4Addr::LOCALHOST));
        v4_tail[20] = 1;
        assert_eq!(parse_solicit(&v4_tail), None, "bytes past an IPv4 address");
    }
}
