//! The four AF_XDP rings, from the user's side.
//!
//! # What a ring is
//!
//! Each ring is a power-of-two array of entries plus three 32-bit words
//! the kernel and the user share: a *producer* index, a *consumer* index
//! and a *flags* word. Indices only grow (wrapping at 2^32); entry `i`
//! lives at `i & (size - 1)`. The side that produces writes entries, then
//! stores the new producer index with Release; the side that consumes loads
//! the producer index with Acquire, reads the entries, then stores its new
//! consumer index with Release, which hands the slots back. The kernel does
//! the same with `smp_load_acquire` / `smp_store_release`.
//!
//! | ring | entries | user | kernel |
//! |------|---------|------|--------|
//! | fill | frame address (`u64`) | produces free frames | consumes them to receive into |
//! | rx | [`Desc`] | consumes received packets | produces them |
//! | tx | [`Desc`] | produces packets to send | consumes them |
//! | completion | frame address (`u64`) | consumes sent frames | produces them |
//!
//! So the user side has two shapes: [`ProdRing`] (fill, tx) and
//! [`ConsRing`] (rx, completion).
//!
//! # Cached indices
//!
//! Touching a shared index costs a cache-line transfer when the other side
//! wrote it, so each side keeps a private copy of the other side's index
//! and reloads it only when the copy says there is no room (producer) or
//! nothing (consumer). A producer also batches: [`ProdRing::push`] writes
//! entries and [`ProdRing::publish`] makes all of them visible with one
//! store.
//!
//! # Wraparound
//!
//! All index arithmetic is wrapping `u32`, so a ring keeps working when its
//! indices pass 2^32; the [`mock`] rings can start anywhere to test that.
//!
//! # Memory
//!
//! A ring is either the kernel's (a mapping of the socket, see
//! [`crate::socket`]) or a [`mock`] in plain memory whose kernel end a test
//! drives by hand. Both are reached through the same raw pointers, so the
//! frame accounting above the rings is tested exactly as it runs.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::sys::Mmap;

/// A packet descriptor of the rx and tx rings (`struct xdp_desc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Desc {
    /// Where the packet starts, in bytes from the UMEM's start.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u32,
    /// Flags (`XDP_PKT_CONTD` for multi-buffer; tilewire sends and expects
    /// 0).
    pub options: u32,
}

