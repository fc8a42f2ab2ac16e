//! `tilewire-bench tcache`: the dedup cache of 64-bit tags
//! ([`tilewire_tile::tcache`], the dedup tile's memory) against what a
//! Rust dedup stage writes without it: a `HashSet<u64>` of the tags
//! remembered and a `VecDeque<u64>` ring to evict the oldest (the shape
//! of an Agave-style dedup), with std's `HashSet` (SipHash, its default)
//! and with hashbrown's (foldhash, its default).
//!
//! Two more rows show the pair of calls the dedup tile makes, which
//! remembers a tag only after it passed its packet on: `lookup` then
//! `commit` (one probe of the map), against `contains` then `insert` (two).
//!
//! Every implementation gets the same stream of operations: insert a tag
//! and learn whether it was present. The tags are random 64-bit values
//! (never 0 or 1, which the tcache aliases) and a fixed share of them,
//! [`DUP_SHARE`], repeats one of the last `depth / 2` distinct tags, so it
//! is still remembered. The stream is made before timing, and the cache
//! is filled to its depth (each round, untimed) so every new tag in the
//! timed part evicts the oldest: the steady state of a dedup tile. Each
//! implementation must report exactly the repeats the stream holds, or
//! the command fails.
//!
//! Figures: ns per operation and operations per second over the timed
//! part, the best of several rounds with the implementations taking
//! turns (see [`crate::harness::stats::best_of`]), and the ratio of each
//! row's rate to each peer's, at each depth.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use tilewire_shmem::{PageKind, Workspace};
use tilewire_tile::tcache::Tcache;

use crate::harness::stats::best_of;
use crate::harness::{print_json, round, BenchArgs};

/// The share of operations that repeat a remembered tag.
pub(crate) const DUP_SHARE: f64 = 0.25;
/// The depths measured: a dedup tile's large cache and a small one that
/// fits in the caches of a core.
const DEPTHS: [usize; 2] = [1 << 20, 1 << 14];
const IMPLS: [&str; 5] = [
    "tilewire-tcache",
    "tcache-lookup-commit",
    "tcache-contains-insert",
    "std-hashset",
    "hashbrown-hashset",
];

/// The operations of one depth: the untimed fill, then the timed part,
/// and how many of the timed ones repeat a remembered tag.
struct Stream {
    fill: Vec<u64>,
    ops: Vec<u64>,
    dups: u64,
}

/// splitmix64: a fixed, seedable stream of 64-bit values.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Stream {
    /// `depth` distinct tags to fill with, then `n` operations of which a
    /// share [`DUP_SHARE`] repeat one of the last `depth / 2` distinct
    /// tags; from a fixed seed.
    fn new(depth: usize, n: usize, seed: u64) -> Stream {
        let mut state = seed;
        let fresh = |s: &mut u64| loop {
            // 0 and 1 are one tag to the tcache (its null tag); keep away.
            let t = splitmix(s);
            if t > 1 {
                break t;
            }
        };
        let fill: Vec<u64> = (0..depth).map(|_| fresh(&mut state)).collect();
        let mut distinct = fill.clone();
        let (mut ops, mut dups) = (Vec::with_capacity(n), 0);
        let recent = (depth / 2).max(1) as u64;
        let threshold = (DUP_SHARE * u64::MAX as f64) as u64;
        for _ in 0..n {
            if splitmix(&mut state) < threshold {
                let back = (splitmix(&mut state) % recent) as usize;
                ops.push(distinct[distinct.len() - 1 - back]);
                dups += 1;
            } else {
                let t = fresh(&mut state);
                distinct.push(t);
                ops.push(t);
            }
        }
        Stream { fill, ops, dups }
    }
}

/// A set and a FIFO ring of the last `depth` distinct tags: the peer.
struct SetRing<S> {
    set: S,
    ring: VecDeque<u64>,
    depth: usize,
}

/// The set operations the peer needs, for std's and hashbrown's sets
/// with their default hashers.
trait TagSet {
    /// A set with room for `n` tags.
    fn with_room(n: usize) -> Self;
    /// True if `tag` was new.
    fn insert(&mut self, tag: u64) -> bool;
    fn remove(&mut self, tag: u64);
}

impl TagSet for HashSet<u64> {
    fn with_room(n: usize) -> Self {
        HashSet::with_capacity(n)
    }
    #[inline]
    fn insert(&mut self, tag: u64) -> bool {
        HashSet::insert(self, tag)
    }
    #[inline]
    fn remove(&mut self, tag: u64) {
        HashSet::remove(self, &tag);
    }
}

