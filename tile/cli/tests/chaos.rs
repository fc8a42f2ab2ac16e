//! Chaos: fixed-seed runs of over a thousand random 1-8 byte writes each
//! into the live workspace of a multi-tile pipeline, aimed at its shared
//! words: the workspace header, the allocation table, every mcache's
//! lines, every fseq and the tile metrics of every tile but the last one
//! (its metrics are where the test reads what was delivered). Payload
//! bytes (dcaches) are left alone: they are data, not words anyone
//! trusts; so is the dedup's tag cache.
//!
//! Two pipelines, reliable links:
//! - gen -> forward (`count = 2`) -> sink, threads mode, as any user;
//! - as root, net-xdp on a two-queue veth pair in namespaces the test
//!   makes (a tile per queue, each into a link of its own) -> dedup ->
//!   pcap, under UDP traffic from the peer namespace (64 flows, spread
//!   over both queues); the capture file must be a valid pcap of exactly
//!   the records the pcap tile counted, whatever the writes did.
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
//!   frag published on the first links (`raw`; `rx.0` and `rx.1`) was
//!   delivered or counted (filtered by the other forward, lost, refused,
//!   skipped as corrupt): a write that changed nothing visible changed no
//!   delivery.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::netns::{NetnsError, VethPair};
use tilewire_monitor::{pid_alive, render, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_pipeline::tile::link::fseq::{
    DIAG_BAD_CNT, DIAG_CORRUPT_CNT, DIAG_FILT_CNT, DIAG_OVRNP_FRAGS, DIAG_PUB_CNT,
};
use tilewire_pipeline::tile::link::Link;
use tilewire_pipeline::tile::stem::metrics::TileState;
use tilewire_pipeline::{Pipeline, Registry, RunOptions, TileFailure};
use tilewire_shmem::Workspace;

/// The seed: the same writes every run.
const SEED: u64 = 0x7113_3ed5_c4a0_5eed;
/// Writes in all, and at most per round.
const WRITES: usize = 1161;
const PER_ROUND: usize = 100;
/// The net-xdp run's UDP port.
const PORT: u16 = 9371;

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

/// A pipeline the writes go into.
struct Scene<'a> {
    /// Makes a round's pipeline, for its workspace name.
    setup: &'a dyn Fn(&str) -> RoundEnv,
    /// The links every frag of which must be delivered or counted.
    first: &'a [&'a str],
    /// The last tile (left alone by the writes) and its counter that
    /// shows traffic flows.
    last: (&'a str, &'a str),
}

/// Sends traffic until the flag is set.
type Traffic = dyn Fn(&AtomicBool) + Send + Sync;
/// Checks a pipeline after its stop.
type After = dyn Fn(&Pipeline);

