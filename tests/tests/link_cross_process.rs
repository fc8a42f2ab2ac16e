//! Links between processes: a child (`link-peer`) joins the workspace and
//! the link by name and consumes what this process produces, checking every
//! byte. A consumer killed with SIGKILL mid-stream stalls the producer if it
//! was reliable (back-pressure, never an overrun) and is simply left behind
//! if it was not; either way a new process takes its place and continues.

use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tilewire_shmem::Workspace;
use tilewire_tests::{field, link_payload, ChildLines, KillOnDrop, TestWs};
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::fseq::{FseqHandle, DIAG_OVRNP_FRAGS, DIAG_PUB_CNT, DIAG_PUB_SZ};
use tilewire_tile::link::{Backpressure, Producer, Reliability};

const DEPTH: u64 = 256;
const MTU: usize = 1232;
/// How long any one step may take (a join, a batch of frags, a reply).
const STEP: Duration = Duration::from_secs(10);
/// How long a test may run in all.
const TEST: Duration = Duration::from_secs(60);

/// A running `link-peer` on consumer 0 of link "xp": the process, its
/// stdout lines, and its stdin (closing it tells the peer the stream is
/// over).
struct Peer {
    child: KillOnDrop,
    lines: ChildLines,
    stdin: Option<ChildStdin>,
    /// The seq it said it starts at (its consumer's published progress).
    start: u64,
}

