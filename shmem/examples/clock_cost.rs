//! Nanoseconds per call of each clock, and how far the tick clock lies from
//! `clock_gettime`:
//!
//! ```text
//! cargo run --release -p tilewire-shmem --example clock_cost
//! ```
//!
//! `TILEWIRE_CLOCK=monotonic` in the environment measures the fallback.

use std::hint::black_box;
use tilewire_shmem::clock::{mono_ns, mono_ns_fast, mono_ts, tick_source, ts_comp};
use tilewire_shmem::tick;

const CALLS: u64 = 20_000_000;

/// The best of five runs of `CALLS` calls, in ns per call.
fn per_call(f: impl Fn() -> u64) -> f64 {
    (0..5)
        .map(|_| {
            let t0 = mono_ns();
            let mut acc = 0u64;
            for _ in 0..CALLS {
                acc = acc.wrapping_add(black_box(f()));
            }
            black_box(acc);
            (mono_ns() - t0) as f64 / CALLS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The same, with 64 dependent multiply-adds of work around each call (a
/// tile's work between stamps): what the call adds to the work's own time,
/// where a serialising read (the vDSO's ordered `rdtsc`) also stalls the
/// work around it.
fn per_call_in_work(f: impl Fn() -> u64) -> f64 {
    let run = |with_clock: bool| {
        (0..5)
            .map(|_| {
                let t0 = mono_ns();
                let mut x = 0x9e37_79b9_7f4a_7c15u64;
                for _ in 0..CALLS / 4 {
                    for _ in 0..64 {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    }
                    if with_clock {
                        x ^= black_box(f());
                    }
                    x = black_box(x);
                }
                (mono_ns() - t0) as f64 / (CALLS / 4) as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    run(true) - run(false)
}

fn main() {
    mono_ns_fast(); // calibrate outside the timing
    let cal = tick::calibration();
    println!(
        "source {} ({})",
        tick_source().name(),
        cal.map_or("no calibration".into(), |c| format!(
            "{:.6} ns per tick",
            c.ns_per_tick()
        ))
    );
    let rows: [(&str, f64); 5] = [
        ("mono_ns (clock_gettime)", per_call(mono_ns)),
        (
            "old mono_ts (clock_gettime, low 32 bits)",
            per_call(|| u64::from(ts_comp(mono_ns()))),
        ),
        (
            "new mono_ts (tick counter)",
            per_call(|| u64::from(mono_ts())),
        ),
        ("mono_ns_fast (tick counter)", per_call(mono_ns_fast)),
        ("raw counter read (tick::ticks)", per_call(tick::ticks)),
    ];
    for (name, ns) in rows {
        println!("{name:<44} {ns:>7.2} ns/call");
    }
    let in_work: [(&str, f64); 2] = [
        (
            "old mono_ts, amid work",
            per_call_in_work(|| u64::from(ts_comp(mono_ns()))),
        ),
        (
            "new mono_ts, amid work",
            per_call_in_work(|| u64::from(mono_ts())),
        ),
    ];
    for (name, ns) in in_work {
        println!("{name:<44} {ns:>7.2} ns/call added");
    }
    // Distance from clock_gettime: the fast reading against the middle of
    // a clock_gettime bracket, over 1 s of samples, narrow brackets only.
    let mut worst = 0i64;
    let mut sum = 0i64;
    let mut n = 0i64;
    let end = mono_ns() + 1_000_000_000;
    while mono_ns() < end {
        let a = mono_ns();
        let f = mono_ns_fast();
        let b = mono_ns();
        if b - a < 200 {
            let off = f as i64 - (a + (b - a) / 2) as i64;
            worst = worst.max(off.abs());
            sum += off;
            n += 1;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    println!(
        "offset from clock_gettime over 1 s: mean {} ns, worst {} ns ({} samples)",
        sum / n.max(1),
        worst,
        n
    );
}
