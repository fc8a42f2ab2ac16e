//! The headers of one retransmitted frame: Ethernet, IPv4 or IPv6, UDP,
//! with the UDP checksum from the payload's sum taken once per payload.

use std::net::{IpAddr, SocketAddr};

use tilewire_route::Hop;

/// Ethernet header bytes.
const ETH: usize = 14;
/// Headers of an IPv4 UDP frame.
pub(super) const V4_HEADERS: usize = ETH + 20 + 8;
/// Headers of an IPv6 UDP frame.
pub(super) const V6_HEADERS: usize = ETH + 40 + 8;
/// Hop limit / TTL of what the tile sends (Linux's default).
const TTL: u8 = 64;
const UDP: u8 = 17;

/// The one's complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte padded with zero), not yet folded: the payload's share of a
/// UDP checksum, the same for every destination.
pub(super) fn sum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    let mut s: u64 = chunks
        .by_ref()
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn ip_sum(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => sum(&v4.octets()),
        IpAddr::V6(v6) => sum(&v6.octets()),
    }
}

/// Why a frame to a destination cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unbuildable {
    /// The source address is of the other family than the destination.
    Family,
    /// The packet is larger than the interface's MTU (or than a UDP
    /// datagram can be).
    TooBig,
}

/// Writes the headers of a frame carrying a payload of `len` bytes (whose
/// [`sum`] is `payload_sum`) from `src` to `dst` through `hop` into `buf`;
/// returns how many bytes they take.
pub(super) fn headers(
    buf: &mut [u8; V6_HEADERS],
    hop: &Hop,
    src: SocketAddr,
    dst: SocketAddr,
    len: usize,
    payload_sum: u64,
) -> Result<usize, Unbuildable> {
    let udp_len = 8 + len;
    let (n, ip_len, ethertype) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (V4_HEADERS, 20 + udp_len, 0x0800u16),
        (IpAddr::V6(_), IpAddr::V6(_)) => (V6_HEADERS, 40 + udp_len, 0x86dd),
        _ => return Err(Unbuildable::Family),
    };
    if ip_len > hop.mtu as usize || udp_len > usize::from(u16::MAX) {
        return Err(Unbuildable::TooBig);
    }
    buf[0..6].copy_from_slice(&hop.mac);
    buf[6..12].copy_from_slice(&hop.src_mac);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
    let udp_at = n - 8;
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = &mut buf[ETH..ETH + 20];
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&[0, 0]);
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            ip[8] = TTL;
            ip[9] = UDP;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = !fold(sum(ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = &mut buf[ETH..ETH + 40];
            ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip[6] = UDP;
            ip[7] = TTL;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => return Err(Unbuildable::Family),
    }
    let udp = &mut buf[udp_at..n];
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    // The pseudo header (addresses, protocol, length), the UDP header and
    // the payload.
    let pseudo = ip_sum(src.ip()) + ip_sum(dst.ip()) + u64::from(UDP) + udp_len as u64;
    let c = !fold(pseudo + sum(udp) + payload_sum);
    // A computed 0 is sent as all ones (0 means "no checksum" in IPv4 and
    // is not allowed in IPv6).
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use tilewire_aio::frame::{build_ipv6_vec, build_vec, Udp6Endpoints, UdpEndpoints};

    fn hop() -> Hop {
        Hop {
            ifindex: 2,
            src_mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            next_hop: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            mac: [2, 0, 0, 0, 0, 2],
            src: None,
        }
    }

    #[test]
    fn an_ipv4_frame_is_what_the_frame_builder_writes() {
        let payload: Vec<u8> = (0..1229u32).map(|i| (i * 7) as u8).collect();
        let (s, d) = (
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 8000),
            SocketAddrV4::new(Ipv4Addr::new(198, 19, 3, 4), 9001),
        );
        let mut buf = [0u8; V6_HEADERS];
        let n = headers(
            &mut buf,
            &hop(),
            s.into(),
            d.into(),
            payload.len(),
            sum(&payload),
        )
        .unwrap();
        let mut ours = buf[..n].to_vec();
        ours.extend_from_slice(&payload);
        let theirs = build_vec(
            &UdpEndpoints {
                src_mac: hop().src_mac,
                dst_mac: hop().mac,
                src: s,
                dst: d,
            },
            &payload,
        )
        .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn an_ipv6_checksum_sums_to_all_ones_and_sizes_are_checked() {
        let payload = b"shred payload, odd length";
        let (s, d): (SocketAddr, SocketAddr) = (
            "[2001:2::1]:8000".parse().unwrap(),
            "[2001:2::2]:9000".parse().unwrap(),
        );
        let mut buf = [0u8; V6_HEADERS];
        let n = headers(&mut buf, &hop(), s, d, payload.len(), sum(payload)).unwrap();
        assert_eq!(n, V6_HEADERS);
        assert_eq!(&buf[12..14], &[0x86, 0xdd]);
        let (SocketAddr::V6(s6), SocketAddr::V6(d6)) = (s, d) else {
            unreachable!()
        };
        let mut ours = buf[..n].to_vec();
        ours.extend_from_slice(payload);
        let theirs = build_ipv6_vec(
            &Udp6Endpoints {
                src_mac: hop().src_mac,
                dst_mac: hop().mac,
                src: s6,
                dst: d6,
            },
            payload,
        )
        .unwrap();
        assert_eq!(ours, theirs, "what the frame builder writes");
        // Verifying: the sum over pseudo header, UDP header and payload,
        // checksum included, folds to all ones.
        let udp_len = 8 + payload.len() as u64;
        let pseudo = ip_sum(s.ip()) + ip_sum(d.ip()) + 17 + udp_len;
        assert_eq!(fold(pseudo + sum(&buf[n - 8..n]) + sum(payload)), 0xffff);
        assert_eq!(
            headers(&mut buf, &hop(), s, "198.18.0.1:1".parse().unwrap(), 10, 0),
            Err(Unbuildable::Family)
        );
        assert_eq!(
            headers(&mut buf, &hop(), s, d, 1500, 0),
            Err(Unbuildable::TooBig),
            "1500 bytes of payload do not fit a 1500-byte MTU"
        );
    }
}
