//! The monitor library against real tiles: rates that agree with what was
//! published, halted and dead tiles, and broken objects reported, not
//! panicked on. The monitor always reads through its own read-only join.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestWs;
use tilewire_aio::mem::MemAio;
use tilewire_aio::{Aio, PktInfo, SendError};
use tilewire_monitor::{pid_alive, render, Rates, Report, Snapshot, TileHealth, HEARTBEAT_TIMEOUT};
use tilewire_shmem::{store_bytes, Access, Workspace};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::Reliability::{Reliable, Unreliable};
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::metrics::{TileMetrics, TileMetricsHandle, TileState};
use tilewire_tile::stem::{Outputs, Stem, StemConfig, Tile};

const MTU: usize = 256;
const DEPTH: u64 = 256;
const DEADLINE: Duration = Duration::from_secs(20);
/// The child process of [`a_killed_tile_process_is_dead_within_a_second`]
/// finds its workspace's name here.
const CHILD_ENV: &str = "TILEWIRE_MONITOR_TEST_CHILD_WS";

/// A downstream that takes everything and keeps nothing.
#[derive(Debug)]
struct Discard(MemAio);

impl Discard {
    fn new() -> Discard {
        Discard(MemAio::with_capacity(tilewire_tile::stem::drain::BATCH_MAX))
    }
}

impl Aio for Discard {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        let r = self.0.send(batch, flush);
        self.0.clear();
        r
    }
}

/// A tile with no links that, while `park` is set, sits in `after_credit`
/// (bounded by the test deadline): its loop, and so its heartbeat, stop
/// while its state still says running.
#[derive(Debug, Default)]
struct Parkable {
    park: Arc<AtomicBool>,
    parked: Arc<AtomicBool>,
}

impl Tile for Parkable {
    fn kind(&self) -> &str {
        "parkable"
    }
    fn after_credit(&mut self, _out: &mut Outputs<'_, '_>) {
        if !self.park.load(Ordering::Acquire) {
            return;
        }
        self.parked.store(true, Ordering::Release);
        let end = Instant::now() + DEADLINE;
        while self.park.load(Ordering::Acquire) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.parked.store(false, Ordering::Release);
    }
}

fn config() -> StemConfig {
    StemConfig {
        lazy: 256,
        stop_grace: Duration::from_millis(200),
    }
}

