use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use proptest::prelude::*;

/// A frame Linux built: a tap device (no checksum offload, so the
/// kernel computed both checksums in software) with address
/// 198.18.0.1/30 and MAC 02:00:00:00:00:01, a permanent neighbour
/// 198.18.0.2 at 02:00:00:00:00:02, and a UDP socket bound to
/// 198.18.0.1:4242 sending "tilewire" to 198.18.0.2:8001 on kernel
/// 6.18, read back from the tap's file descriptor. Linux chose the
/// identification 0xa54c; everything else is what `build` writes.
const LINUX_FRAME: [u8; 50] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst MAC
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src MAC
    0x08, 0x00, // IPv4
    0x45, 0x00, 0x00, 0x24, // v4 IHL 5, TOS 0, total length 36
    0xa5, 0x4c, 0x40, 0x00, // id 0xa54c, DF, offset 0
    0x40, 0x11, 0x09, 0x55, // TTL 64, UDP, checksum 0x0955
    0xc6, 0x12, 0x00, 0x01, // 198.18.0.1
    0xc6, 0x12, 0x00, 0x02, // 198.18.0.2
    0x10, 0x92, 0x1f, 0x41, // ports 4242 -> 8001
    0x00, 0x10, 0x79, 0x35, // UDP length 16, checksum 0x7935
    b't', b'i', b'l', b'e', b'w', b'i', b'r', b'e',
];

/// A hand-written frame with one IPv4 option word and Ethernet
/// padding, every byte justified:
///
/// - 0..6 dst MAC 02:00:00:00:00:02 and 6..12 src MAC 02:00:00:00:00:01
///   (locally administered, unicast); 12..14 EtherType 0x0800.
/// - 14: 0x46 = version 4, IHL 6 (24-byte header, 4 bytes of options);
///   15: TOS 0; 16..18: total length 36 = 24 (IP) + 8 (UDP) + 4
///   (payload); 18..20: id 0; 20..22: 0x4000 = DF, offset 0;
///   22: TTL 64; 23: protocol 17; 24..26: checksum 0x199d (below);
///   26..30 src 198.18.0.1; 30..34 dst 198.18.0.2;
///   34..38: Router Alert option (RFC 2113): type 0x94, length 4,
///   value 0.
/// - 38..40 src port 4242 (0x1092); 40..42 dst port 8001 (0x1f41);
///   42..44 UDP length 12 = 8 + 4; 44..46 checksum 0x650a (below);
///   46..50 payload "ping".
/// - 50..60: zero padding up to Ethernet's 60-byte minimum; not
///   payload, not counted by either length field.
///
/// IP checksum: words 4600 0024 0000 4000 4011 c612 0001 c612 0002
/// 9404 0000 sum to 0x2e660; folded 0xe660 + 0x2 = 0xe662; complement
/// 0x199d. UDP checksum: pseudo header c612 0001 c612 0002 0011 000c,
/// header 1092 1f41 000c, payload 7069 6e67 sum to 0x29af3; folded
/// 0x9af3 + 0x2 = 0x9af5; complement 0x650a.
const OPTIONS_FRAME: [u8; 60] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, //
    0x46, 0x00, 0x00, 0x24, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x19, 0x9d, //
    0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, 0x94, 0x04, 0x00, 0x00, //
    0x10, 0x92, 0x1f, 0x41, 0x00, 0x0c, 0x65, 0x0a, b'p', b'i', b'n', b'g', //
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn linux_ends() -> UdpEndpoints {
    UdpEndpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 4242),
        dst: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 8001),
    }
}

