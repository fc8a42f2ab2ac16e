//! The frames of `bench xdp` and the check every received packet passes:
//! the flows of both IP families, the payload pattern, the sequence
//! number the blaster stamps into each frame (an IPv6 frame's UDP
//! checksum updated with it), and [`Check`].
//!
//! An IPv4 frame carries no UDP checksum (0, "none", which IPv4 allows),
//! so a stamp is a plain write. IPv6 forbids a zero UDP checksum (the
//! kernel drops such a datagram, and tilewire's XDP program passes it to
//! the stack rather than steer it), so an IPv6 frame is built with its
//! checksum and [`stamp`] updates it for the new sequence number
//! incrementally (RFC 1624, the generator tile's `stamp_pass`): the 8
//! sequence bytes are 4 of the checksum's 16-bit words, so the new sum is
//! the old one less the old words plus the new, a few adds a packet
//! rather than a pass over the payload.

use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use tilewire_aio::netns::VethPair;
use tilewire_pipeline::kinds::generator::stamp_pass;
use tilewire_xdp::frame::{self, Udp6Endpoints, UdpEndpoints, HEADERS_LEN, HEADERS_LEN_IPV6};

use super::axes::Family;
use super::roles::{self, PORT_A, PORT_B, PORT_SRC};

/// The IPv6 EtherType as a frame carries it.
const ETHERTYPE_IPV6: [u8; 2] = frame::ETHERTYPE_IPV6.to_be_bytes();
/// Where an IPv6 frame's UDP checksum is (no extension headers).
const UDP6_CSUM_AT: usize = HEADERS_LEN_IPV6 - 2;
/// [`Check`] verifies the UDP checksum of one received IPv6 packet in
/// this many (the first among them): a stamp that broke it shows at once,
/// at a cost per packet too small to tell the families apart by.
pub(super) const CSUM_EVERY: u64 = 1024;

/// A UDP flow of either family: what [`frame_of`] builds a frame of.
#[derive(Clone, Copy, Debug)]
pub(super) enum Flow {
    V4(UdpEndpoints),
    V6(Udp6Endpoints),
}

impl Flow {
    /// From `src_mac`/`src` ([`PORT_SRC`]) to `dst_mac`/`dst`:`port`; both
    /// addresses of one family.
    fn new(src_mac: [u8; 6], dst_mac: [u8; 6], src: IpAddr, dst: IpAddr, port: u16) -> Flow {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Flow::V4(UdpEndpoints {
                src_mac,
                dst_mac,
                src: SocketAddrV4::new(s, PORT_SRC),
                dst: SocketAddrV4::new(d, port),
            }),
            (IpAddr::V6(s), IpAddr::V6(d)) => Flow::V6(Udp6Endpoints {
                src_mac,
                dst_mac,
                src: SocketAddrV6::new(s, PORT_SRC, 0, 0),
                dst: SocketAddrV6::new(d, port, 0, 0),
            }),
            _ => unreachable!("addresses of one family"),
        }
    }

    /// The same flow from source port `port`.
    pub(super) fn set_src_port(&mut self, port: u16) {
        match self {
            Flow::V4(f) => f.src.set_port(port),
            Flow::V6(f) => f.src.set_port(port),
        }
    }
}

/// The flow of the RX bench in `fam`: `b` to `a`'s [`PORT_A`].
pub(super) fn rx_flow(pair: &VethPair, fam: Family) -> Flow {
    let (a, b) = roles::addrs(pair, fam);
    Flow::new(pair.b().mac(), pair.a().mac(), b, a, PORT_A)
}

/// The flow of the TX bench in `fam`: `a` to `b`'s [`PORT_B`].
pub(super) fn tx_flow(pair: &VethPair, fam: Family) -> Flow {
    let (a, b) = roles::addrs(pair, fam);
    Flow::new(pair.a().mac(), pair.b().mac(), a, b, PORT_B)
}

