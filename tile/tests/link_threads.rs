//! The link protocol under real threads (its overruns made deterministic
//! are in `link_overrun.rs`).
//!
//! loom cannot model these atomics (they are views over mmapped workspace
//! memory) and miri is not on stable, so the lock-free protocol is checked
//! with real threads:
//!
//! - *threaded*: a producer thread and consumer threads race on a small
//!   ring, and every frag a consumer accepts is checked field by field and
//!   byte by byte against [`payload`], while every seq is accounted for as
//!   delivered or lost. Racing alone cannot promise that an overrun ever
//!   happens, so each unreliable consumer also *forces* some: it waits,
//!   watching the producer's progress counter, until the producer has
//!   provably lapped it, either before a poll (overrun while polling) or in
//!   the middle of copying a payload (overrun while reading). The outcome
//!   of those polls is then known and asserted. Until its forced overruns
//!   are done, such a consumer also keeps the producer (through a test-side
//!   hold the link knows nothing of) from lapping it by chance or finishing
//!   early. A reliable consumer instead pauses until the producer reports
//!   back-pressure.
//! - *a torn copy seen as it happens*: with payload sizes that make the
//!   dcache reuse a frag's bytes exactly `depth` frags later, a consumer
//!   watches its frag's bytes mid-read and stops the moment the producer
//!   overwrites them; its copy must then be discarded. Only the producer's
//!   invalidate-before-write order makes that so, and this is the only test
//!   here that can see that order broken. It sees it in some runs, not all
//!   (about half, with that order removed, on a two-core machine): the
//!   window is the rest of the producer's payload copy.
//!
//! Every wait is bounded by a deadline and gives up at once when another
//! thread of the test has failed. Nothing asserts on timing.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{payload, TestWs};
use tilewire_shmem::load_bytes;
use tilewire_tile::link::frag::{seq_diff, CTL_PKT};
use tilewire_tile::link::fseq::{
    FseqHandle, DIAG_BAD_CNT, DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS, DIAG_OVRNR_CNT, DIAG_PUB_CNT,
    DIAG_PUB_SZ,
};
use tilewire_tile::link::{Backpressure, Link, LinkParams, Poll, Reliability, Reliability::*};

/// Frags per threaded run: enough to race, few enough for a debug build.
const FRAGS: u64 = if cfg!(debug_assertions) {
    50_000
} else {
    200_000
};
/// Hang guard for a whole threaded run (not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(30);

/// Writes the payload of frag `seq` (at most `mtu` bytes) into the buffer.
type Fill = fn(u64, usize, &mut Vec<u8>);

/// The link and traffic of one threaded run.
#[derive(Clone, Copy)]
struct Shape {
    depth: u64,
    mtu: usize,
    seq0: u64,
    frags: u64,
    fill: Fill,
}

impl Shape {
    fn new(depth: u64, mtu: usize) -> Shape {
        Shape {
            depth,
            mtu,
            seq0: 0,
            frags: FRAGS,
            fill: payload,
        }
    }
}

/// Payload sizes, in 64ths of the mtu, that [`reuse_payload`] cycles
/// through.
const REUSE_PATTERN: [usize; 6] = [60, 48, 64, 64, 64, 64];

/// The mtu [`reuse_payload`] is made for (a multiple of 4096, so that the
/// dcache is exactly `depth + 1` mtus).
const REUSE_MTU: usize = 16 << 10;

/// Payloads of [`REUSE_PATTERN`] sizes in turn (the bytes as in
/// [`payload`]). With depth 16 and [`REUSE_MTU`] the dcache then hands the
/// first chunks of about one frag in four to the frag exactly `depth`
/// later, and that frag's write goes on for up to 4 KiB after it first
/// touches them. This is the one case where only the producer's order
/// (invalidate the line, then write the payload) lets a reader notice its
/// copy is torn: at any larger distance the line was already reused by an
/// earlier, finished publish. See
/// [`dcache_reuses_chunks_exactly_depth_frags_later`].
fn reuse_payload(seq: u64, mtu: usize, buf: &mut Vec<u8>) {
    let len = mtu / 64 * REUSE_PATTERN[(seq % 6) as usize];
    buf.clear();
    buf.extend((0..len).map(|i| (seq as u8).wrapping_add(i as u8).wrapping_mul(31)));
}

