//! The run loop: tiles on threads chained by links, back-pressure, filters,
//! stopping with packets in hand, restarts, and the metrics a monitor sees.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{payload, send_all, wait_until, TestWs};
use tilewire_aio::{Aio, PktInfo, PktMeta, SendError};
use tilewire_shmem::load_bytes;
use tilewire_tile::hist::Hist;
use tilewire_tile::link::frag::{FragMeta, CTL_PKT};
use tilewire_tile::link::fseq::{DIAG_FILT_CNT, DIAG_PUB_CNT};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::{Link, Reliability::*};
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::metrics::{TileMetricsHandle, TileState};
use tilewire_tile::stem::{
    latency_name, Filter, Outputs, Stem, StemConfig, Tile, TileError, FRAG_BATCH,
};

const MTU: usize = 1232;
const DEADLINE: Duration = Duration::from_secs(20);

/// Copies each frag to output 0, with the same signature and origin time.
#[derive(Debug, Default)]
struct Forward {
    buf: Vec<u8>,
}

impl Tile for Forward {
    fn kind(&self) -> &str {
        "forward"
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.buf.resize(meta.sz as usize, 0);
        load_bytes(&mut self.buf, payload);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        out.publish(0, &self.buf, meta.sig, CTL_PKT, meta.tsorig)
            .expect("the loop only reads input with a burst of credits");
    }
}

/// What a [`Recorder`] was given, shared with the test thread.
#[derive(Debug, Default)]
struct Record {
    pkts: Mutex<Vec<(Vec<u8>, u64)>>,
    count: AtomicUsize,
    /// While set, every send is refused with `Again` at index 0.
    blocked: AtomicBool,
}

/// Packets whose signature has this bit are refused by a [`Recorder`].
const REFUSE: u64 = 1 << 63;

/// A downstream aio that keeps everything, refuses packets whose signature
/// has the [`REFUSE`] bit as `Inval`, and answers `Again` while blocked.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Record>);

impl Aio for Recorder {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        if self.0.blocked.load(Ordering::Acquire) {
            return Err(SendError::again(0));
        }
        let mut pkts = self.0.pkts.lock().unwrap();
        for (i, p) in batch.iter().enumerate() {
            if p.meta.user & REFUSE != 0 {
                self.0.count.store(pkts.len(), Ordering::Release);
                return Err(SendError::inval(i));
            }
            pkts.push((p.buf.to_vec(), p.meta.user));
        }
        self.0.count.store(pkts.len(), Ordering::Release);
        Ok(())
    }
}

fn config() -> StemConfig {
    StemConfig {
        lazy: 256,
        stop_grace: Duration::from_millis(200),
    }
}

/// A drain tile named "drain" from link `a` (consumer 0) into `rec`.
fn drain_stem<'w>(t: &'w TestWs, a: &Link<'w>, rec: &Recorder) -> Stem<'w, Drain<Recorder>> {
    Stem::new(
        &t.ws,
        "drain",
        Drain::new(rec.clone(), MTU),
        &[(a, 0)],
        &[],
        config(),
    )
    .unwrap()
}

/// Every packet `first..first+n` arrived once, in order, byte for byte.
fn check_records(rec: &Record, first: u64, n: u64) {
    let pkts = rec.pkts.lock().unwrap();
    assert_eq!(pkts.len() as u64, n, "packets recorded");
    let mut want = Vec::new();
    for (i, (bytes, user)) in pkts.iter().enumerate() {
        let seq = first + i as u64;
        payload(seq, MTU, &mut want);
        assert_eq!(*user, seq, "packet {i} out of order");
        assert_eq!(bytes, &want, "payload of packet {seq}");
    }
}

fn stop(m: TileMetricsHandle<'_>) {
    m.request_stop();
}

/// Asks tiles to stop when dropped: a failing assertion on the test thread
/// must not leave tile threads spinning (the scope would wait for them
/// forever).
struct StopOnDrop<'w>(Vec<TileMetricsHandle<'w>>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for m in &self.0 {
            m.request_stop();
        }
    }
}

