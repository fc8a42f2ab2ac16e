//! [`Snapshot::take`]: one reading of every tile and link of a workspace.
//!
//! Tiles are found by their metrics allocations (`<tile>.tm`); links by
//! name, from every tile's inputs and outputs and from every mcache
//! allocation (`<link>.mc`), so a link fed by something that is not a tile
//! (a test, a [`LinkTx`](tilewire_tile::link::tx::LinkTx) in another program) shows
//! too. Everything is joined through the objects' own checked `join`s,
//! which read nothing but atomics and work on a read-only mapping.

use std::collections::BTreeSet;

use serde::Serialize;
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::{AllocInfo, Region, TruncatedError, Workspace};

use tilewire_tile::hist::{bucket_bounds, Hist, HistSnapshot};
use tilewire_tile::link::fseq::{
    bad_frag, FseqHandle, DIAG_BAD_CNT, DIAG_BAD_LAST, DIAG_CORRUPT_CNT, DIAG_FILT_CNT,
    DIAG_FILT_SZ, DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS, DIAG_OVRNR_CNT, DIAG_PUB_CNT, DIAG_PUB_SZ,
};
use tilewire_tile::link::Link;
use tilewire_tile::stem::latency_name;
use tilewire_tile::stem::metrics::{TileLayout, TileMetrics, TileSnapshot};

/// Something in the workspace that is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The allocation or link concerned.
    pub object: String,
    /// What is wrong with it.
    pub why: String,
}

/// Upper bounds, in nanoseconds, of the coarse buckets a latency
/// histogram is summed into for Prometheus (`le`; the last bucket, `+Inf`,
/// is the count): 100 ns to 1 s in 1-2.5-5 steps.
pub const LATENCY_BOUNDS_NS: [u64; 22] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// A latency histogram, summed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyView {
    /// Frags recorded since the histogram was made.
    pub count: u64,
    /// Their latencies added up, in nanoseconds.
    pub sum_ns: u64,
    /// Median, in nanoseconds (the upper bound of its bucket).
    pub p50_ns: u64,
    /// 99th percentile, in nanoseconds (the upper bound of its bucket).
    pub p99_ns: u64,
    /// Frags at or below each bound of [`LATENCY_BOUNDS_NS`], cumulative.
    /// A fine bucket of the workspace's histogram counts under the first
    /// bound at or above its upper end, so no frag is counted below its
    /// latency (a bound may undercount by the fine buckets straddling it,
    /// each at most 1/16 of its value wide).
    #[serde(skip)]
    pub cumulative: [u64; LATENCY_BOUNDS_NS.len()],
}

/// One tile, as its metrics say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileView {
    /// The tile's name (its metrics allocation without `.tm`).
    pub name: String,
    /// Kind, links and counter names.
    pub layout: TileLayout,
    /// The live values.
    pub metrics: TileSnapshot,
    /// Latency of each input, in input order; `None` where the histogram
    /// is missing or unreadable (the latter is also a [`Problem`]).
    pub latency: Vec<Option<LatencyView>>,
}

/// One consumer of a link, as its fseq says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerView {
    /// Its index on the link.
    pub index: usize,
    /// Whether the producer waits for it.
    pub reliable: bool,
    /// Its published progress: the next seq it will read.
    pub progress: u64,
    /// Frags consumed.
    pub frags: u64,
    /// Payload bytes consumed.
    pub bytes: u64,
    /// Frags skipped by its filter.
    pub filtered: u64,
    /// Payload bytes skipped.
    pub filtered_bytes: u64,
    /// Times it was lapped while polling.
    pub overruns_polling: u64,
    /// Frags lost to those overruns.
    pub frags_lost: u64,
    /// Frags overwritten while it read them.
    pub overruns_reading: u64,
    /// Frags pointing outside the dcache.
    pub bad: u64,
    /// The last of those: its chunk and size.
    pub bad_last: Option<(u32, u16)>,
    /// Frags skipped because their line held a seq no producer puts there
    /// (a corrupt word).
    pub corrupt_lines: u64,
}

