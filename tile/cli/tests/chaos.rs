//! Chaos: a fixed-seed run of over a thousand random 1-8 byte writes into
//! the live workspace of a multi-tile pipeline (gen -> forward, `count =
//! 2` -> sink, reliable links), aimed at its shared words: the workspace
//! header, the allocation table, every mcache's lines, every fseq and the
//! tile metrics of gen and the forwards. The sink's metrics are left
//! alone: they are where the test reads what was delivered. Payload
//! bytes (dcaches) are left alone too: they are data, not words anyone
//! trusts.
//!
//! The writes come in rounds, each on a fresh pipeline (a run ended by a
//! corruption it found is over). What every round asserts:
//! - never a panic: no tile panicked, and the monitor's report, table and
//!   JSON of the workspace were made after every tenth write;
//! - never a figure no link can have: every consumer's lag at most its
//!   link's depth, and a consumer not marked CORRUPT never shows more
//!   frags lost than the link published;
//! - never silence: the round was reported (the runner ended the run or
//!   failed naming a tile, or the monitor listed a problem), or every
//!   frag published on the first link was delivered to the sink or
//!   counted (filtered by the other forward, lost, refused, skipped as
//!   corrupt): a write that changed nothing visible changed no delivery.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tilewire_monitor::{pid_alive, render, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_pipeline::tile::link::fseq::{
    DIAG_BAD_CNT, DIAG_CORRUPT_CNT, DIAG_FILT_CNT, DIAG_OVRNP_FRAGS, DIAG_PUB_CNT,
};
use tilewire_pipeline::tile::link::Link;
use tilewire_pipeline::{Pipeline, Registry, RunOptions, TileFailure};
use tilewire_shmem::Workspace;

/// The seed: the same writes every run.
const SEED: u64 = 0x7113_3ed5_c4a0_5eed;
/// Writes in all, and at most per round.
const WRITES: usize = 1161;
const PER_ROUND: usize = 100;

/// xorshift64*: a fixed sequence from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn topology(ws: &str) -> String {
    format!(
        r#"
[workspace]
name = "{ws}"
size = "8MiB"

[[link]]
name = "raw"
depth = 256
mtu = 256

[[link]]
name = "out"
depth = 256
mtu = 256

[[tile]]
name = "gen"
kind = "gen"
outputs = ["raw"]
params = {{ size = 64, rate = 20000, burst = 16 }}

[[tile]]
name = "fwd"
kind = "forward"
inputs = ["raw"]
outputs = ["out"]
count = 2

[[tile]]
name = "sink"
kind = "sink"
inputs = ["out"]
"#
    )
}

/// A write target: a byte range of the workspace and what it holds.
struct Target {
    what: String,
    start: u64,
    len: u64,
}

fn targets(ws: &Workspace) -> Vec<Target> {
    let mut t = vec![
        Target {
            what: "header".into(),
            start: 0,
            len: 4096,
        },
        Target {
            what: "allocation table".into(),
            start: 4096,
            len: ws.data_off() - 4096,
        },
    ];
    for a in ws.allocations() {
        let Some(name) = a.name else { continue };
        let words = name.ends_with(".mc")
            || name.contains(".fs")
            || (name.ends_with(".tm") && !name.starts_with("sink"));
        if words {
            t.push(Target {
                what: name,
                start: a.gaddr,
                len: a.size,
            });
        }
    }
    t
}

/// What a round saw.
#[derive(Default)]
struct Round {
    writes: Vec<String>,
    reported: Vec<String>,
}

/// Checks one report for figures no link can have; notes its problems.
fn check_report(r: &Report, round: &mut Round) {
    let _ = render::table(r);
    let _ = r.to_json();
    let _ = render::prometheus(r);
    for l in &r.links {
        for c in &l.consumers {
            assert!(
                c.lag <= l.depth,
                "link {} consumer {}: lag {} above the depth {} after {:?}",
                l.name,
                c.index,
                c.lag,
                l.depth,
                round.writes
            );
            if c.corrupt.is_empty() {
                assert!(
                    c.frags_lost <= l.published,
                    "link {} consumer {}: {} lost of {} published, not CORRUPT, after {:?}",
                    l.name,
                    c.index,
                    c.frags_lost,
                    l.published,
                    round.writes
                );
            }
        }
    }
    for p in &r.problems {
        round
            .reported
            .push(format!("monitor: {}: {}", p.object, p.why));
    }
    for t in &r.tiles {
        if let Some(why) = &t.dead_reason {
            round
                .reported
                .push(format!("monitor: {} dead: {why}", t.name));
        }
    }
}

