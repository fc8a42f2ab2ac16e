//! The allocator inside a workspace.
//!
//! # Model
//!
//! The workspace keeps a table of live allocations (gaddr, size, tag, name,
//! owner pid). Free space is not recorded anywhere: it is whatever the data
//! region has between live allocations. So a free is one store, frees merge
//! with their neighbours for nothing, and fragmentation recovers as soon as
//! the blocks between two holes go. Allocation is first-fit over the sorted
//! live blocks, O(n log n) in the number of live allocations; allocation is
//! a set-up operation (links, UMEM, metrics), never on a packet path.
//!
//! # Several processes
//!
//! Writers (alloc, free) take the workspace's lock word, which holds the
//! owner's pid. A waiter that finds the owner dead (`kill(pid, 0)` says no
//! such process) takes the lock over with a compare-and-swap, so a process
//! killed while allocating never wedges the others. Each table entry is
//! written under a sequence number (odd while being written), and every
//! change commits with the entry's last store; a new owner rolls back any
//! entry left odd, so an allocation cut off half way simply did not happen.
//! A waiter that cannot get the lock within [`LOCK_TIMEOUT`] from a live
//! owner gets [`AllocError::LockTimeout`] instead of spinning forever.
//!
//! Readers (lookup by name, the listing, usage) take no lock: they read each
//! entry optimistically and retry if its sequence number moved. This is what
//! lets a read-only monitor, which cannot write a lock word, find
//! "net.rx.mcache" by name.
//!
//! Pids must be meaningful to every process sharing a workspace: processes
//! in different pid namespaces should not share one.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::header::{GEN_OFF, LOCK_OFF, STEALS_OFF};
use crate::name::{check_name, NameError, NAME_MAX};
use crate::pid::pid_exists;
use crate::region::Access;
use crate::table::{Entry, USED};
use crate::workspace::Workspace;

pub use crate::table::ENTRY_SZ;

/// Every allocation is aligned to at least this (a cache line), so two
/// allocations never share a line.
pub const MIN_ALIGN: usize = 64;
/// How long a writer waits for a lock held by a live process.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// A live allocation, as read from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocInfo {
    /// Its first byte.
    pub gaddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The caller's tag.
    pub tag: u64,
    /// Its name, for a named allocation.
    pub name: Option<String>,
    /// Pid of the process that made it.
    pub owner_pid: u32,
}

/// How full a workspace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in the data region.
    pub data_bytes: u64,
    /// Bytes in live allocations.
    pub used_bytes: u64,
    /// Bytes not in live allocations (alignment may keep some unusable).
    pub free_bytes: u64,
    /// The largest free gap.
    pub largest_free: u64,
    /// Live allocations.
    pub allocations: usize,
    /// Most live allocations the table can hold.
    pub table_cap: usize,
}

/// Why an allocation failed. Nothing was allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// The workspace is joined read-only.
    #[error("workspace is joined read-only")]
    ReadOnly,
    /// Size zero was asked for.
    #[error("allocation size must be at least one byte")]
    ZeroSize,
    /// The alignment is not a power of two or is larger than a page.
    #[error("alignment {align} is not a power of two no larger than the page size {max}")]
    BadAlign {
        /// Alignment asked for.
        align: usize,
        /// Largest supported.
        max: usize,
    },
    /// The allocation name breaks the naming rules.
    #[error("invalid allocation name: {0}")]
    Name(#[from] NameError),
    /// A live allocation already has this name.
    #[error("an allocation named {0:?} already exists")]
    NameTaken(String),
    /// No gap is large enough.
    #[error("out of space: {size} bytes aligned to {align} do not fit (largest free gap {largest_free} bytes)")]
    OutOfSpace {
        /// Size asked for.
        size: usize,
        /// Alignment used.
        align: usize,
        /// The largest free gap.
        largest_free: u64,
    },
    /// Every table entry is in use.
    #[error("allocation table full ({cap} live allocations)")]
    TableFull {
        /// Table capacity.
        cap: usize,
    },
    /// A live process held the lock for longer than [`LOCK_TIMEOUT`].
    #[error("allocator lock held by live process {owner_pid} for over {LOCK_TIMEOUT:?}")]
    LockTimeout {
        /// Its pid.
        owner_pid: u32,
    },
}

