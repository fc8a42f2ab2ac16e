//! Drawing a [`Report`]: a compact text table for a terminal or a log, and
//! the Prometheus text exposition format (version 0.0.4) for a scraper.
//!
//! The table has one row per tile (name, kind, health, heartbeat age,
//! frags in and out per second, back-pressure, counters) and one row per
//! link consumer (publish rate, consumer rate, lag, overruns and frags
//! lost, latency p50/p99); dead tiles and problems are spelled out below.
//! Overruns and losses are those of the interval when the report has
//! rates, totals otherwise.
//!
//! The Prometheus families expose raw totals and gauges (a scraper takes
//! its own rates) and the input latencies as histograms (`_bucket` with
//! `le` from 100 ns to 1 s, `_sum`, `_count`, summed from the workspace's
//! fine buckets), named as `promtool check metrics` wants them; every
//! sample carries the `workspace` label. A tile's own counters are
//! `tilewire_tile_events_total{name="..."}`.

use std::fmt::Write as _;

use super::report::Report;
use super::snapshot::{LatencyView, LATENCY_BOUNDS_NS};

pub use super::units::{duration, si};

fn opt_si(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), si)
}

/// Rows padded to their columns' widths (the last column is not padded).
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `NAME.i` as (`NAME`, i).
fn counted(name: &str) -> Option<(&str, usize)> {
    let (base, i) = name.rsplit_once('.')?;
    Some((base, i.parse().ok()?))
}

/// After the last of the tiles a `count = N` made (`NAME.0` .. `NAME.N-1`
/// of one kind, in a row, ending at `i`), a row of their sums.
fn count_sum(tiles: &[crate::TileReport], i: usize) -> Option<Vec<String>> {
    let (base, last) = counted(&tiles[i].name)?;
    if last == 0
        || tiles
            .get(i + 1)
            .and_then(|t| counted(&t.name))
            .is_some_and(|(b, _)| b == base)
    {
        return None;
    }
    let first = i.checked_sub(last)?;
    let all = &tiles[first..=i];
    let same = all
        .iter()
        .enumerate()
        .all(|(k, t)| t.kind == tiles[i].kind && counted(&t.name) == Some((base, k)));
    if !same {
        return None;
    }
    let sum =
        |f: &dyn Fn(&crate::TileReport) -> Option<f64>| -> Option<f64> { all.iter().map(f).sum() };
    let counters: Vec<String> = tiles[i]
        .counters
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.name.contains("checksum") && !c.name.contains("digest"))
        .map(|(k, c)| {
            let v: u64 = all
                .iter()
                .filter_map(|t| t.counters.get(k))
                .map(|c| c.value)
                .sum();
            format!("{}={}", c.name, si(v as f64))
        })
        .collect();
    Some(vec![
        format!("{base} (sum of {})", all.len()),
        tiles[i].kind.clone(),
        "-".into(),
        "-".into(),
        opt_si(sum(&|t| t.frags_in_per_s)),
        opt_si(sum(&|t| t.frags_out_per_s)),
        "-".into(),
        "-".into(),
        counters.join(" "),
    ])
}