/// Asks tiles (and the producer) to stop when dropped, so a failed
/// assertion does not leave threads spinning inside the scope.
struct StopOnDrop<'w>(Vec<TileMetricsHandle<'w>>, Arc<AtomicBool>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.1.store(true, Ordering::Release);
        for m in &self.0 {
            m.request_stop();
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn report(s: &Snapshot, rates: Option<&Rates>) -> Report {
    Report::new(s, rates, HEARTBEAT_TIMEOUT, pid_alive)
}

fn health(ro: &Workspace, tile: &str) -> (TileHealth, Snapshot) {
    let s = Snapshot::take(ro);
    let m = &s.tile(tile).expect("tile in snapshot").metrics;
    let h = tilewire_monitor::classify(m, s.taken_ns, HEARTBEAT_TIMEOUT, pid_alive);
    (h, s)
}

#[test]
fn rates_agree_with_the_frags_published_and_stopped_tiles_halt() {
    let t = TestWs::new("mon", 1 << 24);
    let a = t.link("a", DEPTH, MTU, &[Reliable, Unreliable]);
    let mk = |name: &str, consumer| {
        Stem::new(
            &t.ws,
            name,
            Drain::new(Discard::new(), MTU),
            &[(&a, consumer)],
            &[],
            config(),
        )
        .unwrap()
    };
    let (mut d0, mut d1) = (mk("drain0", 0), mk("drain1", 1));
    let (m0, m1) = (d0.metrics(), d1.metrics());
    // The monitor's own view: a read-only mapping of the same workspace.
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    assert_eq!(ro.access(), Access::ReadOnly);
    let published = AtomicU64::new(0);
    let stop_producer = Arc::new(AtomicBool::new(false));

    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![m0, m1], stop_producer.clone());
        let h0 = s.spawn(|| d0.run());
        let h1 = s.spawn(|| d1.run());
        let producer = s.spawn(|| {
            let mut tx = LinkTx::new(&a);
            let payload = [7u8; 100];
            let end = Instant::now() + DEADLINE;
            while !stop_producer.load(Ordering::Acquire) && Instant::now() < end {
                if tx.send(&[PktInfo::new(&payload)], true).is_ok() {
                    published.fetch_add(1, Ordering::Release);
                }
            }
        });
        let count = || published.load(Ordering::Acquire);
        wait_until("traffic", DEADLINE, || count() > 4 * DEPTH);

        // The link's position is read between `a0` and `a1` (plus one send
        // in flight), and between `b0` and `b1`: the true change lies in
        // [b0 - a1 - 1, b1 + 1 - a0]. A reliable consumer is at most a ring
        // behind the producer, which widens its bounds by DEPTH.
        let a0 = count();
        let first = Snapshot::take(&ro);
        let a1 = count();
        wait_until("more traffic", DEADLINE, || count() > a1 + 8 * DEPTH);
        let b0 = count();
        let second = Snapshot::take(&ro);
        let b1 = count();
        let rates = Rates::between(&first, &second);
        let secs = rates.interval_ns as f64 / 1e9;
        assert!(rates.interval_ns > 0);

        let link = rates.link("a").expect("link a has rates");
        let published_delta = (link.publish_per_s * secs).round() as u64;
        assert!(
            (b0 - a1 - 1..=b1 + 1 - a0).contains(&published_delta),
            "publish rate says {published_delta} frags, the producer sent \
             between {} and {}",
            b0 - a1 - 1,
            b1 + 1 - a0
        );
        let consumed = (link.consumers[0].frags_per_s * secs).round() as u64;
        let (lo, hi) = (b0 - a1 - 1 - DEPTH, b1 + 1 - a0 + DEPTH);
        assert!(
            (lo..=hi).contains(&consumed) && consumed > 0,
            "reliable consumer rate says {consumed} frags, bounds {lo}..={hi}"
        );
        assert_eq!(link.consumers[0].overruns, 0, "reliable is never overrun");
        let tile = rates.tile("drain0").unwrap();
        assert_eq!(tile.frags_in_per_s, link.consumers[0].frags_per_s);
        assert!(tile.bytes_in_per_s > 0.0 && tile.frags_out_per_s == 0.0);
        // Every payload is 100 bytes.
        let bytes_per_frag = tile.bytes_in_per_s / tile.frags_in_per_s;
        assert!((bytes_per_frag - 100.0).abs() < 1e-9, "{bytes_per_frag}");
        assert!(tile.counters.iter().any(|(n, r)| n == "sent" && *r > 0.0));
        assert!(tile.heartbeat_age_ns.unwrap() < HEARTBEAT_TIMEOUT.as_nanos() as u64);

        let r = report(&second, Some(&rates));
        for name in ["drain0", "drain1"] {
            let tr = r.tile(name).unwrap();
            assert_eq!(
                (tr.health, tr.kind.as_str()),
                ("running", "drain"),
                "{name}"
            );
            assert_eq!(tr.pid, std::process::id());
        }
        let lr = r.link("a").unwrap();
        assert!((b0..=b1 + 1).contains(&lr.published), "{}", lr.published);
        assert_eq!(lr.consumers[0].tile.as_deref(), Some("drain0"));
        assert_eq!(lr.consumers[1].tile.as_deref(), Some("drain1"));
        assert!(lr.consumers[0].reliable && !lr.consumers[1].reliable);
        assert!(lr.consumers[0].lag <= DEPTH + 1);
        let lat = r.tile("drain0").unwrap().inputs[0].latency.unwrap();
        assert!(lat.count > 0 && lat.p50_ns <= lat.p99_ns);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let table = render::table(&r);
        assert!(
            table.contains("drain0") && table.contains("running"),
            "{table}"
        );

        // Stop everything: the tiles halt, and the final counts are exact.
        stop_producer.store(true, Ordering::Release);
        producer.join().unwrap();
        let total = count();
        wait_until("the reliable drain to catch up", DEADLINE, || {
            a.fseqs()[0].query() == total
        });
        m0.request_stop();
        m1.request_stop();
        h0.join().unwrap();
        h1.join().unwrap();
        let last = Snapshot::take(&ro);
        let r = report(&last, None);
        for name in ["drain0", "drain1"] {
            assert_eq!(r.tile(name).unwrap().health, "halted", "{name}");
            assert_eq!(r.tile(name).unwrap().state, "halted");
        }
        let lr = r.link("a").unwrap();
        assert_eq!(lr.published, total);
        assert_eq!((lr.consumers[0].frags, lr.consumers[0].lag), (total, 0));
        let c1 = &lr.consumers[1];
        assert!(c1.frags + c1.frags_lost <= total, "{c1:?}");
    });
}

