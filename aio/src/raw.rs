//! [`RawAio`]: the fd_aio object itself, a context pointer and a send
//! function placed in caller memory.
//!
//! # What it is for
//!
//! Rust code passes aios around as values (`impl Aio`, `&mut dyn Aio`). Two
//! things need more: finding an aio *by name* in a workspace (a tile is told
//! "send to net.tx.aio"), and plugging in a backend written in C. Both need
//! the fd_aio shape: a small object in memory holding `ctx` and a
//! [`SendFn`], with the shared-object lifecycle of
//! [`tilewire_shmem::object`]:
//!
//! - [`RawAio::ALIGN`] and [`RawAio::footprint`] (fixed: 64 bytes, one cache
//!   line, so the hot read of `ctx` and the function shares its line with
//!   nothing);
//! - [`RawAio::new`] writes `ctx` and the function, then publishes the
//!   magic with Release ordering; [`RawAio::new_for`] does it for any Rust
//!   [`Aio`] through a monomorphised `extern "C"` trampoline;
//! - [`RawAio::join`] checks alignment, size, magic and version (Acquire),
//!   then the stored function, and returns a [`RawAioHandle`];
//! - [`RawAio::leave`] gives the memory back; [`RawAio::delete`] zeroes the
//!   magic so later joins fail.
//!
//! A handle sends either raw batches of [`PktInfoC`]
//! ([`RawAioHandle::send_raw`]) or, as an [`Aio`], batches of [`PktInfo`],
//! converted on the stack in chunks of [`CHUNK`] descriptors: no heap
//! allocation, and error indices always refer to the caller's whole batch.
//!
//! # Only inside the process that made it
//!
//! The object holds a function pointer and a context pointer, which mean
//! nothing in another address space. **A `RawAio` is joinable only inside
//! the process that made it.** This is enforced, not just documented: `new`
//! records each object (address, context, function) in a process-local
//! table and `join` refuses, with [`JoinError::BadParams`], any object this
//! process did not make, whether it was made by another process sharing the
//! workspace or forged by writing the right bytes. The edge between
//! processes is a link (tilewire-tile), which carries packet bytes and
//! offsets, never pointers.
//!
//! Metadata does not cross this edge: [`PktInfoC`] has room for bytes only,
//! so a [`PktMeta`](crate::PktMeta) sent through a handle arrives as the
//! default.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tilewire_shmem::object::{check_join, check_new, magic, publish_magic, retire_magic};
use tilewire_shmem::{DeleteError, JoinError, NewError, Region, ShmObject};

use crate::{Aio, PktInfo, PktInfoC, SendError, SendErrorKind, ERR_INVAL, SUCCESS};

/// The fd_aio send function.
///
/// Called with the `ctx` the object was made with, `batch_cnt` descriptors
/// at `batch` (may be null when `batch_cnt` is 0), an optional out-pointer
/// for the index of the first packet not sent, and `flush` (nonzero = flush).
/// Returns [`SUCCESS`] or a negative
/// [`ERR_*`](crate::ERR_INVAL) code; on failure, if `opt_batch_idx` is not
/// null, it writes the index of the first packet not sent there. It follows
/// the [`Aio`] contract, and must not keep any pointer from `batch` after
/// returning.
///
/// The caller guarantees that `batch..batch+batch_cnt` are readable
/// descriptors, each naming bytes readable until the call returns, and that
/// `opt_batch_idx` is null or writable.
pub type SendFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    batch: *const PktInfoC,
    batch_cnt: usize,
    opt_batch_idx: *mut usize,
    flush: i32,
) -> i32;

/// How many descriptors a conversion step handles on the stack.
pub const CHUNK: usize = 64;

const HDR_ALIGN: usize = 64;
const HDR_FOOTPRINT: usize = 64;
const KIND: &str = "aio";
const AIO_MAGIC: u64 = magic(b"tw.aio\0", 1);

/// The object's layout in memory: only atomics, because the bytes are
/// shared with every joiner.
#[repr(C, align(64))]
struct Header {
    magic: AtomicU64,
    ctx: AtomicPtr<c_void>,
    send_fn: AtomicUsize,
    _reserved: [AtomicU64; 5],
}

const _: () = assert!(core::mem::size_of::<Header>() == HDR_FOOTPRINT);
const _: () = assert!(core::mem::align_of::<Header>() == HDR_ALIGN);

/// The header at the start of `mem`; the caller has checked alignment and
/// size (`check_new` or `check_join` with the footprint).
fn header<'a>(mem: &Region<'a>) -> &'a Header {
    debug_assert!(mem.is_aligned(HDR_ALIGN) && mem.len() >= HDR_FOOTPRINT);
    // SAFETY: the region is live for 'a, 64-aligned and at least 64 bytes
    // (checked by every caller); Header is made of atomics only, valid for
    // any bit pattern, and every access to these bytes is atomic.
    unsafe { &*mem.as_ptr().cast::<Header>() }
}

