//! The clock every process of a pipeline shares.
//!
//! Frag timestamps (`tsorig`, `tspub`) are compared across processes, so they
//! are nanoseconds of `CLOCK_MONOTONIC`, which is one clock for the whole
//! machine (unlike a `std::time::Instant`, whose origin is private to a
//! process).
//!
//! Two ways to read it:
//!
//! - [`mono_ns`]: `clock_gettime` itself (the vDSO, a few tens of
//!   nanoseconds, no system call). Exact and never backwards: for deadlines,
//!   heartbeats and anything another process compares with its own
//!   `clock_gettime`.
//! - [`mono_ns_fast`] and [`mono_ts`]: the same nanoseconds from the CPU's
//!   tick counter (see [`crate::tick`]), a few nanoseconds a reading: for the
//!   per-frag stamps. They agree with `clock_gettime` to well under a
//!   microsecond on a healthy machine, but a counter that jumps (a VM
//!   migration) can make them step back once, so differences of them are
//!   taken saturating ([`ts_diff`], `u64::saturating_sub`).
//!
//! # Compressed timestamps
//!
//! A frag carries its stamps as `u32`: the low 32 bits of `CLOCK_MONOTONIC`
//! nanoseconds ([`ts_comp`]), as tango's `fd_frag_meta_ts_comp` does with its
//! ticks. The unit is the nanosecond; the value wraps every 2^32 ns (about
//! 4.29 s). A reader recovers the full time against a reference within
//! ±2^31 ns (about 2.15 s) of it ([`ts_decomp`]), and measures a latency as
//! [`ts_diff`]`(later, earlier)`, which reads a backwards step as 0 rather
//! than as four billion nanoseconds.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

pub use crate::tick::{calibrate, tick_source, TickSource, CLOCK_ENV};

