//! Several tiles on one thread: a group runs a chain at full speed taking
//! turns, stops in order losing nothing, sleeps when all of it is idle (on
//! the one link from outside, woken for every frag) and keeps each tile's
//! heartbeat; a tile that panics ends alone.

mod common;

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tiles::{Forward, Gen};
use common::{payload, send_all, wait_until, TestWs, TrySend};
use tilewire_shmem::clock::{mono_ns, mono_ts, thread_cpu_ns};
use tilewire_shmem::load_bytes;
use tilewire_tile::link::frag::{FragMeta, CTL_PKT};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::metrics::{TileMetricsHandle, TileState};
use tilewire_tile::stem::{Group, MemberEnd, Outputs, Stem, StemConfig, Tile};

const MTU: usize = 512;

type Boxed = Box<dyn Tile + Send>;

fn config() -> StemConfig {
    StemConfig {
        lazy: 64,
        stop_grace: Duration::from_secs(5),
    }
}

/// Keeps the signature of every frag, checking its bytes.
#[derive(Debug, Default)]
struct Sink {
    got: Arc<Mutex<Vec<u64>>>,
    buf: Vec<u8>,
    want: Vec<u8>,
}

impl Tile for Sink {
    fn kind(&self) -> &str {
        "sink"
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.buf.resize(meta.sz as usize, 0);
        load_bytes(&mut self.buf, payload);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, _: &mut Outputs<'_, '_>) {
        payload(meta.sig, MTU, &mut self.want);
        assert_eq!(self.buf, self.want, "payload of frag {}", meta.sig);
        self.got.lock().unwrap().push(meta.sig);
    }
}

/// Tile `name` over `ins` and `outs`, boxed: a group's tiles are all of
/// one type.
fn stem<'w>(
    t: &'w TestWs,
    name: &str,
    tile: impl Tile + Send + 'static,
    ins: &[(&tilewire_tile::link::Link<'w>, usize)],
    outs: &[&tilewire_tile::link::Link<'w>],
) -> Stem<'w, Boxed> {
    Stem::new(&t.ws, name, Box::new(tile) as Boxed, ins, outs, config()).unwrap()
}

fn wait_halted(m: TileMetricsHandle<'_>) {
    wait_until("a halt", || m.state() == Some(TileState::Halted));
}

/// Stops every tile when dropped, so a failing test never leaves a group
/// thread running.
struct StopOnDrop<'w>(Vec<TileMetricsHandle<'w>>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for m in &self.0 {
            m.request_stop();
        }
    }
}

#[test]
fn a_group_runs_a_chain_on_one_thread_and_its_ordered_stop_loses_nothing() {
    let t = TestWs::new("group", 16 << 20);
    // Shallow reliable links: the tiles must take turns for any to go on.
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let stems: Vec<Stem<'_, Boxed>> = vec![
        stem(&t, "gen", Gen::new(MTU), &[], &[&a]),
        stem(&t, "fwd", Forward::default(), &[(&a, 0)], &[&b]),
        stem(
            &t,
            "sink",
            Sink {
                got: Arc::clone(&got),
                ..Sink::default()
            },
            &[(&b, 0)],
            &[],
        ),
    ];
    let m: Vec<_> = stems.iter().map(|s| s.metrics()).collect();
    let mut group = Group::new(stems);
    let ends = std::thread::scope(|s| {
        // Inside the scope: a failing assertion stops the tiles before
        // the scope waits for their thread.
        let _stop = StopOnDrop(m.clone());
        let runner = s.spawn(|| group.run(|_, _| {}));
        wait_until("20 000 frags through", || {
            got.lock().unwrap().len() >= 20_000
        });
        // Each tile keeps its own heartbeat.
        let before: Vec<u64> = m.iter().map(|m| m.snapshot().housekeeping).collect();
        wait_until("housekeeping of every tile", || {
            m.iter()
                .zip(&before)
                .all(|(m, b)| m.snapshot().housekeeping > *b)
        });
        // The runner's stop: the source, then each tile once its upstream
        // halted, draining.
        m[0].request_stop();
        wait_halted(m[0]);
        m[1].request_drain(1);
        wait_halted(m[1]);
        m[2].request_drain(1);
        runner.join().unwrap()
    });
    assert!(
        ends.iter()
            .all(|e| matches!(e, MemberEnd::Halted(r) if r.left() == 0)),
        "every tile halted leaving nothing: {ends:?}"
    );
    let published = group.stems()[0].outputs()[0].seq();
    let got = got.lock().unwrap();
    assert_eq!(got.len() as u64, published, "the sink got every frag");
    assert!(
        got.iter().enumerate().all(|(i, s)| *s == i as u64),
        "in order, once each"
    );
}

