//! The dedup tile: passes each packet on the first time it is seen.
//!
//! # What it does
//!
//! [`Dedup`] reads its inputs in turn (one, or the links of the tiles a
//! `count` made upstream: several net tiles, one per queue) and gives
//! every packet a 64-bit *tag*: the
//! xxh3-64 hash of its UDP payload when the frame parses as IPv4 or IPv6
//! UDP ([`udp_payload`]), otherwise the hash of the whole frame (tag 0,
//! the tcache's empty marker, becomes 1 through
//! [`Tcache::canonical_tag`]). The tag goes into a [`Tcache`]: a tag the
//! cache did not hold is a first sight, and the packet is published on
//! output 0 with the same bytes, signature and `tsorig`; a tag it held is a
//! duplicate, and the packet is dropped. Hashing only the UDP payload
//! makes a transaction that arrives twice from different senders (other
//! addresses, ports, IP identification, TTL) one duplicate, which is what a
//! validator wants. The cache remembers the last `depth` distinct tags, so
//! a duplicate further back than that passes again.
//!
//! A packet that starts `origin` bytes into its frag (an AF_XDP receive
//! link, see [`crate::kinds::net_xdp`]) is hashed from its origin.
//!
//! # Zero copy
//!
//! The tile reads settled ([`Reading::Settled`]): on a reliable input it
//! hashes each packet where it lies, and passes a first sight on with
//! [`Outputs::forward`], unchanged (origin included), by chunk when every
//! reader of its output is reliable: no byte of the payload is copied (see
//! [`tilewire_tile::stem::forward`]). On an unreliable input the run loop
//! copies each payload once before the tile sees it, and the forward
//! copies it into the output.
//!
//! # Where the cache lives
//!
//! The tcache is a named allocation of the workspace, [`tcache_name`] of
//! the tile, so a dedup tile restarted after a crash (another process, even)
//! joins the cache its predecessor filled and keeps dropping what that one
//! had already passed on: the duplicates a restart produces upstream (see
//! [`tilewire_tile::stem`], "Crashes") are exactly what it catches. The runner
//! allocates it ([`Tcache::footprint`], [`Tcache::ALIGN`]), formats it
//! ([`Tcache::new`]) if it is new, joins it ([`Tcache::join`]) and hands
//! the handle to [`Dedup::new`]. A monitor reads the cache's own counters
//! through [`Tcache::join_reader`].
//!
//! A tag goes into the cache only once its packet was passed on. A tile
//! killed between the two then leaves a packet passed on and not
//! remembered: its successor, reading it again, passes it on a second
//! time (a duplicate downstream, as a restart may make anywhere). The
//! other order would leave a packet remembered and never passed on, which
//! the successor would drop as a duplicate of itself: lost, and counted
//! nowhere as lost. (`tilewire soak` kills dedup tiles under load and
//! accounts for every packet.)
//!
//! # What it counts
//!
//! - `unique`: packets seen for the first time and published;
//! - `dups`: duplicates dropped;
//! - `not_udp`: packets that are not IPv4 UDP frames, hashed whole (also
//!   counted in `unique` or `dups`);
//! - `bad_frags`: frags with no packet in them (empty, or an origin beyond
//!   the frag's size), dropped without touching the cache.
//!
//! A packet longer than output 0's mtu cannot be published: it is dropped
//! after it entered the cache and counted in [`Dedup::too_long`] (not in
//! `unique`). The tile never panics on what a frag holds.

use serde::{Deserialize, Deserializer};
use tilewire_aio::frame::udp_payload;
use xxhash_rust::xxh3::xxh3_64;

use tilewire_tile::stem::{Frag, Outputs, Reading, Tile};
use tilewire_tile::tcache::{Tcache, TcacheHandle};

use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, Object, Replays, TileKind};
use crate::topo::TileSpec;

/// The named allocation holding tile `tile`'s tcache.
pub fn tcache_name(tile: &str) -> String {
    format!("{tile}.tc")
}

/// The tag of `packet` (a whole Ethernet frame): the xxh3-64 hash of its
/// UDP payload if it is an IPv4 or IPv6 UDP frame ([`udp_payload`]), else
/// of all its bytes, through [`Tcache::canonical_tag`] (never 0). The
/// second value says whether the frame was UDP.
pub fn packet_tag(packet: &[u8]) -> (u64, bool) {
    let (hash, udp) = match udp_payload(packet) {
        Some(payload) => (xxh3_64(payload), true),
        None => (xxh3_64(packet), false),
    };
    (Tcache::canonical_tag(hash), udp)
}

/// What a dedup tile counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// First sights, published.
    pub unique: u64,
    /// Duplicates, dropped.
    pub dups: u64,
    /// Frames that are not IPv4 or IPv6 UDP (hashed whole).
    pub not_udp: u64,
    /// Frags holding no packet, dropped.
    pub bad_frags: u64,
    /// First sights longer than output 0's mtu, dropped.
    pub too_long: u64,
}

/// Drops packets seen before (see the [module docs](self)).
#[derive(Debug)]
pub struct Dedup<'w> {
    tcache: TcacheHandle<'w>,
    stats: DedupStats,
}

impl<'w> Dedup<'w> {
    /// A dedup tile remembering its tags in `tcache` (the allocation named
    /// [`tcache_name`] of the tile, joined as its one writer).
    pub fn new(tcache: TcacheHandle<'w>) -> Dedup<'w> {
        Dedup {
            tcache,
            stats: DedupStats::default(),
        }
    }

    /// What the tile counted so far.
    pub fn stats(&self) -> DedupStats {
        self.stats
    }

    /// First sights dropped because they were longer than output 0's mtu.
    pub fn too_long(&self) -> u64 {
        self.stats.too_long
    }

    /// The tag cache.
    pub fn tcache(&self) -> &TcacheHandle<'w> {
        &self.tcache
    }

