//! [`udp_payload`]: the UDP payload of an IPv4 or IPv6 frame.

use super::view::UdpFrame;

/// The UDP payload of `frame` (a whole Ethernet frame) when it is an IPv4
/// UDP frame that [`UdpFrame::new_checked`] accepts, or an IPv6 UDP frame
/// without extension headers whose lengths hold (the payload length ends
/// within the frame, the UDP length within the payload); `None` for
/// anything else. Trailing bytes after the datagram (Ethernet padding)
/// are not part of the payload.
pub fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    if frame.get(12..14) == Some(&[0x86, 0xdd]) {
        let ip = frame.get(14..54)?;
        if ip[0] >> 4 != 6 || ip[6] != 17 {
            return None;
        }
        let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let packet = frame.get(54..54 + plen)?;
        let udp_len = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
        if udp_len < 8 || udp_len > plen {
            return None;
        }
        return packet.get(8..udp_len);
    }
    let f = UdpFrame::new_checked(frame).ok()?;
    let start = f.udp_offset() + 8;
    let end = f.udp_offset() + usize::from(f.udp_len());
    frame.get(start..end.max(start))
}

/// The UDP destination port of `frame`, read where an IPv6 frame (without
/// extension headers) or an IPv4 frame (after its IP options) has it,
/// without checking the rest: for frames the XDP program already checked.
/// 0 where the frame is too short to hold it.
pub fn udp_dst_port(frame: &[u8]) -> u16 {
    if frame.get(12..14) == Some(&[0x86, 0xdd]) {
        return frame
            .get(56..58)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    }
    UdpFrame::new_unchecked(frame).dst_port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{build_vec, UdpEndpoints};

    fn v6(payload: &[u8], plen: Option<u16>, udp_len: Option<u16>, next: u8) -> Vec<u8> {
        let n = (8 + payload.len()) as u16;
        let mut f = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        f.extend_from_slice(&plen.unwrap_or(n).to_be_bytes());
        f.extend_from_slice(&[next, 64]);
        f.extend_from_slice(&[0; 32]);
        f.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x40]);
        f.extend_from_slice(&udp_len.unwrap_or(n).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn both_families_give_their_payload_and_lies_give_none() {
        let ends = UdpEndpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.18.0.1:1".parse().unwrap(),
            dst: "198.18.0.2:2".parse().unwrap(),
        };
        let v4 = build_vec(&ends, b"four").unwrap();
        assert_eq!(udp_payload(&v4), Some(&b"four"[..]));
        let mut padded = v6(b"six", None, None, 17);
        assert_eq!(udp_payload(&padded), Some(&b"six"[..]));
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(
            udp_payload(&padded),
            Some(&b"six"[..]),
            "padding is not payload"
        );
        assert_eq!(
            udp_payload(&v6(b"six", None, Some(7), 17)),
            None,
            "udp length 7"
        );
        assert_eq!(
            udp_payload(&v6(b"six", None, Some(12), 17)),
            None,
            "udp past ip"
        );
        assert_eq!(
            udp_payload(&v6(b"six", Some(40), None, 17)),
            None,
            "ip past frame"
        );
        assert_eq!(udp_payload(&v6(b"six", None, None, 0)), None, "hop-by-hop");
        assert_eq!(udp_payload(&v6(b"six", None, None, 17)[..50]), None, "cut");
        assert_eq!(udp_payload(b"junk"), None);
        assert_eq!(udp_dst_port(&v6(b"six", None, None, 17)), 8000);
        assert_eq!(udp_dst_port(&v4), 2);
        assert_eq!(udp_dst_port(&v6(b"six", None, None, 17)[..57]), 0);
    }

    #[test]
    fn an_ipv6_frame_swaps_its_endpoints_and_back() {
        let mut f = v6(b"six", None, None, 17);
        f[22..38].copy_from_slice(&[1; 16]);
        f[38..54].copy_from_slice(&[2; 16]);
        let before = f.clone();
        crate::frame::swap_endpoints(&mut f).unwrap();
        assert_eq!((&f[0..6], &f[6..12]), (&before[6..12], &before[0..6]));
        assert_eq!((&f[22..38], &f[38..54]), (&[2u8; 16][..], &[1u8; 16][..]));
        assert_eq!(udp_dst_port(&f), 40000, "the ports traded places");
        assert_eq!(&f[58..], &before[58..], "checksum and payload untouched");
        crate::frame::swap_endpoints(&mut f).unwrap();
        assert_eq!(f, before);
        let mut cut = before[..50].to_vec();
        assert!(
            crate::frame::swap_endpoints(&mut cut).is_err(),
            "a cut frame is refused"
        );
    }
}
