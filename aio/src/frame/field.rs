//! Byte ranges of the headers. Ethernet and IPv4 positions are from the
//! start of the frame; UDP positions are from the start of the UDP
//! header, which follows the IPv4 header and its options.

use std::ops::Range;

use super::layout::ETH_HEADER_LEN;

pub(super) const ETH_DST: Range<usize> = 0..6;
pub(super) const ETH_SRC: Range<usize> = 6..12;
pub(super) const ETH_TYPE: usize = 12;

pub(super) const IP: usize = ETH_HEADER_LEN;
pub(super) const IP_VER_IHL: usize = IP;
pub(super) const IP_TOT_LEN: usize = IP + 2;
pub(super) const IP_IDENT: usize = IP + 4;
pub(super) const IP_FLAGS_FRAG: usize = IP + 6;
pub(super) const IP_TTL: usize = IP + 8;
pub(super) const IP_PROTO: usize = IP + 9;
pub(super) const IP_CHECKSUM: usize = IP + 10;
pub(super) const IP_SRC: usize = IP + 12;
pub(super) const IP_DST: usize = IP + 16;
/// The checksum field inside the IPv4 header.
pub(super) const IP_CHECKSUM_IN_HEADER: Range<usize> = 10..12;

pub(super) const UDP_SRC_PORT: usize = 0;
pub(super) const UDP_DST_PORT: usize = 2;
pub(super) const UDP_LEN: usize = 4;
pub(super) const UDP_CHECKSUM: usize = 6;
/// The checksum field inside the UDP header.
pub(super) const UDP_CHECKSUM_IN_HEADER: Range<usize> = 6..8;

/// IPv4 flags/fragment-offset word: don't fragment, more fragments,
/// offset (in 8-byte units).
pub(super) const IP_DF: u16 = 0x4000;
pub(super) const IP_MF: u16 = 0x2000;
pub(super) const IP_OFFSET: u16 = 0x1fff;
