//! Fixture files of validator traffic: labelled Ethernet frames, and their
//! loader.
//!
//! # What a fixture is
//!
//! tilewire's tests, the XDP program tests, the dedup tile and `tilewire
//! demo` all want the same thing: a few thousand frames that look like what
//! a validator receives, each with a label saying what it is. The frames
//! are written once by `fixtures/make_fixtures.py` (fixed seed, standard
//! library only) and kept in the repository twice: as a `.pcap`, for
//! tcpdump and Wireshark, and as a `.bin`, which adds the labels. Both are
//! compiled into this crate ([`MIX_BIN`], [`MALFORMED_BIN`]), so a test or
//! a tool needs no path: [`mix()`] and [`malformed()`] give them parsed.
//!
//! Every frame is a whole Ethernet frame, from the destination MAC to the
//! end of the payload, without FCS, sent by a gateway `02:00:00:00:00:01`
//! to a validator `02:00:00:00:00:02` at 198.18.0.2, from senders in
//! 198.18.0.0/15 (IPv6 frames use 2001:2::/48).
//!
//! # Classes
//!
//! A [`FrameClass`] labels each frame. Four are the validator's traffic,
//! IPv4 UDP to a port of their own, with correct IPv4 and UDP checksums:
//!
//! | class    | port | UDP payload                                     |
//! |----------|------|-------------------------------------------------|
//! | `txn`    | 9001 | 100 to 1232 B (the Solana maximum), random      |
//! | `shred`  | 9002 | exactly 1228 B, a shred-like header then random |
//! | `gossip` | 9003 | 60 to 300 B (pings and pongs 132 B)             |
//! | `repair` | 9004 | 80 to 170 B                                     |
//!
//! A `dup` repeats, byte for byte, an earlier frame of one of these four
//! classes, and names it ([`FixtureFrame::dup_of`]): what the dedup tile
//! must catch. `ip_options` frames are transactions (port 9001) whose IPv4
//! header carries options (IHL 6 to 15): still well-formed IPv4 UDP, which
//! [`UdpFrame`] parses and the XDP program steers like any other.
//!
//! The other classes are malformed or foreign, each aimed at a class port
//! where the bytes have one, so that a program that looked at the wrong
//! bytes would steer them: truncated Ethernet, IPv4 or UDP headers, an
//! IPv4 total length beyond the frame, a UDP length below 8 or beyond the
//! IP payload, IPv6 UDP, TCP, ICMP, ARP, IPv4 fragments and VLAN tags. The
//! XDP program passes every one of them to the kernel stack, and
//! [`UdpFrame::new_checked`] refuses every one.
//!
//! [`Fixture::steer_port`] says, for any frame, the UDP port the XDP program
//! steers it on: `Some(port)` for the well-formed classes and duplicates
//! of them, `None` for the frames it passes whatever its port set. A frame
//! is redirected exactly when its steer port is one of the program's.
//!
//! # The `.bin` format, version 1
//!
//! Little-endian throughout. A 12-byte file header, then `count` records
//! back to back and nothing after them:
//!
//! ```text
//! file header   0  4  magic "TWFX"
//!               4  2  version (1)
//!               6  2  reserved: written 0, ignored when read
//!               8  4  count: the number of records
//! record        0  1  class code (FrameClass::code)
//!               1  3  reserved: written 0, ignored when read
//!               4  4  dup_of: index of the frame this one repeats,
//!                     0xffff_ffff when it repeats none
//!               8  4  frame length, at most FRAME_LEN_MAX
//!              12  n  the frame's bytes
//! ```
//!
//! The count makes a file cut at a record boundary an error like any other
//! cut. A record has `dup_of` set exactly when its class is `dup`, and then
//! it names an earlier record that is not itself a duplicate, is of a
//! well-formed class, and holds the same bytes. [`Fixture::parse`] checks
//! all of that and never panics, whatever the bytes.
//!
//! # Other helpers
//!
//! [`rewrite_endpoints`] moves a well-formed fixture frame onto other MACs,
//! addresses and ports (a test's own veth pair), keeping the payload;
//! `load_pcap` (feature `pcap-file`) reads the frames of a `.pcap`.