/// What the threads of one run share.
struct Shared {
    seq0: u64,
    frags: u64,
    depth: u64,
    mtu: usize,
    fill: Fill,
    /// Frags published so far (a count, not a seq).
    ///
    /// SYNC: the producer stores it with Release after each publish; a
    /// consumer that loads it with Acquire and sees `k` also sees the commit
    /// of frag `seq0 + k - 1` (or a later store to that line).
    published: AtomicU64,
    /// Times the producer's publish returned [`Backpressure`].
    backpressured: AtomicU64,
    /// Per consumer: the producer publishes the frag at index `i` only while
    /// `i < hold`: a test-side leash the link knows nothing of (see
    /// [`Plan::hold`]); u64::MAX for none.
    holds: Vec<AtomicU64>,
    /// Set when any thread of the run panics, so the others stop waiting.
    failed: AtomicBool,
    deadline: Instant,
}

impl Shared {
    /// One step of a bounded wait: fails if another thread failed or the
    /// deadline passed, else yields (threads may outnumber cores).
    fn pause(&self, what: &str) {
        assert!(
            !self.failed.load(Ordering::Relaxed),
            "another thread of the run failed"
        );
        assert!(Instant::now() < self.deadline, "stalled waiting for {what}");
        thread::yield_now();
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        while !done() {
            self.pause(what);
        }
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

/// Marks the run failed if the thread holding it panics.
struct FailGuard<'a>(&'a Shared);

impl Drop for FailGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.failed.store(true, Ordering::Relaxed);
        }
    }
}

/// Publishes `frags` frags of `fill(seq)` as fast as it can; returns the
/// producer's back-pressure count.
fn produce(link: &Link<'_>, sh: &Shared) -> u64 {
    let _guard = FailGuard(sh);
    let mut p = link.producer();
    assert_eq!(p.seq(), sh.seq0);
    let reliable: Vec<FseqHandle<'_>> = link
        .fseqs()
        .iter()
        .copied()
        .filter(|f| f.reliable())
        .collect();
    let mut buf = Vec::new();
    let mut i = 0u64;
    while i < sh.frags {
        if sh.holds.iter().any(|h| i >= h.load(Ordering::Relaxed)) {
            sh.wait_until("a consumer's hold", || {
                sh.holds.iter().all(|h| i < h.load(Ordering::Relaxed))
            });
        }
        let seq = sh.seq0.wrapping_add(i);
        (sh.fill)(seq, sh.mtu, &mut buf);
        match p.publish(&buf, seq, CTL_PKT, seq as u32) {
            Ok(got) => {
                assert_eq!(got, seq);
                for f in &reliable {
                    let ahead = seq_diff(seq, f.query());
                    assert!(
                        ahead < sh.depth as i64,
                        "published {seq}, {ahead} ahead of a reliable consumer"
                    );
                }
                i += 1;
                sh.published.store(i, Ordering::Release);
            }
            Err(Backpressure) => {
                assert!(
                    !reliable.is_empty(),
                    "back-pressure without reliable consumers"
                );
                sh.backpressured.fetch_add(1, Ordering::Relaxed);
                sh.pause("credits");
            }
        }
    }
    p.housekeeping();
    assert_eq!(
        p.backpressure_count(),
        sh.backpressured.load(Ordering::Relaxed)
    );
    p.backpressure_count()
}

/// How one consumer thread behaves.
#[derive(Debug, Clone, Copy)]
struct Plan {
    index: usize,
    reliable: bool,
    /// Unreliable: overruns of each kind to force. Reliable: pauses that
    /// wait for back-pressure, spread over the run.
    forced: u64,
    /// Unreliable: once the forced overruns are done, keep the producer at
    /// most this many rings ahead anyway, so that producer and consumer race
    /// for the whole run instead of the producer finishing while the
    /// consumer is still at the start.
    rings_ahead: Option<u64>,
    /// Busy work per accepted frag (spin-loop hints), to make a consumer
    /// slower than the others without sleeping.
    spin_per_frag: u32,
    /// Forced tears wait for the payload's first word to change, rather
    /// than for the producer to lap, and then end the read at once.
    watch_bytes: bool,
}

