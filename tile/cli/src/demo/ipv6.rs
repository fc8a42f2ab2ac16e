//! The demo over IPv6 (`--ipv6`): the veth pair's IPv6 addresses, and the
//! fixture's frames moved onto them.
//!
//! Over AF_XDP the peer sends each well-formed IPv4 UDP frame of the
//! fixture as the IPv6 frame with the same payload and destination port
//! ([`rebuilt`]), the fixture's own IPv6 UDP frames moved onto the pair's
//! addresses ([`moved`]), and every other frame as it is (its MACs aside).
//! The XDP program, given no IPv4 `dst_addr`, steers IPv6 UDP by port, so
//! the frames the pipeline gets are those whose
//! [`Fixture::steer_port`](tilewire_aio::fixture::Fixture::steer_port) is
//! one of its ports: the rebuilt ones and the fixture's IPv6 ones (their
//! lengths and their checksum, set or not, are kept, so whether the
//! program steers them is too).

use std::net::Ipv6Addr;

use tilewire_xdp::frame::{
    build_ipv6_vec, udp6_checksum, udp_payload, Udp6Endpoints, ETHERTYPE_IPV6, HEADERS_LEN_IPV6,
    IPPROTO_UDP,
};

/// The pipeline's address (namespace a): of 2001:2::/48, the benchmarking
/// block the fixture's own IPv6 frames use.
pub(super) const PIPELINE: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// The peer's address (namespace b).
pub(super) const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
/// The prefix length of both: one link.
pub(super) const PREFIX: u8 = 64;

/// The IPv6 frame on `ends` with the UDP payload of `frame`, a
/// well-formed IPv4 UDP frame.
///
/// # Errors
/// If `frame` has no UDP payload (it is not well formed).
pub(super) fn rebuilt(frame: &[u8], ends: &Udp6Endpoints) -> Result<Vec<u8>, String> {
    let payload = udp_payload(frame).ok_or("a well-formed fixture frame has no UDP payload")?;
    build_ipv6_vec(ends, payload).map_err(|e| format!("fixture frame as IPv6: {e}"))
}

/// Moves the fixture's IPv6 UDP frame `frame` onto `ends`: MACs,
/// addresses and ports written, the UDP checksum computed again unless it
/// is 0 ("none", which the XDP program passes to the kernel, so it stays
/// none). A frame that is not IPv6 UDP without extension headers, or too
/// short for the headers, gets only its MACs; one whose lengths lie keeps its checksum, now wrong (the
/// program passes it to the kernel either way).
pub(super) fn moved(frame: &mut [u8], ends: &Udp6Endpoints) {
    if let Some(macs) = frame.get_mut(0..12) {
        macs[0..6].copy_from_slice(&ends.dst_mac);
        macs[6..12].copy_from_slice(&ends.src_mac);
    }
    let udp = frame.len() >= HEADERS_LEN_IPV6
        && frame[12..14] == ETHERTYPE_IPV6.to_be_bytes()
        && frame[20] == IPPROTO_UDP;
    if !udp {
        return;
    }
    frame[22..38].copy_from_slice(&ends.src.ip().octets());
    frame[38..54].copy_from_slice(&ends.dst.ip().octets());
    frame[54..56].copy_from_slice(&ends.src.port().to_be_bytes());
    frame[56..58].copy_from_slice(&ends.dst.port().to_be_bytes());
    if frame[60..62] == [0, 0] {
        return;
    }
    let Some(len) = udp_payload(frame).map(<[u8]>::len) else {
        return;
    };
    let sum = udp6_checksum(
        *ends.src.ip(),
        *ends.dst.ip(),
        &frame[54..HEADERS_LEN_IPV6 + len],
    );
    frame[60..62].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV6;
    use tilewire_aio::fixture::{malformed, mix, FrameClass};
    use tilewire_xdp::frame::{udp_dst_port, UdpFrame};

    fn ends(dst_port: u16) -> Udp6Endpoints {
        Udp6Endpoints {
            src_mac: [2, 0, 0, 0, 0, 0xb],
            dst_mac: [2, 0, 0, 0, 0, 0xa],
            src: SocketAddrV6::new(PEER, 7000, 0, 0),
            dst: SocketAddrV6::new(PIPELINE, dst_port, 0, 0),
        }
    }

    #[test]
    fn a_well_formed_frame_keeps_payload_and_port_as_ipv6() {
        let fx = mix();
        for f in fx.iter().filter(|f| f.class.is_well_formed_udp()).take(50) {
            let port = UdpFrame::new_unchecked(f.bytes).dst_port();
            let six = rebuilt(f.bytes, &ends(port)).unwrap();
            assert_eq!(udp_payload(&six), udp_payload(f.bytes));
            assert_eq!(udp_dst_port(&six), port);
        }
        assert!(rebuilt(b"not a frame", &ends(1)).is_err());
    }

    #[test]
    fn the_fixture_s_ipv6_frames_move_with_a_right_checksum() {
        let fx = malformed();
        let mut seen = 0;
        for (i, f) in fx.iter().enumerate() {
            if f.class != FrameClass::Ipv6Udp {
                continue;
            }
            seen += 1;
            let mut g = f.bytes.to_vec();
            let port = udp_dst_port(&g);
            moved(&mut g, &ends(port));
            assert_eq!(udp_payload(&g), udp_payload(f.bytes), "frame {i}");
            assert_eq!(udp_dst_port(&g), port);
            assert_eq!(&g[22..38], &PEER.octets());
            assert_eq!(&g[38..54], &PIPELINE.octets());
            // A fresh build on the same ends gives the same checksum.
            let want = build_ipv6_vec(&ends(port), udp_payload(f.bytes).unwrap()).unwrap();
            assert_eq!(&g[54..62], &want[54..62], "frame {i}");
            assert!(fx.steer_port(i).is_some(), "the program steers it");
        }
        assert!(seen > 0, "the fixture has IPv6 frames");
        // Not IPv6: only the MACs.
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        moved(&mut arp, &ends(1));
        assert_eq!(&arp[0..12], &[2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb]);
        assert!(arp[12..].iter().skip(2).all(|&b| b == 0));
        // No checksum stays none.
        let mut none = build_ipv6_vec(&ends(9), b"x").unwrap();
        none[60..62].fill(0);
        moved(&mut none, &ends(9));
        assert_eq!(&none[60..62], &[0, 0]);
    }
}
