//! What the table holds: routes and neighbours as plain data, and their
//! encoding in the table's words.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Words of one route in the table.
pub(crate) const ROUTE_WORDS: usize = 8;
/// Words of one neighbour slot in the table.
pub(crate) const NEIGH_WORDS: usize = 4;
/// Words of one interface slot in the table.
pub(crate) const IFACE_WORDS: usize = 4;

/// The kernel's routing tables that are mirrored, in the order the kernel's
/// default rules look them up: `local`, `main`, `default`.
pub const TABLES: [u8; 3] = [255, 254, 253];

/// What a route does with what it matches (the kernel's route types that
/// a sender meets; the others are [`RouteKind::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Sent on, to a gateway or straight to the destination.
    Unicast,
    /// An address of this host.
    Local,
    /// Dropped silently.
    Blackhole,
    /// Refused as unreachable.
    Unreachable,
    /// Refused as administratively prohibited.
    Prohibit,
    /// Broadcast, multicast, anycast, throw, NAT: not sent by a net tile.
    Other,
}

impl RouteKind {
    fn code(self) -> u64 {
        match self {
            RouteKind::Unicast => 1,
            RouteKind::Local => 2,
            RouteKind::Blackhole => 3,
            RouteKind::Unreachable => 4,
            RouteKind::Prohibit => 5,
            RouteKind::Other => 6,
        }
    }

    fn from_code(c: u64) -> Option<RouteKind> {
        Some(match c {
            1 => RouteKind::Unicast,
            2 => RouteKind::Local,
            3 => RouteKind::Blackhole,
            4 => RouteKind::Unreachable,
            5 => RouteKind::Prohibit,
            6 => RouteKind::Other,
            _ => return None,
        })
    }
}

/// One route of the kernel's table, as the mirror keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The kernel table it is in (one of [`TABLES`]).
    pub table: u8,
    /// What it does.
    pub kind: RouteKind,
    /// The destination prefix (its family is the route's).
    pub dst: IpAddr,
    /// The prefix's length in bits.
    pub prefix_len: u8,
    /// Its metric: of two routes with the same prefix, the lower wins.
    pub priority: u32,
    /// The interface it sends on (0: none, as for a blackhole).
    pub oif: u32,
    /// The gateway; `None` for a destination on the link itself.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel prefers for it.
    pub prefsrc: Option<IpAddr>,
}

impl Route {
    /// Whether `ip` lies in this route's prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.dst, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The state of a neighbour entry, as the kernel's `NUD_*` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighState {
    /// Resolving: asked, no answer yet.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Known, not confirmed lately (still used: the kernel sends to it and
    /// checks it).
    Stale,
    /// Being confirmed (still used).
    Delay,
    /// Being probed (still used).
    Probe,
    /// Resolution failed: the address did not answer.
    Failed,
    /// No resolution needed on this link (the address is used as is).
    Noarp,
    /// Set by hand.
    Permanent,
    /// Anything else.
    None,
}

impl NeighState {
    /// Whether a frame may be sent to the entry's address.
    pub fn usable(self) -> bool {
        matches!(
            self,
            NeighState::Reachable
                | NeighState::Stale
                | NeighState::Delay
                | NeighState::Probe
                | NeighState::Noarp
                | NeighState::Permanent
        )
    }

    fn code(self) -> u64 {
        match self {
            NeighState::Incomplete => 1,
            NeighState::Reachable => 2,
            NeighState::Stale => 3,
            NeighState::Delay => 4,
            NeighState::Probe => 5,
            NeighState::Failed => 6,
            NeighState::Noarp => 7,
            NeighState::Permanent => 8,
            NeighState::None => 9,
        }
    }

    fn from_code(c: u64) -> Option<NeighState> {
        Some(match c {
            1 => NeighState::Incomplete,
            2 => NeighState::Reachable,
            3 => NeighState::Stale,
            4 => NeighState::Delay,
            5 => NeighState::Probe,
            6 => NeighState::Failed,
            7 => NeighState::Noarp,
            8 => NeighState::Permanent,
            9 => NeighState::None,
            _ => return None,
        })
    }
}

/// One neighbour of the kernel's table: an address on a link and its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// The interface.
    pub ifindex: u32,
    /// The address.
    pub ip: IpAddr,
    /// Its MAC, when the kernel knows one.
    pub mac: Option<[u8; 6]>,
    /// The entry's state.
    pub state: NeighState,
}

fn ip_words(ip: IpAddr) -> [u64; 2] {
    let b = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let w = u128::from_be_bytes(b);
    [(w >> 64) as u64, w as u64]
}

fn words_ip(v6: bool, w: [u64; 2]) -> IpAddr {
    let b = (u128::from(w[0]) << 64) | u128::from(w[1]);
    let ip = Ipv6Addr::from(b);
    if v6 {
        IpAddr::V6(ip)
    } else {
        IpAddr::V4(ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED))
    }
}

/// Bits of a route's or neighbour's first word.
const V6: u64 = 1;
const HAS_GW: u64 = 1 << 1;
const HAS_SRC: u64 = 1 << 2;
const HAS_MAC: u64 = 1 << 1;
/// A used neighbour slot (an empty slot is all zero).
const USED: u64 = 1 << 3;