#[test]
fn a_parked_tile_is_dead_once_its_heartbeat_is_stale_and_alive_when_it_beats_again() {
    let t = TestWs::new("monpark", 1 << 20);
    let tile = Parkable::default();
    let (park, parked) = (tile.park.clone(), tile.parked.clone());
    let mut stem = Stem::new(&t.ws, "sleepy", tile, &[], &[], config()).unwrap();
    let m = stem.metrics();
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    assert_eq!(
        health(&ro, "sleepy").0,
        TileHealth::Booting,
        "made, not run"
    );
    let unpark = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![m], unpark.clone());
        let _unpark_on_drop = UnparkOnDrop(park.clone());
        let h = s.spawn(|| stem.run());
        wait_until("a heartbeat", DEADLINE, || {
            health(&ro, "sleepy").0 == TileHealth::Running
        });

        park.store(true, Ordering::Release);
        wait_until("the tile to park", DEADLINE, || {
            parked.load(Ordering::Acquire)
        });
        let since = Instant::now();
        let mut dead = None;
        while since.elapsed() < Duration::from_secs(2) {
            let (h, snap) = health(&ro, "sleepy");
            if let TileHealth::Dead { why } = h {
                dead = Some((why, since.elapsed(), snap));
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (why, after, snap) = dead.expect("a parked tile is called dead");
        assert!(after < Duration::from_secs(1), "dead only after {after:?}");
        assert!(why.contains("heartbeat"), "{why}");
        let metrics = &snap.tile("sleepy").unwrap().metrics;
        assert_eq!(
            metrics.state,
            Some(TileState::Running),
            "state still says running"
        );
        assert!(snap.taken_ns - metrics.heartbeat_ns > HEARTBEAT_TIMEOUT.as_nanos() as u64);

        park.store(false, Ordering::Release);
        wait_until("the tile to beat again", DEADLINE, || {
            health(&ro, "sleepy").0 == TileHealth::Running
        });
        m.request_stop();
        h.join().unwrap();
    });
    assert_eq!(health(&ro, "sleepy").0, TileHealth::Halted);
}

/// Clears a park flag when dropped, so a failed assertion frees the tile.
struct UnparkOnDrop(Arc<AtomicBool>);

