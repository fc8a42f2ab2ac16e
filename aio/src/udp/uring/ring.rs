//! [`Ring`]: the io_uring and the memory it shares with the kernel, and
//! the tags that tell one completion from another.
#![allow(unsafe_code)] // hands entries to the kernel; the use says why it is sound

use io_uring::IoUring;

use super::mem::{Layout, Mapping};

/// user_data of the multishot receive.
pub(super) const TAG_MULTISHOT: u64 = 1 << 62;
/// user_data of a fixed receive: this bit and the buffer id.
pub(super) const TAG_FIXED: u64 = 1 << 61;
/// The provided-buffer group id.
pub(super) const BGID: u16 = 0;

/// The ring, the mapping whose slots and buffers its entries point into,
/// and where each part of the mapping lives.
pub(super) struct Ring {
    // Dropped first: closing the ring ends every pending operation before
    // `mem` is unmapped.
    pub(super) uring: IoUring,
    pub(super) mem: Mapping,
    pub(super) lay: Layout,
}

impl Ring {
    /// Queues an entry. The submission ring has room for every slot and
    /// buffer at once, each at most one entry, so it cannot be full.
    pub(super) fn push(&mut self, e: &io_uring::squeue::Entry) {
        // SAFETY: every pointer in the entries built by the engine names
        // memory in `mem` that stays valid and untouched by us until the
        // entry's completion is reaped (see the module documentation).
        let pushed = unsafe { self.uring.submission().push(e) };
        debug_assert!(pushed.is_ok(), "submission ring sized for every slot");
    }
}
