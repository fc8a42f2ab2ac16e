//! Ethernet / IPv4 / UDP frames: typed views over bytes, and a builder.
//!
//! # What a frame is here
//!
//! An AF_XDP socket moves whole Ethernet frames: the bytes a NIC put on
//! the wire, from the destination MAC to the end of the payload (the FCS
//! is not included). tilewire's traffic is UDP over IPv4, so one view,
//! [`UdpFrame`], covers the three headers at once:
//!
//! ```text
//!  0      6      12   14                     14+ihl*4     +8
//!  | dst  | src  |type| IPv4 header (+ opts) | UDP header | payload | pad
//! ```
//!
//! [`UdpFrame::check_len`] proves, once, that the bytes hold what the
//! headers say: an IPv4 EtherType, version 4, an IHL of at least 5 (IP
//! options are skipped, not parsed), protocol UDP, not a fragment, an IP
//! total length that fits the frame, a UDP length that fits the IP
//! payload. After that no accessor can read past the end; before it (a
//! view made with [`UdpFrame::new_unchecked`]) accessors still never
//! panic: a field past the end reads as zero and a slice is cut short at
//! the end of the buffer. Setters likewise write only inside the buffer.
//!
//! The payload is what the **UDP length** says, not "the rest of the
//! frame": short frames are padded to 60 bytes on the wire, and the
//! padding is not payload. The IP total length may likewise be shorter
//! than what follows the Ethernet header, never longer.
//!
//! Checksums are not part of the length check (a receiver that trusts
//! the kernel need not pay for them); [`verify_checksums`] checks both.
//!
//! # Building and answering
//!
//! [`build`] writes a whole frame from [`UdpEndpoints`] and a payload,
//! with both checksums filled, the way Linux would send it from an
//! unconnected socket (TTL 64, don't-fragment set, identification 0).
//! [`swap_endpoints`] turns a received frame into its reply in place
//! (an echo server's job) without touching a checksum.
//!
//! This module is plain safe Rust over byte slices.

#![deny(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

/// Length of an Ethernet II header: two MACs and the EtherType.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of an IPv4 header without options (IHL 5).
pub const IPV4_HEADER_MIN_LEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Ethernet + IPv4 (no options) + UDP headers: what [`build`] puts before
/// the payload.
pub const HEADERS_LEN: usize = 42;
/// The largest UDP payload in a frame of a 1500-byte MTU (1500 - 20 - 8).
pub const PAYLOAD_MAX_MTU1500: usize = 1472;
/// The largest UDP payload an IPv4 total length (a u16) can describe.
pub const PAYLOAD_MAX: usize = 65535 - IPV4_HEADER_MIN_LEN - UDP_HEADER_LEN;
/// The IPv4 EtherType.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// The IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// The TTL [`build`] writes (Linux's default, `net.ipv4.ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// Byte ranges of the headers. Ethernet and IPv4 positions are from the
/// start of the frame; UDP positions are from the start of the UDP
/// header, which follows the IPv4 header and its options.
mod field {
    use std::ops::Range;

    pub(super) const ETH_DST: Range<usize> = 0..6;
    pub(super) const ETH_SRC: Range<usize> = 6..12;
    pub(super) const ETH_TYPE: usize = 12;

    pub(super) const IP: usize = super::ETH_HEADER_LEN;
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
}