/// CPU time the calling thread has used, in nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`): what a benchmark divides by its packets.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`, which we own;
    // CLOCK_THREAD_CPUTIME_ID exists on every Linux tilewire runs on.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(
        r,
        0,
        "CLOCK_THREAD_CPUTIME_ID: {}",
        std::io::Error::last_os_error()
    );
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds of `CLOCK_MONOTONIC`, from the kernel (`clock_gettime`
/// through the vDSO): exact and never backwards. The per-frag paths read
/// [`mono_ns_fast`] instead.
pub fn mono_ns() -> u64 {
    crate::tick::monotonic_ns()
}

/// Nanoseconds of `CLOCK_MONOTONIC` from the tick counter: no clock call
/// (one per process every 10 ms, to re-anchor; every reading where the
/// process has no trusted counter, see [`tick_source`]).
///
/// On a healthy machine it stays within a fraction of a microsecond of
/// [`mono_ns`] and is monotonic in a thread. A tick counter that jumps can
/// make it step back once (by at most 10 ms), never panic and never run off:
/// take differences with `saturating_sub`. The first reading of a process
/// calibrates the counter (about 2 ms, busy; see [`calibrate`] to do it
/// during set-up instead).
#[inline]
pub fn mono_ns_fast() -> u64 {
    crate::tick::now_ns()
}

/// The compressed timestamp frags carry, now: [`ts_comp`] of
/// [`mono_ns_fast`], the low 32 bits of `CLOCK_MONOTONIC` nanoseconds.
/// Measure with [`ts_diff`] (up to about 2.15 s).
#[inline]
pub fn mono_ts() -> u32 {
    ts_comp(mono_ns_fast())
}

/// Compresses nanoseconds to a frag's `u32` stamp: their low 32 bits.
#[inline]
pub const fn ts_comp(ns: u64) -> u32 {
    ns as u32
}

/// The nanoseconds whose low 32 bits are `ts`, nearest to `reference_ns`
/// (in `[reference_ns - 2^31, reference_ns + 2^31)`): a stamp taken within
/// about 2.15 s of the reference decompresses exactly. Saturates at 0 and
/// `u64::MAX` instead of wrapping.
#[inline]
pub const fn ts_decomp(ts: u32, reference_ns: u64) -> u64 {
    let delta = ts.wrapping_sub(reference_ns as u32) as i32;
    reference_ns.saturating_add_signed(delta as i64)
}

/// Nanoseconds from the stamp `earlier` to the stamp `later`, saturating: a
/// `later` that lies before `earlier` (a clock that stepped back, stamps
/// from processes whose clocks differ by a little) reads as 0. Stamps are
/// assumed within 2^31 ns (about 2.15 s) of each other: a difference of
/// 2^31 or more is taken for a backwards one.
#[inline]
pub const fn ts_diff(later: u32, earlier: u32) -> u32 {
    let d = later.wrapping_sub(earlier);
    if d > i32::MAX as u32 {
        0
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_and_in_nanoseconds() {
        let a = super::mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::mono_ns();
        assert!(b - a >= 2_000_000, "{a} {b}");
        assert!(b - a < 2_000_000_000, "{a} {b}");
    }
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    #[test]
    fn thread_cpu_time_moves_with_work_and_not_with_sleep() {
        let t0 = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let t1 = thread_cpu_ns();
        assert!(t1 > t0, "work uses CPU time: {t0} then {t1}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let t2 = thread_cpu_ns();
        assert!(
            t2 - t1 < 100_000_000,
            "a sleep uses (almost) none: {}",
            t2 - t1
        );
    }
}

#[cfg(test)]
mod ts_tests {
    use super::*;

    #[test]
    fn comp_keeps_the_low_32_bits_of_nanoseconds() {
        assert_eq!(ts_comp(0), 0);
        assert_eq!(ts_comp(0x1_2345_6789), 0x2345_6789);
        assert_eq!(ts_comp(u64::MAX), u32::MAX);
    }

    #[test]
    fn decomp_is_exact_within_half_a_wrap_of_the_reference() {
        let base = 7u64 << 32; // a reference right at a wrap of the low bits
        for reference in [base, base + 1, base - 1, base + (1 << 31), 123_456_789_012] {
            for off in [
                0i64,
                1,
                -1,
                1_000_000,
                -1_000_000,
                (1 << 31) - 1,
                -(1 << 31),
            ] {
                let ns = reference.wrapping_add_signed(off);
                assert_eq!(
                    ts_decomp(ts_comp(ns), reference),
                    ns,
                    "reference {reference} off {off}"
                );
            }
        }
        // Across the wrap: a stamp taken 10 ns before a reference whose low
        // bits just wrapped to 5.
        let reference = (3u64 << 32) + 5;
        assert_eq!(ts_decomp(u32::MAX - 4, reference), reference - 10);
        // And one taken 10 ns after a reference just below the wrap.
        let reference = (3u64 << 32) - 5;
        assert_eq!(ts_decomp(5, reference), reference + 10);
    }

    #[test]
    fn decomp_saturates_near_the_ends() {
        assert_eq!(ts_decomp(u32::MAX, 3), 0, "4 ns before 3 is before 0");
        assert_eq!(ts_decomp(1, u64::MAX), u64::MAX);
    }

    #[test]
    fn diff_wraps_forward_and_saturates_backward() {
        assert_eq!(ts_diff(10, 3), 7);
        // Forward across the wrap of the u32.
        assert_eq!(ts_diff(5, u32::MAX - 4), 10);
        assert_eq!(ts_diff(ts_comp(1 << 32), ts_comp((1 << 32) - 1)), 1);
        // A backwards step, small or across the wrap, reads 0, not ~4.29e9.
        assert_eq!(ts_diff(3, 10), 0);
        assert_eq!(ts_diff(u32::MAX - 4, 5), 0);
        // The largest forward difference, and one past it.
        assert_eq!(ts_diff(i32::MAX as u32, 0), i32::MAX as u32);
        assert_eq!(ts_diff(1 << 31, 0), 0);
    }

    #[test]
    fn mono_ts_is_the_compressed_fast_clock() {
        let before = mono_ns_fast();
        let ts = mono_ts();
        let after = mono_ns_fast();
        let full = ts_decomp(ts, before);
        assert!(before <= full && full <= after, "{before} {full} {after}");
    }
}