/// The payload of `sz` bytes: a sequence number in the first 8 (little
/// endian, 0 here), then a pattern that depends on the length, so a
/// shifted or truncated packet shows.
pub(super) fn payload(sz: usize) -> Vec<u8> {
    (0..sz)
        .map(|j| {
            if j < 8 {
                0
            } else {
                (j as u8).wrapping_mul(167).wrapping_add(sz as u8 ^ 0x5a)
            }
        })
        .collect()
}

/// A whole Ethernet frame of `flow` carrying [`payload`]`(sz)`. IPv4: the
/// UDP checksum set to 0 ("none", allowed over IPv4), so a frame whose
/// sequence number was rewritten stays valid for the kernel stack. IPv6:
/// the checksum filled, and kept right by [`stamp`].
pub(super) fn frame_of(flow: &Flow, sz: usize) -> Vec<u8> {
    match flow {
        Flow::V4(flow) => {
            let mut f = frame::build_vec(flow, &payload(sz)).expect("payload fits");
            let udp_csum = frame::ETH_HEADER_LEN + frame::IPV4_HEADER_MIN_LEN + 6;
            f[udp_csum..udp_csum + 2].fill(0);
            f
        }
        Flow::V6(flow) => frame::build_ipv6_vec(flow, &payload(sz)).expect("payload fits"),
    }
}

/// Writes sequence number `seq` into a frame made by [`frame_of`], the
/// payload's first 8 bytes, with the UDP checksum updated to match
/// ([`stamp_pass`]: incrementally, RFC 1624; an IPv4 frame's 0 stays 0,
/// an IPv6 frame's sum never becomes 0).
#[inline]
pub(super) fn stamp(frame: &mut [u8], seq: u64) {
    let at = if frame[12..14] == ETHERTYPE_IPV6 {
        HEADERS_LEN_IPV6
    } else {
        HEADERS_LEN
    };
    let mut old = [0u8; 8];
    old.copy_from_slice(&frame[at..at + 8]);
    // XORing in old ^ seq leaves seq.
    stamp_pass(frame, u64::from_le_bytes(old) ^ seq);
}

/// Whether the IPv6 UDP frame `f` (no extension headers) carries the
/// right UDP checksum, as the kernel's receive path checks it: over the
/// pseudo header and the datagram the payload length gives; a zero
/// checksum is wrong.
pub(super) fn udp6_checksum_ok(f: &[u8]) -> bool {
    let Some(hdr) = f.get(..HEADERS_LEN_IPV6) else {
        return false;
    };
    let addr = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&hdr[at..at + 16]);
        Ipv6Addr::from(o)
    };
    let plen = usize::from(u16::from_be_bytes([hdr[18], hdr[19]]));
    let Some(segment) = f.get(54..54 + plen) else {
        return false;
    };
    let stored = u16::from_be_bytes([hdr[UDP6_CSUM_AT], hdr[UDP6_CSUM_AT + 1]]);
    stored != 0 && frame::udp6_checksum(addr(22), addr(38), segment) == stored
}

/// The check every RX receiver runs on every packet: our flow (IPv4 or
/// IPv6, UDP to [`PORT_A`]), the length, the last 8 payload bytes against
/// the pattern, and the sequence number, which must rise (one flow, one
/// queue: the path keeps order); over IPv6 also the UDP checksum, of one
/// packet in [`CSUM_EVERY`].
pub(super) struct Check {
    sz: usize,
    tail: [u8; 8],
    last: Option<u64>,
    /// Packets of our flow that passed.
    pub pkts: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Packets of our flow with a wrong length, pattern or checksum.
    pub bad: u64,
    /// Packets whose sequence number did not rise.
    pub disorder: u64,
    /// Frames not of our flow (libxdp's program hands xsk-rs everything
    /// on the queue).
    pub foreign: u64,
    /// Highest sequence number seen.
    pub max_seq: Option<u64>,
    /// The source port every packet must come from, if one is set
    /// ([`Check::from_port`]): one blaster per queue, each its own port.
    src: Option<u16>,
    /// Packets of our flow from another source port: steered to the wrong
    /// queue's socket.
    pub misrouted: u64,
}

