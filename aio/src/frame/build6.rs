//! Writing a whole IPv6 UDP frame.

use super::checksum::udp6_checksum;
use super::endpoints::Udp6Endpoints;
use super::error::FrameError;
use super::field;
use super::layout::{
    DEFAULT_TTL, ETHERTYPE_IPV6, ETH_HEADER_LEN, HEADERS_LEN_IPV6, IPPROTO_UDP, IPV6_HEADER_LEN,
    PAYLOAD_MAX_IPV6, UDP_HEADER_LEN,
};

/// Writes a whole IPv6 frame into the front of `buf`: Ethernet (IPv6
/// EtherType), the fixed IPv6 header with no extension headers (traffic
/// class 0, flow label 0, next header UDP, hop limit [`DEFAULT_TTL`]), a
/// UDP header (checksum filled over the IPv6 pseudo header, never 0) and
/// `payload`. Returns the frame's length, [`HEADERS_LEN_IPV6`] +
/// `payload.len()`; the rest of `buf` is not touched. The XDP program
/// steers such a frame by port as it does an IPv4 one.
///
/// # Errors
/// [`FrameError::PayloadTooLong`] past [`PAYLOAD_MAX_IPV6`] (a jumbogram
/// is not built); [`FrameError::BufferTooSmall`] when `buf` cannot hold
/// the frame. On error `buf` is not touched.
pub fn build_ipv6(
    buf: &mut [u8],
    ends: &Udp6Endpoints,
    payload: &[u8],
) -> Result<usize, FrameError> {
    if payload.len() > PAYLOAD_MAX_IPV6 {
        return Err(FrameError::PayloadTooLong { len: payload.len() });
    }
    let len = HEADERS_LEN_IPV6 + payload.len();
    let have = buf.len();
    let frame = buf
        .get_mut(..len)
        .ok_or(FrameError::BufferTooSmall { need: len, have })?;
    // Fits a u16: checked against PAYLOAD_MAX_IPV6 above. The IPv6
    // payload length and the UDP length are the same number here.
    let udp_len = (UDP_HEADER_LEN + payload.len()) as u16;

    let (eth, rest) = frame.split_at_mut(ETH_HEADER_LEN);
    eth[field::ETH_DST].copy_from_slice(&ends.dst_mac);
    eth[field::ETH_SRC].copy_from_slice(&ends.src_mac);
    eth[field::ETH_TYPE..].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());

    let (ip, udp) = rest.split_at_mut(IPV6_HEADER_LEN);
    ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6
    ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
    ip[6] = IPPROTO_UDP;
    ip[7] = DEFAULT_TTL;
    ip[8..24].copy_from_slice(&ends.src.ip().octets());
    ip[24..40].copy_from_slice(&ends.dst.ip().octets());

    udp[0..2].copy_from_slice(&ends.src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&ends.dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[UDP_HEADER_LEN..].copy_from_slice(payload);
    let sum = udp6_checksum(*ends.src.ip(), *ends.dst.ip(), udp);
    udp[field::UDP_CHECKSUM_IN_HEADER].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

/// [`build_ipv6`] into a new vector of exactly the frame's length.
///
/// # Errors
/// [`FrameError::PayloadTooLong`] past [`PAYLOAD_MAX_IPV6`].
pub fn build_ipv6_vec(ends: &Udp6Endpoints, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > PAYLOAD_MAX_IPV6 {
        return Err(FrameError::PayloadTooLong { len: payload.len() });
    }
    let mut buf = vec![0u8; HEADERS_LEN_IPV6 + payload.len()];
    build_ipv6(&mut buf, ends, payload)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{swap_endpoints, udp_dst_port, udp_payload};

    fn ends() -> Udp6Endpoints {
        Udp6Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "[2001:2::1]:8000".parse().unwrap(),
            dst: "[2001:2::2]:9001".parse().unwrap(),
        }
    }

    /// The one's-complement sum of the pseudo header, the UDP header
    /// (checksum included) and the payload folds to all ones exactly when
    /// the checksum is right.
    fn verifies(f: &[u8]) -> bool {
        let mut acc: u64 = 0;
        let mut add = |b: &[u8]| {
            for w in b.chunks(2) {
                acc += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
        };
        add(&f[22..54]);
        let seg = &f[54..];
        add(&(seg.len() as u32).to_be_bytes());
        add(&[0, 17]);
        add(seg);
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc == 0xffff
    }

    #[test]
    fn a_frame_reads_back_and_its_checksum_holds() {
        for len in [0, 1, 7, 1228, crate::frame::PAYLOAD_MAX_IPV6_MTU1500] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let f = build_ipv6_vec(&ends(), &payload).unwrap();
            assert_eq!(f.len(), HEADERS_LEN_IPV6 + len);
            assert_eq!(&f[12..14], &[0x86, 0xdd]);
            assert_eq!(f[14] >> 4, 6);
            assert_eq!((f[20], f[21]), (17, DEFAULT_TTL));
            assert_eq!(udp_payload(&f), Some(&payload[..]), "{len} bytes");
            assert_eq!(udp_dst_port(&f), 9001);
            assert!(verifies(&f), "checksum of a {len}-byte payload");
            assert_ne!(&f[60..62], &[0, 0], "never a zero checksum");
            let mut back = f.clone();
            swap_endpoints(&mut back).unwrap();
            let mut want = build_ipv6_vec(&ends().reversed(), &payload).unwrap();
            // A swap keeps the checksum, a fresh build computes the same.
            want[60..62].copy_from_slice(&f[60..62]);
            assert_eq!(back, want);
        }
    }

    #[test]
    fn too_long_or_too_small_is_refused_untouched() {
        let mut buf = vec![7u8; 100];
        assert_eq!(
            build_ipv6(&mut buf, &ends(), &[0; 39]),
            Err(FrameError::BufferTooSmall {
                need: 101,
                have: 100
            })
        );
        assert!(buf.iter().all(|&b| b == 7), "the buffer was touched");
        assert!(matches!(
            build_ipv6_vec(&ends(), &vec![0; PAYLOAD_MAX_IPV6 + 1]),
            Err(FrameError::PayloadTooLong { .. })
        ));
        assert_eq!(
            build_ipv6(&mut buf, &ends(), &[1; 38]),
            Ok(100),
            "exactly fits"
        );
    }
}
