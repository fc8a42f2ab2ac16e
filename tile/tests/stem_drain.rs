//! Drain, then stop: a pipeline stopped in topological order (the source
//! plainly, then each tile with a drain once its upstream halted) loses
//! nothing in flight; a drain that cannot finish gives up after its grace
//! and says what it left; a drain reads only the inputs it was asked to;
//! a plain stop asked over a drain stops at once.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tiles::{Forward, Gen};
use common::{payload, send_all, wait_until, TestWs};
use tilewire_aio::{Aio, PktInfo, SendError};
use tilewire_shmem::load_bytes;
use tilewire_tile::link::frag::{FragMeta, CTL_PKT};
use tilewire_tile::link::fseq::DIAG_PUB_CNT;
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::{Link, Reliability::*};
use tilewire_tile::stem::drain::{Drain, BATCH_MAX};
use tilewire_tile::stem::metrics::{StopRequest, TileMetricsHandle, TileState};
use tilewire_tile::stem::{Filter, Outputs, RunEnd, Stem, StemConfig, Tile};

const MTU: usize = 1232;
const DEADLINE: Duration = Duration::from_secs(20);

fn config(stop_grace: Duration) -> StemConfig {
    StemConfig {
        lazy: 16,
        stop_grace,
    }
}

/// When a [`Batch`] passes on a batch that is not full.
#[derive(Debug, Clone, Copy)]
enum Flush {
    /// At the end of a burst (its input had nothing new).
    EndOfBurst,
    /// Only at housekeeping: a stopping tile is caught up on its input
    /// while it still holds frags.
    Housekeeping,
}

/// Holds frags until it has `k`, then passes them all on; a smaller batch
/// goes at `flush`. Says what it holds in `held` and `pending`.
#[derive(Debug)]
struct Batch {
    k: usize,
    flush: Flush,
    buf: Vec<u8>,
    batch: VecDeque<(Vec<u8>, u64, u32)>,
}

impl Batch {
    fn new(k: usize, flush: Flush) -> Batch {
        Batch {
            k,
            flush,
            buf: Vec::new(),
            batch: VecDeque::new(),
        }
    }

    /// Publishes what it holds, oldest first, while there are credits.
    fn pass_on(&mut self, out: &mut Outputs<'_, '_>) {
        while let Some((bytes, sig, tsorig)) = self.batch.front() {
            if out.publish(0, bytes, *sig, CTL_PKT, *tsorig).is_err() {
                return;
            }
            self.batch.pop_front();
        }
    }
}

impl Tile for Batch {
    fn kind(&self) -> &str {
        "batch"
    }
    fn burst(&self) -> u64 {
        self.k as u64
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.buf.resize(meta.sz as usize, 0);
        load_bytes(&mut self.buf, payload);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        self.batch
            .push_back((self.buf.clone(), meta.sig, meta.tsorig));
        if self.batch.len() >= self.k {
            self.pass_on(out);
        }
    }
    fn end_of_burst(&mut self, _: usize, out: &mut Outputs<'_, '_>) {
        if let Flush::EndOfBurst = self.flush {
            self.pass_on(out);
        }
    }
    fn housekeeping(&mut self, out: &mut Outputs<'_, '_>) {
        self.pass_on(out);
    }
    fn held(&self, _: usize) -> u64 {
        self.batch.len() as u64
    }
    fn pending(&self) -> usize {
        self.batch.len()
    }
}

/// Reads its input slowly (sleeps 1 ms a frag) and passes nothing on.
#[derive(Debug, Default)]
struct Slow {
    read: u64,
}