/// The report as a text table (see the module docs). The tiles a
/// `count = N` made are followed by a row of their sums.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let over = match r.interval_ns {
        Some(ns) => format!("rates over {}", duration(ns)),
        None => "no rates (one snapshot)".into(),
    };
    let _ = writeln!(
        out,
        "workspace {}: {} tiles, {} links, {over}",
        r.workspace,
        r.tiles.len(),
        r.links.len()
    );

    let mut rows = vec![[
        "TILE", "KIND", "HEALTH", "HB AGE", "IN/S", "OUT/S", "BP%", "BUSY%", "COUNTERS",
    ]
    .map(String::from)
    .to_vec()];
    for (i, t) in r.tiles.iter().enumerate() {
        let counters: Vec<String> = t
            .counters
            .iter()
            .map(|c| match c.per_s {
                // A checksum is an identity, not an amount.
                _ if c.name.contains("checksum") => format!("{}={:016x}", c.name, c.value),
                Some(rate) if rate > 0.0 => {
                    format!("{}={} ({}/s)", c.name, si(c.value as f64), si(rate))
                }
                _ => format!("{}={}", c.name, si(c.value as f64)),
            })
            .collect();
        rows.push(vec![
            t.name.clone(),
            t.kind.clone(),
            t.health.to_string(),
            t.heartbeat_age_ns.map_or_else(|| "never".into(), duration),
            opt_si(t.frags_in_per_s),
            opt_si(t.frags_out_per_s),
            t.backpressure_fraction
                .map_or_else(|| "-".into(), |f| format!("{:.1}", f * 100.0)),
            t.busy_fraction
                .map_or_else(|| "-".into(), |f| format!("{:.1}", f * 100.0)),
            counters.join(" "),
        ]);
        if let Some(row) = count_sum(&r.tiles, i) {
            rows.push(row);
        }
    }
    out.push_str(&columns(&rows));

    let lost_header = if r.interval_ns.is_some() {
        "OVRN/INT"
    } else {
        "OVRN"
    };
    let mut rows = vec![[
        "LINK",
        "PUB/S",
        "CONSUMER",
        "RATE/S",
        "LAG",
        lost_header,
        "LOST",
        "P50",
        "P99",
    ]
    .map(String::from)
    .to_vec()];
    for l in &r.links {
        let name = format!("{} ({})", l.name, l.producer.as_deref().unwrap_or("-"));
        for (i, c) in l.consumers.iter().enumerate() {
            let (overruns, lost) = match (c.overruns_in_interval, c.frags_lost_in_interval) {
                (Some(o), Some(f)) => (o, f),
                _ => (c.overruns_polling + c.overruns_reading, c.frags_lost),
            };
            let reader = format!(
                "{} {} {}",
                c.index,
                c.tile.as_deref().unwrap_or("-"),
                if c.reliable { "rel" } else { "unrel" }
            );
            rows.push(vec![
                if i == 0 { name.clone() } else { String::new() },
                if i == 0 {
                    opt_si(l.publish_per_s)
                } else {
                    String::new()
                },
                reader,
                if c.corrupt.is_empty() {
                    opt_si(c.frags_per_s)
                } else {
                    "CORRUPT".into()
                },
                if !c.corrupt.is_empty() {
                    "CORRUPT".into()
                } else if c.lapped {
                    // Further behind than the ring holds: lapped.
                    format!(">{}", si(l.depth as f64))
                } else {
                    si(c.lag as f64)
                },
                overruns.to_string(),
                if c.corrupt.is_empty() {
                    lost.to_string()
                } else {
                    "CORRUPT".into()
                },
                c.latency_p50_ns.map_or_else(|| "-".into(), duration),
                c.latency_p99_ns.map_or_else(|| "-".into(), duration),
            ]);
        }
    }
    out.push_str(&columns(&rows));

    for t in &r.tiles {
        if let Some(why) = &t.dead_reason {
            let _ = writeln!(out, "dead: {}: {why}", t.name);
        }
    }
    for l in &r.links {
        for c in &l.consumers {
            if let Some(why) = &c.loss_why {
                let _ = writeln!(out, "loss: link {} consumer {}: {why}", l.name, c.index);
            }
        }
    }
    for p in &r.problems {
        let _ = writeln!(out, "problem: {}: {}", p.object, p.why);
    }
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Metric families being written, one at a time.
struct Exposition<'a> {
    out: String,
    workspace: &'a str,
}

impl Exposition<'_> {
    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: Vec<(Vec<(&str, String)>, f64)>,
    ) {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let mut l = format!("workspace=\"{}\"", escape(self.workspace));
            for (k, v) in labels {
                let _ = write!(l, ",{k}=\"{}\"", escape(&v));
            }
            let _ = writeln!(self.out, "{name}{{{l}}} {value}");
        }
    }
}