    /// Gives the tag cache back (to leave it).
    pub fn into_tcache(self) -> TcacheHandle<'w> {
        self.tcache
    }
}

impl Tile for Dedup<'_> {
    fn kind(&self) -> &str {
        "dedup"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["unique", "dups", "not_udp", "bad_frags"]
    }

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        let packet = frag.packet();
        if packet.is_empty() || usize::from(frag.meta().origin()) > frag.payload().len() {
            self.stats.bad_frags += 1;
            return;
        }
        let (tag, udp) = packet_tag(packet);
        if !udp {
            self.stats.not_udp += 1;
        }
        let Some(absent) = self.tcache.lookup(tag) else {
            self.stats.dups += 1;
            return;
        };
        // Passed on as it came: by chunk, no byte copied. Remembered only
        // after (see "Where the cache lives"), from where the lookup's
        // probe ended.
        let passed = out.forward(0, frag);
        let _ = self.tcache.commit(absent);
        match passed {
            Ok(_) => self.stats.unique += 1,
            // Backpressure cannot happen (one publish per frag with a burst
            // of credits); count it with the packets that did not fit.
            Err(_) => self.stats.too_long += 1,
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in counters
            .iter_mut()
            .zip([s.unique, s.dups, s.not_udp, s.bad_frags])
        {
            *c = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tilewire_aio::frame::{build_vec, UdpEndpoints};

    fn ends(port: u16) -> UdpEndpoints {
        UdpEndpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: format!("198.18.0.1:{port}").parse().unwrap(),
            dst: "198.18.0.2:8001".parse().unwrap(),
        }
    }

    #[test]
    fn the_tag_of_a_udp_frame_is_its_payload_hash_whatever_the_headers() {
        let a = build_vec(&ends(1000), b"same transaction").unwrap();
        let b = build_vec(&ends(2000), b"same transaction").unwrap();
        assert_ne!(a, b);
        assert_eq!(packet_tag(&a), (xxh3_64(b"same transaction"), true));
        assert_eq!(packet_tag(&a), packet_tag(&b));
        let c = build_vec(&ends(1000), b"another one").unwrap();
        assert_ne!(packet_tag(&a).0, packet_tag(&c).0);
        // The same payload over IPv6 is the same transaction.
        let payload = b"same transaction";
        let mut v6 = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        v6.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        v6.extend_from_slice(&[17, 64]);
        v6.extend_from_slice(&[0x20; 32]);
        v6.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x40]);
        v6.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        v6.extend_from_slice(&[0x12, 0x34]);
        v6.extend_from_slice(payload);
        assert_eq!(packet_tag(&v6), packet_tag(&a));
    }

    #[test]
    fn a_frame_that_is_not_udp_is_hashed_whole() {
        let mut arp = build_vec(&ends(1000), b"payload").unwrap();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(packet_tag(&arp), (xxh3_64(&arp), false));
        assert_eq!(packet_tag(b"junk"), (xxh3_64(b"junk"), false));
        assert_eq!(packet_tag(&[]), (xxh3_64(&[]), false));
    }
}

/// The `dedup` kind: exactly 1 input and 1 output; its tag cache is a
/// workspace object ([`tcache_name`]) made with the links.
#[derive(Debug, Clone, Copy, Default)]
pub struct DedupKind;

/// Parameters of a `dedup` tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupParams {
    /// Tags remembered: a power of two up to 2^26 (default 65536).
    #[serde(default = "default_depth", deserialize_with = "depth")]
    pub depth: usize,
}

impl Default for DedupParams {
    fn default() -> Self {
        DedupParams {
            depth: default_depth(),
        }
    }
}

fn default_depth() -> usize {
    65536
}

fn depth<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    crate::params::pow2_in(d, 1, 1 << 26)
}

impl TileKind for DedupKind {
    type Params = DedupParams;

    fn name(&self) -> &str {
        "dedup"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=16, 1..=1)
    }

    /// A replayed frag is a repeat of a tag it remembers.
    fn replays(&self) -> Replays {
        Replays::Remove
    }

    fn check(&self, p: &DedupParams, ctx: &mut CheckCtx<'_>) {
        if Tcache::default_map_cnt(p.depth)
            .and_then(|m| Tcache::footprint(p.depth, m))
            .is_none()
        {
            ctx.field_error("depth", format!("{} is not a usable tcache depth", p.depth));
        }
    }

    fn objects(&self, p: &DedupParams, tile: &TileSpec) -> Vec<Object> {
        let depth = p.depth;
        let map = Tcache::default_map_cnt(depth).unwrap_or(0);
        let size = Tcache::footprint(depth, map).unwrap_or(0);
        vec![Object::new(
            tcache_name(&tile.name),
            Tcache::ALIGN,
            size,
            move |mem| {
                Tcache::new(mem, depth, map).map_err(|e| format!("formatting its tcache: {e}"))
            },
        )]
    }

    fn build<'w>(
        &self,
        _: &DedupParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let part = tcache_name(ctx.name());
        let mem = ctx.object(&part)?;
        let tc = Tcache::join(mem).map_err(|e| BuildError::new(format!("its tcache: {e}")))?;
        Ok(Box::new(Dedup::new(tc)))
    }
}