impl Tile for Slow {
    fn kind(&self) -> &str {
        "slow"
    }
    fn after_frag(&mut self, _: usize, _: &FragMeta, _: &mut Outputs<'_, '_>) {
        self.read += 1;
        std::thread::sleep(Duration::from_millis(1));
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

/// A downstream aio that keeps everything, and answers `Again` while
/// blocked.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Record>);

impl Recorder {
    fn count(&self) -> u64 {
        self.0.count.load(Ordering::Acquire) as u64
    }
    fn block(&self, blocked: bool) {
        self.0.blocked.store(blocked, Ordering::Release);
    }
}

impl Aio for Recorder {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        if self.0.blocked.load(Ordering::Acquire) {
            return Err(SendError::again(0));
        }
        let mut pkts = self.0.pkts.lock().unwrap();
        pkts.extend(batch.iter().map(|p| (p.buf.to_vec(), p.meta.user)));
        self.0.count.store(pkts.len(), Ordering::Release);
        Ok(())
    }
}

/// Every packet `0..n` arrived once, in order, byte for byte.
fn check_records(rec: &Recorder, n: u64) {
    let pkts = rec.0.pkts.lock().unwrap();
    assert_eq!(pkts.len() as u64, n, "packets recorded");
    let mut want = Vec::new();
    for (i, (bytes, user)) in pkts.iter().enumerate() {
        let seq = i as u64;
        payload(seq, MTU, &mut want);
        assert_eq!(*user, seq, "packet {i} out of order");
        assert_eq!(bytes, &want, "payload of packet {seq}");
    }
}

fn wait_halted(what: &str, m: TileMetricsHandle<'_>) {
    wait_until(what, || m.state() == Some(TileState::Halted));
}

/// Waits until the tile has run housekeeping three more times: it has
/// looked at its stop request since the caller asked.
fn wait_seen(what: &str, m: TileMetricsHandle<'_>) {
    let hk = m.snapshot().housekeeping;
    wait_until(what, || m.snapshot().housekeeping >= hk + 3);
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

/// gen -> `middle` -> drain into a recorder, over reliable links. The
/// recorder is held shut for a moment so the links are full, and the tiles
/// are stopped the way a pipeline runner does: the source plainly, then
/// the middle with a drain once the source halted, then the sink with a
/// drain once the middle halted. Every frag the source published must
/// reach the recorder, once, in order.
fn stop_in_topological_order<T: Tile + Send>(tag: &str, middle: T) {
    let t = TestWs::new(tag, 1 << 24);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let rec = Recorder::default();
    let grace = Duration::from_secs(5);
    let no_inputs: &[(&Link<'_>, usize)] = &[];
    let mut gen = Stem::new(&t.ws, "gen", Gen::new(MTU), no_inputs, &[&a], config(grace)).unwrap();
    let mut mid = Stem::new(&t.ws, "mid", middle, &[(&a, 0)], &[&b], config(grace)).unwrap();
    let mut sink = Stem::new(
        &t.ws,
        "sink",
        Drain::new(rec.clone(), MTU),
        &[(&b, 0)],
        &[],
        config(grace),
    )
    .unwrap();
    let (mg, mm, ms) = (gen.metrics(), mid.metrics(), sink.metrics());
    let (recorded, ends) = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![mg, mm, ms]);
        let hg = s.spawn(|| gen.run());
        let hm = s.spawn(|| mid.run());
        let hs = s.spawn(|| sink.run());
        wait_until("traffic at the recorder", || rec.count() >= 2000);
        // The downstream shuts: the links fill up behind it.
        rec.block(true);
        std::thread::sleep(Duration::from_millis(20));
        mg.request_stop();
        wait_halted("the source to halt", mg);
        let recorded = rec.count();
        rec.block(false);
        mm.request_drain(1);
        wait_halted("the middle to drain", mm);
        ms.request_drain(1);
        wait_halted("the sink to drain", ms);
        let ends: Vec<RunEnd> = [hg, hm, hs].map(|h| h.join().unwrap()).into();
        (recorded, ends)
    });
    let n = gen.outputs()[0].seq();
    assert!(
        recorded < n,
        "frags were in flight when the source halted ({recorded} of {n} recorded)"
    );
    for (tile, end) in ["gen", "mid", "sink"].iter().zip(&ends) {
        assert_eq!(
            (end.pending, end.unread, end.left()),
            (0, 0, 0),
            "{tile} left {} frags",
            end.left()
        );
    }
    check_records(&rec, n);
    assert_eq!(a.fseqs()[0].query(), n, "the middle read all of a");
    assert_eq!(b.fseqs()[0].query(), n, "the sink read all of b");
    assert_eq!(mid.inputs()[0].seq(), n);
    assert_eq!(sink.inputs()[0].seq(), n);
}

#[test]
fn stopping_in_topological_order_with_drains_delivers_every_frag_once() {
    stop_in_topological_order("drfwd", Forward::default());
}

#[test]
fn a_drained_tile_that_holds_frags_passes_every_one_on() {
    stop_in_topological_order("drbeob", Batch::new(7, Flush::EndOfBurst));
    stop_in_topological_order("drbhk", Batch::new(7, Flush::Housekeeping));
}

#[test]
fn a_drain_asked_before_the_run_reads_what_is_there_and_halts() {
    let t = TestWs::new("drpre", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    send_all(&mut LinkTx::new(&a), 0, 40, MTU);
    let rec = Recorder::default();
    let mut drain = Stem::new(
        &t.ws,
        "drain",
        Drain::new(rec.clone(), MTU),
        &[(&a, 0)],
        &[],
        config(Duration::from_secs(5)),
    )
    .unwrap();
    let md = drain.metrics();
    // Bits of inputs the tile does not have are dropped.
    md.request_drain(u64::MAX);
    assert_eq!(md.stop_request(), StopRequest::Drain { inputs: 1 });
    let end = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| drain.run());
        wait_halted("the drain to halt", md);
        h.join().unwrap()
    });
    assert_eq!((end.pending, end.unread), (0, 0));
    check_records(&rec, 40);
    assert_eq!(a.fseqs()[0].query(), 40);
}

