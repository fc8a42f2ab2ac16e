//! The allocation table: one entry per live allocation, each written under
//! a sequence number so readers in other processes take no lock.
//!
//! An entry's sequence number is even when the entry is stable and odd while
//! the lock owner rewrites it; a reader copies the fields and keeps the copy
//! only if the number did not move. See [`crate::alloc`] for the lock and
//! the recovery from a writer that died mid-write.

use core::sync::atomic::{fence, AtomicU64, Ordering};

use crate::name::NAME_MAX;

/// Bytes per allocation table entry.
pub const ENTRY_SZ: usize = 80;

/// `meta` bit 0: the entry holds a live allocation.
pub(crate) const USED: u64 = 1;
const NAME_WORDS: usize = NAME_MAX / 8;

/// One allocation table entry; every field is atomic because readers in
/// other processes read entries while the lock owner writes them.
#[repr(C)]
pub(crate) struct Entry {
    /// Even when stable, odd while being written.
    pub(crate) seq: AtomicU64,
    pub(crate) gaddr: AtomicU64,
    pub(crate) size: AtomicU64,
    pub(crate) tag: AtomicU64,
    /// Bit 0: in use. Bits 32..64: pid of the allocating process.
    pub(crate) meta: AtomicU64,
    /// NUL-padded name, all zero for an unnamed allocation.
    pub(crate) name: [AtomicU64; NAME_WORDS],
}

const _: () = assert!(core::mem::size_of::<Entry>() == ENTRY_SZ);
const _: () = assert!(core::mem::align_of::<Entry>() == 8);

/// A consistent copy of an entry.
pub(crate) struct Snapshot {
    pub(crate) gaddr: u64,
    pub(crate) size: u64,
    pub(crate) tag: u64,
    pub(crate) meta: u64,
    pub(crate) name: [u8; NAME_MAX],
}

impl Entry {
    /// A consistent copy, or `None` if the entry kept changing (or was left
    /// half-written by a dead process and not yet rolled back).
    pub(crate) fn read(&self) -> Option<Snapshot> {
        for _ in 0..10_000 {
            // SYNC: Acquire; pairs with the Release store that ended the
            // last write, so the fields read below are at least that new.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                core::hint::spin_loop();
                continue;
            }
            let mut snap = Snapshot {
                gaddr: self.gaddr.load(Ordering::Relaxed),
                size: self.size.load(Ordering::Relaxed),
                tag: self.tag.load(Ordering::Relaxed),
                meta: self.meta.load(Ordering::Relaxed),
                name: [0; NAME_MAX],
            };
            for (i, w) in self.name.iter().enumerate() {
                snap.name[i * 8..i * 8 + 8]
                    .copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            // SYNC: Acquire fence; orders the field loads above before the
            // re-check below, pairing with the writer's Release fence after
            // it made seq odd.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Some(snap);
            }
        }
        None
    }

    /// Rewrites the entry under the lock; readers see the old or the new
    /// contents, never a mix.
    pub(crate) fn write(&self, gaddr: u64, size: u64, tag: u64, meta: u64, name: &[u8; NAME_MAX]) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s | 1, Ordering::Relaxed);
        // SYNC: Release fence; the odd seq is visible before any field
        // change, pairing with the reader's Acquire fence.
        fence(Ordering::Release);
        self.gaddr.store(gaddr, Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
        self.tag.store(tag, Ordering::Relaxed);
        for (i, w) in self.name.iter().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&name[i * 8..i * 8 + 8]);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        self.meta.store(meta, Ordering::Relaxed);
        // SYNC: Release; the commit point. Pairs with the reader's Acquire
        // load of seq and with the next lock owner's Acquire.
        self.seq.store((s | 1) + 1, Ordering::Release);
    }

    /// Under the lock: does this entry carry the packed name `packed`?
    pub(crate) fn name_is_locked(&self, packed: &[u8; NAME_MAX]) -> bool {
        self.name
            .iter()
            .zip(packed.chunks_exact(8))
            .all(|(w, b)| w.load(Ordering::Relaxed).to_le_bytes() == b)
    }

    /// Under the lock: is this slot free (not used, not mid-write)?
    pub(crate) fn is_free_locked(&self) -> bool {
        self.meta.load(Ordering::Relaxed) & USED == 0
    }
}
