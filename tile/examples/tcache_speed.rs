//! How fast the tcache answers "seen it?" against the sets a dedup stage
//! would otherwise use: `std`'s `HashSet<u64>` with a `VecDeque<u64>` for
//! first-in-first-out eviction (the Agave-style dedup's structure), and the
//! same pair over hashbrown's set with its default (fast) hasher.
//!
//! ```text
//! cargo run --release -p tilewire-tile --example tcache_speed [-- DEPTH_LOG2...]
//! ```
//!
//! For each depth (default 2^14 and 2^20) one stream of random 64-bit tags,
//! about 20% of them repeats of a tag seen among the last `depth / 2`, is
//! fed to each cache after a warm-up that fills it. The figure is the median
//! of five runs, in ns of cpu time (the thread's, so a busy machine
//! disturbs it less) per insert-or-query and millions of such per second;
//! every cache must count the same duplicates, or the program panics.
//! This is a measuring tool, not the project's bench (`tilewire-bench
//! tcache` is).

use std::collections::{HashSet, VecDeque};
use std::hint::black_box;
use std::time::Instant;

use tilewire_shmem::Region;
use tilewire_tile::tcache::Tcache;

/// One way to remember the last `depth` distinct tags.
trait Dedup {
    /// True if `tag` was seen among the last `depth` distinct tags;
    /// remembers it otherwise.
    fn insert(&mut self, tag: u64) -> bool;

    /// [`Dedup::insert`] for each of a burst of tags; returns how many
    /// were duplicates.
    fn insert_burst(&mut self, tags: &[u64], dups: &mut [bool]) -> usize {
        let mut n = 0;
        for (&tag, dup) in tags.iter().zip(dups) {
            *dup = self.insert(tag);
            n += usize::from(*dup);
        }
        n
    }
}

/// A hash set and a queue in insertion order, as the Agave-style dedup
/// keeps them.
struct SetRing<S> {
    depth: usize,
    set: S,
    order: VecDeque<u64>,
}

impl Dedup for SetRing<HashSet<u64>> {
    fn insert(&mut self, tag: u64) -> bool {
        if !self.set.insert(tag) {
            return true;
        }
        if self.order.len() == self.depth {
            let oldest = self.order.pop_front().unwrap_or_default();
            self.set.remove(&oldest);
        }
        self.order.push_back(tag);
        false
    }
}

impl Dedup for SetRing<hashbrown::HashSet<u64>> {
    fn insert(&mut self, tag: u64) -> bool {
        if !self.set.insert(tag) {
            return true;
        }
        if self.order.len() == self.depth {
            let oldest = self.order.pop_front().unwrap_or_default();
            self.set.remove(&oldest);
        }
        self.order.push_back(tag);
        false
    }
}

/// 64-aligned zeroed bytes for a tcache.
fn aligned(len: usize) -> (Vec<u8>, usize) {
    let bytes = vec![0u8; len + Tcache::ALIGN];
    let off = bytes.as_ptr().align_offset(Tcache::ALIGN);
    (bytes, off)
}

/// splitmix64: a fast generator whose outputs are well spread.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `warm` fresh tags, then `n` tags of which about `dup_pct`% repeat one of
/// the last `depth / 2` tags of the stream.
fn stream(depth: usize, warm: usize, n: usize, dup_pct: u64) -> Vec<u64> {
    let mut rng = 0x5eed_u64;
    let mut tags = Vec::with_capacity(warm + n);
    for i in 0..warm + n {
        let r = splitmix(&mut rng);
        let window = (depth / 2).min(i) as u64;
        if i >= warm && window > 0 && r % 100 < dup_pct {
            let back = (splitmix(&mut rng) % window) as usize;
            tags.push(tags[i - 1 - back]);
        } else {
            tags.push(r);
        }
    }
    tags
}

/// Feeds `tags[..warm]` untimed, then times `tags[warm..]`; returns ns per
/// tag and the duplicates found in the timed part.
fn run(cache: &mut dyn Dedup, tags: &[u64], warm: usize) -> (f64, u64) {
    for &tag in &tags[..warm] {
        black_box(cache.insert(tag));
    }
    let timed = &tags[warm..];
    let mut answers = [false; BURST];
    let (start, cpu) = (Instant::now(), cpu_ns());
    let mut dups = 0u64;
    for burst in timed.chunks(BURST) {
        dups += cache.insert_burst(burst, &mut answers) as u64;
    }
    // On a shared machine the time this thread ran is the steadier figure;
    // the wall clock stands in where the kernel does not say.
    let ns = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64,
        _ => start.elapsed().as_nanos() as f64,
    } / timed.len() as f64;
    (ns, black_box(dups))
}

