//! `Region`: a borrowed view of bytes that other threads or processes may
//! change at any time.
//!
//! Shared memory cannot be handed out as `&[u8]` or `&mut [u8]`: Rust promises
//! that the bytes behind a shared reference do not change and that a mutable
//! reference is the only way in, and another process writing the same page
//! breaks both promises. A `Region` is a pointer, a length, an access mode and
//! a lifetime tying it to whatever owns the mapping (a [`Workspace`] or a
//! caller's buffer). Objects built over a region touch it only through atomics
//! or through copies of plain-old-data taken after an Acquire load.
//!
//! [`Workspace`]: crate::Workspace

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Whether a mapping may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Mapped `PROT_READ | PROT_WRITE`.
    ReadWrite,
    /// Mapped `PROT_READ`: a monitor that joins this way cannot corrupt anything.
    ReadOnly,
}

/// A view of `len` bytes at `ptr`, valid for `'a`, possibly shared with other
/// processes.
///
/// Creating a region from a caller's `&mut [u8]` is safe; creating one from a
/// raw pointer is `unsafe` because the caller vouches for the mapping.
#[derive(Clone, Copy)]
pub struct Region<'a> {
    ptr: NonNull<u8>,
    len: usize,
    access: Access,
    _life: PhantomData<&'a core::cell::UnsafeCell<[u8]>>,
}

impl core::fmt::Debug for Region<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("access", &self.access)
            .finish()
    }
}

// SAFETY: a Region is a capability to touch shared bytes through atomics and
// checked copies; it carries no thread-local state, and every object built on
// it already assumes concurrent access from other processes.
unsafe impl Send for Region<'_> {}
// SAFETY: as above.
unsafe impl Sync for Region<'_> {}

impl<'a> Region<'a> {
    /// A writable region over a caller's buffer (heap or stack memory used
    /// for single-process objects and tests).
    pub fn from_mut(buf: &'a mut [u8]) -> Self {
        Region {
            // A slice pointer is never null (dangling-but-aligned when empty).
            ptr: NonNull::from(&mut *buf).cast(),
            len: buf.len(),
            access: Access::ReadWrite,
            _life: PhantomData,
        }
    }

    /// A region over raw memory.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay mapped for `'a`, readable, and writable too
    /// when `access` is [`Access::ReadWrite`]. Everything else that touches
    /// these bytes during `'a` must do so through atomics or tolerate torn
    /// reads, as every object in tilewire does.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, access: Access) -> Self {
        Region {
            ptr,
            len,
            access,
            _life: PhantomData,
        }
    }

    /// First byte of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the region may be touched.
    pub fn access(&self) -> Access {
        self.access
    }

    /// True if the region may be written.
    pub fn is_writable(&self) -> bool {
        self.access == Access::ReadWrite
    }

    /// The same bytes, read-only.
    pub fn read_only(self) -> Region<'a> {
        Region {
            access: Access::ReadOnly,
            ..self
        }
    }

    /// The sub-region `[off, off+len)`, or `None` if it does not fit.
    pub fn sub(&self, off: usize, len: usize) -> Option<Region<'a>> {
        let end = off.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Region {
            // SAFETY: off <= self.len, so the result stays inside (or one past)
            // the region the caller vouched for; it cannot be null.
            ptr: unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(off)) },
            len,
            access: self.access,
            _life: PhantomData,
        })
    }

    /// True if the first byte is aligned to `align` (a power of two).
    pub fn is_aligned(&self, align: usize) -> bool {
        debug_assert!(align.is_power_of_two());
        (self.ptr.as_ptr() as usize) & (align - 1) == 0
    }
}

impl<'a> Region<'a> {
    /// The 8-aligned words `[off, off + 8*n)` as atomics, or `None` if they
    /// are misaligned or out of bounds.
    ///
    /// This is how objects touch shared bytes without `unsafe`: every word
    /// another process may write is read and written atomically, so nothing
    /// is a data race whatever the other side does.
    pub fn atomic_u64s(&self, off: usize, n: usize) -> Option<&'a [AtomicU64]> {
        let len = n.checked_mul(8)?;
        let sub = self.sub(off, len)?;
        if !sub.is_aligned(8) {
            return None;
        }
        // SAFETY: in bounds and 8-aligned (checked above), live for 'a;
        // AtomicU64 has u64's layout and is valid for any bit pattern. A
        // read-only mapping is only ever loaded from: every store in tilewire
        // goes through an object that checked `is_writable` first, and a
        // store to a PROT_READ page would fault, not corrupt.
        Some(unsafe { core::slice::from_raw_parts(sub.as_ptr() as *const AtomicU64, n) })
    }

    /// One 8-aligned word at `off` as an atomic.
    pub fn atomic_u64(&self, off: usize) -> Option<&'a AtomicU64> {
        self.atomic_u64s(off, 1).map(|s| &s[0])
    }

    /// The bytes `[off, off+len)` as atomics, or `None` if out of bounds.
    pub fn atomic_bytes(&self, off: usize, len: usize) -> Option<&'a [AtomicU8]> {
        let sub = self.sub(off, len)?;
        // SAFETY: in bounds (checked above) and live for 'a; AtomicU8 has
        // u8's layout and alignment and is valid for any bit pattern.
        Some(unsafe { core::slice::from_raw_parts(sub.as_ptr() as *const AtomicU8, len) })
    }
}

