//! [`FrameError`]: why bytes are not a frame, or a frame could not be built.

use super::layout::PAYLOAD_MAX;

/// Why bytes are not a well-formed Ethernet/IPv4/UDP frame, or why one
/// could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes end before the headers do: `need` bytes are needed to
    /// reach the end of the header being read, the frame has `len`.
    #[error("frame of {len} bytes is too short for its headers ({need} bytes)")]
    Truncated {
        /// The frame's length.
        len: usize,
        /// The length the headers need.
        need: usize,
    },
    /// The EtherType is not IPv4 (0x0800); VLAN-tagged frames land here.
    #[error("ethertype {ethertype:#06x} is not IPv4")]
    NotIpv4 {
        /// The EtherType found.
        ethertype: u16,
    },
    /// The IP version field is not 4.
    #[error("IP version {version}, not 4")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The IHL (header length in 32-bit words) is below 5.
    #[error("IPv4 header length of {ihl} words is below the minimum of 5")]
    BadIhl {
        /// The IHL found.
        ihl: u8,
    },
    /// The IP protocol is not UDP (17).
    #[error("IP protocol {protocol} is not UDP")]
    NotUdp {
        /// The protocol found.
        protocol: u8,
    },
    /// An IP fragment (more-fragments set, or a non-zero offset): only the
    /// first fragment has a UDP header, and no fragment the whole payload.
    #[error("IPv4 fragment (more fragments: {more_fragments}, offset {offset} x 8 bytes)")]
    Fragment {
        /// The more-fragments flag.
        more_fragments: bool,
        /// The fragment offset, in 8-byte units.
        offset: u16,
    },
    /// The IPv4 total length is shorter than the IPv4 header plus a UDP
    /// header, or longer than the bytes after the Ethernet header.
    #[error("IPv4 total length {total_len} does not fit a {header_len}-byte IP header, a UDP header and the {available} bytes present")]
    IpLength {
        /// The IPv4 total length field.
        total_len: u16,
        /// The IPv4 header length (IHL x 4).
        header_len: usize,
        /// The bytes after the Ethernet header.
        available: usize,
    },
    /// The UDP length is below 8 (its own header) or longer than the IP
    /// payload.
    #[error("UDP length {udp_len} is below 8 or beyond the {ip_payload}-byte IP payload")]
    UdpLength {
        /// The UDP length field.
        udp_len: u16,
        /// The IP payload length (total length - header length).
        ip_payload: usize,
    },
    /// [`build`](super::build): the buffer cannot hold the frame.
    #[error("a frame of {need} bytes does not fit a {have}-byte buffer")]
    BufferTooSmall {
        /// The frame's length.
        need: usize,
        /// The buffer's length.
        have: usize,
    },
    /// [`build`](super::build): the payload is longer than [`PAYLOAD_MAX`].
    #[error("a UDP payload of {len} bytes exceeds the IPv4 maximum of {PAYLOAD_MAX}")]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
    },
    /// [`verify_checksums`](super::verify_checksums): the IPv4 header checksum is wrong.
    #[error("IPv4 header checksum {stored:#06x}, should be {computed:#06x}")]
    IpChecksum {
        /// The checksum in the header.
        stored: u16,
        /// The checksum the header needs.
        computed: u16,
    },
    /// [`verify_checksums`](super::verify_checksums): the UDP checksum is wrong (a stored 0, "no
    /// checksum", is accepted).
    #[error("UDP checksum {stored:#06x}, should be {computed:#06x}")]
    UdpChecksum {
        /// The checksum in the header.
        stored: u16,
        /// The checksum the datagram needs.
        computed: u16,
    },
}