impl Check {
    pub(super) fn new(sz: usize) -> Check {
        let p = payload(sz);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&p[sz - 8..]);
        Check {
            sz,
            tail,
            last: None,
            pkts: 0,
            bytes: 0,
            bad: 0,
            disorder: 0,
            foreign: 0,
            max_seq: None,
            src: None,
            misrouted: 0,
        }
    }

    /// A check that also wants every packet from source port `port`.
    pub(super) fn from_port(sz: usize, port: u16) -> Check {
        Check {
            src: Some(port),
            ..Check::new(sz)
        }
    }

    /// Checks a whole Ethernet frame of either family.
    #[inline]
    pub(super) fn frame(&mut self, f: &[u8]) {
        let v6 = f.get(12..14) == Some(&ETHERTYPE_IPV6[..]);
        let (ours, src_at, at) = if v6 {
            let ours = f.len() >= HEADERS_LEN_IPV6
                && f[14] >> 4 == 6
                && f[20] == 17
                && f[56..58] == PORT_A.to_be_bytes();
            (ours, 54, HEADERS_LEN_IPV6)
        } else {
            let ours = f.len() >= HEADERS_LEN
                && f[12..14] == [0x08, 0x00]
                && f[14] == 0x45
                && f[23] == 17
                && f[36..38] == PORT_A.to_be_bytes();
            (ours, 34, HEADERS_LEN)
        };
        if !ours {
            self.foreign += 1;
        } else if self
            .src
            .is_some_and(|p| f[src_at..src_at + 2] != p.to_be_bytes())
        {
            self.misrouted += 1;
        } else if v6 && self.pkts.is_multiple_of(CSUM_EVERY) && !udp6_checksum_ok(f) {
            self.bad += 1;
        } else {
            self.payload(&f[at..]);
        }
    }

    /// Checks a UDP payload.
    #[inline]
    pub(super) fn payload(&mut self, p: &[u8]) {
        if p.len() != self.sz || p[self.sz - 8..] != self.tail {
            self.bad += 1;
            return;
        }
        let seq = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
        if self.last.is_some_and(|l| seq <= l) {
            self.disorder += 1;
        }
        self.last = Some(seq);
        self.max_seq = Some(self.max_seq.map_or(seq, |m| m.max(seq)));
        self.pkts += 1;
        self.bytes += p.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow6() -> Flow {
        Flow::new(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            roles::ADDR6_B.into(),
            roles::ADDR6_A.into(),
            PORT_A,
        )
    }

    fn flow4() -> Flow {
        Flow::new(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            "198.18.0.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            PORT_A,
        )
    }

    /// The stored checksum is the one a fresh computation gives, bit for
    /// bit: `udp6_checksum` never answers 0, nor does a stamp.
    fn stored(f: &[u8]) -> u16 {
        u16::from_be_bytes([f[UDP6_CSUM_AT], f[UDP6_CSUM_AT + 1]])
    }

    fn computed(f: &[u8]) -> u16 {
        let addr = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
        frame::udp6_checksum(addr(22), addr(38), &f[54..])
    }

    #[test]
    fn a_stamped_ipv6_frame_keeps_its_checksum_right_and_never_zero() {
        for sz in [64, 1232, frame::PAYLOAD_MAX_IPV6_MTU1500] {
            let mut f = frame_of(&flow6(), sz);
            assert_eq!(f.len(), HEADERS_LEN_IPV6 + sz);
            assert!(udp6_checksum_ok(&f), "{sz} B as built");
            // At 64 B every value of the low word (one of them makes the
            // sum come to 0, which must go out as 0xffff); then big
            // numbers in every word; each stamped over the last.
            let low = if sz == 64 { 0xffff } else { 0xff };
            let seqs = (0..=low)
                .chain([u64::MAX, 1 << 16, 0xffff_0000_ffff, 0x8000_0000_0000_0001])
                .chain((0..1000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            let mut all_ones = 0;
            for seq in seqs {
                stamp(&mut f, seq);
                assert_eq!(
                    &f[HEADERS_LEN_IPV6..HEADERS_LEN_IPV6 + 8],
                    &seq.to_le_bytes()
                );
                assert_ne!(stored(&f), 0, "{sz} B seq {seq:#x}: a zero checksum");
                assert_eq!(stored(&f), computed(&f), "{sz} B seq {seq:#x}");
                assert!(udp6_checksum_ok(&f));
                all_ones += u32::from(stored(&f) == 0xffff);
            }
            if sz == 64 {
                assert!(all_ones > 0, "the sum came to 0 for some sequence number");
            }
        }
    }

    #[test]
    fn a_stamped_ipv4_frame_is_a_plain_write_without_a_checksum() {
        let mut f = frame_of(&flow4(), 64);
        let before = f.clone();
        stamp(&mut f, 0x0102_0304_0506_0708);
        assert_eq!(
            &f[HEADERS_LEN..HEADERS_LEN + 8],
            &0x0102_0304_0506_0708u64.to_le_bytes()
        );
        assert_eq!(&f[40..42], &[0, 0], "no UDP checksum");
        assert_eq!(f[..HEADERS_LEN], before[..HEADERS_LEN]);
        assert_eq!(f[HEADERS_LEN + 8..], before[HEADERS_LEN + 8..]);
    }

    #[test]
    fn the_check_passes_stamped_frames_of_both_families_in_order() {
        for flow in [flow4(), flow6()] {
            let mut f = frame_of(&flow, 1232);
            let mut check = Check::from_port(1232, PORT_SRC);
            for seq in 0..3 * CSUM_EVERY {
                stamp(&mut f, seq);
                check.frame(&f);
            }
            assert_eq!(
                (check.pkts, check.bad, check.disorder, check.foreign),
                (3 * CSUM_EVERY, 0, 0, 0),
                "{flow:?}"
            );
            assert_eq!(check.max_seq, Some(3 * CSUM_EVERY - 1));
            // The mmsg receiver shows the payload alone.
            let mut check = Check::new(1232);
            check.payload(frame::udp_payload(&f).expect("a UDP frame"));
            assert_eq!((check.pkts, check.bad), (1, 0));
        }
    }

    #[test]
    fn a_corrupted_ipv6_frame_fails_the_check() {
        let mut good = frame_of(&flow6(), 64);
        stamp(&mut good, 7);
        // A payload byte the pattern check does not look at: only the
        // checksum shows it.
        let mut f = good.clone();
        f[HEADERS_LEN_IPV6 + 20] ^= 0x40;
        assert!(!udp6_checksum_ok(&f));
        let mut check = Check::new(64);
        check.frame(&f);
        assert_eq!((check.pkts, check.bad), (0, 1), "a wrong checksum");
        // A zero checksum is wrong over IPv6 even on a good datagram.
        let mut f = good.clone();
        f[UDP6_CSUM_AT..UDP6_CSUM_AT + 2].fill(0);
        assert!(!udp6_checksum_ok(&f));
        // A wrong tail, a cut frame, a stamp past the last.
        let mut f = good.clone();
        let n = f.len();
        f[n - 1] ^= 1;
        let mut check = Check::new(64);
        check.frame(&good);
        check.frame(&f);
        check.frame(&good[..good.len() - 1]);
        assert_eq!((check.pkts, check.bad), (1, 2));
        check.frame(&good);
        assert_eq!(check.disorder, 1, "the same sequence number twice");
        // Another port or another source port is not ours.
        let mut f = good.clone();
        f[57] ^= 1;
        let mut check = Check::from_port(64, PORT_SRC + 1);
        check.frame(&f);
        check.frame(&good);
        assert_eq!((check.foreign, check.misrouted, check.pkts), (1, 1, 0));
    }
}