/// One object made by this process.
#[derive(Clone, Copy)]
struct Made {
    addr: usize,
    ctx: usize,
    send_fn: SendFn,
}

/// Every live object made by this process. Touched by new, join and delete
/// only, never on a send.
static MADE_HERE: Mutex<Vec<Made>> = Mutex::new(Vec::new());

fn made_here() -> std::sync::MutexGuard<'static, Vec<Made>> {
    // A panic while holding the lock cannot leave the table inconsistent
    // (every update is a single push, write or swap_remove).
    MADE_HERE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fd_aio object over caller memory; a namespace for its verbs. See the
/// [module documentation](self).
#[derive(Debug)]
pub enum RawAio {}

impl RawAio {
    /// The versioned magic in the first eight bytes.
    pub const MAGIC: u64 = AIO_MAGIC;
    /// Required alignment of the object's memory.
    pub const ALIGN: usize = HDR_ALIGN;

    /// Bytes the object needs (fixed).
    pub const fn footprint() -> usize {
        HDR_FOOTPRINT
    }

    /// Formats `mem` as an aio that calls `send_fn(ctx, ..)`.
    ///
    /// Writes the fields, records the object as made by this process, and
    /// publishes the magic last with Release ordering.
    ///
    /// # Errors
    /// [`NewError::ReadOnly`], [`NewError::Misaligned`] (see
    /// [`RawAio::ALIGN`]), [`NewError::TooSmall`] (see
    /// [`RawAio::footprint`]). Nothing is written on error.
    ///
    /// # Safety
    /// Every handle joined from this object calls `send_fn(ctx, ..)` from
    /// safe code. So, until `delete` on this memory has returned *and* every
    /// handle joined from it has been dropped (or for ever, if it is never
    /// deleted):
    /// - calling `send_fn` with `ctx` and a valid batch must be sound, from
    ///   any thread of this process that joins it;
    /// - calls through different handles must not overlap unless `send_fn`
    ///   allows that.
    ///
    /// `mem` must not hold a live `RawAio` that anyone may still join or use.
    // `new` formats caller memory and returns no value, as every shared
    // object's `new` in tilewire does; the handle comes from `join`.
    #[allow(clippy::new_ret_no_self)]
    pub unsafe fn new(mem: Region<'_>, ctx: *mut c_void, send_fn: SendFn) -> Result<(), NewError> {
        check_new(&mem, HDR_ALIGN, HDR_FOOTPRINT)?;
        let hdr = header(&mem);
        // SYNC: these Relaxed stores are published by the Release store of
        // the magic in `publish_magic` below, which pairs with the Acquire
        // load of the magic in `check_join` (RawAio::join).
        hdr.ctx.store(ctx, Ordering::Relaxed);
        hdr.send_fn.store(send_fn as usize, Ordering::Relaxed);
        for word in &hdr._reserved {
            // SYNC: as above, published by the magic's Release store.
            word.store(0, Ordering::Relaxed);
        }
        let made = Made {
            addr: mem.as_ptr() as usize,
            ctx: ctx as usize,
            send_fn,
        };
        {
            let mut table = made_here();
            match table.iter_mut().find(|m| m.addr == made.addr) {
                Some(old) => *old = made,
                None => table.push(made),
            }
        }
        publish_magic(&mem, AIO_MAGIC);
        Ok(())
    }

    /// Formats `mem` as an aio that forwards every send to `*target`,
    /// through an `extern "C"` trampoline made for `T`: any Rust [`Aio`]
    /// becomes a `RawAio`.
    ///
    /// Sends arrive at `T` in chunks of at most [`CHUNK`] packets (`flush`
    /// only on the last one) with default metadata; error indices are
    /// translated back to the caller's batch. A panic in `T::send` aborts
    /// the process: it cannot unwind through `extern "C"`.
    ///
    /// # Errors
    /// As for [`RawAio::new`].
    ///
    /// # Safety
    /// As for [`RawAio::new`], with `ctx = target`: `target` must point to a
    /// live `T` for as long as the object may be used; while a send through
    /// any handle runs, nothing else may touch `*target` (in particular
    /// `T::send` must not send through this same object); and if a handle is
    /// joined on a thread other than the one that owns the `T`, `T` must be
    /// [`Send`] and those sends must not overlap.
    pub unsafe fn new_for<T: Aio>(mem: Region<'_>, target: *mut T) -> Result<(), NewError> {
        // SAFETY: the caller's contract for `target` is exactly the contract
        // `new` asks for `ctx`, given what `trampoline::<T>` does with it.
        unsafe { Self::new(mem, target.cast::<c_void>(), trampoline::<T>) }
    }

