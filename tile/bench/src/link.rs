//! `tilewire-bench link`: one producer and one consumer on the two cores,
//! moving fixed-size payloads with reliable flow control, the consumer
//! reading and checksumming every payload; tilewire's link side by side
//! with the queues a Rust user would pick (rtrb's chunk API, crossbeam's
//! ArrayQueue and bounded channel), in one run.
//!
//! Each implementation moves the payload the cheapest way its API allows,
//! and every consumer folds every payload word into a checksum:
//! - tilewire: the producer reserves the next frag and writes the payload
//!   once, straight into the shared dcache bytes, then commits it; the
//!   consumer folds the payload where it lies;
//! - rtrb: the producer writes the payload into the chunk it was handed
//!   (which rtrb's safe API first fills with zeros), the consumer folds it
//!   in the ring;
//! - crossbeam: the payload is an array passed by value (built on the
//!   stack, copied into the queue's slot and out again by `pop`/`recv`).
//!
//! Two measurements per implementation and payload size:
//! - rate: frags per second with the producer pushing as fast as flow
//!   control lets it (best of several rounds, the implementations taking
//!   turns within each round so machine noise hits them alike);
//! - one-way latency: the producer sends one payload every few
//!   microseconds stamped with CLOCK_MONOTONIC; the consumer subtracts its
//!   own reading on arrival; p50 and p99 of each round (10 000 samples,
//!   the implementations taking turns), the median round shown: host
//!   preemption on a shared VM would otherwise decide the p99 of whichever
//!   run it hit. The stamp is
//!   the one clock read per message every implementation makes; tilewire
//!   reuses it as the frag's `tspub` rather than reading the clock again.

use crate::harness::layout;
use crate::harness::pin::{pin, pinned_pair, Cores};
use crate::harness::stats::{best_of, pct, RoundPercentiles};
use crate::harness::{print_json, round, BenchArgs};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::{atomic_words, PageKind, Workspace};
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::{Link, LinkParams, Poll, Reliability};

const DEPTH: usize = 1024;
const IMPLS: [&str; 4] = [
    "tilewire",
    "rtrb",
    "crossbeam-arrayqueue",
    "crossbeam-channel",
];

/// Folds a payload into a checksum, a word at a time.
#[inline]
fn fold(words: impl Iterator<Item = u64>) -> u64 {
    words.fold(0u64, |acc, w| acc.rotate_left(5) ^ w)
}

#[inline]
fn fold_bytes(b: &[u8]) -> u64 {
    fold(
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
    )
}

/// The payload of message `i`: its send time (or index) in the first word,
/// the rest derived from `i`.
#[inline]
fn fill(buf: &mut [u8], i: u64, stamp: u64) {
    buf[..8].copy_from_slice(&stamp.to_le_bytes());
    for (k, c) in buf[8..].chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&(i ^ k as u64).to_le_bytes());
    }
}

/// [`fill`] straight into shared bytes (a reserved dcache frag), a word
/// at a time: the same bytes `fill` makes, with no private buffer.
#[inline]
fn fill_shared(bytes: &[AtomicU8], i: u64, stamp: u64) {
    let w = atomic_words(bytes).expect("dcache chunks are 64-aligned");
    // SYNC: Relaxed; the producer's reserve (invalidate, Release fence)
    // orders these after the line's retirement and its commit (Release
    // store of the seq) publishes them; pairs with the consumer's Acquire
    // peek and re-check.
    w[0].store(stamp.to_le(), Ordering::Relaxed);
    for (k, x) in w[1..].iter().enumerate() {
        // SYNC: as above.
        x.store((i ^ k as u64).to_le(), Ordering::Relaxed);
    }
}

/// What one run measured.
struct Sample {
    secs: f64,
    checksum: u64,
    lat: Vec<u64>,
}

/// Runs `produce` pinned to the first core and `consume` to the second,
/// timing the consumer from the common start.
fn pair<P, C>(produce: P, consume: C) -> (f64, u64, Vec<u64>)
where
    P: FnOnce() + Send,
    C: FnOnce() -> (u64, Vec<u64>) + Send,
{
    let ((), r) = pinned_pair(produce, || {
        let t = Instant::now();
        let (sum, lat) = consume();
        (t.elapsed().as_secs_f64(), sum, lat)
    });
    r
}

/// Spins until `ns` of monotonic time have passed since `from`.
fn pace(from: u64, ns: u64) {
    while mono_ns().wrapping_sub(from) < ns {
        std::hint::spin_loop();
    }
}

