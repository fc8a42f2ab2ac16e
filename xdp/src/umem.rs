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

/// A UMEM: page-aligned memory cut into [`FRAME_SIZE`]-byte frames.
#[derive(Debug, Clone, Copy)]
pub struct Umem<'a> {
    region: Region<'a>,
    frames: u32,
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
        Ok(Umem { region, frames })
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

    /// Frames in the UMEM.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Bytes registered with the kernel (whole frames).
    pub fn len(&self) -> usize {
        self.frames as usize * FRAME_SIZE as usize
    }

    /// Never true: a UMEM holds at least one frame.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The memory (the whole region given to [`Umem::new`]).
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
        (frame < self.len() as u64 && end <= frame + u64::from(FRAME_SIZE)).then_some(frame)
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
