//! `tilewire soak`: a pipeline of processes under sustained load for a
//! given time, a random tile killed with SIGKILL every few seconds and
//! brought back by the restart policy, and at the end the books: every
//! frag the source sent was delivered, counted lost on a named link, or
//! counted dropped with its reason; none unexplained.
//!
//! # The pipeline
//!
//! ```text
//! src --src_dedup (unreliable)--> dedup --dedup_verify--> verify --verify_sink--> sink
//! ```
//!
//! Processes mode, every tile `restart = "on-failure"`. `src` and `sink`
//! are the soak's own kinds ([`kinds`]): every frag carries an id (its
//! seq on `src_dedup`, never reused by a restarted source), and the sink
//! sets a bit per id in a workspace allocation that outlives its own
//! kills. `dedup` and `verify` are the built-ins. The first link is
//! unreliable: a `dedup` killed, or descheduled longer than the ring
//! lasts, is lapped and counts what it lost; the others are reliable: a
//! killed consumer stalls its producer, and its successor reads again
//! what it had not acknowledged (duplicates, which `dedup` drops or the
//! sink counts). That is the mix a validator has: a lossy edge where
//! packets come in, reliable links behind it.
//!
//! The kinds are in the registry of every `tilewire` command (`main`
//! builds it), because each tile process is this binary again, with the
//! same arguments, and must know them.
//!
//! # The run
//!
//! After a warm-up (a tenth of the duration, 2 to 10 s) the resources are
//! taken ([`probe`]) and the kills start: one every `--kill-every`
//! seconds, the tile drawn with `--seed` among those that may be killed
//! ([`chaos`]), until 5 s before the end (so the last one is back before
//! the stop). Meanwhile the runner is polled every 5 ms (that is where
//! the restart policy acts) and the sink's count of deliveries sampled:
//! the longest time it did not move is the longest stall. At the end,
//! once every killed tile runs again, the resources are taken again and
//! the pipeline stops in order, draining every link; then the books
//! ([`account`]) and the report ([`report`]). The exit status is non-zero
//! when anything is unexplained, a restart failed, the restarts are not
//! the kills, the run reported a failure, or a resource grew past its
//! bound.
//!
//! # Load
//!
//! `--rate` frags a second are offered (default 100 000). On two cores
//! with the four tile processes, a debug build reaches 78 000 to 96 000 a
//! second of it over a run (the source sends nothing while it is killed
//! and coming back, and a loaded machine slows it); the report gives the
//! rate reached, `sent_per_s`. The default duration, 600 s, with a
//! kill every 4 s, makes about 145 kills; each tile can take 5 in a
//! minute and a quarter, 16 a minute for the four, so the draw rarely
//! waits.

mod account;
mod chaos;
mod kinds;
mod probe;
mod report;

use std::time::{Duration, Instant};

use tilewire_pipeline::tile::link::frag::seq_diff;
use tilewire_pipeline::tile::link::fseq::{
    DIAG_BAD_CNT, DIAG_CORRUPT_CNT, DIAG_FILT_CNT, DIAG_OVRNP_FRAGS,
};
use tilewire_pipeline::tile::link::Link;
use tilewire_pipeline::{
    LinkDef, Mode, Pipeline, PipelineBuilder, Registry, Restart, RunOptions, StopFlag, TileDef,
};

use account::{balance, Dropped, LinkLoss, Tally};
use chaos::{Chaos, RESTART_DEADLINE};
use kinds::{Record, SINK_KIND, SOURCE_KIND};
use probe::{growth, Resources};
use report::{bound_words, Duplicates, Report, ResourceLines, Settings, TileLine};

pub(crate) use kinds::register;

const SRC: &str = "src";
const DEDUP: &str = "dedup";
const VERIFY: &str = "verify";
const SINK: &str = "sink";
const TILES: [&str; 4] = [SRC, DEDUP, VERIFY, SINK];
const SRC_DEDUP: &str = "src_dedup";
const DEDUP_VERIFY: &str = "dedup_verify";
const VERIFY_SINK: &str = "verify_sink";
/// The unreliable link's depth: 40 ms at the default rate before a
/// stalled dedup is lapped.
const UNRELIABLE_DEPTH: u64 = 4096;
/// The reliable links' depth.
const RELIABLE_DEPTH: u64 = 1024;
/// Every frame is 74 bytes.
const MTU: usize = 128;
/// How often the runner is polled and the sink sampled.
const SAMPLE: Duration = Duration::from_millis(5);
/// No kill this close to the end.
const SETTLE: Duration = Duration::from_secs(5);