impl TagSet for hashbrown::HashSet<u64> {
    fn with_room(n: usize) -> Self {
        hashbrown::HashSet::with_capacity(n)
    }
    #[inline]
    fn insert(&mut self, tag: u64) -> bool {
        hashbrown::HashSet::insert(self, tag)
    }
    #[inline]
    fn remove(&mut self, tag: u64) {
        hashbrown::HashSet::remove(self, &tag);
    }
}

impl<S: TagSet> SetRing<S> {
    /// True if `tag` was present (nothing changes: its age is not
    /// refreshed, as in the tcache); else remembers it, evicting the
    /// oldest when full.
    #[inline]
    fn insert(&mut self, tag: u64) -> bool {
        if !self.set.insert(tag) {
            return true;
        }
        if self.ring.len() == self.depth {
            let old = self.ring.pop_front().expect("a full ring");
            self.set.remove(old);
        }
        self.ring.push_back(tag);
        false
    }
}

/// Fills `insert` with the stream's fill, then times its operations:
/// (seconds, repeats seen).
fn timed(stream: &Stream, mut insert: impl FnMut(u64) -> bool) -> (f64, u64) {
    for &t in &stream.fill {
        insert(t);
    }
    let t0 = Instant::now();
    let mut dups = 0u64;
    for &t in &stream.ops {
        dups += u64::from(insert(std::hint::black_box(t)));
    }
    (t0.elapsed().as_secs_f64(), dups)
}

/// The peer with set `S` over `stream`: (seconds, repeats).
fn peer<S: TagSet>(stream: &Stream, depth: usize) -> (f64, u64) {
    let mut p = SetRing {
        set: S::with_room(depth + 1),
        ring: VecDeque::with_capacity(depth),
        depth,
    };
    timed(stream, |t| p.insert(t))
}

/// One run of implementation `which` over `stream`: (seconds, repeats).
fn run_one(
    which: &str,
    ws: &Workspace,
    depth: usize,
    stream: &Stream,
) -> Result<(f64, u64), String> {
    match which {
        "tilewire-tcache" | "tcache-lookup-commit" | "tcache-contains-insert" => {
            let map = Tcache::default_map_cnt(depth).ok_or("no map size for the depth")?;
            let size = Tcache::footprint(depth, map).ok_or("no footprint for the depth")?;
            let name = format!("tc{}", ws.allocations().len());
            let g = ws
                .alloc_named(&name, Tcache::ALIGN, size, 0)
                .map_err(|e| e.to_string())?;
            let region = || ws.region(g, size).map_err(|e| e.to_string());
            Tcache::new(region()?, depth, map).map_err(|e| e.to_string())?;
            let mut tc = Tcache::join(region()?).map_err(|e| e.to_string())?;
            let r = match which {
                // What the dedup tile does: ask, pass the packet on, then
                // remember the tag from where the lookup's probe ended.
                "tcache-lookup-commit" => timed(stream, |t| match tc.lookup(t) {
                    None => true,
                    Some(absent) => tc.commit(absent),
                }),
                // The same with two probes: contains, then insert.
                "tcache-contains-insert" => timed(stream, |t| tc.contains(t) || tc.insert(t)),
                _ => timed(stream, |t| tc.insert(t)),
            };
            let _ = Tcache::leave(tc);
            let _ = ws.free_named(&name);
            Ok(r)
        }
        "std-hashset" => Ok(peer::<HashSet<u64>>(stream, depth)),
        "hashbrown-hashset" => Ok(peer::<hashbrown::HashSet<u64>>(stream, depth)),
        other => Err(format!("unknown implementation {other}")),
    }
}

struct Row {
    depth: usize,
    which: &'static str,
    ops: usize,
    secs: f64,
    dups: u64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-12)
    }
    fn ns_per_op(&self) -> f64 {
        self.secs * 1e9 / self.ops.max(1) as f64
    }
}

/// One line of `--json`.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    bench: &'static str,
    #[serde(rename = "impl")]
    imp: &'a str,
    depth: usize,
    ops: usize,
    dup_share: f64,
    dups: u64,
    ns_per_op: f64,
    rate_per_s: u64,
    /// This row's rate over each peer's, same depth.
    ratio: std::collections::BTreeMap<&'a str, f64>,
    rounds: usize,
}

