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

pub mod dedup;
pub mod echo;
pub mod forward;
pub mod generator;
pub mod net_udp;
#[cfg(feature = "xdp")]
pub mod net_xdp;
pub mod pcap;
pub mod sink;
pub mod verify;

use crate::Registry;

/// Registers every built-in kind in `r`, in the order of the table above.
pub(crate) fn register_builtins(r: &mut Registry) {
    let fresh = "a fresh registry holds none of the built-in names";
    #[cfg(feature = "xdp")]
    r.register(net_xdp::NetXdpKind).expect(fresh);
    r.register(net_udp::NetUdpKind).expect(fresh);
    r.register(dedup::DedupKind).expect(fresh);
    r.register(echo::EchoKind).expect(fresh);
    r.register(verify::VerifyKind).expect(fresh);
    r.register(forward::ForwardKind).expect(fresh);
    r.register(sink::SinkKind).expect(fresh);
    r.register(pcap::PcapKind).expect(fresh);
    r.register(generator::GenKind).expect(fresh);
}
