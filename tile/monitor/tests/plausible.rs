//! Words no healthy pipeline writes, as the monitor reads them: each is
//! shown CORRUPT with its place and the range expected, never as a
//! figure; a workspace truncated under the monitor is an error naming it,
//! not a SIGBUS.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestWs;
use tilewire_aio::{Aio, PktInfo};
use tilewire_monitor::{pid_alive, render, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_shmem::workspace::HEADER_SZ;
use tilewire_shmem::{Access, Workspace};
use tilewire_tile::link::consumer::Poll;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::fseq::DIAG_PUB_CNT;
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::Reliability::{Reliable, Unreliable};

const MTU: usize = 256;

fn report(s: &Snapshot, rates: Option<&Rates>) -> Report {
    Report::new(s, rates, HEARTBEAT_TIMEOUT, pid_alive)
}

fn send_some(link: &tilewire_tile::link::Link<'_>, n: u64) {
    let mut tx = LinkTx::new(link);
    for i in 0..n {
        let b = i.to_le_bytes();
        tx.send(&[PktInfo::new(&b)], true).unwrap();
    }
}

/// The table and problem lines of a report, the figures apart.
fn figures(table: &str) -> String {
    table
        .lines()
        .filter(|l| !l.starts_with("problem:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_frag_outside_the_dcache_is_corrupt_with_the_chunk_seen_and_the_chunks_held() {
    let t = TestWs::new("monbadchunk", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let dc = *a.dcache();
    a.mcache().publish(0, 1, 0x7fff_0000, 40, CTL_PKT, 0, 0);
    let mut c = a.consumer(0).unwrap();
    assert!(matches!(c.poll_with(|_, _| ()), Poll::Dropped(_)));
    c.housekeeping();
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    let r = report(&Snapshot::take(&ro), None);
    let want = format!(
        "1 frags refused: they pointed outside the dcache (last: chunk {} size 40), which holds \
         chunks [{}, {})",
        0x7fff_0000u32,
        dc.chunk0(),
        dc.chunk0() + (dc.data().len() / 64) as u32
    );
    assert_eq!(r.link("a").unwrap().consumers[0].corrupt, [want]);
    assert!(r
        .problems
        .iter()
        .any(|p| p.object == "link a consumer 0" && p.why.contains("refused")));
}

#[test]
fn an_unreliable_lag_past_the_depth_is_shown_lapped_never_above_the_depth() {
    let t = TestWs::new("monlapped", 1 << 22);
    let a = t.link("a", 64, MTU, &[Unreliable]);
    send_some(&a, 1000);
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    let r = report(&Snapshot::take(&ro), None);
    let c = &r.link("a").unwrap().consumers[0];
    assert_eq!((c.lag, c.lapped), (64, true));
    assert!(
        c.corrupt.is_empty(),
        "a lapped unreliable reader is no corruption"
    );
    let table = render::table(&r);
    assert!(table.contains(">64") && !table.contains("1k"), "{table}");
    let prom = render::prometheus(&r);
    let lag = prom
        .lines()
        .find(|l| l.starts_with("tilewire_link_consumer_lag_frags{"))
        .unwrap_or_else(|| panic!("{prom}"));
    assert!(lag.ends_with("} 64"), "{lag}");
}

#[test]
fn a_counter_running_backwards_is_corrupt_between_snapshots_not_a_negative_rate() {
    let t = TestWs::new("monbackwards", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    send_some(&a, 10);
    let f = a.fseqs()[0];
    f.diag_add(DIAG_PUB_CNT, 1_000);
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    let first = Snapshot::take(&ro);
    std::thread::sleep(Duration::from_millis(5));
    // A stray write takes the count down.
    f.diag_set(DIAG_PUB_CNT, 7);
    let cur = Snapshot::take(&ro);
    let rates = Rates::between(&first, &cur);
    let r = report(&cur, Some(&rates));
    let c = &r.link("a").unwrap().consumers[0];
    assert_eq!(
        c.corrupt,
        ["frags ran backwards from 1000 to 7 (counters only grow)"]
    );
    let table = render::table(&r);
    assert!(figures(&table).contains("CORRUPT"), "{table}");
    assert!(
        r.problems.iter().any(|p| p.object == "link a consumer 0"
            && p.why == "CORRUPT: frags ran backwards from 1000 to 7 (counters only grow)"),
        "{:?}",
        r.problems
    );
}

/// Index of the allocation table entry named `name`, read from the raw
/// table (entries of 80 bytes from HEADER_SZ; the name at byte 40).
fn entry_of(ws: &Workspace, name: &str) -> usize {
    let table = ws.whole();
    (0..64)
        .find(|i| {
            let bytes = table.atomic_bytes(HEADER_SZ + i * 80 + 40, 32).unwrap();
            let mut b = [0u8; 32];
            tilewire_shmem::load_bytes(&mut b, bytes);
            b.starts_with(name.as_bytes()) && b[name.len()] == 0
        })
        .unwrap()
}

#[test]
fn allocation_entries_outside_the_data_or_overlapping_are_corrupt_and_not_read() {
    let t = TestWs::new("monalloc", 1 << 22);
    let _a = t.link("a", 64, MTU, &[Reliable]);
    let _b = t.link("b", 64, MTU, &[Reliable]);
    let ws = &t.ws;
    let a_mc = ws.lookup("a.mc").unwrap();
    // b's mcache moved onto a's; a's first fseq past the end of the file.
    let word = |name: &str, field: usize| {
        let off = HEADER_SZ + entry_of(ws, name) * 80 + field;
        ws.whole().atomic_u64(off).unwrap()
    };
    word("b.mc", 8).store(a_mc.gaddr, Ordering::Relaxed);
    word("a.fs0", 8).store(ws.size() as u64 + 4096, Ordering::Relaxed);
    let problems = ws.allocation_problems();
    assert_eq!(
        problems.len(),
        3,
        "both overlapping entries and fs0: {problems:?}"
    );

    let ro = Workspace::join(ws.name(), Access::ReadOnly).unwrap();
    let s = Snapshot::take(&ro);
    let why = |object: &str| {
        s.problems
            .iter()
            .find(|p| p.object == object)
            .map(|p| p.why.clone())
            .unwrap_or_else(|| panic!("no problem for {object}: {:?}", s.problems))
    };
    let fs0 = why("a.fs0");
    assert!(
        fs0.starts_with("CORRUPT: allocation table entry \"a.fs0\"")
            && fs0.contains("outside the data region"),
        "{fs0}"
    );
    let overlap = why("b.mc").to_string() + &why("a.mc");
    assert!(overlap.contains("overlaps allocation"), "{overlap}");
    // Neither link is read through a corrupt entry.
    assert!(
        s.link("a").is_none() && s.link("b").is_none(),
        "{:?}",
        s.links
    );
}

#[test]
fn a_workspace_truncated_under_the_monitor_is_an_error_naming_it_not_a_crash() {
    let t = TestWs::new("montrunc", 1 << 22);
    let a = t.link("a", 1024, MTU, &[Reliable, Unreliable]);
    send_some(&a, 500);
    let ro = Workspace::join(t.ws.name(), Access::ReadOnly).unwrap();
    assert!(Snapshot::try_take(&ro).is_ok());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Readings go on while the file shrinks: some land in the window
        // between the size check and the read (the SIGBUS handler's
        // case). Each is whole or an error; the process lives.
        let reader = s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = Snapshot::try_take(&ro);
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(50));
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.ws.path())
            .unwrap()
            .set_len(4096)
            .unwrap();
        let end = Instant::now() + Duration::from_millis(100);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    let e = Snapshot::try_take(&ro).expect_err("the file is shorter than the mapping");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("workspace {:?}", t.ws.name())) && msg.contains("truncated"),
        "{msg}"
    );
    // take() never fails: the whole snapshot is that one problem.
    let s = Snapshot::take(&ro);
    assert!(s.tiles.is_empty() && s.links.is_empty());
    assert_eq!(s.problems[0].object, format!("workspace {}", t.ws.name()));
    // The lost pages, read anyway, are zeros, not a crash.
    let word = ro.whole().atomic_u64(1 << 20).unwrap();
    assert_eq!(word.load(Ordering::Relaxed), 0);
}