#[test]
fn an_idle_group_sleeps_on_its_one_outside_link_and_wakes_for_every_frag() {
    let t = TestWs::new("groupidle", 16 << 20);
    let a = t.link("a", 1024, MTU, &[Reliable]);
    let b = t.link("b", 1024, MTU, &[Reliable]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let stems: Vec<Stem<'_, Boxed>> = vec![
        stem(&t, "fwd", Forward::default(), &[(&a, 0)], &[&b]),
        stem(
            &t,
            "sink",
            Sink {
                got: Arc::clone(&got),
                ..Sink::default()
            },
            &[(&b, 0)],
            &[],
        ),
    ];
    let m: Vec<_> = stems.iter().map(|s| s.metrics()).collect();
    let mut group = Group::new(stems);
    let (cpu, elapsed, max_age) = std::thread::scope(|s| {
        // Inside the scope: a failing assertion stops the tiles before
        // the scope waits for their thread.
        let _stop = StopOnDrop(m.clone());
        let runner = s.spawn(|| {
            let (c0, w0) = (thread_cpu_ns(), Instant::now());
            let ends = group.run(|_, _| {});
            (thread_cpu_ns() - c0, w0.elapsed(), ends)
        });
        let mut tx = LinkTx::new(&a);
        let mut max_age = 0u64;
        // 40 frags 10 ms apart: the group runs dry and sleeps between.
        for i in 0..40 {
            send_all(&mut tx, i, 1, MTU);
            std::thread::sleep(Duration::from_millis(10));
            for m in &m {
                max_age = max_age.max(mono_ns().saturating_sub(m.snapshot().heartbeat_ns));
            }
        }
        wait_until("every frag", || got.lock().unwrap().len() == 40);
        m[0].request_drain(1);
        wait_halted(m[0]);
        m[1].request_drain(1);
        let (cpu, elapsed, ends) = runner.join().unwrap();
        assert!(ends.iter().all(|e| matches!(e, MemberEnd::Halted(_))));
        (cpu, elapsed, max_age)
    });
    assert_eq!(*got.lock().unwrap(), (0..40).collect::<Vec<u64>>());
    let wakes = a.mcache().wakes();
    eprintln!(
        "group: {:.1} ms of CPU in {:.0} ms, {wakes} wakes, heartbeat at most {:.1} ms old",
        cpu as f64 / 1e6,
        elapsed.as_secs_f64() * 1e3,
        max_age as f64 / 1e6
    );
    // How many of the 40 frags found it asleep depends on the machine's
    // load (each park lasts at most 5 ms, the frags come 10 ms apart).
    assert!(wakes > 0, "it slept on link a and was woken: {wakes} wakes");
    assert!(
        (cpu as f64) < elapsed.as_nanos() as f64 * 0.25,
        "it slept: {cpu} ns of CPU in {elapsed:?}"
    );
    assert!(max_age < 200_000_000, "heartbeats kept: {max_age} ns");
}

#[test]
fn a_tile_of_a_group_that_panics_ends_alone_and_the_others_drain_and_stop() {
    let t = TestWs::new("grouppanic", 16 << 20);
    let a = t.link("a", 1024, MTU, &[Reliable]);
    let b = t.link("b", 1024, MTU, &[Reliable]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let stems: Vec<Stem<'_, Boxed>> = vec![
        stem(&t, "fwd", Forward::panicking_at(10), &[(&a, 0)], &[&b]),
        stem(
            &t,
            "sink",
            Sink {
                got: Arc::clone(&got),
                ..Sink::default()
            },
            &[(&b, 0)],
            &[],
        ),
    ];
    let m: Vec<_> = stems.iter().map(|s| s.metrics()).collect();
    let mut group = Group::new(stems);
    group.stop_on_panic(true);
    let mut seen = Vec::new();
    std::thread::scope(|s| {
        // Inside the scope: a failing assertion stops the tiles before
        // the scope waits for their thread.
        let _stop = StopOnDrop(m.clone());
        let runner = s.spawn(|| group.run(|i, e| seen.push((i, e.clone()))));
        send_all(&mut LinkTx::new(&a), 0, 20, MTU);
        let ends = runner.join().unwrap();
        assert!(
            matches!(&ends[0], MemberEnd::Panicked(msg) if msg == "forward meets frag 10"),
            "{ends:?}"
        );
        assert_eq!(ends[1], MemberEnd::Halted(ends_halted(&ends[1])));
    });
    assert_eq!(seen.len(), 2, "each end was told as it came: {seen:?}");
    assert_eq!(seen[0].0, 0, "the panic first");
    assert_eq!(
        *got.lock().unwrap(),
        (0..10).collect::<Vec<u64>>(),
        "the sink drained what the forward passed on before it panicked"
    );
    assert_eq!(m[1].state(), Some(TileState::Halted));
    assert_ne!(
        m[0].state(),
        Some(TileState::Halted),
        "the panicked tile never halted"
    );
}

fn ends_halted(e: &MemberEnd) -> tilewire_tile::stem::RunEnd {
    match e {
        MemberEnd::Halted(r) if r.left() == 0 => *r,
        other => panic!("not a clean halt: {other:?}"),
    }
}

/// Takes in a batch of 256 frags from "outside" at every `after_credit`
/// (as a net tile does) until it took `total`, and reads back what comes
/// round to it on its input.
#[derive(Debug)]
struct Flood {
    next: u64,
    total: u64,
    back: Arc<Mutex<u64>>,
    buf: Vec<u8>,
}