impl Route {
    pub(crate) fn encode(&self) -> [u64; ROUTE_WORDS] {
        let mut w0 = USED | (u64::from(self.dst.is_ipv6()) * V6);
        w0 |= u64::from(self.gateway.is_some()) * HAS_GW;
        w0 |= u64::from(self.prefsrc.is_some()) * HAS_SRC;
        w0 |= u64::from(self.prefix_len) << 8;
        w0 |= self.kind.code() << 16;
        w0 |= u64::from(self.table) << 24;
        let [d0, d1] = ip_words(self.dst);
        let [g0, g1] = self.gateway.map_or([0, 0], ip_words);
        let [s0, s1] = self.prefsrc.map_or([0, 0], ip_words);
        [
            w0,
            (u64::from(self.oif) << 32) | u64::from(self.priority),
            d0,
            d1,
            g0,
            g1,
            s0,
            s1,
        ]
    }

    /// The route the words hold; `None` for words no encoding gives.
    pub(crate) fn decode(w: &[u64; ROUTE_WORDS]) -> Option<Route> {
        if w[0] & USED == 0 {
            return None;
        }
        let v6 = w[0] & V6 != 0;
        let prefix_len = (w[0] >> 8) as u8;
        if prefix_len > if v6 { 128 } else { 32 } {
            return None;
        }
        Some(Route {
            table: (w[0] >> 24) as u8,
            kind: RouteKind::from_code((w[0] >> 16) & 0xff)?,
            dst: words_ip(v6, [w[2], w[3]]),
            prefix_len,
            priority: w[1] as u32,
            oif: (w[1] >> 32) as u32,
            gateway: (w[0] & HAS_GW != 0).then(|| words_ip(v6, [w[4], w[5]])),
            prefsrc: (w[0] & HAS_SRC != 0).then(|| words_ip(v6, [w[6], w[7]])),
        })
    }
}

impl Neighbour {
    pub(crate) fn encode(&self) -> [u64; NEIGH_WORDS] {
        let mut w0 = USED | (u64::from(self.ip.is_ipv6()) * V6);
        w0 |= u64::from(self.mac.is_some()) * HAS_MAC;
        w0 |= self.state.code() << 8;
        w0 |= u64::from(self.ifindex) << 32;
        let [a0, a1] = ip_words(self.ip);
        let mac = self.mac.map_or(0, |m| {
            m.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        });
        [w0, a0, a1, mac]
    }

    /// The neighbour the words hold; `None` for an empty slot or words no
    /// encoding gives.
    pub(crate) fn decode(w: &[u64; NEIGH_WORDS]) -> Option<Neighbour> {
        if w[0] & USED == 0 {
            return None;
        }
        let mac = (w[0] & HAS_MAC != 0).then(|| {
            let b = w[3].to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        });
        Some(Neighbour {
            ifindex: (w[0] >> 32) as u32,
            ip: words_ip(w[0] & V6 != 0, [w[1], w[2]]),
            mac,
            state: NeighState::from_code((w[0] >> 8) & 0xff)?,
        })
    }

    /// The slot key's hash: where the neighbour of `ip` on `ifindex` goes.
    pub(crate) fn hash(ifindex: u32, ip: IpAddr) -> u64 {
        let [a, b] = ip_words(ip);
        let mut h = u64::from(ifindex) ^ 0x9e37_79b9_7f4a_7c15;
        for w in [a, b] {
            h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 33;
        }
        h
    }
}

/// One interface: what a frame sent on it carries as its source MAC, and
/// the largest IP packet it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interface {
    /// Its index.
    pub ifindex: u32,
    /// Its MAC (`None` for an interface without an Ethernet address: a
    /// tunnel, loopback).
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: u32,
    /// Its name (at most 15 bytes, as the kernel's `IFNAMSIZ` allows),
    /// NUL-padded.
    pub name: [u8; 16],
}

impl Interface {
    pub(crate) fn encode(&self) -> [u64; IFACE_WORDS] {
        let mut w0 = USED | (u64::from(self.mac.is_some()) * HAS_MAC);
        w0 |= u64::from(self.ifindex) << 32;
        w0 |= u64::from(self.mtu & 0x00ff_ffff) << 8;
        let mac = self.mac.map_or(0, |m| {
            m.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        });
        let n0 = u64::from_le_bytes(self.name[..8].try_into().unwrap_or([0; 8]));
        let n1 = u64::from_le_bytes(self.name[8..].try_into().unwrap_or([0; 8]));
        [w0, mac, n0, n1]
    }

    /// Its name as text (up to the first NUL); `None` if not UTF-8.
    pub fn name(&self) -> Option<&str> {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        std::str::from_utf8(&self.name[..end]).ok()
    }

    /// `name` as the 16 NUL-padded bytes an interface entry holds (the
    /// first 15 bytes of it).
    pub fn name_bytes(name: &str) -> [u8; 16] {
        let mut b = [0u8; 16];
        let n = name.len().min(15);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        b
    }

    pub(crate) fn decode(w: &[u64; IFACE_WORDS]) -> Option<Interface> {
        if w[0] & USED == 0 {
            return None;
        }
        let mac = (w[0] & HAS_MAC != 0).then(|| {
            let b = w[1].to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        });
        let mut name = [0u8; 16];
        name[..8].copy_from_slice(&w[2].to_le_bytes());
        name[8..].copy_from_slice(&w[3].to_le_bytes());
        Some(Interface {
            ifindex: (w[0] >> 32) as u32,
            mac,
            mtu: ((w[0] >> 8) & 0x00ff_ffff) as u32,
            name,
        })
    }
}