impl ConsumerView {
    fn read(index: usize, f: &FseqHandle<'_>) -> ConsumerView {
        ConsumerView {
            index,
            reliable: f.reliable(),
            progress: f.query(),
            frags: f.diag(DIAG_PUB_CNT),
            bytes: f.diag(DIAG_PUB_SZ),
            filtered: f.diag(DIAG_FILT_CNT),
            filtered_bytes: f.diag(DIAG_FILT_SZ),
            overruns_polling: f.diag(DIAG_OVRNP_CNT),
            frags_lost: f.diag(DIAG_OVRNP_FRAGS),
            overruns_reading: f.diag(DIAG_OVRNR_CNT),
            bad: f.diag(DIAG_BAD_CNT),
            bad_last: bad_frag(f.diag(DIAG_BAD_LAST)),
            corrupt_lines: f.diag(DIAG_CORRUPT_CNT),
        }
    }
}

/// One link: its producer's position and its consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// The link's name.
    pub name: String,
    /// Frags in its ring.
    pub depth: u64,
    /// Largest payload.
    pub mtu: usize,
    /// The chunks `[first, end)` its dcache holds.
    pub chunks: (u32, u32),
    /// Seq of its first frag.
    pub seq0: u64,
    /// One past the newest frag published
    /// ([`MCacheHandle::published_next`](tilewire_tile::link::mcache::MCacheHandle::published_next)).
    pub producer_next: u64,
    /// Its consumers, by index.
    pub consumers: Vec<ConsumerView>,
}

impl LinkView {
    fn read(link: &Link<'_>) -> LinkView {
        let mc = link.mcache();
        let producer_next = mc.published_next();
        LinkView {
            name: link.name().to_owned(),
            depth: link.depth(),
            mtu: link.mtu(),
            chunks: {
                let dc = link.dcache();
                let n = dc.data().len() / tilewire_tile::link::frag::CHUNK_SZ;
                (dc.chunk0(), dc.chunk0().saturating_add(n as u32))
            },
            seq0: mc.seq0(),
            producer_next,
            consumers: link
                .fseqs()
                .iter()
                .enumerate()
                .map(|(i, f)| ConsumerView::read(i, f))
                .collect(),
        }
    }

    /// Frags published since the link was made.
    pub fn published(&self) -> u64 {
        self.producer_next.wrapping_sub(self.seq0)
    }

    /// How many frags consumer `c` trails the producer by (0 if it is
    /// ahead, which a stale read of the producer can make it look).
    pub fn lag(&self, c: &ConsumerView) -> u64 {
        let d = self.producer_next.wrapping_sub(c.progress) as i64;
        d.max(0) as u64
    }
}

/// Everything a monitor reads from a workspace at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The workspace's name.
    pub workspace: String,
    /// `CLOCK_MONOTONIC` nanoseconds when the reading began.
    pub taken_ns: u64,
    /// Tiles, by name.
    pub tiles: Vec<TileView>,
    /// Links, by name.
    pub links: Vec<LinkView>,
    /// What could not be read, and why.
    pub problems: Vec<Problem>,
}

/// The memory of allocation `a`, or why there is none.
fn region_of<'w>(ws: &'w Workspace, a: &AllocInfo) -> Result<Region<'w>, String> {
    let size = usize::try_from(a.size).map_err(|_| "size does not fit in memory".to_string())?;
    ws.region(a.gaddr, size).map_err(|e| e.to_string())
}

fn find<'a>(allocs: &'a [AllocInfo], name: &str) -> Option<&'a AllocInfo> {
    allocs.iter().find(|a| a.name.as_deref() == Some(name))
}