/// `tilewire soak`: kill and restart cycles under load, and the books.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long the pipeline runs, in seconds (CI runs 60)
    #[arg(long, value_name = "SECS", default_value = "600",
          value_parser = crate::run_cmd::seconds, allow_negative_numbers = true)]
    duration: Duration,
    /// Seconds between kills
    #[arg(long, value_name = "SECS", default_value = "4",
          value_parser = crate::run_cmd::seconds, allow_negative_numbers = true)]
    kill_every: Duration,
    /// Frags a second the source offers
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rate: u64,
    /// Seed of the draw of the tiles to kill
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as one JSON object instead of the table
    #[arg(long)]
    json: bool,
}

/// Ids the sink's record holds: the rate over the duration and the most
/// the end can add, with a quarter to spare.
fn capacity(rate: u64, duration: Duration) -> u64 {
    let secs = duration + SETTLE + RESTART_DEADLINE + Duration::from_secs(30);
    ((rate as f64 * secs.as_secs_f64() * 1.25) as u64).clamp(1, 1 << 32)
}

/// The soak's pipeline (see the [module docs](self)).
fn builder(ws: &str, rate: u64, capacity: u64) -> PipelineBuilder {
    let cap = capacity as i64;
    let tile = |name: &str, kind: &str| TileDef::new(name, kind).restart(Restart::OnFailure);
    PipelineBuilder::new(ws)
        .mode(Mode::Processes)
        .link(
            LinkDef::new(SRC_DEDUP, UNRELIABLE_DEPTH)
                .mtu(MTU)
                .unreliable(),
        )
        .link(LinkDef::new(DEDUP_VERIFY, RELIABLE_DEPTH).mtu(MTU))
        .link(LinkDef::new(VERIFY_SINK, RELIABLE_DEPTH).mtu(MTU))
        .tile(
            tile(SRC, SOURCE_KIND)
                .output(SRC_DEDUP)
                .param("rate", rate as i64)
                .param("capacity", cap),
        )
        .tile(tile(DEDUP, "dedup").input(SRC_DEDUP).output(DEDUP_VERIFY))
        .tile(
            tile(VERIFY, "verify")
                .input(DEDUP_VERIFY)
                .output(VERIFY_SINK),
        )
        .tile(
            tile(SINK, SINK_KIND)
                .input(VERIFY_SINK)
                .param("capacity", cap),
        )
}

/// The longest time a count did not move.
#[derive(Debug)]
struct Stall {
    value: u64,
    since: Instant,
    longest: Duration,
    longest_from: Instant,
}

impl Stall {
    fn new(value: u64, now: Instant) -> Stall {
        Stall {
            value,
            since: now,
            longest: Duration::ZERO,
            longest_from: now,
        }
    }

    fn sample(&mut self, value: u64, now: Instant) {
        if value != self.value {
            self.value = value;
            self.since = now;
        } else if now.duration_since(self.since) > self.longest {
            self.longest = now.duration_since(self.since);
            self.longest_from = self.since;
        }
    }
}

/// `tilewire soak`.
pub(crate) fn run(registry: &Registry, args: Args) -> Result<(), String> {
    let ws_name = format!("tw-soak-{}", std::process::id());
    let cap = capacity(args.rate, args.duration);
    let pipeline = builder(&ws_name, args.rate, cap)
        .build(registry)
        .map_err(|e| e.to_string())?;
    let stop = StopFlag::on_signals().map_err(|e| e.to_string())?;
    let warm_up = (args.duration / 10).clamp(Duration::from_secs(2), Duration::from_secs(10));
    if !args.json {
        eprintln!(
            "tilewire soak: workspace {ws_name}, {:?}, a kill every {:?}, {} frags/s; Ctrl-C \
             ends it early",
            args.duration, args.kill_every, args.rate
        );
    }
    let report = soak(&pipeline, &args, warm_up, &stop)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.table());
    }
    if report.ok {
        Ok(())
    } else {
        Err(format!("{} problems (listed above)", report.problems.len()))
    }
}