/// Why bytes are not a well-formed Ethernet/IPv4/UDP frame, or why one
/// could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes end before the headers do: `need` bytes are needed to
    /// reach the end of the header being read, the frame has `len`.
    #[error("frame of {len} bytes is too short for its headers ({need} bytes)")]
    Truncated {
        /// The frame's length.
        len: usize,
        /// The length the headers need.
        need: usize,
    },
    /// The EtherType is not IPv4 (0x0800); VLAN-tagged frames land here.
    #[error("ethertype {ethertype:#06x} is not IPv4")]
    NotIpv4 {
        /// The EtherType found.
        ethertype: u16,
    },
    /// The IP version field is not 4.
    #[error("IP version {version}, not 4")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The IHL (header length in 32-bit words) is below 5.
    #[error("IPv4 header length of {ihl} words is below the minimum of 5")]
    BadIhl {
        /// The IHL found.
        ihl: u8,
    },
    /// The IP protocol is not UDP (17).
    #[error("IP protocol {protocol} is not UDP")]
    NotUdp {
        /// The protocol found.
        protocol: u8,
    },
    /// An IP fragment (more-fragments set, or a non-zero offset): only the
    /// first fragment has a UDP header, and no fragment the whole payload.
    #[error("IPv4 fragment (more fragments: {more_fragments}, offset {offset} x 8 bytes)")]
    Fragment {
        /// The more-fragments flag.
        more_fragments: bool,
        /// The fragment offset, in 8-byte units.
        offset: u16,
    },
    /// The IPv4 total length is shorter than the IPv4 header plus a UDP
    /// header, or longer than the bytes after the Ethernet header.
    #[error("IPv4 total length {total_len} does not fit a {header_len}-byte IP header, a UDP header and the {available} bytes present")]
    IpLength {
        /// The IPv4 total length field.
        total_len: u16,
        /// The IPv4 header length (IHL x 4).
        header_len: usize,
        /// The bytes after the Ethernet header.
        available: usize,
    },
    /// The UDP length is below 8 (its own header) or longer than the IP
    /// payload.
    #[error("UDP length {udp_len} is below 8 or beyond the {ip_payload}-byte IP payload")]
    UdpLength {
        /// The UDP length field.
        udp_len: u16,
        /// The IP payload length (total length - header length).
        ip_payload: usize,
    },
    /// [`build`]: the buffer cannot hold the frame.
    #[error("a frame of {need} bytes does not fit a {have}-byte buffer")]
    BufferTooSmall {
        /// The frame's length.
        need: usize,
        /// The buffer's length.
        have: usize,
    },
    /// [`build`]: the payload is longer than [`PAYLOAD_MAX`].
    #[error("a UDP payload of {len} bytes exceeds the IPv4 maximum of {PAYLOAD_MAX}")]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
    },
    /// [`verify_checksums`]: the IPv4 header checksum is wrong.
    #[error("IPv4 header checksum {stored:#06x}, should be {computed:#06x}")]
    IpChecksum {
        /// The checksum in the header.
        stored: u16,
        /// The checksum the header needs.
        computed: u16,
    },
    /// [`verify_checksums`]: the UDP checksum is wrong (a stored 0, "no
    /// checksum", is accepted).
    #[error("UDP checksum {stored:#06x}, should be {computed:#06x}")]
    UdpChecksum {
        /// The checksum in the header.
        stored: u16,
        /// The checksum the datagram needs.
        computed: u16,
    },
}

/// Both ends of a UDP flow as a frame carries them: MACs, IPv4 addresses
/// and ports. What [`build`] writes and [`UdpFrame::endpoints`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpEndpoints {
    /// The sender's MAC address.
    pub src_mac: [u8; 6],
    /// The receiver's MAC address (the next hop's, in general).
    pub dst_mac: [u8; 6],
    /// The sender's address and port.
    pub src: SocketAddrV4,
    /// The receiver's address and port.
    pub dst: SocketAddrV4,
}

impl UdpEndpoints {
    /// The same flow seen from the other end: source and destination
    /// swapped, as in a reply.
    pub fn reversed(&self) -> UdpEndpoints {
        UdpEndpoints {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            src: self.dst,
            dst: self.src,
        }
    }
}

