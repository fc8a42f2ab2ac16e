//! [`Report`]: a snapshot with its rates and each tile's health, in the
//! shape every output (table, JSON, Prometheus) is drawn from. The field
//! names are the JSON's, listed in the [module docs](super).

use std::time::Duration;

use serde::Serialize;

use super::health::{classify, TileHealth};
use super::rates::Rates;
use super::snapshot::{ConsumerView, LatencyView, LinkView, Problem, Snapshot, TileView};
use tilewire_tile::stem::metrics::TileState;

/// One input of a tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputReport {
    /// The link.
    pub link: String,
    /// The consumer index the tile reads it as.
    pub consumer: u32,
    /// Latency of its frags (`tspub - tsorig`), if recorded.
    pub latency: Option<LatencyView>,
}

/// One counter of a tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterReport {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: u64,
    /// Its rate per second, with rates.
    pub per_s: Option<f64>,
}

/// One tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TileReport {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its process (0: never ran).
    pub pid: u32,
    /// What its metrics say: `booting`, `running`, `halted` or `unknown`.
    pub state: &'static str,
    /// What the monitor concludes: `booting`, `running`, `halted`, `dead`.
    pub health: &'static str,
    /// Why it is dead, if it is.
    pub dead_reason: Option<String>,
    /// `CLOCK_MONOTONIC` ns of its last heartbeat (0: never).
    pub heartbeat_ns: u64,
    /// Age of that heartbeat when the snapshot was taken (`None`: never).
    pub heartbeat_age_ns: Option<u64>,
    /// Loop iterations.
    pub loops: u64,
    /// Housekeeping runs.
    pub housekeeping: u64,
    /// Times its loop started: 1, plus one for each restart.
    pub boots: u64,
    /// Back-pressure episodes.
    pub backpressure_episodes: u64,
    /// Nanoseconds back-pressured (closed episodes).
    pub backpressure_ns: u64,
    /// Nanoseconds its loop spent on iterations that did something, over
    /// every boot (its work time).
    pub work_ns: u64,
    /// Back-pressure episodes by output.
    pub out_backpressure: Vec<u64>,
    /// Frags read per second.
    pub frags_in_per_s: Option<f64>,
    /// Bytes read per second.
    pub bytes_in_per_s: Option<f64>,
    /// Frags published per second.
    pub frags_out_per_s: Option<f64>,
    /// Fraction of the interval back-pressured.
    pub backpressure_fraction: Option<f64>,
    /// Fraction of the interval it was busy (see
    /// [`TileRates::busy_fraction`](crate::TileRates::busy_fraction)).
    pub busy_fraction: Option<f64>,
    /// Its inputs.
    pub inputs: Vec<InputReport>,
    /// Its output links.
    pub outputs: Vec<String>,
    /// Its counters.
    pub counters: Vec<CounterReport>,
}

/// One consumer of a link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerReport {
    /// Its index on the link.
    pub index: usize,
    /// The tile reading it, if a tile does.
    pub tile: Option<String>,
    /// Whether the producer waits for it.
    pub reliable: bool,
    /// Its published progress (next seq to read).
    pub progress: u64,
    /// Frags it trails the producer by, at most the link's depth: an
    /// unreliable consumer further behind was lapped (`lapped`), and the
    /// frags past a ring's depth are not waiting for it but lost.
    pub lag: u64,
    /// True if an unreliable consumer trails by more than the ring's
    /// depth (its next poll counts the loss).
    pub lapped: bool,
    /// Frags consumed.
    pub frags: u64,
    /// Bytes consumed.
    pub bytes: u64,
    /// Frags filtered.
    pub filtered: u64,
    /// Times lapped while polling.
    pub overruns_polling: u64,
    /// Frags overwritten while being read.
    pub overruns_reading: u64,
    /// Frags lost to overruns.
    pub frags_lost: u64,
    /// Frags pointing outside the dcache.
    pub bad: u64,
    /// Frags consumed per second.
    pub frags_per_s: Option<f64>,
    /// Bytes consumed per second.
    pub bytes_per_s: Option<f64>,
    /// Overruns in the interval.
    pub overruns_in_interval: Option<u64>,
    /// Frags lost in the interval.
    pub frags_lost_in_interval: Option<u64>,
    /// Median latency of its frags, from its tile's histogram.
    pub latency_p50_ns: Option<u64>,
    /// 99th percentile latency.
    pub latency_p99_ns: Option<u64>,
    /// The words of its fseq that no healthy link can hold, each named
    /// with the value seen and what was possible (empty when all are
    /// plausible). A monitor shows CORRUPT for its lag and losses then,
    /// never those figures.
    pub corrupt: Vec<String>,
    /// Why it lost frags in the interval, if it did: how busy its reader
    /// tile was (busy throughout: the offered load is above what it
    /// sustains; barely busy: it did not get to run).
    pub loss_why: Option<String>,
}

