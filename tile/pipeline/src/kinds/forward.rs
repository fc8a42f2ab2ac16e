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
//! # Shared with the other kinds
//!
//! `FragCopy` (the copy `during_frag` makes and `after_frag` acts on) and
//! `publish_packet` (publish without ever panicking) live here and are
//! used by every built-in kind that reads frags.

use core::sync::atomic::AtomicU8;

use tilewire_shmem::load_bytes;

use crate::kinds::net_xdp::packet_of;
use tilewire_tile::link::frag::{FragMeta, CTL_ERR, CTL_PKT};
use tilewire_tile::stem::{Outputs, Tile};

/// The largest payload a frag can describe (its `sz` is a `u16`).
const FRAG_MAX: usize = u16::MAX as usize;

/// The bytes of the frag a tile read in `during_frag`, kept for
/// `after_frag`: a fixed buffer of the largest frag, so copying never
/// allocates.
#[derive(Clone)]
pub(crate) struct FragCopy {
    buf: Box<[u8]>,
    len: usize,
}

impl core::fmt::Debug for FragCopy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FragCopy").field("len", &self.len).finish()
    }
}

impl FragCopy {
    /// An empty copy with room for any frag.
    pub(crate) fn new() -> FragCopy {
        FragCopy {
            buf: vec![0; FRAG_MAX].into_boxed_slice(),
            len: 0,
        }
    }

    /// Copies the payload of `meta` (possibly torn: the copy is trusted
    /// only once the run loop calls `after_frag`).
    #[inline]
    pub(crate) fn copy(&mut self, meta: &FragMeta, payload: &[AtomicU8]) {
        let n = usize::from(meta.sz).min(payload.len()).min(self.buf.len());
        load_bytes(&mut self.buf[..n], &payload[..n]);
        self.len = n;
    }

    /// True if the frag's origin lies beyond its bytes: there is no packet.
    #[inline]
    pub(crate) fn origin_beyond(&self, meta: &FragMeta) -> bool {
        usize::from(meta.origin()) > self.len
    }

    /// The packet in the copy: the bytes from the frag's origin on (empty
    /// if the origin lies beyond them).
    #[inline]
    pub(crate) fn packet(&self, meta: &FragMeta) -> &[u8] {
        packet_of(meta, &self.buf[..self.len])
    }

    /// The packet, writable (empty if the origin lies beyond the bytes).
    #[inline]
    pub(crate) fn packet_mut(&mut self, meta: &FragMeta) -> &mut [u8] {
        let off = usize::from(meta.origin()).min(self.len);
        &mut self.buf[off..self.len]
    }
}

/// Why [`publish_packet`] published nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PublishError {
    /// The packet is longer than the output's mtu.
    #[error("packet of {len} bytes is longer than the output's mtu {mtu}")]
    TooLong {
        /// The packet's length.
        len: usize,
        /// The output's mtu.
        mtu: usize,
    },
    /// The output has no credits (a tile published more than its burst).
    #[error("the output has no credits")]
    Backpressure,
}

/// Publishes `packet` as one whole-packet frag (SOM, EOM, origin 0) on
/// output `i`, with `sig`, `tsorig` and the ERR flag of `ctl`.
///
/// # Errors
/// [`PublishError::TooLong`] if `packet` is longer than the output's mtu,
/// [`PublishError::Backpressure`] if the output has no credits. Nothing is
/// published then.
///
/// # Panics
/// If there is no output `i` (a topology error, caught when the tile is
/// first run).
#[inline]
pub(crate) fn publish_packet(
    out: &mut Outputs<'_, '_>,
    i: usize,
    packet: &[u8],
    sig: u64,
    ctl: u16,
    tsorig: u32,
) -> Result<u64, PublishError> {
    let mtu = out.producer(i).mtu();
    if packet.len() > mtu {
        return Err(PublishError::TooLong {
            len: packet.len(),
            mtu,
        });
    }
    out.publish(i, packet, sig, CTL_PKT | (ctl & CTL_ERR), tsorig)
        .map_err(|_| PublishError::Backpressure)
}

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
        match publish_packet(out, 0, packet, meta.sig, meta.ctl, meta.tsorig) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tilewire_tile::link::frag::ctl;

    fn meta(sz: u16, origin: u16) -> FragMeta {
        FragMeta {
            sz,
            ctl: ctl(true, true, false, origin),
            ..FragMeta::default()
        }
    }

    #[test]
    fn frag_copy_honours_the_origin_and_never_reads_past_the_payload() {
        let shared: Vec<AtomicU8> = (0..10u8).map(AtomicU8::new).collect();
        let mut c = FragCopy::new();
        c.copy(&meta(10, 3), &shared);
        assert_eq!(c.packet(&meta(10, 3)), &[3, 4, 5, 6, 7, 8, 9]);
        assert!(!c.origin_beyond(&meta(10, 10)));
        assert!(c.packet(&meta(10, 10)).is_empty());
        assert!(c.origin_beyond(&meta(10, 11)));
        assert!(c.packet_mut(&meta(10, 200)).is_empty());
        // A size larger than the payload handed over is cut to it.
        c.copy(&meta(400, 0), &shared[..4]);
        assert_eq!(c.packet(&meta(400, 0)), &[0, 1, 2, 3]);
    }
}
