//! The built-in tile kinds, each a [`TileKind`](crate::TileKind) registered
//! by [`Registry::with_builtins`](crate::Registry::with_builtins) exactly as
//! a user's kind is registered.
//!
//! | kind | inputs | outputs | what it does |
//! |------|--------|---------|--------------|
//! | `net-xdp` ([`net_xdp`], feature `xdp`) | 0..=1 | 1 | an AF_XDP socket: receives into its output without a copy, sends its input |
//! | `net-udp` ([`net_udp`]) | 0..=1 | 0..=1 | a UDP socket (io_uring or sendmmsg/recvmmsg) |
//! | `dedup` ([`dedup`]) | 1 | 1 | drops packets whose payload it saw recently |
//! | `echo` ([`echo`]) | 1 | 1 | swaps each frame's endpoints |
//! | `verify` ([`verify`]) | 1 | 1 | hashes every payload (a verifier's work), passes the packet on |
//! | `forward` ([`forward`]) | 1..=16 | 1 | merges its inputs |
//! | `sink` ([`sink`]) | 1..=16 | 0 | consumes and counts |
//! | `pcap` ([`pcap`]) | 1 | 0 | writes a capture file |
//! | `gen` ([`generator`]) | 0 | 1 | plays synthetic or fixture frames at a rate |
//! | `netlink` ([`netlink`]) | 0..=16 | 0 | mirrors the kernel's routes and neighbours into a next-hop table; resolves on request |
//! | `retransmit` ([`retransmit`]) | 1 | 1..=2 | fans each payload out to a destination set, one frame per destination |

mod builtins;
pub mod dedup;
pub mod echo;
pub mod forward;
pub mod generator;
pub mod net_udp;
#[cfg(feature = "xdp")]
pub mod net_xdp;
pub mod netlink;
pub mod pcap;
pub mod retransmit;
pub mod sink;
pub mod verify;
