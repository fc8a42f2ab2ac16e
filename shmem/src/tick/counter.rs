//! The counters a [`super::TickClock`] reads: the CPU's own and the
//! kernel's clock, and the check of whether the CPU's may be trusted.
#![allow(unsafe_code)] // reads the CPU's counter and the kernel's clock; each use says why it is sound

/// Which counter a process reads its time from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TickSource {
    /// The x86_64 time-stamp counter (`rdtsc`), invariant.
    Tsc,
    /// The aarch64 virtual counter (`CNTVCT_EL0`).
    Cntvct,
    /// No tick counter: `clock_gettime(CLOCK_MONOTONIC)` per reading.
    Monotonic,
}

impl TickSource {
    /// A short name for logs and reports: `tsc`, `cntvct`, `monotonic`.
    pub fn name(self) -> &'static str {
        match self {
            TickSource::Tsc => "tsc",
            TickSource::Cntvct => "cntvct",
            TickSource::Monotonic => "monotonic",
        }
    }
}

/// A counter a [`super::TickClock`] reads: ticks at a constant rate, and the
/// reference clock it is calibrated against.
pub trait Counter {
    /// The counter now.
    fn ticks(&mut self) -> u64;
    /// The reference clock now, in nanoseconds (`CLOCK_MONOTONIC` for the
    /// real counter).
    fn reference_ns(&mut self) -> u64;
}

/// The CPU's counter against `CLOCK_MONOTONIC`: what the process-wide
/// readings use. Only meaningful where [`super::tick_source`] is not
/// [`TickSource::Monotonic`]; there, its `ticks` are the kernel's
/// nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hardware;

impl Counter for Hardware {
    #[inline]
    fn ticks(&mut self) -> u64 {
        hardware_ticks()
    }
    fn reference_ns(&mut self) -> u64 {
        monotonic_ns()
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC`, read from the kernel (the vDSO).
pub(crate) fn monotonic_ns() -> u64 {
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

/// The CPU's counter, unchecked: call only where [`probe`] allowed it.
#[inline(always)]
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)] // `_rdtsc` is a safe fn in newer toolchains, not in older ones
pub(super) fn hardware_ticks() -> u64 {
    // SAFETY: rdtsc has no memory effects; the process checked at
    // calibration that the CPU has it and that it is not made to fault
    // (PR_GET_TSC). Where that check failed, no anchor is ever made, so
    // nothing reaches this read.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The CPU's counter, unchecked: call only where [`probe`] allowed it.
#[inline(always)]
#[cfg(target_arch = "aarch64")]
pub(super) fn hardware_ticks() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no memory effects and Linux lets user
    // space read it (CNTKCTL_EL1.EL0VCTEN is set by the kernel).
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// No counter on this architecture: the kernel's nanoseconds.
#[inline(always)]
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn hardware_ticks() -> u64 {
    monotonic_ns()
}

/// Whether this CPU has a counter the process may trust and read.
#[allow(unused_unsafe)] // `__cpuid` is a safe fn in newer toolchains, not in older ones
pub(super) fn probe() -> TickSource {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::__cpuid;
        // SAFETY: cpuid exists on every x86_64 CPU and has no memory
        // effects; leaf 0x8000_0000 reports the highest extended leaf,
        // which is checked before 0x8000_0007 is asked for.
        let invariant = unsafe {
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
        };
        let mut state: libc::c_int = 0;
        // SAFETY: PR_GET_TSC writes one int into `state`, which we own and
        // which outlives the call.
        let readable = unsafe { libc::prctl(libc::PR_GET_TSC, &mut state as *mut libc::c_int) }
            == 0
            && state == libc::PR_TSC_ENABLE;
        if invariant && readable {
            return TickSource::Tsc;
        }
        TickSource::Monotonic
    }
    #[cfg(target_arch = "aarch64")]
    {
        TickSource::Cntvct
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        TickSource::Monotonic
    }
}