#[test]
fn parse_linux_frame() {
    let f = UdpFrame::new_checked(&LINUX_FRAME[..]).unwrap();
    assert_eq!(f.endpoints(), linux_ends());
    assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
    assert_eq!((f.version(), f.ihl(), f.ip_header_len()), (4, 5, 20));
    assert_eq!(f.total_len(), 36);
    assert_eq!(f.ident(), 0xa54c);
    assert!(f.dont_fragment() && !f.more_fragments());
    assert_eq!((f.ttl(), f.protocol()), (64, IPPROTO_UDP));
    assert_eq!((f.ip_checksum(), f.udp_checksum()), (0x0955, 0x7935));
    assert_eq!(f.udp_len(), 16);
    assert_eq!(f.ip_options(), b"");
    assert_eq!(f.payload(), b"tilewire");
    assert_eq!(f.frame_len(), 50);
    verify_checksums(&LINUX_FRAME).unwrap();
    assert_eq!(ipv4_checksum(f.ip_header()), 0x0955);
    assert_eq!(
        udp_checksum(f.src_ip(), f.dst_ip(), f.udp_segment()),
        0x7935
    );
}

#[test]
fn parse_options_and_padding() {
    let f = UdpFrame::new_checked(&OPTIONS_FRAME[..]).unwrap();
    assert_eq!((f.ihl(), f.ip_header_len(), f.udp_offset()), (6, 24, 38));
    assert_eq!(f.ip_options(), [0x94, 0x04, 0x00, 0x00]);
    assert_eq!(f.src(), linux_ends().src);
    assert_eq!(f.dst(), linux_ends().dst);
    assert_eq!(f.payload(), b"ping", "padding is not payload");
    assert_eq!(f.frame_len(), 50);
    verify_checksums(&OPTIONS_FRAME).unwrap();
}

#[test]
fn emit_matches_linux() {
    let mut buf = [0xaau8; 64];
    let len = build(&mut buf, &linux_ends(), b"tilewire").unwrap();
    assert_eq!(len, 50);
    assert!(buf[50..].iter().all(|&b| b == 0xaa), "past the frame");
    verify_checksums(&buf[..len]).unwrap();
    // Linux picked an identification; with it, the bytes are Linux's.
    let mut f = UdpFrame::new_checked(&mut buf[..len]).unwrap();
    assert_eq!(f.ident(), 0);
    f.set_ident(0xa54c);
    f.fill_checksums();
    assert_eq!(f.into_inner(), &LINUX_FRAME[..]);
}

#[test]
fn setters_round_trip() {
    let mut buf = OPTIONS_FRAME;
    let mut f = UdpFrame::new_checked(&mut buf[..]).unwrap();
    let ends = UdpEndpoints {
        src_mac: [0xa, 0xb, 0xc, 0xd, 0xe, 0xf],
        dst_mac: [1, 2, 3, 4, 5, 6],
        src: "10.1.2.3:53".parse().unwrap(),
        dst: "192.0.2.9:65535".parse().unwrap(),
    };
    f.set_src_mac(ends.src_mac);
    f.set_dst_mac(ends.dst_mac);
    f.set_src_ip(*ends.src.ip());
    f.set_dst_ip(*ends.dst.ip());
    f.set_src_port(ends.src.port());
    f.set_dst_port(ends.dst.port());
    f.set_ttl(3);
    f.payload_mut().copy_from_slice(b"pong");
    assert!(verify_checksums(f.into_inner()).is_err());
    let mut f = UdpFrame::new_checked(&mut buf[..]).unwrap();
    f.fill_checksums();
    assert_eq!(f.endpoints(), ends);
    assert_eq!((f.ttl(), f.payload()), (3, &b"pong"[..]));
    assert_eq!(f.ip_options(), [0x94, 0x04, 0x00, 0x00]);
    verify_checksums(&buf).unwrap();
}

/// `bytes` with `patch` applied at `at`.
fn patched(bytes: &[u8], at: usize, patch: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + patch.len()].copy_from_slice(patch);
    v
}

fn err(bytes: &[u8]) -> FrameError {
    UdpFrame::new_checked(bytes).unwrap_err()
}