/// Runs the benchmark and prints it.
///
/// # Errors
/// The workspace cannot be made, or an implementation saw another count
/// of repeats than the stream holds.
pub(crate) fn run(opts: &BenchArgs) -> Result<(), String> {
    let (rounds, ops) = if opts.quick {
        (2, 1 << 20)
    } else {
        (5, 1 << 23)
    };
    let bytes = DEPTHS
        .iter()
        .filter_map(|&d| Tcache::footprint(d, Tcache::default_map_cnt(d)?))
        .max()
        .unwrap_or(0)
        + (4 << 20);
    let ws_name = format!("bench-tcache-{}", std::process::id());
    let ws = Workspace::create(&ws_name, bytes, PageKind::Normal).map_err(|e| e.to_string())?;
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = Workspace::unlink(&self.0);
        }
    }
    let _unlink = Unlink(ws_name);
    let mut rows = Vec::new();
    for depth in DEPTHS {
        let stream = Stream::new(depth, ops, 0x7469_6c65_7769_7265 ^ depth as u64);
        let mut failed = None;
        let best = best_of(
            rounds,
            IMPLS.len(),
            |k| {
                let (secs, dups) = run_one(IMPLS[k], &ws, depth, &stream)?;
                if dups != stream.dups {
                    return Err(format!(
                        "{} depth {depth}: saw {dups} repeats, the stream holds {}",
                        IMPLS[k], stream.dups
                    ));
                }
                Ok((secs, dups))
            },
            |(secs, _)| 1.0 / secs,
            |_, e| {
                failed.get_or_insert(e);
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        for (k, b) in best.into_iter().enumerate() {
            let (secs, dups) = b.ok_or("a contestant never ran")?;
            rows.push(Row {
                depth,
                which: IMPLS[k],
                ops,
                secs,
                dups,
            });
        }
    }
    print(&rows, rounds, opts.json);
    Ok(())
}

fn print(rows: &[Row], rounds: usize, json: bool) {
    let vs = |r: &Row, peer: &str| {
        rows.iter()
            .find(|x| x.depth == r.depth && x.which == peer)
            .map_or(0.0, |p| r.rate() / p.rate())
    };
    if json {
        for r in rows {
            let ratio = IMPLS
                .iter()
                .filter(|p| **p != r.which)
                .map(|p| (*p, round(vs(r, p), 3)))
                .collect();
            print_json(&JsonRow {
                bench: "tcache",
                imp: r.which,
                depth: r.depth,
                ops: r.ops,
                dup_share: DUP_SHARE,
                dups: r.dups,
                ns_per_op: round(r.ns_per_op(), 2),
                rate_per_s: r.rate().round() as u64,
                ratio,
                rounds,
            });
        }
        return;
    }
    println!(
        "tilewire-bench tcache: insert-or-query of random 64-bit tags, {:.0}% repeats, \
         filled to depth first (every new tag evicts the oldest); best of {rounds} rounds",
        DUP_SHARE * 100.0
    );
    println!();
    println!(
        "{:>8}  {:<22} {:>10} {:>9} {:>12} {:>9} {:>12}",
        "depth", "impl", "ops/s", "ns/op", "repeats", "vs std", "vs hashbrown"
    );
    for r in rows {
        println!(
            "{:>8}  {:<22} {:>8.2} M {:>9.2} {:>12} {:>8.2}x {:>11.2}x",
            r.depth,
            r.which,
            r.rate() / 1e6,
            r.ns_per_op(),
            r.dups,
            vs(r, "std-hashset"),
            vs(r, "hashbrown-hashset"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implementation_sees_the_repeats_the_stream_holds() {
        let ws = tilewire_shmem::TempWorkspace::new("btc", 4 << 20).unwrap();
        let depth = 1 << 10;
        let stream = Stream::new(depth, 20_000, 7);
        let share = stream.dups as f64 / stream.ops.len() as f64;
        assert!((share - DUP_SHARE).abs() < 0.02, "{share}");
        for which in IMPLS {
            let (_, dups) = run_one(which, &ws, depth, &stream).unwrap();
            assert_eq!(dups, stream.dups, "{which}");
        }
        assert!(stream.fill.iter().chain(&stream.ops).all(|&t| t > 1));
    }

    #[test]
    fn the_peer_forgets_the_oldest_and_does_not_refresh_a_repeat() {
        let mut p = SetRing {
            set: HashSet::<u64>::new(),
            ring: VecDeque::new(),
            depth: 2,
        };
        assert!(!p.insert(10));
        assert!(!p.insert(11));
        assert!(p.insert(10), "a repeat");
        assert!(!p.insert(12), "evicts 10, the oldest, though it repeated");
        assert!(!p.insert(10), "forgotten");
        assert!(p.insert(12));
    }
}
