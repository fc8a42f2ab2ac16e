//! dcache: the payload arena of a link.
//!
//! # Layout
//!
//! ```text
//! 0     magic, mtu, depth, data_sz          (static after new)
//! 4096  data: data_sz bytes in 64-byte chunks, 4096-aligned
//! ```
//!
//! The data region is 4096-aligned so it can also be registered as an
//! AF_XDP UMEM. Frags point into it by *chunk*: 64-byte units counted from
//! the workspace base, so the same number means the same bytes in every
//! process, whatever address each mapped the workspace at.
//!
//! # Compact ring allocation
//!
//! A producer writes each payload at its current chunk and moves on by the
//! payload's size rounded up to whole chunks ([`DCacheHandle::next_chunk`]);
//! past the *watermark* it wraps to the start. The watermark leaves one MTU
//! of room at the end, so a payload never straddles the end of the region,
//! and small payloads pack densely.
//!
//! # Sizing rule
//!
//! The data region holds `(depth + 1)` MTUs, and the watermark sits one MTU
//! from its end. Between two uses of the same chunk the producer allocates
//! at least a watermark's worth of chunks, that is at least `depth` frags.
//! So a payload is only overwritten after its frag's mcache line has been
//! reused, and the mcache's invalidate-then-write order lets a lapped
//! consumer notice any torn copy.
//!
//! The same holds for a whole MTU at the producer's current chunk, not
//! only for the bytes the next frag turns out to use: a byte in
//! `[chunk, chunk + MTU)` last belonged to a frag that started before the
//! previous wrap, and at least `depth` frags were allocated since that one
//! (the stretch from it to the watermark plus the stretch from the start to
//! `chunk` is at least `(depth - 1)` MTUs plus a chunk). That is what lets
//! a producer hand out a full MTU to be written in place before it knows
//! the frag's size (see [`DCacheHandle::bytes`] and the producer's
//! `reserve`): the newest frag it can touch is the one whose line the next
//! seq reuses, and that line is invalidated first.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{
    load_bytes, store_bytes, DeleteError, JoinError, NewError, Region, ShmObject,
};

use crate::link::frag::CHUNK_SZ;

const KIND: &str = "dcache";
const HDR: usize = 4096;

/// Largest MTU (frag sizes are u16).
pub const MTU_MAX: usize = u16::MAX as usize;

/// The dcache object (its verbs; handles are [`DCacheHandle`]).
#[derive(Debug)]
pub enum DCache {}

/// Chunks that hold `sz` bytes.
pub const fn chunks(sz: usize) -> usize {
    sz.div_ceil(CHUNK_SZ)
}

impl DCache {
    /// Versioned magic.
    pub const MAGIC: u64 = magic(b"tw.dcch", 1);
    /// Alignment of the object (and of its data region).
    pub const ALIGN: usize = 4096;

    /// Bytes of the data region for `depth` frags of up to `mtu` bytes.
    pub const fn data_sz(mtu: usize, depth: u64) -> Option<usize> {
        if mtu == 0 || mtu > MTU_MAX || depth == 0 || depth > (1 << 32) {
            return None;
        }
        let Some(n) = (depth as usize + 1).checked_mul(chunks(mtu) * CHUNK_SZ) else {
            return None;
        };
        n.checked_next_multiple_of(4096)
    }

    /// Bytes for a dcache of `depth` frags of up to `mtu` bytes; `None` for
    /// mtu 0 or over [`MTU_MAX`], depth 0 or overflow.
    pub const fn footprint(mtu: usize, depth: u64) -> Option<usize> {
        match Self::data_sz(mtu, depth) {
            Some(d) => d.checked_add(HDR),
            None => None,
        }
    }

    /// Formats `mem` as a dcache.
    ///
    /// # Errors
    /// [`NewError::BadParams`]; misaligned, too small or read-only memory.
    pub fn new(mem: Region<'_>, mtu: usize, depth: u64) -> Result<(), NewError> {
        let data_sz = Self::data_sz(mtu, depth).ok_or(NewError::BadParams {
            what: "mtu must be 1..=65535 and depth at least 1",
        })?;
        check_new(&mem, Self::ALIGN, HDR + data_sz)?;
        let w = mem.atomic_u64s(0, 4).ok_or(NewError::TooSmall {
            len: mem.len(),
            need: HDR,
        })?;
        // Relaxed: publish_magic's Release orders these.
        w[1].store(mtu as u64, Ordering::Relaxed);
        w[2].store(depth, Ordering::Relaxed);
        w[3].store(data_sz as u64, Ordering::Relaxed);
        publish_magic(&mem, Self::MAGIC);
        Ok(())
    }