/// What keeps a ring's memory alive.
#[derive(Debug)]
enum Backing {
    /// A mapping of the socket.
    Kernel(#[allow(dead_code)] Arc<Mmap>),
    /// A mock's words.
    Mock(#[allow(dead_code)] Arc<MockMem>),
}

/// Raw pointers to one ring's shared words and entries.
#[derive(Debug)]
struct Ptrs<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    _backing: Backing,
    _t: PhantomData<T>,
}

// SAFETY: the pointers point into memory kept alive by `_backing`; a ring
// has one user-side owner (ProdRing/ConsRing are not Clone), and the
// words shared with the other side are atomics.
unsafe impl<T: Send> Send for Ptrs<T> {}

impl<T: Copy> Ptrs<T> {
    /// The three words and the entries of a ring of `size` entries at
    /// `base` with the kernel's offsets `off`.
    ///
    /// # Safety
    /// `base` must point at a live mapping (kept alive by `backing`) laid
    /// out as `off` says, with `size` entries of `T` at `off.desc`, 4-byte
    /// aligned words and `T`-aligned entries.
    unsafe fn new(base: *mut u8, off: &libc::xdp_ring_offset, size: u32, backing: Backing) -> Self {
        debug_assert!(size.is_power_of_two());
        // SAFETY: all four offsets are inside the mapping, per the caller.
        unsafe {
            Ptrs {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                entries: base.add(off.desc as usize).cast(),
                mask: size - 1,
                _backing: backing,
                _t: PhantomData,
            }
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: a valid, aligned AtomicU32 in the live mapping (new's
        // contract).
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as producer().
        unsafe { &*self.consumer }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as producer().
        unsafe { &*self.flags }
    }

    /// Writes entry `idx` (masked).
    ///
    /// # Safety
    /// The slot must be the caller's: between its consumer index and
    /// producer index from the caller's side's point of view (a producer
    /// writing a slot the other side released).
    unsafe fn write(&self, idx: u32, v: T) {
        // SAFETY: idx & mask < size, inside the entry array; the slot is
        // the caller's, so no one reads it concurrently.
        unsafe {
            self.entries
                .add((idx & self.mask) as usize)
                .write_volatile(v)
        }
    }

    /// Reads entry `idx` (masked).
    ///
    /// # Safety
    /// The slot must hold an entry the other side published (Acquire load
    /// of its producer index seen past `idx`) and not yet released.
    unsafe fn read(&self, idx: u32) -> T {
        // SAFETY: inside the array; published and not released, so no one
        // writes it concurrently.
        unsafe { self.entries.add((idx & self.mask) as usize).read_volatile() }
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }
}

/// The user's end of a ring the user produces into: fill or tx.
#[derive(Debug)]
pub struct ProdRing<T> {
    p: Ptrs<T>,
    /// The producer index as last published.
    prod: u32,
    /// Entries written after `prod` and not yet published.
    pending: u32,
    /// The kernel's consumer index as last read, plus the ring's size: the
    /// index at which the ring is full.
    limit: u32,
}

impl<T: Copy> ProdRing<T> {
    fn new(p: Ptrs<T>) -> Self {
        // Relaxed: nothing else has touched the ring yet (a fresh mapping),
        // or a mock set it up before handing it over on this thread.
        let prod = p.producer().load(Ordering::Relaxed);
        let limit = p.consumer().load(Ordering::Relaxed).wrapping_add(p.size());
        ProdRing {
            p,
            prod,
            pending: 0,
            limit,
        }
    }

    /// Entries the ring holds in all.
    pub fn size(&self) -> u32 {
        self.p.size()
    }

    /// Room for more entries, reloading the kernel's consumer index only
    /// when the cached one says the ring is full.
    pub fn free(&mut self) -> u32 {
        let used = self.prod.wrapping_add(self.pending);
        let free = self.limit.wrapping_sub(used);
        if free > 0 {
            return free;
        }
        // SYNC: Acquire pairs with the kernel's release store of the
        // consumer index: the slots it gave back are no longer read.
        self.limit = self
            .p
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.size());
        self.limit.wrapping_sub(used)
    }

    /// Writes `v` into the next free slot (not yet visible to the kernel:
    /// see [`ProdRing::publish`]). False if the ring is full.
    #[inline]
    pub fn push(&mut self, v: T) -> bool {
        if self.free() == 0 {
            return false;
        }
        // SAFETY: free() > 0, so the slot at prod + pending is one the
        // kernel released (or never had).
        unsafe { self.p.write(self.prod.wrapping_add(self.pending), v) };
        self.pending += 1;
        true
    }

    /// Entries pushed and not yet published.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// The entries pushed and not yet published, oldest first.
    pub fn pending_entries(&self) -> Vec<T> {
        // SAFETY: slots [prod, prod + pending) were written by push and
        // are not visible to the kernel yet: ours.
        (0..self.pending)
            .map(|i| unsafe { self.p.read(self.prod.wrapping_add(i)) })
            .collect()
    }

    /// Makes every pushed entry visible to the kernel with one store.
    #[inline]
    pub fn publish(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.prod = self.prod.wrapping_add(self.pending);
        self.pending = 0;
        // SYNC: Release pairs with the kernel's acquire load of the
        // producer index: it sees every entry written before this store.
        self.p.producer().store(self.prod, Ordering::Release);
    }

    /// Published entries the kernel has not consumed yet (reloads its
    /// consumer index).
    pub fn in_kernel(&mut self) -> u32 {
        // SYNC: Acquire as in free().
        let cons = self.p.consumer().load(Ordering::Acquire);
        self.limit = cons.wrapping_add(self.size());
        self.prod.wrapping_sub(cons)
    }

    /// True if the kernel asked to be woken (`XDP_RING_NEED_WAKEUP`) to
    /// consume this ring.
    ///
    /// # Ordering
    /// A full fence first: the publish before this call must not be
    /// reordered after the flag load (store-load), or the kernel could go
    /// to sleep seeing the old producer index while we read the flag it
    /// had not set yet, and neither side would move.
    pub fn needs_wakeup(&self) -> bool {
        // SYNC: pairs with the kernel setting the flag and then re-checking
        // the producer index (full barrier on its side too).
        fence(Ordering::SeqCst);
        self.p.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The user's end of a ring the user consumes from: rx or completion.
#[derive(Debug)]
pub struct ConsRing<T> {
    p: Ptrs<T>,
    /// The kernel's producer index as last read.
    prod: u32,
    /// Our consumer index: entries before it are released.
    cons: u32,
}

impl<T: Copy> ConsRing<T> {
    fn new(p: Ptrs<T>) -> Self {
        // Relaxed: as ProdRing::new.
        let cons = p.consumer().load(Ordering::Relaxed);
        let prod = p.producer().load(Ordering::Relaxed);
        ConsRing { p, prod, cons }
    }

    /// Entries the ring holds in all.
    pub fn size(&self) -> u32 {
        self.p.size()
    }

    /// How many entries, up to `max`, are ready to read, reloading the
    /// kernel's producer index only when the cached one shows none.
    #[inline]
    pub fn peek(&mut self, max: u32) -> u32 {
        let mut ready = self.prod.wrapping_sub(self.cons);
        if ready == 0 {
            // SYNC: Acquire pairs with the kernel's release store of the
            // producer index: the entries before it are written.
            self.prod = self.p.producer().load(Ordering::Acquire);
            ready = self.prod.wrapping_sub(self.cons);
        }
        ready.min(max)
    }

    /// Entry `i` of those [`ConsRing::peek`] reported ready.
    ///
    /// # Panics
    /// If `i` is not below the ready count.
    #[inline]
    pub fn get(&self, i: u32) -> T {
        assert!(
            i < self.prod.wrapping_sub(self.cons),
            "ConsRing::get({i}) past the ready entries"
        );
        // SAFETY: cons + i is before the producer index we loaded with
        // Acquire and after our consumer index: published, not released.
        unsafe { self.p.read(self.cons.wrapping_add(i)) }
    }

    /// Hands the first `n` ready entries back to the kernel.
    ///
    /// # Panics
    /// If `n` is more than are ready.
    #[inline]
    pub fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        assert!(
            n <= self.prod.wrapping_sub(self.cons),
            "ConsRing::release({n}) past the ready entries"
        );
        self.cons = self.cons.wrapping_add(n);
        // SYNC: Release pairs with the kernel's acquire load of the
        // consumer index: our reads of the entries are done before it
        // reuses the slots.
        self.p.consumer().store(self.cons, Ordering::Release);
    }
}

/// Makes the user end of a kernel ring.
///
/// # Safety
/// `map` must be the socket's mapping of that ring, laid out as `off`
/// says, holding `size` entries of `T`.
pub(crate) unsafe fn kernel_prod<T: Copy>(
    map: Arc<Mmap>,
    off: &libc::xdp_ring_offset,
    size: u32,
) -> ProdRing<T> {
    let base = map.ptr().as_ptr();
    // SAFETY: per the caller; the Arc keeps the mapping alive.
    ProdRing::new(unsafe { Ptrs::new(base, off, size, Backing::Kernel(map)) })
}

/// Makes the user end of a kernel ring.
///
/// # Safety
/// As [`kernel_prod`].
pub(crate) unsafe fn kernel_cons<T: Copy>(
    map: Arc<Mmap>,
    off: &libc::xdp_ring_offset,
    size: u32,
) -> ConsRing<T> {
    let base = map.ptr().as_ptr();
    // SAFETY: per the caller; the Arc keeps the mapping alive.
    ConsRing::new(unsafe { Ptrs::new(base, off, size, Backing::Kernel(map)) })
}

/// Bytes to map for a ring of `size` entries of `T` at offsets `off`.
pub(crate) fn map_len<T>(off: &libc::xdp_ring_offset, size: u32) -> usize {
    off.desc as usize + size as usize * std::mem::size_of::<T>()
}

/// The words of a mock ring (8-byte aligned, atomics throughout so both
/// ends may touch them through shared references).
#[derive(Debug)]
struct MockMem {
    words: Box<[AtomicU64]>,
}

/// Rings in plain memory whose kernel end a test drives by hand.
///
/// The layout mimics the kernel's (producer, consumer and flags on
/// separate cache lines, entries after them) and the user end is the very
/// [`ProdRing`] / [`ConsRing`] the socket uses. `start` sets both indices,
/// so a test can begin just below 2^32 and cross the wrap.
pub mod mock {
    use super::*;

    /// Offsets of the mock layout (bytes): three words on their own cache
    /// lines, then the entries.
    const OFF: libc::xdp_ring_offset = libc::xdp_ring_offset {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };

    /// The kernel's end of a mock ring.
    #[derive(Debug)]
    pub struct KernelEnd<T> {
        p: Ptrs<T>,
    }

    fn mem<T>(size: u32, start: u32) -> (Arc<MockMem>, *mut u8) {
        assert!(
            size.is_power_of_two(),
            "mock ring size must be a power of two"
        );
        let bytes = map_len::<T>(&OFF, size);
        let words: Box<[AtomicU64]> = (0..bytes.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        let m = Arc::new(MockMem { words });
        let base = m.words.as_ptr() as *mut u8;
        // SAFETY: offsets 0 and 64 are inside the allocation, 4-aligned.
        unsafe {
            (*(base.add(OFF.producer as usize) as *const AtomicU32))
                .store(start, Ordering::Relaxed);
            (*(base.add(OFF.consumer as usize) as *const AtomicU32))
                .store(start, Ordering::Relaxed);
        }
        (m, base)
    }

    fn ptrs<T: Copy>(m: &Arc<MockMem>, base: *mut u8, size: u32) -> Ptrs<T> {
        assert!(std::mem::align_of::<T>() <= 8);
        // SAFETY: `base` is the start of `m`'s words, sized by map_len for
        // this layout; 8-byte alignment covers u32 words and T.
        unsafe { Ptrs::new(base, &OFF, size, Backing::Mock(Arc::clone(m))) }
    }

    /// A ring the user produces into (fill, tx), and its kernel end.
    pub fn prod<T: Copy>(size: u32, start: u32) -> (ProdRing<T>, KernelEnd<T>) {
        let (m, base) = mem::<T>(size, start);
        (
            ProdRing::new(ptrs(&m, base, size)),
            KernelEnd {
                p: ptrs(&m, base, size),
            },
        )
    }

    /// A ring the user consumes from (rx, completion), and its kernel end.
    pub fn cons<T: Copy>(size: u32, start: u32) -> (ConsRing<T>, KernelEnd<T>) {
        let (m, base) = mem::<T>(size, start);
        (
            ConsRing::new(ptrs(&m, base, size)),
            KernelEnd {
                p: ptrs(&m, base, size),
            },
        )
    }

    impl<T: Copy> KernelEnd<T> {
        /// Entries published by the user and not yet taken (fill, tx) or
        /// published by the kernel and not yet released (rx, completion).
        pub fn len(&self) -> u32 {
            let prod = self.p.producer().load(Ordering::Acquire);
            let cons = self.p.consumer().load(Ordering::Acquire);
            prod.wrapping_sub(cons)
        }

        /// True if [`KernelEnd::len`] is 0.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Takes the oldest published entry (the kernel consuming fill or
        /// tx), as the kernel does: acquire the producer, read, release the
        /// consumer.
        pub fn pop(&mut self) -> Option<T> {
            let cons = self.p.consumer().load(Ordering::Relaxed);
            if self.p.producer().load(Ordering::Acquire) == cons {
                return None;
            }
            // SAFETY: published (producer past cons) and not released.
            let v = unsafe { self.p.read(cons) };
            self.p
                .consumer()
                .store(cons.wrapping_add(1), Ordering::Release);
            Some(v)
        }

        /// Every published entry, oldest first, without taking any.
        pub fn entries(&self) -> Vec<T> {
            let cons = self.p.consumer().load(Ordering::Acquire);
            let n = self.p.producer().load(Ordering::Acquire).wrapping_sub(cons);
            // SAFETY: each index is published and not released.
            (0..n)
                .map(|i| unsafe { self.p.read(cons.wrapping_add(i)) })
                .collect()
        }

        /// Publishes `v` (the kernel producing rx or completion entries);
        /// false if the ring is full.
        pub fn push(&mut self, v: T) -> bool {
            let prod = self.p.producer().load(Ordering::Relaxed);
            let cons = self.p.consumer().load(Ordering::Acquire);
            if prod.wrapping_sub(cons) >= self.p.size() {
                return false;
            }
            // SAFETY: the slot is free: released by the user's consumer.
            unsafe { self.p.write(prod, v) };
            self.p
                .producer()
                .store(prod.wrapping_add(1), Ordering::Release);
            true
        }

        /// Entries the ring holds in all.
        pub fn capacity(&self) -> u32 {
            self.p.size()
        }

        /// Sets or clears `XDP_RING_NEED_WAKEUP`.
        pub fn set_need_wakeup(&self, on: bool) {
            let f = if on { libc::XDP_RING_NEED_WAKEUP } else { 0 };
            self.p.flags().store(f, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prod_ring_batches_until_publish_and_refills_from_consumer() {
        let (mut r, mut k) = mock::prod::<u64>(4, 0);
        assert_eq!(r.free(), 4);
        for v in 0..4 {
            assert!(r.push(v));
        }
        assert!(!r.push(9), "a full ring refuses");
        assert_eq!(k.pop(), None, "nothing is visible before publish");
        r.publish();
        assert_eq!(r.in_kernel(), 4);
        assert_eq!(k.pop(), Some(0));
        assert_eq!(k.pop(), Some(1));
        assert_eq!(r.free(), 2, "the consumer's progress gives room back");
        assert!(r.push(4) && r.push(5) && !r.push(6));
        r.publish();
        assert_eq!(k.entries(), vec![2, 3, 4, 5]);
    }

    #[test]
    fn cons_ring_reads_what_was_published_and_releases() {
        let (mut r, mut k) = mock::cons::<Desc>(2, 0);
        assert_eq!(r.peek(8), 0);
        let d = |a| Desc {
            addr: a,
            len: 60,
            options: 0,
        };
        assert!(k.push(d(1)) && k.push(d(2)) && !k.push(d(3)));
        assert_eq!(r.peek(8), 2);
        assert_eq!(r.peek(1), 1);
        assert_eq!((r.get(0).addr, r.get(1).addr), (1, 2));
        r.release(1);
        assert!(k.push(d(3)));
        assert_eq!(
            r.peek(8),
            1,
            "the cached producer index is used until drained"
        );
        assert_eq!(r.get(0).addr, 2);
        r.release(1);
        assert_eq!(r.peek(8), 1);
        assert_eq!(r.get(0).addr, 3);
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        let (mut p, mut pk) = mock::prod::<u64>(8, u32::MAX - 3);
        let (mut c, mut ck) = mock::cons::<u64>(8, u32::MAX - 3);
        for round in 0..5u64 {
            for i in 0..6 {
                assert!(p.push(round * 10 + i));
                assert!(ck.push(round * 10 + i));
            }
            p.publish();
            assert_eq!(p.in_kernel(), 6);
            assert_eq!(c.peek(16), 6);
            for i in 0..6 {
                assert_eq!(pk.pop(), Some(round * 10 + i as u64));
                assert_eq!(c.get(i), round * 10 + i as u64);
            }
            c.release(6);
            assert_eq!(p.in_kernel(), 0, "the kernel took everything");
            assert_eq!(p.free(), 8, "in_kernel refreshed the cached consumer");
        }
    }

    #[test]
    fn need_wakeup_reads_the_kernel_flag() {
        let (r, k) = mock::prod::<u64>(4, 0);
        assert!(!r.needs_wakeup());
        k.set_need_wakeup(true);
        assert!(r.needs_wakeup());
    }

    #[test]
    #[should_panic(expected = "past the ready entries")]
    fn get_past_ready_panics() {
        let (mut r, _k) = mock::cons::<u64>(4, 0);
        r.peek(4);
        r.get(0);
    }
}
