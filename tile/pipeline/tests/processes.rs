//! The runner in processes mode, from this test's own binary: a tile per
//! process, each this binary started again, so `main` calls `tile_main`
//! first, as a user's pipeline binary does (this test has no libtest
//! harness for that reason; it prints libtest's summary line itself).
//!
//! - a stop loses nothing: gen -> forward -> batch (holding frags) -> sink;
//! - a tile killed holding a reliable link's credits, `restart =
//!   "on-failure"`: its producer stalls while it is gone, the runner
//!   restarts it by itself, and a dedup behind it passes every frag gen
//!   sent exactly once;
//! - a group is one process, and its stop loses nothing either; a group
//!   whose tile panics stops its other tiles, which drain, and fails;
//! - a net-xdp tile of two on one interface killed: the XDP program stays
//!   for the other, the monitor says the killed one is dead (as root);
//! - a binary that forgot `tile_main`: a clear error, no fork loop, no hang.

mod runner_support;

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use runner_support::{assert_drained, counter, exists, grouped, registry, ws_name};
use tilewire_pipeline::tile::stem::metrics::TileState;
use tilewire_pipeline::{tile_main, Pipeline, RunOptions, TileFailure, TILE_ENV};

/// Set for a run of this binary that plays a user binary without the
/// `tile_main` call.
const FORGET: &str = "TILEWIRE_TEST_FORGET_TILE_MAIN";
/// Set for a run of this binary that plays a user binary whose tile
/// panics, in threads mode.
const PANIC: &str = "TILEWIRE_TEST_PANIC";

fn topology(ws: &str) -> String {
    format!(
        r#"[workspace]
name = "{ws}"
mode = "processes"

[[link]]
name = "a"
depth = 512

[[link]]
name = "b"
depth = 512

[[link]]
name = "c"
depth = 512

[[tile]]
name = "gen"
kind = "gen"
outputs = ["a"]
params = {{ rate = 200000, burst = 16 }}

[[tile]]
name = "fwd"
kind = "forward"
inputs = ["a"]
outputs = ["b"]

[[tile]]
name = "batch"
kind = "batch"
inputs = ["b"]
outputs = ["c"]
params = {{ size = 64 }}

[[tile]]
name = "sink"
kind = "sink"
inputs = ["c"]
"#
    )
}

