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
