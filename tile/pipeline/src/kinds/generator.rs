//! The gen tile: a traffic source that plays a list of frames.
//!
//! # What it does
//!
//! [`Gen`] has no inputs and one output. It publishes the frames of its
//! list in order, from the first to the last and round again, at a set
//! rate, until it has sent a set count; then it idles (and says so in its
//! `done` counter). Each frame goes out as one frag with origin 0, its UDP
//! destination port as the signature (as the net tiles set it; 0 for a
//! frame that is not IPv4 or IPv6 UDP) and the time of publishing as
//! `tsorig`.
//!
//! # Passes
//!
//! A list played twice unchanged would be nothing but duplicates the
//! second time, and a dedup tile downstream would rightly drop it all. So
//! every pass after the first changes the payloads: pass `p` sends each
//! frame as [`stamp_pass`] makes it, the pass number XORed into the first
//! eight bytes of the UDP payload and the UDP checksum updated to match.
//! Pass 0 sends the frames exactly as given. A dedup downstream then drops
//! only the duplicates inside the list itself, once per pass. (Payloads
//! shorter than eight bytes have less room: after 2^(8 * len) passes they
//! repeat.) [`synthetic`] makes a list whose frames stay distinct across
//! passes.
//!
//! # Rate
//!
//! A token bucket on the shared monotonic clock: `rate` tokens a second,
//! at most `burst` saved up, one token a frame. The bucket starts full, so
//! the first `burst` frames go at once; over any interval of `t` seconds
//! the tile sends at most `rate * t + burst` frames. With `rate` 0 there
//! is no bucket: the tile sends as fast as its output's credits allow,
//! `burst` frames per loop turn. The frames of one loop turn are published
//! from [`Tile::after_credit`], which the run loop calls only when the
//! output has [`Tile::burst`] (= `burst`) credits, so `burst` must be at
//! most the output link's depth, or the tile never gets to send.
//!
//! # What it counts
//!
//! - `sent`: frames published;
//! - `bytes`: their bytes;
//! - `passes`: passes over the list completed;
//! - `done`: 1 once `count` frames were sent (and for an empty list), else 0.
//!
//! A frame longer than the output's mtu cannot be published: it is skipped
//! (counted in [`Gen::too_long`], not in `sent`, and not towards `count`).
//! The tile never panics on what its list holds.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use serde::de::{Deserialize, Deserializer, Error as _};
use tilewire_aio::fixture::{rewrite_endpoints, Fixture, MIX_BIN};
use tilewire_aio::frame::{
    build_vec, udp_dst_port, udp_payload, UdpEndpoints, UdpFrame, ETHERTYPE_IPV6, HEADERS_LEN,
    HEADERS_LEN_IPV6, PAYLOAD_MAX, UDP_HEADER_LEN,
};
use tilewire_shmem::clock::{mono_ns, mono_ts};

use tilewire_tile::link::dcache::MTU_MAX;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::stem::{Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, TileKind};

/// Token bucket resolution: tokens are counted in nano-tokens, so a rate
/// in tokens per second accrues `rate` of them per nanosecond.
const NANO: u128 = 1_000_000_000;

/// Frames in the list [`synthetic`] makes.
pub const SYNTHETIC_FRAMES: usize = 16;

/// How a [`Gen`] plays its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenConfig {
    /// Frames per second; 0 = as fast as the output's credits allow.
    pub rate: u64,
    /// Frames to send in all; 0 = forever.
    pub count: u64,
    /// Most frames sent at once (and saved up by the token bucket); at
    /// least 1, at most the output link's depth.
    pub burst: u64,
}

impl Default for GenConfig {
    /// Unlimited rate, forever, bursts of 16.
    fn default() -> Self {
        GenConfig {
            rate: 0,
            count: 0,
            burst: 16,
        }
    }
}