impl Drop for UnparkOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Kills and reaps the child when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_tile_process_is_dead_within_a_second() {
    let t = TestWs::new("monkill", 1 << 20);
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    // This test binary again, running only the child half below.
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_tile_process", "--ignored", "--nocapture"])
        .env(CHILD_ENV, t.ws.name())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let pid = child.0.id();
    wait_until("the child's tile to run", DEADLINE, || {
        let s = Snapshot::take(&ro);
        s.tile("victim")
            .is_some_and(|v| v.metrics.pid == pid && v.metrics.state == Some(TileState::Running))
            && health(&ro, "victim").0 == TileHealth::Running
    });

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let killed = Instant::now();
    let mut verdict = None;
    while killed.elapsed() < Duration::from_secs(2) {
        if let (TileHealth::Dead { why }, snap) = health(&ro, "victim") {
            verdict = Some((why, killed.elapsed(), snap));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (why, after, snap) = verdict.expect("a killed tile is called dead");
    assert!(after < Duration::from_secs(1), "dead only after {after:?}");
    assert!(why.contains(&format!("pid {pid} is gone")), "{why}");
    // What it left says it still runs, and its heartbeat no longer moves.
    let left = &snap.tile("victim").unwrap().metrics;
    assert_eq!(left.state, Some(TileState::Running));
    std::thread::sleep(Duration::from_millis(50));
    let later = Snapshot::take(&ro);
    assert_eq!(
        later.tile("victim").unwrap().metrics.heartbeat_ns,
        left.heartbeat_ns
    );
    let r = report(&later, None);
    assert_eq!(r.tile("victim").unwrap().health, "dead");
    assert!(render::table(&r).contains("dead: victim"));
}

/// The child half of [`a_killed_tile_process_is_dead_within_a_second`]:
/// runs a tile in the workspace the parent names until the parent kills
/// it (or 30 s pass, then it stops by itself).
#[test]
#[ignore = "runs as the child process of a_killed_tile_process_is_dead_within_a_second"]
fn child_tile_process() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        eprintln!("child_tile_process: nothing to do outside its parent test");
        return;
    };
    let ws = Workspace::join(&name, Access::ReadWrite).unwrap();
    let mut stem = Stem::new(&ws, "victim", Parkable::default(), &[], &[], config()).unwrap();
    let m = stem.metrics();
    std::thread::scope(|s| {
        let h = s.spawn(|| stem.run());
        std::thread::sleep(Duration::from_secs(30));
        m.request_stop();
        h.join().unwrap();
    });
}

#[test]
fn broken_and_half_made_objects_are_problems_not_panics() {
    let t = TestWs::new("monbad", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let _stem = Stem::new(
        &t.ws,
        "ok",
        Drain::new(Discard::new(), MTU),
        &[(&a, 0)],
        &[],
        config(),
    )
    .unwrap();
    // A tile caught between allocating its metrics and formatting them.
    t.ws.alloc_named("half.tm", TileMetrics::ALIGN, TileMetrics::footprint(), 0)
        .unwrap();
    // Garbage where a tile's metrics and a link's mcache should be.
    for name in ["junk.tm", "junk.mc"] {
        let g = t.ws.alloc_named(name, 128, 4096, 0).unwrap();
        let mem = t.ws.region(g, 4096).unwrap();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        store_bytes(mem.atomic_bytes(0, 4096).unwrap(), &garbage);
    }
    // A link missing a consumer's fseq.
    let _b = t.link("b", 64, MTU, &[Reliable]);
    t.ws.free_named("b.fs0").unwrap();

    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    let s = Snapshot::take(&ro);
    let objects: Vec<&str> = s.problems.iter().map(|p| p.object.as_str()).collect();
    for expected in ["half.tm", "junk.tm", "junk", "b"] {
        assert!(
            objects.contains(&expected),
            "no problem for {expected}: {:?}",
            s.problems
        );
    }
    let half = s.problems.iter().find(|p| p.object == "half.tm").unwrap();
    assert!(half.why.contains("magic is zero"), "{}", half.why);
    assert_eq!(s.tiles.len(), 1, "only the good tile");
    let r = report(&s, None);
    assert_eq!(r.tile("ok").unwrap().health, "booting");
    assert!(r.link("a").is_some() && r.link("b").is_none());
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), s.problems.len());
    assert!(render::table(&r).contains("problem: half.tm"));
    assert!(render::prometheus(&r).contains("tilewire_monitor_problems{workspace="));
}

/// A tile with one output and nothing to publish.
#[derive(Debug, Default)]
struct Quiet;