#[cfg(feature = "pcap-file")]
use pcap_file::pcap::PcapParser;
#[cfg(feature = "pcap-file")]
use pcap_file::{DataLink, PcapError};

use crate::frame::{FrameError, UdpEndpoints, UdpFrame};

/// `fixtures/mix.bin`: 1024 frames of transactions, shreds, gossip, repair
/// and duplicates, interleaved as a busy validator receives them.
pub const MIX_BIN: &[u8] = include_bytes!("../../fixtures/mix.bin");
/// `fixtures/malformed.bin`: every malformed and foreign class several
/// times, and IP-options frames.
pub const MALFORMED_BIN: &[u8] = include_bytes!("../../fixtures/malformed.bin");

/// The first four bytes of a `.bin` fixture.
pub const MAGIC: [u8; 4] = *b"TWFX";
/// The format version this module reads and writes.
pub const VERSION: u16 = 1;
/// Length of the file header: magic, version, reserved, count.
pub const FILE_HEADER_LEN: usize = 12;
/// Length of a record header: class, reserved, dup_of, frame length.
pub const RECORD_HEADER_LEN: usize = 12;
/// The longest frame a record may hold.
pub const FRAME_LEN_MAX: usize = 65535;
/// `dup_of` of a record that repeats no other.
pub const NO_DUP: u32 = u32::MAX;

/// UDP destination port of transactions (and of IP-options frames).
pub const TXN_PORT: u16 = 9001;
/// UDP destination port of shreds.
pub const SHRED_PORT: u16 = 9002;
/// UDP destination port of gossip.
pub const GOSSIP_PORT: u16 = 9003;
/// UDP destination port of repair requests.
pub const REPAIR_PORT: u16 = 9004;
/// The four class ports, the set to steer to see every well-formed frame.
pub const CLASS_PORTS: [u16; 4] = [TXN_PORT, SHRED_PORT, GOSSIP_PORT, REPAIR_PORT];

/// What a fixture frame is; the discriminant is its code in a `.bin`.
/// See the [module documentation](self) for each class.
///
/// A new class is a new format version, so the enum is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FrameClass {
    /// A transaction: UDP to [`TXN_PORT`], 100 to 1232 payload bytes.
    Txn = 1,
    /// A shred: UDP to [`SHRED_PORT`], 1228 payload bytes.
    Shred = 2,
    /// Gossip: UDP to [`GOSSIP_PORT`], 60 to 300 payload bytes.
    Gossip = 3,
    /// A repair request: UDP to [`REPAIR_PORT`], 80 to 170 payload bytes.
    Repair = 4,
    /// An exact copy of an earlier frame of a well-formed class.
    Dup = 5,
    /// A transaction whose IPv4 header has options: well formed, steered.
    IpOptions = 6,
    /// Shorter than the 14-byte Ethernet header.
    TruncatedEthernet = 16,
    /// Ends inside the IPv4 header or its options.
    TruncatedIpv4 = 17,
    /// Ends inside the UDP header.
    TruncatedUdp = 18,
    /// The IPv4 total length claims more bytes than the frame holds.
    IpLengthTooLong = 19,
    /// The UDP length is below 8 or beyond the IP payload.
    UdpLengthWrong = 20,
    /// UDP over IPv6 to a class port.
    Ipv6Udp = 21,
    /// TCP to a class port.
    Tcp = 22,
    /// ICMP: echo requests and a port unreachable.
    Icmp = 23,
    /// ARP requests and replies.
    Arp = 24,
    /// An IPv4 fragment of a UDP datagram (MF set or an offset).
    Fragment = 25,
    /// IPv4 UDP behind an 802.1Q (or 802.1ad) tag.
    Vlan = 26,
}

