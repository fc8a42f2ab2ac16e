//! Ethernet / IPv4 / UDP frames: typed views over bytes, and a builder.
//!
//! # What a frame is here
//!
//! An AF_XDP socket moves whole Ethernet frames: the bytes a NIC put on
//! the wire, from the destination MAC to the end of the payload (the FCS
//! is not included). tilewire's traffic is UDP over IPv4, so one view,
//! [`UdpFrame`], covers the three headers at once:
//!
//! ```text
//!  0      6      12   14                     14+ihl*4     +8
//!  | dst  | src  |type| IPv4 header (+ opts) | UDP header | payload | pad
//! ```
//!
//! [`UdpFrame::check_len`] proves, once, that the bytes hold what the
//! headers say: an IPv4 EtherType, version 4, an IHL of at least 5 (IP
//! options are skipped, not parsed), protocol UDP, not a fragment, an IP
//! total length that fits the frame, a UDP length that fits the IP
//! payload. After that no accessor can read past the end; before it (a
//! view made with [`UdpFrame::new_unchecked`]) accessors still never
//! panic: a field past the end reads as zero and a slice is cut short at
//! the end of the buffer. Setters likewise write only inside the buffer.
//!
//! The payload is what the **UDP length** says, not "the rest of the
//! frame": short frames are padded to 60 bytes on the wire, and the
//! padding is not payload. The IP total length may likewise be shorter
//! than what follows the Ethernet header, never longer.
//!
//! Checksums are not part of the length check (a receiver that trusts
//! the kernel need not pay for them); [`verify_checksums`] checks both.
//!
//! # Building and answering
//!
//! [`build`] writes a whole frame from [`UdpEndpoints`] and a payload,
//! with both checksums filled, the way Linux would send it from an
//! unconnected socket (TTL 64, don't-fragment set, identification 0).
//! [`build_ipv6`] does the same for IPv6 from [`Udp6Endpoints`] (no
//! extension headers, hop limit 64, flow label 0); [`udp_payload`] and
//! [`udp_dst_port`] read both families.
//! [`swap_endpoints`] turns a received frame into its reply in place
//! (an echo server's job) without touching a checksum.
//!
//! This module is plain safe Rust over byte slices.

#![deny(unsafe_code)]

mod build;
mod build6;
mod checksum;
mod endpoints;
mod error;
mod field;
mod layout;
mod payload;
mod view;

pub use build::{build, build_vec, swap_endpoints};
pub use build6::{build_ipv6, build_ipv6_vec};
pub use checksum::{ipv4_checksum, udp6_checksum, udp_checksum};
pub use endpoints::{Udp6Endpoints, UdpEndpoints};
pub use error::FrameError;
pub use layout::{
    DEFAULT_TTL, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, HEADERS_LEN, HEADERS_LEN_IPV6,
    IPPROTO_UDP, IPV4_HEADER_MIN_LEN, IPV6_HEADER_LEN, PAYLOAD_MAX, PAYLOAD_MAX_IPV6,
    PAYLOAD_MAX_IPV6_MTU1500, PAYLOAD_MAX_MTU1500, UDP_HEADER_LEN,
};
pub use payload::{udp_dst_port, udp_payload};
pub use view::{verify_checksums, UdpFrame};

#[cfg(test)]
mod tests;