/// XORs `pass` (little-endian) into the first eight bytes of `frame`'s UDP
/// payload (all of it if shorter) and updates the UDP checksum to match,
/// incrementally: a right checksum stays right, a wrong one stays wrong
/// by the same amount, and 0 ("no checksum") stays 0. IPv4 and IPv6
/// alike (the pseudo header does not change); a frame that is neither
/// ([`udp_payload`] refuses it) is left unchanged, and `stamp_pass(f, 0)`
/// changes nothing. Stamping with `a` then with `b` is stamping with
/// `a ^ b`.
pub fn stamp_pass(frame: &mut [u8], pass: u64) {
    let Some(len) = udp_payload(frame).map(<[u8]>::len) else {
        return;
    };
    let start = if frame[12..14] == ETHERTYPE_IPV6.to_be_bytes() {
        HEADERS_LEN_IPV6
    } else {
        UdpFrame::new_unchecked(&*frame).udp_offset() + UDP_HEADER_LEN
    };
    // The UDP checksum is the last field of the header before the payload.
    let at = start - 2;
    let stored = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let payload = &mut frame[start..start + len];
    let n = payload.len().min(8);
    let old = words(&payload[..n]);
    for (b, k) in payload[..n].iter_mut().zip(pass.to_le_bytes()) {
        *b ^= k;
    }
    let new = words(&payload[..n]);
    if stored == 0 {
        return;
    }
    // RFC 1624: the checksum is the one's complement of a sum modulo
    // 0xffff, so replacing words m by m' turns it into
    // checksum + sum(m) - sum(m') (mod 0xffff). Of the two encodings of
    // zero UDP uses 0xffff (0 means "none"), as a full computation does.
    let mut acc = u64::from(stored);
    for (m, m2) in old.iter().zip(new) {
        acc += u64::from(*m) + u64::from(0xffff - m2);
    }
    let sum = (acc % 0xffff) as u16;
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// The first (up to) eight payload bytes as the four big-endian 16-bit
/// words the checksum adds (an odd last byte padded with zero; the payload
/// starts on an even offset of the UDP segment).
fn words(bytes: &[u8]) -> [u16; 4] {
    let mut w = [0u16; 4];
    for (i, b) in bytes.iter().enumerate() {
        let shift = if i % 2 == 0 { 8 } else { 0 };
        w[i / 2] |= u16::from(*b) << shift;
    }
    w
}

/// A list of [`SYNTHETIC_FRAMES`] well-formed IPv4 UDP frames from `src`
/// to `dst` (MACs `02:00` followed by each IP address), each with a
/// `size`-byte payload (at most [`PAYLOAD_MAX`]; larger is cut to it) and
/// both checksums right.
///
/// Payload layout: bytes 0..8 are zero (where [`stamp_pass`] writes the
/// pass), bytes 8..16 the frame's index (little-endian), then a pattern.
/// With `size` of at least 9 every frame of every pass has its own
/// payload; with a smaller `size` the index goes in the first byte, so the
/// frames of one pass still differ (unless `size` is 0) but passes may
/// repeat one another's payloads.
pub fn synthetic(size: usize, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<Vec<u8>> {
    let size = size.min(PAYLOAD_MAX);
    let mac = |a: &SocketAddrV4| {
        let [a, b, c, d] = a.ip().octets();
        [0x02, 0x00, a, b, c, d]
    };
    let ends = UdpEndpoints {
        src_mac: mac(&src),
        dst_mac: mac(&dst),
        src,
        dst,
    };
    (0..SYNTHETIC_FRAMES)
        .map(|i| {
            let mut payload: Vec<u8> = (0..size)
                .map(|k| (k as u8).wrapping_mul(31).wrapping_add(i as u8))
                .collect();
            if size > 8 {
                payload[..8].fill(0);
                let index = (i as u64).to_le_bytes();
                let end = size.min(16);
                payload[8..end].copy_from_slice(&index[..end - 8]);
            } else if size > 0 {
                payload.fill(0);
                payload[0] = i as u8;
            }
            // The size is capped at PAYLOAD_MAX, which is what build takes.
            build_vec(&ends, &payload).unwrap_or_default()
        })
        .collect()
}

/// What a gen tile counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Frames published.
    pub sent: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Passes over the list completed.
    pub passes: u64,
    /// True once `count` frames were sent.
    pub done: bool,
    /// Frames skipped for being longer than the output's mtu.
    pub too_long: u64,
}

/// Plays a list of frames into output 0 (see the [module docs](self)).
#[derive(Debug)]
pub struct Gen {
    frames: Vec<Vec<u8>>,
    /// The pass each frame is stamped for now (see [`stamp_pass`]).
    stamped: Vec<u64>,
    config: GenConfig,
    /// The frame sent next, and the pass it is in.
    next: usize,
    pass: u64,
    /// Nano-tokens in the bucket, and when it was last filled.
    bucket: u128,
    filled_ns: u64,
    stats: GenStats,
}

impl Gen {
    /// A gen playing `frames` as `config` says (a `burst` of 0 is taken as
    /// 1). An empty list is done at once.
    pub fn new(frames: Vec<Vec<u8>>, config: GenConfig) -> Gen {
        let config = GenConfig {
            burst: config.burst.max(1),
            ..config
        };
        let done = frames.is_empty();
        Gen {
            stamped: vec![0; frames.len()],
            frames,
            bucket: u128::from(config.burst) * NANO,
            filled_ns: mono_ns(),
            config,
            next: 0,
            pass: 0,
            stats: GenStats {
                done,
                ..GenStats::default()
            },
        }
    }

    /// What the tile counted so far.
    pub fn stats(&self) -> GenStats {
        self.stats
    }

    /// Frames skipped for being longer than the output's mtu.
    pub fn too_long(&self) -> u64 {
        self.stats.too_long
    }

    /// The configuration (with `burst` at least 1).
    pub fn config(&self) -> GenConfig {
        self.config
    }

    /// Frames the token bucket allows now, at most `burst` (refilling it
    /// first).
    fn allowed(&mut self) -> u64 {
        if self.config.rate == 0 {
            return self.config.burst;
        }
        let now = mono_ns();
        let elapsed = now.saturating_sub(self.filled_ns);
        self.filled_ns = now;
        let cap = u128::from(self.config.burst) * NANO;
        let refill = u128::from(elapsed) * u128::from(self.config.rate);
        self.bucket = (self.bucket + refill).min(cap);
        (self.bucket / NANO) as u64
    }

    /// Takes `n` tokens out of the bucket (never more than `allowed` gave).
    fn spend(&mut self, n: u64) {
        if self.config.rate != 0 {
            self.bucket = self.bucket.saturating_sub(u128::from(n) * NANO);
        }
    }

    /// The frame to send next, stamped for its pass; moves on to the one
    /// after (and the next pass after the last).
    fn take_next(&mut self) -> usize {
        let i = self.next;
        if self.stamped[i] != self.pass {
            // XOR the old stamp away and the new one in, at once.
            stamp_pass(&mut self.frames[i], self.stamped[i] ^ self.pass);
            self.stamped[i] = self.pass;
        }
        self.next += 1;
        if self.next == self.frames.len() {
            self.next = 0;
            self.pass += 1;
            self.stats.passes = self.pass;
        }
        i
    }

    /// Undoes the last [`Gen::take_next`]: that frame goes next again.
    fn put_back(&mut self) {
        if self.next == 0 {
            self.next = self.frames.len() - 1;
            self.pass -= 1;
            self.stats.passes = self.pass;
        } else {
            self.next -= 1;
        }
    }
}

impl Tile for Gen {
    fn external_input(&self) -> bool {
        true
    }

    fn kind(&self) -> &str {
        "gen"
    }

    fn burst(&self) -> u64 {
        self.config.burst
    }

    fn counters(&self) -> &'static [&'static str] {
        &["sent", "bytes", "passes", "done"]
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if self.stats.done || out.is_empty() {
            return;
        }
        let mut budget = self.allowed();
        if self.config.count != 0 {
            budget = budget.min(self.config.count - self.stats.sent);
        }
        let mtu = out.producer(0).mtu();
        let ts = mono_ts();
        let mut sent = 0;
        // Every frame taken, sent or skipped, uses one of `burst` turns, so
        // a list whose frames are all too long cannot keep this loop going.
        for _ in 0..self.config.burst {
            if sent == budget {
                break;
            }
            let i = self.take_next();
            let frame = &self.frames[i];
            if frame.len() > mtu {
                self.stats.too_long += 1;
                continue;
            }
            let sig = udp_payload(frame).map_or(0, |_| u64::from(udp_dst_port(frame)));
            if out.publish(0, frame, sig, CTL_PKT, ts).is_err() {
                // Cannot happen (the loop calls this with `burst` credits);
                // if it did, the frame goes next time, in the same pass.
                self.put_back();
                break;
            }
            sent += 1;
            self.stats.bytes += frame.len() as u64;
        }
        self.spend(sent);
        self.stats.sent += sent;
        if self.config.count != 0 && self.stats.sent >= self.config.count {
            self.stats.done = true;
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in counters
            .iter_mut()
            .zip([s.sent, s.bytes, s.passes, u64::from(s.done)])
        {
            *c = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use tilewire_aio::frame::verify_checksums;

    fn ends() -> (SocketAddrV4, SocketAddrV4) {
        (
            "198.18.0.1:4000".parse().unwrap(),
            "198.18.0.2:8001".parse().unwrap(),
        )
    }

    #[test]
    fn synthetic_frames_are_well_formed_and_distinct_in_every_pass() {
        let (src, dst) = ends();
        for size in [9, 16, 64, 1232] {
            let list = synthetic(size, src, dst);
            assert_eq!(list.len(), SYNTHETIC_FRAMES);
            let mut payloads = HashSet::new();
            for pass in 0..40u64 {
                for f in &list {
                    let mut f = f.clone();
                    stamp_pass(&mut f, pass);
                    verify_checksums(&f).unwrap();
                    let view = UdpFrame::new_checked(&f[..]).unwrap();
                    assert_eq!(view.payload().len(), size);
                    assert_eq!((view.src(), view.dst()), (src, dst));
                    assert!(payloads.insert(view.payload().to_vec()), "size {size}");
                }
            }
        }
        // Small payloads: distinct within a pass.
        let small = synthetic(3, src, dst);
        let set: HashSet<_> = small.iter().map(|f| f[HEADERS_LEN..].to_vec()).collect();
        assert_eq!(set.len(), SYNTHETIC_FRAMES);
        assert_eq!(
            synthetic(PAYLOAD_MAX + 5, src, dst)[0].len(),
            HEADERS_LEN + PAYLOAD_MAX
        );
    }

    #[test]
    fn stamp_pass_leaves_other_frames_and_pass_zero_alone() {
        let mut junk = b"not a frame".to_vec();
        stamp_pass(&mut junk, 77);
        assert_eq!(junk, b"not a frame");
        let (src, dst) = ends();
        let mut f = synthetic(20, src, dst).remove(5);
        // A wrong checksum stays exactly as wrong through pass 0.
        f[HEADERS_LEN - 1] ^= 0x10;
        let before = f.clone();
        stamp_pass(&mut f, 0);
        assert_eq!(f, before);
    }

    #[test]
    fn stamp_pass_stamps_ipv6_frames_too() {
        use tilewire_aio::frame::{build_ipv6_vec, Udp6Endpoints};
        let ends = Udp6Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "[2001:2::1]:4000".parse().unwrap(),
            dst: "[2001:2::2]:8001".parse().unwrap(),
        };
        for len in [0, 3, 8, 9, 300] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let orig = build_ipv6_vec(&ends, &payload).unwrap();
            for pass in [1u64, 0x0102_0304_0506_0708, u64::MAX] {
                let mut f = orig.clone();
                stamp_pass(&mut f, pass);
                let mut stamped = payload.clone();
                for (b, k) in stamped.iter_mut().zip(pass.to_le_bytes()) {
                    *b ^= k;
                }
                // A fresh build of the stamped payload: the same bytes,
                // checksum included.
                assert_eq!(f, build_ipv6_vec(&ends, &stamped).unwrap(), "{len} {pass}");
                stamp_pass(&mut f, pass);
                assert_eq!(f, orig, "stamped twice is unstamped");
            }
            let mut none = orig.clone();
            none[60..62].fill(0);
            stamp_pass(&mut none, 5);
            assert_eq!(&none[60..62], &[0, 0], "none stays none");
        }
    }

    proptest! {
        /// The incremental checksum update gives what a full computation
        /// gives, for any payload (odd lengths and those under eight bytes
        /// included) and any pass; 0 stays 0; stamps compose by XOR.
        #[test]
        fn stamp_pass_matches_a_full_checksum(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            a in any::<u64>(),
            b in any::<u64>(),
            port in any::<u16>(),
        ) {
            let (src, dst) = ends();
            let ends = UdpEndpoints {
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 0, 2],
                src: SocketAddrV4::new(*src.ip(), port),
                dst,
            };
            let orig = build_vec(&ends, &payload).unwrap();
            let mut f = orig.clone();
            stamp_pass(&mut f, a);
            prop_assert!(verify_checksums(&f).is_ok());
            let mut full = f.clone();
            UdpFrame::new_checked(&mut full[..]).unwrap().fill_checksums();
            prop_assert_eq!(&f, &full);
            let n = payload.len().min(8);
            for i in 0..n {
                prop_assert_eq!(f[HEADERS_LEN + i], payload[i] ^ a.to_le_bytes()[i]);
            }
            prop_assert_eq!(&f[HEADERS_LEN + n..], &payload[n..]);
            stamp_pass(&mut f, b);
            let mut ab = orig.clone();
            stamp_pass(&mut ab, a ^ b);
            prop_assert_eq!(&f, &ab);
            stamp_pass(&mut f, a ^ b);
            prop_assert_eq!(&f, &orig);

            let mut none = orig.clone();
            none[HEADERS_LEN - 2..HEADERS_LEN].fill(0);
            stamp_pass(&mut none, a);
            prop_assert_eq!(&none[HEADERS_LEN - 2..HEADERS_LEN], &[0, 0]);
        }
    }
}