impl FrameClass {
    /// Every class, in code order.
    pub const ALL: [FrameClass; 17] = [
        FrameClass::Txn,
        FrameClass::Shred,
        FrameClass::Gossip,
        FrameClass::Repair,
        FrameClass::Dup,
        FrameClass::IpOptions,
        FrameClass::TruncatedEthernet,
        FrameClass::TruncatedIpv4,
        FrameClass::TruncatedUdp,
        FrameClass::IpLengthTooLong,
        FrameClass::UdpLengthWrong,
        FrameClass::Ipv6Udp,
        FrameClass::Tcp,
        FrameClass::Icmp,
        FrameClass::Arp,
        FrameClass::Fragment,
        FrameClass::Vlan,
    ];

    /// The class's code in a `.bin` record.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The class of `code`; `None` for a code no class has.
    pub fn from_code(code: u8) -> Option<FrameClass> {
        FrameClass::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The class's name, as `make_fixtures.py` and the README spell it.
    pub const fn name(self) -> &'static str {
        match self {
            FrameClass::Txn => "txn",
            FrameClass::Shred => "shred",
            FrameClass::Gossip => "gossip",
            FrameClass::Repair => "repair",
            FrameClass::Dup => "dup",
            FrameClass::IpOptions => "ip_options",
            FrameClass::TruncatedEthernet => "truncated_ethernet",
            FrameClass::TruncatedIpv4 => "truncated_ipv4",
            FrameClass::TruncatedUdp => "truncated_udp",
            FrameClass::IpLengthTooLong => "ip_length_too_long",
            FrameClass::UdpLengthWrong => "udp_length_wrong",
            FrameClass::Ipv6Udp => "ipv6_udp",
            FrameClass::Tcp => "tcp",
            FrameClass::Icmp => "icmp",
            FrameClass::Arp => "arp",
            FrameClass::Fragment => "fragment",
            FrameClass::Vlan => "vlan",
        }
    }

    /// Whether frames of this class are well-formed IPv4 UDP, which
    /// [`UdpFrame::new_checked`] accepts and the XDP program steers when
    /// their port is configured. True for the four traffic classes,
    /// `ip_options`, and `dup` (a copy of one of those).
    pub const fn is_well_formed_udp(self) -> bool {
        matches!(
            self,
            FrameClass::Txn
                | FrameClass::Shred
                | FrameClass::Gossip
                | FrameClass::Repair
                | FrameClass::Dup
                | FrameClass::IpOptions
        )
    }

    /// The UDP destination port every frame of this class carries; `None`
    /// for `dup` (see [`Fixture::steer_port`]) and the malformed classes.
    pub const fn port(self) -> Option<u16> {
        match self {
            FrameClass::Txn | FrameClass::IpOptions => Some(TXN_PORT),
            FrameClass::Shred => Some(SHRED_PORT),
            FrameClass::Gossip => Some(GOSSIP_PORT),
            FrameClass::Repair => Some(REPAIR_PORT),
            _ => None,
        }
    }
}

