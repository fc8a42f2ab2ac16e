//! The verify tile: reads every byte of every payload, then passes the
//! packet on.
//!
//! # What it does
//!
//! [`Verify`] stands where a validator checks what it received (a
//! signature check over each transaction): it reads input 0, computes
//! [`payload_digest`] over the whole UDP payload of each frame (the whole
//! frame when it is not IPv4 UDP), and publishes the packet on output 0
//! with its signature and `tsorig`. The digest is a real hash of every
//! byte (xxh3-64), so the tile's cost grows with the payload as a
//! verifier's does, and a benchmark that runs the same function in
//! another pipeline does the same work there. The wrapping sum of the
//! digests is kept as the `digest` counter: the work cannot be optimised
//! away, and two pipelines that verified the same packets show the same
//! sum, whatever the order.
//!
//! With the parameter `dst`, every IPv4 UDP frame is readdressed before
//! it goes on (with `src`, `dst_mac` and `src_mac`, its source and MACs
//! too, for a net-xdp tile that sends it as it is): its destination IPv4
//! address and UDP port become `dst`
//! (the next hop, as a retransmit stage would choose it), the IPv4
//! header checksum is recomputed and the UDP checksum set to 0 ("none",
//! allowed over IPv4), so that a net tile downstream sends it there.
//! Rewriting the UDP checksum in full would be a second pass over the
//! payload.
//!
//! A packet that starts `origin` bytes into its frag (an AF_XDP receive
//! link, see [`crate::kinds::net_xdp`]) is hashed from its origin.
//!
//! # Zero copy
//!
//! The tile reads settled ([`Reading::Settled`]) and hashes each packet
//! where it lies; without `dst` it passes it on unchanged (origin
//! included) with [`Outputs::forward`], by chunk on reliable links: no
//! byte copied. With `dst` it rewrites a copy of the headers alone and
//! publishes them and the rest of the packet from its origin, with origin
//! 0 ([`Outputs::publish_parts`]): the packet is copied once, straight
//! into the output's dcache.
//!
//! # What it counts
//!
//! - `verified`: packets hashed and published;
//! - `bytes`: the bytes hashed;
//! - `not_udp`: packets that are not IPv4 UDP frames, hashed whole (also
//!   in `verified`; never readdressed);
//! - `digest`: the wrapping sum of [`payload_digest`] over what was
//!   verified.
//!
//! An empty frag (or an origin beyond its size) carries no packet: it is
//! dropped and counted in [`Verify::bad_frags`]. A packet longer than
//! output 0's mtu cannot be published: dropped, counted in
//! [`Verify::too_long`]. The tile never panics on what a frag holds.

use std::net::SocketAddrV4;

use serde::Deserialize;
use tilewire_aio::frame::{ipv4_checksum, UdpFrame, ETH_HEADER_LEN, UDP_HEADER_LEN};
use xxhash_rust::xxh3::xxh3_64;

use tilewire_tile::stem::{Frag, Outputs, Reading, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, TileKind};

/// The hash the verify tile computes over each payload: xxh3-64 of every
/// byte. A peer pipeline that wants to do the same work calls this.
pub fn payload_digest(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

/// What a verify tile counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Packets hashed and published.
    pub verified: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Packets that were not IPv4 UDP (hashed whole).
    pub not_udp: u64,
    /// Wrapping sum of the digests of the packets verified.
    pub digest: u64,
    /// Frags holding no packet, dropped.
    pub bad_frags: u64,
    /// Packets longer than output 0's mtu, dropped.
    pub too_long: u64,
}

/// Hashes each payload and passes the packet on (see the [module
/// docs](self)).
#[derive(Debug)]
pub struct Verify {
    to: Option<Readdress>,
    stats: VerifyStats,
}

impl Verify {
    /// A verify tile; `dst`, if given, readdresses every IPv4 UDP frame
    /// there.
    pub fn new(dst: Option<SocketAddrV4>) -> Verify {
        Verify::readdressing(dst.map(Readdress::to))
    }

    /// A verify tile that readdresses every IPv4 UDP frame as `to` says,
    /// if given.
    pub fn readdressing(to: Option<Readdress>) -> Verify {
        Verify {
            to,
            stats: VerifyStats::default(),
        }
    }

