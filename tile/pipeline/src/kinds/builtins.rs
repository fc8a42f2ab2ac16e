//! The built-in kinds registered as a user's are.

use super::{dedup, echo, forward, generator, net_udp, netlink, pcap, retransmit, sink, verify};
use crate::Registry;

impl Registry {
    /// A registry with tilewire's built-in kinds: `net-xdp` (feature
    /// `xdp`), `net-udp`, `dedup`, `echo`, `verify`, `forward`, `sink`,
    /// `pcap`, `gen`, `netlink` and `retransmit` (see [`kinds`](crate::kinds)).
    pub fn with_builtins() -> Registry {
        let mut r = Registry::new();
        let fresh = "a fresh registry holds none of the built-in names";
        #[cfg(feature = "xdp")]
        r.register(super::net_xdp::NetXdpKind).expect(fresh);
        r.register(net_udp::NetUdpKind).expect(fresh);
        r.register(dedup::DedupKind).expect(fresh);
        r.register(echo::EchoKind).expect(fresh);
        r.register(verify::VerifyKind).expect(fresh);
        r.register(forward::ForwardKind).expect(fresh);
        r.register(sink::SinkKind).expect(fresh);
        r.register(pcap::PcapKind).expect(fresh);
        r.register(generator::GenKind).expect(fresh);
        r.register(netlink::NetlinkKind).expect(fresh);
        r.register(retransmit::RetransmitKind).expect(fresh);
        r
    }
}
