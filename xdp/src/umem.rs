//! The UMEM: the packet memory an AF_XDP socket shares with the kernel.
//!
//! # Frames and who owns them
//!
//! The UMEM is cut into [`FRAME_SIZE`]-byte frames, each named by its
//! offset from the UMEM's start (its *address*, a multiple of the frame
//! size). At every moment each frame has exactly one owner:
//!
//! - the **fill ring** and then the **kernel**, which receives a packet
//!   into it and hands it back on the **rx ring**;
//! - a **line** of the link it was published on (zero-copy receive: the
//!   frame stays with its mcache line until a newer frag takes the line);
//! - the **tx free list**, from which [`crate::Xsk`]'s send takes a frame
//!   to copy a packet into;
//! - the **tx ring** and then the kernel, which sends it and hands it back
//!   on the **completion ring**.
//!
//! Frames are never created or lost, only passed on: fill + rx + lines +
//! tx free + tx in flight = every frame, always (a property test checks
//! it after every operation, see `tests/frames.rs`).
//!
//! # A UMEM that spans more than its frames
//!
//! [`Umem::spanning`] registers a larger page-aligned span (say, from the
//! receive link's data region to the dcaches of the links the socket
//! transmits from, all in one workspace) while the frames above are only
//! those of the *pool* inside it, at `pool_off + i * FRAME_SIZE`. The
//! rest of the span is never on the fill ring, so the kernel never writes
//! it; it only reads what an in-place send ([`crate::Xsk::send_in_place`])
//! names there. Those bytes are no frame and have no place in the ledger:
//! they stay their owner's (a link's dcache, whose producer must not
//! rewrite them) from the send until its completion comes back, which goes
//! to the caller ([`crate::Xsk::in_place_done`]), never to the free list.
//! A completion is a pool frame exactly when its address lies in the pool,
//! and in-place sends never overlap it (refused), so no frame is ever
//! owned twice. A spanning UMEM is registered in unaligned-chunk mode, so
//! a send may start anywhere and cross a 2048-byte boundary; the kernel
//! then hands rx addresses back as `frame + (offset << 48)`, which
//! [`Umem::rx_addr`] folds back before [`Umem::frame_of`] checks them
//! (completion addresses come back as submitted). A plain UMEM
//! ([`Umem::new`]) is registered aligned, exactly as before.
//!
//! # Where it lives
//!
//! tilewire places the UMEM in a workspace, as the data region of a link's
//! dcache (4096-aligned for this reason), so the tiles that read a link
//! in other processes read the received packets where the NIC wrote them.
//! A [`Umem`] only borrows that memory ([`Region`]); the workspace must
//! outlive every socket that registered it, which the borrow enforces.
//!
//! # Descriptors from the kernel are checked
//!
//! A descriptor the kernel hands back (rx or completion) is followed only
//! if its address lies inside the UMEM and its bytes inside one frame
//! ([`Umem::frame_of`]); anything else is counted and dropped.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use tilewire_shmem::{AllocError, Region, Workspace};

/// Bytes per UMEM frame: room for any 1500-byte-MTU Ethernet frame after
/// the kernel's 256 bytes of XDP headroom.
pub const FRAME_SIZE: u32 = 2048;

/// Alignment the UMEM's start needs: a page.
pub const UMEM_ALIGN: usize = 4096;

/// Why memory cannot be a UMEM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UmemError {
    /// The memory does not start on a page boundary.
    #[error(
        "UMEM at {addr:#x} is not {UMEM_ALIGN}-aligned: place it at a page \
         boundary (a dcache's data region is)"
    )]
    Misaligned {
        /// Where it starts.
        addr: usize,
    },
    /// A spanning UMEM's pool does not lie inside its span.
    #[error(
        "UMEM pool at {pool:#x} is not inside the span {span:#x}+{span_len:#x}: \
         the span must cover the pool"
    )]
    PoolOutsideSpan {
        /// Where the pool starts.
        pool: usize,
        /// Where the span starts.
        span: usize,
        /// The span's length.
        span_len: usize,
    },
    /// The memory holds fewer frames than asked for.
    #[error(
        "UMEM of {len} bytes holds {have} frames of {FRAME_SIZE} bytes; {need} are \
         needed: make it at least {} bytes or shrink the rings",
        *need as u64 * FRAME_SIZE as u64
    )]
    TooSmall {
        /// Its length.
        len: usize,
        /// Frames it holds.
        have: u32,
        /// Frames needed.
        need: u32,
    },
    /// The memory is mapped read-only (a read-only workspace join).
    #[error("UMEM memory is read-only: join the workspace read-write")]
    ReadOnly,
    /// The workspace had no room for the UMEM (or the name is taken).
    #[error("allocating UMEM {name:?} in the workspace: {source}")]
    Alloc {
        /// The allocation's name.
        name: String,
        /// Why it failed.
        source: AllocError,
    },
}

