//! The Internet checksum of the IPv4 header and of a UDP datagram.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::field;
use super::layout::IPPROTO_UDP;

/// Adds `data` to a one's-complement accumulator as big-endian 16-bit
/// words; an odd last byte is the high half of a word padded with zero.
/// Only the last piece of a checksummed range may have an odd length.
fn add_words(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds the carries back in: the 16-bit one's-complement sum.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// `data` without the two-byte checksum field at `skip`: the parts before
/// and after it (both empty-safe).
fn around(data: &[u8], skip: std::ops::Range<usize>) -> (&[u8], &[u8]) {
    if data.len() >= skip.end {
        (&data[..skip.start], &data[skip.end..])
    } else {
        (data, &[])
    }
}

/// The IPv4 header checksum of `hdr` (the whole header, options
/// included): the one's complement of the one's-complement sum of its
/// 16-bit words, the checksum field itself (bytes 10..12) left out, so
/// the answer is the same whether the field is filled or zero. A correct
/// header has `ipv4_checksum(hdr) == stored`. Never panics (a slice too
/// short to hold the field is summed whole).
pub fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let (before, after) = around(hdr, field::IP_CHECKSUM_IN_HEADER);
    !fold(add_words(add_words(0, before), after))
}

/// The UDP checksum of `segment` (UDP header and payload, by the UDP
/// length) from `src` to `dst`: over the pseudo header (source,
/// destination, zero, protocol 17, UDP length), the header without its
/// checksum field (bytes 6..8, left out so filled or zero gives the same
/// answer) and the payload, padded to an even length. A computed 0 is
/// returned as 0xffff, since 0 in the field means "no checksum" (RFC 768).
/// The UDP length in the pseudo header is `segment.len()`, truncated to
/// 16 bits; never panics.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut acc = add_words(0, &src.octets());
    acc = add_words(acc, &dst.octets());
    acc += u64::from(IPPROTO_UDP);
    acc += u64::from(segment.len() as u16);
    let (before, after) = around(segment, field::UDP_CHECKSUM_IN_HEADER);
    match !fold(add_words(add_words(acc, before), after)) {
        0 => 0xffff,
        sum => sum,
    }
}

/// The UDP checksum of `segment` over IPv6 (RFC 8200 section 8.1): as
/// [`udp_checksum`], with the IPv6 pseudo header (source, destination,
/// the UDP length as 32 bits, next header 17). A computed 0 is returned as
/// 0xffff: over IPv6 a zero checksum is not allowed at all. Never panics.
pub fn udp6_checksum(src: Ipv6Addr, dst: Ipv6Addr, segment: &[u8]) -> u16 {
    let mut acc = add_words(0, &src.octets());
    acc = add_words(acc, &dst.octets());
    acc += u64::from(IPPROTO_UDP);
    acc = add_words(acc, &(segment.len() as u32).to_be_bytes());
    let (before, after) = around(segment, field::UDP_CHECKSUM_IN_HEADER);
    match !fold(add_words(add_words(acc, before), after)) {
        0 => 0xffff,
        sum => sum,
    }
}
