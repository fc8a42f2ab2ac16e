//! The mirror: the kernel's routes and neighbours read over netlink (a
//! dump, then every change the kernel announces), kept in this process
//! and published into a [`NextHops`](crate::NextHops) table.
//!
//! Two sockets: one subscribed to the route and neighbour groups
//! (non-blocking; the kernel queues every change on it), one for
//! requests (dumps, resolutions). The subscription is made before the
//! first dump, so no change falls between the two; a change queued
//! before the dump and applied after it is applied again in the order the
//! kernel made it, so the model ends where the kernel is. When the kernel
//! could not queue a change (the socket's buffer was full: `ENOBUFS`),
//! the mirror counts an overflow and reads everything again.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use crate::answer::{Published, ReadOnly, Tables};
use crate::entry::{Interface, NeighState, Neighbour, Route, RouteKind, TABLES};
use crate::table::{Count, NextHopsHandle};

/// The kernel's multicast groups for link, neighbour and route changes.
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
/// The subscribed socket's receive buffer: room for a burst of changes.
const EVENTS_BUF: usize = 4 << 20;
/// How long a request waits for the kernel's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the mirror did, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Full reads of the kernel's tables.
    pub dumps: u64,
    /// Changes applied.
    pub events: u64,
    /// Times the kernel could not queue a change (each followed by a dump).
    pub overflows: u64,
    /// Routes not mirrored: a table other than local, main and default
    /// (policy routing), nexthop objects, source-specific or
    /// cross-family routes.
    pub ignored: u64,
    /// Resolutions asked of the kernel.
    pub solicits: u64,
}

/// The key the kernel tells routes apart by (within the mirrored tables).
type RouteKey = (u8, IpAddr, u8, u32);

fn route_key(r: &Route) -> RouteKey {
    (r.table, r.dst, r.prefix_len, r.priority)
}

/// The kernel's routes and neighbours, kept up to date (see the
/// [module docs](self)). Made in the network namespace of the thread that
/// opens it.
#[derive(Debug)]
pub struct Mirror {
    events: Socket,
    requests: Socket,
    routes: HashMap<RouteKey, Route>,
    neighbours: HashMap<(u32, IpAddr), Neighbour>,
    interfaces: HashMap<u32, Interface>,
    stats: MirrorStats,
    /// Counted into the table at the next publish.
    unpublished: MirrorStats,
    changed: bool,
    seq: u32,
    buf: Vec<u8>,
}

impl Mirror {
    /// Subscribes to the kernel's route and neighbour changes, then reads
    /// both tables whole.
    ///
    /// # Errors
    /// A netlink socket that cannot be made or bound, or a dump that fails.
    pub fn open() -> io::Result<Mirror> {
        Mirror::open_with(EVENTS_BUF)
    }

    /// [`Mirror::open`] with a receive buffer of `events_buffer` bytes
    /// for the announced changes (the kernel caps it at
    /// `net.core.rmem_max`, and doubles it): a host whose tables change in
    /// bursts wants more than the default 4 MiB asks; a smaller one
    /// overflows sooner, and each overflow costs a full read.
    ///
    /// # Errors
    /// As [`Mirror::open`].
    pub fn open_with(events_buffer: usize) -> io::Result<Mirror> {
        let mut events = Socket::new(NETLINK_ROUTE)?;
        events.bind_auto()?;
        for g in [
            RTNLGRP_LINK,
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_ROUTE,
        ] {
            events.add_membership(g)?;
        }
        // As big as allowed; any size works (an overflow is a re-dump).
        let _ = events.set_rx_buf_sz(events_buffer);
        events.set_non_blocking(true)?;
        let mut requests = Socket::new(NETLINK_ROUTE)?;
        requests.bind_auto()?;
        requests.connect(&SocketAddr::new(0, 0))?;
        let mut m = Mirror {
            events,
            requests,
            routes: HashMap::new(),
            neighbours: HashMap::new(),
            interfaces: HashMap::new(),
            stats: MirrorStats::default(),
            unpublished: MirrorStats::default(),
            changed: true,
            seq: 0,
            buf: vec![0; 1 << 16],
        };
        m.resync()?;
        Ok(m)
    }

    /// What the mirror did so far.
    pub fn stats(&self) -> MirrorStats {
        self.stats
    }