impl Plan {
    fn reliable(index: usize, pauses: u64) -> Plan {
        Plan {
            index,
            reliable: true,
            forced: pauses,
            rings_ahead: None,
            spin_per_frag: 0,
            watch_bytes: false,
        }
    }

    fn unreliable(index: usize, forced: u64) -> Plan {
        Plan {
            reliable: false,
            ..Plan::reliable(index, forced)
        }
    }

    /// The hold (see [`Shared::holds`]) of a consumer at index `i`.
    ///
    /// While an unreliable consumer still has overruns to force, it lets the
    /// producer publish up to `i + depth - 1` (so nothing laps it by
    /// chance) and, for a forced event, up to the event's target (so the
    /// lap it waits for can happen, and a fast producer cannot finish
    /// before the events are done). Afterwards the producer runs free, or
    /// at most `rings_ahead` rings ahead.
    fn hold(&self, i: u64, forcing: bool, event_target: Option<u64>, depth: u64) -> u64 {
        match (self.reliable, forcing) {
            (true, _) => u64::MAX,
            (false, true) => event_target.unwrap_or(i + depth),
            (false, false) => self.rings_ahead.map_or(u64::MAX, |k| i + k * depth),
        }
    }
}

/// What one consumer saw.
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    bytes: u64,
    lost: u64,
    overruns_polling: u64,
    overruns_reading: u64,
    forced_laps: u64,
    forced_tears: u64,
    forced_pauses: u64,
    /// Forced tears in which the payload was seen to change mid-read.
    seen_overwritten: u64,
    /// Seqs u64::MAX and 0 were both delivered (the seq wrapped).
    saw_max: bool,
    saw_zero: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Force {
    Tear,
    Lap,
}

