//! [`UdpEndpoints`]: both ends of a UDP flow.

use std::net::SocketAddrV4;

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
