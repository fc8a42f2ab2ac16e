//! Ethernet frames for the XDP program tests: an IPv4 UDP frame whose every
//! header field can be set (including to lies), and a few frames of other
//! protocols the program must leave to the kernel stack.

#![allow(dead_code)] // each test binary uses a different part

use std::net::Ipv4Addr;

/// Source MAC of every frame (locally administered).
pub(crate) const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
/// Destination MAC of every frame.
pub(crate) const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
/// Default source address.
pub(crate) const SRC_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Default destination address (top bit set, so a 32-bit compare done as
/// a sign-extended 64-bit one would fail on it).
pub(crate) const DST_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Ethernet header: the two MACs and `ethertype`.
fn ethernet(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// The ones'-complement checksum of an IPv4 header.
fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 UDP frame, every field settable. [`Udp4::new`] gives a valid
/// one; the `Option` fields, left `None`, are computed from the others.
#[derive(Debug, Clone)]
pub(crate) struct Udp4 {
    /// An 802.1Q tag (its VLAN id) before the IPv4 ethertype.
    pub vlan: Option<u16>,
    /// The IP version nibble (4).
    pub version: u8,
    /// The header length in 32-bit words (5; 6 to 15 add option bytes).
    pub ihl: u8,
    /// The flags + fragment offset field, host order (0x4000 = DF).
    pub frag: u16,
    /// The IP protocol (17).
    pub proto: u8,
    /// Addresses.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// UDP ports.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Bytes of payload.
    pub payload_len: usize,
    /// The IP total length to write; `None` for the true one.
    pub tot_len: Option<u16>,
    /// The UDP length to write; `None` for the true one.
    pub udp_len: Option<u16>,
    /// Zero bytes after the IP packet (Ethernet padding).
    pub trailer: usize,
}

impl Udp4 {
    /// A valid frame to `dst_port` with a 32-byte payload.
    pub(crate) fn new(dst_port: u16) -> Udp4 {
        Udp4 {
            vlan: None,
            version: 4,
            ihl: 5,
            frag: 0x4000,
            proto: 17,
            src: SRC_ADDR,
            dst: DST_ADDR,
            src_port: 40000,
            dst_port,
            payload_len: 32,
            tot_len: None,
            udp_len: None,
            trailer: 0,
        }
    }

    /// Bytes before the payload: Ethernet, IP with options, UDP.
    pub(crate) fn header_len(&self) -> usize {
        14 + if self.vlan.is_some() { 4 } else { 0 } + usize::from(self.ihl) * 4 + 8
    }

    /// The frame's bytes.
    pub(crate) fn build(&self) -> Vec<u8> {
        let mut f = match self.vlan {
            Some(id) => {
                let mut f = ethernet(0x8100);
                f.extend_from_slice(&(id & 0x0fff).to_be_bytes());
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                f
            }
            None => ethernet(0x0800),
        };
        let ip_hlen = usize::from(self.ihl) * 4;
        let true_udp_len = 8 + self.payload_len;
        let tot_len = self.tot_len.unwrap_or((ip_hlen + true_udp_len) as u16);
        let ip_start = f.len();
        f.push((self.version << 4) | (self.ihl & 0x0f));
        f.push(0);
        f.extend_from_slice(&tot_len.to_be_bytes());
        f.extend_from_slice(&0x1234u16.to_be_bytes());
        f.extend_from_slice(&self.frag.to_be_bytes());
        f.push(64);
        f.push(self.proto);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        // Options: NOPs, then an end-of-options byte if there is room.
        let opts = ip_hlen.saturating_sub(20);
        f.extend(std::iter::repeat_n(1u8, opts.saturating_sub(1)));
        if opts > 0 {
            f.push(0);
        }
        let sum = ip_checksum(&f[ip_start..]);
        f[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        let udp_len = self.udp_len.unwrap_or(true_udp_len as u16);
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]); // no checksum, allowed over IPv4
        f.extend((0..self.payload_len).map(|i| i as u8));
        f.extend(std::iter::repeat_n(0u8, self.trailer));
        f
    }
}

/// An IPv4 TCP SYN to `dst_port`.
pub(crate) fn tcp4(dst_port: u16) -> Vec<u8> {
    let mut frame = Udp4::new(0);
    frame.proto = 6;
    frame.payload_len = 12; // 8 + 12 = a 20-byte TCP header
    let mut f = frame.build();
    let l4 = 14 + 20;
    f[l4 + 2..l4 + 4].copy_from_slice(&dst_port.to_be_bytes());
    f[l4 + 4..l4 + 8].copy_from_slice(&1u32.to_be_bytes()); // sequence
    f[l4 + 12] = 5 << 4; // data offset
    f[l4 + 13] = 0x02; // SYN
    f
}

/// An ICMP echo request, shaped so that bytes 2-3 of its header (the
/// checksum) read as `fake_port`, where a UDP destination port would be.
pub(crate) fn icmp4_echo(fake_port: u16) -> Vec<u8> {
    let mut frame = Udp4::new(fake_port);
    frame.proto = 1;
    let mut f = frame.build();
    f[34] = 8; // echo request
    f[35] = 0;
    f
}

/// An ARP request for [`DST_ADDR`].
pub(crate) fn arp_request() -> Vec<u8> {
    let mut f = ethernet(0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&SRC_ADDR.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&DST_ADDR.octets());
    f.resize(60, 0);
    f
}

/// An IPv6 UDP datagram to `dst_port` with a zero UDP checksum (which
/// IPv6 forbids).
pub(crate) fn udp6(dst_port: u16) -> Vec<u8> {
    Udp6::new(dst_port).with_checksum(0).build()
}

/// An IPv6 UDP frame, every field settable. [`Udp6::new`] gives a valid
/// one (a non-zero UDP checksum; the program does not verify it).
#[derive(Debug, Clone)]
pub(crate) struct Udp6 {
    pub(crate) version: u8,
    pub(crate) next: u8,
    pub(crate) dst_port: u16,
    pub(crate) payload_len: usize,
    /// The IPv6 payload length field; `None` for the true one.
    pub(crate) plen: Option<u16>,
    /// The UDP length field; `None` for the true one.
    pub(crate) udp_len: Option<u16>,
    pub(crate) checksum: u16,
    /// Bytes after the datagram (within the frame).
    pub(crate) trailer: usize,
}

impl Udp6 {
    pub(crate) fn new(dst_port: u16) -> Udp6 {
        Udp6 {
            version: 6,
            next: 17,
            dst_port,
            payload_len: 32,
            plen: None,
            udp_len: None,
            checksum: 0x1234,
            trailer: 0,
        }
    }

    pub(crate) fn with_checksum(mut self, c: u16) -> Udp6 {
        self.checksum = c;
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let udp_len = (8 + self.payload_len) as u16;
        let mut f = ethernet(0x86dd);
        f.extend_from_slice(&[self.version << 4, 0, 0, 0]);
        f.extend_from_slice(&self.plen.unwrap_or(udp_len).to_be_bytes());
        f.push(self.next);
        f.push(64);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&self.udp_len.unwrap_or(udp_len).to_be_bytes());
        f.extend_from_slice(&self.checksum.to_be_bytes());
        f.extend((0..self.payload_len).map(|i| i as u8));
        f.extend(std::iter::repeat_n(0u8, self.trailer));
        f
    }
}