    /// What the tile counted so far.
    pub fn stats(&self) -> VerifyStats {
        self.stats
    }

    /// Frags dropped for holding no packet.
    pub fn bad_frags(&self) -> u64 {
        self.stats.bad_frags
    }

    /// Packets dropped for being longer than output 0's mtu.
    pub fn too_long(&self) -> u64 {
        self.stats.too_long
    }
}

/// The longest Ethernet, IPv4 (with options) and UDP headers.
const HEADERS_MAX: usize = ETH_HEADER_LEN + 60 + UDP_HEADER_LEN;

/// Readdresses an IPv4 UDP frame as `to` says (see the module docs): only
/// its headers are read and written.
fn readdress(frame: &mut UdpFrame<&mut [u8]>, to: &Readdress) {
    frame.set_dst_ip(*to.dst.ip());
    frame.set_dst_port(to.dst.port());
    if let Some(src) = to.src {
        frame.set_src_ip(*src.ip());
        frame.set_src_port(src.port());
    }
    if let Some(mac) = to.dst_mac {
        frame.set_dst_mac(mac);
    }
    if let Some(mac) = to.src_mac {
        frame.set_src_mac(mac);
    }
    frame.set_udp_checksum(0);
    let sum = ipv4_checksum(frame.ip_header());
    frame.set_ip_checksum(sum);
}

impl Tile for Verify {
    fn kind(&self) -> &str {
        "verify"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["verified", "bytes", "not_udp", "digest"]
    }

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        let meta = frag.meta();
        let packet = frag.packet();
        if usize::from(meta.origin()) > frag.payload().len() || packet.is_empty() {
            self.stats.bad_frags += 1;
            return;
        }
        let frame = UdpFrame::new_checked(packet);
        let (digest, hashed) = match &frame {
            Ok(frame) => (payload_digest(frame.payload()), frame.payload().len()),
            Err(_) => {
                self.stats.not_udp += 1;
                (payload_digest(packet), packet.len())
            }
        };
        let sent = match (&self.to, frame) {
            // Readdressed: its headers rewritten in a copy of their own,
            // then headers and payload copied once, straight into the
            // output's dcache.
            (Some(to), Ok(frame)) => {
                let end = frame.udp_offset() + UDP_HEADER_LEN;
                let mut headers = [0u8; HEADERS_MAX];
                headers[..end].copy_from_slice(&packet[..end]);
                readdress(&mut UdpFrame::new_unchecked(&mut headers[..end]), to);
                out.publish_parts(
                    0,
                    &[&headers[..end], &packet[end..]],
                    meta.sig,
                    meta.ctl,
                    meta.tsorig,
                )
            }
            // Passed on as it came: by chunk, no byte copied (a frame that
            // is not IPv4 UDP is not readdressed).
            _ => out.forward(0, frag),
        };
        match sent {
            Ok(_) => {
                self.stats.verified += 1;
                self.stats.bytes += hashed as u64;
                self.stats.digest = self.stats.digest.wrapping_add(digest);
            }
            // Backpressure cannot happen (one publish per frag with a burst
            // of credits); count it with the packets that did not fit.
            Err(_) => self.stats.too_long += 1,
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in counters
            .iter_mut()
            .zip([s.verified, s.bytes, s.not_udp, s.digest])
        {
            *c = v;
        }
    }
}

/// The `verify` kind: exactly 1 input and 1 output; hashes every payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyKind;

/// Parameters of a `verify` tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// Readdress every IPv4 UDP frame to this `"ip:port"` (default: leave
    /// the addresses alone).
    #[serde(default, deserialize_with = "crate::params::opt_endpoint")]
    pub dst: Option<SocketAddrV4>,
    /// With `dst`: its source becomes this `"ip:port"` too (default: the
    /// source it came with).
    #[serde(default, deserialize_with = "crate::params::opt_endpoint")]
    pub src: Option<SocketAddrV4>,
    /// With `dst`: its Ethernet destination becomes this MAC, the next
    /// hop's (default: the MACs are left alone; a net-udp tile sending it
    /// ignores them, a net-xdp tile sends the frame as it is).
    #[serde(default, deserialize_with = "crate::params::opt_mac")]
    pub dst_mac: Option<[u8; 6]>,
    /// With `dst`: its Ethernet source becomes this MAC, the sending
    /// interface's.
    #[serde(default, deserialize_with = "crate::params::opt_mac")]
    pub src_mac: Option<[u8; 6]>,
}

