//! Writing a whole frame, and turning a received one into its reply.

use super::checksum::{ipv4_checksum, udp_checksum};
use super::endpoints::UdpEndpoints;
use super::error::FrameError;
use super::field;
use super::layout::{
    DEFAULT_TTL, ETHERTYPE_IPV4, ETH_HEADER_LEN, HEADERS_LEN, IPPROTO_UDP, IPV4_HEADER_MIN_LEN,
    PAYLOAD_MAX, UDP_HEADER_LEN,
};
use super::view::UdpFrame;

/// Writes a whole frame into the front of `buf`: Ethernet (IPv4
/// EtherType), an IPv4 header without options (TTL [`DEFAULT_TTL`],
/// don't-fragment set, identification 0, TOS 0, checksum filled), a UDP
/// header (checksum filled over the pseudo header) and `payload`.
/// Returns the frame's length, [`HEADERS_LEN`] + `payload.len()`; the
/// rest of `buf` is not touched.
///
/// Identification 0 is what Linux sends from an unconnected socket when
/// don't-fragment is set: a datagram that is never fragmented needs no
/// identification (RFC 6864).
///
/// # Errors
/// [`FrameError::PayloadTooLong`] past [`PAYLOAD_MAX`];
/// [`FrameError::BufferTooSmall`] when `buf` cannot hold the frame. On
/// error `buf` is not touched.
pub fn build(buf: &mut [u8], ends: &UdpEndpoints, payload: &[u8]) -> Result<usize, FrameError> {
    if payload.len() > PAYLOAD_MAX {
        return Err(FrameError::PayloadTooLong { len: payload.len() });
    }
    let len = HEADERS_LEN + payload.len();
    let have = buf.len();
    let frame = buf
        .get_mut(..len)
        .ok_or(FrameError::BufferTooSmall { need: len, have })?;
    // Both fit a u16: checked against PAYLOAD_MAX above.
    let total_len = (IPV4_HEADER_MIN_LEN + UDP_HEADER_LEN + payload.len()) as u16;
    let udp_len = (UDP_HEADER_LEN + payload.len()) as u16;

    let (eth, rest) = frame.split_at_mut(ETH_HEADER_LEN);
    eth[field::ETH_DST].copy_from_slice(&ends.dst_mac);
    eth[field::ETH_SRC].copy_from_slice(&ends.src_mac);
    eth[field::ETH_TYPE..].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let (ip, rest) = rest.split_at_mut(IPV4_HEADER_MIN_LEN);
    ip[0] = 0x45; // version 4, IHL 5
    ip[1] = 0; // DSCP / ECN
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&0u16.to_be_bytes()); // identification
    ip[6..8].copy_from_slice(&field::IP_DF.to_be_bytes()); // DF, offset 0
    ip[8] = DEFAULT_TTL;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&ends.src.ip().octets());
    ip[16..20].copy_from_slice(&ends.dst.ip().octets());
    let ip_sum = ipv4_checksum(ip);
    ip[field::IP_CHECKSUM_IN_HEADER].copy_from_slice(&ip_sum.to_be_bytes());

    let udp = rest;
    udp[0..2].copy_from_slice(&ends.src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&ends.dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[UDP_HEADER_LEN..].copy_from_slice(payload);
    let udp_sum = udp_checksum(*ends.src.ip(), *ends.dst.ip(), udp);
    udp[field::UDP_CHECKSUM_IN_HEADER].copy_from_slice(&udp_sum.to_be_bytes());
    Ok(len)
}

/// [`build`] into a new vector of exactly the frame's length.
///
/// # Errors
/// [`FrameError::PayloadTooLong`] past [`PAYLOAD_MAX`].
pub fn build_vec(ends: &UdpEndpoints, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > PAYLOAD_MAX {
        return Err(FrameError::PayloadTooLong { len: payload.len() });
    }
    let mut buf = vec![0u8; HEADERS_LEN + payload.len()];
    build(&mut buf, ends, payload)?;
    Ok(buf)
}

/// Turns a received frame into its reply, in place: MAC addresses, IP
/// addresses (IPv4, or IPv6 without extension headers: see
/// [`udp_payload`](super::udp_payload)) and UDP ports swapped; everything
/// else (payload, TTL or hop limit, options, padding) left as it is.
///
/// Both checksums stay valid without being recomputed. A one's-complement
/// checksum is the complement of a *sum* of 16-bit words, and that sum is
/// commutative and associative: it does not depend on the order of the
/// words, only on which words there are. The swap moves whole words to
/// other word-aligned places (each address is two words at even offsets
/// of the IPv4 header and of the pseudo header; each port is one word of
/// the UDP header) and adds or removes none, so the IPv4 header sum and
/// the UDP sum (pseudo header, header, payload) are unchanged. The MACs
/// are under no checksum at all.
///
/// # Errors
/// As [`UdpFrame::check_len`] (for a frame that is not IPv6 UDP); the
/// frame is not touched then.
pub fn swap_endpoints(frame: &mut [u8]) -> Result<(), FrameError> {
    if frame.get(12..14) == Some(&[0x86, 0xdd]) && super::udp_payload(frame).is_some() {
        // IPv6 (no extension headers, lengths that hold): the MACs, the
        // two 16-byte addresses and the two ports trade places; every
        // swapped word stays under the same sum, as for IPv4.
        swap_ranges(frame, 0, 6, 6);
        swap_ranges(frame, 22, 38, 16);
        swap_ranges(frame, 54, 56, 2);
        return Ok(());
    }
    let mut view = UdpFrame::new_checked(frame)?;
    let ends = view.endpoints().reversed();
    view.set_endpoints(&ends);
    Ok(())
}

/// Swaps `frame[a..a + n]` with `frame[b..b + n]` (`a + n <= b`).
fn swap_ranges(frame: &mut [u8], a: usize, b: usize, n: usize) {
    let (lo, hi) = frame.split_at_mut(b);
    lo[a..a + n].swap_with_slice(&mut hi[..n]);
}