impl Exposition<'_> {
    /// A histogram family: per labelled latency, its cumulative `_bucket`
    /// series (`le` in seconds, then `+Inf`), `_sum` and `_count`.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        series: Vec<(Vec<(&str, String)>, LatencyView)>,
    ) {
        if series.is_empty() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} histogram");
        for (labels, lat) in series {
            let mut l = format!("workspace=\"{}\"", escape(self.workspace));
            for (k, v) in labels {
                let _ = write!(l, ",{k}=\"{}\"", escape(&v));
            }
            for (bound, n) in LATENCY_BOUNDS_NS.iter().zip(lat.cumulative) {
                let le = *bound as f64 / 1e9;
                let _ = writeln!(self.out, "{name}_bucket{{{l},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(self.out, "{name}_bucket{{{l},le=\"+Inf\"}} {}", lat.count);
            let _ = writeln!(self.out, "{name}_sum{{{l}}} {}", lat.sum_ns as f64 / 1e9);
            let _ = writeln!(self.out, "{name}_count{{{l}}} {}", lat.count);
        }
    }
}

/// The report in the Prometheus text format (see the module docs).
pub fn prometheus(r: &Report) -> String {
    let mut e = Exposition {
        out: String::new(),
        workspace: &r.workspace,
    };
    let tile =
        |t: &super::report::TileReport| vec![("tile", t.name.clone()), ("kind", t.kind.clone())];
    let each_tile = |f: &dyn Fn(&super::report::TileReport) -> Option<f64>| {
        r.tiles
            .iter()
            .filter_map(|t| Some((tile(t), f(t)?)))
            .collect::<Vec<_>>()
    };
    e.family(
        "tilewire_tile_up",
        "gauge",
        "1 if the tile is running or booting, 0 if halted or dead.",
        each_tile(&|t| {
            Some(f64::from(u8::from(matches!(
                t.health,
                "running" | "booting"
            ))))
        }),
    );
    e.family(
        "tilewire_tile_dead",
        "gauge",
        "1 if the tile says it runs but its process is gone or its heartbeat stopped.",
        each_tile(&|t| Some(f64::from(u8::from(t.health == "dead")))),
    );
    e.family(
        "tilewire_tile_heartbeat_age_seconds",
        "gauge",
        "Age of the tile's last heartbeat.",
        each_tile(&|t| t.heartbeat_age_ns.map(|ns| ns as f64 / 1e9)),
    );
    e.family(
        "tilewire_tile_loops_total",
        "counter",
        "Run loop iterations.",
        each_tile(&|t| Some(t.loops as f64)),
    );
    e.family(
        "tilewire_tile_boots_total",
        "counter",
        "Times the tile's loop started: 1, plus one for each restart.",
        each_tile(&|t| Some(t.boots as f64)),
    );
    e.family(
        "tilewire_tile_backpressure_episodes_total",
        "counter",
        "Times the tile found an output without credits.",
        each_tile(&|t| Some(t.backpressure_episodes as f64)),
    );
    e.family(
        "tilewire_tile_backpressure_seconds_total",
        "counter",
        "Time spent back-pressured (closed episodes).",
        each_tile(&|t| Some(t.backpressure_ns as f64 / 1e9)),
    );
    e.family(
        "tilewire_tile_work_seconds_total",
        "counter",
        "Time the tile's loop spent on iterations that did something (its rate is how busy it is).",
        each_tile(&|t| Some(t.work_ns as f64 / 1e9)),
    );
    let counters = r
        .tiles
        .iter()
        .flat_map(|t| {
            t.counters.iter().map(move |c| {
                let mut l = tile(t);
                l.push(("name", c.name.clone()));
                (l, c.value as f64)
            })
        })
        .collect();
    e.family(
        "tilewire_tile_events_total",
        "counter",
        "The tile's own counters (its kind names them), by name.",
        counters,
    );
    let latency = r
        .tiles
        .iter()
        .flat_map(|t| {
            t.inputs.iter().filter_map(move |i| {
                let mut l = tile(t);
                l.push(("link", i.link.clone()));
                Some((l, i.latency?))
            })
        })
        .collect();
    e.histogram(
        "tilewire_tile_input_latency_seconds",
        "Latency of the frags a tile reads (tspub - tsorig).",
        latency,
    );
    e.family(
        "tilewire_link_published_total",
        "counter",
        "Frags published on the link.",
        r.links
            .iter()
            .map(|l| (vec![("link", l.name.clone())], l.published as f64))
            .collect(),
    );
    type Field = fn(&super::report::ConsumerReport) -> f64;
    let consumer_families: [(&str, &str, &str, Field); 7] = [
        (
            "tilewire_link_consumer_frags_total",
            "counter",
            "Frags consumed.",
            |c| c.frags as f64,
        ),
        (
            "tilewire_link_consumer_bytes_total",
            "counter",
            "Payload bytes consumed.",
            |c| c.bytes as f64,
        ),
        (
            "tilewire_link_consumer_lag_frags",
            "gauge",
            "Frags the consumer trails the producer by.",
            |c| c.lag as f64,
        ),
        (
            "tilewire_link_consumer_filtered_total",
            "counter",
            "Frags skipped by the consumer's filter.",
            |c| c.filtered as f64,
        ),
        (
            "tilewire_link_consumer_overruns_total",
            "counter",
            "Times the consumer was overrun (polling or reading).",
            |c| (c.overruns_polling + c.overruns_reading) as f64,
        ),
        (
            "tilewire_link_consumer_frags_lost_total",
            "counter",
            "Frags lost to overruns.",
            |c| c.frags_lost as f64,
        ),
        (
            "tilewire_link_consumer_bad_total",
            "counter",
            "Frags pointing outside the dcache.",
            |c| c.bad as f64,
        ),
    ];
    for (name, kind, help, field) in consumer_families {
        let samples = r
            .links
            .iter()
            .flat_map(|l| {
                // A consumer with a corrupt word has no figures to give
                // (its problem is counted in tilewire_monitor_problems).
                l.consumers
                    .iter()
                    .filter(|c| c.corrupt.is_empty())
                    .map(move |c| {
                        let labels = vec![
                            ("link", l.name.clone()),
                            ("consumer", c.index.to_string()),
                            ("tile", c.tile.clone().unwrap_or_default()),
                        ];
                        (labels, field(c))
                    })
            })
            .collect();
        e.family(name, kind, help, samples);
    }
    let _ = writeln!(
        e.out,
        "# HELP tilewire_monitor_problems Objects the monitor could not read.\n\
         # TYPE tilewire_monitor_problems gauge\n\
         tilewire_monitor_problems{{workspace=\"{}\"}} {}",
        escape(&r.workspace),
        r.problems.len()
    );
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_labels_are_escaped() {
        let rows = vec![
            vec!["a".to_string(), "bb".into(), "c".into()],
            vec!["aaa".to_string(), "b".into(), "c".into()],
        ];
        assert_eq!(columns(&rows), "a    bb  c\naaa  b   c\n");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