/// The `gen` kind: no inputs, exactly 1 output; publishes synthetic or
/// fixture frames at a rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenKind;

/// Parameters of a `gen` tile.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenParams {
    /// Where the frames come from (default: synthetic frames of `size`).
    #[serde(default, deserialize_with = "fixture")]
    pub fixture: Option<GenFixture>,
    /// UDP payload bytes of synthetic frames (default 64; not allowed
    /// with `fixture`).
    #[serde(default, deserialize_with = "size")]
    pub size: Option<usize>,
    /// Packets per second, 0 = as fast as credits allow (default 0).
    #[serde(default, deserialize_with = "non_negative")]
    pub rate: u64,
    /// Packets to send, 0 = no limit (default 0).
    #[serde(default, deserialize_with = "non_negative")]
    pub count: u64,
    /// Rewrite every frame's source endpoint.
    #[serde(default, deserialize_with = "crate::params::opt_endpoint")]
    pub src: Option<SocketAddrV4>,
    /// Rewrite every frame's destination endpoint.
    #[serde(default, deserialize_with = "crate::params::opt_endpoint")]
    pub dst: Option<SocketAddrV4>,
    /// Packets allowed at once by the rate limit, 1..=2^20 (default 1).
    #[serde(default = "default_burst", deserialize_with = "burst")]
    pub burst: u64,
}