/// IPv6 frames near the edges of the rules, as [`edge_frames`] for IPv4.
pub(crate) fn edge_frames6(ports: &[u16]) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let fields = (
        prop_oneof![8 => Just(6u8), 1 => 0u8..16],
        prop_oneof![8 => Just(17u8), 1 => Just(0u8), 1 => Just(44u8), 1 => any::<u8>()],
        prop_oneof![3 => proptest::sample::select(ports.to_vec()), 1 => any::<u16>()],
        0usize..80,
        proptest::option::weighted(0.2, any::<u16>().prop_map(|v| v % 200)),
        proptest::option::weighted(0.2, any::<u16>().prop_map(|v| v % 200)),
        prop_oneof![6 => Just(0x1234u16), 1 => Just(0u16)],
        prop_oneof![3 => Just(0usize), 1 => 0usize..30],
    );
    let edits = proptest::option::weighted(0.2, any::<prop::sample::Index>());
    (fields, edits).prop_map(|(f, cut)| {
        let (version, next, dst_port, payload_len, plen, udp_len, checksum, trailer) = f;
        let udp = Udp6 {
            version,
            next,
            dst_port,
            payload_len,
            plen,
            udp_len,
            checksum,
            trailer,
        };
        let mut frame = udp.build();
        if let Some(cut) = cut {
            let len = ETH_HLEN + cut.index(frame.len() - ETH_HLEN + 1);
            frame.truncate(len);
        }
        frame
    })
}

