//! The backing-off loop: a tile with nothing to do sleeps (its thread uses
//! little CPU), wakes for every frag its producer publishes, and keeps its
//! heartbeat while it sleeps, so a monitor never takes it for dead.

mod common;

use std::time::{Duration, Instant};

use common::{send_all, TestWs};
use tilewire_aio::MemAio;
use tilewire_shmem::clock::{mono_ns, thread_cpu_ns};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::{IdlePolicy, Stem, StemConfig};

const MTU: usize = 256;

#[test]
fn a_backing_off_tile_sleeps_between_frags_and_gets_every_one() {
    let t = TestWs::new("idle", 8 << 20);
    let link = t.link("a", 1024, MTU, &[Reliable]);
    let mut stem = Stem::new(
        &t.ws,
        "drain",
        Drain::new(MemAio::new(4096, 4096 * MTU), MTU),
        &[(&link, 0)],
        &[],
        StemConfig::default(),
    )
    .unwrap();
    stem.set_idle(IdlePolicy::Backoff);
    let m = stem.metrics();
    let (cpu, elapsed, max_heartbeat_age) = std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let (c0, w0) = (thread_cpu_ns(), Instant::now());
            stem.run();
            (thread_cpu_ns() - c0, w0.elapsed())
        });
        let mut tx = LinkTx::new(&link);
        let mut max_age = 0u64;
        // 40 frags, 10 ms apart: the tile runs dry and sleeps between.
        for i in 0..40 {
            send_all(&mut tx, i, 1, MTU);
            std::thread::sleep(Duration::from_millis(10));
            let snap = m.snapshot();
            max_age = max_age.max(mono_ns().saturating_sub(snap.heartbeat_ns));
        }
        // Nothing more for 300 ms: still alive.
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(10));
            let snap = m.snapshot();
            max_age = max_age.max(mono_ns().saturating_sub(snap.heartbeat_ns));
        }
        m.request_stop();
        let (cpu, elapsed) = runner.join().unwrap();
        (cpu, elapsed, max_age)
    });
    let got = stem.tile().aio().stats().pkts;
    assert_eq!(got, 40, "every frag reached the downstream");
    eprintln!(
        "backoff: {:.1} ms of CPU in {:.0} ms, heartbeat at most {:.1} ms old",
        cpu as f64 / 1e6,
        elapsed.as_secs_f64() * 1e3,
        max_heartbeat_age as f64 / 1e6
    );
    // A spinning loop would use the whole of it.
    assert!(
        (cpu as f64) < elapsed.as_nanos() as f64 * 0.25,
        "it slept: {cpu} ns of CPU in {elapsed:?}"
    );
    assert!(
        max_heartbeat_age < 200_000_000,
        "a sleeping tile keeps its heartbeat: {max_heartbeat_age} ns"
    );
}
