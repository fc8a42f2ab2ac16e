//! The retransmit tile: Turbine-style fan-out of one payload to a set of
//! destinations, as whole Ethernet frames for an AF_XDP net tile.
//!
//! # What it does
//!
//! Each input frag is a UDP payload (a shred) whose signature names a
//! destination set (or, with `input = "udp-frame"`, a whole received UDP
//! frame whose payload goes out, and with `set`, one set for every frag:
//! a relay that forwards what a net tile received). The tile reads the set ([`DestSets`], a workspace
//! object updatable at run time from any process), looks each
//! destination's next hop up in the next-hop table of a `netlink` tile
//! ([`netlink`](super::netlink)) and publishes on output 0 one frame per
//! destination: Ethernet (the next hop's MAC, the interface's MAC), IPv4
//! or IPv6, UDP with its checksum, and the payload, copied once per
//! destination straight into the output's dcache. The payload's share of
//! the UDP checksum is summed once per frag, not once per destination.
//!
//! # Failures, the fd_aio way
//!
//! A destination that cannot be sent to is skipped and counted with its
//! reason; the batch of one frag reports how many frames went out and the
//! index of the first destination that did not, with its [`Reason`]
//! ([`Retransmit::last_batch`]). Nothing is ever sent to a MAC the table
//! does not hold for the next hop right now: a next hop without a usable
//! neighbour entry is dropped (counted `no_neighbour`, `pending` or
//! `failed`) and, when the tile has a second output linked to the
//! `netlink` tile, asked for (at most once per next hop per 100 ms), so a
//! later payload finds it. Turbine's erasure coding and its many paths
//! make a dropped shred cheap; holding it would delay the rest.
//!
//! # Parameters
//!
//! - `resolver` (required): the name of the `netlink` tile whose table to
//!   read;
//! - `ifname` (required): the interface the net tile on output 0 sends
//!   on; a destination routed through another is counted
//!   `wrong_interface`, not sent;
//! - `src_port` (required): the UDP source port;
//! - `src_ip`: the source address (default: the route's preferred
//!   source; a route without one counts `no_source`);
//! - `sets` (default 1) and `max_destinations` (default 256, at most
//!   4096): the destination sets object's size;
//! - `destinations`: the sets at the start, a list of lists of
//!   `"address:port"` (set 0 first); a set longer than
//!   `max_destinations` is refused at its line;
//! - `input`: `"payload"` (default: the frag is the payload) or
//!   `"udp-frame"` (the frag is an IPv4 or IPv6 UDP frame, as a net tile
//!   receives it; the UDP payload goes out, and a frag that is not one is
//!   counted `not_udp`);
//! - `set`: the set every frag goes to (default: the frag's signature).
//!
//! Each output's link must be at least `max_destinations` deep (a frag's
//! frames, or its asks, are published together). Until the `netlink`
//! tile has published `ifname` (its first read of the kernel's tables),
//! the tile holds its input, for up to 2 s.
//!
//! # What it counts
//!
//! `frags`, `sent`, and each reason a destination was skipped:
//! `no_route`, `local`, `refused`, `no_neighbour`, `pending`, `failed`,
//! `no_interface`, `wrong_interface`, `no_source`, `too_big`, `busy`;
//! `bad_set` (a frag naming no set: dropped whole), `asked` (resolution
//! requests sent), `not_udp` (with `input = "udp-frame"`, frags that are
//! not UDP frames: dropped whole).

mod dests;
mod frame;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tilewire_route::{Miss, NextHops, NextHopsHandle};
use tilewire_shmem::object::ShmObject;
use tilewire_tile::stem::{Filter, Frag, Outputs, Reading, Tile};

use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, Object, TileKind};
use crate::kinds::netlink::{next_hops_name, solicit_request, Asked};
use crate::topo::TileSpec;

pub use dests::{DestError, DestSets, DestSetsHandle, DESTS_MAX, SETS_MAX};

/// Least time between two resolution requests for one next hop.
const ASK_EVERY: Duration = Duration::from_millis(100);
/// Longest the tile holds its input at the start waiting for the net
/// tile's interface to appear in the next-hop table.
const INTERFACE_WAIT: Duration = Duration::from_secs(2);

/// The named allocation holding retransmit tile `tile`'s destination
/// sets.
pub fn dest_sets_name(tile: &str) -> String {
    format!("{tile}.dests")
}

