//! [`UdpFrame`]: the typed view, its length check and its accessors, and
//! [`verify_checksums`], the check of a received frame.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::checksum::{ipv4_checksum, udp_checksum};
use super::endpoints::UdpEndpoints;
use super::error::FrameError;
use super::field;
use super::layout::{
    ETHERTYPE_IPV4, ETH_HEADER_LEN, IPPROTO_UDP, IPV4_HEADER_MIN_LEN, UDP_HEADER_LEN,
};

/// A typed view of an Ethernet/IPv4/UDP frame over any byte buffer. See
/// the [module documentation](super) for what is checked and when.
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