    /// Joins the aio at `mem`.
    ///
    /// The handle caches `ctx` and the function; it borrows `mem` for `'a`.
    ///
    /// # Errors
    /// [`JoinError::Misaligned`], [`JoinError::TooSmall`],
    /// [`JoinError::NotInitialized`] (zero magic: never made, or deleted),
    /// [`JoinError::BadMagic`], [`JoinError::BadVersion`];
    /// [`JoinError::BadParams`] if the stored function is null or the object
    /// was not made by [`RawAio::new`] in this process (see the module
    /// documentation).
    pub fn join(mem: Region<'_>) -> Result<RawAioHandle<'_>, JoinError> {
        check_join(&mem, KIND, AIO_MAGIC, HDR_ALIGN, HDR_FOOTPRINT)?;
        let hdr = header(&mem);
        // SYNC: ordered after the Acquire load of the magic in `check_join`,
        // which pairs with the Release store in `publish_magic` (RawAio::new).
        let ctx = hdr.ctx.load(Ordering::Relaxed);
        // SYNC: as above.
        let send_fn = hdr.send_fn.load(Ordering::Relaxed);
        if send_fn == 0 {
            return Err(JoinError::BadParams {
                kind: KIND,
                what: "the send function is null",
            });
        }
        let addr = mem.as_ptr() as usize;
        let made = made_here()
            .iter()
            .find(|m| m.addr == addr && m.ctx == ctx as usize && m.send_fn as usize == send_fn)
            .copied()
            .ok_or(JoinError::BadParams {
                kind: KIND,
                what: "not made by RawAio::new in this process (it holds pointers; \
                       the edge between processes is a link)",
            })?;
        Ok(RawAioHandle {
            mem,
            ctx,
            send_fn: made.send_fn,
        })
    }

    /// Leaves: drops the handle and gives its memory back.
    pub fn leave(handle: RawAioHandle<'_>) -> Region<'_> {
        handle.mem
    }

    /// Deletes the aio at `mem`: zeroes the magic (Release) so later joins
    /// fail with [`JoinError::NotInitialized`], and forgets it as made here.
    ///
    /// Handles already joined keep working (they hold copies of the
    /// pointers); the caller of [`RawAio::new`] keeps `ctx` valid until they
    /// are dropped.
    ///
    /// # Errors
    /// [`DeleteError::ReadOnly`], or [`DeleteError::Join`] with the reason
    /// `mem` does not hold a live aio. Nothing is changed on error.
    pub fn delete(mem: Region<'_>) -> Result<(), DeleteError> {
        retire_magic(&mem, KIND, AIO_MAGIC, HDR_ALIGN)?;
        let addr = mem.as_ptr() as usize;
        let mut table = made_here();
        if let Some(i) = table.iter().position(|m| m.addr == addr) {
            table.swap_remove(i);
        }
        Ok(())
    }
}

impl ShmObject for RawAio {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = AIO_MAGIC;
    const ALIGN: usize = HDR_ALIGN;
    type Params = ();

    fn footprint(_params: &()) -> Option<usize> {
        Some(HDR_FOOTPRINT)
    }
}

/// A joined [`RawAio`]: sends through its function.
///
/// Not [`Send`] or [`Sync`]: each thread joins for itself, so that the
/// object's maker decides (in [`RawAio::new`]'s contract) which threads may
/// call its function.
///
/// ```compile_fail
/// fn needs_send<T: Send>() {}
/// needs_send::<tilewire_aio::RawAioHandle<'static>>();
/// ```
#[derive(Debug)]
pub struct RawAioHandle<'a> {
    mem: Region<'a>,
    ctx: *mut c_void,
    send_fn: SendFn,
}

impl<'a> RawAioHandle<'a> {
    /// The memory the object lives in.
    pub fn region(&self) -> Region<'a> {
        self.mem
    }

    /// The context pointer the object was made with.
    pub fn ctx(&self) -> *mut c_void {
        self.ctx
    }

    /// The send function the object was made with.
    pub fn send_fn(&self) -> SendFn {
        self.send_fn
    }

