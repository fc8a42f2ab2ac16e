//! Parking on a link: a consumer with nothing to read sleeps on the link's
//! wake word and the producer wakes it. The race that matters is a publish
//! landing while the consumer is going to sleep; a lost wake would leave
//! it asleep until its timeout. This stress test runs a bounded number of
//! frags with the producer pausing at random so the consumer parks over
//! and over, and counts any park that ran to its timeout while frags were
//! coming.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestWs;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::{Poll, Reliability::*};

const FRAGS: u64 = 20_000;
/// Longer than any wake could take; a park this long means a lost wake.
const PARK_TIMEOUT: Duration = Duration::from_secs(2);

#[test]
fn no_wake_is_lost_while_a_consumer_goes_to_sleep() {
    let t = TestWs::new("park", 8 << 20);
    // Deep enough for every frag: no credits, only parking, in play.
    let link = t.link("l", 32768, 64, &[Reliable]);
    let done = AtomicBool::new(false);
    let (parks, lost, got) = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut p = link.producer();
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            for seq in 0..FRAGS {
                p.publish(&seq.to_le_bytes(), seq, CTL_PKT, 0)
                    .expect("the ring holds every frag");
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // Pause now and then, for a few to a few hundred
                // microseconds, so the consumer runs dry and parks.
                if rng.is_multiple_of(4) {
                    let until = Instant::now() + Duration::from_micros(rng % 300);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
                if rng.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(rng % 500));
                }
            }
            done.store(true, Ordering::Release);
        });
        let mut c = link.consumer(0).unwrap();
        let mc = *link.mcache();
        let (mut parks, mut lost, mut got) = (0u64, 0u64, Vec::with_capacity(FRAGS as usize));
        let deadline = Instant::now() + Duration::from_secs(60);
        while (got.len() as u64) < FRAGS {
            assert!(Instant::now() < deadline, "stalled at {}", got.len());
            match c.poll_with(|m, _| m.seq) {
                Poll::Frag(_, seq) => got.push(seq),
                Poll::Empty => {
                    parks += 1;
                    let t0 = Instant::now();
                    let ready = mc.park(c.seq(), PARK_TIMEOUT);
                    if !ready && t0.elapsed() >= PARK_TIMEOUT && !done.load(Ordering::Acquire) {
                        lost += 1;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        producer.join().unwrap();
        (parks, lost, got)
    });
    eprintln!("{parks} parks over {FRAGS} frags, {lost} lost wakes");
    assert_eq!(
        lost, 0,
        "a park ran to its timeout while frags came: a lost wake"
    );
    assert!(
        parks > 100,
        "the consumer parked often enough to race: {parks}"
    );
    assert_eq!(got, (0..FRAGS).collect::<Vec<_>>(), "every frag, in order");
    // The consumer's last park may have found its frag at the last look
    // and stayed counted; one more commit clears whatever is counted.
    link.producer().publish(b"x", 0, CTL_PKT, 0).unwrap();
    assert_eq!(link.mcache().sleepers(), 0, "nobody is left counted asleep");
}

#[test]
fn a_park_returns_at_once_when_the_frag_is_there_and_times_out_when_not() {
    let t = TestWs::new("park2", 1 << 20);
    let link = t.link("l", 64, 64, &[Reliable]);
    let mc = *link.mcache();
    let t0 = Instant::now();
    assert!(!mc.park(0, Duration::from_millis(30)), "nothing published");
    assert!(t0.elapsed() >= Duration::from_millis(20), "it slept");
    link.producer().publish(b"x", 0, CTL_PKT, 0).unwrap();
    let wakes = mc.wakes();
    assert_eq!(wakes, 1, "the timed-out consumer stayed counted: one wake");
    assert!(mc.park(0, Duration::from_secs(10)), "frag 0 is there");
}

#[test]
fn a_consumer_that_died_asleep_costs_its_producer_one_wake() {
    let t = TestWs::new("park3", 1 << 20);
    let link = t.link("l", 64, 64, &[Unreliable]);
    let mc = *link.mcache();
    // Over an unreliable link nothing it does not read holds the producer
    // back. A thread that parks and is never heard of again: its park ends by
    // its timeout, as a killed consumer's never does, but it leaves the
    // count as a killed one would (a consumer never uncounts itself).
    std::thread::scope(|s| {
        s.spawn(|| mc.park(0, Duration::from_millis(1)));
    });
    assert_eq!(mc.sleepers(), 1, "counted as asleep");
    let mut p = link.producer();
    p.publish(b"a", 0, CTL_PKT, 0).unwrap();
    assert_eq!((mc.sleepers(), mc.wakes()), (0, 1), "one wake cleared it");
    for _ in 0..100 {
        p.publish(b"b", 0, CTL_PKT, 0).unwrap();
    }
    assert_eq!(mc.wakes(), 1, "and no commit after it woke anybody");
}
