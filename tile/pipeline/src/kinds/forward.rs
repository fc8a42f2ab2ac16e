//! The forward tile: every input merged, unchanged, into output 0.
//!
//! # What it does
//!
//! [`Forward`] reads each of its inputs in turn (the run loop's round
//! robin) and publishes every frag's packet on output 0: the same bytes,
//! the same signature, the same `tsorig`, and the producer's ERR flag if
//! it was set. A frag from an AF_XDP receive link may start its packet
//! `origin` bytes into the payload (see [`crate::kinds::net_xdp`]); the forward
//! tile publishes only the packet, with origin 0, so everything downstream
//! of it sees plain packets. Frags of one input keep their order; frags of
//! different inputs interleave as they arrive.
//!
//! # What it counts
//!
//! - `forwarded`: frags published on output 0;
//! - `bytes`: the packet bytes of those frags.
//!
//! # Bad frags
//!
//! The forward tile does not look inside packets, so a malformed frame is
//! forwarded like any other and an empty one goes on as an empty frag. A
//! frag whose origin lies beyond its size carries no packet: it is
//! forwarded as an empty frag. A packet longer than output 0's mtu cannot
//! be published; it is dropped and counted in [`Forward::too_long`].
//!
//! It is the smallest tile that reads frags, and reads like any other:
//! [`FragCopy`] in `during_frag`, [`Outputs::publish_packet`] in
//! `after_frag`.

use core::sync::atomic::AtomicU8;

use tilewire_tile::link::frag::FragMeta;
use tilewire_tile::stem::{FragCopy, Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, NoParams, TileKind};

/// Merges every input into output 0 (see the [module docs](self)).
#[derive(Debug)]
pub struct Forward {
    copy: FragCopy,
    forwarded: u64,
    bytes: u64,
    too_long: u64,
}

impl Default for Forward {
    fn default() -> Self {
        Forward::new()
    }
}

impl Forward {
    /// A forward tile.
    pub fn new() -> Forward {
        Forward {
            copy: FragCopy::new(),
            forwarded: 0,
            bytes: 0,
            too_long: 0,
        }
    }

    /// Frags published on output 0.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Packet bytes published on output 0.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Packets dropped because they were longer than output 0's mtu.
    pub fn too_long(&self) -> u64 {
        self.too_long
    }
}

impl Tile for Forward {
    fn kind(&self) -> &str {
        "forward"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["forwarded", "bytes"]
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        let packet = self.copy.packet(meta);
        match out.publish_packet(0, packet, meta.sig, meta.ctl, meta.tsorig) {
            Ok(_) => {
                self.forwarded += 1;
                self.bytes += packet.len() as u64;
            }
            // Backpressure cannot happen (one publish per frag, and the loop
            // reads only with a burst of credits); count it with the rest.
            Err(_) => self.too_long += 1,
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        for (c, v) in counters.iter_mut().zip([self.forwarded, self.bytes]) {
            *c = v;
        }
    }
}

/// The `forward` kind: 1 to 16 inputs merged into exactly 1 output. No params.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardKind;

impl TileKind for ForwardKind {
    type Params = NoParams;

    fn name(&self) -> &str {
        "forward"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=16, 1..=1)
    }

    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Forward::new()))
    }
}