#[test]
fn every_error() {
    let l = &LINUX_FRAME[..];
    let o = &OPTIONS_FRAME[..];
    assert_eq!(err(&l[..13]), FrameError::Truncated { len: 13, need: 14 });
    assert_eq!(
        err(&patched(l, 12, &[0x86, 0xdd])),
        FrameError::NotIpv4 { ethertype: 0x86dd }
    );
    assert_eq!(
        err(&patched(l, 12, &[0x81, 0x00])),
        FrameError::NotIpv4 { ethertype: 0x8100 }
    );
    assert_eq!(err(&l[..33]), FrameError::Truncated { len: 33, need: 34 });
    assert_eq!(
        err(&patched(l, 14, &[0x65])),
        FrameError::BadVersion { version: 6 }
    );
    assert_eq!(err(&patched(l, 14, &[0x44])), FrameError::BadIhl { ihl: 4 });
    assert_eq!(err(&o[..36]), FrameError::Truncated { len: 36, need: 38 });
    assert_eq!(
        err(&patched(l, 14, &[0x4f])),
        FrameError::Truncated { len: 50, need: 74 }
    );
    assert_eq!(
        err(&patched(l, 23, &[6])),
        FrameError::NotUdp { protocol: 6 }
    );
    assert_eq!(
        err(&patched(l, 20, &[0x20, 0x00])),
        FrameError::Fragment {
            more_fragments: true,
            offset: 0
        }
    );
    assert_eq!(
        err(&patched(l, 20, &[0x40, 0x05])),
        FrameError::Fragment {
            more_fragments: false,
            offset: 5
        }
    );
    assert_eq!(err(&l[..41]), FrameError::Truncated { len: 41, need: 42 });
    assert_eq!(
        err(&patched(l, 16, &[0, 37])),
        FrameError::IpLength {
            total_len: 37,
            header_len: 20,
            available: 36
        }
    );
    assert_eq!(
        err(&patched(l, 16, &[0, 27])),
        FrameError::IpLength {
            total_len: 27,
            header_len: 20,
            available: 36
        }
    );
    // Only the header and UDP header left in the IP length: a shorter
    // total length is fine, the UDP length then lies.
    assert_eq!(
        err(&patched(l, 16, &[0, 28])),
        FrameError::UdpLength {
            udp_len: 16,
            ip_payload: 8
        }
    );
    assert_eq!(
        err(&patched(l, 38, &[0, 17])),
        FrameError::UdpLength {
            udp_len: 17,
            ip_payload: 16
        }
    );
    assert_eq!(
        err(&patched(l, 38, &[0, 7])),
        FrameError::UdpLength {
            udp_len: 7,
            ip_payload: 16
        }
    );
    // A UDP length shorter than the IP payload is accepted (Linux
    // trims to it); the payload follows the UDP length.
    let short = patched(l, 38, &[0, 12]);
    assert_eq!(
        UdpFrame::new_checked(&short[..]).unwrap().payload(),
        b"tile"
    );

    assert_eq!(
        verify_checksums(&patched(l, 24, &[0x09, 0x56])),
        Err(FrameError::IpChecksum {
            stored: 0x0956,
            computed: 0x0955
        })
    );
    assert_eq!(
        verify_checksums(&patched(l, 49, b"E")),
        Err(FrameError::UdpChecksum {
            stored: 0x7935,
            computed: 0x7955
        })
    );
    verify_checksums(&patched(l, 40, &[0, 0])).expect("UDP checksum 0 means none");

    let mut small = [0u8; 49];
    assert_eq!(
        build(&mut small, &linux_ends(), b"tilewire"),
        Err(FrameError::BufferTooSmall { need: 50, have: 49 })
    );
    assert!(small.iter().all(|&b| b == 0));
    let huge = vec![0u8; PAYLOAD_MAX + 1];
    assert_eq!(
        build_vec(&linux_ends(), &huge),
        Err(FrameError::PayloadTooLong {
            len: PAYLOAD_MAX + 1
        })
    );
    let mut junk = *b"not a frame at all";
    assert_eq!(
        swap_endpoints(&mut junk),
        Err(FrameError::NotIpv4 { ethertype: 0x6174 })
    );
    assert_eq!(&junk, b"not a frame at all");
}