/// One round's pipeline, and what lives as long as the round.
struct RoundEnv {
    topology: String,
    /// Sends traffic until the flag is set, for the length of the round.
    traffic: Option<Box<Traffic>>,
    /// Checks the pipeline after the round's stop.
    after: Option<Box<After>>,
    /// Dropped after the round (a veth pair).
    _keep: Option<Box<dyn std::any::Any>>,
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

fn targets(ws: &Workspace, last: &str) -> Vec<Target> {
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
            || (name.ends_with(".tm") && name != format!("{last}.tm"));
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

/// Frags published on `link` (times its readers) against those its
/// readers delivered or counted.
fn accounted(ws: &Workspace, link: &str) -> (u64, u64) {
    let raw = Link::join(ws, link).unwrap();
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

fn run_round(scene: &Scene<'_>, tag: &str, n: usize, rng: &mut Rng, writes: usize) -> Round {
    let name = format!("tw-chaos-{tag}-{}-{n}", std::process::id());
    let env = (scene.setup)(&name);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some(traffic) = &env.traffic {
            s.spawn(|| traffic(&stop));
        }
        // The traffic stops however the round ends.
        struct Stop<'f>(&'f AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        round_with_traffic(scene, &env, &name, rng, writes)
    })
}

fn round_with_traffic(
    scene: &Scene<'_>,
    env: &RoundEnv,
    name: &str,
    rng: &mut Rng,
    writes: usize,
) -> Round {
    let mut round = Round::default();
    let topo = Registry::with_builtins().parse(&env.topology).unwrap();
    let pipeline = Pipeline::create(topo).unwrap();
    let mut opts = RunOptions::new();
    opts.stem.stop_grace = Duration::from_millis(50);
    let mut running = pipeline.start(&opts).unwrap();
    let ws = pipeline.workspace();
    let ro = Workspace::join(name, tilewire_shmem::Access::ReadOnly).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let (last, flows) = scene.last;
    // Traffic reaches the last tile, over each of the first links (both
    // queues).
    let published = |link: &str| {
        let l = Link::join(ws, link).unwrap();
        l.mcache().seq_query().wrapping_sub(l.mcache().seq0())
    };
    while pipeline.counter(last, flows).unwrap_or(0) < 100
        || scene.first.iter().any(|l| published(l) == 0)
    {
        assert!(Instant::now() < end, "traffic flows on {:?}", scene.first);
        std::thread::sleep(Duration::from_millis(5));
    }
    let targets = targets(ws, last);
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
    if let Some(after) = &env.after {
        after(&pipeline);
    }
    if round.reported.is_empty() {
        for link in scene.first {
            let (published, counted) = accounted(ws, link);
            assert_eq!(
                published, counted,
                "frags published on {link} (times its readers) against those delivered or \
                 counted, with nothing reported, after {:?}",
                round.writes
            );
        }
    }
    round
}

/// Runs [`WRITES`] writes into `scene`, in rounds; at most `limit` long.
fn chaos(scene: &Scene<'_>, tag: &str, limit: Duration) {
    let started = Instant::now();
    let mut rng = Rng(SEED);
    let (mut done, mut rounds, mut reported) = (0, 0, 0);
    while done < WRITES {
        let round = run_round(scene, tag, rounds, &mut rng, PER_ROUND.min(WRITES - done));
        done += round.writes.len();
        rounds += 1;
        if !round.reported.is_empty() {
            reported += 1;
            eprintln!(
                "round {rounds}: {} writes, reported: {}",
                round.writes.len(),
                round.reported.join(" | ")
            );
        }
        assert!(started.elapsed() < limit, "bounded in time");
    }
    eprintln!(
        "{tag}: {done} writes in {rounds} rounds ({reported} reported) in {:?}",
        started.elapsed()
    );
    assert!(done >= 1000);
}

#[test]
fn a_thousand_random_writes_into_a_live_workspace_never_panic_never_show_an_impossible_figure_never_go_silent(
) {
    let setup = |ws: &str| RoundEnv {
        topology: topology(ws),
        traffic: None,
        after: None,
        _keep: None,
    };
    let scene = Scene {
        setup: &setup,
        first: &["raw"],
        last: ("sink", "frags"),
    };
    chaos(&scene, "fwd", Duration::from_secs(120));
}

/// net-xdp, a tile per queue of `pair`'s side a, -> dedup -> pcap into
/// `capture`.
fn xdp_topology(pair: &VethPair, capture: &Path, ws: &str) -> String {
    let a = pair.a();
    format!(
        "[workspace]\nname = \"{ws}\"\nsize = \"32MiB\"\n\n\
         [[link]]\nname = \"rx\"\ndepth = 256\nmtu = 2048\n\n\
         [[link]]\nname = \"uniq\"\ndepth = 256\nmtu = 2048\n\n\
         [[tile]]\nname = \"net\"\nkind = \"net-xdp\"\ncount = 2\noutputs = [\"rx\"]\n\
         params = {{ ifname = \"{}\", ports = [{PORT}], netns = \"{}\", attach = \"drv\", bind = \"copy\" }}\n\n\
         [[tile]]\nname = \"dedup\"\nkind = \"dedup\"\ninputs = [\"rx\"]\noutputs = [\"uniq\"]\n\n\
         [[tile]]\nname = \"cap\"\nkind = \"pcap\"\ninputs = [\"uniq\"]\n\
         params = {{ path = \"{}\" }}\n",
        a.ifname(),
        a.netns(),
        capture.display()
    )
}

/// UDP datagrams to `dst` from `socks` (made in the peer namespace), one
/// per flow every 4 ms (16 k a second), each with a payload of its own,
/// until `stop`.
fn send_until(socks: &[UdpSocket], dst: SocketAddr, stop: &AtomicBool) {
    let mut n = 0u64;
    let mut payload = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        for s in socks {
            n += 1;
            payload[..8].copy_from_slice(&n.to_le_bytes());
            // A full socket buffer or a missing neighbour entry only
            // loses traffic, which the test does not count.
            let _ = s.send_to(&payload, dst);
        }
        std::thread::sleep(Duration::from_millis(4));
    }
}

