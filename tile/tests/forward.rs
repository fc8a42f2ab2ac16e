//! Forwarding by chunk: a chain of filters that pass frags on copies no
//! byte, every payload arrives intact however slow the last reader is
//! (the holds keep each upstream producer off the chunks still being
//! read), an unreliable end on either side makes the filter copy once, a
//! frag pointing outside every dcache is refused and counted, and a filter
//! that dies holding frags is replaced without a torn read or a lost frag.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{payload, TestWs, DEADLINE};
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::fseq::DIAG_BAD_CNT;
use tilewire_tile::link::{Link, Producer, Reliability, Reliability::*};
use tilewire_tile::stem::metrics::TileMetricsHandle;
use tilewire_tile::stem::{Forwarded, Frag, Outputs, Reading, Stem, StemConfig, Tile};

const MTU: usize = 256;

fn config() -> StemConfig {
    StemConfig {
        lazy: 32,
        stop_grace: Duration::from_secs(5),
    }
}

/// Passes every frag on unchanged, the way a filter does; panics at frag
/// `panic_at` (by signature) if set.
struct Pass {
    panic_at: Option<u64>,
}

impl Tile for Pass {
    fn kind(&self) -> &str {
        "pass"
    }
    fn reading(&self) -> Reading {
        Reading::Settled
    }
    fn on_frag(&mut self, _: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        assert_ne!(Some(frag.sig()), self.panic_at, "dies holding frags");
        out.forward(0, frag).expect("one frag out per frag in");
    }
}

/// What the checking sink saw.
#[derive(Debug, Default)]
struct Seen {
    sigs: Vec<u64>,
    /// Frags whose bytes were not those their producer wrote.
    torn: Vec<u64>,
    /// Frags read in place (not copied to be read).
    in_place: u64,
    /// Frags whose chunk lay in the first link's dcache.
    in_first: u64,
}

/// Checks every payload against [`payload`] of its signature, sleeping
/// now and then so the frags upstream of it wait on it.
struct Check {
    seen: Arc<Mutex<Seen>>,
    want: Vec<u8>,
    first: (u32, u32),
    slow_every: u64,
}

impl Tile for Check {
    fn kind(&self) -> &str {
        "check"
    }
    fn reading(&self) -> Reading {
        Reading::Settled
    }
    fn on_frag(&mut self, _: usize, frag: &Frag<'_>, _: &mut Outputs<'_, '_>) {
        let sig = frag.sig();
        if self.slow_every != 0 && sig.is_multiple_of(self.slow_every) {
            // Long enough for a producer with no hold to lap the ring.
            std::thread::sleep(Duration::from_micros(200));
        }
        payload(sig, MTU, &mut self.want);
        let mut s = self.seen.lock().unwrap();
        if frag.payload() != &self.want[..] {
            s.torn.push(sig);
        }
        s.in_place += u64::from(frag.in_place());
        let c = frag.meta().chunk;
        s.in_first += u64::from(c >= self.first.0 && c < self.first.1);
        s.sigs.push(sig);
    }
}

/// The chunk range of `link`'s dcache.
fn chunks_of(link: &Link<'_>) -> (u32, u32) {
    let d = link.dcache();
    (d.chunk0(), d.wmark() + 1)
}

/// Publishes frags `from..to` (signature = seq, payload [`payload`]) as
/// credits allow; true when all are out.
fn feed(p: &mut Producer<'_>, next: &mut u64, to: u64, buf: &mut Vec<u8>) -> bool {
    while *next < to {
        payload(*next, MTU, buf);
        if p.publish(buf, *next, CTL_PKT, 0).is_err() {
            return false;
        }
        *next += 1;
    }
    true
}