impl Snapshot {
    /// Reads every tile and link of `ws`, which may be joined read-only.
    /// Never fails: whatever cannot be read is listed in
    /// [`Snapshot::problems`].
    pub fn take(ws: &Workspace) -> Snapshot {
        Snapshot::try_take(ws).unwrap_or_else(|e| Snapshot {
            workspace: ws.name().to_owned(),
            taken_ns: mono_ns(),
            tiles: Vec::new(),
            links: Vec::new(),
            problems: vec![Problem {
                object: format!("workspace {}", ws.name()),
                why: e.to_string(),
            }],
        })
    }

    /// [`Snapshot::take`], or an error if the workspace's file was
    /// truncated before or while it was read (see
    /// [`Workspace::check_intact`]): nothing read from it is shown then.
    ///
    /// # Errors
    /// [`TruncatedError`], naming the workspace and the sizes.
    pub fn try_take(ws: &Workspace) -> Result<Snapshot, TruncatedError> {
        ws.check_intact()?;
        let snap = Snapshot::read(ws);
        ws.check_intact()?;
        Ok(snap)
    }

    fn read(ws: &Workspace) -> Snapshot {
        let taken_ns = mono_ns();
        let allocs = ws.allocations();
        // An allocation table entry no allocator writes is corrupt: named,
        // and the object in it not read.
        let bad_allocs = ws.allocation_problems();
        let mut problems: Vec<Problem> = bad_allocs
            .iter()
            .map(|p| Problem {
                object: p
                    .entry
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{:#x}", p.entry.gaddr)),
                why: format!("CORRUPT: {p}"),
            })
            .collect();
        let allocs: Vec<AllocInfo> = allocs
            .into_iter()
            .filter(|a| !bad_allocs.iter().any(|p| p.entry == *a))
            .collect();
        let mut tiles = Vec::new();
        let mut link_names = BTreeSet::new();
        for a in &allocs {
            let Some(alloc_name) = a.name.as_deref() else {
                continue;
            };
            if let Some(link) = alloc_name.strip_suffix(".mc") {
                link_names.insert(link.to_owned());
            }
            let Some(tile) = alloc_name.strip_suffix(".tm") else {
                continue;
            };
            match read_tile(ws, &allocs, tile, a, &mut problems) {
                Ok(t) => {
                    link_names.extend(t.layout.inputs.iter().map(|(l, _)| l.clone()));
                    link_names.extend(t.layout.outputs.iter().cloned());
                    tiles.push(t);
                }
                Err(why) => problems.push(Problem {
                    object: alloc_name.to_owned(),
                    why,
                }),
            }
        }
        tiles.sort_by(|a, b| a.name.cmp(&b.name));
        let mut links = Vec::new();
        for name in link_names {
            let part_of = |p: &&tilewire_shmem::AllocProblem| {
                p.entry
                    .name
                    .as_deref()
                    .and_then(|n| n.strip_prefix(name.as_str()))
                    .is_some_and(|rest| rest.starts_with('.'))
            };
            if let Some(p) = bad_allocs.iter().find(part_of) {
                problems.push(Problem {
                    object: name.clone(),
                    why: format!(
                        "link: not read: its allocation {:?} is corrupt",
                        p.entry.name.as_deref().unwrap_or_default()
                    ),
                });
                continue;
            }
            match Link::join(ws, &name) {
                Ok(l) => links.push(LinkView::read(&l)),
                Err(e) => problems.push(Problem {
                    object: name,
                    why: format!("link: {e}"),
                }),
            }
        }
        Snapshot {
            workspace: ws.name().to_owned(),
            taken_ns,
            tiles,
            links,
            problems,
        }
    }

    /// The tile named `name`.
    pub fn tile(&self, name: &str) -> Option<&TileView> {
        self.tiles.iter().find(|t| t.name == name)
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&LinkView> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The tile that reads link `link` as consumer `index`, and which of
    /// its inputs that is.
    pub fn consumer_tile(&self, link: &str, index: usize) -> Option<(&TileView, usize)> {
        self.tiles.iter().find_map(|t| {
            t.layout
                .inputs
                .iter()
                .position(|(l, c)| l == link && *c as usize == index)
                .map(|i| (t, i))
        })
    }

    /// The tile that publishes on link `link`.
    pub fn producer_tile(&self, link: &str) -> Option<&TileView> {
        self.tiles
            .iter()
            .find(|t| t.layout.outputs.iter().any(|o| o == link))
    }
}

/// Reads tile `tile` whose metrics are allocation `a`; its latency
/// histograms' problems go to `problems`.
fn read_tile(
    ws: &Workspace,
    allocs: &[AllocInfo],
    tile: &str,
    a: &AllocInfo,
    problems: &mut Vec<Problem>,
) -> Result<TileView, String> {
    let mem = region_of(ws, a)?;
    let h = TileMetrics::join(mem).map_err(|e| format!("tile metrics: {e}"))?;
    let layout = h.layout();
    let metrics = h.snapshot();
    if metrics.state.is_none() {
        problems.push(Problem {
            object: a.name.clone().unwrap_or_default(),
            why: "tile metrics: unknown state word (corrupt?)".into(),
        });
    }
    if let Some(c) = metrics.corrupt {
        let link = layout.outputs.get(c.output).cloned().unwrap_or_default();
        problems.push(Problem {
            object: format!("link {link}"),
            why: format!(
                "CORRUPT: consumer {}'s progress read {} by tile {tile}, past its next frag {} \
                 ({} reads); the link is stalled, not overrun",
                c.what.consumer, c.what.found, c.what.limit, c.reads
            ),
        });
    }
    let latency = (0..layout.inputs.len())
        .map(|i| {
            let part = latency_name(tile, i);
            let a = find(allocs, &part)?;
            let read = region_of(ws, a).and_then(|mem| {
                Hist::join_reader(mem)
                    .map(|r| r.snapshot())
                    .map_err(|e| format!("latency histogram: {e}"))
            });
            match read {
                Ok(s) => Some(LatencyView {
                    count: s.count(),
                    sum_ns: s.sum(),
                    p50_ns: s.percentile(50.0),
                    p99_ns: s.percentile(99.0),
                    cumulative: cumulative(&s),
                }),
                Err(why) => {
                    problems.push(Problem { object: part, why });
                    None
                }
            }
        })
        .collect();
    Ok(TileView {
        name: tile.to_owned(),
        layout,
        metrics,
        latency,
    })
}

/// The cumulative counts of `h` at each of [`LATENCY_BOUNDS_NS`].
pub(crate) fn cumulative(h: &HistSnapshot) -> [u64; LATENCY_BOUNDS_NS.len()] {
    let mut out = [0u64; LATENCY_BOUNDS_NS.len()];
    for (i, &n) in h.buckets().iter().enumerate() {
        if n == 0 {
            continue;
        }
        let (_, high) = bucket_bounds(i);
        // Every bound at or above the bucket's top counts it.
        let first = LATENCY_BOUNDS_NS.partition_point(|&b| b < high);
        for c in &mut out[first..] {
            *c += n;
        }
    }
    out
}

#[cfg(test)]
mod latency_tests {
    use super::*;
    use tilewire_tile::hist::LocalHist;

    #[test]
    fn cumulative_counts_never_count_a_frag_below_its_latency() {
        let mut h = LocalHist::new();
        for ns in [50, 600, 3_000, 2_000_000_000] {
            h.record(ns);
        }
        let c = cumulative(&h.snapshot());
        let at = |bound: u64| c[LATENCY_BOUNDS_NS.iter().position(|&b| b == bound).unwrap()];
        assert_eq!(at(100), 1);
        assert_eq!(at(500), 1, "600 ns is not at or below 500 ns");
        assert_eq!(at(1_000), 2);
        assert_eq!(at(2_500), 2);
        assert_eq!(at(5_000), 3);
        assert_eq!(at(1_000_000_000), 3, "2 s is only in +Inf");
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    }
}