/// The records of the pcap file at `path`, read by hand: a global
/// header, then records to exactly the end of the file.
fn pcap_records(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() >= 24, "{}: a global header", path.display());
    assert_eq!(bytes[..4], 0xa1b2_c3d4u32.to_le_bytes(), "the pcap magic");
    let (mut at, mut n) = (24, 0);
    while at < bytes.len() {
        assert!(at + 16 <= bytes.len(), "record {n}: a whole record header");
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap()) as usize;
        assert!(
            incl <= orig && incl <= 65535,
            "record {n}: {incl} of {orig}"
        );
        at += 16 + incl;
        assert!(at <= bytes.len(), "record {n}: whole");
        n += 1;
    }
    n
}

/// A round of the net-xdp run: a veth pair of its own (a tile the
/// runner reports as not stopping in time keeps its thread, and its
/// AF_XDP socket, on the last round's pair), 64 flows from the peer
/// namespace, and a capture file of its own.
fn xdp_round(dir: &Path, ws: &str) -> RoundEnv {
    let pair = match VethPair::with_queues("chaos", 2) {
        Ok(p) => p,
        Err(e) => panic!("making a veth pair: {e}"),
    };
    let capture = dir.join(format!("{ws}.pcap"));
    let socks: Vec<UdpSocket> = pair
        .b()
        .run(|| {
            (0..64)
                .map(|_| UdpSocket::bind("0.0.0.0:0").unwrap())
                .collect()
        })
        .unwrap();
    let dst = SocketAddr::from((pair.a().addr(), PORT));
    let topology = xdp_topology(&pair, &capture, ws);
    let check_capture = move |p: &Pipeline| {
        // The pcap tile's own metrics are left alone by the writes: its
        // state and counters are its own. One that did not stop in time
        // (the runner said so) may still write.
        let halted = tilewire_pipeline::tile_metrics(p.workspace(), "cap")
            .is_some_and(|m| m.state() == Some(TileState::Halted));
        if halted {
            let written = p.counter("cap", "written").unwrap();
            assert_eq!(
                pcap_records(&capture),
                written,
                "the capture is valid and holds what the pcap tile wrote"
            );
        }
    };
    RoundEnv {
        topology,
        traffic: Some(Box::new(move |stop: &AtomicBool| {
            send_until(&socks, dst, stop)
        })),
        after: Some(Box::new(check_capture)),
        _keep: Some(Box::new(pair)),
    }
}

#[test]
fn a_thousand_random_writes_into_a_live_net_xdp_workspace_of_two_queues_never_panic_never_show_an_impossible_figure_never_go_silent(
) {
    // Privileges first: a pair made and dropped at once.
    match VethPair::with_queues("chaos", 2) {
        Ok(_) => {}
        Err(NetnsError::NotPermitted { .. }) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
            return;
        }
        Err(e) => panic!("making a veth pair: {e}"),
    }
    let dir = TempDir::new("chaos-xdp");
    let setup = |ws: &str| xdp_round(&dir.0, ws);
    let scene = Scene {
        setup: &setup,
        first: &["rx.0", "rx.1"],
        last: ("cap", "written"),
    };
    chaos(&scene, "xdp", Duration::from_secs(90));
}

/// A directory of its own under the system's temporary directory,
/// removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tilewire-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