    /// Joins the dcache at `mem`, which starts at `gaddr` in its workspace
    /// (any base works for memory outside a workspace, as long as producer
    /// and consumers agree).
    ///
    /// # Errors
    /// Misaligned or too small memory, wrong magic or version, stored sizes
    /// that are invalid or inconsistent, or a data region whose chunk
    /// numbers would not fit in 32 bits.
    pub fn join(mem: Region<'_>, gaddr: u64) -> Result<DCacheHandle<'_>, JoinError> {
        check_join(&mem, KIND, Self::MAGIC, Self::ALIGN, HDR)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let w = mem.atomic_u64s(0, 4).ok_or(bad("header"))?;
        let (mtu, depth, data_sz) = (
            w[1].load(Ordering::Relaxed) as usize,
            w[2].load(Ordering::Relaxed),
            w[3].load(Ordering::Relaxed) as usize,
        );
        if Self::data_sz(mtu, depth) != Some(data_sz) {
            return Err(bad("mtu, depth and data size disagree"));
        }
        if HDR + data_sz > mem.len() {
            return Err(JoinError::TooSmall {
                len: mem.len(),
                need: HDR + data_sz,
            });
        }
        if !gaddr.is_multiple_of(64) {
            return Err(bad("gaddr is not a multiple of 64"));
        }
        let chunk0 = (gaddr + HDR as u64) / CHUNK_SZ as u64;
        let chunk_end = chunk0 + (data_sz / CHUNK_SZ) as u64;
        if chunk_end > u32::MAX as u64 {
            return Err(bad("data region lies beyond chunk 2^32 of the workspace"));
        }
        let data = mem.atomic_bytes(HDR, data_sz).ok_or(bad("data"))?;
        let mtu_chunks = chunks(mtu) as u32;
        Ok(DCacheHandle {
            mem,
            data,
            mtu,
            depth,
            chunk0: chunk0 as u32,
            chunk_end: chunk_end as u32,
            wmark: chunk_end as u32 - mtu_chunks,
        })
    }

    /// Leaves: gives the memory back.
    pub fn leave(h: DCacheHandle<'_>) -> Region<'_> {
        h.mem
    }

    /// Deletes the dcache at `mem` (zeroes the magic).
    ///
    /// # Errors
    /// Read-only memory, or no live dcache there.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, Self::MAGIC, Self::ALIGN)
    }
}

impl ShmObject for DCache {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = DCache::MAGIC;
    const ALIGN: usize = DCache::ALIGN;
    type Params = (usize, u64);
    fn footprint(p: &(usize, u64)) -> Option<usize> {
        DCache::footprint(p.0, p.1)
    }
}

/// A joined dcache.
#[derive(Debug, Clone, Copy)]
pub struct DCacheHandle<'a> {
    mem: Region<'a>,
    data: &'a [AtomicU8],
    mtu: usize,
    depth: u64,
    chunk0: u32,
    chunk_end: u32,
    wmark: u32,
}

impl<'a> DCacheHandle<'a> {
    /// Largest payload.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Frags the sizing rule was made for.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// First chunk of the data region.
    pub fn chunk0(&self) -> u32 {
        self.chunk0
    }

    /// Last chunk a payload may start at.
    pub fn wmark(&self) -> u32 {
        self.wmark
    }