impl Tile for Flood {
    fn kind(&self) -> &str {
        "flood"
    }
    fn external_input(&self) -> bool {
        true
    }
    fn burst(&self) -> u64 {
        256
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        for _ in 0..256 {
            if self.next == self.total {
                return;
            }
            payload(self.next, MTU, &mut self.buf);
            out.publish(0, &self.buf, self.next, CTL_PKT, mono_ts())
                .expect("an unreliable output always has credits");
            self.next += 1;
        }
    }
    fn after_frag(&mut self, _: usize, _: &FragMeta, _: &mut Outputs<'_, '_>) {
        *self.back.lock().unwrap() += 1;
    }
}

#[test]
fn a_tile_taking_in_whole_batches_does_not_starve_what_comes_back_to_it() {
    // flood -> a (unreliable) -> fwd -> b (reliable) -> flood, on one
    // thread. Were flood's turn to read one frag of b per batch it takes
    // in, b would fill, fwd would stop reading a and a would overrun.
    const TOTAL: u64 = 200_000;
    let t = TestWs::new("groupflood", 32 << 20);
    let a = t.link("a", 4096, MTU, &[Unreliable]);
    let b = t.link("b", 4096, MTU, &[Reliable]);
    let back = Arc::new(Mutex::new(0));
    let flood = Flood {
        next: 0,
        total: TOTAL,
        back: Arc::clone(&back),
        buf: Vec::new(),
    };
    let stems = vec![
        stem(&t, "flood", flood, &[(&b, 0)], &[&a]),
        stem(&t, "fwd", Forward::default(), &[(&a, 0)], &[&b]),
    ];
    let m: Vec<_> = stems.iter().map(|s| s.metrics()).collect();
    let mut group = Group::new(stems);
    std::thread::scope(|s| {
        // Inside the scope: a failing assertion stops the tiles before
        // the scope waits for their thread.
        let _stop = StopOnDrop(m.clone());
        let runner = s.spawn(|| group.run(|_, _| {}));
        // Until every frag came back, or nothing came back for a while.
        let (mut last, mut still) = (0, 0);
        while *back.lock().unwrap() < TOTAL && still < 200 {
            std::thread::sleep(Duration::from_millis(1));
            let now = *back.lock().unwrap();
            (last, still) = if now == last {
                (now, still + 1)
            } else {
                (now, 0)
            };
        }
        for m in &m {
            m.request_stop();
        }
        runner.join().unwrap();
    });
    let lost = a.fseqs()[0].diag(tilewire_tile::link::fseq::DIAG_OVRNP_FRAGS);
    eprintln!(
        "{} of {TOTAL} came back, {lost} lost",
        *back.lock().unwrap()
    );
    assert_eq!(lost, 0, "fwd kept up with every batch");
    assert_eq!(*back.lock().unwrap(), TOTAL, "all came back");
}

/// Reads its input and panics at the frag whose signature is `at`.
#[derive(Debug)]
struct Boom {
    at: u64,
}

impl Tile for Boom {
    fn kind(&self) -> &str {
        "boom"
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, _: &mut Outputs<'_, '_>) {
        assert_ne!(meta.sig, self.at, "boom at frag {}", self.at);
    }
}

#[test]
fn after_a_panic_the_others_drain_upstream_first_and_lose_nothing() {
    // boom and fwd both read a; fwd -> b -> sink. boom panics: fwd drains
    // a and halts, and only then is the sink asked, so it gets all fwd
    // passed on.
    let t = TestWs::new("grouppanic2", 16 << 20);
    let a = t.link("a", 1024, MTU, &[Unreliable, Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let boom = Boom { at: 3000 };
    let stems = vec![
        stem(&t, "boom", boom, &[(&a, 0)], &[]),
        stem(&t, "fwd", Forward::default(), &[(&a, 1)], &[&b]),
        stem(
            &t,
            "sink",
            Sink {
                got: Arc::clone(&got),
                ..Sink::default()
            },
            &[(&b, 0)],
            &[],
        ),
    ];
    let m: Vec<_> = stems.iter().map(|s| s.metrics()).collect();
    let mut group = Group::new(stems);
    group.stop_on_panic(true);
    let ends = std::thread::scope(|s| {
        let _stop = StopOnDrop(m.clone());
        let runner = s.spawn(|| group.run(|_, _| {}));
        // Published as fast as credits allow, so fwd and the sink are
        // busy when boom panics; until the group ended (fwd's credits
        // stop with it).
        let mut tx = LinkTx::new(&a);
        let mut seq = 0;
        while seq < 5000 && !runner.is_finished() {
            if tx.try_send(seq, MTU) {
                seq += 1;
            } else {
                std::thread::yield_now();
            }
        }
        runner.join().unwrap()
    });
    assert!(matches!(ends[0], MemberEnd::Panicked(_)), "{ends:?}");
    let forwarded = group.stems()[1].outputs()[0].seq();
    assert!(forwarded >= 3000, "fwd ran past the panic: {forwarded}");
    assert_eq!(
        got.lock().unwrap().len() as u64,
        forwarded,
        "the sink got all fwd passed on"
    );
}