/// An Ethernet header's length: the shortest frame a test run accepts.
pub(crate) const ETH_HLEN: usize = 14;

/// IPv4 frames near the edges of the XDP program's rules: every header
/// field drawn from a few telling values (the destination port mostly from
/// `ports`), then maybe truncated (never below 14 bytes) and maybe one
/// header byte changed.
pub(crate) fn edge_frames(ports: &[u16]) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let fields = (
        prop_oneof![8 => Just(4u8), 1 => 0u8..16],
        prop_oneof![4 => Just(5u8), 4 => 5u8..16, 1 => 0u8..5],
        prop_oneof![4 => Just(0u16), 2 => Just(0x4000u16), 1 => Just(0x2000u16), 1 => any::<u16>()],
        prop_oneof![8 => Just(17u8), 1 => any::<u8>()],
        prop_oneof![Just(DST_ADDR), Just(Ipv4Addr::new(198, 18, 0, 9))],
        prop_oneof![3 => proptest::sample::select(ports.to_vec()), 1 => any::<u16>()],
        0usize..80,
        proptest::option::weighted(0.2, any::<u16>().prop_map(|v| v % 200)),
        proptest::option::weighted(0.2, any::<u16>().prop_map(|v| v % 200)),
        prop_oneof![3 => Just(0usize), 1 => 0usize..30],
    );
    let edits = (
        proptest::option::weighted(0.2, any::<prop::sample::Index>()),
        proptest::option::weighted(0.2, (any::<prop::sample::Index>(), any::<u8>())),
    );
    (fields, edits).prop_map(|(f, (cut, poke))| {
        let (version, ihl, frag, proto, dst, dst_port, payload_len, tot_len, udp_len, trailer) = f;
        let mut udp = Udp4::new(dst_port);
        (udp.version, udp.ihl, udp.frag, udp.proto, udp.dst) = (version, ihl, frag, proto, dst);
        (udp.payload_len, udp.tot_len, udp.udp_len, udp.trailer) =
            (payload_len, tot_len, udp_len, trailer);
        let mut frame = udp.build();
        if let Some(cut) = cut {
            let len = ETH_HLEN + cut.index(frame.len() - ETH_HLEN + 1);
            frame.truncate(len);
        }
        if let Some((at, byte)) = poke {
            let at = at.index(frame.len().min(14 + 60 + 8));
            frame[at] = byte;
        }
        frame
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp4_layout() {
        let f = Udp4::new(8001).build();
        assert_eq!(f.len(), 14 + 20 + 8 + 32);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14], 0x45);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 60);
        assert_eq!(ip_checksum(&f[14..34]), 0, "checksum verifies");
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 8001);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 40);
        let mut opts = Udp4::new(8001);
        opts.ihl = 15;
        let f = opts.build();
        assert_eq!(f.len(), 14 + 60 + 8 + 32);
        assert_eq!(ip_checksum(&f[14..74]), 0);
        assert_eq!(u16::from_be_bytes([f[76], f[77]]), 8001);
    }
}