/// One run of implementation `which`: `n` messages of `sz` bytes; when
/// `paced`, one every 4 µs and latency recorded.
fn run_one(which: &str, ws: &Workspace, sz: usize, n: u64, paced: bool) -> Sample {
    let gap = if paced { 4_000 } else { 0 };
    let stamp = move |i: u64| if paced { mono_ns() } else { i };
    let record = move |lat: &mut Vec<u64>, first: u64| {
        if paced {
            lat.push(mono_ns().wrapping_sub(first));
        }
    };
    let (secs, checksum, lat) = match which {
        "tilewire" => {
            let name = format!("bl{}", ws.allocations().len());
            let params = LinkParams {
                depth: DEPTH as u64,
                mtu: sz,
                consumers: vec![Reliability::Reliable],
                seq0: 0,
            };
            let link = Link::create(ws, &name, &params).expect("link");
            let r = pair(
                || {
                    let mut p = link.producer();
                    for i in 0..n {
                        let t0 = if paced { mono_ns() } else { 0 };
                        // Zero-copy: the payload is written once, straight
                        // into the dcache bytes the frag will carry.
                        let bytes = loop {
                            match p.reserve() {
                                Ok(b) => break b,
                                Err(_) => std::hint::spin_loop(),
                            }
                        };
                        let ts = stamp(i);
                        fill_shared(&bytes[..sz], i, ts);
                        // tspub: the stamp every implementation's payload
                        // carries (the clock when paced), not a second
                        // clock read no peer makes.
                        p.commit_at(sz, i, CTL_PKT, 0, ts as u32);
                        if paced {
                            pace(t0, gap);
                        }
                    }
                },
                || {
                    let mut c = link.consumer(0).expect("consumer");
                    let (mut got, mut sum, mut lat) = (
                        0u64,
                        0u64,
                        Vec::with_capacity(if paced { n as usize } else { 0 }),
                    );
                    while got < n {
                        match c.poll_with(|_, bytes| {
                            // Arrival: the frag is seen. Like the peers,
                            // take the reading before folding; it counts
                            // only if the re-check after the fold passes.
                            let now = if paced { mono_ns() } else { 0 };
                            // Read in place, a word at a time. SYNC:
                            // Relaxed; poll_with's Acquire peek before and
                            // Acquire re-check after order these loads
                            // (pairing with the producer's commit and
                            // invalidate), and a torn read is discarded.
                            let w = atomic_words(bytes).expect("chunks are 64-aligned");
                            let word = |x: &AtomicU64| u64::from_le(x.load(Ordering::Relaxed));
                            (now, word(&w[0]), fold(w.iter().map(word)))
                        }) {
                            Poll::Frag(_, (now, first, s)) => {
                                if paced {
                                    lat.push(now.wrapping_sub(first));
                                }
                                sum ^= s;
                                got += 1;
                            }
                            Poll::Empty => std::hint::spin_loop(),
                            other => panic!("reliable link returned {other:?}"),
                        }
                    }
                    c.housekeeping();
                    (sum, lat)
                },
            );
            for part in ["mc", "dc", "fs0"] {
                let _ = ws.free_named(&format!("{name}.{part}"));
            }
            r
        }
        "rtrb" => {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(DEPTH * sz);
            pair(
                move || {
                    let mut buf = vec![0u8; sz];
                    for i in 0..n {
                        let t0 = if paced { mono_ns() } else { 0 };
                        let mut chunk = loop {
                            match tx.write_chunk(sz) {
                                Ok(c) => break c,
                                Err(_) => std::hint::spin_loop(),
                            }
                        };
                        let (a, b) = chunk.as_mut_slices();
                        if b.is_empty() {
                            // In place, as tilewire's producer writes.
                            fill(a, i, stamp(i));
                        } else {
                            // The chunk wraps the ring's end.
                            fill(&mut buf, i, stamp(i));
                            a.copy_from_slice(&buf[..a.len()]);
                            b.copy_from_slice(&buf[a.len()..]);
                        }
                        chunk.commit_all();
                        if paced {
                            pace(t0, gap);
                        }
                    }
                },
                move || {
                    let (mut got, mut sum, mut lat) = (
                        0u64,
                        0u64,
                        Vec::with_capacity(if paced { n as usize } else { 0 }),
                    );
                    let mut tmp = vec![0u8; sz];
                    while got < n {
                        // Read every whole message available in one chunk.
                        let avail = (rx.slots() / sz) * sz;
                        if avail == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        let chunk = rx.read_chunk(avail).expect("slots were available");
                        let (a, b) = chunk.as_slices();
                        let mut off = 0;
                        while off < avail {
                            // A message may straddle the ring's end.
                            let msg: &[u8] = if off + sz <= a.len() {
                                &a[off..off + sz]
                            } else if off >= a.len() {
                                &b[off - a.len()..off - a.len() + sz]
                            } else {
                                let k = a.len() - off;
                                tmp[..k].copy_from_slice(&a[off..]);
                                tmp[k..].copy_from_slice(&b[..sz - k]);
                                &tmp
                            };
                            record(&mut lat, u64::from_le_bytes(msg[..8].try_into().unwrap()));
                            sum ^= fold_bytes(msg);
                            got += 1;
                            off += sz;
                        }
                        chunk.commit_all();
                    }
                    (sum, lat)
                },
            )
        }
        "crossbeam-arrayqueue" if sz == 64 => arrayq::<64>(n, paced, gap),
        "crossbeam-arrayqueue" if sz == 1232 => arrayq::<1232>(n, paced, gap),
        "crossbeam-channel" if sz == 64 => channel::<64>(n, paced, gap),
        "crossbeam-channel" if sz == 1232 => channel::<1232>(n, paced, gap),
        other => panic!("unknown implementation {other}"),
    };
    Sample {
        secs,
        checksum,
        lat,
    }
}