/// Nanoseconds this thread has run on a cpu (Linux schedstat), if known.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Tags handed over at once, as a dedup tile finds them in one turn.
const BURST: usize = 32;

/// The tcache behind the [`Dedup`] face, one insert per tag, or by
/// `insert_batch` for each burst.
struct TcacheDedup<'a> {
    handle: tilewire_tile::tcache::TcacheHandle<'a>,
    batch: bool,
}

impl Dedup for TcacheDedup<'_> {
    #[inline]
    fn insert(&mut self, tag: u64) -> bool {
        self.handle.insert(tag)
    }

    fn insert_burst(&mut self, tags: &[u64], dups: &mut [bool]) -> usize {
        if !self.batch {
            let mut n = 0;
            for (&tag, dup) in tags.iter().zip(dups) {
                *dup = self.handle.insert(tag);
                n += usize::from(*dup);
            }
            return n;
        }
        self.handle.insert_batch(tags, dups)
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let logs: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a depth's log2"))
        .collect();
    let logs = if logs.is_empty() { vec![14, 20] } else { logs };
    const RUNS: usize = 5;
    println!(
        "{:>6} {:<26} {:>9} {:>9} {:>8} {:>6}",
        "depth", "impl", "ns/op", "Mops/s", "vs std", "dups%"
    );
    for log in logs {
        let depth = 1usize << log;
        let warm = 2 * depth;
        let n = (8 * depth).max(1 << 23);
        let tags = stream(depth, warm, n, 20);
        let impls = [
            "std HashSet+VecDeque",
            "hashbrown HashSet+VecDeque",
            "Tcache insert",
            "Tcache insert_batch",
        ];
        // Runs interleave the caches, so a noisy neighbour hurts them alike.
        let mut times = vec![Vec::new(); impls.len()];
        let mut dups = vec![0u64; impls.len()];
        for _ in 0..RUNS {
            for (k, name) in impls.iter().enumerate() {
                let (ns, d) = match *name {
                    "std HashSet+VecDeque" => {
                        let mut c = SetRing {
                            depth,
                            set: HashSet::with_capacity(depth + 1),
                            order: VecDeque::with_capacity(depth),
                        };
                        run(&mut c, &tags, warm)
                    }
                    "hashbrown HashSet+VecDeque" => {
                        let mut c = SetRing {
                            depth,
                            set: hashbrown::HashSet::with_capacity(depth + 1),
                            order: VecDeque::with_capacity(depth),
                        };
                        run(&mut c, &tags, warm)
                    }
                    tc => {
                        let map_cnt = Tcache::default_map_cnt(depth).unwrap();
                        let fp = Tcache::footprint(depth, map_cnt).unwrap();
                        let (mut bytes, off) = aligned(fp);
                        let mem = Region::from_mut(&mut bytes[off..off + fp]);
                        Tcache::new(mem, depth, map_cnt).unwrap();
                        let mut c = TcacheDedup {
                            handle: Tcache::join(mem).unwrap(),
                            batch: tc.ends_with("batch"),
                        };
                        run(&mut c, &tags, warm)
                    }
                };
                times[k].push(ns);
                dups[k] = d;
            }
        }
        let results: Vec<(&str, f64, u64)> = impls
            .iter()
            .zip(times)
            .zip(&dups)
            .map(|((&name, t), &d)| (name, median(t), d))
            .collect();
        let std_ns = results[0].1;
        for &(name, ns, dups) in &results {
            assert_eq!(dups, results[0].2, "{name} disagrees on the duplicates");
            println!(
                "{:>6} {:<26} {:>9.2} {:>9.1} {:>7.2}x {:>6.1}",
                format!("2^{log}"),
                name,
                ns,
                1e3 / ns,
                std_ns / ns,
                100.0 * dups as f64 / n as f64
            );
        }
    }
}