    /// The routes mirrored (in no order).
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }

    /// The neighbours mirrored (in no order).
    pub fn neighbours(&self) -> impl Iterator<Item = &Neighbour> {
        self.neighbours.values()
    }

    /// The interfaces mirrored (in no order).
    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.values()
    }

    /// Whether something changed since the last publish.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Reads both tables whole again, replacing what the mirror held.
    ///
    /// # Errors
    /// A dump that fails.
    pub fn resync(&mut self) -> io::Result<()> {
        let mut routes = HashMap::new();
        let mut ignored = 0;
        let dump = RouteNetlinkMessage::GetRoute(RouteMessage::default());
        self.request(dump, NLM_F_DUMP, |msg| {
            if let RouteNetlinkMessage::NewRoute(m) = msg {
                match route_of(m) {
                    Some(r) => {
                        routes.insert(route_key(&r), r);
                    }
                    None => ignored += 1,
                }
            }
        })?;
        let mut neighbours = HashMap::new();
        let dump = RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default());
        self.request(dump, NLM_F_DUMP, |msg| {
            if let RouteNetlinkMessage::NewNeighbour(m) = msg {
                if let Some(n) = neighbour_of(m) {
                    neighbours.insert((n.ifindex, n.ip), n);
                }
            }
        })?;
        let mut interfaces = HashMap::new();
        let dump = RouteNetlinkMessage::GetLink(LinkMessage::default());
        self.request(dump, NLM_F_DUMP, |msg| {
            if let RouteNetlinkMessage::NewLink(m) = msg {
                let i = interface_of(&m);
                interfaces.insert(i.ifindex, i);
            }
        })?;
        self.routes = routes;
        self.neighbours = neighbours;
        self.interfaces = interfaces;
        self.stats.dumps += 1;
        self.stats.ignored += ignored;
        self.unpublished.dumps += 1;
        self.changed = true;
        Ok(())
    }

    /// Applies every change the kernel queued (without waiting); after an
    /// overflow, reads everything again. Says whether anything changed.
    ///
    /// # Errors
    /// A socket error other than an overflow, or a re-dump that fails.
    pub fn poll(&mut self) -> io::Result<bool> {
        let mut changed = false;
        loop {
            let n = match self.events.recv(&mut &mut self.buf[..], 0) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.stats.overflows += 1;
                    self.unpublished.overflows += 1;
                    self.drain_events();
                    self.resync()?;
                    changed = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let buf = std::mem::take(&mut self.buf);
            for_each_message(&buf[..n], |msg| {
                if let NetlinkPayload::InnerMessage(m) = msg {
                    changed |= self.apply(m);
                }
                true
            });
            self.buf = buf;
        }
        self.changed |= changed;
        Ok(changed)
    }

    /// Throws away what is queued on the subscribed socket (a dump follows
    /// and replaces it).
    fn drain_events(&mut self) {
        while matches!(self.events.recv(&mut &mut self.buf[..], 0), Ok(n) if n > 0) {}
    }

    /// Applies one change; true if it changed the model.
    fn apply(&mut self, msg: RouteNetlinkMessage) -> bool {
        let changed = match msg {
            RouteNetlinkMessage::NewRoute(m) => match route_of(m) {
                Some(r) => self.routes.insert(route_key(&r), r) != Some(r),
                None => {
                    self.stats.ignored += 1;
                    false
                }
            },
            RouteNetlinkMessage::DelRoute(m) => {
                route_of(m).is_some_and(|r| self.routes.remove(&route_key(&r)).is_some())
            }
            RouteNetlinkMessage::NewNeighbour(m) => match neighbour_of(m) {
                Some(n) => self.neighbours.insert((n.ifindex, n.ip), n) != Some(n),
                None => false,
            },
            RouteNetlinkMessage::DelNeighbour(m) => neighbour_of(m)
                .is_some_and(|n| self.neighbours.remove(&(n.ifindex, n.ip)).is_some()),
            RouteNetlinkMessage::NewLink(m) => {
                let i = interface_of(&m);
                self.interfaces.insert(i.ifindex, i) != Some(i)
            }
            RouteNetlinkMessage::DelLink(m) => self.interfaces.remove(&m.header.index).is_some(),
            _ => return false,
        };
        self.stats.events += 1;
        self.unpublished.events += 1;
        changed
    }

    /// Writes the model into `table` and adds the counts since the last
    /// publish to its counters.
    ///
    /// # Errors
    /// [`ReadOnly`] if `table` is a reader's.
    pub fn publish(&mut self, table: &NextHopsHandle<'_>) -> Result<Published, ReadOnly> {
        let tables = Tables {
            routes: self.routes.values().copied().collect(),
            neighbours: self.neighbours.values().copied().collect(),
            interfaces: self.interfaces.values().copied().collect(),
        };
        let p = table.publish(&tables)?;
        let u = std::mem::take(&mut self.unpublished);
        table.count(Count::Dump, u.dumps);
        table.count(Count::Event, u.events);
        table.count(Count::Overflow, u.overflows);
        table.count(Count::Solicit, u.solicits);
        table.count(Count::RouteLeftOut, u.ignored);
        self.changed = false;
        Ok(p)
    }

    /// Asks the kernel to resolve `ip` on interface `ifindex` (what a
    /// packet sent there by the kernel would do): the neighbour entry is
    /// made if there is none and resolution starts; the answer comes as a
    /// change, which [`Mirror::poll`] applies.
    ///
    /// # Errors
    /// What the kernel answered (no such interface, say).
    pub fn solicit(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(ip);
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::None;
        m.header.flags = NeighbourFlags::Use;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_ACK,
            |_| {},
        )?;
        self.stats.solicits += 1;
        self.unpublished.solicits += 1;
        Ok(())
    }

    /// Sends `msg` on the request socket and hands each answer to `each`
    /// until the dump's end or the acknowledgement.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out);
        self.requests.send(&out, 0)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut result = None;
        while result.is_none() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "netlink: no answer from the kernel",
                ));
            }
            let n = self.requests.recv(&mut &mut self.buf[..], 0)?;
            let buf = std::mem::take(&mut self.buf);
            for_each_message(&buf[..n], |msg: NetlinkPayload<RouteNetlinkMessage>| {
                match msg {
                    NetlinkPayload::InnerMessage(m) => each(m),
                    NetlinkPayload::Done(_) => result = Some(Ok(())),
                    NetlinkPayload::Error(e) => {
                        result = Some(match e.code {
                            None => Ok(()),
                            Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                        })
                    }
                    _ => {}
                }
                result.is_none()
            });
            self.buf = buf;
        }
        result.unwrap_or(Ok(()))
    }
}