fn main() -> ExitCode {
    if std::env::var_os(FORGET).is_some() {
        return forgetful_main();
    }
    if std::env::var_os(PANIC).is_some() {
        return panicking_main();
    }
    tile_main(&registry());
    let tests: [(&str, fn()); 11] = [
        (
            "a_corrupt_progress_under_a_restart_policy_restarts_its_consumer_and_loses_nothing",
            a_corrupt_progress_under_a_restart_policy_restarts_its_consumer_and_loses_nothing,
        ),
        (
            "a_restart_is_supervised_reported_and_its_counters_summed_over_boots",
            a_restart_is_supervised_reported_and_its_counters_summed_over_boots,
        ),
        (
            "a_tile_killed_holding_credits_stalls_its_producer_comes_back_by_itself_and_loses_nothing",
            a_tile_killed_holding_credits_stalls_its_producer_comes_back_by_itself_and_loses_nothing,
        ),
        (
            "a_dead_tile_s_unread_input_is_in_the_error",
            a_dead_tile_s_unread_input_is_in_the_error,
        ),
        (
            "a_stop_in_processes_mode_delivers_every_frag_gen_sent",
            a_stop_in_processes_mode_delivers_every_frag_gen_sent,
        ),
        (
            "a_dying_net_tile_leaves_the_program_to_the_others",
            a_dying_net_tile_leaves_the_program_to_the_others,
        ),
        (
            "count_splits_a_links_frags_exactly_across_processes",
            count_splits_a_links_frags_exactly_across_processes,
        ),
        (
            "a_group_is_one_process_and_its_stop_loses_nothing",
            a_group_is_one_process_and_its_stop_loses_nothing,
        ),
        (
            "a_group_process_whose_tile_panics_stops_the_others_and_fails",
            a_group_process_whose_tile_panics_stops_the_others_and_fails,
        ),
        (
            "a_binary_that_forgot_tile_main_fails_clearly_without_a_fork_loop",
            a_binary_that_forgot_tile_main_fails_clearly_without_a_fork_loop,
        ),
        (
            "a_binary_whose_tile_panics_names_it_exits_non_zero_and_cleans_up",
            a_binary_whose_tile_panics_names_it_exits_non_zero_and_cleans_up,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!("\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn a_stop_in_processes_mode_delivers_every_frag_gen_sent() {
    let name = ws_name("procs");
    let topo = registry().parse(&topology(&name)).unwrap();
    let p = Pipeline::create(topo).unwrap();
    p.run(&RunOptions::new().duration(Duration::from_millis(700)))
        .unwrap();
    let sent = counter(&p, "gen", "sent");
    assert!(sent > 1000, "gen ran: {sent}");
    assert_eq!(counter(&p, "fwd", "forwarded"), sent);
    assert_eq!(counter(&p, "batch", "passed"), sent);
    assert_eq!(
        counter(&p, "sink", "frags"),
        sent,
        "the sink got all gen sent"
    );
    assert_drained(&p);
    eprintln!("processes mode: gen sent {sent}, the sink got {sent}");
    drop(p);
    assert!(!exists(&name), "the workspace is removed");
}

/// Waits up to 10 s for `done`.
fn wait_for(what: &str, done: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills tile `tile`'s process (by the pid the runner gave it).
fn kill_tile(running: &tilewire_pipeline::Running<'_>, tile: &str) -> u32 {
    let pid = running
        .pids()
        .into_iter()
        .find(|(n, _)| n == tile)
        .map(|(_, p)| p)
        .expect("the tile has a process");
    let ok = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "killing {tile} ({pid})");
    pid
}

fn a_restart_is_supervised_reported_and_its_counters_summed_over_boots() {
    let name = ws_name("prestart");
    let text = topology(&name).replace(
        "name = \"fwd\"\nkind = \"forward\"",
        "name = \"fwd\"\nkind = \"forward\"\nrestart = \"on-failure\"",
    );
    assert!(text.contains("on-failure"));
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let running = p.start(&RunOptions::new()).unwrap();
    wait_for("fwd forwards", &|| {
        p.counter("fwd", "forwarded").unwrap_or(0) > 5000
    });
    let before_kill = p.counter("fwd", "forwarded").unwrap_or(0);
    let first = kill_tile(&running, "fwd");
    // Nobody polls: the runner's own thread reaps and restarts it.
    let m = tilewire_pipeline::tile_metrics(p.workspace(), "fwd").unwrap();
    wait_for("fwd restarted", &|| {
        let s = m.snapshot();
        s.boots == 2 && s.pid != first && s.state == Some(TileState::Running)
    });
    wait_for("the restarted fwd forwards", &|| {
        p.counter("fwd", "forwarded").unwrap_or(0) > 5000
    });
    let report = running.stop().expect("a restarted crash is not a failure");
    let sent = report.counter("gen", "sent").unwrap();
    assert_eq!(
        report.restarts.len(),
        1,
        "one restart: {:?}",
        report.restarts
    );
    let r = &report.restarts[0];
    assert_eq!(r.tile, "fwd");
    assert!(r.cause.contains("9"), "the cause is the kill: {}", r.cause);
    assert_eq!(report.tile("fwd").unwrap().boots, 2);
    // The report sums both boots: at least what the first boot had
    // counted when it was killed plus all the second counted. (What the
    // first did after its last housekeeping is in neither: counters are
    // written at housekeeping, so a sum across a kill may fall short of
    // what gen sent by up to an interval's work; the links' figures
    // below are exact.)
    let this_boot = p.counter("fwd", "forwarded").unwrap_or(0);
    let total = report.counter("fwd", "forwarded").unwrap();
    assert!(
        this_boot < sent,
        "the last boot alone: {this_boot} of {sent}"
    );
    assert!(
        total >= before_kill + this_boot,
        "over both boots: {total}, at least {before_kill} + {this_boot}"
    );
    assert_eq!(report.link("a").unwrap().published, sent);
    let sink = report.counter("sink", "frags").unwrap();
    assert!(sink >= sent, "the sink got all gen sent: {sink} of {sent}");
    assert_eq!(report.link("c").unwrap().consumers[0].consumed, sink);
    assert_eq!(report.lost(), 0, "reliable links lose nothing");
    for l in &report.links {
        assert_eq!(l.consumers[0].unread, 0, "{} drained", l.name);
    }
    eprintln!(
        "restart: gen sent {sent}, fwd counted {total} over 2 boots ({before_kill} before the \
         kill, {this_boot} in the last), the sink got {sink}; {}",
        r.cause
    );
}

/// gen -> a -> batch (holds up to 64 frags, restarted on failure) -> b
/// -> dedup -> c -> sink, every link reliable and 512 deep.
fn held_credits_topology(ws: &str) -> String {
    format!(
        "[workspace]\nname = \"{ws}\"\nmode = \"processes\"\n\n\
         [[link]]\nname = \"a\"\ndepth = 512\n\n\
         [[link]]\nname = \"b\"\ndepth = 512\n\n\
         [[link]]\nname = \"c\"\ndepth = 512\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n\
         params = {{ rate = 200000, burst = 16 }}\n\n\
         [[tile]]\nname = \"batch\"\nkind = \"batch\"\nrestart = \"on-failure\"\n\
         inputs = [\"a\"]\noutputs = [\"b\"]\nparams = {{ size = 64 }}\n\n\
         [[tile]]\nname = \"dedup\"\nkind = \"dedup\"\ninputs = [\"b\"]\noutputs = [\"c\"]\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"c\"]\n"
    )
}

fn a_tile_killed_holding_credits_stalls_its_producer_comes_back_by_itself_and_loses_nothing() {
    let name = ws_name("pheld");
    let p = Pipeline::create(registry().parse(&held_credits_topology(&name)).unwrap()).unwrap();
    let running = p.start(&RunOptions::new()).unwrap();
    wait_for("batch passes frags on", &|| {
        p.counter("batch", "passed").unwrap_or(0) > 5000
    });
    let gen = tilewire_pipeline::tile_metrics(p.workspace(), "gen").unwrap();
    let batch = tilewire_pipeline::tile_metrics(p.workspace(), "batch").unwrap();
    let bp_ns_before = gen.snapshot().backpressure_ns;
    let first = kill_tile(&running, "batch");
    // Gone, batch holds the credits of the frags it never said it read:
    // gen fills a (bursts of 16) and publishes nothing more.
    let a = || {
        let r = running.report();
        let a = r.link("a").unwrap().clone();
        (a.published, a.consumers[0].unread)
    };
    wait_for("gen stalls on a", &|| a().1 > 512 - 16);
    let (stalled_at, unread) = a();
    std::thread::sleep(Duration::from_millis(40));
    let (still, _) = a();
    // The runner restarts a tile 100 ms after it found it dead at the
    // earliest: nobody read a meanwhile.
    assert_eq!(batch.snapshot().boots, 1, "not restarted within 40 ms");
    assert_eq!(
        still, stalled_at,
        "gen published nothing while batch was gone ({unread} unread)"
    );
    // Nobody calls poll: the runner's own thread restarts batch.
    wait_for("batch restarted", &|| {
        let s = batch.snapshot();
        s.boots == 2 && s.pid != first && s.state == Some(TileState::Running)
    });
    wait_for("traffic through the restarted batch", &|| {
        p.counter("batch", "passed").unwrap_or(0) > 5000
    });
    let stalled_ns = gen.snapshot().backpressure_ns - bp_ns_before;
    assert!(
        stalled_ns >= 80_000_000,
        "gen's back-pressure shows the stall (100 ms of backoff): {stalled_ns} ns"
    );
    let report = running.stop().expect("a restarted crash is not a failure");
    assert_eq!(report.restarts.len(), 1, "{:?}", report.restarts);
    assert_eq!(report.restarts[0].tile, "batch");
    assert_eq!(report.tile("batch").unwrap().boots, 2);
    assert_eq!(report.lost(), 0, "reliable links lose nothing");
    for l in &report.links {
        assert_eq!(l.consumers[0].unread, 0, "{} drained", l.name);
    }
    // Every frag gen sent went through batch at least once (its
    // successor passed on again what it passed on after its last
    // published progress), and through the dedup exactly once.
    let sent = report.counter("gen", "sent").unwrap();
    let b = report.link("b").unwrap();
    assert_eq!(report.link("a").unwrap().published, sent);
    assert!(
        b.published >= sent,
        "batch passed on {} of {sent}",
        b.published
    );
    let replays = b.published - sent;
    let (unique, dups) = (
        report.counter("dedup", "unique").unwrap(),
        report.counter("dedup", "dups").unwrap(),
    );
    assert_eq!(b.consumers[0].consumed, b.published);
    assert_eq!(unique, sent, "every frag gen sent, once");
    assert_eq!(dups, replays, "the replays, and nothing else, dropped");
    assert_eq!(report.counter("sink", "frags"), Some(sent));
    assert_eq!(report.link("c").unwrap().consumers[0].consumed, sent);
    eprintln!(
        "held credits: gen stalled {} ms with {unread} unread on a; sent {sent}, batch passed \
         on {} ({replays} replayed), dedup {unique} unique, the sink got {sent}",
        stalled_ns / 1_000_000,
        b.published
    );
    drop(p);
    assert!(!exists(&name), "the workspace is removed");
}

fn a_corrupt_progress_under_a_restart_policy_restarts_its_consumer_and_loses_nothing() {
    let name = ws_name("pcorrupt");
    // gen -> fwd -> sink, the sink restarting on failure.
    let text = format!(
        "[workspace]\nname = \"{name}\"\nmode = \"processes\"\n\n\
         [[link]]\nname = \"a\"\ndepth = 512\n\n[[link]]\nname = \"c\"\ndepth = 512\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n\
         params = {{ rate = 200000, burst = 16 }}\n\n\
         [[tile]]\nname = \"fwd\"\nkind = \"forward\"\ninputs = [\"a\"]\noutputs = [\"c\"]\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\nrestart = \"on-failure\"\ninputs = [\"c\"]\n"
    );
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let mut running = p.start(&RunOptions::new()).unwrap();
    wait_for("the sink counts", &|| {
        p.counter("sink", "frags").unwrap_or(0) > 2000
    });
    // The sink is stopped, so it cannot write its progress back, and its
    // progress on link c is set 5 M past the producer's: a word no
    // healthy link holds.
    let pid = running
        .pids()
        .into_iter()
        .find(|(n, _)| n == "sink")
        .unwrap()
        .1;
    let ok = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let c = tilewire_pipeline::tile::link::Link::join(p.workspace(), "c").unwrap();
    let bogus = c.mcache().seq_query() + 5_000_000;
    c.fseqs()[0].update(bogus);
    // The runner restarts the sink rather than ending the run.
    let m = tilewire_pipeline::tile_metrics(p.workspace(), "sink").unwrap();
    wait_for("the sink restarted", &|| {
        let s = m.snapshot();
        s.boots == 2 && s.state == Some(TileState::Running)
    });
    assert!(!running.poll(), "the run goes on");
    let before = p.counter("sink", "frags").unwrap_or(0);
    wait_for("the restarted sink counts", &|| {
        p.counter("sink", "frags").unwrap_or(0) > before + 2000
    });
    let report = running
        .stop()
        .expect("a corruption a restart took care of is no failure");
    assert_eq!(report.restarts.len(), 1, "{:?}", report.restarts);
    let r = &report.restarts[0];
    assert_eq!(r.tile, "sink");
    assert!(
        r.cause.contains("corrupt shared word") && r.cause.contains(&bogus.to_string()),
        "the restart names the word and the value: {}",
        r.cause
    );
    let sent = report.counter("gen", "sent").unwrap();
    assert_eq!(report.lost(), 0, "reliable links lose nothing");
    let c = &report.link("c").unwrap().consumers[0];
    assert!(
        c.consumed >= sent,
        "the sink read all gen sent: {} of {sent}",
        c.consumed
    );
    assert_eq!(c.unread, 0);
    eprintln!(
        "corrupt progress: sink restarted ({}); gen sent {sent}, the sink read {}",
        r.cause, c.consumed
    );
}

fn a_dead_tile_s_unread_input_is_in_the_error() {
    let name = ws_name("punread");
    let p = Pipeline::create(registry().parse(&topology(&name)).unwrap()).unwrap();
    let mut running = p.start(&RunOptions::new()).unwrap();
    wait_for("fwd forwards", &|| {
        p.counter("fwd", "forwarded").unwrap_or(0) > 1000
    });
    kill_tile(&running, "fwd");
    // gen fills fwd's input (512 deep, bursts of 16) and waits for
    // credits.
    let unread = || running.report().link("a").unwrap().consumers[0].unread;
    wait_for("gen stalls", &|| unread() > 512 - 16);
    let left = unread();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(unread(), left, "gen stalled");
    assert!(!running.poll(), "the other tiles run on");
    let e = running.stop().expect_err("a tile died");
    assert!(
        e.failures()
            .iter()
            .any(|f| matches!(f, TileFailure::Exited { tile, .. } if tile == "fwd")),
        "{e}"
    );
    let report = e.report().expect("the run's report");
    assert_eq!(report.link("a").unwrap().consumers[0].unread, left);
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "link \"a\": {left} frags left unread by tile \"fwd\""
        )),
        "the error says what the dead tile left: {text}"
    );
}

