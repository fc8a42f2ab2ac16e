//! The sink tile: the end of a pipeline that only counts.
//!
//! # What it does
//!
//! [`Sink`] reads all of its inputs and keeps nothing but three numbers:
//! the frags it read, their packet bytes, and a checksum of what they held.
//! It has no outputs. It is the far end of benchmarks and tests: a sender
//! that knows what it sent computes the same checksum with
//! [`packet_checksum`] and compares.
//!
//! # The checksum
//!
//! The checksum is the wrapping sum of [`packet_checksum`] (xxh3-64) over
//! every packet read. A sum does not depend on order, so packets merged
//! from several inputs, or reordered by a pipeline with parallel paths,
//! give the same checksum as long as the same packets arrived, each once.
//! A lost, duplicated or changed packet moves it (but for a chance of one
//! in 2^64).
//!
//! A packet that starts `origin` bytes into its frag (an AF_XDP receive
//! link, see [`crate::kinds::net_xdp`]) counts from its origin.
//!
//! # What it counts
//!
//! - `frags`: frags read, from all inputs;
//! - `bytes`: their packet bytes;
//! - `checksum`: the checksum above.
//!
//! # Bad frags
//!
//! The sink does not look inside packets: a malformed frame is counted
//! like any other. A frag whose origin lies beyond its size holds no
//! packet and counts as an empty one. Nothing a frag holds makes it panic.

use xxhash_rust::xxh3::xxh3_64;

use tilewire_tile::stem::{Frag, Outputs, Reading, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, NoParams, TileKind};

/// What one packet adds to a sink's checksum: the xxh3-64 hash of its
/// bytes. The checksum of a set of packets is the wrapping sum of theirs.
pub fn packet_checksum(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// What a sink counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Frags read.
    pub frags: u64,
    /// Packet bytes read.
    pub bytes: u64,
    /// Wrapping sum of [`packet_checksum`] over the packets read.
    pub checksum: u64,
}

impl SinkStats {
    /// Adds one packet.
    pub fn add(&mut self, packet: &[u8]) {
        self.frags += 1;
        self.bytes += packet.len() as u64;
        self.checksum = self.checksum.wrapping_add(packet_checksum(packet));
    }
}

/// Counts what arrives (see the [module docs](self)).
#[derive(Debug)]
pub struct Sink {
    stats: SinkStats,
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

impl Sink {
    /// A sink.
    pub fn new() -> Sink {
        Sink {
            stats: SinkStats::default(),
        }
    }

    /// What the sink counted so far.
    pub fn stats(&self) -> SinkStats {
        self.stats
    }
}

impl Tile for Sink {
    fn kind(&self) -> &str {
        "sink"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["frags", "bytes", "checksum"]
    }

    // Read settled: on a reliable input, hashed where it lies.
    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, _out: &mut Outputs<'_, '_>) {
        self.stats.add(frag.packet());
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in counters.iter_mut().zip([s.frags, s.bytes, s.checksum]) {
            *c = v;
        }
    }
}

/// The `sink` kind: 1 to 16 inputs, no outputs: consumes and counts. No params.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkKind;

impl TileKind for SinkKind {
    type Params = NoParams;

    fn name(&self) -> &str {
        "sink"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=16, 0..=0)
    }

    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Sink::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_ignores_order_and_sees_every_packet() {
        let packets: [&[u8]; 4] = [b"a", b"bb", b"", b"dddd"];
        let mut forward = SinkStats::default();
        let mut backward = SinkStats::default();
        for p in packets {
            forward.add(p);
        }
        for p in packets.iter().rev() {
            backward.add(p);
        }
        assert_eq!(forward, backward);
        assert_eq!((forward.frags, forward.bytes), (4, 7));
        let want = packets
            .iter()
            .fold(0u64, |s, p| s.wrapping_add(packet_checksum(p)));
        assert_eq!(forward.checksum, want);
        let mut twice = forward;
        twice.add(b"a");
        assert_ne!(twice.checksum, forward.checksum, "a duplicate shows");
    }
}
