//! [`UdpEndpoints`]: both ends of a UDP flow.

use std::net::{SocketAddrV4, SocketAddrV6};

/// Both ends of a UDP flow as a frame carries them: MACs, IPv4 addresses
/// and ports. What [`build`](super::build) writes and [`UdpFrame::endpoints`](super::UdpFrame::endpoints) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpEndpoints {
    /// The sender's MAC address.
    pub src_mac: [u8; 6],
    /// The receiver's MAC address (the next hop's, in general).
    pub dst_mac: [u8; 6],
    /// The sender's address and port.
    pub src: SocketAddrV4,
    /// The receiver's address and port.
    pub dst: SocketAddrV4,
}

impl UdpEndpoints {
    /// The same flow seen from the other end: source and destination
    /// swapped, as in a reply.
    pub fn reversed(&self) -> UdpEndpoints {
        UdpEndpoints {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            src: self.dst,
            dst: self.src,
        }
    }
}

/// Both ends of an IPv6 UDP flow: MACs, IPv6 addresses and ports. What
/// [`build_ipv6`](super::build_ipv6) writes. The addresses' flow labels
/// and scope ids are not written: a frame carries no scope id, and the
/// builder leaves the flow label 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Udp6Endpoints {
    /// The sender's MAC address.
    pub src_mac: [u8; 6],
    /// The receiver's MAC address (the next hop's, in general).
    pub dst_mac: [u8; 6],
    /// The sender's address and port.
    pub src: SocketAddrV6,
    /// The receiver's address and port.
    pub dst: SocketAddrV6,
}

impl Udp6Endpoints {
    /// The same flow seen from the other end: source and destination
    /// swapped, as in a reply.
    pub fn reversed(&self) -> Udp6Endpoints {
        Udp6Endpoints {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            src: self.dst,
            dst: self.src,
        }
    }
}