fn a_dying_net_tile_leaves_the_program_to_the_others() {
    let pair = match tilewire_aio::netns::VethPair::with_queues("pr-xdp", 2) {
        Ok(p) => p,
        Err(tilewire_aio::netns::NetnsError::NotPermitted { .. }) => {
            eprintln!("\nskipped: needs CAP_NET_ADMIN");
            return;
        }
        Err(e) => panic!("making a veth pair: {e}"),
    };
    const PORT: u16 = 9340;
    let a = pair.a();
    let name = ws_name("pxdp");
    let text = format!(
        "[workspace]\nname = \"{name}\"\nmode = \"processes\"\n\n\
         [[link]]\nname = \"rx\"\ndepth = 1024\nmtu = 2048\n\n\
         [[tile]]\nname = \"net\"\nkind = \"net-xdp\"\ncount = 2\noutputs = [\"rx\"]\n\
         params = {{ ifname = \"{}\", ports = [{PORT}], netns = \"{}\", attach = \"drv\", bind = \"copy\" }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"rx\"]\n",
        a.ifname(),
        a.netns()
    );
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let running = p.start(&RunOptions::new()).unwrap();
    let pids = running.pids();
    let pid = |t: &str| pids.iter().find(|(n, _)| n == t).map(|(_, p)| *p).unwrap();
    let dst = std::net::SocketAddr::from((a.addr(), PORT));
    let blast = || {
        pair.b()
            .run(|| {
                let socks: Vec<std::net::UdpSocket> = (0..64)
                    .map(|_| std::net::UdpSocket::bind("0.0.0.0:0").unwrap())
                    .collect();
                for round in 0..20u32 {
                    for s in &socks {
                        s.send_to(&round.to_le_bytes(), dst).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
    };
    let got = |t: &str| p.counter(t, "rx_pkts").unwrap_or(0);
    blast();
    wait_for("both queues", &|| got("net.0") + got("net.1") == 1280);
    assert!(got("net.0") > 0 && got("net.1") > 0);
    let attached = || {
        let out = Command::new("ip")
            .args(["-n", a.netns(), "link", "show", "dev", a.ifname()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    assert!(attached(), "the program is attached");
    let ok = Command::new("kill")
        .args(["-KILL", &pid("net.1").to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "killing net.1");
    let m = tilewire_pipeline::tile_metrics(p.workspace(), "net.1").unwrap();
    wait_for("net.1 dead", &|| {
        !tilewire_shmem::pid_alive(m.snapshot().pid)
    });
    assert_eq!(
        m.state(),
        Some(TileState::Running),
        "it did not halt: it died"
    );
    assert!(attached(), "the program stays for the others");
    // What a monitor shows: net.1 dead, net.0 running.
    let snap = tilewire_monitor::Snapshot::take(p.workspace());
    let report = tilewire_monitor::Report::new(
        &snap,
        None,
        Duration::from_secs(2),
        tilewire_shmem::pid_alive,
    );
    let health = |t: &str| report.tile(t).map(|r| (r.health, r.dead_reason.clone()));
    let (h1, why) = health("net.1").unwrap();
    assert_eq!(h1, "dead", "the monitor says net.1 is dead");
    assert!(why.is_some_and(|w| w.contains("is gone")), "it says why");
    assert_eq!(health("net.0").unwrap().0, "running");
    // Queue 1's slot in the XSKMAP went with net.1's socket: its packets
    // go on to the kernel, where no socket has the port (UDP NoPorts).
    let no_ports = || udp_no_ports(a.netns());
    let (before, kernel0) = (got("net.0"), no_ports());
    blast();
    wait_for("all 1280 to land", &|| {
        got("net.0") - before + (no_ports() - kernel0) >= 1280
    });
    let (more, kernel) = (got("net.0") - before, no_ports() - kernel0);
    eprintln!(
        "net.1 killed: of 1280 more, net.0 received {more} and the kernel {kernel} (queue 1)"
    );
    assert!(
        more > 0 && kernel > 0,
        "queue 0 to net.0, queue 1 to the kernel"
    );
    assert_eq!(more + kernel, 1280, "every packet accounted for");
    let e = running.stop().unwrap_err();
    assert!(
        e.failures()
            .iter()
            .any(|f| matches!(f, TileFailure::Exited { tile, .. } if tile == "net.1")),
        "the run reports the killed tile: {e}"
    );
    drop(p);
    assert!(!attached(), "detached when the run ended");
    assert!(!exists(&name), "the workspace is removed");
}

/// `Udp: NoPorts` of network namespace `ns`: datagrams the kernel had no
/// socket for.
fn udp_no_ports(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .expect("ip netns exec");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (
        udp.next().expect("Udp header"),
        udp.next().expect("Udp values"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "NoPorts")
        .and_then(|(_, v)| v.parse().ok())
        .expect("a NoPorts column")
}

fn count_splits_a_links_frags_exactly_across_processes() {
    let name = ws_name("pcount");
    let text = topology(&name).replace(
        "name = \"batch\"\nkind = \"batch\"\n",
        "name = \"batch\"\nkind = \"batch\"\ncount = 2\n",
    );
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let opts = RunOptions::new().duration(Duration::from_millis(700));
    let mut running = p.start(&opts).unwrap();
    let pids = running.pids();
    let pid = |t: &str| pids.iter().find(|(n, _)| n == t).map(|(_, p)| *p).unwrap();
    assert_ne!(pid("batch.0"), pid("batch.1"), "a process each: {pids:?}");
    running.wait(&opts, |_| {});
    running.stop().unwrap();
    let sent = counter(&p, "gen", "sent");
    let (a, b) = (
        counter(&p, "batch.0", "passed"),
        counter(&p, "batch.1", "passed"),
    );
    assert!(sent > 1000, "gen ran: {sent}");
    assert_eq!(a + b, sent, "each frag passed on once: {a} + {b}");
    assert!(a.abs_diff(b) <= 1, "round robin: {a} and {b}");
    assert_eq!(
        counter(&p, "sink", "frags"),
        sent,
        "the sink got all gen sent"
    );
    assert_drained(&p);
    eprintln!("processes mode, count = 2: gen sent {sent}, batch.0 {a}, batch.1 {b}");
    drop(p);
    assert!(!exists(&name), "the workspace is removed");
}

fn a_group_is_one_process_and_its_stop_loses_nothing() {
    let name = ws_name("pgroup");
    let text = grouped(&topology(&name), "mid", &["fwd", "batch"]);
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let opts = RunOptions::new().duration(Duration::from_millis(700));
    let mut running = p.start(&opts).unwrap();
    let pids = running.pids();
    let pid = |t: &str| pids.iter().find(|(n, _)| n == t).map(|(_, p)| *p).unwrap();
    assert_eq!(
        pid("fwd"),
        pid("batch"),
        "one process for the group: {pids:?}"
    );
    assert_ne!(pid("gen"), pid("fwd"), "{pids:?}");
    assert_ne!(pid("sink"), pid("fwd"), "{pids:?}");
    running.wait(&opts, |_| {});
    running.stop().unwrap();
    let sent = counter(&p, "gen", "sent");
    assert!(sent > 1000, "gen ran: {sent}");
    assert_eq!(counter(&p, "fwd", "forwarded"), sent);
    assert_eq!(counter(&p, "batch", "passed"), sent);
    assert_eq!(
        counter(&p, "sink", "frags"),
        sent,
        "the sink got all gen sent"
    );
    assert_drained(&p);
    eprintln!("processes mode, fwd and batch in one process: gen sent {sent}, the sink got {sent}");
    drop(p);
    assert!(!exists(&name), "the workspace is removed");
}

fn a_group_process_whose_tile_panics_stops_the_others_and_fails() {
    // boom reads the unreliable link a beside fwd, in fwd's group: its
    // panic stops fwd and the sink, which drain; gen goes on alone.
    let name = ws_name("pgboom");
    let text = format!(
        "[workspace]\nname = \"{name}\"\nmode = \"processes\"\n\n\
         [[link]]\nname = \"a\"\ndepth = 1024\nreliable = false\n\n\
         [[link]]\nname = \"b\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ rate = 20000, burst = 4 }}\n\n\
         [[tile]]\nname = \"fwd\"\nkind = \"forward\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n\n\
         [[tile]]\nname = \"boom\"\nkind = \"boom\"\ninputs = [\"a\"]\nparams = {{ after = 500 }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"b\"]\n"
    );
    let text = grouped(&text, "g", &["fwd", "boom", "sink"]);
    let p = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let e = p
        .run(&RunOptions::new().duration(Duration::from_millis(1500)))
        .unwrap_err();
    let [TileFailure::GroupExited { group, tiles, .. }] = e.failures() else {
        panic!("one failure, the group's process: {e}");
    };
    assert_eq!(group, "g");
    assert_eq!(tiles, &["fwd", "boom", "sink"]);
    assert!(
        e.to_string()
            .starts_with("group \"g\" (its process, with tiles fwd, boom, sink) exited"),
        "{e}"
    );
    let ws = p.workspace();
    for t in ["fwd", "sink"] {
        let m = tilewire_pipeline::tile_metrics(ws, t).unwrap();
        assert_eq!(m.state(), Some(TileState::Halted), "{t} halted");
    }
    let fwd = counter(&p, "fwd", "forwarded");
    assert!(fwd >= 500, "fwd ran to the panic: {fwd}");
    assert_eq!(
        counter(&p, "sink", "frags"),
        fwd,
        "the sink drained all fwd passed on"
    );
    assert!(counter(&p, "gen", "sent") > fwd, "gen went on alone");
    drop(p);
    assert!(!exists(&name), "the workspace is removed");
}

/// A user binary that makes the pipeline without calling `tile_main`: in
/// its tile processes it makes the pipeline again.
fn forgetful_main() -> ExitCode {
    let name = std::env::var("TILEWIRE_TEST_WS").expect("the workspace name");
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let topo = registry().parse(&topology(&name))?;
        let p = Pipeline::create(topo)?;
        p.run(&RunOptions::new().duration(Duration::from_millis(200)))?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forgetful: {e}");
            ExitCode::FAILURE
        }
    }
}

fn a_binary_that_forgot_tile_main_fails_clearly_without_a_fork_loop() {
    let name = ws_name("forgot");
    let start = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .env(FORGET, "1")
        .env("TILEWIRE_TEST_WS", &name)
        .env_remove(TILE_ENV)
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(!out.status.success(), "the run fails");
    assert!(took < Duration::from_secs(20), "no hang: {took:?}");
    // Each of the 4 tile processes refused to make a pipeline, once: no
    // tile process started another.
    let refused = stderr
        .matches("call tilewire_pipeline::tile_main(&registry) first thing in main")
        .count();
    assert_eq!(refused, 4, "{stderr}");
    // Each tile's lines reach the runner's stderr tagged with its name.
    for tile in ["gen", "fwd", "batch", "sink"] {
        assert!(
            stderr.contains(&format!(
                "[{tile}] forgetful: this process was started as tile"
            )),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("its process ended before the tile ran"),
        "the runner says which tile never ran: {stderr}"
    );
    assert!(!exists(&name), "the workspace is removed");
}

/// A user binary, threads mode, whose `boom` tile panics at its 300th frag.
fn panicking_main() -> ExitCode {
    let name = std::env::var("TILEWIRE_TEST_WS").expect("the workspace name");
    let text = format!(
        "[workspace]\nname = \"{name}\"\n\n[[link]]\nname = \"a\"\ndepth = 256\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n\n\
         [[tile]]\nname = \"boom\"\nkind = \"boom\"\ninputs = [\"a\"]\nparams = {{ after = 300 }}\n"
    );
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let p = Pipeline::create(registry().parse(&text)?)?;
        p.run(&RunOptions::new())?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("panicking: {e}");
            ExitCode::FAILURE
        }
    }
}

fn a_binary_whose_tile_panics_names_it_exits_non_zero_and_cleans_up() {
    let name = ws_name("panic");
    let start = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .env(PANIC, "1")
        .env("TILEWIRE_TEST_WS", &name)
        .env_remove(TILE_ENV)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(!out.status.success(), "exits non-zero");
    assert!(start.elapsed() < Duration::from_secs(20), "no hang");
    // The panic as Rust prints it, from the thread named after the tile,
    // and the run's own report.
    assert!(stderr.contains("thread 'boom'"), "{stderr}");
    assert!(
        stderr.contains("panicking: tile \"boom\" panicked: boom at frag 300"),
        "{stderr}"
    );
    assert!(!exists(&name), "nothing left in shared memory");
}