/// Frags published on `raw` against what reached the sink or was
/// counted on the way.
fn accounted(ws: &Workspace) -> (u64, u64) {
    let raw = Link::join(ws, "raw").unwrap();
    let published = raw.mcache().seq_query().wrapping_sub(raw.mcache().seq0());
    let mut counted = 0u64;
    for f in raw.fseqs() {
        // Each forward reads every frag: the other's share as filtered.
        counted += f.diag(DIAG_PUB_CNT)
            + f.diag(DIAG_FILT_CNT)
            + f.diag(DIAG_OVRNP_FRAGS)
            + f.diag(DIAG_BAD_CNT)
            + f.diag(DIAG_CORRUPT_CNT);
    }
    (published * raw.fseqs().len() as u64, counted)
}

fn run_round(n: usize, rng: &mut Rng, writes: usize) -> Round {
    let mut round = Round::default();
    let name = format!("tw-chaos-{}-{n}", std::process::id());
    let topo = Registry::with_builtins().parse(&topology(&name)).unwrap();
    let pipeline = Pipeline::create(topo).unwrap();
    let mut opts = RunOptions::new();
    opts.stem.stop_grace = Duration::from_millis(50);
    let mut running = pipeline.start(&opts).unwrap();
    let ws = pipeline.workspace();
    let ro = Workspace::join(&name, tilewire_shmem::Access::ReadOnly).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while pipeline.counter("sink", "frags").unwrap_or(0) < 100 {
        assert!(Instant::now() < end, "traffic flows");
        std::thread::sleep(Duration::from_millis(5));
    }
    let targets = targets(ws);
    let mut prev = Snapshot::take(&ro);
    for i in 0..writes {
        let t = &targets[rng.below(targets.len() as u64) as usize];
        let len = 1 + rng.below(8);
        let off = t.start + rng.below(t.len.saturating_sub(len).max(1));
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mem = ws.whole().atomic_bytes(off as usize, len as usize).unwrap();
        for (b, v) in mem.iter().zip(&bytes) {
            b.store(*v, Ordering::Relaxed);
        }
        round
            .writes
            .push(format!("{} +{} {:02x?}", t.what, off - t.start, bytes));
        std::thread::sleep(Duration::from_millis(1));
        if i % 10 == 9 {
            let cur = Snapshot::take(&ro);
            let rates = Rates::between(&prev, &cur);
            let r = Report::new(&cur, Some(&rates), HEARTBEAT_TIMEOUT, pid_alive);
            check_report(&r, &mut round);
            prev = cur;
        }
        if running.poll() {
            break;
        }
    }
    let cur = Snapshot::take(&ro);
    let r = Report::new(
        &cur,
        Some(&Rates::between(&prev, &cur)),
        HEARTBEAT_TIMEOUT,
        pid_alive,
    );
    check_report(&r, &mut round);
    if let Err(e) = running.stop() {
        for f in e.failures() {
            assert!(
                !matches!(f, TileFailure::Panicked { .. }),
                "a tile panicked: {f} after {:?}",
                round.writes
            );
            round.reported.push(format!("runner: {f}"));
        }
    }
    if round.reported.is_empty() {
        let (published, counted) = accounted(ws);
        assert_eq!(
            published, counted,
            "frags published on raw (times its readers) against those delivered or counted, \
             with nothing reported, after {:?}",
            round.writes
        );
    }
    round
}

#[test]
fn a_thousand_random_writes_into_a_live_workspace_never_panic_never_show_an_impossible_figure_never_go_silent(
) {
    let started = Instant::now();
    let mut rng = Rng(SEED);
    let (mut done, mut rounds, mut reported) = (0, 0, 0);
    while done < WRITES {
        let round = run_round(rounds, &mut rng, PER_ROUND.min(WRITES - done));
        done += round.writes.len();
        rounds += 1;
        if !round.reported.is_empty() {
            reported += 1;
            eprintln!(
                "round {rounds}: {} writes, reported: {}",
                round.writes.len(),
                round.reported[0]
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "bounded in time"
        );
    }
    eprintln!(
        "{done} writes in {rounds} rounds ({reported} reported) in {:?}",
        started.elapsed()
    );
    assert!(done >= 1000);
}