/// Why a destination of a batch was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The table has no route to it.
    NoRoute,
    /// It is an address of this host.
    Local,
    /// Its route refuses it (blackhole, unreachable, prohibit, ...).
    Refused,
    /// Its next hop has no neighbour entry yet.
    NoNeighbour,
    /// Its next hop is being resolved.
    Pending,
    /// Its next hop failed to resolve.
    Failed,
    /// The route's interface has no Ethernet address the table knows, or
    /// the net tile's interface (`ifname`) is not in the table.
    NoInterface,
    /// It is routed through another interface than the net tile's.
    WrongInterface,
    /// No source address of its family (no `src_ip`, no preferred source).
    NoSource,
    /// The frame would not fit the interface's MTU or the output's mtu.
    TooBig,
    /// The table was being rewritten through every try.
    Busy,
}

impl Reason {
    fn of(m: Miss) -> Reason {
        match m {
            Miss::NoRoute => Reason::NoRoute,
            Miss::Local => Reason::Local,
            Miss::Refused(_) => Reason::Refused,
            Miss::NoNeighbour { .. } => Reason::NoNeighbour,
            Miss::Pending { .. } => Reason::Pending,
            Miss::Failed { .. } => Reason::Failed,
            Miss::NoInterface { .. } => Reason::NoInterface,
            _ => Reason::Busy,
        }
    }

    /// Its counter's index in [`COUNTERS`].
    fn counter(self) -> usize {
        2 + self as usize
    }
}

/// The tile's counters, in order (see the [module docs](self)).
pub const COUNTERS: &[&str] = &[
    "frags",
    "sent",
    "no_route",
    "local",
    "refused",
    "no_neighbour",
    "pending",
    "failed",
    "no_interface",
    "wrong_interface",
    "no_source",
    "too_big",
    "busy",
    "bad_set",
    "asked",
    "not_udp",
];
const BAD_SET: usize = 13;

/// The counters of destinations (or frags, `bad_set`) not sent, each a
/// [`Reason`] but the last: what a caller adds up as skipped.
pub fn skip_counters() -> &'static [&'static str] {
    &COUNTERS[2..=BAD_SET]
}
const ASKED: usize = 14;
const NOT_UDP: usize = 15;

/// What the batch of one frag did: frames sent, and the first destination
/// not sent with its reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    /// Frames published.
    pub sent: usize,
    /// The index in the set of the first destination not sent, and why.
    pub first_failed: Option<(usize, Reason)>,
}

/// A running retransmit tile.
pub struct Retransmit<'w> {
    table: NextHopsHandle<'w>,
    dests: DestSetsHandle<'w>,
    ifname: String,
    ifindex: Option<u32>,
    src_ip: Option<IpAddr>,
    src_port: u16,
    ask: bool,
    asked: Asked,
    scratch: Vec<SocketAddr>,
    counts: [u64; 16],
    udp_frames: bool,
    set: Option<usize>,
    last: Batch,
    burst: u64,
    started: Instant,
    /// Hops resolved at table generation `hops_of`.
    hops: HashMap<IpAddr, tilewire_route::Hop>,
    hops_of: u64,
}

