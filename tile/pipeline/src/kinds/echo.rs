//! The echo tile: turns each UDP frame into its reply.
//!
//! # What it does
//!
//! [`Echo`] reads input 0 and, for every IPv4 or IPv6 UDP frame, swaps
//! the Ethernet addresses, the IP addresses and the UDP ports
//! ([`swap_endpoints`]) and publishes the result on output 0, with the
//! frag's signature and `tsorig`. The payload is untouched. The swap moves
//! 16-bit words around inside the ranges each checksum covers and adds
//! none, so both checksums stay what they were: right if they were right.
//! Echoing a reply again gives back the original bytes.
//!
//! A packet that starts `origin` bytes into its frag (an AF_XDP receive
//! link, see [`crate::kinds::net_xdp`]) is answered from its origin and goes out
//! with origin 0.
//!
//! # What it counts
//!
//! - `echoed`: replies published;
//! - `not_udp`: frags dropped because they do not hold an IPv4 UDP frame
//!   ([`UdpFrame::check_len`] refuses it: another EtherType or protocol, a
//!   fragment, a truncated or lying header, an empty frag, an origin
//!   beyond the frag's size).
//!
//! A reply longer than output 0's mtu cannot be published: it is dropped
//! and counted in [`Echo::too_long`]. The tile never panics on what a
//! frag holds.
//!
//! [`UdpFrame::check_len`]: tilewire_aio::frame::UdpFrame::check_len

use core::sync::atomic::AtomicU8;

use tilewire_aio::frame::swap_endpoints;

use tilewire_tile::link::frag::FragMeta;
use tilewire_tile::stem::{FragCopy, Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, NoParams, TileKind};

/// Answers every UDP frame to its sender (see the [module docs](self)).
#[derive(Debug)]
pub struct Echo {
    copy: FragCopy,
    echoed: u64,
    not_udp: u64,
    too_long: u64,
}

impl Default for Echo {
    fn default() -> Self {
        Echo::new()
    }
}

impl Echo {
    /// An echo tile.
    pub fn new() -> Echo {
        Echo {
            copy: FragCopy::new(),
            echoed: 0,
            not_udp: 0,
            too_long: 0,
        }
    }

    /// Replies published.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }

    /// Frags dropped for not holding an IPv4 UDP frame.
    pub fn not_udp(&self) -> u64 {
        self.not_udp
    }

    /// Replies dropped because they were longer than output 0's mtu.
    pub fn too_long(&self) -> u64 {
        self.too_long
    }
}

impl Tile for Echo {
    fn kind(&self) -> &str {
        "echo"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["echoed", "not_udp"]
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        // An origin beyond the frag leaves an empty packet, which the
        // frame check refuses like any runt.
        if self.copy.origin_beyond(meta) || swap_endpoints(self.copy.packet_mut(meta)).is_err() {
            self.not_udp += 1;
            return;
        }
        let reply = self.copy.packet(meta);
        match out.publish_packet(0, reply, meta.sig, meta.ctl, meta.tsorig) {
            Ok(_) => self.echoed += 1,
            // Backpressure cannot happen (one publish per frag with a burst
            // of credits); count it with the replies that did not fit.
            Err(_) => self.too_long += 1,
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        for (c, v) in counters.iter_mut().zip([self.echoed, self.not_udp]) {
            *c = v;
        }
    }
}

/// The `echo` kind: exactly 1 input and 1 output; swaps each frame's endpoints. No params.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoKind;

impl TileKind for EchoKind {
    type Params = NoParams;

    fn name(&self) -> &str {
        "echo"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 1..=1)
    }

    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Echo::new()))
    }
}
