//! The clock every process of a pipeline shares.
//!
//! Frag timestamps (`tsorig`, `tspub`) are compared across processes, so they
//! come from `CLOCK_MONOTONIC`, which is one clock for the whole machine
//! (unlike a `std::time::Instant`, whose origin is private to a process). A
//! read costs a few tens of nanoseconds through the vDSO, with no system call.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

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

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`, which we own;
    // CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The low 32 bits of [`mono_ns`]: the compressed timestamp frags carry.
/// Differences of two of them (wrapping) measure up to about 4.29 s.
pub fn mono_ts() -> u32 {
    mono_ns() as u32
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