impl std::fmt::Display for FrameClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a `.bin` fixture (see the format in the
/// [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// Fewer bytes than the file header.
    #[error("a fixture of {len} bytes is shorter than its {FILE_HEADER_LEN}-byte header")]
    TruncatedHeader {
        /// The bytes there are.
        len: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    #[error("magic {found:02x?} is not a tilewire fixture's \"TWFX\"")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A version this module does not read.
    #[error("fixture format version {version}; this build reads version {VERSION}")]
    BadVersion {
        /// The version found.
        version: u16,
    },
    /// The bytes end inside a record (or before a record the count
    /// promises).
    #[error("record {record} at byte {offset} needs {need} bytes; {have} are left")]
    TruncatedRecord {
        /// The record's index.
        record: usize,
        /// Where the record starts.
        offset: usize,
        /// Bytes the record needs: its header, or its header and frame.
        need: usize,
        /// Bytes left from `offset`.
        have: usize,
    },
    /// A frame longer than [`FRAME_LEN_MAX`].
    #[error("record {record} holds a {len}-byte frame; at most {FRAME_LEN_MAX} are allowed")]
    Oversize {
        /// The record's index.
        record: usize,
        /// The frame length it gives.
        len: usize,
    },
    /// A class code no [`FrameClass`] has.
    #[error("record {record} has class code {code}, which no class has")]
    UnknownClass {
        /// The record's index.
        record: usize,
        /// The code found.
        code: u8,
    },
    /// A `dup` without a reference, a reference on another class, or a
    /// reference to a record that is not earlier, is itself a `dup`, or is
    /// not of a well-formed class.
    #[error("record {record} ({class}) has an invalid duplicate reference {dup_of:?}")]
    BadDupRef {
        /// The record's index.
        record: usize,
        /// The record's class.
        class: FrameClass,
        /// The reference (`None` when missing).
        dup_of: Option<usize>,
    },
    /// A `dup` whose bytes differ from those of the record it names.
    #[error("record {record} claims to repeat record {dup_of} but its bytes differ")]
    DupMismatch {
        /// The record's index.
        record: usize,
        /// The record it names.
        dup_of: usize,
    },
    /// Bytes after the last record the count announced.
    #[error("{extra} bytes follow the last of the {records} records")]
    TrailingBytes {
        /// The count of records.
        records: usize,
        /// The bytes after them.
        extra: usize,
    },
}

/// One labelled frame of a fixture, borrowing its bytes from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixtureFrame<'a> {
    /// What the frame is.
    pub class: FrameClass,
    /// For a `dup`, the index of the frame it repeats; `None` otherwise.
    pub dup_of: Option<usize>,
    /// The whole Ethernet frame.
    pub bytes: &'a [u8],
}

impl FixtureFrame<'_> {
    /// A copy of the frame moved onto `ends`, as [`rewrite_endpoints`].
    ///
    /// # Errors
    /// As [`UdpFrame::check_len`]: every malformed class fails here.
    pub fn with_endpoints(&self, ends: &UdpEndpoints) -> Result<Vec<u8>, FrameError> {
        let mut frame = self.bytes.to_vec();
        rewrite_endpoints(&mut frame, ends)?;
        Ok(frame)
    }
}

/// The frames of a `.bin` fixture, checked: see [`Fixture::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture<'a> {
    frames: Vec<FixtureFrame<'a>>,
}

