//! Tiles across processes: the run loop drives a generator tile here and a
//! drain tile in a child process (`tile-peer`), chained by a link in a
//! workspace both join by name; the child checks every byte. Everything a
//! test says about the child after the fact it reads the way a monitor
//! would: from the workspace, through a separate read-only join (tile
//! metrics, latency histogram, the link's fseq and mcache).
//!
//! A drain killed with SIGKILL leaves its metrics saying `Running` with a
//! heartbeat that no longer moves (how a monitor tells it is dead); over a
//! reliable link the generator then sits in one back-pressure episode until
//! a new process takes the tile's place and resumes from the fseq, over an
//! unreliable one the generator never notices and the successor counts the
//! overrun. What the killed drain had taken off the link but not yet passed
//! downstream (at most one batch) was never counted in its published
//! progress, so over a reliable link its successor reads it again: nothing
//! is lost, a few frags may be passed on twice.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tilewire_shmem::clock::{mono_ns, mono_ts};
use tilewire_shmem::{Access, Workspace};
use tilewire_tests::{field, link_payload, ChildLines, KillOnDrop, TestWs};
use tilewire_tile::hist::Hist;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::fseq::{
    FseqHandle, DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS, DIAG_OVRNR_CNT, DIAG_PUB_CNT, DIAG_PUB_SZ,
};
use tilewire_tile::link::{Link, Reliability};
use tilewire_tile::stem::drain::BATCH_MAX;
use tilewire_tile::stem::metrics::{TileMetrics, TileMetricsHandle, TileSnapshot, TileState};
use tilewire_tile::stem::{
    latency_name, metrics_name, Outputs, Stem, StemConfig, Tile, FRAG_BATCH,
};

const DEPTH: u64 = 256;
const MTU: usize = 1232;
/// The link between the generator and the child's drain.
const LINK: &str = "xp";
/// The generator tile (in this process).
const GEN: &str = "gen";
/// The drain tile (in the child).
const DRAIN: &str = "drain";
/// How long any one step may take (a join, a stream of frags, a stop).
const STEP: Duration = Duration::from_secs(10);
/// How long a monitor watches a dead tile.
const WATCH: Duration = Duration::from_millis(200);

/// Tiles spin on a core each; the tests of this file run one at a time so
/// that two generators and two drains do not share a small host's cores.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tile `tile`'s metrics in `ws` (read-only if `ws` was joined so).
fn tile_metrics<'w>(ws: &'w Workspace, tile: &str) -> TileMetricsHandle<'w> {
    let part = metrics_name(tile);
    let a = ws.lookup(&part).unwrap_or_else(|| panic!("no {part}"));
    TileMetrics::join(ws.region(a.gaddr, a.size as usize).unwrap()).unwrap()
}

/// What a monitor sees: the workspace joined read-only (it could not
/// corrupt anything if it tried).
struct Monitor {
    ws: Workspace,
}

impl Monitor {
    fn join(name: &str) -> Monitor {
        let ws = Workspace::join(name, Access::ReadOnly).unwrap();
        assert_eq!(ws.access(), Access::ReadOnly);
        Monitor { ws }
    }

    fn tile(&self, tile: &str) -> TileMetricsHandle<'_> {
        tile_metrics(&self.ws, tile)
    }

    fn link(&self) -> Link<'_> {
        Link::join(&self.ws, LINK).unwrap()
    }

    /// Samples in the latency histogram of `tile`'s input 0.
    fn latency_samples(&self, tile: &str) -> u64 {
        let a = self.ws.lookup(&latency_name(tile, 0)).unwrap();
        let mem = self.ws.region(a.gaddr, a.size as usize).unwrap();
        Hist::join_reader(mem).unwrap().snapshot().count()
    }
}

/// How far the generator may go, changed by the test while it runs.
#[derive(Debug)]
struct Throttle {
    /// Publish frags `0..limit`.
    limit: AtomicU64,
    /// Stay less than this many frags ahead of consumer 0's published
    /// progress (`u64::MAX`: no pacing; a reliable consumer paces anyway).
    lead: AtomicU64,
}