/// crossbeam's ArrayQueue carrying the payload by value, as a Rust user
/// would put fixed-size packets in it.
fn arrayq<const SZ: usize>(n: u64, paced: bool, gap: u64) -> (f64, u64, Vec<u64>) {
    let q = crossbeam_queue::ArrayQueue::<[u8; SZ]>::new(DEPTH);
    pair(
        || {
            let mut buf = [0u8; SZ];
            for i in 0..n {
                let t0 = if paced { mono_ns() } else { 0 };
                fill(&mut buf, i, if paced { t0 } else { i });
                while q.push(buf).is_err() {
                    std::hint::spin_loop();
                }
                if paced {
                    pace(t0, gap);
                }
            }
        },
        || {
            let (mut got, mut sum) = (0u64, 0u64);
            let mut lat = Vec::with_capacity(if paced { n as usize } else { 0 });
            while got < n {
                match q.pop() {
                    Some(b) => {
                        if paced {
                            lat.push(
                                mono_ns()
                                    .wrapping_sub(u64::from_le_bytes(b[..8].try_into().unwrap())),
                            );
                        }
                        sum ^= fold_bytes(&b);
                        got += 1;
                    }
                    None => std::hint::spin_loop(),
                }
            }
            (sum, lat)
        },
    )
}

/// crossbeam's bounded channel carrying the payload by value.
fn channel<const SZ: usize>(n: u64, paced: bool, gap: u64) -> (f64, u64, Vec<u64>) {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; SZ]>(DEPTH);
    pair(
        move || {
            let mut buf = [0u8; SZ];
            for i in 0..n {
                let t0 = if paced { mono_ns() } else { 0 };
                fill(&mut buf, i, if paced { t0 } else { i });
                tx.send(buf).expect("consumer alive");
                if paced {
                    pace(t0, gap);
                }
            }
        },
        move || {
            let (mut got, mut sum) = (0u64, 0u64);
            let mut lat = Vec::with_capacity(if paced { n as usize } else { 0 });
            while got < n {
                let b = rx.recv().expect("producer alive");
                if paced {
                    lat.push(
                        mono_ns().wrapping_sub(u64::from_le_bytes(b[..8].try_into().unwrap())),
                    );
                }
                sum ^= fold_bytes(&b);
                got += 1;
            }
            (sum, lat)
        },
    )
}

/// The checksum every implementation must reach for an unpaced run.
fn expected_checksum(sz: usize, n: u64) -> u64 {
    let mut buf = vec![0u8; sz];
    (0..n).fold(0, |acc, i| {
        fill(&mut buf, i, i);
        acc ^ fold_bytes(&buf)
    })
}

struct Row {
    sz: usize,
    which: &'static str,
    rate: f64,
    p50: u64,
    p99: u64,
}

/// One line of `--json`.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    bench: &'static str,
    #[serde(rename = "impl")]
    imp: &'a str,
    payload_bytes: usize,
    rate_per_s: u64,
    p50_ns: u64,
    p99_ns: u64,
    /// This row's rate over each peer's, same payload.
    ratio: std::collections::BTreeMap<&'a str, f64>,
    pinned: &'a str,
    depth: usize,
}