impl std::fmt::Debug for Retransmit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retransmit")
            .field("ifname", &self.ifname)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Retransmit<'_> {
    /// What the batch of the last frag did.
    pub fn last_batch(&self) -> Batch {
        self.last
    }

    /// The net tile's interface, found in the table by name once it is
    /// there.
    fn ifindex(&mut self) -> Option<u32> {
        if self.ifindex.is_none() {
            self.ifindex = self.table.interface_named(&self.ifname).map(|i| i.ifindex);
        }
        self.ifindex
    }

    fn ask(&mut self, out: &mut Outputs<'_, '_>, miss: Miss) {
        let (Miss::NoNeighbour { ifindex, next_hop }
        | Miss::Pending { ifindex, next_hop }
        | Miss::Failed { ifindex, next_hop }) = miss
        else {
            return;
        };
        if !self.ask || !self.asked.due(ifindex, next_hop) {
            return;
        }
        if out
            .publish(1, &solicit_request(ifindex, next_hop), 0, 0, 0)
            .is_ok()
        {
            self.counts[ASKED] += 1;
        }
    }

    /// Sends `payload` to every destination of the scratch set.
    fn fan_out(&mut self, payload: &[u8], frag: &Frag<'_>, out: &mut Outputs<'_, '_>) -> Batch {
        let mut batch = Batch::default();
        let psum = frame::sum(payload);
        let ours = self.ifindex();
        let dests = std::mem::take(&mut self.scratch);
        let mut hdr = [0u8; frame::V6_HEADERS];
        // Hops resolved since the table last changed are kept: a change
        // (a new MAC, a route gone) moves the generation and empties them.
        let generation = self.table.generation();
        if generation != self.hops_of {
            self.hops.clear();
            self.hops_of = generation;
        }
        for (i, &d) in dests.iter().enumerate() {
            let resolved = match self.hops.get(&d.ip()) {
                Some(&hop) => Ok(hop),
                None => self.table.resolve(d.ip()).inspect(|&hop| {
                    self.hops.insert(d.ip(), hop);
                }),
            };
            let r = match resolved {
                Err(m) => {
                    self.ask(out, m);
                    Err(Reason::of(m))
                }
                Ok(_) if ours.is_none() => Err(Reason::NoInterface),
                Ok(hop) if Some(hop.ifindex) != ours => Err(Reason::WrongInterface),
                Ok(hop) => match self.src_ip.or(hop.src) {
                    None => Err(Reason::NoSource),
                    Some(src) => frame::headers(
                        &mut hdr,
                        &hop,
                        SocketAddr::new(src, self.src_port),
                        d,
                        payload.len(),
                        psum,
                    )
                    .map_err(|e| match e {
                        frame::Unbuildable::Family => Reason::NoSource,
                        frame::Unbuildable::TooBig => Reason::TooBig,
                    })
                    .and_then(|n| {
                        out.publish_parts(
                            0,
                            &[&hdr[..n], payload],
                            frag.sig(),
                            0,
                            frag.meta().tsorig,
                        )
                        .map_err(|_| Reason::TooBig)
                    })
                    .map(drop),
                },
            };
            match r {
                Ok(()) => batch.sent += 1,
                Err(why) => {
                    self.counts[why.counter()] += 1;
                    batch.first_failed.get_or_insert((i, why));
                }
            }
        }
        self.scratch = dests;
        batch
    }
}

impl Tile for Retransmit<'_> {
    fn kind(&self) -> &str {
        "retransmit"
    }

    fn burst(&self) -> u64 {
        self.burst
    }

    fn counters(&self) -> &'static [&'static str] {
        COUNTERS
    }

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        // Until the netlink tile published the net tile's interface (its
        // first read of the kernel's tables), hold the frags rather than
        // count every destination as unsendable; a name the table never
        // holds is counted (`no_interface`) once the wait is over.
        if self.ifindex().is_none() && self.started.elapsed() < INTERFACE_WAIT {
            Filter::Retry
        } else {
            Filter::Process
        }
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        self.counts[0] += 1;
        let payload = if self.udp_frames {
            match tilewire_aio::frame::udp_payload(frag.packet()) {
                Some(p) => p,
                None => {
                    self.counts[NOT_UDP] += 1;
                    self.last = Batch::default();
                    return;
                }
            }
        } else {
            frag.packet()
        };
        let set = self
            .set
            .unwrap_or_else(|| usize::try_from(frag.sig()).unwrap_or(usize::MAX));
        let mut scratch = std::mem::take(&mut self.scratch);
        let ok = self.dests.read(set, &mut scratch);
        self.scratch = scratch;
        if !ok {
            self.counts[BAD_SET] += 1;
            self.last = Batch::default();
            return;
        }
        self.last = self.fan_out(payload, frag, out);
        self.counts[1] += self.last.sent as u64;
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        for (c, v) in counters.iter_mut().zip(self.counts) {
            *c = v;
        }
    }
}

/// The `retransmit` kind (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetransmitKind;

/// Parameters of a `retransmit` tile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetransmitParams {
    /// The `netlink` tile whose next-hop table it reads.
    pub resolver: String,
    /// The interface the net tile on output 0 sends on.
    pub ifname: String,
    /// The UDP source port.
    pub src_port: u16,
    /// The source address; default: the route's preferred source.
    #[serde(default)]
    pub src_ip: Option<IpAddr>,
    /// Destination sets.
    #[serde(default = "one")]
    pub sets: usize,
    /// Most destinations a set holds.
    #[serde(default = "default_max")]
    pub max_destinations: usize,
    /// The sets at the start, set 0 first.
    #[serde(default)]
    pub destinations: Vec<Vec<SocketAddr>>,
    /// What an input frag is.
    #[serde(default)]
    pub input: Input,
    /// The set every frag goes to; default: the frag's signature.
    #[serde(default)]
    pub set: Option<usize>,
}

/// What a retransmit tile's input frags are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Input {
    /// The payload itself.
    #[default]
    Payload,
    /// A whole IPv4 or IPv6 UDP frame; its UDP payload goes out.
    UdpFrame,
}

