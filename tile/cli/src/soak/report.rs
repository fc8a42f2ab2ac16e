//! What a soak says at its end: one [`Report`], printed as a table or as
//! one JSON object (`--json`).

use std::fmt::Write as _;

use serde::Serialize;

use super::account::{Books, Dropped, LinkLoss};
use super::probe::{Resources, FD_SLACK, GROWTH_PERCENT, RSS_SLACK_KIB};

/// The whole outcome of a soak.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// True when nothing is wrong: the exit status says the same.
    pub(crate) ok: bool,
    /// Everything wrong, in words.
    pub(crate) problems: Vec<String>,
    /// The settings.
    pub(crate) settings: Settings,
    /// The pipeline, in one line.
    pub(crate) pipeline: String,
    /// Seconds from the start of the tiles to the start of the stop.
    pub(crate) ran_s: f64,
    /// Ids the source published.
    pub(crate) sent: u64,
    /// Ids the sink recorded.
    pub(crate) delivered: u64,
    /// Sent per second of the run.
    pub(crate) sent_per_s: u64,
    /// Replays after kills.
    pub(crate) duplicates: Duplicates,
    /// Frags counted lost, per link and consumer.
    pub(crate) lost: Vec<LinkLoss>,
    /// Frags counted dropped, per reason.
    pub(crate) dropped: Vec<Dropped>,
    /// The books (see the accounting module).
    pub(crate) books: Books,
    /// The first runs of ids never delivered, `[first, count]`.
    pub(crate) missing_runs: Vec<[u64; 2]>,
    /// Kills sent.
    pub(crate) kills: usize,
    /// Restarts seen: boots past the first, all tiles.
    pub(crate) restarts: u64,
    /// Per tile: kills, boots, restart times.
    pub(crate) tiles: Vec<TileLine>,
    /// Restarts that failed, and what the runner reported at the stop.
    pub(crate) failures: Vec<String>,
    /// Longest time the sink's deliveries did not move, ms.
    pub(crate) longest_stall_ms: u64,
    /// When it began, seconds into the run.
    pub(crate) longest_stall_at_s: f64,
    /// Resources at the start (after warm-up) and the end.
    pub(crate) resources: ResourceLines,
}

/// How the soak was run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub(crate) duration_s: f64,
    pub(crate) kill_every_s: f64,
    pub(crate) rate: u64,
    pub(crate) seed: u64,
    pub(crate) warm_up_s: f64,
}

/// Frags that came twice.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Duplicates {
    /// Ids the sink saw again (exact).
    pub(crate) at_sink: u64,
    /// Duplicates the dedup tile dropped, totalled over its boots from
    /// samples (a lower bound).
    pub(crate) dropped_by_dedup: u64,
}

/// One tile's kills and restarts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TileLine {
    pub(crate) tile: String,
    pub(crate) kills: usize,
    pub(crate) boots: u64,
    /// Slowest restart, kill to running again, ms.
    pub(crate) restart_max_ms: u64,
    /// Mean restart, ms.
    pub(crate) restart_mean_ms: u64,
}

/// Resources at the start and the end, and their bound.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResourceLines {
    pub(crate) start: Resources,
    pub(crate) end: Resources,
    /// The bound, in words.
    pub(crate) bound: String,
    /// True if nothing grew past it.
    pub(crate) within_bound: bool,
}

/// The bound of [`ResourceLines`], in words.
pub(crate) fn bound_words() -> String {
    format!(
        "end <= start + {GROWTH_PERCENT}% + slack ({RSS_SLACK_KIB} KiB of memory, {FD_SLACK} fd, \
         0 allocations), for the runner's VmRSS, RssAnon and fds and the tiles' RssAnon and fds"
    )
}

