//! [`FragCopy`]: the copy of a frag a tile makes in `during_frag` and acts
//! on in `after_frag`.
//!
//! The run loop hands `during_frag` the payload *speculatively*: the
//! producer may be overwriting it while the tile reads, and only the
//! re-check after `during_frag` says whether the read was good. So a tile
//! copies first and acts later, and this is the copy: a buffer of the
//! largest frag, made once, so copying never allocates; `copy` never reads
//! past the payload it is given and never panics, whatever `sz` says.

use core::sync::atomic::AtomicU8;

use tilewire_shmem::load_bytes;

use crate::link::frag::FragMeta;

/// The largest payload a frag can describe (its `sz` is a `u16`).
const FRAG_MAX: usize = u16::MAX as usize;

/// The bytes of the frag a tile read in `during_frag`, kept for
/// `after_frag`: a fixed buffer of the largest frag, so copying never
/// allocates.
#[derive(Clone)]
pub struct FragCopy {
    buf: Box<[u8]>,
    len: usize,
}

impl core::fmt::Debug for FragCopy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FragCopy").field("len", &self.len).finish()
    }
}

impl Default for FragCopy {
    fn default() -> Self {
        FragCopy::new()
    }
}

impl FragCopy {
    /// An empty copy with room for any frag.
    pub fn new() -> FragCopy {
        FragCopy {
            buf: vec![0; FRAG_MAX].into_boxed_slice(),
            len: 0,
        }
    }

    /// The bytes copied (the frag's whole payload, from its chunk's start).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Copies the payload of `meta` (possibly torn: the copy is trusted
    /// only once the run loop calls `after_frag`).
    #[inline]
    pub fn copy(&mut self, meta: &FragMeta, payload: &[AtomicU8]) {
        let n = usize::from(meta.sz).min(payload.len()).min(self.buf.len());
        load_bytes(&mut self.buf[..n], &payload[..n]);
        self.len = n;
    }

    /// The most bytes it holds (the largest frag).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Makes the copy hold `bytes` (plain bytes, already settled: a packet
    /// a tile is about to rewrite) and returns them, writable. Bytes past
    /// [`FragCopy::capacity`] are left out.
    #[inline]
    pub fn set(&mut self, bytes: &[u8]) -> &mut [u8] {
        let n = bytes.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&bytes[..n]);
        self.len = n;
        &mut self.buf[..n]
    }

    /// True if the frag's origin lies beyond its bytes: there is no packet.
    #[inline]
    pub fn origin_beyond(&self, meta: &FragMeta) -> bool {
        usize::from(meta.origin()) > self.len
    }

    /// The packet in the copy: the bytes from the frag's origin on (empty
    /// if the origin lies beyond them).
    #[inline]
    pub fn packet(&self, meta: &FragMeta) -> &[u8] {
        meta.packet(&self.buf[..self.len])
    }

    /// The packet, writable (empty if the origin lies beyond the bytes).
    #[inline]
    pub fn packet_mut(&mut self, meta: &FragMeta) -> &mut [u8] {
        let off = usize::from(meta.origin()).min(self.len);
        &mut self.buf[off..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::frag::ctl;

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