#[test]
fn two_tiles_on_threads_deliver_every_byte_in_order() {
    let t = TestWs::new("stem", 1 << 24);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let rec = Recorder::default();
    let mut fwd = Stem::new(
        &t.ws,
        "fwd",
        Forward::default(),
        &[(&a, 0)],
        &[&b],
        config(),
    )
    .unwrap();
    let mut drain = drain_stem(&t, &b, &rec);
    let (mf, md) = (fwd.metrics(), drain.metrics());
    let n = 20_000;
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![mf, md]);
        let hf = s.spawn(|| fwd.run());
        let hd = s.spawn(|| drain.run());
        send_all(&mut LinkTx::new(&a), 0, n, MTU);
        wait_until("every packet at the recorder", || {
            rec.0.count.load(Ordering::Acquire) as u64 == n
        });
        stop(mf);
        stop(md);
        assert_eq!(hf.join().unwrap().pending, 0);
        assert_eq!(hd.join().unwrap().pending, 0);
    });
    check_records(&rec.0, 0, n);

    // What a monitor sees.
    for m in [mf, md] {
        let s = m.snapshot();
        assert_eq!(s.state, Some(TileState::Halted));
        assert_eq!(s.pid, std::process::id());
        assert!(s.heartbeat_ns > 0 && s.housekeeping > 0 && s.loops >= n / FRAG_BATCH);
    }
    let counters = md.snapshot().counters;
    assert_eq!(counters[0], ("sent".to_string(), n));
    assert_eq!(counters[3], ("inval".to_string(), 0));
    assert_eq!(a.fseqs()[0].diag(DIAG_PUB_CNT), n);
    assert_eq!(b.fseqs()[0].diag(DIAG_PUB_CNT), n);
    // One latency sample per frag consumed, on each tile's input.
    for tile in ["fwd", "drain"] {
        let at = t.ws.lookup(&latency_name(tile, 0)).unwrap();
        let h = Hist::join_reader(t.ws.region(at.gaddr, at.size as usize).unwrap()).unwrap();
        assert_eq!(h.snapshot().count(), n, "{tile} latency samples");
    }
    // The drain's input latency is tspub - tsorig of link b: the time from
    // the send into link a to the forward tile's publish, well under the
    // test's length.
    let at = t.ws.lookup(&latency_name("drain", 0)).unwrap();
    let h = Hist::join_reader(t.ws.region(at.gaddr, at.size as usize).unwrap()).unwrap();
    assert!(h.snapshot().percentile(99.0) < DEADLINE.as_nanos() as u64);
}

#[test]
fn backpressure_stalls_the_tile_and_reaches_the_sender() {
    let t = TestWs::new("stembp", 1 << 22);
    let a = t.link("a", 16, MTU, &[Reliable]);
    // Nobody reads b: the forward tile can publish 8 frags, then stalls.
    let b = t.link("b", 8, MTU, &[Reliable]);
    let mut fwd = Stem::new(
        &t.ws,
        "fwd",
        Forward::default(),
        &[(&a, 0)],
        &[&b],
        config(),
    )
    .unwrap();
    let mf = fwd.metrics();
    let mut tx = LinkTx::new(&a);
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![mf]);
        let h = s.spawn(|| fwd.run());
        // Offer packets until the link pushes back for good: 8 went to b,
        // 16 fill a.
        let mut buf = Vec::new();
        let mut sent = 0u64;
        let deadline = Instant::now() + DEADLINE;
        while sent < 24 {
            assert!(Instant::now() < deadline, "only {sent} packets went in");
            payload(sent, MTU, &mut buf);
            if tx.send(&[PktInfo::new(&buf)], true).is_ok() {
                sent += 1;
            }
        }
        wait_until("back-pressure in the metrics", || {
            mf.snapshot().backpressure >= 1
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            tx.send(&[PktInfo::new(&buf)], true),
            Err(SendError::again(0)),
            "a is full"
        );
        stop(mf);
        h.join().unwrap();
    });
    let s = mf.snapshot();
    assert_eq!(s.backpressure, 1, "one unbroken episode");
    assert_eq!(s.out_backpressure, vec![1]);
    assert!(
        s.backpressure_ns >= 20_000_000,
        "episode lasted {} ns",
        s.backpressure_ns
    );
    assert_eq!(a.fseqs()[0].diag(DIAG_PUB_CNT), 8, "read only what b took");
    assert_eq!(b.producer().seq(), 8);
    assert!(tx.again_count() >= 1);
}