/// Bits of an unaligned-mode rx address that hold the base; the bits above
/// hold the offset the kernel added (`XSK_UNALIGNED_BUF_OFFSET_SHIFT`).
pub const UNALIGNED_OFFSET_SHIFT: u32 = 48;

/// A UMEM: page-aligned memory registered with the kernel, whose pool of
/// [`FRAME_SIZE`]-byte frames is either all of it ([`Umem::new`]) or a
/// part of it ([`Umem::spanning`]).
#[derive(Debug, Clone, Copy)]
pub struct Umem<'a> {
    /// The registered memory (the span).
    region: Region<'a>,
    /// Where the pool starts in it (a multiple of [`FRAME_SIZE`]).
    pool_off: u64,
    /// Frames in the pool.
    frames: u32,
    /// Registered with `XDP_UMEM_UNALIGNED_CHUNK_FLAG` (a spanning UMEM).
    unaligned: bool,
}

impl<'a> Umem<'a> {
    /// Uses `region` as a UMEM: as many whole frames as it holds (a tail
    /// shorter than a frame is left out).
    ///
    /// # Errors
    /// [`UmemError::Misaligned`] if it does not start on a page boundary,
    /// [`UmemError::ReadOnly`] if it cannot be written,
    /// [`UmemError::TooSmall`] if it holds no frame at all.
    pub fn new(region: Region<'a>) -> Result<Umem<'a>, UmemError> {
        if !region.is_aligned(UMEM_ALIGN) {
            return Err(UmemError::Misaligned {
                addr: region.as_ptr() as usize,
            });
        }
        if !region.is_writable() {
            return Err(UmemError::ReadOnly);
        }
        let frames = u32::try_from(region.len() / FRAME_SIZE as usize).unwrap_or(u32::MAX);
        if frames == 0 {
            return Err(UmemError::TooSmall {
                len: region.len(),
                have: 0,
                need: 1,
            });
        }
        Ok(Umem {
            region,
            pool_off: 0,
            frames,
            unaligned: false,
        })
    }

    /// A UMEM that registers all of `span` with the kernel but takes its
    /// frames (fill ring, receive, transmit free list) only from `pool`,
    /// which lies inside it: the rest of the span is memory the socket may
    /// transmit from in place ([`crate::Xsk::send_in_place`]) and the
    /// kernel never writes. It is registered in unaligned-chunk mode
    /// (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`), so a send may start at any
    /// address of the span; the pool's frames stay [`FRAME_SIZE`]-aligned.
    ///
    /// # Errors
    /// [`UmemError::Misaligned`] if `span` or `pool` does not start on a
    /// page boundary, or the span's length is not whole pages;
    /// [`UmemError::ReadOnly`] if either cannot be written;
    /// [`UmemError::TooSmall`] if the pool holds no frame;
    /// [`UmemError::PoolOutsideSpan`] if `pool` is not inside `span`.
    pub fn spanning(pool: Region<'a>, span: Region<'a>) -> Result<Umem<'a>, UmemError> {
        let mut u = Umem::new(pool)?;
        if !span.is_aligned(UMEM_ALIGN) || !span.len().is_multiple_of(UMEM_ALIGN) {
            return Err(UmemError::Misaligned {
                addr: span.as_ptr() as usize,
            });
        }
        if !span.is_writable() {
            return Err(UmemError::ReadOnly);
        }
        let (p, s) = (pool.as_ptr() as usize, span.as_ptr() as usize);
        let pool_len = u.pool_len();
        if p < s || p - s > span.len() || span.len() - (p - s) < pool_len {
            return Err(UmemError::PoolOutsideSpan {
                pool: p,
                span: s,
                span_len: span.len(),
            });
        }
        u.region = span;
        u.pool_off = (p - s) as u64;
        u.unaligned = true;
        Ok(u)
    }