    /// The data region (4096-aligned), e.g. to register as a UMEM.
    pub fn data(&self) -> Region<'a> {
        self.mem.sub(HDR, self.data.len()).unwrap_or(self.mem)
    }

    /// Where the payload after one of `sz` bytes at `chunk` goes.
    #[inline]
    pub fn next_chunk(&self, chunk: u32, sz: usize) -> u32 {
        let next = chunk + chunks(sz) as u32;
        if next > self.wmark {
            self.chunk0
        } else {
            next
        }
    }

    /// Byte offset of `[chunk, chunk + sz)` in the data region, if it lies
    /// wholly inside it. A frag that fails this is counted and dropped by
    /// the consumer, never read.
    #[inline]
    pub fn offset(&self, chunk: u32, sz: usize) -> Option<usize> {
        if chunk < self.chunk0 || chunk >= self.chunk_end {
            return None;
        }
        let off = (chunk - self.chunk0) as usize * CHUNK_SZ;
        (off + sz <= self.data.len()).then_some(off)
    }

    /// Writes `payload` at `chunk`.
    ///
    /// # Panics
    /// If the payload is longer than the MTU or `chunk` is not inside the
    /// region (a producer bug: producers only use chunks from
    /// [`DCacheHandle::next_chunk`]).
    #[inline]
    pub fn write(&self, chunk: u32, payload: &[u8]) {
        assert!(
            payload.len() <= self.mtu,
            "payload {} > mtu {}",
            payload.len(),
            self.mtu
        );
        let off = self
            .offset(chunk, payload.len())
            .expect("chunk inside the dcache");
        store_bytes(&self.data[off..], payload);
    }

    /// Copies the payload of a frag at `chunk` into `dst` (its length is the
    /// frag's size). Returns false, copying nothing, if the frag's bounds
    /// leave the data region. The copy may be torn: call the mcache's
    /// `check` after it.
    #[inline]
    pub fn read(&self, chunk: u32, dst: &mut [u8]) -> bool {
        match self.offset(chunk, dst.len()) {
            Some(off) => {
                load_bytes(dst, &self.data[off..]);
                true
            }
            None => false,
        }
    }

    /// The payload bytes of a frag, as shared atomics, for consumers that
    /// read in place (hash, checksum) rather than copy.
    #[inline]
    pub fn bytes(&self, chunk: u32, sz: usize) -> Option<&'a [AtomicU8]> {
        self.offset(chunk, sz).map(|off| &self.data[off..off + sz])
    }

    /// The data region's words, for in-place readers that go a word at a
    /// time (offsets in 8-byte units from the region's start).
    pub fn words(&self) -> Option<&'a [AtomicU64]> {
        self.mem.atomic_u64s(HDR, self.data.len() / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::heap::HeapMem;

    #[test]
    fn footprint_rules() {
        assert_eq!(DCache::data_sz(64, 1), Some(4096));
        assert_eq!(
            DCache::data_sz(1232, 1024),
            Some((1025 * 20 * 64usize).next_multiple_of(4096))
        );
        assert_eq!(DCache::footprint(0, 1), None);
        assert_eq!(DCache::footprint(65536, 1), None);
        assert_eq!(DCache::footprint(64, 0), None);
    }

    #[test]
    fn write_read_wrap_and_bounds() {
        let mut buf = HeapMem::new(4 * 4096);
        let r = buf.region();
        DCache::new(r, 100, 4).unwrap();
        let dc = DCache::join(r, 8192).unwrap();
        assert_eq!(dc.chunk0(), (8192 + 4096) / 64);
        let mut c = dc.chunk0();
        let mut seen = Vec::new();
        for i in 0..50u8 {
            let p = vec![i; 1 + (i as usize * 7) % 100];
            dc.write(c, &p);
            let mut back = vec![0; p.len()];
            assert!(dc.read(c, &mut back));
            assert_eq!(back, p);
            seen.push(c);
            c = dc.next_chunk(c, p.len());
            assert!(c >= dc.chunk0() && c <= dc.wmark());
        }
        assert!(
            seen.iter().filter(|&&c| c == dc.chunk0()).count() > 1,
            "wrapped"
        );
        let mut dst = [0u8; 10];
        assert!(!dc.read(dc.chunk0() - 1, &mut dst), "below the region");
        assert!(!dc.read(u32::MAX, &mut dst), "far above");
        let last = dc.chunk0() + (DCache::data_sz(100, 4).unwrap() / 64) as u32 - 1;
        assert!(dc.read(last, &mut dst), "last chunk, small frag");
        assert!(!dc.read(last, &mut [0u8; 65]), "frag runs off the end");
        assert!(
            matches!(DCache::join(r, 100), Err(JoinError::BadParams { .. })),
            "gaddr not 64-aligned"
        );
    }

    /// An MTU written in place at the producer's chunk (a reservation,
    /// before the frag's size is known) only overlaps frags at least
    /// `depth` back, whatever the sizes were.
    #[test]
    fn a_full_mtu_at_the_current_chunk_overlaps_only_frags_depth_back() {
        for (mtu, depth) in [(64usize, 2u64), (300, 8), (1232, 16), (100, 5)] {
            let mut buf = HeapMem::new(DCache::footprint(mtu, depth).unwrap());
            let r = buf.region();
            DCache::new(r, mtu, depth).unwrap();
            let dc = DCache::join(r, 0).unwrap();
            assert!(dc.bytes(dc.wmark(), mtu).is_some(), "room for an mtu");
            let mut c = dc.chunk0();
            let mut frags: Vec<(u32, u32)> = Vec::new();
            let (mut x, mut overlaps) = (mtu as u64, 0u64);
            for _ in 0..3000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                // Mostly tiny frags, now and then a full one: the mix that
                // packs the most frags between two full reservations.
                let sz = match (x >> 33) % 4 {
                    0 => mtu,
                    _ => 1 + (x >> 40) as usize % 64,
                }
                .min(mtu);
                let reserved_end = c + chunks(mtu) as u32;
                for (back, &(s, e)) in frags.iter().rev().enumerate() {
                    if s < reserved_end && c < e {
                        overlaps += 1;
                        assert!(
                            back as u64 + 1 >= depth,
                            "mtu {mtu} depth {depth}: reservation overlaps the frag {} back",
                            back + 1
                        );
                    }
                }
                frags.push((c, c + chunks(sz) as u32));
                c = dc.next_chunk(c, sz);
            }
            assert!(overlaps > 1000, "the ring wrapped many times");
        }
    }

    #[test]
    fn chunk_reuse_distance_is_at_least_depth() {
        let mut buf = HeapMem::new(8 * 4096 * 8);
        let r = buf.region();
        let (mtu, depth) = (300usize, 8u64);
        DCache::new(r, mtu, depth).unwrap();
        let dc = DCache::join(r, 0).unwrap();
        let mut c = dc.chunk0();
        let mut frags: Vec<(u32, u32)> = Vec::new();
        let mut x = 12345u64;
        for _ in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let sz = 1 + (x >> 33) as usize % mtu;
            let end = c + chunks(sz) as u32;
            for (back, &(s, e)) in frags.iter().rev().enumerate() {
                if s < end && c < e {
                    assert!(
                        back as u64 + 1 >= depth,
                        "chunk reused after {} frags",
                        back + 1
                    );
                    break;
                }
            }
            frags.push((c, end));
            c = dc.next_chunk(c, sz);
        }
    }
}