/// A typed view of an Ethernet/IPv4/UDP frame over any byte buffer. See
/// the [module documentation](self) for what is checked and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpFrame<T> {
    /// A view over `buffer` without any check. Accessors never panic on
    /// it, but read zeros and short slices where the bytes run out.
    pub fn new_unchecked(buffer: T) -> UdpFrame<T> {
        UdpFrame { buffer }
    }

    /// A view over `buffer` that passed [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// As [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<UdpFrame<T>, FrameError> {
        let frame = UdpFrame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds an IPv4 UDP frame whose lengths agree
    /// with each other and with the buffer, in this order:
    ///
    /// # Errors
    /// - [`FrameError::Truncated`] when the buffer ends inside the
    ///   Ethernet header, the first 20 bytes of the IPv4 header, the IPv4
    ///   options or the UDP header;
    /// - [`FrameError::NotIpv4`], [`FrameError::BadVersion`],
    ///   [`FrameError::BadIhl`], [`FrameError::NotUdp`],
    ///   [`FrameError::Fragment`] for a header field that rules the frame
    ///   out (checked as soon as the field's bytes are known present);
    /// - [`FrameError::IpLength`] then [`FrameError::UdpLength`] for
    ///   lengths that lie.
    pub fn check_len(&self) -> Result<(), FrameError> {
        let len = self.buffer.as_ref().len();
        let need = |need: usize| {
            if len < need {
                Err(FrameError::Truncated { len, need })
            } else {
                Ok(())
            }
        };
        need(ETH_HEADER_LEN)?;
        if self.ethertype() != ETHERTYPE_IPV4 {
            return Err(FrameError::NotIpv4 {
                ethertype: self.ethertype(),
            });
        }
        need(ETH_HEADER_LEN + IPV4_HEADER_MIN_LEN)?;
        if self.version() != 4 {
            return Err(FrameError::BadVersion {
                version: self.version(),
            });
        }
        if self.ihl() < 5 {
            return Err(FrameError::BadIhl { ihl: self.ihl() });
        }
        let header_len = self.ip_header_len();
        need(ETH_HEADER_LEN + header_len)?;
        if self.protocol() != IPPROTO_UDP {
            return Err(FrameError::NotUdp {
                protocol: self.protocol(),
            });
        }
        if self.more_fragments() || self.frag_offset() != 0 {
            return Err(FrameError::Fragment {
                more_fragments: self.more_fragments(),
                offset: self.frag_offset(),
            });
        }
        need(ETH_HEADER_LEN + header_len + UDP_HEADER_LEN)?;
        let total_len = self.total_len();
        let available = len - ETH_HEADER_LEN;
        let total = usize::from(total_len);
        if total < header_len + UDP_HEADER_LEN || total > available {
            return Err(FrameError::IpLength {
                total_len,
                header_len,
                available,
            });
        }
        let ip_payload = total - header_len;
        let udp_len = self.udp_len();
        if usize::from(udp_len) < UDP_HEADER_LEN || usize::from(udp_len) > ip_payload {
            return Err(FrameError::UdpLength {
                udp_len,
                ip_payload,
            });
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `N` bytes at `at`, zeros where the buffer ends first.
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(b) = self.buffer.as_ref().get(at..at + N) {
            out.copy_from_slice(b);
        }
        out
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes(self.bytes(at))
    }

    /// `range` of the buffer, cut short where the buffer ends.
    fn clipped(&self, start: usize, end: usize) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = end.min(buf.len());
        buf.get(start..end).unwrap_or(&[])
    }

    /// The destination MAC address.
    pub fn dst_mac(&self) -> [u8; 6] {
        self.bytes(field::ETH_DST.start)
    }

    /// The source MAC address.
    pub fn src_mac(&self) -> [u8; 6] {
        self.bytes(field::ETH_SRC.start)
    }

    /// The EtherType.
    pub fn ethertype(&self) -> u16 {
        self.u16_at(field::ETH_TYPE)
    }

    /// The IP version field (4 once checked).
    pub fn version(&self) -> u8 {
        self.bytes::<1>(field::IP_VER_IHL)[0] >> 4
    }

    /// The IPv4 header length in 32-bit words (5 without options, up to 15).
    pub fn ihl(&self) -> u8 {
        self.bytes::<1>(field::IP_VER_IHL)[0] & 0x0f
    }

    /// The IPv4 header length in bytes, options included (IHL x 4).
    pub fn ip_header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The IPv4 total length: IP header, UDP header and payload.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::IP_TOT_LEN)
    }

    /// The IPv4 identification field.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IP_IDENT)
    }

    /// The don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        self.u16_at(field::IP_FLAGS_FRAG) & field::IP_DF != 0
    }

    /// The more-fragments flag (false once checked).
    pub fn more_fragments(&self) -> bool {
        self.u16_at(field::IP_FLAGS_FRAG) & field::IP_MF != 0
    }

    /// The fragment offset in 8-byte units (0 once checked).
    pub fn frag_offset(&self) -> u16 {
        self.u16_at(field::IP_FLAGS_FRAG) & field::IP_OFFSET
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.bytes::<1>(field::IP_TTL)[0]
    }

    /// The IP protocol (17, UDP, once checked).
    pub fn protocol(&self) -> u8 {
        self.bytes::<1>(field::IP_PROTO)[0]
    }

    /// The IPv4 header checksum as stored.
    pub fn ip_checksum(&self) -> u16 {
        self.u16_at(field::IP_CHECKSUM)
    }

    /// The source IPv4 address.
    pub fn src_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bytes::<4>(field::IP_SRC))
    }

    /// The destination IPv4 address.
    pub fn dst_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bytes::<4>(field::IP_DST))
    }

    /// The whole IPv4 header, options included.
    pub fn ip_header(&self) -> &[u8] {
        self.clipped(field::IP, field::IP + self.ip_header_len())
    }

    /// The IPv4 options (empty for IHL 5); skipped, not interpreted.
    pub fn ip_options(&self) -> &[u8] {
        let start = field::IP + IPV4_HEADER_MIN_LEN;
        self.clipped(start, (field::IP + self.ip_header_len()).max(start))
    }

    /// Where the UDP header starts in the frame: 14 + IHL x 4.
    pub fn udp_offset(&self) -> usize {
        ETH_HEADER_LEN + self.ip_header_len()
    }

    /// The UDP source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(self.udp_offset() + field::UDP_SRC_PORT)
    }

    /// The UDP destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(self.udp_offset() + field::UDP_DST_PORT)
    }

    /// The UDP length field: UDP header plus payload.
    pub fn udp_len(&self) -> u16 {
        self.u16_at(self.udp_offset() + field::UDP_LEN)
    }

    /// The UDP checksum as stored (0 = none was computed).
    pub fn udp_checksum(&self) -> u16 {
        self.u16_at(self.udp_offset() + field::UDP_CHECKSUM)
    }

    /// The source address and port.
    pub fn src(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.src_ip(), self.src_port())
    }

    /// The destination address and port.
    pub fn dst(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.dst_ip(), self.dst_port())
    }

    /// Both ends of the flow.
    pub fn endpoints(&self) -> UdpEndpoints {
        UdpEndpoints {
            src_mac: self.src_mac(),
            dst_mac: self.dst_mac(),
            src: self.src(),
            dst: self.dst(),
        }
    }

    /// The UDP header and payload, by the UDP length: what the UDP
    /// checksum covers (after the pseudo header).
    pub fn udp_segment(&self) -> &[u8] {
        let start = self.udp_offset();
        self.clipped(start, start + usize::from(self.udp_len()))
    }

    /// The UDP payload, by the UDP length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        let start = self.udp_offset() + UDP_HEADER_LEN;
        let end = self.udp_offset() + usize::from(self.udp_len());
        self.clipped(start, end.max(start))
    }

    /// The frame's length by its IP total length: the buffer without any
    /// Ethernet padding (what a reply needs to send back).
    pub fn frame_len(&self) -> usize {
        ETH_HEADER_LEN + usize::from(self.total_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpFrame<T> {
    /// Writes `bytes` at `at` if they fit inside the buffer; nothing
    /// otherwise (only possible on an unchecked view).
    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.buffer.as_mut().get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Sets the destination MAC address.
    pub fn set_dst_mac(&mut self, mac: [u8; 6]) {
        self.put(field::ETH_DST.start, &mac);
    }

    /// Sets the source MAC address.
    pub fn set_src_mac(&mut self, mac: [u8; 6]) {
        self.put(field::ETH_SRC.start, &mac);
    }

    /// Sets the IPv4 identification field (the IP checksum is not updated).
    pub fn set_ident(&mut self, ident: u16) {
        self.put(field::IP_IDENT, &ident.to_be_bytes());
    }

    /// Sets the TTL (the IP checksum is not updated).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.put(field::IP_TTL, &[ttl]);
    }

    /// Sets the source IPv4 address (no checksum is updated).
    pub fn set_src_ip(&mut self, addr: Ipv4Addr) {
        self.put(field::IP_SRC, &addr.octets());
    }

    /// Sets the destination IPv4 address (no checksum is updated).
    pub fn set_dst_ip(&mut self, addr: Ipv4Addr) {
        self.put(field::IP_DST, &addr.octets());
    }

    /// Sets the UDP source port (the UDP checksum is not updated).
    pub fn set_src_port(&mut self, port: u16) {
        let at = self.udp_offset() + field::UDP_SRC_PORT;
        self.put(at, &port.to_be_bytes());
    }

    /// Sets the UDP destination port (the UDP checksum is not updated).
    pub fn set_dst_port(&mut self, port: u16) {
        let at = self.udp_offset() + field::UDP_DST_PORT;
        self.put(at, &port.to_be_bytes());
    }

    /// Stores `checksum` as the IPv4 header checksum.
    pub fn set_ip_checksum(&mut self, checksum: u16) {
        self.put(field::IP_CHECKSUM, &checksum.to_be_bytes());
    }

    /// Stores `checksum` as the UDP checksum.
    pub fn set_udp_checksum(&mut self, checksum: u16) {
        let at = self.udp_offset() + field::UDP_CHECKSUM;
        self.put(at, &checksum.to_be_bytes());
    }

    /// Sets both MACs, both addresses and both ports to `ends`. The
    /// checksums are left as they were: swapping the two ends keeps them
    /// right, anything else needs [`UdpFrame::fill_checksums`].
    pub fn set_endpoints(&mut self, ends: &UdpEndpoints) {
        self.set_src_mac(ends.src_mac);
        self.set_dst_mac(ends.dst_mac);
        self.set_src_ip(*ends.src.ip());
        self.set_dst_ip(*ends.dst.ip());
        self.set_src_port(ends.src.port());
        self.set_dst_port(ends.dst.port());
    }

    /// Recomputes and stores both checksums, after field changes.
    pub fn fill_checksums(&mut self) {
        let ip = ipv4_checksum(self.ip_header());
        self.set_ip_checksum(ip);
        let udp = udp_checksum(self.src_ip(), self.dst_ip(), self.udp_segment());
        self.set_udp_checksum(udp);
    }

    /// The UDP payload, writable (the UDP checksum is not updated).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.udp_offset() + UDP_HEADER_LEN;
        let end = self.udp_offset() + usize::from(self.udp_len());
        let buf = self.buffer.as_mut();
        let end = end.max(start).min(buf.len());
        buf.get_mut(start..end).unwrap_or(&mut [])
    }
}

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