impl GenParams {
    /// The UDP payload bytes of synthetic frames: `size`, or 64.
    pub fn payload_size(&self) -> usize {
        self.size.unwrap_or(64)
    }
}

/// Where a `gen` tile's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenFixture {
    /// A raw `.bin` fixture file.
    File(PathBuf),
    /// The built-in traffic mix (`"builtin:mix"`).
    BuiltinMix,
}

fn fixture<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GenFixture>, D::Error> {
    let s = String::deserialize(d)?;
    match s.strip_prefix("builtin:") {
        Some("mix") => Ok(Some(GenFixture::BuiltinMix)),
        Some(other) => Err(D::Error::custom(format!(
            "names the unknown built-in fixture {other:?} (known: \"builtin:mix\")"
        ))),
        None if s.is_empty() => Err(D::Error::custom("must not be empty")),
        None => Ok(Some(GenFixture::File(PathBuf::from(s)))),
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let max = (MTU_MAX - HEADERS_LEN) as u64;
    crate::params::int_in(d, 0, max).map(Some)
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    crate::params::int_in(d, 0, i64::MAX as u64)
}

fn default_burst() -> u64 {
    1
}

fn burst<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    crate::params::int_in(d, 1, 1 << 20)
}

impl TileKind for GenKind {
    type Params = GenParams;

