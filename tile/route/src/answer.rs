//! What a lookup in the next-hop table answers ([`Hop`] or [`Miss`]), what
//! a publish writes and a snapshot reads ([`Tables`]), and the table's
//! counters.

use std::net::IpAddr;

use crate::entry::{Interface, Neighbour, Route, RouteKind};

/// Where a frame to a destination goes: the interface (its MAC, its MTU),
/// the next hop's MAC, and the source address the route prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The interface to send on.
    pub ifindex: u32,
    /// That interface's MAC: a frame's source MAC.
    pub src_mac: [u8; 6],
    /// That interface's MTU: the largest IP packet it takes.
    pub mtu: u32,
    /// The next hop: the route's gateway, or the destination itself.
    pub next_hop: IpAddr,
    /// The next hop's MAC.
    pub mac: [u8; 6],
    /// The source address the route prefers, if it names one.
    pub src: Option<IpAddr>,
}

/// Why a destination has no [`Hop`]: each a reason a sender counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Miss {
    /// No route matches (in the mirrored tables).
    #[error("no route")]
    NoRoute,
    /// The destination is an address of this host.
    #[error("a local address")]
    Local,
    /// The route that matches refuses it (blackhole, unreachable,
    /// prohibit, or a kind a net tile does not send: broadcast,
    /// multicast, throw).
    #[error("refused by a {0:?} route")]
    Refused(RouteKind),
    /// No neighbour entry for the next hop yet: ask the kernel to resolve
    /// it, hold or drop meanwhile.
    #[error("no neighbour entry for {next_hop} on interface {ifindex}")]
    NoNeighbour {
        /// The interface.
        ifindex: u32,
        /// The next hop.
        next_hop: IpAddr,
    },
    /// The kernel is resolving the next hop.
    #[error("neighbour {next_hop} on interface {ifindex} is being resolved")]
    Pending {
        /// The interface.
        ifindex: u32,
        /// The next hop.
        next_hop: IpAddr,
    },
    /// The next hop did not answer the kernel's resolution.
    #[error("neighbour {next_hop} on interface {ifindex} failed to resolve")]
    Failed {
        /// The interface.
        ifindex: u32,
        /// The next hop.
        next_hop: IpAddr,
    },
    /// The route's interface is not mirrored or has no Ethernet address.
    #[error("interface {ifindex} has no Ethernet address the table knows")]
    NoInterface {
        /// The interface.
        ifindex: u32,
    },
    /// The table was being rewritten through every try (or its writer
    /// died in the middle of a publish).
    #[error(
        "the next-hop table was being rewritten through every try, or its writer died in the \
         middle of a publish"
    )]
    Busy,
}

/// The table's counters and sizes, as a monitor shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextHopsStats {
    /// Routes held.
    pub routes: u64,
    /// Neighbours held.
    pub neighbours: u64,
    /// Publishes so far.
    pub generation: u64,
    /// Full dumps read from the kernel.
    pub dumps: u64,
    /// Route and neighbour notifications applied.
    pub events: u64,
    /// Notifications lost to a full socket (each followed by a re-dump).
    pub overflows: u64,
    /// Routes left out (the table full, or a kind not mirrored).
    pub routes_left_out: u64,
    /// Neighbours left out (the table full).
    pub neighbours_left_out: u64,
    /// Resolutions asked of the kernel.
    pub solicits: u64,
    /// The writer's pid.
    pub writer_pid: u64,
    /// `CLOCK_MONOTONIC` ns of the last publish.
    pub published_ns: u64,
}

/// A write into a table mapped read-only was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the next-hop table is mapped read-only: only its writer publishes")]
pub struct ReadOnly;

/// What a publish kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Routes written.
    pub routes: usize,
    /// Neighbours written.
    pub neighbours: usize,
    /// Interfaces written.
    pub interfaces: usize,
}

/// What a table holds, in plain data: what [`NextHopsHandle::publish`](crate::NextHopsHandle::publish)
/// writes and [`NextHopsHandle::snapshot`](crate::NextHopsHandle::snapshot) reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    /// Routes (any order when published; lookup order when read).
    pub routes: Vec<Route>,
    /// Neighbours.
    pub neighbours: Vec<Neighbour>,
    /// Interfaces.
    pub interfaces: Vec<Interface>,
}