impl Peer {
    /// Starts a peer and waits until it has joined.
    fn spawn(ws: &Workspace, extra: &[&str]) -> Peer {
        let mut c = Command::new(env!("CARGO_BIN_EXE_link-peer"))
            .args([ws.name(), "xp", "0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn link-peer");
        let stdin = c.stdin.take();
        let stdout = c.stdout.take().unwrap();
        let child = KillOnDrop(c);
        let mut lines = ChildLines::new(stdout);
        let ready = lines.wait_until(STEP, |l| l.starts_with("ready") || l.starts_with("error"));
        let start = field(&ready, "seq").unwrap_or_else(|| panic!("peer: {ready}"));
        Peer {
            child,
            lines,
            stdin,
            start,
        }
    }

    /// The newest progress (seq, frags, lost) among the lines that have
    /// arrived, or `last` if none did.
    fn poll_progress(&mut self, mut last: (u64, u64, u64)) -> (u64, u64, u64) {
        while let Some(l) = self.lines.try_next() {
            last = progress(&l).unwrap_or(last);
        }
        last
    }

    /// Closes the peer's stdin, waits for its `done` line and its exit, and
    /// returns (seq, frags, lost) from that line.
    fn finish(mut self) -> (u64, u64, u64) {
        drop(self.stdin.take());
        let done = self
            .lines
            .wait_until(STEP, |l| progress(l).is_none() && l.starts_with("done"));
        let status = self.child.0.wait().unwrap();
        assert!(status.success(), "peer exited with {status}: {done}");
        let get = |k| field(&done, k).unwrap();
        (get("seq"), get("frags"), get("lost"))
    }

    /// Kills the peer with SIGKILL, reaps it, and returns the last progress
    /// (seq, frags, lost) it printed, or `last` if it printed none since.
    fn kill(mut self, mut last: (u64, u64, u64)) -> (u64, u64, u64) {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
        // What it wrote before dying is still in the pipe.
        for l in self.lines.rest(STEP) {
            last = progress(&l).unwrap_or(last);
        }
        last
    }
}

/// (seq, frags, lost) of a `progress` line; fails the test on a line that
/// reports a bad frag or an error.
fn progress(line: &str) -> Option<(u64, u64, u64)> {
    assert!(
        !line.starts_with("bad") && !line.starts_with("error"),
        "peer: {line}"
    );
    if !line.starts_with("progress") {
        return None;
    }
    let get = |k| field(line, k).unwrap_or_else(|| panic!("no {k} in {line:?}"));
    Some((get("seq"), get("frags"), get("lost")))
}

/// Publishes the next frag once: sig = seq, payload [`link_payload`].
fn try_publish(p: &mut Producer<'_>, buf: &mut Vec<u8>) -> Result<u64, Backpressure> {
    link_payload(p.seq(), MTU, buf);
    p.publish(buf, p.seq(), CTL_PKT, 0)
}

/// Publishes the next frag, waiting out back-pressure until `deadline`.
/// Returns its seq.
fn publish_next(p: &mut Producer<'_>, buf: &mut Vec<u8>, deadline: Instant) -> u64 {
    let mut waits = 0u32;
    loop {
        match try_publish(p, buf) {
            Ok(seq) => {
                if seq % (DEPTH / 4) == 0 {
                    p.housekeeping();
                }
                return seq;
            }
            Err(Backpressure) => {
                assert!(
                    Instant::now() < deadline,
                    "back-pressure did not clear at seq {}",
                    p.seq()
                );
                waits += 1;
                if waits < 64 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }
}

/// Publishes `n` frags, never more than `lead` ahead of the progress `fseq`
/// shows, so an unreliable consumer that keeps up is never lapped (the
/// producer itself ignores it).
fn publish_paced(
    p: &mut Producer<'_>,
    fseq: &FseqHandle<'_>,
    n: u64,
    lead: u64,
    buf: &mut Vec<u8>,
    deadline: Instant,
) {
    for _ in 0..n {
        while p.seq() - fseq.query() >= lead {
            assert!(
                Instant::now() < deadline,
                "consumer stuck at {} (producer at {})",
                fseq.query(),
                p.seq()
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        publish_next(p, buf, deadline);
    }
}

/// Publishes to a (slow) peer, never more than `lead` ahead of the progress
/// `fseq` shows and so never into back-pressure, until the peer reports it
/// read `n` frags; then waits a little more, so that what comes next (a
/// kill) lands anywhere between two of the peer's progress publishes.
/// Returns the peer's last progress (seq, frags, lost).
fn feed(
    p: &mut Producer<'_>,
    fseq: &FseqHandle<'_>,
    peer: &mut Peer,
    n: u64,
    lead: u64,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> (u64, u64, u64) {
    let mut last = (0, 0, 0);
    while last.1 < n {
        assert!(Instant::now() < deadline, "peer stuck at {last:?}");
        if p.seq() - fseq.query() < lead {
            try_publish(p, buf).expect("credits for a ring ahead of the slowest");
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
        last = peer.poll_progress(last);
    }
    // The peer reads a frag every ~100 us and publishes progress every
    // depth/8 = 32 frags; a pid-derived pause spreads the kill over that.
    let pause = Duration::from_micros(u64::from(std::process::id()) * 7919 % 4000);
    let end = Instant::now() + pause;
    while Instant::now() < end {
        if p.seq() - fseq.query() < lead {
            try_publish(p, buf).expect("credits for a ring ahead of the slowest");
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    peer.poll_progress(last)
}

#[test]
fn a_child_process_joins_by_name_and_checks_every_byte() {
    const N: u64 = 5000;
    let t = TestWs::new("lxe", 4 << 20);
    let link = t.link("xp", DEPTH, MTU, Reliability::Reliable);
    let mut p = link.producer();
    let deadline = Instant::now() + TEST;
    let mut peer = Peer::spawn(&t.ws, &["--max", &N.to_string()]);
    assert_eq!(peer.start, 0);

    let (mut buf, mut bytes, mut last) = (Vec::new(), 0u64, (0, 0, 0));
    for seq in 0..N {
        assert_eq!(publish_next(&mut p, &mut buf, deadline), seq);
        bytes += buf.len() as u64;
        last = peer.poll_progress(last);
    }
    assert_eq!(peer.finish(), (N, N, 0), "(seq, frags, lost)");
    let fseq = &link.fseqs()[0];
    assert_eq!(fseq.query(), N, "the peer published its progress");
    assert_eq!(fseq.diag(DIAG_PUB_CNT), N);
    assert_eq!(fseq.diag(DIAG_PUB_SZ), bytes);
    eprintln!(
        "end to end: {N} frags, {bytes} bytes, back-pressure {}",
        p.backpressure_count()
    );
}

#[test]
fn reliable_consumer_killed_stalls_the_producer_until_a_new_one_resumes() {
    let t = TestWs::new("lxr", 4 << 20);
    let link = t.link("xp", DEPTH, MTU, Reliability::Reliable);
    let fseq = link.fseqs()[0];
    let mut p = link.producer();
    let deadline = Instant::now() + TEST;
    let mut buf = Vec::new();

    // A slow consumer, killed once it has gone round the ring twice.
    let mut peer = Peer::spawn(&t.ws, &["--slow-ns", "100000"]);
    let last = feed(
        &mut p,
        &fseq,
        &mut peer,
        2 * DEPTH,
        DEPTH,
        &mut buf,
        deadline,
    );
    let (last_seq, _, _) = peer.kill(last);

    // Its published progress holds the producer: at most a ring's worth of
    // frags more, then back-pressure, for as long as nobody replaces it.
    let at_kill = fseq.query();
    let read = fseq.diag(DIAG_PUB_CNT);
    let mut more = 0u64;
    while try_publish(&mut p, &mut buf).is_ok() {
        more += 1;
        assert!(more <= DEPTH, "the producer overran a reliable consumer");
    }
    let bp = p.backpressure_count();
    for _ in 0..1000 {
        assert_eq!(try_publish(&mut p, &mut buf), Err(Backpressure));
        std::thread::sleep(Duration::from_micros(20));
    }
    assert_eq!(p.backpressure_count(), bp + 1000);
    assert_eq!(fseq.query(), at_kill, "a dead consumer makes no progress");
    assert_eq!(fseq.diag(DIAG_PUB_CNT), read);
    assert_eq!(p.seq() - at_kill, DEPTH, "stalled exactly a ring ahead");
    assert_eq!((p.credits(), p.refresh_credits()), (0, 0));

    // How far back a successor starts: the dead consumer read at least what
    // it last reported but published progress (and its frag counts, which
    // go with it) only every depth/8 frags, so fewer than that many are
    // read twice.
    assert_eq!(read, at_kill, "the counts are published with the progress");
    assert!(
        last_seq < at_kill + DEPTH / 8,
        "reported {last_seq}, published {at_kill}"
    );
    let stalled_at = p.seq();
    let mut peer = Peer::spawn(&t.ws, &[]);
    assert_eq!(peer.start, at_kill, "a new consumer resumes at the fseq");

    // The stall clears as soon as it reads; every frag from `at_kill` on,
    // the re-read ones included, must check out, with no gap.
    let mut last = (0, 0, 0);
    for _ in 0..4 * DEPTH {
        publish_next(&mut p, &mut buf, deadline);
        last = peer.poll_progress(last);
    }
    let (seq, frags, lost) = peer.finish();
    assert_eq!((seq, frags, lost), (p.seq(), p.seq() - at_kill, 0));
    eprintln!(
        "reliable kill: reported seq {last_seq}, published {at_kill}; stalled at \
         {stalled_at} after {more} more frags; successor re-read at least {} frags \
         and read {frags} in all; back-pressure {}",
        last_seq.saturating_sub(at_kill),
        p.backpressure_count()
    );
}

#[test]
fn unreliable_consumer_killed_is_left_behind_and_a_new_one_resyncs() {
    let t = TestWs::new("lxu", 4 << 20);
    let link = t.link("xp", DEPTH, MTU, Reliability::Unreliable);
    let fseq = link.fseqs()[0];
    let mut p = link.producer();
    let deadline = Instant::now() + TEST;
    let mut buf = Vec::new();

    // A slow consumer that the producer paces itself to (nothing makes it:
    // the consumer is unreliable), killed once it has gone round twice.
    let mut peer = Peer::spawn(&t.ws, &["--slow-ns", "100000"]);
    let last = feed(
        &mut p,
        &fseq,
        &mut peer,
        2 * DEPTH,
        DEPTH / 2,
        &mut buf,
        deadline,
    );
    let (_, _, lost_before) = peer.kill(last);
    assert_eq!(lost_before, 0, "a paced consumer is never lapped");

    // Nothing holds the producer now.
    let at_kill = fseq.query();
    for _ in 0..10 * DEPTH {
        try_publish(&mut p, &mut buf).expect("an unreliable consumer never stalls the producer");
    }
    assert_eq!(p.backpressure_count(), 0);
    assert_eq!(fseq.query(), at_kill, "a dead consumer makes no progress");
    let head = p.seq();

    // A successor starts at the dead one's progress, finds it lapped on its
    // first poll, resyncs to the newest frag on that line and reads the
    // rest of the ring.
    let mut peer = Peer::spawn(&t.ws, &[]);
    assert_eq!(peer.start, at_kill);
    let first = peer.lines.wait_until(STEP, |_| true);
    assert!(first.starts_with("overrun"), "first poll: {first}");
    let (lost, resync) = (
        field(&first, "lost").unwrap(),
        field(&first, "seq").unwrap(),
    );
    assert!(lost > 0 && resync == at_kill + lost, "{first}");
    assert_eq!(lost % DEPTH, 0, "resynced on the same line: {first}");
    assert!(
        head - DEPTH <= resync && resync < head,
        "{first}, head {head}"
    );
    peer.lines
        .wait_until(STEP, |l| progress(l).is_some_and(|(s, _, _)| s == head));
    assert_eq!(fseq.diag(DIAG_OVRNP_FRAGS), lost);

    // Then every frag published afterwards arrives and checks out.
    publish_paced(&mut p, &fseq, 4 * DEPTH, DEPTH / 2, &mut buf, deadline);
    let (seq, frags, total_lost) = peer.finish();
    assert_eq!(
        (seq, frags, total_lost),
        (p.seq(), p.seq() - resync, lost),
        "(seq, frags, lost)"
    );
    eprintln!(
        "unreliable kill: dead at {at_kill}, producer went on to {head}; successor lost \
         {lost}, resynced to {resync}, read {frags}"
    );
}