/// Parses each netlink message in `buf` and hands it to `each` while it
/// says to go on; a message that does not parse ends the buffer.
fn for_each_message(buf: &[u8], mut each: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> bool) {
    let mut off = 0;
    while off < buf.len() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..]) else {
            return;
        };
        let len = msg.header.length as usize;
        if !each(msg.payload) || len == 0 {
            return;
        }
        off += (len + 3) & !3;
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The route a message describes, if it is one the mirror keeps.
fn route_of(m: RouteMessage) -> Option<Route> {
    let h: &RouteHeader = &m.header;
    let v6 = match h.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    if h.flags.contains(RouteFlags::Cloned) || h.source_prefix_length != 0 {
        return None;
    }
    let mut table = h.table;
    let (mut dst, mut priority, mut oif, mut gateway, mut prefsrc) = (None, 0, 0, None, None);
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = u8::try_from(*t).unwrap_or(0),
            RouteAttribute::Destination(d) => dst = route_ip(d),
            RouteAttribute::Priority(p) => priority = *p,
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Gateway(g) => gateway = route_ip(g),
            RouteAttribute::PrefSource(s) => prefsrc = route_ip(s),
            RouteAttribute::MultiPath(hops) => {
                // The first next hop only (say so in the crate docs).
                if let Some(hop) = hops.first() {
                    oif = hop.interface_index;
                    gateway = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_ip(g),
                        _ => None,
                    });
                }
            }
            RouteAttribute::NhId(_) | RouteAttribute::Via(_) => return None,
            _ => {}
        }
    }
    if !TABLES.contains(&table) {
        return None;
    }
    let unspecified = if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    let dst = dst.unwrap_or(unspecified);
    let same = |ip: &Option<IpAddr>| ip.is_none_or(|ip| ip.is_ipv6() == v6);
    if dst.is_ipv6() != v6 || !same(&gateway) || !same(&prefsrc) {
        return None;
    }
    let kind = match h.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::Local => RouteKind::Local,
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::Prohibit => RouteKind::Prohibit,
        _ => RouteKind::Other,
    };
    Some(Route {
        table,
        kind,
        dst,
        prefix_len: h.destination_prefix_length.min(if v6 { 128 } else { 32 }),
        priority,
        oif,
        gateway,
        prefsrc,
    })
}

/// The neighbour a message describes, if the mirror keeps it (not proxy
/// entries).
fn neighbour_of(m: NeighbourMessage) -> Option<Neighbour> {
    if m.header.flags.contains(NeighbourFlags::Proxy) {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(&l[..]).ok(),
            _ => {}
        }
    }
    let state = match m.header.state {
        NeighbourState::Incomplete => NeighState::Incomplete,
        NeighbourState::Reachable => NeighState::Reachable,
        NeighbourState::Stale => NeighState::Stale,
        NeighbourState::Delay => NeighState::Delay,
        NeighbourState::Probe => NeighState::Probe,
        NeighbourState::Failed => NeighState::Failed,
        NeighbourState::Noarp => NeighState::Noarp,
        NeighbourState::Permanent => NeighState::Permanent,
        _ => NeighState::None,
    };
    Some(Neighbour {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac,
        state,
    })
}

/// The interface a link message describes: its index, its Ethernet
/// address (when it has a 6-byte one) and its MTU.
fn interface_of(m: &LinkMessage) -> Interface {
    let mut i = Interface {
        ifindex: m.header.index,
        mac: None,
        mtu: 0,
        name: [0; 16],
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::Address(a) => i.mac = <[u8; 6]>::try_from(&a[..]).ok(),
            LinkAttribute::Mtu(mtu) => i.mtu = *mtu,
            LinkAttribute::IfName(n) => i.name = Interface::name_bytes(n),
            _ => {}
        }
    }
    i
}