/// Reads until every seq of the run was delivered or lost, checking each
/// accepted frag completely.
fn consume(link: &Link<'_>, sh: &Shared, plan: Plan) -> Tally {
    let _guard = FailGuard(sh);
    let mut c = link.consumer(plan.index).unwrap();
    let f = *c.fseq();
    assert_eq!(f.reliable(), plan.reliable);
    assert_eq!(c.seq(), sh.seq0);
    let (depth, mtu) = (sh.depth, sh.mtu);
    let end = sh.seq0.wrapping_add(sh.frags);
    let hold = &sh.holds[plan.index];
    let mut t = Tally::default();
    let mut expected = sh.seq0;
    let (mut copy, mut want) = (vec![0u8; mtu], Vec::new());
    let mut next_force = Force::Tear;
    let mut next_event = 1u64; // in frags delivered
    let pause_every = sh.frags / (plan.forced + 1);
    while expected != end {
        assert!(
            !sh.failed.load(Ordering::Relaxed),
            "another thread of the run failed"
        );
        assert!(
            Instant::now() < sh.deadline,
            "consumer stalled at {expected}"
        );
        let i = expected.wrapping_sub(sh.seq0);
        let forcing = !plan.reliable && t.forced_laps.min(t.forced_tears) < plan.forced;
        // Frag `i + depth` published (needs `i + depth + 1` frags) means the
        // line of `expected` holds a newer seq for good.
        let lapped_at = i + depth + 1;
        let far_ahead = i + 3 * depth;
        let event = forcing && t.delivered >= next_event && far_ahead <= sh.frags;
        let lap = event && next_force == Force::Lap;
        let tear = event && next_force == Force::Tear;
        // A watching tear lets the producer on only once it is watching
        // (below), so that it sees the overwrite as it happens.
        let watch = tear && plan.watch_bytes;
        hold.store(
            plan.hold(i, forcing, (event && !watch).then_some(lapped_at), depth),
            Ordering::Relaxed,
        );
        if lap {
            sh.wait_until("the producer to lap", || sh.published() >= lapped_at);
        }
        if plan.reliable && plan.forced > 0 && t.delivered >= next_event {
            next_event = t.delivered + pause_every;
            let before = sh.backpressured.load(Ordering::Relaxed);
            sh.wait_until("back-pressure", || {
                sh.backpressured.load(Ordering::Relaxed) > before || sh.published() == sh.frags
            });
            if sh.backpressured.load(Ordering::Relaxed) > before {
                t.forced_pauses += 1;
            }
        }
        let (mut torn, mut overwritten) = (false, false);
        let polled = c.poll_with(|m, bytes| {
            let n = (m.sz as usize).min(mtu);
            if watch {
                // Copy it all, then watch the first word, spinning hard to
                // see a change as early as possible, and end the read the
                // moment it changes: having seen bytes the producer wrote
                // after invalidating this frag's line, the re-check must
                // fail. (Three rings on, the chunk was surely reused, so
                // the last look below sees the change: `overwritten` ends
                // true either way.)
                assert!(n >= 8, "watching needs a payload word");
                load_bytes(&mut copy[..n], &bytes[..n]);
                hold.store(far_ahead, Ordering::Relaxed);
                let mut word = [0u8; 8];
                sh.wait_until("the payload to change mid-read", || {
                    let far = sh.published() >= far_ahead;
                    for _ in 0..1024 {
                        load_bytes(&mut word, &bytes[..8]);
                        if word != copy[..8] {
                            overwritten = true;
                            return true;
                        }
                        std::hint::spin_loop();
                    }
                    far
                });
                torn = true;
            } else if tear {
                let half = n / 2;
                load_bytes(&mut copy[..half], &bytes[..half]);
                sh.wait_until("the producer to lap mid-read", || {
                    sh.published() >= lapped_at
                });
                load_bytes(&mut copy[half..n], &bytes[half..n]);
                torn = true;
            } else {
                load_bytes(&mut copy[..n], &bytes[..n]);
            }
            n
        });
        match polled {
            Poll::Frag(m, n) => {
                assert!(!torn, "accepted frag {} overwritten while read", m.seq);
                assert!(!lap, "accepted frag {} after it was lapped", m.seq);
                assert_eq!(m.seq, expected, "in order");
                (sh.fill)(m.seq, mtu, &mut want);
                assert_eq!(m.sz as usize, want.len(), "size of {}", m.seq);
                assert_eq!(n, want.len());
                if copy[..n] != want[..] {
                    let at = (0..n).find(|&k| copy[k] != want[k]).unwrap();
                    panic!("torn frag {} accepted: byte {at} of {n} differs", m.seq);
                }
                assert_eq!(
                    (m.sig, m.ctl, m.tsorig),
                    (m.seq, CTL_PKT, m.seq as u32),
                    "fields of {}",
                    m.seq
                );
                t.saw_max |= m.seq == u64::MAX;
                t.saw_zero |= m.seq == 0;
                t.delivered += 1;
                t.bytes += n as u64;
                for _ in 0..plan.spin_per_frag {
                    std::hint::spin_loop();
                }
                expected = expected.wrapping_add(1);
            }
            Poll::Overrun { lost: 0 } => {
                assert!(
                    !plan.reliable,
                    "reliable consumer overrun reading {expected}"
                );
                assert!(!lap, "a lapped line reads as Overrun with frags lost");
                t.overruns_reading += 1;
                if torn {
                    t.forced_tears += 1;
                    t.seen_overwritten += overwritten as u64;
                    next_force = Force::Lap;
                    next_event = t.delivered + depth / 2;
                }
            }
            Poll::Overrun { lost } => {
                assert!(!plan.reliable, "reliable consumer lapped at {expected}");
                assert!(!torn, "the read ran, so the line was not lapped");
                // Lapped means frag expected + depth was at least begun.
                assert!(lost >= depth - 1, "lost {lost} < depth - 1");
                if lap {
                    assert!(lost >= depth, "forced lap lost only {lost}");
                    t.forced_laps += 1;
                    next_force = Force::Tear;
                    next_event = t.delivered + depth / 2;
                }
                t.overruns_polling += 1;
                t.lost += lost;
                expected = expected.wrapping_add(lost);
                assert!(
                    expected.wrapping_sub(sh.seq0) < sh.frags,
                    "resynced past the last frag"
                );
            }
            Poll::Empty => {
                assert!(!lap, "a lapped line reads as empty");
                thread::yield_now();
            }
            Poll::Dropped(m) => panic!("dropped {m:?}"),
        }
        assert_eq!(c.seq(), expected);
    }
    hold.store(u64::MAX, Ordering::Relaxed);
    c.housekeeping();
    assert_eq!(
        t.delivered + t.lost,
        sh.frags,
        "every seq delivered or lost"
    );
    assert_eq!(f.diag(DIAG_PUB_CNT), t.delivered);
    assert_eq!(f.diag(DIAG_PUB_SZ), t.bytes);
    assert_eq!(f.diag(DIAG_OVRNP_CNT), t.overruns_polling);
    assert_eq!(f.diag(DIAG_OVRNP_FRAGS), t.lost);
    assert_eq!(f.diag(DIAG_OVRNR_CNT), t.overruns_reading);
    assert_eq!(f.diag(DIAG_BAD_CNT), 0);
    assert_eq!(f.query(), end, "final progress published");
    t
}