    /// Allocates a UMEM of `frames` frames in `ws` under `name`
    /// (page-aligned), for a socket that receives by copying; a link that
    /// receives zero-copy uses its dcache's data region instead. Free it
    /// with `ws.free_named(name)` once no socket uses it.
    ///
    /// # Errors
    /// [`UmemError::Alloc`] if the workspace has no room or the name is
    /// taken; [`UmemError::ReadOnly`] for a read-only join;
    /// [`UmemError::TooSmall`] for 0 frames.
    pub fn alloc_named(ws: &'a Workspace, name: &str, frames: u32) -> Result<Umem<'a>, UmemError> {
        if frames == 0 {
            return Err(UmemError::TooSmall {
                len: 0,
                have: 0,
                need: 1,
            });
        }
        let len = frames as usize * FRAME_SIZE as usize;
        let alloc = |source| UmemError::Alloc {
            name: name.to_string(),
            source,
        };
        let g = ws.alloc_named(name, UMEM_ALIGN, len, 0).map_err(alloc)?;
        let region = ws
            .region(g, len)
            .expect("a fresh allocation lies inside its workspace");
        Umem::new(region)
    }

    /// Frames in the UMEM's pool.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Bytes registered with the kernel: the pool's whole frames, or the
    /// whole span of a spanning UMEM.
    pub fn len(&self) -> usize {
        if self.unaligned {
            self.region.len()
        } else {
            self.pool_len()
        }
    }

    /// Bytes of the pool's frames.
    pub fn pool_len(&self) -> usize {
        self.frames as usize * FRAME_SIZE as usize
    }

    /// Where the pool starts (UMEM address of its first frame; 0 unless
    /// spanning).
    pub fn pool_off(&self) -> u64 {
        self.pool_off
    }

    /// The UMEM address of pool frame `i` (`i < frames()`).
    #[inline]
    pub fn frame_addr(&self, i: u32) -> u64 {
        debug_assert!(i < self.frames);
        self.pool_off + u64::from(i) * u64::from(FRAME_SIZE)
    }

    /// True for a spanning UMEM (registered in unaligned-chunk mode).
    pub fn is_unaligned(&self) -> bool {
        self.unaligned
    }

    /// The UMEM address an rx descriptor's `addr` names: in unaligned mode
    /// the kernel returns `base + (offset << 48)`, which this folds into
    /// `base + offset`; in aligned mode the address as it is.
    #[inline]
    pub fn rx_addr(&self, addr: u64) -> u64 {
        if self.unaligned {
            let base = addr & ((1u64 << UNALIGNED_OFFSET_SHIFT) - 1);
            base.wrapping_add(addr >> UNALIGNED_OFFSET_SHIFT)
        } else {
            addr
        }
    }

    /// True if `len` bytes at UMEM address `addr` lie inside the
    /// registered memory.
    #[inline]
    pub fn in_span(&self, addr: u64, len: u32) -> bool {
        addr.checked_add(u64::from(len))
            .is_some_and(|end| end <= self.len() as u64)
    }

    /// True if `len` bytes at `addr` share a byte with the pool.
    #[inline]
    pub fn overlaps_pool(&self, addr: u64, len: u32) -> bool {
        let end = addr.saturating_add(u64::from(len));
        addr < self.pool_off + self.pool_len() as u64 && end > self.pool_off
    }

    /// The UMEM address of `ptr`, if `len` bytes there lie inside the
    /// registered memory.
    pub fn addr_of(&self, ptr: *const u8, len: usize) -> Option<u64> {
        let off = (ptr as usize).checked_sub(self.region.as_ptr() as usize)?;
        let len32 = u32::try_from(len).ok()?;
        self.in_span(off as u64, len32).then_some(off as u64)
    }

    /// Never true: a UMEM holds at least one frame.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The registered memory (the whole region given to [`Umem::new`], or
    /// the span given to [`Umem::spanning`]); UMEM addresses count from
    /// its start.
    pub fn region(&self) -> Region<'a> {
        self.region
    }

    /// The frame holding `len` bytes at `addr`, or `None` if they are not
    /// all inside one frame of this UMEM: the check every descriptor from
    /// the kernel passes before it is followed.
    #[inline]
    pub fn frame_of(&self, addr: u64, len: u32) -> Option<u64> {
        let frame = addr & !(u64::from(FRAME_SIZE) - 1);
        let end = addr.checked_add(u64::from(len))?;
        (frame >= self.pool_off
            && frame - self.pool_off < self.pool_len() as u64
            && end <= frame + u64::from(FRAME_SIZE))
        .then_some(frame)
    }