/// Why a consumer whose reader is `tile` lost `lost` frags in an interval
/// in which that tile was busy `busy` of the time.
fn loss_why(tile: Option<&str>, lost: u64, busy: Option<f64>) -> Option<String> {
    if lost == 0 {
        return None;
    }
    let tile = tile.unwrap_or("its reader");
    Some(match busy {
        Some(b) if b >= 0.9 => format!(
            "{lost} lost: {tile} was busy {:.0}% of the interval: the load offered is more \
             than it sustains",
            b * 100.0
        ),
        Some(b) => format!(
            "{lost} lost while {tile} was busy only {:.0}% of the interval: it did not get to \
             run (asleep, preempted, or sharing its core)",
            b * 100.0
        ),
        None => format!("{lost} lost"),
    })
}

/// What in consumer `c` of link `l` no healthy link can hold (see
/// [`ConsumerReport::corrupt`]).
fn implausible(l: &LinkView, c: &ConsumerView) -> Vec<String> {
    let mut found = Vec::new();
    let ahead = c.progress.wrapping_sub(l.producer_next) as i64;
    if ahead > 0 {
        found.push(format!(
            "progress {} is past the producer's next frag {}",
            c.progress, l.producer_next
        ));
    }
    let lag = l.lag(c);
    if c.reliable && lag > l.depth {
        found.push(format!(
            "lag {lag} is more than the link's depth {} on a reliable consumer",
            l.depth
        ));
    }
    if c.corrupt_lines > 0 {
        found.push(format!(
            "{} frags skipped: their lines held a seq no producer puts there",
            c.corrupt_lines
        ));
    }
    if c.reliable && (c.frags_lost > 0 || c.overruns_polling > 0) {
        // The producer waits for a reliable consumer: it is never lapped.
        found.push(format!(
            "{} frags lost in {} overruns on a reliable consumer, which the producer never \
             overruns",
            c.frags_lost, c.overruns_polling
        ));
    }
    if c.bad > 0 {
        let last = c.bad_last.map_or_else(String::new, |(chunk, sz)| {
            format!(" (last: chunk {chunk} size {sz})")
        });
        found.push(format!(
            "{} frags refused: they pointed outside the dcache{last}, which holds chunks \
             [{}, {})",
            c.bad, l.chunks.0, l.chunks.1
        ));
    }
    if c.frags_lost > l.published() {
        found.push(format!(
            "frags lost {} are more than the link ever published ({})",
            c.frags_lost,
            l.published()
        ));
    }
    found
}

/// One link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkReport {
    /// Its name.
    pub name: String,
    /// Frags in its ring.
    pub depth: u64,
    /// Largest payload.
    pub mtu: usize,
    /// The tile publishing on it, if a tile does.
    pub producer: Option<String>,
    /// Seq of its first frag.
    pub seq0: u64,
    /// One past the newest frag published.
    pub producer_next: u64,
    /// Frags published since it was made.
    pub published: u64,
    /// Frags published per second.
    pub publish_per_s: Option<f64>,
    /// Its consumers.
    pub consumers: Vec<ConsumerReport>,
}

/// A snapshot, its rates and health: what a monitor shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The workspace.
    pub workspace: String,
    /// When the snapshot was taken (`CLOCK_MONOTONIC` ns).
    pub taken_ns: u64,
    /// The interval the rates cover, with rates.
    pub interval_ns: Option<u64>,
    /// Tiles, by name.
    pub tiles: Vec<TileReport>,
    /// Links, by name.
    pub links: Vec<LinkReport>,
    /// What could not be read.
    pub problems: Vec<Problem>,
}

