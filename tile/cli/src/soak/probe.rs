//! What a soak measures of the machine: each process's memory and open
//! files, the workspace's allocations, and whether they grew; and the
//! seeded choice of what to kill.
//!
//! # Which memory
//!
//! A process's resident set (`VmRSS`) counts the pages of the workspace
//! it touched. The sink touches its record page by page as ids arrive,
//! so its `VmRSS` grows for as long as the soak runs without anything
//! leaking (the workspace has a fixed size). Leaks are in private memory:
//! `RssAnon` (heap, stacks). So the bound applies to the runner's
//! `VmRSS` (it formatted the whole workspace, record included, when it
//! made it: every page it will ever hold is resident from the start) and
//! `RssAnon`, and to the tile processes' `RssAnon`, summed over the
//! processes running at the time (restarted ones are new processes, so a
//! leak per restart shows in the runner, and a leak per frag in the
//! tiles). Open files are counted in `/proc/PID/fd`.

use serde::Serialize;
use tilewire_pipeline::shmem::Workspace;

/// Growth allowed between the start (after warm-up) and the end: this
/// share of the start, in percent...
pub(crate) const GROWTH_PERCENT: u64 = 5;
/// ...plus this much memory, in KiB (allocator and page granularity)...
pub(crate) const RSS_SLACK_KIB: u64 = 1024;
/// ...plus this many open files. (The workspace's allocations must stay
/// exactly as many.)
pub(crate) const FD_SLACK: u64 = 1;

/// Memory and open files of one process, or of several summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    /// Resident set, KiB (`VmRSS`).
    pub(crate) rss_kib: u64,
    /// Resident private memory, KiB (`RssAnon`).
    pub(crate) anon_kib: u64,
    /// Open file descriptors.
    pub(crate) fds: u64,
}

impl Usage {
    /// Process `pid`'s (`None` for this process), or `None` if it is gone.
    pub(crate) fn of(pid: Option<u32>) -> Option<Usage> {
        let dir = match pid {
            Some(p) => format!("/proc/{p}"),
            None => "/proc/self".to_owned(),
        };
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("{dir}/fd")).ok()?.count() as u64;
        Some(Usage {
            rss_kib: field("VmRSS:"),
            anon_kib: field("RssAnon:"),
            fds,
        })
    }

    fn add(self, o: Usage) -> Usage {
        Usage {
            rss_kib: self.rss_kib + o.rss_kib,
            anon_kib: self.anon_kib + o.anon_kib,
            fds: self.fds + o.fds,
        }
    }
}

/// The resources of a soak at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Resources {
    /// The runner (this process).
    pub(crate) runner: Usage,
    /// The tile processes, summed.
    pub(crate) tiles: Usage,
    /// Tile processes found.
    pub(crate) tile_processes: usize,
    /// Live allocations in the workspace.
    pub(crate) allocations: usize,
}

impl Resources {
    /// Now, for the runner, the tile processes `pids` and `ws`.
    pub(crate) fn now(pids: &[(String, u32)], ws: &Workspace) -> Resources {
        let mut tiles = Usage::default();
        let mut n = 0;
        for (_, pid) in pids {
            if let Some(u) = Usage::of(Some(*pid)) {
                tiles = tiles.add(u);
                n += 1;
            }
        }
        Resources {
            runner: Usage::of(None).unwrap_or_default(),
            tiles,
            tile_processes: n,
            allocations: ws.allocations().len(),
        }
    }
}

/// The most `start` may grow to: [`GROWTH_PERCENT`] more, plus `slack`.
pub(crate) fn bound(start: u64, slack: u64) -> u64 {
    start + start * GROWTH_PERCENT / 100 + slack
}

/// What grew past its bound from `start` to `end`, in words (see the
/// [module docs](self) for which figures are bounded).
pub(crate) fn growth(start: &Resources, end: &Resources) -> Vec<String> {
    let checks = [
        (
            "runner VmRSS KiB",
            start.runner.rss_kib,
            end.runner.rss_kib,
            RSS_SLACK_KIB,
        ),
        (
            "runner RssAnon KiB",
            start.runner.anon_kib,
            end.runner.anon_kib,
            RSS_SLACK_KIB,
        ),
        (
            "runner open fds",
            start.runner.fds,
            end.runner.fds,
            FD_SLACK,
        ),
        (
            "tiles' RssAnon KiB",
            start.tiles.anon_kib,
            end.tiles.anon_kib,
            RSS_SLACK_KIB,
        ),
        ("tiles' open fds", start.tiles.fds, end.tiles.fds, FD_SLACK),
    ];
    let mut grew: Vec<String> = checks
        .iter()
        .filter(|(_, s, e, slack)| *e > bound(*s, *slack))
        .map(|(what, s, e, slack)| {
            format!("{what} grew from {s} to {e} (bound {})", bound(*s, *slack))
        })
        .collect();
    // A workspace does not grow: its allocations are the same, exactly.
    if end.allocations != start.allocations {
        grew.push(format!(
            "workspace allocations went from {} to {}",
            start.allocations, end.allocations
        ));
    }
    if start.tile_processes != end.tile_processes {
        grew.push(format!(
            "{} tile processes at the start, {} at the end",
            start.tile_processes, end.tile_processes
        ));
    }
    grew
}

/// A seeded generator (splitmix64): the same seed picks the same tiles.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value below `n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_open_files() {
        let u = Usage::of(None).expect("/proc/self");
        assert!(
            u.rss_kib > 0 && u.anon_kib > 0 && u.rss_kib >= u.anon_kib,
            "{u:?}"
        );
        assert!(u.fds >= 3, "{u:?}");
        assert_eq!(Usage::of(Some(u32::MAX)), None);
    }

    #[test]
    fn growth_within_the_bound_passes_and_past_it_is_named() {
        let start = Resources {
            runner: Usage {
                rss_kib: 10_000,
                anon_kib: 4_000,
                fds: 12,
            },
            tiles: Usage {
                rss_kib: 40_000,
                anon_kib: 8_000,
                fds: 40,
            },
            tile_processes: 4,
            allocations: 20,
        };
        let mut end = start.clone();
        end.runner.rss_kib = 10_000 + 500 + 1024;
        end.tiles.fds = 40 + 2 + 1;
        assert!(
            growth(&start, &end).is_empty(),
            "{:?}",
            growth(&start, &end)
        );
        end.runner.fds = 12 + 2;
        end.allocations = 21;
        let grew = growth(&start, &end);
        assert_eq!(grew.len(), 2, "{grew:?}");
        assert!(
            grew[0].starts_with("runner open fds grew from 12 to 14"),
            "{grew:?}"
        );
        assert!(grew[1].starts_with("workspace allocations"), "{grew:?}");
    }

    #[test]
    fn the_same_seed_picks_the_same_values() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<usize> = (0..20).map(|_| a.below(4)).collect();
        let ys: Vec<usize> = (0..20).map(|_| b.below(4)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().any(|&x| x != xs[0]), "not constant: {xs:?}");
    }
}