    /// Calls the send function with a raw batch: fd_aio's `fd_aio_send`.
    ///
    /// Returns the function's code and the index of the first packet not
    /// sent: `batch.len()` on success; on failure the index the function
    /// reported, clamped to `batch.len()`, or 0 if it reported none (so a
    /// caller retries rather than loses packets).
    ///
    /// # Safety
    /// Every descriptor in `batch` with `buf_sz > 0` must name bytes that
    /// stay readable, and unwritten, until this call returns.
    pub unsafe fn send_raw(&self, batch: &[PktInfoC], flush: bool) -> (i32, usize) {
        let mut batch_idx = 0usize;
        // SAFETY: `batch` is a live slice of descriptors whose bytes the
        // caller vouches for, `batch_idx` is a writable local, and the maker
        // of the object vouched (RawAio::new) that calling `send_fn` with
        // `ctx` is sound while this handle exists.
        let code = unsafe {
            (self.send_fn)(
                self.ctx,
                batch.as_ptr(),
                batch.len(),
                &mut batch_idx,
                i32::from(flush),
            )
        };
        if code == SUCCESS {
            (SUCCESS, batch.len())
        } else {
            (code, batch_idx.min(batch.len()))
        }
    }
}

impl Aio for RawAioHandle<'_> {
    /// Converts the batch to [`PktInfoC`] in stack chunks of [`CHUNK`] and
    /// calls the function once per chunk (`flush` only with the last).
    ///
    /// # Errors
    /// The function's error with the index in the whole batch (an unknown
    /// code counts as `Inval`); [`SendError::inval`] at a packet longer than
    /// `u16::MAX` bytes, after the packets before it were sent.
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        let mut descs = [PktInfoC::EMPTY; CHUNK];
        let mut start = 0;
        loop {
            let end = batch.len().min(start + CHUNK);
            let mut n = 0;
            let mut too_long = None;
            for pkt in &batch[start..end] {
                match PktInfoC::try_from(pkt) {
                    Ok(d) => {
                        descs[n] = d;
                        n += 1;
                    }
                    Err(_) => {
                        too_long = Some(start + n);
                        break;
                    }
                }
            }
            let stop = end == batch.len() || too_long.is_some();
            // SAFETY: descs[..n] were made from slices of `batch`, borrowed
            // for this whole call.
            let (code, idx) = unsafe { self.send_raw(&descs[..n], flush && stop) };
            if let Some(kind) = SendErrorKind::from_code(code) {
                return Err(SendError {
                    kind,
                    batch_idx: start + idx,
                });
            }
            if let Some(idx) = too_long {
                return Err(SendError::inval(idx));
            }
            if stop {
                return Ok(());
            }
            start = end;
        }
    }
}

/// The [`SendFn`] made for `T` by [`RawAio::new_for`]: turns the raw batch
/// back into [`PktInfo`] chunks on the stack and calls `T::send`.
///
/// # Safety
/// `ctx` is the `*mut T` given to `new_for`, under its contract; the rest is
/// the [`SendFn`] calling contract.
unsafe extern "C" fn trampoline<T: Aio>(
    ctx: *mut c_void,
    batch: *const PktInfoC,
    batch_cnt: usize,
    opt_batch_idx: *mut usize,
    flush: i32,
) -> i32 {
    // SAFETY: `new_for`'s contract: ctx is a live *mut T that nothing else
    // touches while this send runs.
    let target = unsafe { &mut *ctx.cast::<T>() };
    let fail = |code: i32, idx: usize| {
        if !opt_batch_idx.is_null() {
            // SAFETY: the SendFn contract: a non-null out-pointer is writable.
            unsafe { opt_batch_idx.write(idx) };
        }
        code
    };
    let flush = flush != 0;
    if batch_cnt == 0 {
        return match target.send(&[], flush) {
            Ok(()) => SUCCESS,
            Err(e) => fail(e.code(), 0),
        };
    }
    if batch.is_null() {
        return fail(ERR_INVAL, 0);
    }
    // SAFETY: the SendFn contract: batch..batch+batch_cnt are readable
    // descriptors for the duration of this call (non-null, checked above;
    // PktInfoC's alignment is the caller's as for any C array).
    let descs = unsafe { core::slice::from_raw_parts(batch, batch_cnt) };
    let mut pkts = [PktInfo::new(&[]); CHUNK];
    for (c, chunk) in descs.chunks(CHUNK).enumerate() {
        let start = c * CHUNK;
        let mut n = 0;
        let mut bad = None;
        for d in chunk {
            if d.buf.is_null() && d.buf_sz > 0 {
                bad = Some(start + n);
                break;
            }
            // SAFETY: the SendFn contract: each descriptor's bytes are
            // readable until this call returns, and `pkts` does not outlive it.
            pkts[n] = PktInfo::new(unsafe { d.as_bytes() });
            n += 1;
        }
        let stop = start + chunk.len() == batch_cnt || bad.is_some();
        if let Err(e) = target.send(&pkts[..n], flush && stop) {
            return fail(e.code(), start + e.batch_idx);
        }
        if let Some(idx) = bad {
            return fail(ERR_INVAL, idx);
        }
    }
    SUCCESS
}

#[cfg(test)]
mod tests;