/// Skips odd signatures; retries each multiple of 3 once before taking it.
#[derive(Debug, Default)]
struct Picky {
    fwd: Forward,
    retried: Vec<u64>,
}

impl Tile for Picky {
    fn kind(&self) -> &str {
        "picky"
    }
    fn counters(&self) -> &'static [&'static str] {
        &["retried"]
    }
    fn before_frag(&mut self, _: usize, _seq: u64, sig: u64) -> Filter {
        if sig % 2 == 1 {
            Filter::Skip
        } else if sig.is_multiple_of(3) && !self.retried.contains(&sig) {
            self.retried.push(sig);
            Filter::Retry
        } else {
            Filter::Process
        }
    }
    fn during_frag(&mut self, i: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.fwd.during_frag(i, meta, payload);
    }
    fn after_frag(&mut self, i: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        self.fwd.after_frag(i, meta, out);
    }
    fn metrics_write(&mut self, c: &mut [u64]) {
        c[0] = self.retried.len() as u64;
    }
}

#[test]
fn filters_skip_and_retry() {
    let t = TestWs::new("stemflt", 1 << 22);
    let a = t.link("a", 256, MTU, &[Reliable]);
    let b = t.link("b", 256, MTU, &[Reliable]);
    let mut picky = Stem::new(
        &t.ws,
        "picky",
        Picky::default(),
        &[(&a, 0)],
        &[&b],
        config(),
    )
    .unwrap();
    let mp = picky.metrics();
    let n = 200;
    send_all(&mut LinkTx::new(&a), 0, n, MTU);
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![mp]);
        let h = s.spawn(|| picky.run());
        wait_until("the input read", || a.fseqs()[0].query() == n);
        stop(mp);
        h.join().unwrap();
    });
    let mut rx = b.consumer(0).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; MTU];
    let mut want = Vec::new();
    while let tilewire_tile::link::Poll::Frag(m, ()) = rx.poll_copy(&mut buf) {
        payload(m.sig, MTU, &mut want);
        assert_eq!(&buf[..m.sz as usize], &want[..], "payload of {}", m.sig);
        got.push(m.sig);
    }
    assert_eq!(got, (0..n).filter(|s| s % 2 == 0).collect::<Vec<_>>());
    let fseq = &a.fseqs()[0];
    assert_eq!(fseq.diag(DIAG_FILT_CNT), n / 2);
    assert_eq!(fseq.diag(DIAG_PUB_CNT), n / 2);
    let retried = (0..n).filter(|s| s % 6 == 0).count() as u64;
    assert_eq!(mp.snapshot().counters, vec![("retried".into(), retried)]);
}

#[test]
fn drain_drops_and_counts_what_the_downstream_refuses() {
    let t = TestWs::new("steminv", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let rec = Recorder::default();
    let mut drain = drain_stem(&t, &a, &rec);
    let md = drain.metrics();
    let mut tx = LinkTx::new(&a);
    let bytes = [1u8, 2, 3];
    let batch: Vec<PktInfo<'_>> = (0..10u64)
        .map(|i| {
            let user = if i == 3 || i == 7 { i | REFUSE } else { i };
            PktInfo::new(&bytes).with_meta(PktMeta { addr: None, user })
        })
        .collect();
    tx.send(&batch, true).unwrap();
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| drain.run());
        wait_until("the input read", || a.fseqs()[0].query() == 10);
        stop(md);
        assert_eq!(h.join().unwrap().pending, 0);
    });
    let users: Vec<u64> = rec.0.pkts.lock().unwrap().iter().map(|p| p.1).collect();
    assert_eq!(users, vec![0, 1, 2, 4, 5, 6, 8, 9]);
    let c = md.snapshot().counters;
    assert_eq!(c[0], ("sent".into(), 8));
    assert_eq!(c[3], ("inval".into(), 2));
}