    /// The `len` bytes at `addr`.
    ///
    /// # Safety
    /// `frame_of(addr, len)` must be `Some`, and the frame must be the
    /// caller's (taken off the rx ring and not yet given back, or a line's):
    /// then neither the kernel nor anyone else writes it while the slice
    /// lives.
    #[inline]
    pub(crate) unsafe fn bytes(&self, addr: u64, len: u32) -> &'a [u8] {
        debug_assert!(self.frame_of(addr, len).is_some());
        // SAFETY: inside the region (frame_of), and no writer meanwhile
        // (the caller owns the frame).
        unsafe { std::slice::from_raw_parts(self.region.as_ptr().add(addr as usize), len as usize) }
    }

    /// The `len` bytes at `addr` anywhere in the registered memory.
    ///
    /// # Safety
    /// `in_span(addr, len)` must be true, and no one may write those bytes
    /// while the slice lives.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) unsafe fn span_bytes(&self, addr: u64, len: u32) -> &'a [u8] {
        assert!(self.in_span(addr, len));
        // SAFETY: inside the region (asserted); no writer (the caller's
        // promise).
        unsafe { std::slice::from_raw_parts(self.region.as_ptr().add(addr as usize), len as usize) }
    }

    /// Copies `src` into frame `frame` from its start.
    ///
    /// # Safety
    /// `frame` must be a frame address of this UMEM owned by the caller
    /// (taken from the tx free list), and `src` at most [`FRAME_SIZE`]
    /// bytes and not inside that frame.
    #[inline]
    pub(crate) unsafe fn write(&self, frame: u64, src: &[u8]) {
        debug_assert!(self.frame_of(frame, src.len() as u32).is_some());
        // SAFETY: inside the region, exclusively ours, and `src` does not
        // overlap it (callers pass packets from outside the frame).
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.region.as_ptr().add(frame as usize),
                src.len(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    #[test]
    fn frames_and_descriptor_checks() {
        let mut mem = [Page([0; 4096]), Page([0; 4096])];
        // SAFETY: plain bytes; the array is 8192 contiguous bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), 8192) };
        let u = Umem::new(Region::from_mut(&mut bytes[..8192 - 100])).unwrap();
        assert_eq!(u.frames(), 3, "the short tail is not a frame");
        assert_eq!(u.frame_of(0, 2048), Some(0));
        assert_eq!(u.frame_of(2048 + 256, 1500), Some(2048));
        assert_eq!(u.frame_of(4096 + 2000, 48), Some(4096));
        assert_eq!(
            u.frame_of(4096 + 2000, 49),
            None,
            "crosses into the next frame"
        );
        assert_eq!(u.frame_of(6144, 1), None, "outside the UMEM");
        assert_eq!(u.frame_of(u64::MAX - 3, 8), None, "overflow is outside");
        let e = Umem::new(Region::from_mut(&mut bytes[64..4096])).unwrap_err();
        assert!(matches!(e, UmemError::Misaligned { .. }), "{e}");
        let e = Umem::new(Region::from_mut(&mut bytes[..100])).unwrap_err();
        assert!(e.to_string().contains("holds 0 frames"), "{e}");
        let ro = Region::from_mut(&mut bytes[..4096]).read_only();
        assert_eq!(Umem::new(ro).unwrap_err(), UmemError::ReadOnly);
    }

    #[test]
    fn alloc_named_places_a_umem_in_a_workspace() {
        let name = format!("tw-umemtest-{}", std::process::id());
        let ws = Workspace::create(&name, 1 << 20, tilewire_shmem::PageKind::Normal).unwrap();
        let _ = Workspace::unlink(&name);
        let u = Umem::alloc_named(&ws, "umem", 64).unwrap();
        assert_eq!((u.frames(), u.len()), (64, 64 * FRAME_SIZE as usize));
        assert!(u.region().is_aligned(UMEM_ALIGN));
        let e = Umem::alloc_named(&ws, "umem", 1).unwrap_err();
        assert!(
            matches!(e, UmemError::Alloc { .. }),
            "the name is taken: {e}"
        );
        let e = Umem::alloc_named(&ws, "big", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("\"big\""), "{e}");
        let e = Umem::alloc_named(&ws, "none", 0).unwrap_err();
        assert!(matches!(e, UmemError::TooSmall { need: 1, .. }), "{e}");
    }
}