/// Why a free failed. Nothing was freed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FreeError {
    /// The workspace is joined read-only.
    #[error("workspace is joined read-only")]
    ReadOnly,
    /// No live allocation starts at this gaddr (or has this name).
    #[error("no live allocation at {0}")]
    NotAllocated(String),
    /// As [`AllocError::LockTimeout`].
    #[error("allocator lock held by live process {owner_pid} for over {LOCK_TIMEOUT:?}")]
    LockTimeout {
        /// Its pid.
        owner_pid: u32,
    },
}

/// Holds the allocator lock; releases it on drop (also on unwind).
struct LockGuard<'a> {
    word: &'a AtomicU64,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SYNC: Release; publishes every table write made under the lock to
        // the next owner's Acquire CAS.
        self.word.store(0, Ordering::Release);
    }
}

fn lock_value() -> u64 {
    static NONCE: AtomicU32 = AtomicU32::new(1);
    let n = NONCE.fetch_add(1, Ordering::Relaxed).max(1);
    ((std::process::id() as u64) << 32) | n as u64
}

impl Workspace {
    fn lock(&self) -> Result<LockGuard<'_>, u32> {
        let word = self.live_word(LOCK_OFF);
        let me = lock_value();
        let start = Instant::now();
        let mut next_check = Duration::ZERO;
        let mut spins = 0u32;
        loop {
            // SYNC: Acquire on success; pairs with the Release in
            // LockGuard::drop of the previous owner.
            let cur = match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(LockGuard { word }),
                Err(cur) => cur,
            };
            let owner = (cur >> 32) as u32;
            let waited = start.elapsed();
            if waited >= next_check {
                next_check = waited + Duration::from_millis(1);
                if !pid_exists(owner)
                    // SYNC: Acquire; the dead owner's last table writes
                    // (Release stores on each entry's seq) are seen below.
                    && word.compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed).is_ok()
                {
                    self.live_word(STEALS_OFF).fetch_add(1, Ordering::Relaxed);
                    self.roll_back_half_written();
                    return Ok(LockGuard { word });
                }
                if waited >= LOCK_TIMEOUT {
                    return Err(owner);
                }
            }
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }

    /// Under a lock taken over from a dead owner: any entry it left odd
    /// was cut off mid-write; make it free.
    fn roll_back_half_written(&self) {
        for i in 0..self.table_cap {
            let e = self.entry(i);
            let s = e.seq.load(Ordering::Relaxed);
            if s & 1 == 1 {
                e.meta.store(0, Ordering::Relaxed);
                // SYNC: Release; pairs with readers' Acquire of seq.
                e.seq.store(s + 1, Ordering::Release);
            }
        }
    }

    /// Live blocks `(gaddr, end)` sorted by gaddr, from a table only the
    /// lock holder writes. Entries with impossible bounds are skipped.
    fn live_blocks_locked(&self) -> Vec<(u64, u64)> {
        let (lo, hi) = (self.data_off(), self.size() as u64);
        let mut v: Vec<(u64, u64)> = (0..self.table_cap)
            .map(|i| self.entry(i))
            .filter(|e| !e.is_free_locked())
            .map(|e| {
                let g = e.gaddr.load(Ordering::Relaxed);
                (g, g.saturating_add(e.size.load(Ordering::Relaxed)))
            })
            .filter(|&(g, end)| g >= lo && end <= hi && g < end)
            .collect();
        v.sort_unstable();
        v
    }

    /// Allocates `size` bytes aligned to `align` with a caller `tag`, and
    /// returns the gaddr of the first byte. The bytes are not cleared.
    ///
    /// `align` must be a power of two no larger than the page size; it is
    /// raised to [`MIN_ALIGN`].
    ///
    /// # Errors
    /// See [`AllocError`]: read-only, zero size, bad alignment, no gap large
    /// enough, table full, or a live process holding the lock too long.
    pub fn alloc(&self, align: usize, size: usize, tag: u64) -> Result<u64, AllocError> {
        self.alloc_inner(None, align, size, tag)
    }

    /// [`Workspace::alloc`] with a name other processes can find with
    /// [`Workspace::lookup`]. Names are unique among live allocations.
    ///
    /// # Errors
    /// As [`Workspace::alloc`], plus [`AllocError::Name`] and
    /// [`AllocError::NameTaken`].
    pub fn alloc_named(
        &self,
        name: &str,
        align: usize,
        size: usize,
        tag: u64,
    ) -> Result<u64, AllocError> {
        check_name(name)?;
        self.alloc_inner(Some(name), align, size, tag)
    }

    fn alloc_inner(
        &self,
        name: Option<&str>,
        align: usize,
        size: usize,
        tag: u64,
    ) -> Result<u64, AllocError> {
        if self.access() == Access::ReadOnly {
            return Err(AllocError::ReadOnly);
        }
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let max = self.page_kind().size();
        if !align.is_power_of_two() || align > max {
            return Err(AllocError::BadAlign { align, max });
        }
        let align = align.max(MIN_ALIGN);
        let packed = name.map(crate::name::pack_name).unwrap_or([0; NAME_MAX]);
        let _guard = self
            .lock()
            .map_err(|owner_pid| AllocError::LockTimeout { owner_pid })?;
        if let Some(n) = name {
            let taken = (0..self.table_cap)
                .map(|i| self.entry(i))
                .any(|e| !e.is_free_locked() && e.name_is_locked(&packed));
            if taken {
                return Err(AllocError::NameTaken(n.into()));
            }
        }
        let blocks = self.live_blocks_locked();
        let (lo, hi) = (self.data_off(), self.size() as u64);
        let gaddr = first_fit(&blocks, lo, hi, align as u64, size as u64).ok_or(
            AllocError::OutOfSpace {
                size,
                align,
                largest_free: largest_gap(&blocks, lo, hi),
            },
        )?;
        let slot = (0..self.table_cap)
            .map(|i| self.entry(i))
            .find(|e| e.is_free_locked())
            .ok_or(AllocError::TableFull {
                cap: self.table_cap,
            })?;
        let meta = USED | ((std::process::id() as u64) << 32);
        slot.write(gaddr, size as u64, tag, meta, &packed);
        self.live_word(GEN_OFF).fetch_add(1, Ordering::Relaxed);
        Ok(gaddr)
    }

    /// Frees the allocation that starts at `gaddr`.
    ///
    /// # Errors
    /// [`FreeError::NotAllocated`] if no live allocation starts there,
    /// [`FreeError::ReadOnly`], [`FreeError::LockTimeout`].
    pub fn free(&self, gaddr: u64) -> Result<(), FreeError> {
        self.free_where(
            |e| e.gaddr.load(Ordering::Relaxed) == gaddr,
            || format!("gaddr {gaddr:#x}"),
        )
    }

    /// Frees the allocation named `name`.
    ///
    /// # Errors
    /// As [`Workspace::free`].
    pub fn free_named(&self, name: &str) -> Result<(), FreeError> {
        if check_name(name).is_err() {
            return Err(FreeError::NotAllocated(format!("name {name:?}")));
        }
        let packed = crate::name::pack_name(name);
        self.free_where(|e| e.name_is_locked(&packed), || format!("name {name:?}"))
    }

    fn free_where(
        &self,
        hit: impl Fn(&Entry) -> bool,
        what: impl Fn() -> String,
    ) -> Result<(), FreeError> {
        if self.access() == Access::ReadOnly {
            return Err(FreeError::ReadOnly);
        }
        let _guard = self
            .lock()
            .map_err(|owner_pid| FreeError::LockTimeout { owner_pid })?;
        let e = (0..self.table_cap)
            .map(|i| self.entry(i))
            .find(|e| !e.is_free_locked() && hit(e))
            .ok_or_else(|| FreeError::NotAllocated(what()))?;
        e.write(0, 0, 0, 0, &[0; NAME_MAX]);
        self.live_word(GEN_OFF).fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Every live allocation, in gaddr order. Takes no lock (works on a
    /// read-only join); an entry being rewritten at that instant may be
    /// missing.
    pub fn allocations(&self) -> Vec<AllocInfo> {
        let mut v: Vec<AllocInfo> = (0..self.table_cap)
            .filter_map(|i| self.entry(i).read())
            .filter(|s| s.meta & USED != 0)
            .map(|s| AllocInfo {
                gaddr: s.gaddr,
                size: s.size,
                tag: s.tag,
                name: crate::name::unpack_name(&s.name),
                owner_pid: (s.meta >> 32) as u32,
            })
            .collect();
        v.sort_by_key(|a| a.gaddr);
        v
    }

    /// The live allocation named `name`. Takes no lock (works on a
    /// read-only join).
    pub fn lookup(&self, name: &str) -> Option<AllocInfo> {
        check_name(name).ok()?;
        self.allocations()
            .into_iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// How full the workspace is. Takes no lock.
    pub fn usage(&self) -> Usage {
        let (lo, hi) = (self.data_off(), self.size() as u64);
        let blocks: Vec<(u64, u64)> = self
            .allocations()
            .iter()
            .map(|a| (a.gaddr, a.gaddr.saturating_add(a.size)))
            .filter(|&(g, end)| g >= lo && end <= hi)
            .collect();
        let used: u64 = blocks.iter().map(|(g, e)| e - g).sum();
        Usage {
            data_bytes: hi - lo,
            used_bytes: used,
            free_bytes: (hi - lo).saturating_sub(used),
            largest_free: largest_gap(&blocks, lo, hi),
            allocations: blocks.len(),
            table_cap: self.table_cap,
        }
    }

    /// How many times a lock was taken over from a dead process.
    pub fn lock_recoveries(&self) -> u64 {
        self.live_word(STEALS_OFF).load(Ordering::Relaxed)
    }

    /// Bumped by every alloc and free; a monitor compares it to notice
    /// changes without rereading the table.
    pub fn generation(&self) -> u64 {
        self.live_word(GEN_OFF).load(Ordering::Relaxed)
    }

    /// Test hook for crash-recovery tests: takes the allocator lock, and if
    /// `half_write` leaves one free entry mid-write (odd seq, fields set),
    /// calls `on_held`, then sleeps forever holding it, as a process killed
    /// mid-allocation would. Never returns.
    #[doc(hidden)]
    pub fn debug_stall_holding_lock(&self, half_write: bool, on_held: impl FnOnce()) -> ! {
        let guard = self
            .lock()
            .unwrap_or_else(|pid| panic!("lock held by {pid}"));
        if half_write {
            if let Some(e) = (0..self.table_cap)
                .map(|i| self.entry(i))
                .find(|e| e.is_free_locked())
            {
                let s = e.seq.load(Ordering::Relaxed);
                e.seq.store(s | 1, Ordering::Relaxed);
                fence(Ordering::Release);
                e.gaddr.store(self.data_off(), Ordering::Relaxed);
                e.size.store(u64::MAX / 2, Ordering::Relaxed);
                e.meta.store(USED, Ordering::Relaxed);
            }
        }
        std::mem::forget(guard);
        on_held();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// First gap in `[lo, hi)` between the sorted `blocks` that holds `size`
/// bytes at a multiple of `align`.
pub(crate) fn first_fit(
    blocks: &[(u64, u64)],
    lo: u64,
    hi: u64,
    align: u64,
    size: u64,
) -> Option<u64> {
    let mut cursor = lo;
    for &(start, end) in blocks.iter().chain(core::iter::once(&(hi, hi))) {
        let cand = cursor.checked_add(align - 1)? & !(align - 1);
        if cand.checked_add(size).is_some_and(|e| e <= start) {
            return Some(cand);
        }
        cursor = cursor.max(end);
    }
    None
}

/// The largest gap in `[lo, hi)` between the sorted `blocks`.
pub(crate) fn largest_gap(blocks: &[(u64, u64)], lo: u64, hi: u64) -> u64 {
    let mut cursor = lo;
    let mut best = 0;
    for &(start, end) in blocks.iter().chain(core::iter::once(&(hi, hi))) {
        best = best.max(start.saturating_sub(cursor));
        cursor = cursor.max(end);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_walks_gaps() {
        let b = [(100, 200), (300, 400)];
        assert_eq!(first_fit(&b, 0, 1000, 1, 100), Some(0));
        assert_eq!(first_fit(&b, 0, 1000, 1, 101), Some(400));
        assert_eq!(first_fit(&b, 0, 1000, 64, 50), Some(0));
        assert_eq!(first_fit(&b, 64, 1000, 64, 50), Some(448));
        assert_eq!(first_fit(&b, 64, 1000, 8, 50), Some(200));
        assert_eq!(first_fit(&b, 0, 1000, 1, 601), None);
        assert_eq!(first_fit(&b, 0, 1000, 1, 600), Some(400));
        assert_eq!(first_fit(&[], 0, 10, 1, u64::MAX), None);
        assert_eq!(largest_gap(&b, 0, 1000), 600);
        assert_eq!(largest_gap(&[(0, 1000)], 0, 1000), 0);
    }
}