#[test]
fn stopping_waits_for_pending_packets_and_reports_those_it_could_not_pass_on() {
    let t = TestWs::new("stempend", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let rec = Recorder::default();
    rec.0.blocked.store(true, Ordering::Release);
    let mut drain = drain_stem(&t, &a, &rec);
    let md = drain.metrics();
    send_all(&mut LinkTx::new(&a), 0, 10, MTU);

    // The downstream never opens: the stop gives up after its grace and
    // says how many packets it still held.
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| drain.run());
        wait_until("the drain to hold all 10", || {
            a.fseqs()[0].diag(DIAG_PUB_CNT) == 10
        });
        stop(md);
        let end = h.join().unwrap();
        assert_eq!(end.pending, 10);
    });
    assert!(rec.0.pkts.lock().unwrap().is_empty());
    let again = md.snapshot().counters[2].1;
    assert!(again >= 1, "the refusals were counted");
    assert_eq!(
        a.fseqs()[0].query(),
        0,
        "frags the drain holds are not published as read"
    );

    // Run again; the downstream opens after the stop was asked: the drain
    // passes everything on before it halts.
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| drain.run());
        wait_until("the tile running", || {
            md.snapshot().state == Some(TileState::Running)
        });
        stop(md);
        rec.0.blocked.store(false, Ordering::Release);
        assert_eq!(h.join().unwrap().pending, 0);
    });
    check_records(&rec.0, 0, 10);
}

#[test]
fn a_restarted_tile_continues_exactly_where_the_stopped_one_left_off() {
    let t = TestWs::new("stemre", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let rec = Recorder::default();
    let mut tx = LinkTx::new(&a);
    let mut housekeeping = 0;
    for round in 0..3u64 {
        let mut drain = drain_stem(&t, &a, &rec);
        let md = drain.metrics();
        std::thread::scope(|s| {
            let _guard = StopOnDrop(vec![md]);
            let h = s.spawn(|| drain.run());
            send_all(&mut tx, round * 300, 300, MTU);
            wait_until("the round delivered", || {
                rec.0.count.load(Ordering::Acquire) as u64 == (round + 1) * 300
            });
            stop(md);
            h.join().unwrap();
        });
        // The same metrics object, still counting.
        let hk = md.snapshot().housekeeping;
        assert!(hk > housekeeping);
        housekeeping = hk;
    }
    check_records(&rec.0, 0, 900);
    assert_eq!(a.fseqs()[0].query(), 900, "exact progress after each stop");
}

#[test]
fn setup_errors_are_clear() {
    let t = TestWs::new("stemerr", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    Stem::new(
        &t.ws,
        "fwd",
        Forward::default(),
        &[(&a, 0)],
        &[&b],
        config(),
    )
    .unwrap();
    // The same tile name with other links.
    let e = Stem::new(
        &t.ws,
        "fwd",
        Forward::default(),
        &[(&b, 0)],
        &[&a],
        config(),
    )
    .unwrap_err();
    assert!(matches!(e, TileError::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("another layout"), "{e}");
    // A consumer the link does not have.
    let e = Stem::new(
        &t.ws,
        "fwd2",
        Forward::default(),
        &[(&a, 1)],
        &[&b],
        config(),
    )
    .unwrap_err();
    assert!(matches!(e, TileError::Link { .. }), "{e}");
    // Bad and over-long names.
    let e = Stem::new(&t.ws, "-x", Forward::default(), &[(&a, 0)], &[&b], config()).unwrap_err();
    assert!(matches!(e, TileError::Name { .. }), "{e}");
    let long = "t".repeat(35);
    let e = Stem::new(
        &t.ws,
        &long,
        Forward::default(),
        &[(&a, 0)],
        &[&b],
        config(),
    )
    .unwrap_err();
    assert!(matches!(e, TileError::Name { .. }), "{e}");
    // Nothing was left behind by the failures.
    assert!(t.ws.lookup("fwd2.tm").is_none());
}

#[test]
fn packets_a_tile_still_held_go_to_its_successor() {
    let t = TestWs::new("stemheld", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    send_all(&mut LinkTx::new(&a), 0, 40, MTU);
    // The first drain never gets its packets out (as if it died holding
    // them): it gives up at its stop.
    let stuck = Recorder::default();
    stuck.0.blocked.store(true, Ordering::Release);
    let mut first = drain_stem(&t, &a, &stuck);
    let md = first.metrics();
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| first.run());
        wait_until("the drain to take all 40", || {
            a.fseqs()[0].diag(DIAG_PUB_CNT) == 40
        });
        stop(md);
        assert_eq!(h.join().unwrap().pending, 40);
    });
    assert_eq!(a.fseqs()[0].query(), 0);
    drop(first);
    // Its successor reads them again and passes every one on.
    let rec = Recorder::default();
    let mut second = drain_stem(&t, &a, &rec);
    std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| second.run());
        wait_until("the successor to pass all 40 on", || {
            rec.0.count.load(Ordering::Acquire) == 40
        });
        stop(md);
        assert_eq!(h.join().unwrap().pending, 0);
    });
    check_records(&rec.0, 0, 40);
    assert_eq!(a.fseqs()[0].query(), 40);
}