/// Little-endian integers at `at` of bytes known to hold them.
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Fixture<'a> {
    /// Parses a `.bin` fixture, borrowing the frames from `bytes` (which
    /// may come from `include_bytes!`). Never panics.
    ///
    /// # Errors
    /// [`FixtureError::TruncatedHeader`], [`FixtureError::BadMagic`] and
    /// [`FixtureError::BadVersion`] for the file header;
    /// [`FixtureError::TruncatedRecord`], [`FixtureError::Oversize`],
    /// [`FixtureError::UnknownClass`] for a record, checked in order;
    /// [`FixtureError::TrailingBytes`] after the last; then the duplicate
    /// checks of [`Fixture::from_frames`].
    pub fn parse(bytes: &'a [u8]) -> Result<Fixture<'a>, FixtureError> {
        if bytes.len() < FILE_HEADER_LEN {
            return Err(FixtureError::TruncatedHeader { len: bytes.len() });
        }
        let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if found != MAGIC {
            return Err(FixtureError::BadMagic { found });
        }
        let version = le_u16(bytes, 4);
        if version != VERSION {
            return Err(FixtureError::BadVersion { version });
        }
        let count = le_u32(bytes, 8) as usize;
        // The count is untrusted: reserve no more than the bytes can hold.
        let mut frames = Vec::with_capacity(count.min(bytes.len() / RECORD_HEADER_LEN));
        let mut offset = FILE_HEADER_LEN;
        for record in 0..count {
            let rest = &bytes[offset..];
            let truncated = |need| FixtureError::TruncatedRecord {
                record,
                offset,
                need,
                have: rest.len(),
            };
            if rest.len() < RECORD_HEADER_LEN {
                return Err(truncated(RECORD_HEADER_LEN));
            }
            let len = le_u32(rest, 8) as usize;
            if len > FRAME_LEN_MAX {
                return Err(FixtureError::Oversize { record, len });
            }
            let code = rest[0];
            let class =
                FrameClass::from_code(code).ok_or(FixtureError::UnknownClass { record, code })?;
            let frame = rest
                .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len)
                .ok_or_else(|| truncated(RECORD_HEADER_LEN + len))?;
            let dup_of = match le_u32(rest, 4) {
                NO_DUP => None,
                // A reference beyond usize fails the "earlier" check.
                at => Some(usize::try_from(at).unwrap_or(usize::MAX)),
            };
            frames.push(FixtureFrame {
                class,
                dup_of,
                bytes: frame,
            });
            offset += RECORD_HEADER_LEN + len;
        }
        if offset != bytes.len() {
            return Err(FixtureError::TrailingBytes {
                records: count,
                extra: bytes.len() - offset,
            });
        }
        Fixture::from_frames(frames)
    }

    /// A fixture of `frames`, after the checks a file gets.
    ///
    /// # Errors
    /// [`FixtureError::Oversize`]; [`FixtureError::BadDupRef`] unless every
    /// `dup` names an earlier frame of a well-formed class other than
    /// `dup`, and no other class names any; [`FixtureError::DupMismatch`]
    /// when a `dup`'s bytes differ from those it names.
    pub fn from_frames(frames: Vec<FixtureFrame<'a>>) -> Result<Fixture<'a>, FixtureError> {
        for (record, frame) in frames.iter().enumerate() {
            if frame.bytes.len() > FRAME_LEN_MAX {
                return Err(FixtureError::Oversize {
                    record,
                    len: frame.bytes.len(),
                });
            }
            let bad_ref = FixtureError::BadDupRef {
                record,
                class: frame.class,
                dup_of: frame.dup_of,
            };
            match (frame.class, frame.dup_of) {
                (FrameClass::Dup, Some(of)) => {
                    let original = frames[..record].get(of).ok_or(bad_ref)?;
                    if original.class == FrameClass::Dup || !original.class.is_well_formed_udp() {
                        return Err(bad_ref);
                    }
                    if original.bytes != frame.bytes {
                        return Err(FixtureError::DupMismatch { record, dup_of: of });
                    }
                }
                (FrameClass::Dup, None) | (_, Some(_)) => return Err(bad_ref),
                (_, None) => {}
            }
        }
        Ok(Fixture { frames })
    }

    /// The fixture as a `.bin` file: `Fixture::parse(&f.encode())` is `f`.
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self
            .frames
            .iter()
            .map(|f| RECORD_HEADER_LEN + f.bytes.len())
            .sum();
        let mut out = Vec::with_capacity(FILE_HEADER_LEN + body);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        for frame in &self.frames {
            let dup_of = frame.dup_of.map_or(NO_DUP, |i| i as u32);
            out.extend_from_slice(&[frame.class.code(), 0, 0, 0]);
            out.extend_from_slice(&dup_of.to_le_bytes());
            // At most FRAME_LEN_MAX, checked by from_frames.
            out.extend_from_slice(&(frame.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(frame.bytes);
        }
        out
    }

    /// The frames, in file order.
    pub fn frames(&self) -> &[FixtureFrame<'a>] {
        &self.frames
    }

    /// The number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, FixtureFrame<'a>> {
        self.frames.iter()
    }

    /// How many frames are of `class`.
    pub fn count(&self, class: FrameClass) -> usize {
        self.frames.iter().filter(|f| f.class == class).count()
    }

    /// The frame at `index`, or for a `dup` the frame it repeats; `None`
    /// past the end.
    pub fn original(&self, index: usize) -> Option<&FixtureFrame<'a>> {
        let frame = self.frames.get(index)?;
        // from_frames proved every reference in range.
        Some(frame.dup_of.map_or(frame, |of| &self.frames[of]))
    }

    /// The UDP destination port on which the XDP program steers frame
    /// `index`: the port of its class (of the original's, for a `dup`);
    /// for an `ipv6_udp` frame, its own destination port (the program
    /// steers IPv6 UDP without extension headers, with lengths that hold
    /// and a checksum set, by port); `None` for a malformed or foreign
    /// frame, which it passes to the kernel whatever ports it is given,
    /// and past the end.
    pub fn steer_port(&self, index: usize) -> Option<u16> {
        let f = self.original(index)?;
        match f.class {
            FrameClass::Ipv6Udp => {
                let checksum_set = f.bytes.get(60..62).is_some_and(|c| c != [0, 0]);
                (crate::frame::udp_payload(f.bytes).is_some() && checksum_set)
                    .then(|| crate::frame::udp_dst_port(f.bytes))
            }
            class => class.port(),
        }
    }
}