impl Tile for Quiet {
    fn kind(&self) -> &str {
        "quiet"
    }
}

#[test]
fn a_consumer_progress_past_its_producer_is_shown_corrupt_not_as_a_figure() {
    let t = TestWs::new("moncorrupt", 1 << 22);
    let a = t.link("a", DEPTH, MTU, &[Reliable]);
    let mut stem = Stem::new(&t.ws, "src", Quiet, &[], &[&a], config()).unwrap();
    // Something writes the consumer's progress far past anything published.
    a.fseqs()[0].update(5_000_000);
    // The producer reads it at its next credit refresh (housekeeping), and
    // the tile writes what it found into its metrics.
    stem.turn();
    let deadline = Instant::now() + DEADLINE;
    while stem.metrics().snapshot().corrupt.is_none() && Instant::now() < deadline {
        stem.turn();
    }
    let c = stem
        .metrics()
        .snapshot()
        .corrupt
        .expect("the tile saw the corrupt word");
    assert_eq!((c.output, c.what.consumer, c.what.found), (0, 0, 5_000_000));
    assert_eq!(
        stem.outputs()[0].credits(),
        0,
        "no credits on a corrupt word"
    );
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    let snap = Snapshot::take(&ro);
    let p = snap
        .problems
        .iter()
        .find(|p| p.object == "link a")
        .expect("a problem on link a");
    assert!(
        p.why
            .starts_with("CORRUPT: consumer 0's progress read 5000000 by tile src"),
        "{}",
        p.why
    );
    let table = render::table(&report(&snap, None));
    assert!(table.contains("CORRUPT"), "{table}");
}

#[test]
fn implausible_fseq_words_are_corrupt_in_the_report_never_figures() {
    use tilewire_tile::link::fseq::DIAG_OVRNP_FRAGS;
    let t = TestWs::new("monimplaus", 1 << 22);
    let a = t.link("a", DEPTH, MTU, &[Reliable, Unreliable]);
    send_some(&a, 100);
    // A stray write: the reliable consumer's progress far behind anything
    // the producer could have waited for; the unreliable one's loss count
    // beyond all the link ever published.
    a.fseqs()[0].update(100u64.wrapping_sub(3_017_087_073));
    a.fseqs()[1].diag_add(DIAG_OVRNP_FRAGS, 4_951_904_602_875_228_160);
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    let r = report(&Snapshot::take(&ro), None);
    let link = r.link("a").unwrap();
    assert!(
        link.consumers[0].corrupt[0].starts_with("lag ")
            && link.consumers[0].corrupt[0].contains("more than the link's depth 256"),
        "{:?}",
        link.consumers[0].corrupt
    );
    assert!(
        link.consumers[1].corrupt[0].starts_with("frags lost 4951904602875228160 are more than"),
        "{:?}",
        link.consumers[1].corrupt
    );
    let problems: Vec<&str> = r.problems.iter().map(|p| p.object.as_str()).collect();
    assert!(problems.contains(&"link a consumer 0") && problems.contains(&"link a consumer 1"));
    // The figures say CORRUPT; only the problem lines name the values seen.
    let table = render::table(&r);
    let figures: String = table
        .lines()
        .filter(|l| !l.starts_with("problem:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!figures.contains("4951904602875228160"), "{table}");
    assert!(!figures.contains("3.02G"), "{table}");
    // Rate, lag and loss of each of the two consumers.
    assert_eq!(figures.matches("CORRUPT").count(), 6, "{table}");
    let prom = render::prometheus(&r);
    assert!(!prom.contains("4951904602875228160"), "{prom}");
}

/// Publishes `n` small frags on `link` (its consumers read none).
fn send_some(link: &tilewire_tile::link::Link<'_>, n: u64) {
    let mut tx = LinkTx::new(link);
    for i in 0..n {
        let b = i.to_le_bytes();
        tx.send(&[PktInfo::new(&b)], true).unwrap();
    }
}