    fn name(&self) -> &str {
        "gen"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(0..=0, 1..=1)
    }

    fn check(&self, p: &GenParams, ctx: &mut CheckCtx<'_>) {
        match &p.fixture {
            Some(_) if p.size.is_some() => ctx.field_error(
                "size",
                "sets the payload of synthetic frames; it has no effect with a `fixture`",
            ),
            Some(GenFixture::File(path)) if !path.is_file() => {
                ctx.error(format!("fixture file {} not found", path.display()))
            }
            Some(_) => {}
            None => {
                let size = p.payload_size();
                let topo = ctx.topology();
                for link in ctx.tile().outputs.iter().filter_map(|l| topo.link(l)) {
                    if HEADERS_LEN + size > link.mtu {
                        ctx.error(format!(
                            "frames with {size} payload bytes are {} bytes, more than the mtu {} \
                             of link {:?}",
                            HEADERS_LEN + size,
                            link.mtu,
                            link.name
                        ));
                    }
                }
            }
        }
    }

    fn build<'w>(
        &self,
        p: &GenParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(gen_tile(p)?))
    }
}

/// The frames of a `gen` tile with `p`, and the tile.
fn gen_tile(p: &GenParams) -> Result<Gen, BuildError> {
    let any = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 7000);
    let (src, dst) = (
        p.src.unwrap_or(any),
        p.dst
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 9000)),
    );
    let frames_of = |bytes: &[u8], what: &str| {
        Fixture::parse(bytes)
            .map(|fx| fx.iter().map(|fr| fr.bytes.to_vec()).collect::<Vec<_>>())
            .map_err(|e| BuildError::new(format!("fixture {what}: {e}")))
    };
    let mut frames = match &p.fixture {
        None => synthetic(p.payload_size(), src, dst),
        Some(GenFixture::BuiltinMix) => frames_of(MIX_BIN, "builtin:mix")?,
        Some(GenFixture::File(path)) => {
            let bytes = std::fs::read(path)
                .map_err(|e| BuildError::new(format!("fixture {}: {e}", path.display())))?;
            frames_of(&bytes, &path.display().to_string())?
        }
    };
    if p.src.is_some() || p.dst.is_some() {
        // Frames that are not well-formed UDP keep their bytes.
        for f in &mut frames {
            if let Ok(view) = UdpFrame::new_checked(&f[..]) {
                let mut ends = view.endpoints();
                ends.src = p.src.unwrap_or(ends.src);
                ends.dst = p.dst.unwrap_or(ends.dst);
                let _ = rewrite_endpoints(f, &ends);
            }
        }
    }
    Ok(Gen::new(
        frames,
        GenConfig {
            rate: p.rate,
            count: p.count,
            burst: p.burst,
        },
    ))
}
