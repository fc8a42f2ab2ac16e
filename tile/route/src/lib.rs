//! Next hops from the kernel: where a frame to an IP address goes (the
//! interface, the next hop's MAC, the source the route prefers), for net
//! tiles that write whole Ethernet frames (AF_XDP TX) and so must do what
//! the kernel's stack does for a socket.
//!
//! - [`Mirror`] reads the kernel's routes, neighbours and interfaces (their
//!   MAC and MTU) over netlink
//!   (with rust-netlink's `netlink-packet-route`, not hand-written
//!   layouts), IPv4 and IPv6, and follows every change the kernel
//!   announces; after a lost announcement (`ENOBUFS`) it reads everything
//!   again and counts it. [`Mirror::solicit`] asks the kernel to resolve a
//!   neighbour, as a packet sent by the kernel would.
//! - [`NextHops`] is the shared table it publishes into: a workspace
//!   object any process reads without a syscall or a lock (a sequence
//!   lock; a reader retries while the one writer rewrites, see
//!   [`table`]). [`NextHopsHandle::resolve`] answers a [`Hop`] (the
//!   interface, its MAC and MTU, the next hop and its MAC, the preferred
//!   source) or a [`Miss`] with its reason (no route, a local address, a
//!   refusing route, no neighbour yet, being resolved, failed, an
//!   interface without an Ethernet address).
//!
//! # What it follows and what it ignores
//!
//! It looks routes up as the kernel's default rules do: the `local`
//! table, then `main`, then `default`, longest prefix first, then the
//! lowest metric. It ignores policy routing (other tables and the rules
//! that choose them: marks, source addresses, interfaces, VRFs),
//! source-specific IPv6 routes, nexthop objects (`ip nexthop`), routes
//! whose gateway is of the other family, and every next hop of a
//! multipath route but the first; each ignored route is counted
//! ([`MirrorStats::ignored`]). Neighbours are kept in every state; a hop
//! is given only for an entry with a MAC in a usable state
//! ([`NeighState::usable`]). Proxy entries are left out.

mod answer;
pub mod entry;
pub mod netlink;
pub mod table;

pub use answer::{Hop, Miss, NextHopsStats, Published, ReadOnly, Tables};
pub use entry::{Interface, NeighState, Neighbour, Route, RouteKind, TABLES};
pub use netlink::{Mirror, MirrorStats};
pub use table::{NextHops, NextHopsHandle, NextHopsParams};