impl<'f, 'a> IntoIterator for &'f Fixture<'a> {
    type Item = &'f FixtureFrame<'a>;
    type IntoIter = std::slice::Iter<'f, FixtureFrame<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.frames.iter()
    }
}

/// [`MIX_BIN`], parsed.
///
/// # Panics
/// If the embedded file does not parse; a unit test proves it does.
pub fn mix() -> Fixture<'static> {
    Fixture::parse(MIX_BIN).expect("the embedded fixtures/mix.bin parses")
}

/// [`MALFORMED_BIN`], parsed.
///
/// # Panics
/// If the embedded file does not parse; a unit test proves it does.
pub fn malformed() -> Fixture<'static> {
    Fixture::parse(MALFORMED_BIN).expect("the embedded fixtures/malformed.bin parses")
}

/// Moves a well-formed frame onto `ends`: MACs, IPv4 addresses and UDP
/// ports set, both checksums recomputed; the payload, IP options, TTL and
/// padding stay as they are. How the demo sends fixture traffic between
/// the ends of its own veth pair.
///
/// # Errors
/// As [`UdpFrame::check_len`]; the frame is not touched then.
pub fn rewrite_endpoints(frame: &mut [u8], ends: &UdpEndpoints) -> Result<(), FrameError> {
    let mut view = UdpFrame::new_checked(frame)?;
    view.set_endpoints(ends);
    view.fill_checksums();
    Ok(())
}

/// Why bytes are not a pcap file of whole Ethernet frames.
#[cfg(feature = "pcap-file")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcapLoadError {
    /// The 24-byte global header is missing or has no pcap magic.
    #[error("not a pcap file: {source}")]
    Header {
        /// What the pcap-file crate found.
        #[source]
        source: PcapError,
    },
    /// The link type is not Ethernet (1).
    #[error("pcap link type {datalink} is not Ethernet (1)")]
    NotEthernet {
        /// The link type found.
        datalink: u32,
    },
    /// A packet record is cut short or has invalid fields.
    #[error("pcap record {index}: {source}")]
    Record {
        /// The record's index.
        index: usize,
        /// What the pcap-file crate found.
        #[source]
        source: PcapError,
    },
    /// A record holds fewer bytes than the frame had: not a whole frame.
    #[error("pcap record {index} holds {captured} of the frame's {original} bytes")]
    Snapped {
        /// The record's index.
        index: usize,
        /// Bytes in the record.
        captured: u32,
        /// Bytes the frame had on the wire.
        original: u32,
    },
}