/// Runs the soak on `pipeline` and makes its report.
fn soak(
    pipeline: &Pipeline,
    args: &Args,
    warm_up: Duration,
    stop: &StopFlag,
) -> Result<Report, String> {
    let mut running = pipeline
        .start(&RunOptions::new())
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let ws = pipeline.workspace();
    let record = Record::join(ws, SINK)?;
    let mut chaos = Chaos::new(&TILES, args.seed);
    let mut problems = Vec::new();
    let end = t0 + args.duration;
    let kills_from = t0 + warm_up;
    let kills_until = end.checked_sub(SETTLE).unwrap_or(t0);
    let (mut next_kill, mut not_before) = (kills_from, kills_from);
    let mut stall: Option<Stall> = None;
    let mut start: Option<Resources> = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if stop.is_stopped() {
            problems.push(format!(
                "interrupted after {:.1} s",
                now.duration_since(t0).as_secs_f64()
            ));
            break;
        }
        if running.poll() {
            problems.push("every tile ended before the soak did".to_owned());
            break;
        }
        chaos.observe(ws, now, false);
        if now >= kills_from {
            let delivered = record.counts().delivered;
            stall
                .get_or_insert_with(|| Stall::new(delivered, now))
                .sample(delivered, now);
            start.get_or_insert_with(|| Resources::now(&running.pids(), ws));
        }
        if now >= next_kill && now >= not_before && now < kills_until && chaos.failures.is_empty() {
            match chaos.kill_one(ws, &running.pids(), now) {
                Ok(Some(_)) => next_kill += args.kill_every,
                Ok(None) => not_before = now + Duration::from_millis(100),
                Err(e) => {
                    problems.push(e);
                    break;
                }
            }
        }
        std::thread::sleep(SAMPLE);
    }
    let ran = t0.elapsed();
    // Every killed tile back before the stop (the restarts are counted).
    let settle_until = Instant::now() + RESTART_DEADLINE + Duration::from_secs(1);
    while chaos.awaiting() && Instant::now() < settle_until {
        if running.poll() {
            break;
        }
        chaos.observe(ws, Instant::now(), false);
        std::thread::sleep(SAMPLE);
    }
    let end_resources = Resources::now(&running.pids(), ws);
    let start = start.unwrap_or_else(|| end_resources.clone());
    let mut failures = std::mem::take(&mut chaos.failures);
    if let Err(e) = running.stop() {
        failures.extend(e.to_string().lines().map(str::to_owned));
    }
    chaos.observe(ws, Instant::now(), true);

    // The books, from what the stopped pipeline left in its workspace.
    let join = |name: &str| Link::join(ws, name).map_err(|e| format!("link {name}: {e}"));
    let src = join(SRC_DEDUP)?;
    let mc = src.mcache();
    let (published, newest) = (mc.seq_query(), mc.newest_seq().wrapping_add(1));
    let next = if seq_diff(newest, published) > 0 {
        newest
    } else {
        published
    };
    let sent = next.wrapping_sub(mc.seq0());
    let delivered = record.delivered_bits(next);
    let counts = record.counts();
    let topo = pipeline.topology();
    let (mut lost, mut dropped) = (Vec::new(), Vec::new());
    let mut overcount_bound = 0;
    for l in &topo.links {
        let link = join(&l.name)?;
        for ((t, _), f) in topo.consumers(&l.name).iter().zip(link.fseqs()) {
            let reliable = f.reliable();
            lost.push(LinkLoss {
                link: l.name.clone(),
                consumer: t.name.clone(),
                reliable,
                frags: f.diag(DIAG_OVRNP_FRAGS),
            });
            for (what, i) in [
                ("chunk outside the dcache", DIAG_BAD_CNT),
                ("filtered", DIAG_FILT_CNT),
                ("corrupt ring line", DIAG_CORRUPT_CNT),
            ] {
                dropped.push(Dropped {
                    reason: format!("{}: {what} on {}", t.name, l.name),
                    frags: f.diag(i),
                });
            }
            if !reliable {
                // A killed consumer's successor may count lost what its
                // predecessor read after its last progress publish: at
                // most one publish interval (see the consumer) and the
                // frag in hand.
                let every = (link.mcache().depth() / 8).max(1).next_power_of_two();
                let restarts = chaos
                    .tiles
                    .iter()
                    .find(|w| w.name == t.name)
                    .map_or(0, |w| w.boots.saturating_sub(1));
                overcount_bound += restarts * (every + 1);
            }
        }
    }
    dropped.push(Dropped {
        reason: format!("{SINK}: frame without an id"),
        frags: counts.malformed,
    });
    dropped.push(Dropped {
        reason: format!("{SINK}: id past its record"),
        frags: counts.beyond,
    });
    let books = balance(&Tally {
        sent,
        delivered,
        lost: lost.clone(),
        dropped: dropped.clone(),
        overcount_bound,
    });

    // Kills, restarts, resources.
    let kills = chaos.kills();
    let restarts: u64 = chaos.tiles.iter().map(|t| t.boots.saturating_sub(1)).sum();
    let tiles: Vec<TileLine> = chaos
        .tiles
        .iter()
        .map(|t| {
            let n = t.restart_times.len().max(1) as u32;
            TileLine {
                tile: t.name.clone(),
                kills: t.kills(),
                boots: t.boots,
                restart_max_ms: t
                    .restart_times
                    .iter()
                    .max()
                    .map_or(0, |d| d.as_millis() as u64),
                restart_mean_ms: (t.restart_times.iter().sum::<Duration>() / n).as_millis() as u64,
            }
        })
        .collect();
    for t in &chaos.tiles {
        if t.boots != t.kills() as u64 + 1 {
            problems.push(format!(
                "{} booted {} times for {} kills (expected {})",
                t.name,
                t.boots,
                t.kills(),
                t.kills() + 1
            ));
        }
    }
    let grew = growth(&start, &end_resources);
    let mismatched = chaos
        .tiles
        .iter()
        .find(|t| t.name == SRC)
        .and_then(|t| t.total("mismatched"))
        .unwrap_or(0);
    if mismatched > 0 {
        problems.push(format!(
            "{SRC} published {mismatched} frags whose seq was not the id it wrote"
        ));
    }
    problems.extend(books.problems.iter().cloned());
    problems.extend(failures.iter().map(|f| format!("run: {f}")));
    problems.extend(grew.iter().cloned());
    let stall = stall.unwrap_or_else(|| Stall::new(0, t0));
    let dedup_dups = chaos
        .tiles
        .iter()
        .find(|t| t.name == DEDUP)
        .and_then(|t| t.total("dups"))
        .unwrap_or(0);
    Ok(Report {
        ok: problems.is_empty(),
        problems,
        settings: Settings {
            duration_s: args.duration.as_secs_f64(),
            kill_every_s: args.kill_every.as_secs_f64(),
            rate: args.rate,
            seed: args.seed,
            warm_up_s: warm_up.as_secs_f64(),
        },
        pipeline: format!(
            "{SRC} -[{SRC_DEDUP}: unreliable, depth {UNRELIABLE_DEPTH}]-> {DEDUP} \
             -[{DEDUP_VERIFY}]-> {VERIFY} -[{VERIFY_SINK}]-> {SINK}; processes, \
             restart on-failure"
        ),
        ran_s: ran.as_secs_f64(),
        sent,
        delivered,
        sent_per_s: (sent as f64 / ran.as_secs_f64().max(1e-3)) as u64,
        duplicates: Duplicates {
            at_sink: counts.duplicates,
            dropped_by_dedup: dedup_dups,
        },
        lost,
        dropped,
        missing_runs: record
            .missing_runs(next, 8)
            .into_iter()
            .map(|(f, n)| [f, n])
            .collect(),
        books,
        kills,
        restarts,
        tiles,
        failures,
        longest_stall_ms: stall.longest.as_millis() as u64,
        longest_stall_at_s: stall.longest_from.duration_since(t0).as_secs_f64(),
        resources: ResourceLines {
            start,
            within_bound: grew.is_empty(),
            end: end_resources,
            bound: bound_words(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_topology_is_checked_by_the_registry_with_its_kinds() {
        let mut registry = Registry::with_builtins();
        register(&mut registry).unwrap();
        let topo = builder("tw-soak-test", 1000, capacity(1000, Duration::from_secs(1)))
            .topology(&registry)
            .expect("the soak's topology is valid");
        assert_eq!(topo.tiles.len(), 4);
        assert!(topo.tiles.iter().all(|t| t.restart == Restart::OnFailure));
        let unreliable: Vec<_> = topo
            .links
            .iter()
            .filter(|l| !l.reliable)
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(unreliable, [SRC_DEDUP]);
        assert!(
            builder("tw-soak-test", 0, 10).topology(&registry).is_err(),
            "a rate of 0 is refused"
        );
    }

    #[test]
    fn the_longest_stall_is_the_longest_time_without_a_change() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Stall::new(0, t0);
        for (at, v) in [(10, 1), (20, 1), (90, 1), (100, 2), (110, 2), (130, 3)] {
            s.sample(v, ms(at));
        }
        assert_eq!(s.longest, Duration::from_millis(80));
        assert_eq!(s.longest_from, ms(10));
    }
}