/// Runs the whole benchmark and prints it.
pub(crate) fn run(opts: &BenchArgs) -> Result<(), String> {
    let cores = Cores::detect();
    let pinned = cores.describe("producer", "consumer");
    let ws_name = format!("bench-link-{}", std::process::id());
    let ws = Workspace::create(&ws_name, 64 << 20, PageKind::Normal).map_err(|e| e.to_string())?;
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = Workspace::unlink(&self.0);
        }
    }
    let _unlink = Unlink(ws_name);
    let (rounds, lat_n) = if opts.quick { (3, 6_000) } else { (5, 50_000) };
    let mut rows = Vec::new();
    for sz in [64usize, 1232] {
        let n: u64 = match (sz, opts.quick) {
            (64, false) => 4_000_000,
            (_, false) => 1_000_000,
            (64, true) => 500_000,
            _ => 200_000,
        };
        let want = expected_checksum(sz, n);
        let mut mismatch = None;
        let best = best_of(
            rounds,
            IMPLS.len(),
            |k| {
                let which = IMPLS[k];
                let s = run_one(which, &ws, sz, n, false);
                if s.checksum != want {
                    return Err(format!(
                        "{which} {sz} B: checksum mismatch (payload bytes lost or changed)"
                    ));
                }
                Ok(n as f64 / s.secs)
            },
            |rate| *rate,
            |_, e| {
                mismatch.get_or_insert(e);
            },
        );
        if let Some(e) = mismatch {
            return Err(e);
        }
        // Latency in rounds too, the implementations taking turns; the
        // table shows the median round (see `RoundPercentiles`).
        let mut lats = vec![RoundPercentiles::default(); IMPLS.len()];
        for _ in 0..rounds {
            for (k, which) in IMPLS.iter().enumerate() {
                lats[k].add(&mut run_one(which, &ws, sz, lat_n / rounds as u64, true).lat);
            }
        }
        for (k, which) in IMPLS.iter().enumerate() {
            let (p50, p99) = lats[k].median().unwrap_or((0, 0));
            rows.push(Row {
                sz,
                which,
                rate: best[k].unwrap_or(0.0),
                p50,
                p99,
            });
        }
    }
    print(&rows, &layout::report(&cores, &pinned), &pinned, opts.json);
    let n = if opts.quick { 200 } else { 1000 };
    let spin = wake_latency(&ws, false, n, &cores)?;
    let parked = wake_latency(&ws, true, n, &cores)?;
    let floor = thread_wake_latency(n, &cores);
    print_wake(&spin, &parked, &floor, &pinned, opts.json);
    Ok(())
}

/// Nanoseconds from publish to read of `n` frags sent 2 ms apart, to a
/// consumer that spins or parks on the link while it waits (what a
/// backing-off tile does): the cost of sleeping instead of spinning.
fn wake_latency(ws: &Workspace, park: bool, n: usize, cores: &Cores) -> Result<Vec<u64>, String> {
    let name = if park { "wake-park" } else { "wake-spin" };
    let params = LinkParams {
        depth: 1024,
        mtu: 64,
        consumers: vec![Reliability::Reliable],
        seq0: 0,
    };
    let link = Link::create(ws, name, &params).map_err(|e| e.to_string())?;
    let start = Barrier::new(2);
    let lat = std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            pin(cores.second);
            let mut c = link.consumer(0).expect("consumer 0");
            let mc = *link.mcache();
            let mut lat = Vec::with_capacity(n);
            start.wait();
            while lat.len() < n {
                match c.poll_with(|_, bytes| {
                    let mut b = [0u8; 8];
                    tilewire_shmem::load_bytes(&mut b, &bytes[..8]);
                    u64::from_le_bytes(b)
                }) {
                    Poll::Frag(_, sent) => lat.push(mono_ns().saturating_sub(sent)),
                    Poll::Empty if park => {
                        mc.park(c.seq(), std::time::Duration::from_millis(5));
                    }
                    _ => std::hint::spin_loop(),
                }
            }
            lat
        });
        pin(cores.first);
        let mut p = link.producer();
        start.wait();
        for _ in 0..n {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let _ = p.publish(&mono_ns().to_le_bytes(), 0, CTL_PKT, 0);
        }
        consumer.join().expect("the consumer thread")
    });
    let mut lat = lat;
    lat.sort_unstable();
    Ok(lat)
}