/// One producer thread and one thread per plan on a fresh link; returns the
/// producer's back-pressure count and each consumer's tally.
fn run(shape: Shape, plans: &[Plan]) -> (u64, Vec<Tally>) {
    let Shape {
        depth,
        mtu,
        seq0,
        frags,
        fill,
    } = shape;
    let t = TestWs::new("thr", 8 << 20);
    let consumers: Vec<Reliability> = plans
        .iter()
        .map(|p| if p.reliable { Reliable } else { Unreliable })
        .collect();
    let params = LinkParams {
        depth,
        mtu,
        consumers,
        seq0,
    };
    let link = Link::create(&t.ws, "l", &params).unwrap();
    let sh = Shared {
        seq0,
        frags,
        depth,
        mtu,
        fill,
        published: AtomicU64::new(0),
        backpressured: AtomicU64::new(0),
        holds: plans
            .iter()
            .map(|p| AtomicU64::new(p.hold(0, p.forced > 0, None, depth)))
            .collect(),
        failed: AtomicBool::new(false),
        deadline: Instant::now() + DEADLINE,
    };
    thread::scope(|s| {
        let producer = s.spawn(|| produce(&link, &sh));
        let consumers: Vec<_> = plans
            .iter()
            .map(|&plan| {
                let (link, sh) = (&link, &sh);
                s.spawn(move || consume(link, sh, plan))
            })
            .collect();
        let tallies: Vec<Tally> = consumers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        let backpressure = producer
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (backpressure, tallies)
    })
}

fn assert_unreliable(t: &Tally, forced: u64, depth: u64) {
    assert_eq!(t.forced_laps, forced, "{t:?}");
    assert_eq!(t.forced_tears, forced, "{t:?}");
    assert!(t.overruns_polling >= forced, "{t:?}");
    assert!(t.overruns_reading >= forced, "{t:?}");
    assert!(t.lost >= forced * depth, "{t:?}");
    assert!(t.delivered > 0, "{t:?}");
}

fn assert_reliable(t: &Tally, frags: u64) {
    assert_eq!(t.delivered, frags, "{t:?}");
    assert_eq!((t.lost, t.overruns_polling, t.overruns_reading), (0, 0, 0));
}

#[test]
fn threads_unreliable_never_accepts_a_torn_frag_and_accounts_for_every_seq() {
    let forced = 16;
    let plan = Plan {
        rings_ahead: Some(8),
        ..Plan::unreliable(0, forced)
    };
    let (backpressure, tallies) = run(Shape::new(16, 256), &[plan]);
    assert_eq!(
        backpressure, 0,
        "unreliable consumers never slow the producer"
    );
    assert_unreliable(&tallies[0], forced, 16);
}

#[test]
fn threads_reliable_every_frag_once_in_order_with_backpressure() {
    let shape = Shape::new(32, 256);
    let (backpressure, tallies) = run(shape, &[Plan::reliable(0, 16)]);
    assert_reliable(&tallies[0], shape.frags);
    assert!(tallies[0].forced_pauses > 0, "{:?}", tallies[0]);
    assert!(backpressure > 0, "the producer saw back-pressure");
}

