//! Sleeping on a word of shared memory, and waking the sleepers: what a
//! tile with nothing to do parks on instead of spinning.
//!
//! # The futex
//!
//! [`futex_wait`] sleeps while a 64-bit word of a workspace still holds the
//! value the caller saw, until [`futex_wake_all`] is called on the same
//! word (from any process mapping the workspace: the operations are the
//! shared, not the process-private, futex), the timeout passes, or a
//! signal arrives. The kernel compares the word's low 32 bits (tilewire
//! runs on little-endian targets, where they are the bytes at the word's
//! address), so a waker changes the word by incrementing it: the low half
//! changes on every increment.
//!
//! # The asymmetric fence
//!
//! A sleeper must never miss the event it sleeps for. The classic protocol
//! ("the consumer announces it sleeps, then checks for work; the producer
//! publishes work, then checks for sleepers") needs a full fence on *both*
//! sides, and a fence on every publish is what a producer on the hot path
//! must not pay. [`heavy_fence`] moves the producer's half to the sleeper:
//! it makes every running thread of every process that called
//! [`register_for_fences`] execute a full memory barrier before it returns
//! (`membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`), so a producer's
//! publish that is still in its store buffer is visible afterwards, and
//! the producer keeps one plain load of the sleeper count. Where the
//! kernel lacks it, [`heavy_fence`] says so and the caller bounds its
//! sleep instead.

#![allow(unsafe_code)] // the futex and membarrier system calls

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

#[cfg(target_endian = "big")]
compile_error!("the futex helpers compare a word's low half at its address: little-endian only");

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

/// Sleeps while the low 32 bits of `word` equal those of `seen`, for at
/// most `timeout`. Returns when woken, when the word differs (at once), on
/// the timeout or on a signal; the caller re-checks what it waits for in
/// every case (a futex may also wake spuriously).
pub fn futex_wait(word: &AtomicU64, seen: u64, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, 8-aligned atomic (so its first 4 bytes are
    // a 4-aligned u32 on little-endian targets); FUTEX_WAIT only reads it
    // and the timespec, which lives across the call. No memory is handed
    // to the kernel beyond the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const AtomicU64 as *const u32,
            libc::FUTEX_WAIT,
            seen as u32,
            &ts as *const libc::timespec,
        )
    };
    r == 0
}

/// Wakes every thread sleeping in [`futex_wait`] on `word`, in any
/// process. The caller changes the word (an increment) first, so a sleeper
/// about to sleep on the old value does not. Returns how many woke.
pub fn futex_wake_all(word: &AtomicU64) -> usize {
    // SAFETY: as in futex_wait; FUTEX_WAKE reads nothing but the address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const AtomicU64 as *const u32,
            libc::FUTEX_WAKE,
            i32::MAX,
        )
    };
    usize::try_from(r).unwrap_or(0)
}

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
}

/// Whether this kernel has the expedited global membarrier.
fn expedited_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let cmds = membarrier(MEMBARRIER_CMD_QUERY);
        cmds >= 0 && cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED != 0
    })
}

/// Registers this process for [`heavy_fence`]s made by any process: a
/// producer calls it once before it publishes where sleepers may wait.
/// Returns whether the fence is available (registering twice is harmless).
pub fn register_for_fences() -> bool {
    expedited_available() && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0
}

/// A full memory barrier on every running thread of every process
/// registered with [`register_for_fences`], this one's included; see the
/// [module docs](self). Returns `false` if the kernel cannot do it (then
/// only this thread fenced, and a sleeper must bound its sleep).
pub fn heavy_fence() -> bool {
    // SYNC: SeqCst; this thread's half of the protocol, whatever the
    // kernel offers.
    core::sync::atomic::fence(Ordering::SeqCst);
    expedited_available() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wait_on_a_changed_word_returns_at_once_and_a_wake_ends_a_wait() {
        let w = Arc::new(AtomicU64::new(5));
        let t0 = Instant::now();
        futex_wait(&w, 4, Duration::from_secs(5));
        assert!(t0.elapsed() < Duration::from_secs(1), "the word differs");
        let w2 = w.clone();
        let sleeper = std::thread::spawn(move || {
            let t = Instant::now();
            while w2.load(Ordering::Acquire) == 5 {
                futex_wait(&w2, 5, Duration::from_secs(10));
            }
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        // SYNC: Release; pairs with the sleeper's Acquire load.
        w.fetch_add(1, Ordering::Release);
        futex_wake_all(&w);
        let slept = sleeper.join().unwrap();
        assert!(
            slept < Duration::from_secs(5),
            "woken, not timed out: {slept:?}"
        );
    }

    #[test]
    fn a_wait_times_out() {
        let w = AtomicU64::new(0);
        let t0 = Instant::now();
        futex_wait(&w, 0, Duration::from_millis(20));
        assert!(t0.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn the_fence_registers_and_runs_or_says_it_cannot() {
        let registered = register_for_fences();
        assert_eq!(registered, heavy_fence(), "available once registered");
    }
}