#[test]
fn a_drain_whose_upstream_never_stops_gives_up_after_the_grace() {
    let t = TestWs::new("drfull", 1 << 25);
    // The ring holds more than the slow tile can read within the grace,
    // however the source is scheduled: the drain cannot catch up.
    let depth = 1024;
    let a = t.link("a", depth, MTU, &[Reliable]);
    let grace = Duration::from_millis(300);
    let no_inputs: &[(&Link<'_>, usize)] = &[];
    let mut gen = Stem::new(&t.ws, "gen", Gen::new(MTU), no_inputs, &[&a], config(grace)).unwrap();
    let mut slow = Stem::new(
        &t.ws,
        "slow",
        Slow::default(),
        &[(&a, 0)],
        &[],
        config(grace),
    )
    .unwrap();
    let (mg, msl) = (gen.metrics(), slow.metrics());
    let (end, took) = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![mg, msl]);
        let hg = s.spawn(|| gen.run());
        let hs = s.spawn(|| slow.run());
        wait_until("the ring full", || mg.snapshot().backpressure >= 1);
        let asked = Instant::now();
        msl.request_drain(1);
        wait_halted("the drain to give up", msl);
        let took = asked.elapsed();
        let end = hs.join().unwrap();
        mg.request_stop();
        wait_halted("the source to halt", mg);
        hg.join().unwrap();
        (end, took)
    });
    assert!(took >= grace, "gave up after {took:?}, before its grace");
    assert!(took < DEADLINE, "gave up after {took:?}");
    assert_eq!(end.pending, 0);
    let (published, read) = (gen.outputs()[0].seq(), slow.inputs()[0].seq());
    assert!(
        end.unread > 0 && end.unread <= depth,
        "unread {}",
        end.unread
    );
    assert!(
        end.unread <= published - read,
        "unread {} of the {} frags published after those read",
        end.unread,
        published - read
    );
    assert_eq!(end.left(), end.unread);
    assert_eq!(slow.tile().read, read, "every frag read was taken in");
    assert_eq!(a.fseqs()[0].query(), read, "exact progress at the halt");
}