fn one() -> usize {
    1
}
fn default_max() -> usize {
    256
}

impl TileKind for RetransmitKind {
    type Params = RetransmitParams;

    fn name(&self) -> &str {
        "retransmit"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 1..=2)
    }

    fn check(&self, p: &RetransmitParams, ctx: &mut CheckCtx<'_>) {
        if DestSets::footprint(&(p.sets, p.max_destinations)).is_none() {
            ctx.field_error(
                "max_destinations",
                format!("sets must be 1 to {SETS_MAX} and max_destinations 1 to {DESTS_MAX}"),
            );
        }
        if p.destinations.len() > p.sets {
            ctx.field_error(
                "destinations",
                format!(
                    "{} sets given, and `sets` is {}",
                    p.destinations.len(),
                    p.sets
                ),
            );
        }
        for (i, set) in p.destinations.iter().enumerate() {
            if set.len() > p.max_destinations {
                ctx.field_error(
                    "destinations",
                    format!(
                        "set {i} has {} destinations, more than max_destinations ({})",
                        set.len(),
                        p.max_destinations
                    ),
                );
            }
        }
        if p.set.is_some_and(|s| s >= p.sets) {
            ctx.field_error(
                "set",
                format!(
                    "there are {} sets (0 to {})",
                    p.sets,
                    p.sets.saturating_sub(1)
                ),
            );
        }
        if p.ifname.is_empty() || p.ifname.len() > 15 {
            ctx.field_error("ifname", "an interface name is 1 to 15 bytes");
        }
        let topo = ctx.topology();
        match topo.tiles.iter().find(|t| t.name == p.resolver) {
            Some(t) if t.kind() == "netlink" => {}
            Some(t) => ctx.field_error(
                "resolver",
                format!(
                    "tile {:?} is a {:?} tile, not a netlink tile",
                    t.name,
                    t.kind()
                ),
            ),
            None => ctx.field_error(
                "resolver",
                format!("no tile is named {:?} (a netlink tile)", p.resolver),
            ),
        }
        // The run loop hands the tile a frag only when every output has
        // a burst of credits: the frames, and the asks, of one frag.
        let outs: Vec<String> = ctx.tile().outputs.clone();
        for l in outs
            .iter()
            .filter_map(|o| topo.links.iter().find(|l| &l.name == o))
        {
            if (l.depth as usize) < p.max_destinations {
                let why = format!(
                    "{} frags deep, and one frag's frames or asks (up to max_destinations = {}) \
                     are published together",
                    l.depth, p.max_destinations
                );
                ctx.link_error(&l.name, "depth", why);
            }
        }
    }

    fn objects(&self, p: &RetransmitParams, tile: &TileSpec) -> Vec<Object> {
        let (sets, max) = (p.sets, p.max_destinations);
        let size = DestSets::footprint(&(sets, max)).unwrap_or(0);
        let initial = p.destinations.clone();
        vec![Object::new(
            dest_sets_name(&tile.name),
            DestSets::ALIGN,
            size,
            move |mem| {
                DestSets::new(mem, sets, max)
                    .map_err(|e| format!("formatting its destination sets: {e}"))?;
                let h = DestSets::join(mem).map_err(|e| format!("its destination sets: {e}"))?;
                for (i, set) in initial.iter().enumerate() {
                    h.write(i, set)
                        .map_err(|e| format!("destination set {i}: {e}"))?;
                }
                Ok(())
            },
        )]
    }

    fn build<'w>(
        &self,
        p: &RetransmitParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let dests = DestSets::join(ctx.object(&dest_sets_name(ctx.name()))?)
            .map_err(|e| BuildError::new(format!("its destination sets: {e}")))?;
        let table = NextHops::join(ctx.object(&next_hops_name(&p.resolver))?)
            .map_err(|e| BuildError::new(format!("the next-hop table of {:?}: {e}", p.resolver)))?;
        let ask = ctx.tile().outputs.len() > 1;
        Ok(Box::new(Retransmit {
            table,
            dests,
            ifname: p.ifname.clone(),
            ifindex: None,
            src_ip: p.src_ip,
            src_port: p.src_port,
            ask,
            asked: Asked::new(ASK_EVERY),
            scratch: Vec::with_capacity(p.max_destinations),
            counts: [0; 16],
            udp_frames: p.input == Input::UdpFrame,
            set: p.set,
            last: Batch::default(),
            burst: p.max_destinations as u64,
            started: Instant::now(),
            hops: HashMap::with_capacity(p.max_destinations),
            hops_of: u64::MAX,
        }))
    }
}
