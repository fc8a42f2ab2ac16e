//! The forward tile: every input merged, unchanged, into output 0.
//!
//! # What it does
//!
//! [`Forward`] reads each of its inputs in turn (the run loop's round
//! robin) and passes every frag on on output 0 as it came: the same
//! bytes, the same signature, control word (a frag from an AF_XDP receive
//! link keeps the `origin` its packet starts at, see
//! [`crate::kinds::net_xdp`]) and `tsorig`. Frags of one input keep their
//! order; frags of different inputs interleave as they arrive.
//!
//! It reads settled ([`Reading::Settled`]) and passes frags on with
//! [`Outputs::forward`]: from a reliable input onto an output whose readers
//! are all reliable, by chunk, no byte copied (see
//! [`tilewire_tile::stem::forward`]); otherwise with one copy into the
//! output.
//!
//! # What it counts
//!
//! - `forwarded`: frags published on output 0;
//! - `bytes`: the packet bytes of those frags (from their origin).
//!
//! # Bad frags
//!
//! The forward tile does not look inside packets, so a malformed frame is
//! forwarded like any other and an empty one goes on as an empty frag, as
//! does a frag whose origin lies beyond its size. A frag longer than
//! output 0's mtu cannot be published; it is dropped and counted in
//! [`Forward::too_long`].
//!
//! It is the smallest filter, the one to start a kind of your own from:
//! [`Tile::reading`], [`Tile::on_frag`], [`Outputs::forward`].

use tilewire_tile::stem::{Frag, Outputs, Reading, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, NoParams, TileKind};

/// Merges every input into output 0 (see the [module docs](self)).
#[derive(Debug)]
pub struct Forward {
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

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        match out.forward(0, frag) {
            Ok(_) => {
                self.forwarded += 1;
                self.bytes += frag.packet().len() as u64;
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