/// Copies `src` into shared memory starting at `dst[0]`, with relaxed
/// atomic stores (whole words where `dst` is 8-aligned). The caller orders
/// it with the Release store that publishes the bytes.
///
/// # Panics
/// If `dst` is shorter than `src`.
pub fn store_bytes(dst: &[AtomicU8], src: &[u8]) {
    assert!(dst.len() >= src.len());
    let mut i = 0;
    if let Some(words) = as_words(dst, src.len()) {
        for (w, c) in words.iter().zip(src.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        i = words.len() * 8;
    }
    for (d, s) in dst[i..src.len()].iter().zip(&src[i..]) {
        d.store(*s, Ordering::Relaxed);
    }
}

/// Copies shared bytes starting at `src[0]` into `dst`, with relaxed atomic
/// loads (whole words where `src` is 8-aligned). The copy may be torn if a
/// writer is at work; the caller detects that with the Acquire fence and
/// sequence re-check that follow it.
///
/// # Panics
/// If `src` is shorter than `dst`.
pub fn load_bytes(dst: &mut [u8], src: &[AtomicU8]) {
    assert!(src.len() >= dst.len());
    let mut i = 0;
    if let Some(words) = as_words(src, dst.len()) {
        for (w, c) in words.iter().zip(dst.chunks_exact_mut(8)) {
            c.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        i = words.len() * 8;
    }
    let n = dst.len();
    for (d, s) in dst[i..].iter_mut().zip(&src[i..n]) {
        *d = s.load(Ordering::Relaxed);
    }
}

/// The whole 8-byte words at the start of `bytes`, if `bytes` starts
/// 8-aligned: for readers that fold shared payloads a word at a time
/// (checksums, hashes) instead of copying them out.
pub fn atomic_words(bytes: &[AtomicU8]) -> Option<&[AtomicU64]> {
    as_words(bytes, bytes.len())
}

/// The whole words at the start of `bytes` covering up to `len` bytes, if
/// `bytes` starts 8-aligned.
fn as_words(bytes: &[AtomicU8], len: usize) -> Option<&[AtomicU64]> {
    let p = bytes.as_ptr();
    if (p as usize) % 8 != 0 {
        return None;
    }
    let n = len.min(bytes.len()) / 8;
    // SAFETY: the first n*8 bytes lie inside `bytes` and start 8-aligned;
    // they are shared memory accessed only atomically, and an AtomicU64 over
    // eight AtomicU8s is how mixed-size atomic access is expressed here
    // (both compile to plain loads and stores on every target tilewire runs).
    Some(unsafe { core::slice::from_raw_parts(p as *const AtomicU64, n) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_views_are_bounds_and_alignment_checked() {
        let mut buf = vec![0u64; 8];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let r = Region::from_mut(bytes);
        assert!(r.atomic_u64s(0, 8).is_some());
        assert!(r.atomic_u64s(8, 8).is_none(), "past the end");
        assert!(r.atomic_u64s(4, 1).is_none(), "misaligned");
        assert!(r.atomic_u64s(0, usize::MAX).is_none(), "overflow");
        assert!(r.atomic_bytes(60, 4).is_some());
        assert!(r.atomic_bytes(60, 5).is_none());
        r.atomic_u64(8).unwrap().store(7, Ordering::Relaxed);
        assert_eq!(r.atomic_bytes(8, 1).unwrap()[0].load(Ordering::Relaxed), 7);
    }

    #[test]
    fn byte_copies_round_trip_at_any_offset_and_length() {
        let mut buf = vec![0u64; 40];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let r = Region::from_mut(bytes);
        for off in 0..9 {
            for len in [0usize, 1, 7, 8, 9, 64, 100, 250] {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + off) as u8).collect();
                let shared = r.atomic_bytes(off, len).unwrap();
                store_bytes(shared, &src);
                let mut dst = vec![0u8; len];
                load_bytes(&mut dst, shared);
                assert_eq!(dst, src, "off {off} len {len}");
            }
        }
    }
}