/// Runs the stems on threads while `feed` publishes `n` frags into the
/// first link, until `done`; stops them, returns what each forwarded.
fn run_chain(
    stems: Vec<Stem<'_, Box<dyn Tile + Send + '_>>>,
    mut producer: Producer<'_>,
    n: u64,
    done: impl Fn() -> bool,
) -> Vec<Forwarded> {
    let handles: Vec<TileMetricsHandle<'_>> = stems.iter().map(|s| s.metrics()).collect();
    std::thread::scope(|sc| {
        let threads: Vec<_> = stems
            .into_iter()
            .map(|mut st| {
                sc.spawn(move || {
                    st.run();
                    st.forwarded()
                })
            })
            .collect();
        let deadline = Instant::now() + DEADLINE;
        let (mut next, mut buf) = (0, Vec::new());
        while !(feed(&mut producer, &mut next, n, &mut buf) && done()) {
            if Instant::now() > deadline {
                break;
            }
            std::thread::yield_now();
        }
        for h in &handles {
            h.request_stop();
        }
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn boxed<'w>(
    t: &'w TestWs,
    name: &str,
    tile: impl Tile + Send + 'w,
    ins: &[(&Link<'w>, usize)],
    outs: &[&Link<'w>],
) -> Stem<'w, Box<dyn Tile + Send + 'w>> {
    Stem::new(
        &t.ws,
        name,
        Box::new(tile) as Box<dyn Tile + Send>,
        ins,
        outs,
        config(),
    )
    .unwrap()
}

fn check(seen: &Arc<Mutex<Seen>>, first: &Link<'_>, slow_every: u64) -> Check {
    Check {
        seen: seen.clone(),
        want: Vec::new(),
        first: chunks_of(first),
        slow_every,
    }
}

/// Links a -> b -> c: `a` of `depth` frags, `b` and `c` of `later`.
fn three_links<'w>(t: &'w TestWs, depth: u64, later: u64, mid: &[Reliability]) -> [Link<'w>; 3] {
    [
        t.link("a", depth, MTU, &[Reliable]),
        t.link("b", later, MTU, mid),
        t.link("c", later, MTU, &[Reliable]),
    ]
}

#[test]
fn a_chain_of_filters_copies_no_byte_and_every_payload_arrives_intact() {
    let t = TestWs::new("fwd-chain", 1 << 22);
    // A small first ring, deep ones after it and a slow last reader: were
    // the first link's producer held back only by the first filter (as it
    // is when that one copies), it would run hundreds of frags ahead of the
    // last reader and reuse the chunks it is reading many times over.
    let [a, b, c] = three_links(&t, 16, 256, &[Reliable]);
    let n = 3000;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stems = vec![
        boxed(&t, "p1", Pass { panic_at: None }, &[(&a, 0)], &[&b]),
        boxed(&t, "p2", Pass { panic_at: None }, &[(&b, 0)], &[&c]),
        boxed(&t, "check", check(&seen, &a, 7), &[(&c, 0)], &[]),
    ];
    let s2 = seen.clone();
    let fwd = run_chain(stems, a.producer(), n, || {
        s2.lock().unwrap().sigs.len() as u64 >= n
    });
    let s = seen.lock().unwrap();
    assert_eq!(
        s.sigs,
        (0..n).collect::<Vec<_>>(),
        "every frag once, in order"
    );
    assert_eq!(
        s.torn,
        Vec::<u64>::new(),
        "no payload changed under a reader"
    );
    assert_eq!(s.in_place, n, "the last reader read them in place");
    assert_eq!(
        s.in_first, n,
        "their bytes never left the first link's dcache"
    );
    for f in &fwd[..2] {
        assert_eq!(
            *f,
            Forwarded {
                by_chunk: n,
                copied: 0
            }
        );
    }
}

/// Runs `n` frags through a pass tile from `a` to `b` and a checking
/// sink on `b`'s consumer 0; returns what the pass tile forwarded and what
/// the sink saw, having checked that every frag came once, intact, in
/// order.
fn pass_then_check(t: &TestWs, a: &Link<'_>, b: &Link<'_>, n: u64) -> (Forwarded, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stems = vec![
        boxed(t, "p1", Pass { panic_at: None }, &[(a, 0)], &[b]),
        boxed(t, "check", check(&seen, a, 0), &[(b, 0)], &[]),
    ];
    let s2 = seen.clone();
    let fwd = run_chain(stems, a.producer(), n, || {
        s2.lock().unwrap().sigs.len() as u64 >= n
    });
    let s = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(s.sigs, (0..n).collect::<Vec<_>>());
    assert!(s.torn.is_empty());
    (fwd[0], s)
}

#[test]
fn an_unreliable_reader_of_the_output_makes_the_filter_copy_once() {
    let t = TestWs::new("fwd-unrel-out", 1 << 22);
    let [a, b, _] = three_links(&t, 1024, 1024, &[Reliable, Unreliable]);
    let n = 500;
    let (fwd, s) = pass_then_check(&t, &a, &b, n);
    assert_eq!(s.in_first, 0, "copied into the output's own dcache");
    assert_eq!(
        fwd,
        Forwarded {
            by_chunk: 0,
            copied: n
        }
    );
}

#[test]
fn an_unreliable_input_is_copied_once_then_passed_on() {
    let t = TestWs::new("fwd-unrel-in", 1 << 22);
    let a = t.link("a", 4096, MTU, &[Unreliable]);
    let b = t.link("b", 4096, MTU, &[Reliable]);
    let n = 500;
    let (fwd, s) = pass_then_check(&t, &a, &b, n);
    assert_eq!((s.in_first, s.in_place), (0, n));
    assert_eq!(
        fwd,
        Forwarded {
            by_chunk: 0,
            copied: n
        }
    );
}

#[test]
fn a_frag_pointing_outside_every_dcache_is_refused_and_counted() {
    let t = TestWs::new("fwd-bad-chunk", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut p = a.producer();
    let mut buf = Vec::new();
    payload(0, MTU, &mut buf);
    p.publish(&buf, 0, CTL_PKT, 0).unwrap();
    // A chunk no dcache of the workspace holds (past its end).
    p.publish_chunk(u32::MAX - 64, 64, 1, CTL_PKT, 0, 0)
        .unwrap();
    payload(2, MTU, &mut buf);
    p.publish(&buf, 2, CTL_PKT, 0).unwrap();
    let stems = vec![boxed(&t, "check", check(&seen, &a, 0), &[(&a, 0)], &[])];
    let s2 = seen.clone();
    run_chain(stems, a.producer(), 0, || {
        s2.lock().unwrap().sigs.len() >= 2
    });
    let s = seen.lock().unwrap();
    assert_eq!(s.sigs, [0, 2], "the bad frag was skipped unread");
    assert!(s.torn.is_empty());
    assert_eq!(a.fseqs()[0].diag(DIAG_BAD_CNT), 1, "and counted");
}

#[test]
fn a_filter_that_dies_holding_frags_is_replaced_without_a_torn_read_or_a_loss() {
    let t = TestWs::new("fwd-crash", 1 << 22);
    let [a, b, _] = three_links(&t, 16, 256, &[Reliable]);
    let n = 2000;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut producer = a.producer();
    let (mut next, mut buf) = (0, Vec::new());
    let deadline = Instant::now() + DEADLINE;
    std::thread::scope(|sc| {
        let check = boxed(&t, "check", check(&seen, &a, 5), &[(&b, 0)], &[]);
        let check_handle = check.metrics();
        let reader = sc.spawn(move || {
            let mut st = check;
            st.run();
        });
        // The first filter dies at frag 700: a panic, so its stem never
        // halts and its published progress stays where it was.
        let first = boxed(
            &t,
            "p1",
            Pass {
                panic_at: Some(700),
            },
            &[(&a, 0)],
            &[&b],
        );
        let dying = sc.spawn(move || {
            let mut st = first;
            st.run();
        });
        while !dying.is_finished() {
            feed(&mut producer, &mut next, n, &mut buf);
            assert!(Instant::now() < deadline, "the first filter never died");
            std::thread::yield_now();
        }
        assert!(dying.join().is_err(), "it panicked");
        // Its successor joins the same links and goes on.
        let second = boxed(&t, "p1", Pass { panic_at: None }, &[(&a, 0)], &[&b]);
        let handle = second.metrics();
        let live = sc.spawn(move || {
            let mut st = second;
            st.run();
        });
        let covered = |s: &Seen| (0..n).all(|q| s.sigs.contains(&q));
        while !(feed(&mut producer, &mut next, n, &mut buf) && covered(&seen.lock().unwrap())) {
            assert!(Instant::now() < deadline, "not every frag arrived");
            std::thread::yield_now();
        }
        handle.request_stop();
        check_handle.request_stop();
        live.join().unwrap();
        reader.join().unwrap();
    });
    let s = seen.lock().unwrap();
    assert!(s.torn.is_empty(), "torn: {:?}", s.torn);
    // At least once each, in order but for the frags the successor read
    // again (those after the dead filter's last progress publish).
    let mut last = 0;
    let mut replays = 0;
    for w in s.sigs.windows(2) {
        if w[1] <= w[0] {
            replays += 1;
            assert!(
                w[0] - w[1] < 16 + 1,
                "a replay reaches back one ring at most"
            );
        }
        last = w[1];
    }
    assert_eq!(last, n - 1);
    assert!(replays <= 1, "one restart, one replay");
}