impl Report {
    /// The readable table.
    pub(crate) fn table(&self) -> String {
        let mut s = String::new();
        let st = &self.settings;
        let _ = writeln!(
            s,
            "tilewire soak: {:.0} s, a kill every {:.1} s, {} frags/s offered, seed {}",
            st.duration_s, st.kill_every_s, st.rate, st.seed
        );
        let _ = writeln!(s, "pipeline      {}", self.pipeline);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "sent          {:>12}   ({} /s over {:.1} s)",
            self.sent, self.sent_per_s, self.ran_s
        );
        let _ = writeln!(s, "delivered     {:>12}", self.delivered);
        for l in &self.lost {
            let _ = writeln!(
                s,
                "lost          {:>12}   on {} ({}), counted by {}",
                l.frags,
                l.link,
                if l.reliable { "reliable" } else { "unreliable" },
                l.consumer
            );
        }
        let reasons = self.dropped.len();
        let dropped: Vec<&Dropped> = self.dropped.iter().filter(|d| d.frags > 0).collect();
        for d in &dropped {
            let _ = writeln!(s, "dropped       {:>12}   {}", d.frags, d.reason);
        }
        if dropped.is_empty() {
            let _ = writeln!(
                s,
                "dropped       {:>12}   (none of the {reasons} reasons counted any)",
                0
            );
        }
        let b = &self.books;
        let _ = writeln!(
            s,
            "unexplained   {:>12}   (missing {} - lost {} - dropped {})",
            b.unexplained, b.missing, b.lost, b.dropped
        );
        let _ = writeln!(
            s,
            "counted lost  {:>12}   but delivered (bound {}: a progress interval per restart \
             of an unreliable link's consumer)",
            b.counted_lost_but_delivered, b.counted_lost_but_delivered_bound
        );
        let _ = writeln!(
            s,
            "duplicates    {:>12}   at the sink; {} dropped by dedup (sampled, at least)",
            self.duplicates.at_sink, self.duplicates.dropped_by_dedup
        );
        if !self.missing_runs.is_empty() {
            let runs: Vec<String> = self
                .missing_runs
                .iter()
                .map(|[f, n]| format!("{f}+{n}"))
                .collect();
            let _ = writeln!(s, "missing ids   {}", runs.join(" "));
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "kills {}, restarts {}, longest stall {} ms (at {:.1} s)",
            self.kills, self.restarts, self.longest_stall_ms, self.longest_stall_at_s
        );
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>6} {:>14} {:>14}",
            "tile", "kills", "boots", "restart max ms", "restart mean"
        );
        for t in &self.tiles {
            let _ = writeln!(
                s,
                "{:<10} {:>6} {:>6} {:>14} {:>14}",
                t.tile, t.kills, t.boots, t.restart_max_ms, t.restart_mean_ms
            );
        }
        let _ = writeln!(s);
        let r = &self.resources;
        let _ = writeln!(s, "{:<22} {:>12} {:>12}", "resources", "start", "end");
        let rows: [(&str, u64, u64); 8] = [
            (
                "runner VmRSS KiB",
                r.start.runner.rss_kib,
                r.end.runner.rss_kib,
            ),
            (
                "runner RssAnon KiB",
                r.start.runner.anon_kib,
                r.end.runner.anon_kib,
            ),
            ("runner open fds", r.start.runner.fds, r.end.runner.fds),
            (
                "tiles VmRSS KiB",
                r.start.tiles.rss_kib,
                r.end.tiles.rss_kib,
            ),
            (
                "tiles RssAnon KiB",
                r.start.tiles.anon_kib,
                r.end.tiles.anon_kib,
            ),
            ("tiles open fds", r.start.tiles.fds, r.end.tiles.fds),
            (
                "tile processes",
                r.start.tile_processes as u64,
                r.end.tile_processes as u64,
            ),
            (
                "workspace allocations",
                r.start.allocations as u64,
                r.end.allocations as u64,
            ),
        ];
        for (what, a, b) in rows {
            let _ = writeln!(s, "{what:<22} {a:>12} {b:>12}");
        }
        let _ = writeln!(
            s,
            "bound: {} -> {}",
            r.bound,
            if r.within_bound { "within" } else { "EXCEEDED" }
        );
        let _ = writeln!(s);
        if self.ok {
            let _ = writeln!(s, "ok: every frag accounted for, every restart worked");
        } else {
            for p in &self.problems {
                let _ = writeln!(s, "PROBLEM: {p}");
            }
        }
        s
    }
}
