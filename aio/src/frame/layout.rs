//! The lengths and numbers of the three headers.

/// Length of an Ethernet II header: two MACs and the EtherType.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of an IPv4 header without options (IHL 5).
pub const IPV4_HEADER_MIN_LEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Ethernet + IPv4 (no options) + UDP headers: what [`build`](super::build) puts before
/// the payload.
pub const HEADERS_LEN: usize = 42;
/// The largest UDP payload in a frame of a 1500-byte MTU (1500 - 20 - 8).
pub const PAYLOAD_MAX_MTU1500: usize = 1472;
/// The largest UDP payload an IPv4 total length (a u16) can describe.
pub const PAYLOAD_MAX: usize = 65535 - IPV4_HEADER_MIN_LEN - UDP_HEADER_LEN;
/// The IPv4 EtherType.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// The IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// The TTL [`build`](super::build) writes (Linux's default, `net.ipv4.ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;
/// The IPv6 EtherType.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Ethernet + IPv6 (no extension headers) + UDP headers: what
/// [`build_ipv6`](super::build_ipv6) puts before the payload.
pub const HEADERS_LEN_IPV6: usize = 62;
/// The largest UDP payload in an IPv6 frame of a 1500-byte MTU (1500 - 40 - 8).
pub const PAYLOAD_MAX_IPV6_MTU1500: usize = 1452;
/// The largest UDP payload an IPv6 payload length (a u16, which counts the
/// UDP header) can describe without a jumbogram.
pub const PAYLOAD_MAX_IPV6: usize = 65535 - UDP_HEADER_LEN;