#[cfg(feature = "pcap-file")]
/// The frames of a pcap file of whole Ethernet frames, in order (the
/// timestamps are dropped). Never panics.
///
/// # Errors
/// [`PcapLoadError::Header`], [`PcapLoadError::NotEthernet`],
/// [`PcapLoadError::Record`] (a cut record included),
/// [`PcapLoadError::Snapped`].
pub fn load_pcap(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PcapLoadError> {
    let (mut rest, parser) =
        PcapParser::new(bytes).map_err(|source| PcapLoadError::Header { source })?;
    let datalink = parser.header().datalink;
    if datalink != DataLink::ETHERNET {
        return Err(PcapLoadError::NotEthernet {
            datalink: u32::from(datalink),
        });
    }
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let index = frames.len();
        let (next, packet) = parser
            .next_packet(rest)
            .map_err(|source| PcapLoadError::Record { index, source })?;
        let captured = packet.data.len() as u32; // at most snaplen, a u32
        if captured != packet.orig_len {
            return Err(PcapLoadError::Snapped {
                index,
                captured,
                original: packet.orig_len,
            });
        }
        frames.push(packet.data.into_owned());
        rest = next;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fixture of four frames, one a duplicate, whose bytes need not be
    /// real frames for the format's sake.
    fn small() -> Vec<u8> {
        let frame = |class, dup_of, bytes| FixtureFrame {
            class,
            dup_of,
            bytes,
        };
        let frames = vec![
            frame(FrameClass::Txn, None, &b"transaction"[..]),
            frame(FrameClass::Arp, None, b""),
            frame(FrameClass::Dup, Some(0), b"transaction"),
            frame(FrameClass::Shred, None, &[0xee; 40]),
        ];
        Fixture::from_frames(frames).unwrap().encode()
    }

    /// `bytes` with `patch` written at `at`.
    fn patched(bytes: &[u8], at: usize, patch: &[u8]) -> Vec<u8> {
        let mut v = bytes.to_vec();
        v[at..at + patch.len()].copy_from_slice(patch);
        v
    }

    #[test]
    fn round_trip() {
        let bytes = small();
        assert_eq!(
            bytes.len(),
            FILE_HEADER_LEN + 4 * RECORD_HEADER_LEN + 11 + 11 + 40
        );
        let f = Fixture::parse(&bytes).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.frames()[2].dup_of, Some(0));
        assert_eq!(f.frames()[3].bytes, [0xee; 40]);
        assert_eq!(f.encode(), bytes);
        assert_eq!(
            (f.steer_port(2), f.steer_port(1), f.steer_port(9)),
            (Some(TXN_PORT), None, None)
        );
        for (fixture, len) in [(MIX_BIN, 1024), (MALFORMED_BIN, 52)] {
            let f = Fixture::parse(fixture).unwrap();
            assert_eq!(f.len(), len);
            assert_eq!(
                f.encode(),
                fixture,
                "the embedded file encodes back byte for byte"
            );
        }
    }

    #[test]
    fn wrong_magic_and_version() {
        let bytes = small();
        assert_eq!(
            Fixture::parse(&patched(&bytes, 0, b"PCAP")),
            Err(FixtureError::BadMagic { found: *b"PCAP" })
        );
        assert_eq!(
            Fixture::parse(&patched(&bytes, 4, &2u16.to_le_bytes())),
            Err(FixtureError::BadVersion { version: 2 })
        );
        let pcap_magic = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0];
        assert!(matches!(
            Fixture::parse(&pcap_magic),
            Err(FixtureError::BadMagic { .. })
        ));
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let bytes = small();
        for len in 0..bytes.len() {
            let err = Fixture::parse(&bytes[..len]).unwrap_err();
            let want_header = len < FILE_HEADER_LEN;
            assert_eq!(
                matches!(err, FixtureError::TruncatedHeader { .. }),
                want_header,
                "{len}: {err}"
            );
            if !want_header {
                assert!(
                    matches!(err, FixtureError::TruncatedRecord { .. }),
                    "{len}: {err}"
                );
            }
        }
        // And a real fixture's first records, cut everywhere.
        let cut = &MALFORMED_BIN[..2048];
        for len in 0..cut.len() {
            assert!(Fixture::parse(&cut[..len]).is_err(), "{len}");
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Fixture::parse(&garbage);
            #[cfg(feature = "pcap-file")]
            let _ = load_pcap(&garbage);
            // Behind a valid header, so the record parser sees the garbage.
            let mut framed = small()[..FILE_HEADER_LEN].to_vec();
            framed.extend_from_slice(&garbage);
            if let Ok(fixture) = Fixture::parse(&framed) {
                let encoded = fixture.encode();
                prop_assert_eq!(Fixture::parse(&encoded), Ok(fixture));
            }
        }

        #[test]
        fn any_byte_changed_never_panics(at in 0usize..110, byte in any::<u8>()) {
            let bytes = small();
            let at = at % bytes.len();
            let _ = Fixture::parse(&patched(&bytes, at, &[byte]));
        }
    }
}