#[test]
fn threads_reliable_across_seq_wraparound() {
    let shape = Shape {
        seq0: u64::MAX - 1000,
        ..Shape::new(32, 256)
    };
    let (backpressure, tallies) = run(shape, &[Plan::reliable(0, 16)]);
    let t = &tallies[0];
    assert_reliable(t, shape.frags);
    assert!(t.saw_max && t.saw_zero, "the seq wrapped during the run");
    assert!(t.forced_pauses > 0, "{t:?}");
    assert!(backpressure > 0, "the producer saw back-pressure");
}

#[test]
fn threads_one_reliable_and_two_unreliable_consumers_at_once() {
    let forced = 8;
    let shape = Shape {
        seq0: u64::MAX - 5000,
        ..Shape::new(16, 256)
    };
    let plans = [
        Plan::reliable(0, 8),
        Plan::unreliable(1, forced),
        // A slow one: lapped by the race too, not only when it forces it.
        Plan {
            spin_per_frag: 100,
            ..Plan::unreliable(2, forced)
        },
    ];
    let (backpressure, tallies) = run(shape, &plans);
    assert_reliable(&tallies[0], shape.frags);
    assert!(tallies[0].forced_pauses > 0, "{:?}", tallies[0]);
    assert!(backpressure > 0, "the producer saw back-pressure");
    assert_unreliable(&tallies[1], forced, 16);
    assert_unreliable(&tallies[2], forced, 16);
}

#[test]
fn dcache_reuses_chunks_exactly_depth_frags_later() {
    // The premise of the next test, checked without threads: record where
    // each frag's payload went and find frags whose first chunks the frag
    // `depth` later overwrites, with more of its write still to come.
    let t = TestWs::new("reuse", 4 << 20);
    let (depth, mtu) = (16u64, REUSE_MTU);
    let link = t.link("l", depth, mtu, &[Reliable]);
    let mut p = link.producer();
    let mut c = link.consumer(0).unwrap();
    let (mut buf, mut spans) = (Vec::new(), Vec::new());
    for seq in 0..12 * depth {
        reuse_payload(seq, mtu, &mut buf);
        p.publish(&buf, seq, CTL_PKT, 0).unwrap();
        match c.poll_with(|m, _| (m.chunk, m.chunk + m.sz.div_ceil(64) as u32)) {
            Poll::Frag(m, span) => {
                assert_eq!(m.seq, seq);
                spans.push(span);
            }
            other => panic!("{other:?}"),
        }
    }
    let overlaps = |a: (u32, u32), b: (u32, u32)| a.0 < b.1 && b.0 < a.1;
    let d = depth as usize;
    for (s, &span) in spans.iter().enumerate() {
        for &later in &spans[s + 1..(s + d).min(spans.len())] {
            assert!(!overlaps(span, later), "reuse closer than depth");
        }
    }
    // Chunks the frag `depth` later writes from the first chunk of `s` on.
    let exact: Vec<u32> = (0..spans.len() - d)
        .filter(|&s| overlaps(spans[s], spans[s + d]) && spans[s + d].0 <= spans[s].0)
        .map(|s| spans[s + d].1 - spans[s].0)
        .collect();
    assert!(exact.len() as u64 >= 12 * depth / 8, "{exact:?} {spans:?}");
    assert!(exact.iter().any(|&n| n >= 64), "{exact:?}");
}

#[test]
fn threads_payload_seen_changing_mid_read_is_never_accepted() {
    // Chunk reuse at exactly `depth` (see above) puts the overwrite inside
    // the publish of frag seq + depth, between its invalidate and commit: a
    // producer that wrote payload before invalidating would let the re-check
    // pass here.
    let forced = if cfg!(debug_assertions) { 32 } else { 1024 };
    let shape = Shape {
        frags: 6 * forced * 16,
        fill: reuse_payload,
        ..Shape::new(16, REUSE_MTU)
    };
    let plan = Plan {
        watch_bytes: true,
        ..Plan::unreliable(0, forced)
    };
    let (_, tallies) = run(shape, &[plan]);
    let t = &tallies[0];
    assert_unreliable(t, forced, 16);
    assert_eq!(t.seen_overwritten, forced, "{t:?}");
}