#[test]
fn a_drain_that_waits_on_its_downstream_gives_up_and_counts_what_it_left() {
    let t = TestWs::new("drretry", 1 << 22);
    let a = t.link("a", 128, MTU, &[Reliable]);
    let n = 100;
    send_all(&mut LinkTx::new(&a), 0, n, MTU);
    // The downstream never takes anything: the drain fills its batch, then
    // answers Retry to every frag after it.
    let rec = Recorder::default();
    rec.block(true);
    let grace = Duration::from_millis(200);
    let mut drain = Stem::new(
        &t.ws,
        "drain",
        Drain::new(rec.clone(), MTU),
        &[(&a, 0)],
        &[],
        config(grace),
    )
    .unwrap();
    let md = drain.metrics();
    let (end, took) = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| drain.run());
        wait_until("the drain to fill its batch", || {
            a.fseqs()[0].diag(DIAG_PUB_CNT) == BATCH_MAX as u64
        });
        let asked = Instant::now();
        md.request_drain(1);
        wait_halted("the drain to give up", md);
        let took = asked.elapsed();
        (h.join().unwrap(), took)
    });
    assert!(took >= grace, "gave up after {took:?}, before its grace");
    let held = BATCH_MAX as u64;
    assert_eq!(end.pending as u64, held, "in its hands");
    assert_eq!(end.unread, n - held, "left on the link");
    assert_eq!(end.left(), n);
    assert!(rec.0.pkts.lock().unwrap().is_empty());
    assert_eq!(drain.inputs()[0].seq(), held);
    assert_eq!(a.fseqs()[0].query(), 0, "what it holds is not read");
}

/// Two inputs, no output. Counts the frags each input offered
/// (`before_frag`) and passed (`after_frag`); says it has a packet pending
/// while `hold` is set.
#[derive(Debug, Default)]
struct TwoIn {
    offered: Arc<[AtomicU64; 2]>,
    taken: Arc<[AtomicU64; 2]>,
    hold: Arc<AtomicBool>,
}

impl Tile for TwoIn {
    fn kind(&self) -> &str {
        "two"
    }
    fn before_frag(&mut self, input: usize, _: u64, _: u64) -> Filter {
        self.offered[input].fetch_add(1, Ordering::Relaxed);
        Filter::Process
    }
    fn after_frag(&mut self, input: usize, _: &FragMeta, _: &mut Outputs<'_, '_>) {
        self.taken[input].fetch_add(1, Ordering::Release);
    }
    fn pending(&self) -> usize {
        usize::from(self.hold.load(Ordering::Acquire))
    }
}