/// Checks `frame` as [`UdpFrame::check_len`] does, then both checksums.
///
/// # Errors
/// Any error of [`UdpFrame::check_len`]; [`FrameError::IpChecksum`];
/// [`FrameError::UdpChecksum`] unless the stored UDP checksum is 0 ("none").
pub fn verify_checksums(frame: &[u8]) -> Result<(), FrameError> {
    let view = UdpFrame::new_checked(frame)?;
    let (stored, computed) = (view.ip_checksum(), ipv4_checksum(view.ip_header()));
    if stored != computed {
        return Err(FrameError::IpChecksum { stored, computed });
    }
    let stored = view.udp_checksum();
    let computed = udp_checksum(view.src_ip(), view.dst_ip(), view.udp_segment());
    if stored != 0 && stored != computed {
        return Err(FrameError::UdpChecksum { stored, computed });
    }
    Ok(())
}

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

/// Turns a received frame into its reply, in place: MAC addresses, IPv4
/// addresses and UDP ports swapped; everything else (payload, TTL,
/// options, padding) left as it is.
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
/// As [`UdpFrame::check_len`]; the frame is not touched then.
pub fn swap_endpoints(frame: &mut [u8]) -> Result<(), FrameError> {
    let mut view = UdpFrame::new_checked(frame)?;
    let ends = view.endpoints().reversed();
    view.set_endpoints(&ends);
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