impl Throttle {
    fn new(limit: u64, lead: u64) -> Throttle {
        Throttle {
            limit: AtomicU64::new(limit),
            lead: AtomicU64::new(lead),
        }
    }

    fn set(&self, limit: u64, lead: u64) {
        // SYNC: Relaxed; the generator only needs to see the new values
        // eventually, and reads nothing else through them.
        self.lead.store(lead, Ordering::Relaxed);
        self.limit.store(limit, Ordering::Relaxed);
    }
}

/// A tile with no input: each `after_credit` publishes the next frag of
/// output 0, `link_payload(seq)` with sig = seq and tsorig = now, within
/// its [`Throttle`].
#[derive(Debug)]
struct Generator<'a, 'w> {
    throttle: &'a Throttle,
    progress: FseqHandle<'w>,
    published: u64,
    buf: Vec<u8>,
}

impl<'a, 'w> Generator<'a, 'w> {
    fn new(throttle: &'a Throttle, link: &Link<'w>) -> Generator<'a, 'w> {
        Generator {
            throttle,
            progress: link.fseqs()[0],
            published: 0,
            buf: Vec::with_capacity(MTU),
        }
    }
}

impl Tile for Generator<'_, '_> {
    fn kind(&self) -> &str {
        "generator"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["published"]
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        let seq = out.producer(0).seq();
        // SYNC: Relaxed; see Throttle::set.
        let limit = self.throttle.limit.load(Ordering::Relaxed);
        let lead = self.throttle.lead.load(Ordering::Relaxed);
        if seq >= limit || seq.saturating_sub(self.progress.query()) >= lead {
            // Idle: leave the core to the tile under test.
            std::thread::sleep(Duration::from_micros(20));
            return;
        }
        link_payload(seq, MTU, &mut self.buf);
        out.publish(0, &self.buf, seq, CTL_PKT, mono_ts())
            .expect("the loop calls after_credit only with a burst of credits");
        self.published += 1;
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        counters[0] = self.published;
    }
}

fn gen_config() -> StemConfig {
    StemConfig {
        lazy: 256,
        stop_grace: Duration::from_millis(200),
    }
}

/// Asks tiles to stop when dropped: a failing assertion must not leave the
/// generator's thread spinning (the scope would wait for it forever).
struct StopOnDrop<'w>(TileMetricsHandle<'w>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.request_stop();
    }
}

/// What a `progress` or `done` line of the peer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// First seq checked.
    first: u64,
    /// One past the last seq checked.
    seq: u64,
    /// Packets checked.
    frags: u64,
    /// Seqs jumped over.
    skipped: u64,
}

/// The counts of a `progress` line; fails the test on a line that reports
/// a bad packet or an error.
fn progress(line: &str) -> Option<Counts> {
    assert!(
        !line.starts_with("bad") && !line.starts_with("error"),
        "peer: {line}"
    );
    line.starts_with("progress").then(|| counts(line))
}

fn counts(line: &str) -> Counts {
    let get = |k| field(line, k).unwrap_or_else(|| panic!("no {k} in {line:?}"));
    Counts {
        first: get("first"),
        seq: get("seq"),
        frags: get("frags"),
        skipped: get("skipped"),
    }
}

/// A running `tile-peer`: drain tile [`DRAIN`] on consumer 0 of [`LINK`].
struct Peer {
    child: KillOnDrop,
    lines: ChildLines,
    /// The seq it said its input starts at (the fseq's progress).
    start: u64,
    pid: u32,
    /// The newest progress it reported.
    last: Option<Counts>,
}