#[test]
fn a_drain_reads_only_the_inputs_of_its_mask() {
    let t = TestWs::new("drmask", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let (mut tx_a, mut tx_b) = (LinkTx::new(&a), LinkTx::new(&b));
    let two = TwoIn::default();
    let (offered, taken, hold) = (two.offered.clone(), two.taken.clone(), two.hold.clone());
    let mut stem = Stem::new(
        &t.ws,
        "two",
        two,
        &[(&a, 0), (&b, 0)],
        &[],
        config(Duration::from_secs(10)),
    )
    .unwrap();
    let m = stem.metrics();
    let taken_of = |i: usize| taken[i].load(Ordering::Acquire);
    let end = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![m]);
        let h = s.spawn(|| stem.run());
        send_all(&mut tx_a, 0, 5, MTU);
        send_all(&mut tx_b, 0, 5, MTU);
        wait_until("both inputs read", || taken_of(0) == 5 && taken_of(1) == 5);
        // Pending work keeps the drain going while the test looks at it.
        hold.store(true, Ordering::Release);
        m.request_drain(0b01);
        wait_seen("the drain seen", m);
        send_all(&mut tx_b, 5, 7, MTU);
        send_all(&mut tx_a, 5, 7, MTU);
        wait_until("input 0 read on while draining", || taken_of(0) == 12);
        // Many loop turns and housekeepings later, input 1 was not polled.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(m.state(), Some(TileState::Running), "still draining");
        assert_eq!(offered[1].load(Ordering::Relaxed), 5, "input 1 offered");
        hold.store(false, Ordering::Release);
        wait_halted("the drain to end", m);
        h.join().unwrap()
    });
    assert_eq!((end.pending, end.unread), (0, 0), "input 1 is not drained");
    assert_eq!(offered[1].load(Ordering::Relaxed), 5);
    assert_eq!(taken_of(1), 5);
    assert_eq!(stem.inputs()[1].seq(), 5, "input 1's seq did not move");
    assert_eq!(b.fseqs()[0].query(), 5, "its 7 new frags stay on b");
    assert_eq!(stem.inputs()[0].seq(), 12);
    assert_eq!(a.fseqs()[0].query(), 12);
}

#[test]
fn a_stop_after_a_drain_stops_at_once() {
    // Asked together before the run: a plain stop, nothing read.
    let t = TestWs::new("drstop", 1 << 25);
    let a = t.link("a", 64, MTU, &[Reliable]);
    send_all(&mut LinkTx::new(&a), 0, 10, MTU);
    let rec = Recorder::default();
    let grace = Duration::from_secs(60);
    let mut drain = Stem::new(
        &t.ws,
        "drain",
        Drain::new(rec.clone(), MTU),
        &[(&a, 0)],
        &[],
        config(grace),
    )
    .unwrap();
    let md = drain.metrics();
    md.request_drain(1);
    md.request_stop();
    assert_eq!(md.stop_request(), StopRequest::Now);
    let end = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![md]);
        let h = s.spawn(|| drain.run());
        wait_halted("the stop", md);
        h.join().unwrap()
    });
    assert_eq!(
        (end.pending, end.unread),
        (0, 0),
        "a plain stop drains nothing"
    );
    assert_eq!(drain.inputs()[0].seq(), 0, "nothing read");
    assert_eq!(rec.count(), 0);

    // Asked while a drain that cannot finish runs, with a grace far longer
    // than the test: the tile stops reading and halts at once.
    let b = t.link("b", 1024, MTU, &[Reliable]);
    let no_inputs: &[(&Link<'_>, usize)] = &[];
    let mut gen = Stem::new(&t.ws, "gen", Gen::new(MTU), no_inputs, &[&b], config(grace)).unwrap();
    let mut slow = Stem::new(
        &t.ws,
        "slow",
        Slow::default(),
        &[(&b, 0)],
        &[],
        config(grace),
    )
    .unwrap();
    let (mg, msl) = (gen.metrics(), slow.metrics());
    let (end, took) = std::thread::scope(|s| {
        let _guard = StopOnDrop(vec![mg, msl]);
        let hg = s.spawn(|| gen.run());
        let hs = s.spawn(|| slow.run());
        wait_until("the ring full", || mg.snapshot().backpressure >= 1);
        msl.request_drain(1);
        wait_seen("the drain seen", msl);
        assert_eq!(msl.state(), Some(TileState::Running), "still draining");
        let asked = Instant::now();
        msl.request_stop();
        assert_eq!(msl.stop_request(), StopRequest::Now);
        wait_halted("the stop", msl);
        let took = asked.elapsed();
        let end = hs.join().unwrap();
        mg.request_stop();
        wait_halted("the source to halt", mg);
        hg.join().unwrap();
        (end, took)
    });
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(end.pending, 0);
    assert!(end.unread > 0, "the drained input was left unread");
    assert_eq!(b.fseqs()[0].query(), slow.inputs()[0].seq());
}