/// The floor under a parked consumer's wake: nanoseconds from a stamp to
/// the moment a thread parked with `std::thread::park` runs again after
/// `unpark` (the futex wake every Rust program has), `n` times 2 ms apart,
/// pinned as the link cells are. Two wakes the sleeper saw as one (it
/// did not run between them, on a loaded machine) give one sample: it
/// ends when the waker says it is done, with the samples it has.
fn thread_wake_latency(n: usize, cores: &Cores) -> Vec<u64> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stamp = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let lat = std::thread::scope(|s| {
        let sleeper = s.spawn(|| {
            pin(cores.second);
            tx.send(std::thread::current())
                .expect("the waker waits for this");
            let mut lat = Vec::with_capacity(n);
            let mut seen = 0;
            while lat.len() < n {
                // Bounded: a wake lost to the machine ends the run late,
                // never hangs it (seen on this VM).
                std::thread::park_timeout(std::time::Duration::from_millis(50));
                // SYNC: Acquire; pairs with the waker's Release store of
                // `done`, made after its last stamp: read first, so a
                // `done` seen means the stamp read next is the last.
                let finished = done.load(Ordering::Acquire);
                // SYNC: Acquire; pairs with the waker's Release store.
                let t = stamp.load(Ordering::Acquire);
                if t != seen {
                    seen = t;
                    lat.push(mono_ns().saturating_sub(t));
                } else if finished {
                    break;
                }
            }
            lat
        });
        pin(cores.first);
        let thread = rx.recv().expect("the sleeper's handle");
        for _ in 0..n {
            std::thread::sleep(std::time::Duration::from_millis(2));
            // SYNC: Release; the sleeper reads the stamp after it wakes.
            stamp.store(mono_ns(), Ordering::Release);
            thread.unpark();
        }
        // SYNC: Release; pairs with the sleeper's Acquire load: every
        // stamp was stored before.
        done.store(true, Ordering::Release);
        thread.unpark();
        sleeper.join().expect("the sleeper thread")
    });
    let mut lat = lat;
    lat.sort_unstable();
    lat
}

fn print_wake(spin: &[u64], parked: &[u64], floor: &[u64], pinned: &str, json: bool) {
    #[derive(serde::Serialize)]
    struct WakeRow<'a> {
        bench: &'static str,
        #[serde(rename = "impl")]
        imp: &'static str,
        frags: usize,
        p50_ns: u64,
        p99_ns: u64,
        pinned: &'a str,
    }
    let rows = [
        ("consumer spins", spin),
        ("consumer parks", parked),
        ("std park/unpark", floor),
    ];
    if json {
        for (imp, lat) in rows {
            print_json(&WakeRow {
                bench: "link_wake",
                imp,
                frags: lat.len(),
                p50_ns: pct(lat, 0.5),
                p99_ns: pct(lat, 0.99),
                pinned,
            });
        }
        return;
    }
    println!();
    println!("wake: a frag every 2 ms, publish to read (what backing off costs a tile)");
    println!(
        "{:<16} {:>8} {:>10} {:>10}",
        "consumer", "frags", "p50 ns", "p99 ns"
    );
    // The last row is no link: a bare thread wake, the floor under parking.
    for (imp, lat) in rows {
        println!(
            "{imp:<16} {:>8} {:>10} {:>10}",
            lat.len(),
            pct(lat, 0.5),
            pct(lat, 0.99)
        );
    }
}

fn print(rows: &[Row], report: &str, pinned: &str, json: bool) {
    let peer_ratio = |r: &Row, peer: &str| {
        rows.iter()
            .find(|x| x.sz == r.sz && x.which == peer)
            .map(|p| r.rate / p.rate)
            .unwrap_or(0.0)
    };
    if json {
        for r in rows {
            let ratio = IMPLS
                .iter()
                .filter(|p| **p != r.which)
                .map(|p| (*p, round(peer_ratio(r, p), 3)))
                .collect();
            print_json(&JsonRow {
                bench: "link",
                imp: r.which,
                payload_bytes: r.sz,
                rate_per_s: r.rate.round() as u64,
                p50_ns: r.p50,
                p99_ns: r.p99,
                ratio,
                pinned,
                depth: DEPTH,
            });
        }
        return;
    }
    println!("tilewire-bench link: 1 producer -> 1 consumer, reliable, depth {DEPTH}, payload read and checksummed");
    println!("{report}");
    println!();
    println!(
        "{:>7}  {:<22} {:>12} {:>8} {:>8}   {:>9} {:>9} {:>9}",
        "payload", "impl", "frags/s", "p50 ns", "p99 ns", "vs rtrb", "vs arrayq", "vs chan"
    );
    for r in rows {
        println!(
            "{:>5} B  {:<22} {:>10.2} M {:>8} {:>8}   {:>8.2}x {:>8.2}x {:>8.2}x",
            r.sz,
            r.which,
            r.rate / 1e6,
            r.p50,
            r.p99,
            peer_ratio(r, "rtrb"),
            peer_ratio(r, "crossbeam-arrayqueue"),
            peer_ratio(r, "crossbeam-channel"),
        );
    }
}
