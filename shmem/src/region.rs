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
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

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

/// Copies `src` into shared memory starting at `dst[0]`.
///
/// Readers in other threads or processes may be copying the same bytes at
/// the same time (a lapped consumer of a link): each byte they load is then
/// either its old or its new value, never anything else, so their copy may
/// be torn but is never undefined. Bytes outside `dst[..src.len()]` are not
/// touched.
///
/// On x86_64 the bytes move 16 at a time with SSE2 vector moves in inline
/// assembly (see [`load_bytes`] for why that is sound where other threads
/// race); elsewhere, and under Miri, with relaxed atomic stores, whole
/// words where `dst` is 8-aligned.
///
/// # Ordering
/// None of its own. The stores are ordinary (relaxed) stores: the caller
/// orders them after the Release fence that retires the old contents and
/// before the Release store that publishes the new ones, as a link's
/// producer does.
///
/// # Panics
/// If `dst` is shorter than `src`.
#[inline]
pub fn store_bytes(dst: &[AtomicU8], src: &[u8]) {
    assert!(
        dst.len() >= src.len(),
        "store_bytes: {} bytes into {}",
        src.len(),
        dst.len()
    );
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `dst` and `src` are live borrows of at least `src.len()`
    // bytes (asserted above), `dst` writable through its interior
    // mutability (`AtomicU8` is an `UnsafeCell`). They cannot overlap:
    // `src` is a `&[u8]`, whose bytes nobody may mutate while it lives,
    // and `dst`'s bytes are mutable through it. Racing accesses to `dst`
    // from other threads are covered by `vector::copy`'s contract.
    unsafe {
        vector::copy(
            dst.as_ptr().cast_mut().cast::<u8>(),
            src.as_ptr(),
            src.len(),
        );
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    store_bytes_atomic(dst, src);
}

/// Copies shared bytes starting at `src[0]` into `dst`.
///
/// The copy may be torn if a writer is at work: each byte is some value the
/// writer stored, but not necessarily all from the same publication. The
/// caller detects that with the Acquire fence and sequence re-check that
/// follow it (a link consumer's `check`), and discards a torn copy.
///
/// On x86_64 the bytes move 16 at a time with SSE2 vector moves in inline
/// assembly; elsewhere, and under Miri, with relaxed atomic loads, whole
/// words where `src` is 8-aligned.
///
/// # Why the vector copy is sound
/// Rust has no atomic type wider than 8 bytes, and LLVM never merges or
/// vectorizes atomic accesses, so an atomic copy moves at most 8 bytes an
/// instruction. Plain (non-atomic) Rust copies would be faster but are
/// data races, undefined behaviour, the moment another thread writes the
/// bytes, which in a seqlock is exactly what happens now and then. An
/// inline `asm!` block is outside what the compiler models: it must treat
/// the block as an opaque operation that may read and write the memory
/// behind the pointers it was given, so it can neither assume the bytes
/// are unchanged by others nor reorder the block with the atomics around
/// it, and no optimisation can be derived from a race inside it. What the
/// block does is defined by the hardware: on x86_64 every byte a load
/// returns is a byte some store wrote (no tearing within a byte), so the
/// block behaves as a sequence of relaxed byte-wise atomic accesses (the
/// same accesses the atomic loop makes, in a different width). Ordering
/// with the surrounding protocol is kept too: the moves are ordinary
/// write-back loads and stores (no non-temporal moves, no `rep movs`,
/// whose stores may be reordered), which x86's ordering keeps in program
/// order with the Acquire/Release operations before and after them.
///
/// # Ordering
/// None of its own: relaxed loads, ordered by the caller's fences.
///
/// # Panics
/// If `src` is shorter than `dst`.
#[inline]
pub fn load_bytes(dst: &mut [u8], src: &[AtomicU8]) {
    assert!(
        src.len() >= dst.len(),
        "load_bytes: {} bytes from {}",
        dst.len(),
        src.len()
    );
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `src` and `dst` are live borrows of at least `dst.len()`
    // bytes (asserted above); `dst` is an exclusive borrow, so nothing else
    // touches it and it cannot overlap `src`. Racing writes to `src` from
    // other threads are covered by `vector::copy`'s contract.
    unsafe {
        vector::copy(dst.as_mut_ptr(), src.as_ptr().cast::<u8>(), dst.len());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    load_bytes_atomic(dst, src);
}

/// Copies shared bytes into other shared bytes: `src[..n]` into
/// `dst[..n]`, `n = src.len()`. What a link producer uses to pass on a frag
/// it read from another link without an intermediate private copy: the
/// bytes go straight from the input's dcache into the output's.
///
/// Both sides may be racing with other threads exactly as for
/// [`load_bytes`] (the source may be torn; re-check it after) and
/// [`store_bytes`] (readers of the destination see relaxed stores).
///
/// Overlapping ranges (a caller bug, or corrupt chunk indices) are copied
/// a byte at a time, front to back.
///
/// # Ordering
/// None of its own, as for the two above.
///
/// # Panics
/// If `dst` is shorter than `src`.
#[inline]
pub fn copy_bytes(dst: &[AtomicU8], src: &[AtomicU8]) {
    assert!(
        dst.len() >= src.len(),
        "copy_bytes: {} bytes into {}",
        src.len(),
        dst.len()
    );
    let n = src.len();
    let (d, s) = (dst.as_ptr() as usize, src.as_ptr() as usize);
    let apart = d + n <= s || s + n <= d;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if apart {
        // SAFETY: both are live borrows of at least `n` bytes (asserted
        // above), `dst` writable through its interior mutability, and the
        // ranges do not overlap (checked). Both sides are shared memory
        // touched only through atomics and this function, so racing
        // accesses to either are within `vector::copy`'s contract: to the
        // abstract machine the block is relaxed byte-wise atomic loads from
        // `src` and stores to `dst`.
        unsafe {
            vector::copy(
                dst.as_ptr().cast_mut().cast::<u8>(),
                src.as_ptr().cast::<u8>(),
                n,
            );
        }
        return;
    }
    let _ = apart;
    for (d, s) in dst.iter().zip(src) {
        d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Shared bytes as a plain slice, to be read in place (hashed, parsed,
/// compared) with no copy at all.
///
/// # Safety
/// No thread or process may store to these bytes while the returned slice
/// lives: a store racing with the plain loads of a `&[u8]` is a data race.
/// Shared memory alone cannot promise that, a protocol must: a link's
/// producer never writes a chunk a reliable consumer has not passed on
/// (its credits), and a producer's own reserved bytes are written by
/// nobody else. A peer process that breaks such a protocol (a corrupt
/// word, a stray write) breaks this promise too; that is the trust every
/// transport that hands out shared memory as `&[u8]` (an mmap'd file,
/// another process's sample) places in the processes that share it, and
/// callers confine it to the one protocol state where it holds.
#[inline]
pub unsafe fn view_bytes(src: &[AtomicU8]) -> &[u8] {
    // SAFETY: `AtomicU8` has the size, alignment and bit validity of `u8`;
    // the caller promises no store happens while the view lives, which is
    // all a shared `&[u8]` asks of the memory behind it.
    unsafe { core::slice::from_raw_parts(src.as_ptr().cast::<u8>(), src.len()) }
}

/// [`store_bytes`] with relaxed atomic stores: the portable path, and the
/// reference the vector path is tested against.
#[cfg_attr(all(target_arch = "x86_64", not(miri), not(test)), allow(dead_code))]
fn store_bytes_atomic(dst: &[AtomicU8], src: &[u8]) {
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

/// [`load_bytes`] with relaxed atomic loads: the portable path, and the
/// reference the vector path is tested against.
#[cfg_attr(all(target_arch = "x86_64", not(miri), not(test)), allow(dead_code))]
fn load_bytes_atomic(dst: &mut [u8], src: &[AtomicU8]) {
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

/// The x86_64 copy behind [`store_bytes`] and [`load_bytes`].
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod vector {
    use core::arch::asm;

    /// Copies `n` bytes from `src` to `dst` with SSE2 moves (part of the
    /// x86_64 baseline, so no feature detection): 64 bytes per step, then
    /// 16, then one last 16-byte move that overlaps the previous one; under
    /// 16 bytes, two overlapping moves of 8, 4, 2 or 1 bytes. Where moves
    /// overlap, a byte is copied twice with the same value (or, if a writer
    /// races, with two values it wrote).
    ///
    /// # Safety
    /// `src..src+n` must be readable and `dst..dst+n` writable for the whole
    /// call, and the two ranges must not overlap. Other threads or processes
    /// may read or write either range at the same time only if everything
    /// they do there is an atomic access or another call of this function
    /// (shared memory touched only through atomics, as in every tilewire
    /// object), and only the shared side may be raced on: the private side
    /// must be an exclusive borrow (`dst` of a load) or an immutable one
    /// (`src` of a store). Under those terms the block is, to the Rust
    /// abstract machine, a sequence of relaxed byte-wise atomic accesses
    /// (see [`super::load_bytes`]).
    #[inline]
    pub(super) unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
        if n >= 16 {
            let mut i = 0;
            while i + 64 <= n {
                // SAFETY: [i, i+64) is inside both ranges (loop condition);
                // the caller's contract covers everything else.
                unsafe {
                    asm!(
                        "movdqu {a}, xmmword ptr [{s}]",
                        "movdqu {b}, xmmword ptr [{s} + 16]",
                        "movdqu {c}, xmmword ptr [{s} + 32]",
                        "movdqu {e}, xmmword ptr [{s} + 48]",
                        "movdqu xmmword ptr [{d}], {a}",
                        "movdqu xmmword ptr [{d} + 16], {b}",
                        "movdqu xmmword ptr [{d} + 32], {c}",
                        "movdqu xmmword ptr [{d} + 48], {e}",
                        s = in(reg) src.add(i),
                        d = in(reg) dst.add(i),
                        a = out(xmm_reg) _,
                        b = out(xmm_reg) _,
                        c = out(xmm_reg) _,
                        e = out(xmm_reg) _,
                        options(nostack, preserves_flags),
                    );
                }
                i += 64;
            }
            while i + 16 <= n {
                // SAFETY: [i, i+16) is inside both ranges.
                unsafe { move16(dst.add(i), src.add(i)) };
                i += 16;
            }
            if i < n {
                // SAFETY: n >= 16, so [n-16, n) is inside both ranges.
                unsafe { move16(dst.add(n - 16), src.add(n - 16)) };
            }
        } else if n >= 8 {
            // SAFETY: 8 <= n < 16: [0, 8) and [n-8, n) are inside both
            // ranges. Both loads come before both stores, which matters
            // for nothing here (the ranges do not overlap) but costs
            // nothing either.
            unsafe {
                asm!(
                    "mov {a}, qword ptr [{s}]",
                    "mov {b}, qword ptr [{s} + {t}]",
                    "mov qword ptr [{d}], {a}",
                    "mov qword ptr [{d} + {t}], {b}",
                    s = in(reg) src,
                    d = in(reg) dst,
                    t = in(reg) n - 8,
                    a = out(reg) _,
                    b = out(reg) _,
                    options(nostack, preserves_flags),
                );
            }
        } else if n >= 4 {
            // SAFETY: 4 <= n < 8: [0, 4) and [n-4, n) are inside both.
            unsafe {
                asm!(
                    "mov {a:e}, dword ptr [{s}]",
                    "mov {b:e}, dword ptr [{s} + {t}]",
                    "mov dword ptr [{d}], {a:e}",
                    "mov dword ptr [{d} + {t}], {b:e}",
                    s = in(reg) src,
                    d = in(reg) dst,
                    t = in(reg) n - 4,
                    a = out(reg) _,
                    b = out(reg) _,
                    options(nostack, preserves_flags),
                );
            }
        } else if n >= 2 {
            // SAFETY: 2 <= n < 4: [0, 2) and [n-2, n) are inside both.
            unsafe {
                asm!(
                    "mov {a:x}, word ptr [{s}]",
                    "mov {b:x}, word ptr [{s} + {t}]",
                    "mov word ptr [{d}], {a:x}",
                    "mov word ptr [{d} + {t}], {b:x}",
                    s = in(reg) src,
                    d = in(reg) dst,
                    t = in(reg) n - 2,
                    a = out(reg) _,
                    b = out(reg) _,
                    options(nostack, preserves_flags),
                );
            }
        } else if n == 1 {
            // SAFETY: byte 0 is inside both ranges.
            unsafe {
                asm!(
                    "mov {a:l}, byte ptr [{s}]",
                    "mov byte ptr [{d}], {a:l}",
                    s = in(reg) src,
                    d = in(reg) dst,
                    a = out(reg_abcd) _,
                    options(nostack, preserves_flags),
                );
            }
        }
    }

    /// One 16-byte move.
    ///
    /// # Safety
    /// As [`copy`], for 16 bytes.
    #[inline(always)]
    unsafe fn move16(dst: *mut u8, src: *const u8) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!(
                "movdqu {a}, xmmword ptr [{s}]",
                "movdqu xmmword ptr [{d}], {a}",
                s = in(reg) src,
                d = in(reg) dst,
                a = out(xmm_reg) _,
                options(nostack, preserves_flags),
            );
        }
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
    if !(p as usize).is_multiple_of(8) {
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

    /// The copy a target uses (vector or atomic) agrees with the atomic
    /// reference at every alignment and every length up to a few vector
    /// steps, and never touches a byte outside the copied range.
    #[test]
    fn copies_match_the_atomic_reference_and_stay_in_bounds() {
        const GUARD: u8 = 0xA5;
        let mut buf = vec![0u64; 64];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let r = Region::from_mut(bytes);
        let all = r.atomic_bytes(0, r.len()).unwrap();
        for off in 0..17 {
            for len in 0..=300usize {
                let src: Vec<u8> = (0..len).map(|i| (i * 13 + off + 1) as u8 | 1).collect();
                for b in all {
                    b.store(GUARD, Ordering::Relaxed);
                }
                let shared = &all[off..off + len];
                store_bytes(shared, &src);
                for (i, b) in all.iter().enumerate() {
                    let want = if (off..off + len).contains(&i) {
                        src[i - off]
                    } else {
                        GUARD
                    };
                    assert_eq!(
                        b.load(Ordering::Relaxed),
                        want,
                        "store off {off} len {len} byte {i}"
                    );
                }
                let mut dst = vec![GUARD; len + 32];
                load_bytes(&mut dst[8..8 + len], shared);
                assert_eq!(&dst[8..8 + len], &src[..], "load off {off} len {len}");
                assert!(dst[..8].iter().chain(&dst[8 + len..]).all(|&b| b == GUARD));
                let mut reference = vec![0u8; len];
                load_bytes_atomic(&mut reference, shared);
                assert_eq!(reference, src);
                store_bytes_atomic(shared, &reference);
                load_bytes(&mut dst[..len], shared);
                assert_eq!(&dst[..len], &src[..]);
            }
        }
    }

    /// A copy racing with writers is torn at worst: every byte read is one
    /// some writer stored, never a mix within a byte or an invented value.
    #[test]
    fn racing_copies_read_only_bytes_someone_wrote() {
        let mut buf = vec![0u64; 256];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let r = Region::from_mut(bytes);
        let shared = r.atomic_bytes(3, 1500).unwrap();
        store_bytes(shared, &[0x11; 1500]);
        let stop = core::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let (a, b) = ([0x11u8; 1500], [0xEEu8; 1500]);
                while !stop.load(Ordering::Relaxed) {
                    store_bytes(shared, &a);
                    store_bytes(&shared[1..], &b[1..]);
                }
            });
            let mut dst = [0u8; 1500];
            for _ in 0..20_000 {
                load_bytes(&mut dst, shared);
                assert!(dst.iter().all(|&b| b == 0x11 || b == 0xEE), "{dst:?}");
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}