fn state_name(s: Option<TileState>) -> &'static str {
    match s {
        Some(TileState::Booting) => "booting",
        Some(TileState::Running) => "running",
        Some(TileState::Halted) => "halted",
        None => "unknown",
    }
}

impl Report {
    /// Builds the report of `cur`, with `rates` (from the snapshot before
    /// it to `cur`) if there are any; health is judged at `cur`'s time with
    /// `timeout` and `pid_alive` (see [`classify`]).
    pub fn new(
        cur: &Snapshot,
        rates: Option<&Rates>,
        timeout: Duration,
        pid_alive: impl Fn(u32) -> bool,
    ) -> Report {
        let links: Vec<LinkReport> = cur
            .links
            .iter()
            .map(|l| link_report(l, cur, rates))
            .collect();
        // Each consumer's implausible words, found once in its report, are
        // problems too.
        let corrupt = links.iter().flat_map(|l| {
            l.consumers.iter().flat_map(move |c| {
                c.corrupt.iter().map(move |why| Problem {
                    object: format!("link {} consumer {}", l.name, c.index),
                    why: format!("CORRUPT: {why}"),
                })
            })
        });
        // A tile's counters that went down: corrupt, named.
        let tile_backwards = rates
            .map(|r| &r.backwards[..])
            .unwrap_or_default()
            .iter()
            .filter(|b| b.object.starts_with("tile "))
            .map(|b| Problem {
                object: b.object.clone(),
                why: format!(
                    "CORRUPT: {} ran backwards from {} to {} (counters only grow)",
                    b.field, b.before, b.after
                ),
            });
        let problems = cur
            .problems
            .iter()
            .cloned()
            .chain(corrupt)
            .chain(tile_backwards)
            .collect();
        Report {
            workspace: cur.workspace.clone(),
            taken_ns: cur.taken_ns,
            interval_ns: rates.map(|r| r.interval_ns),
            tiles: cur
                .tiles
                .iter()
                .map(|t| tile_report(t, cur, rates, timeout, &pid_alive))
                .collect(),
            links,
            problems,
        }
    }