impl Peer {
    /// Starts a peer and waits until its tile is set up.
    fn spawn(ws: &Workspace, extra: &[&str]) -> Peer {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tile-peer"))
            .args([ws.name(), LINK, "0", DRAIN])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tile-peer");
        let stdout = c.stdout.take().unwrap();
        let pid = c.id();
        let child = KillOnDrop(c);
        let mut lines = ChildLines::new(stdout);
        let ready = lines.wait_until(STEP, |l| l.starts_with("ready") || l.starts_with("error"));
        let start = field(&ready, "seq").unwrap_or_else(|| panic!("peer: {ready}"));
        assert_eq!(field(&ready, "pid"), Some(u64::from(pid)), "{ready}");
        Peer {
            child,
            lines,
            start,
            pid,
            last: None,
        }
    }

    /// Takes the lines that have arrived; returns the newest progress.
    fn poll(&mut self) -> Option<Counts> {
        while let Some(l) = self.lines.try_next() {
            self.last = progress(&l).or(self.last);
        }
        self.last
    }

    /// Waits until `done()` holds, checking the peer's lines meanwhile.
    fn wait(&mut self, what: &str, mut done: impl FnMut(&mut Peer) -> bool) {
        let deadline = Instant::now() + STEP;
        loop {
            self.poll();
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; peer at {:?}",
                self.last
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Asks the peer's tile to stop through its metrics (`ws` joined
    /// read-write), waits for its `done` line and a clean exit, and returns
    /// the counts and what the drain still held.
    fn stop(mut self, ws: &Workspace) -> (Counts, u64) {
        tile_metrics(ws, DRAIN).request_stop();
        let done = self
            .lines
            .wait_until(STEP, |l| progress(l).is_none() && l.starts_with("done"));
        let status = self.child.0.wait().unwrap();
        assert!(status.success(), "peer exited with {status}: {done}");
        (counts(&done), field(&done, "pending").unwrap())
    }

    /// Kills the peer with SIGKILL, reaps it, and returns the last progress
    /// it printed.
    fn kill(mut self) -> Option<Counts> {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
        // What it wrote before dying is still in the pipe.
        for l in self.lines.rest(STEP) {
            self.last = progress(&l).or(self.last);
        }
        self.last
    }
}

/// Waits until `done()` holds, for at most [`STEP`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn counter(s: &TileSnapshot, name: &str) -> u64 {
    s.counters
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no counter {name} in {:?}", s.counters))
        .1
}

#[test]
fn a_drain_tile_in_a_child_process_checks_every_byte_and_reports_through_its_metrics() {
    const N: u64 = 20_000;
    let _serial = serial();
    let t = TestWs::new("txe", 8 << 20);
    let link = t.link(LINK, DEPTH, MTU, Reliability::Reliable);
    let mon = Monitor::join(t.ws.name());
    let throttle = Throttle::new(N, u64::MAX);
    let mut gen = Stem::new(
        &t.ws,
        GEN,
        Generator::new(&throttle, &link),
        &[],
        &[&link],
        gen_config(),
    )
    .unwrap();
    let mg = gen.metrics();
    let mut peer = Peer::spawn(&t.ws, &[]);
    assert_eq!(peer.start, 0);
    let peer_pid = peer.pid;
    let (mlink, drain) = (mon.link(), mon.tile(DRAIN));
    let fseq = mlink.fseqs()[0];

    let (done, pending) = std::thread::scope(|s| {
        let _guard = StopOnDrop(mg);
        let h = s.spawn(|| gen.run());
        peer.wait("every frag read", |_| fseq.query() == N);
        // The drain may still hold its last batch: a stop lets it pass
        // that on before it halts.
        let done = peer.stop(&t.ws);
        mg.request_stop();
        assert_eq!(h.join().unwrap().pending, 0);
        done
    });
    assert_eq!(
        done,
        Counts {
            first: 0,
            seq: N,
            frags: N,
            skipped: 0
        }
    );
    assert_eq!(pending, 0);

    // The link's counters agree.
    let bytes: u64 = (0..N)
        .map(|seq| {
            let mut buf = Vec::new();
            link_payload(seq, MTU, &mut buf);
            buf.len() as u64
        })
        .sum();
    assert_eq!(fseq.query(), N, "exact progress after the stop");
    assert_eq!(fseq.diag(DIAG_PUB_CNT), N);
    assert_eq!(fseq.diag(DIAG_PUB_SZ), bytes);
    assert_eq!(fseq.diag(DIAG_OVRNP_CNT) + fseq.diag(DIAG_OVRNR_CNT), 0);
    assert_eq!(mlink.mcache().seq_query(), N);

    // The child's tile, as a monitor sees it.
    let d = drain.snapshot();
    assert_eq!(drain.kind(), "drain");
    assert_eq!(drain.inputs(), vec![(LINK.to_string(), 0)]);
    assert_eq!(d.state, Some(TileState::Halted));
    assert_eq!(d.pid, peer_pid);
    assert!(d.heartbeat_ns > 0 && d.housekeeping > 0 && d.loops >= N / FRAG_BATCH);
    assert_eq!(counter(&d, "sent"), N);
    assert_eq!((counter(&d, "inval"), counter(&d, "again")), (0, 0));
    assert_eq!(mon.latency_samples(DRAIN), N);

    // And the generator's.
    let g = mon.tile(GEN).snapshot();
    assert_eq!(g.state, Some(TileState::Halted));
    assert_eq!(g.pid, std::process::id());
    assert_eq!(counter(&g, "published"), N);
    eprintln!(
        "tile end to end: {N} frags, {bytes} bytes; generator back-pressured {} times, {} us",
        g.backpressure,
        g.backpressure_ns / 1000
    );
}

#[test]
fn a_killed_reliable_drain_is_seen_dead_holds_the_generator_and_a_new_process_resumes() {
    const N: u64 = 5000;
    let _serial = serial();
    let t = TestWs::new("txr", 8 << 20);
    let link = t.link(LINK, DEPTH, MTU, Reliability::Reliable);
    let mon = Monitor::join(t.ws.name());
    let throttle = Throttle::new(N, u64::MAX);
    let mut gen = Stem::new(
        &t.ws,
        GEN,
        Generator::new(&throttle, &link),
        &[],
        &[&link],
        gen_config(),
    )
    .unwrap();
    let mg = gen.metrics();
    let mlink = mon.link();
    let fseq = mlink.fseqs()[0];

    std::thread::scope(|s| {
        let _guard = StopOnDrop(mg);
        let h = s.spawn(|| gen.run());

        // A slow drain (100 us a packet, so it always has a full batch in
        // hand), killed once it has gone round the ring twice; a
        // pid-derived pause spreads the kill over a batch.
        let mut peer = Peer::spawn(&t.ws, &["--slow-ns", "100000"]);
        assert_eq!(peer.start, 0);
        let dead_pid = peer.pid;
        peer.wait("two rings checked", |p| {
            p.last.is_some_and(|c| c.frags >= 2 * DEPTH)
        });
        std::thread::sleep(Duration::from_micros(
            u64::from(std::process::id()) * 7919 % 6400,
        ));
        let reported = peer.kill().unwrap();
        assert_eq!((reported.first, reported.skipped), (0, 0));

        // (i) Its metrics still say Running, but the heartbeat stands
        // still: that is how a monitor knows it is dead.
        let drain = mon.tile(DRAIN);
        let genm = mon.tile(GEN);
        // (ii) The generator runs into the dead drain's progress: exactly
        // a ring ahead of it, then back-pressure.
        wait_until("the generator stalled a ring ahead", || {
            mlink.mcache().seq_query().saturating_sub(fseq.query()) == DEPTH
        });
        std::thread::sleep(Duration::from_millis(20));
        let (at_kill, read) = (fseq.query(), fseq.diag(DIAG_PUB_CNT));
        let (d1, g1) = (drain.snapshot(), genm.snapshot());
        std::thread::sleep(WATCH);
        let (d2, g2) = (drain.snapshot(), genm.snapshot());
        let age = mono_ns() - d2.heartbeat_ns;

        assert_eq!(d2.state, Some(TileState::Running), "killed, not halted");
        assert_eq!(d2.pid, dead_pid);
        assert_eq!(d2.heartbeat_ns, d1.heartbeat_ns, "a dead tile's heartbeat");
        assert_eq!(d2.housekeeping, d1.housekeeping);
        assert!(age > 100_000_000, "heartbeat only {age} ns old");

        assert_eq!(g2.state, Some(TileState::Running));
        assert!(g2.heartbeat_ns > g1.heartbeat_ns, "the generator is alive");
        assert!(g2.backpressure >= 1);
        assert_eq!(g2.backpressure, g1.backpressure, "one unbroken episode");
        assert_eq!(g2.out_backpressure, vec![g2.backpressure]);
        assert_eq!(
            g2.backpressure_ns, g1.backpressure_ns,
            "the episode has not ended (only ended ones are timed)"
        );
        let head = mlink.mcache().seq_query();
        assert_eq!(head - fseq.query(), DEPTH, "no credits: a ring ahead");
        assert_eq!(counter(&g2, "published"), head);
        assert_eq!(fseq.query(), at_kill, "a dead drain makes no progress");
        assert_eq!(fseq.diag(DIAG_PUB_CNT), read);

        // A new process takes the tile's name and consumer: it joins the
        // same metrics and resumes at the fseq's progress.
        let mut peer = Peer::spawn(&t.ws, &[]);
        assert_eq!(peer.start, at_kill, "resumes at the published progress");
        assert_eq!(drain.snapshot().pid, peer.pid, "the same metrics object");
        peer.wait("the rest read", |_| fseq.query() == N);
        let (done, pending) = peer.stop(&t.ws);
        assert_eq!(pending, 0);
        assert_eq!(
            done,
            Counts {
                first: at_kill,
                seq: N,
                frags: N - at_kill,
                skipped: 0
            },
            "every frag from the progress on, none skipped"
        );
        mg.request_stop();
        h.join().unwrap();
        let g3 = genm.snapshot();
        assert!(
            g3.backpressure_ns - g2.backpressure_ns >= WATCH.as_nanos() as u64,
            "the episode ended and lasted at least the watch: {} ns",
            g3.backpressure_ns - g2.backpressure_ns
        );
        assert_eq!(counter(&g3, "published"), N);
        assert_eq!(drain.snapshot().state, Some(TileState::Halted));

        // Who checked what. The dead drain's downstream took [0, R). At
        // its last progress publish it had taken `read` frags off the link
        // and held at most a batch of them, so read - R <= a batch; since
        // that publish it may have read and passed on up to a publish
        // interval more (DEPTH / 8), so R may pass `read` by as much. Its
        // successor checked [at_kill, N). Progress never counts frags a
        // tile still holds (Tile::held), so at_kill <= R: the successor
        // re-reads what the dead drain held and perhaps a few it had
        // passed on, and nothing is lost.
        let r = reported.seq;
        assert!(
            read.saturating_sub(r) <= BATCH_MAX as u64 && r <= read + DEPTH / 8,
            "downstream had {r}, the last publish said the link gave {read}"
        );
        assert!(
            at_kill <= r,
            "progress {at_kill} counted frags the dead drain held (it passed on {r})"
        );
        assert!(
            read - at_kill <= BATCH_MAX as u64 + DEPTH / 8,
            "progress {at_kill} lags the {read} read by more than a batch and a publish interval"
        );
        let checked = |seq: u64| seq < r || (at_kill..N).contains(&seq);
        let missing: Vec<u64> = (0..N).filter(|&seq| !checked(seq)).collect();
        assert!(missing.is_empty(), "never checked: {missing:?}");
        let reread = r.saturating_sub(at_kill);
        eprintln!(
            "reliable drain killed: its downstream had {r} frags, the link gave it {read}, \
             progress said {at_kill}; successor re-read {reread}; generator stalled \
             at {head}, back-pressure episode {} ms",
            (g3.backpressure_ns - g1.backpressure_ns) / 1_000_000
        );
    });
}

#[test]
fn a_killed_unreliable_drain_never_holds_the_generator_and_its_successor_counts_the_overrun() {
    /// Frags published while the first drain lives and right after.
    const N1: u64 = 4000;
    /// Frags in all.
    const N: u64 = 6000;
    let _serial = serial();
    let t = TestWs::new("txu", 8 << 20);
    let link = t.link(LINK, DEPTH, MTU, Reliability::Unreliable);
    let mon = Monitor::join(t.ws.name());
    // Paced to the drain's progress, so a live drain is never lapped.
    let throttle = Throttle::new(N1, DEPTH / 2);
    let mut gen = Stem::new(
        &t.ws,
        GEN,
        Generator::new(&throttle, &link),
        &[],
        &[&link],
        gen_config(),
    )
    .unwrap();
    let mg = gen.metrics();
    let mlink = mon.link();
    let fseq = mlink.fseqs()[0];
    let genm = mon.tile(GEN);

    std::thread::scope(|s| {
        let _guard = StopOnDrop(mg);
        let h = s.spawn(|| gen.run());

        let mut peer = Peer::spawn(&t.ws, &["--slow-ns", "100000"]);
        peer.wait("two rings checked", |p| {
            p.last.is_some_and(|c| c.frags >= 2 * DEPTH)
        });
        let reported = peer.kill().unwrap();
        assert_eq!(reported.skipped, 0, "a paced drain is never lapped");
        let at_kill = fseq.query();
        assert_eq!(fseq.diag(DIAG_OVRNP_CNT) + fseq.diag(DIAG_OVRNR_CNT), 0);
        assert!(at_kill + 2 * DEPTH < N1, "dead at {at_kill}");

        // Unpaced, the generator runs on past the dead drain: nothing
        // holds it.
        throttle.set(N1, u64::MAX);
        wait_until("the generator past the dead drain", || {
            mlink.mcache().seq_query() == N1 && counter(&genm.snapshot(), "published") == N1
        });
        let g = genm.snapshot();
        assert_eq!((g.backpressure, g.backpressure_ns), (0, 0));
        assert_eq!(fseq.query(), at_kill, "a dead drain makes no progress");

        // A successor starts at the dead one's progress, finds it lapped,
        // resyncs and reads what is left on the ring.
        let mut peer = Peer::spawn(&t.ws, &[]);
        assert_eq!(peer.start, at_kill);
        peer.wait("the successor caught up", |_| fseq.query() == N1);
        let (overruns, lost) = (fseq.diag(DIAG_OVRNP_CNT), fseq.diag(DIAG_OVRNP_FRAGS));
        assert!(
            overruns >= 1 && lost > 0,
            "overruns {overruns}, lost {lost}"
        );
        assert!(
            at_kill + lost >= N1 - DEPTH,
            "resynced within the last ring: lost {lost} from {at_kill}"
        );

        // From then on, paced again, every frag arrives and checks out.
        throttle.set(N, DEPTH / 2);
        peer.wait("every later frag read", |_| fseq.query() == N);
        let (done, pending) = peer.stop(&t.ws);
        assert_eq!(pending, 0);
        assert_eq!(
            done,
            Counts {
                first: at_kill + lost,
                seq: N,
                frags: N - at_kill - lost,
                skipped: lost,
            },
            "the frags the link says were lost are the seqs the drain never saw"
        );
        assert_eq!(fseq.diag(DIAG_OVRNP_FRAGS), lost, "no overrun after");
        mg.request_stop();
        h.join().unwrap();
        let g = genm.snapshot();
        assert_eq!((g.backpressure, g.backpressure_ns), (0, 0));
        assert_eq!(counter(&g, "published"), N);
        eprintln!(
            "unreliable drain killed at {at_kill}; generator ran on to {N1}; successor \
             lost {lost} in {overruns} overrun(s), resynced to {} and checked {}",
            done.first, done.frags
        );
    });
}