/// Counts its `after_credit` calls and forwards every frag it reads.
#[derive(Debug, Default)]
struct CountingForward {
    inner: Forward,
    after_credit: u64,
    frags: u64,
}

impl Tile for CountingForward {
    fn kind(&self) -> &str {
        "counting-forward"
    }
    fn after_credit(&mut self, _: &mut Outputs<'_, '_>) {
        self.after_credit += 1;
    }
    fn during_frag(&mut self, i: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.inner.during_frag(i, meta, payload);
    }
    fn after_frag(&mut self, i: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        self.frags += 1;
        self.inner.after_frag(i, meta, out);
    }
}

#[test]
fn an_iteration_takes_a_batch_of_frags_and_never_more_than_the_outputs_credits() {
    let t = TestWs::new("stembatch", 1 << 22);
    let a = t.link("a", 1024, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    send_all(&mut LinkTx::new(&a), 0, 512, MTU);
    // 24 of b's 64 frags taken by a reader that does not move on: the
    // forwarder's producer has 40 credits.
    {
        let mut p = b.producer();
        for _ in 0..24 {
            p.publish(b"x", 0, CTL_PKT, 0).unwrap();
        }
    }
    let mut fwd = Stem::new(
        &t.ws,
        "fwd",
        CountingForward::default(),
        &[(&a, 0)],
        &[&b],
        config(),
    )
    .unwrap();
    // Turns until the forwarder is back-pressured: every frag it could
    // pass on (40), in batches, each iteration's bookkeeping once.
    let deadline = Instant::now() + DEADLINE;
    while fwd.tile().frags < 40 && Instant::now() < deadline {
        fwd.turn();
    }
    for _ in 0..8 {
        fwd.turn();
    }
    let tile = fwd.tile();
    assert_eq!(tile.frags, 40, "it read exactly what b had credits for");
    assert!(
        tile.after_credit * 8 <= tile.frags,
        "{} iterations with credits for {} frags: the loop did not batch",
        tile.after_credit,
        tile.frags
    );
    assert_eq!(
        b.producer().seq(),
        64,
        "b holds its 24 and the 40 passed on"
    );
}

/// Spends `per_frag` of busy time on each frag it reads.
#[derive(Debug)]
struct Slow {
    per_frag: Duration,
}

impl Tile for Slow {
    fn kind(&self) -> &str {
        "slow"
    }
    fn after_frag(&mut self, _: usize, _: &FragMeta, _: &mut Outputs<'_, '_>) {
        let until = Instant::now() + self.per_frag;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn a_tiles_work_time_counts_its_busy_iterations_not_its_idle_ones() {
    let t = TestWs::new("stemwork", 1 << 22);
    let a = t.link("a", 256, MTU, &[Reliable]);
    let per_frag = Duration::from_micros(200);
    let mut slow = Stem::new(&t.ws, "slow", Slow { per_frag }, &[(&a, 0)], &[], config()).unwrap();
    let m = slow.metrics();
    // Idle first: turns that find nothing for a while are not work.
    let idle_until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < idle_until {
        slow.turn();
    }
    slow.turn();
    let n = 50;
    send_all(&mut LinkTx::new(&a), 0, n, MTU);
    let deadline = Instant::now() + DEADLINE;
    while a.fseqs()[0].query() < n && Instant::now() < deadline {
        slow.turn();
    }
    stop(m);
    while !matches!(slow.turn(), tilewire_tile::stem::Turn::Halted(_)) {}
    let work = Duration::from_nanos(m.snapshot().work_ns);
    let busy = per_frag * n as u32;
    assert!(
        work >= busy.mul_f64(0.9),
        "work {work:?} for {n} frags of {per_frag:?} each"
    );
    // The 50 ms of idle turns are not in it (a loose bound: a slow,
    // shared machine may stretch a busy iteration).
    assert!(
        work < busy + Duration::from_millis(40),
        "work {work:?}: idle time counted as work"
    );
}