    /// The tile named `name`.
    pub fn tile(&self, name: &str) -> Option<&TileReport> {
        self.tiles.iter().find(|t| t.name == name)
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&LinkReport> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The report as one line of JSON (fields in the [module docs](super)).
    pub fn to_json(&self) -> String {
        // Plain structs of strings and numbers always serialize (a
        // non-finite rate becomes null); the fallback is still JSON.
        serde_json::to_string(self)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
    }
}

fn link_report(l: &LinkView, cur: &Snapshot, rates: Option<&Rates>) -> LinkReport {
    // Counters of a consumer that went down since the last snapshot.
    let backwards = |index: usize| -> Vec<String> {
        let object = format!("link {} consumer {index}", l.name);
        rates
            .map(|r| &r.backwards[..])
            .unwrap_or_default()
            .iter()
            .filter(|b| b.object == object)
            .map(|b| {
                format!(
                    "{} ran backwards from {} to {} (counters only grow)",
                    b.field, b.before, b.after
                )
            })
            .collect()
    };
    let lr = rates.and_then(|r| r.link(&l.name));
    let consumers = l
        .consumers
        .iter()
        .map(|c| {
            let cr = lr.and_then(|r| r.consumers.get(c.index));
            let reader = cur.consumer_tile(&l.name, c.index);
            let latency = reader.and_then(|(t, i)| t.latency.get(i).copied()?);
            ConsumerReport {
                index: c.index,
                tile: reader.map(|(t, _)| t.name.clone()),
                reliable: c.reliable,
                progress: c.progress,
                lag: l.lag(c).min(l.depth),
                lapped: !c.reliable && l.lag(c) > l.depth,
                frags: c.frags,
                bytes: c.bytes,
                filtered: c.filtered,
                overruns_polling: c.overruns_polling,
                overruns_reading: c.overruns_reading,
                frags_lost: c.frags_lost,
                bad: c.bad,
                frags_per_s: cr.map(|r| r.frags_per_s),
                bytes_per_s: cr.map(|r| r.bytes_per_s),
                overruns_in_interval: cr.map(|r| r.overruns),
                frags_lost_in_interval: cr.map(|r| r.frags_lost),
                latency_p50_ns: latency.map(|l| l.p50_ns),
                latency_p99_ns: latency.map(|l| l.p99_ns),
                corrupt: [implausible(l, c), backwards(c.index)].concat(),
                loss_why: loss_why(
                    reader.map(|(t, _)| t.name.as_str()),
                    cr.map_or(0, |r| r.frags_lost),
                    reader
                        .and_then(|(t, _)| rates?.tile(&t.name))
                        .map(|r| r.busy_fraction),
                ),
            }
        })
        .collect();
    LinkReport {
        name: l.name.clone(),
        depth: l.depth,
        mtu: l.mtu,
        producer: cur.producer_tile(&l.name).map(|t| t.name.clone()),
        seq0: l.seq0,
        producer_next: l.producer_next,
        published: l.published(),
        publish_per_s: lr.map(|r| r.publish_per_s),
        consumers,
    }
}

fn tile_report(
    t: &TileView,
    cur: &Snapshot,
    rates: Option<&Rates>,
    timeout: Duration,
    pid_alive: &impl Fn(u32) -> bool,
) -> TileReport {
    let m = &t.metrics;
    let health = classify(m, cur.taken_ns, timeout, pid_alive);
    let tr = rates.and_then(|r| r.tile(&t.name));
    TileReport {
        name: t.name.clone(),
        kind: t.layout.kind.clone(),
        pid: m.pid,
        state: state_name(m.state),
        health: health.as_str(),
        dead_reason: match health {
            TileHealth::Dead { why } => Some(why),
            _ => None,
        },
        heartbeat_ns: m.heartbeat_ns,
        heartbeat_age_ns: (m.heartbeat_ns != 0)
            .then(|| cur.taken_ns.saturating_sub(m.heartbeat_ns)),
        loops: m.loops,
        housekeeping: m.housekeeping,
        boots: m.boots,
        backpressure_episodes: m.backpressure,
        backpressure_ns: m.backpressure_ns,
        work_ns: m.work_ns,
        out_backpressure: m.out_backpressure.clone(),
        frags_in_per_s: tr.map(|r| r.frags_in_per_s),
        bytes_in_per_s: tr.map(|r| r.bytes_in_per_s),
        frags_out_per_s: tr.map(|r| r.frags_out_per_s),
        backpressure_fraction: tr.map(|r| r.backpressure_fraction),
        busy_fraction: tr.map(|r| r.busy_fraction),
        inputs: t
            .layout
            .inputs
            .iter()
            .zip(&t.latency)
            .map(|((link, consumer), latency)| InputReport {
                link: link.clone(),
                consumer: *consumer,
                latency: *latency,
            })
            .collect(),
        outputs: t.layout.outputs.clone(),
        counters: m
            .counters
            .iter()
            .enumerate()
            .map(|(i, (name, value))| CounterReport {
                name: name.clone(),
                value: *value,
                // No rate for a counter that ran backwards (a problem).
                per_s: tr
                    .and_then(|r| r.counters.get(i))
                    .map(|(_, v)| *v)
                    .filter(|_| {
                        !rates.is_some_and(|r| {
                            r.backwards
                                .iter()
                                .any(|b| b.object == format!("tile {}", t.name) && b.field == *name)
                        })
                    }),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::loss_why;

    #[test]
    fn a_loss_is_put_down_to_a_busy_reader_or_to_one_that_did_not_run() {
        assert_eq!(loss_why(Some("dedup"), 0, Some(1.0)), None);
        let busy = loss_why(Some("dedup"), 40, Some(0.97)).unwrap();
        assert!(busy.starts_with("40 lost: dedup was busy 97%"), "{busy}");
        assert!(busy.contains("more than it sustains"), "{busy}");
        let idle = loss_why(Some("dedup"), 40, Some(0.2)).unwrap();
        assert!(
            idle.contains("busy only 20%") && idle.contains("did not get to run"),
            "{idle}"
        );
        assert_eq!(loss_why(None, 3, None).unwrap(), "3 lost");
    }
}