#[test]
fn unchecked_accessors_never_panic() {
    for len in 0..=OPTIONS_FRAME.len() {
        let mut bytes = OPTIONS_FRAME[..len].to_vec();
        let mut f = UdpFrame::new_unchecked(&mut bytes[..]);
        let _ = (
            f.endpoints(),
            f.ip_header(),
            f.ip_options(),
            f.udp_segment(),
        );
        let _ = (f.payload(), f.udp_len(), f.udp_checksum(), f.frame_len());
        f.set_dst_port(1);
        f.set_udp_checksum(2);
        f.fill_checksums();
        let _ = f.payload_mut();
    }
    // A lying IHL/UDP length on a short buffer: slices are cut short.
    let f = UdpFrame::new_unchecked(&[0x4fu8; 20][..]);
    assert!(f.payload().is_empty() && f.ip_options().is_empty());
    assert_eq!(ipv4_checksum(&[]), 0xffff);
    assert_eq!(
        udp_checksum(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, &[1]),
        0xfeed
    );
}

#[test]
fn swap_keeps_checksums_and_twice_is_identity() {
    for fixture in [&LINUX_FRAME[..], &OPTIONS_FRAME[..]] {
        let mut buf = fixture.to_vec();
        swap_endpoints(&mut buf).unwrap();
        verify_checksums(&buf).unwrap();
        let before = UdpFrame::new_checked(fixture).unwrap();
        let after = UdpFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(after.endpoints(), before.endpoints().reversed());
        assert_eq!(after.ip_checksum(), before.ip_checksum());
        assert_eq!(after.udp_checksum(), before.udp_checksum());
        assert_eq!(after.payload(), before.payload());
        swap_endpoints(&mut buf).unwrap();
        assert_eq!(buf, fixture);
    }
}

fn ends_strategy() -> impl Strategy<Value = UdpEndpoints> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        any::<(u32, u16)>(),
        any::<(u32, u16)>(),
    )
        .prop_map(|(src_mac, dst_mac, (sa, sp), (da, dp))| UdpEndpoints {
            src_mac,
            dst_mac,
            src: SocketAddrV4::new(sa.into(), sp),
            dst: SocketAddrV4::new(da.into(), dp),
        })
}

proptest! {
    #[test]
    fn build_parse_round_trip(
        ends in ends_strategy(),
        payload in proptest::collection::vec(any::<u8>(), 0..=PAYLOAD_MAX_MTU1500),
    ) {
        let mut buf = [0u8; HEADERS_LEN + PAYLOAD_MAX_MTU1500];
        let len = build(&mut buf, &ends, &payload).unwrap();
        prop_assert_eq!(len, HEADERS_LEN + payload.len());
        let frame = &mut buf[..len];
        let f = UdpFrame::new_checked(&*frame).unwrap();
        prop_assert_eq!(f.endpoints(), ends);
        prop_assert_eq!(f.payload(), &payload[..]);
        prop_assert_eq!((f.ttl(), f.ident(), f.dont_fragment()), (DEFAULT_TTL, 0, true));
        prop_assert_eq!(f.frame_len(), len);
        prop_assert!(f.udp_checksum() != 0);
        verify_checksums(frame).unwrap();
        let original = frame.to_vec();
        swap_endpoints(frame).unwrap();
        verify_checksums(frame).unwrap();
        prop_assert_eq!(UdpFrame::new_checked(&*frame).unwrap().endpoints(), ends.reversed());
        swap_endpoints(frame).unwrap();
        prop_assert_eq!(&frame[..], &original[..]);
    }
}