/// Where [`Verify`] readdresses frames to (see [`VerifyParams`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readdress {
    /// The new destination.
    pub dst: SocketAddrV4,
    /// The new source, if it changes.
    pub src: Option<SocketAddrV4>,
    /// The new Ethernet destination, if it changes.
    pub dst_mac: Option<[u8; 6]>,
    /// The new Ethernet source, if it changes.
    pub src_mac: Option<[u8; 6]>,
}

impl Readdress {
    /// To `dst`, nothing else changed.
    pub fn to(dst: SocketAddrV4) -> Readdress {
        Readdress {
            dst,
            src: None,
            dst_mac: None,
            src_mac: None,
        }
    }
}

impl TileKind for VerifyKind {
    type Params = VerifyParams;

    fn name(&self) -> &str {
        "verify"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 1..=1)
    }

    fn build<'w>(
        &self,
        p: &VerifyParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let to = p.dst.map(|dst| Readdress {
            dst,
            src: p.src,
            dst_mac: p.dst_mac,
            src_mac: p.src_mac,
        });
        Ok(Box::new(Verify::readdressing(to)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tilewire_aio::frame::{build_vec, UdpEndpoints};

    fn ends() -> UdpEndpoints {
        UdpEndpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.18.0.1:7000".parse().unwrap(),
            dst: "198.18.0.2:9001".parse().unwrap(),
        }
    }

    #[test]
    fn the_digest_covers_every_payload_byte() {
        let payload: Vec<u8> = (0..1232u32).map(|i| (i * 7) as u8).collect();
        let d = payload_digest(&payload);
        assert_eq!(d, xxh3_64(&payload));
        for at in [0, 600, 1231] {
            let mut p = payload.clone();
            p[at] ^= 1;
            assert_ne!(payload_digest(&p), d, "byte {at} is hashed");
        }
    }

    #[test]
    fn readdressing_sets_the_destination_and_a_right_ip_checksum() {
        let mut frame = build_vec(&ends(), b"a transaction").unwrap();
        let dst: SocketAddrV4 = "198.18.0.9:7100".parse().unwrap();
        let mut view = UdpFrame::new_checked(&mut frame[..]).unwrap();
        readdress(&mut view, &Readdress::to(dst));
        let view = UdpFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(view.dst(), dst);
        assert_eq!(view.src(), ends().src, "the source stays");
        assert_eq!(view.dst_mac(), ends().dst_mac, "the MACs stay");
        assert_eq!(view.udp_checksum(), 0);
        assert_eq!(view.payload(), b"a transaction");
        assert_eq!(view.ip_checksum(), ipv4_checksum(view.ip_header()));
        tilewire_aio::frame::verify_checksums(&frame).unwrap();
    }

    #[test]
    fn readdressing_with_a_source_and_macs_sets_them_all() {
        let mut frame = build_vec(&ends(), b"a shred").unwrap();
        let to = Readdress {
            dst: "198.18.0.9:7100".parse().unwrap(),
            src: Some("198.18.0.7:7000".parse().unwrap()),
            dst_mac: Some([2, 0, 0, 0, 0, 9]),
            src_mac: Some([2, 0, 0, 0, 0, 7]),
        };
        readdress(&mut UdpFrame::new_checked(&mut frame[..]).unwrap(), &to);
        let view = UdpFrame::new_checked(&frame[..]).unwrap();
        assert_eq!((view.src(), view.dst()), (to.src.unwrap(), to.dst));
        assert_eq!(
            (view.src_mac(), view.dst_mac()),
            ([2, 0, 0, 0, 0, 7], [2, 0, 0, 0, 0, 9])
        );
        assert_eq!(view.payload(), b"a shred");
        tilewire_aio::frame::verify_checksums(&frame).unwrap();
    }
}
