//! Frags: what a link carries.
//!
//! A *frag* is one message on a link: its sequence number, a 64-bit
//! signature the consumer can filter on without touching the payload (a
//! hash, a port, a tile-defined tag), where its payload lies in the dcache
//! (`chunk`, in 64-byte units from the workspace base, and `sz` bytes), a
//! control word, and two compressed timestamps:
//!
//! ```text
//! seq     u64  position in the link's stream; wraps
//! sig     u64  consumer-side filter key
//! chunk   u32  payload start, 64-byte units from the workspace base
//! sz      u16  payload bytes
//! ctl     u16  bit 0 SOM, bit 1 EOM, bit 2 ERR, bits 3..16 origin
//! tsorig  u32  low 32 bits of CLOCK_MONOTONIC ns when the packet arrived
//! tspub   u32  the same when this frag was published
//! ```
//!
//! SOM and EOM mark the first and last frag of a message that spans
//! several; a packet is one frag with both set. ERR says the producer knows
//! the payload is bad (a truncated receive); the consumer decides what to do.
//! The origin names which producer or input a frag came from, for tiles that
//! merge several.

/// Start of message.
pub const CTL_SOM: u16 = 1 << 0;
/// End of message.
pub const CTL_EOM: u16 = 1 << 1;
/// The producer flags the payload as bad.
pub const CTL_ERR: u16 = 1 << 2;
/// Shift of the origin field inside `ctl`.
pub const CTL_ORIG_SHIFT: u32 = 3;
/// Largest origin.
pub const CTL_ORIG_MAX: u16 = (1 << (16 - CTL_ORIG_SHIFT)) - 1;

/// Builds a control word.
pub const fn ctl(som: bool, eom: bool, err: bool, origin: u16) -> u16 {
    (som as u16)
        | ((eom as u16) << 1)
        | ((err as u16) << 2)
        | ((origin & CTL_ORIG_MAX) << CTL_ORIG_SHIFT)
}

/// A whole-packet control word: SOM and EOM, no error, origin 0.
pub const CTL_PKT: u16 = ctl(true, true, false, 0);

/// Bytes per dcache chunk: frags address payloads in these units.
pub const CHUNK_SZ: usize = 64;

/// One frag's metadata, as a consumer reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragMeta {
    /// Sequence number.
    pub seq: u64,
    /// Filter signature.
    pub sig: u64,
    /// Payload start, 64-byte units from the workspace base.
    pub chunk: u32,
    /// Payload bytes.
    pub sz: u16,
    /// Control word: SOM, EOM, ERR, origin.
    pub ctl: u16,
    /// When the packet arrived (low 32 bits of monotonic ns).
    pub tsorig: u32,
    /// When this frag was published (low 32 bits of monotonic ns).
    pub tspub: u32,
}

impl FragMeta {
    /// Start of message?
    pub const fn som(&self) -> bool {
        self.ctl & CTL_SOM != 0
    }
    /// End of message?
    pub const fn eom(&self) -> bool {
        self.ctl & CTL_EOM != 0
    }
    /// Flagged bad by the producer?
    pub const fn err(&self) -> bool {
        self.ctl & CTL_ERR != 0
    }
    /// Origin field of the control word.
    pub const fn origin(&self) -> u16 {
        self.ctl >> CTL_ORIG_SHIFT
    }
    /// The packet inside `payload`, the bytes read for this frag:
    /// `payload[origin..]`. A frag received from AF_XDP may start its
    /// packet `origin` bytes into its first chunk (the kernel places it
    /// there; `sz` counts from the chunk's start), so a reader that wants
    /// the packet, not the chunk, asks here. Empty if the origin lies
    /// beyond `payload`; never panics.
    #[inline]
    pub fn packet<'p>(&self, payload: &'p [u8]) -> &'p [u8] {
        let off = usize::from(self.origin()).min(payload.len());
        &payload[off..]
    }
    /// Packs the fields after `seq` and `sig` into the two words an mcache
    /// line stores them in.
    pub(crate) const fn pack(chunk: u32, sz: u16, ctl: u16, tsorig: u32, tspub: u32) -> (u64, u64) {
        (
            chunk as u64 | (sz as u64) << 32 | (ctl as u64) << 48,
            tsorig as u64 | (tspub as u64) << 32,
        )
    }
    /// The inverse of [`FragMeta::pack`].
    pub(crate) const fn unpack(seq: u64, sig: u64, w2: u64, w3: u64) -> FragMeta {
        FragMeta {
            seq,
            sig,
            chunk: w2 as u32,
            sz: (w2 >> 32) as u16,
            ctl: (w2 >> 48) as u16,
            tsorig: w3 as u32,
            tspub: (w3 >> 32) as u32,
        }
    }
}

/// Signed distance from `b` to `a` in sequence space: negative if `a` is
/// older. Correct across wraparound as long as the two are within 2^63.
pub const fn seq_diff(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_bits_and_origin() {
        let c = ctl(true, false, true, 77);
        let m = FragMeta {
            ctl: c,
            ..Default::default()
        };
        assert!(m.som() && !m.eom() && m.err());
        assert_eq!(m.origin(), 77);
        assert_eq!(
            ctl(false, false, false, CTL_ORIG_MAX + 1),
            0,
            "origin is masked"
        );
        assert_eq!(CTL_PKT, 3);
    }

    #[test]
    fn pack_round_trips_every_field() {
        let (w2, w3) = FragMeta::pack(0xdead_beef, 1232, 0xffff, 7, u32::MAX);
        let m = FragMeta::unpack(5, 6, w2, w3);
        assert_eq!(
            m,
            FragMeta {
                seq: 5,
                sig: 6,
                chunk: 0xdead_beef,
                sz: 1232,
                ctl: 0xffff,
                tsorig: 7,
                tspub: u32::MAX
            }
        );
    }

    #[test]
    fn seq_diff_wraps() {
        assert_eq!(seq_diff(0, u64::MAX), 1);
        assert_eq!(seq_diff(u64::MAX, 0), -1);
        assert_eq!(seq_diff(10, 3), 7);
    }
}
