//! The process-wide clock: the tick counter against `clock_gettime`, in one
//! thread and in several, and the fallback the environment forces (in a
//! child process, since a process calibrates once).

use std::process::Command;
use std::time::Duration;
use tilewire_shmem::clock::{mono_ns, mono_ns_fast, mono_ts, tick_source, ts_diff, TickSource};
use tilewire_shmem::tick;

/// The smallest distance between the fast clock and `clock_gettime` over
/// a few tries (a try that was preempted between the two reads is wide).
fn distance_ns() -> u64 {
    (0..20)
        .map(|_| {
            let a = mono_ns();
            let f = mono_ns_fast();
            let b = mono_ns();
            // `f` should lie in [a, b]; how far outside it lies.
            a.saturating_sub(f).max(f.saturating_sub(b))
        })
        .min()
        .unwrap()
}

#[test]
fn monotonic_in_one_thread_across_reanchors() {
    let end = mono_ns() + 30 * tick::REANCHOR_NS;
    let mut last = mono_ns_fast();
    let mut reads = 0u64;
    while mono_ns() < end {
        for _ in 0..1_000 {
            let now = mono_ns_fast();
            assert!(
                now >= last,
                "backwards after {reads} reads: {last} then {now}"
            );
            last = now;
            reads += 1;
        }
    }
    assert!(reads > 1_000);
}

#[test]
fn agrees_with_clock_gettime() {
    mono_ns_fast(); // calibrated and anchored
    let d = distance_ns();
    assert!(
        d < 20_000,
        "{} clock: {d} ns from clock_gettime",
        tick_source().name()
    );
}

#[test]
fn calibration_error_over_100_ms_is_below_one_percent() {
    // Each end is the narrowest of a few back-to-back pairs.
    let pair = || {
        (0..10)
            .map(|_| {
                let a = mono_ns();
                let f = mono_ns_fast();
                let b = mono_ns();
                (b - a, a + (b - a) / 2, f)
            })
            .min()
            .map(|(_, m, f)| (m, f))
            .unwrap()
    };
    let (m0, f0) = pair();
    std::thread::sleep(Duration::from_millis(100));
    let (m1, f1) = pair();
    let mono = m1 - m0;
    let fast = f1.saturating_sub(f0);
    let err = mono.abs_diff(fast);
    assert!(mono >= 100_000_000, "{mono}");
    assert!(
        err < mono / 100,
        "fast {fast} ns against {mono} ns: {err} ns apart"
    );
}

#[test]
fn threads_agree_with_clock_gettime_and_stamps_compare() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let ts = mono_ts();
                std::thread::sleep(Duration::from_millis(20));
                (distance_ns(), ts)
            })
        })
        .collect();
    let later = {
        std::thread::sleep(Duration::from_millis(30));
        mono_ts()
    };
    for h in handles {
        let (d, ts) = h.join().unwrap();
        assert!(d < 20_000, "a thread's clock {d} ns from clock_gettime");
        // A stamp of another thread, 20 ms and more before `later`.
        let age = ts_diff(later, ts);
        assert!((5_000_000..2_000_000_000).contains(&age), "{age}");
    }
}

#[test]
fn the_source_is_the_counter_on_x86_64_with_an_invariant_tsc() {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let invariant = flags
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            f.contains(&"constant_tsc") && f.contains(&"nonstop_tsc")
        });
    if std::env::var_os(tick::CLOCK_ENV).is_some() {
        eprintln!("skipped: {} is set", tick::CLOCK_ENV);
        return;
    }
    tilewire_shmem::clock::calibrate();
    if cfg!(target_arch = "x86_64") && invariant {
        assert_eq!(tick_source(), TickSource::Tsc);
        let cal = tick::calibration().expect("calibrated");
        assert!(cal.ns_per_tick() > 0.0 && cal.ns_per_tick() < 10.0);
    } else {
        eprintln!("not an x86_64 with an invariant TSC: {:?}", tick_source());
    }
}

/// Runs `fallback_child` in a child process with `TILEWIRE_CLOCK` set.
fn child(value: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fallback_child", "--ignored", "--nocapture"])
        .env(tick::CLOCK_ENV, value)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{value}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_environment_forces_the_monotonic_fallback() {
    child("monotonic");
    child("something-else");
}

#[test]
#[ignore = "run by the_environment_forces_the_monotonic_fallback, in a child with TILEWIRE_CLOCK set"]
fn fallback_child() {
    assert!(
        std::env::var_os(tick::CLOCK_ENV).is_some(),
        "the parent sets it"
    );
    assert_eq!(tick_source(), TickSource::Monotonic);
    assert!(tick::calibration().is_none());
    // Every reading is clock_gettime itself: inside the bracket, exactly.
    for _ in 0..1_000 {
        let a = mono_ns();
        let f = mono_ns_fast();
        let b = mono_ns();
        assert!(a <= f && f <= b, "{a} {f} {b}");
    }
    let earlier = (mono_ns() - 1_000) as u32;
    assert!(ts_diff(mono_ts(), earlier) >= 1_000);
}

#[test]
fn a_stamp_taken_after_another_threads_is_not_smaller() {
    // Two threads hand a stamp back and forth; each takes its own after it
    // received the other's, across a few re-anchors of the process anchor.
    use std::sync::mpsc::channel;
    let (to_b, from_a) = channel::<u64>();
    let (to_a, from_b) = channel::<u64>();
    let rounds = 20_000u64;
    let b = std::thread::spawn(move || {
        for _ in 0..rounds {
            let theirs = from_a.recv().unwrap();
            let mine = mono_ns_fast();
            assert!(mine >= theirs, "b read {mine} after a's {theirs}");
            to_a.send(mine).unwrap();
        }
    });
    let start = mono_ns();
    let mut mine = mono_ns_fast();
    for _ in 0..rounds {
        to_b.send(mine).unwrap();
        let theirs = from_b.recv().unwrap();
        mine = mono_ns_fast();
        assert!(mine >= theirs, "a read {mine} after b's {theirs}");
    }
    b.join().unwrap();
    eprintln!("{} ms of hand-offs", (mono_ns() - start) / 1_000_000);
}
