//! [`Rates::between`]: what changed between two snapshots, per second.
//!
//! Tiles and links are matched by name. One that is only in the newer
//! snapshot gets no rates (it has no earlier reading). Counters only grow
//! while an object lives: a consumer's counts, a tile's boots,
//! housekeeping and back-pressure counts and times, and its loop count
//! within one boot (a restarted tile counts loops from zero again, which
//! its `boots` going up says). A tile's own counters are the kind's to
//! define (a checksum is no count) and are not judged. One of the others
//! that went down anyway is a corrupt word:
//! it is listed in [`Rates::backwards`] with the values before and after,
//! and its rate is zero, never a huge wrapped one. Sequence numbers do
//! wrap, and are subtracted as such.

use super::snapshot::{LinkView, Snapshot, TileView};

/// Rates of one tile over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct TileRates {
    /// The tile.
    pub name: String,
    /// Frags read per second, over all inputs (from their fseqs).
    pub frags_in_per_s: f64,
    /// Payload bytes read per second, over all inputs.
    pub bytes_in_per_s: f64,
    /// Frags published per second, over all outputs (from their mcaches).
    pub frags_out_per_s: f64,
    /// Fraction of the interval spent back-pressured (closed episodes).
    pub backpressure_fraction: f64,
    /// Fraction of the interval its loop spent on iterations that did
    /// something (its work time, see the tile metrics' `work_ns`): near
    /// 1.0 the tile is the limit of whatever feeds it.
    pub busy_fraction: f64,
    /// Each counter's rate per second, in the tile's counter order.
    pub counters: Vec<(String, f64)>,
    /// Age of the heartbeat at the newer snapshot; `None` if it never beat.
    pub heartbeat_age_ns: Option<u64>,
}

/// Rates of one consumer of a link over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRates {
    /// Its index on the link.
    pub index: usize,
    /// Frags consumed per second.
    pub frags_per_s: f64,
    /// Payload bytes consumed per second.
    pub bytes_per_s: f64,
    /// Overruns (while polling and while reading) in the interval.
    pub overruns: u64,
    /// Frags lost to overruns in the interval.
    pub frags_lost: u64,
}

/// Rates of one link over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRates {
    /// The link.
    pub name: String,
    /// Frags published per second.
    pub publish_per_s: f64,
    /// Its consumers, by index.
    pub consumers: Vec<ConsumerRates>,
}

/// Rates between two snapshots of one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// Nanoseconds between the two snapshots.
    pub interval_ns: u64,
    /// Tiles present in both, in the newer snapshot's order.
    pub tiles: Vec<TileRates>,
    /// Links present in both, in the newer snapshot's order.
    pub links: Vec<LinkRates>,
    /// Counters that went down between the two snapshots: a consumer's
    /// counts, a tile's boots, housekeeping, back-pressure and work, its
    /// loop count within a boot (not a tile's own counters, which a kind
    /// defines). Corrupt words, not figures.
    pub backwards: Vec<Backwards>,
}

/// A counter that went down between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backwards {
    /// Where: `tile <name>` or `link <name> consumer <i>`.
    pub object: String,
    /// Which counter.
    pub field: String,
    /// Its value in the older snapshot.
    pub before: u64,
    /// Its value in the newer one.
    pub after: u64,
}

/// The counters of `pairs` (name, before, after) that went down.
fn went_down<'a>(
    object: impl Fn() -> String,
    pairs: impl IntoIterator<Item = (&'a str, u64, u64)>,
) -> Vec<Backwards> {
    pairs
        .into_iter()
        .filter(|(_, before, after)| after < before)
        .map(|(field, before, after)| Backwards {
            object: object(),
            field: field.to_owned(),
            before,
            after,
        })
        .collect()
}

/// The counters that went down from `prev` to `cur`.
fn backwards(prev: &Snapshot, cur: &Snapshot) -> Vec<Backwards> {
    let mut found = Vec::new();
    for l in &cur.links {
        let Some(p) = prev.link(&l.name) else {
            continue;
        };
        for c in &l.consumers {
            let Some(b) = p.consumers.get(c.index) else {
                continue;
            };
            found.extend(went_down(
                || format!("link {} consumer {}", l.name, c.index),
                [
                    ("frags", b.frags, c.frags),
                    ("bytes", b.bytes, c.bytes),
                    ("filtered", b.filtered, c.filtered),
                    ("filtered_bytes", b.filtered_bytes, c.filtered_bytes),
                    ("overruns_polling", b.overruns_polling, c.overruns_polling),
                    ("frags_lost", b.frags_lost, c.frags_lost),
                    ("overruns_reading", b.overruns_reading, c.overruns_reading),
                    ("bad", b.bad, c.bad),
                    ("corrupt_lines", b.corrupt_lines, c.corrupt_lines),
                ],
            ));
        }
    }
    for t in &cur.tiles {
        let Some(p) = prev.tile(&t.name) else {
            continue;
        };
        let (b, c) = (&p.metrics, &t.metrics);
        let mut pairs = vec![
            ("boots", b.boots, c.boots),
            ("housekeeping", b.housekeeping, c.housekeeping),
            ("backpressure", b.backpressure, c.backpressure),
            ("backpressure_ns", b.backpressure_ns, c.backpressure_ns),
            ("work_ns", b.work_ns, c.work_ns),
        ];
        // The loop count starts again at a restart. A tile's own
        // counters are not checked: a kind may keep a value that is no
        // count at all (the sink's checksum).
        if b.boots == c.boots {
            pairs.push(("loops", b.loops, c.loops));
        }
        found.extend(went_down(|| format!("tile {}", t.name), pairs));
    }
    found
}

/// Growth of a counter (0 if it went down: the object was made anew).
fn grew(prev: u64, cur: u64) -> u64 {
    cur.saturating_sub(prev)
}

/// Frags between two sequence numbers (0 if `cur` is behind `prev`).
fn advanced(prev: u64, cur: u64) -> u64 {
    (cur.wrapping_sub(prev) as i64).max(0) as u64
}

impl Rates {
    /// What changed from `prev` to `cur`, per second. An interval of zero
    /// (or a `cur` older than `prev`) gives rates of zero.
    pub fn between(prev: &Snapshot, cur: &Snapshot) -> Rates {
        let interval_ns = cur.taken_ns.saturating_sub(prev.taken_ns);
        let per_s = |n: u64| {
            if interval_ns == 0 {
                0.0
            } else {
                n as f64 * 1e9 / interval_ns as f64
            }
        };
        let links: Vec<LinkRates> = cur
            .links
            .iter()
            .filter_map(|l| Some(link_rates(prev.link(&l.name)?, l, &per_s)))
            .collect();
        let tiles = cur
            .tiles
            .iter()
            .filter_map(|t| {
                let p = prev.tile(&t.name)?;
                Some(tile_rates(p, t, prev, cur, interval_ns, &per_s))
            })
            .collect();
        Rates {
            interval_ns,
            tiles,
            links,
            backwards: backwards(prev, cur),
        }
    }

    /// The rates of tile `name`.
    pub fn tile(&self, name: &str) -> Option<&TileRates> {
        self.tiles.iter().find(|t| t.name == name)
    }

    /// The rates of link `name`.
    pub fn link(&self, name: &str) -> Option<&LinkRates> {
        self.links.iter().find(|l| l.name == name)
    }
}

fn link_rates(prev: &LinkView, cur: &LinkView, per_s: &impl Fn(u64) -> f64) -> LinkRates {
    let consumers = cur
        .consumers
        .iter()
        .map(|c| {
            // A consumer new since `prev` is compared with itself: no change.
            let p = prev.consumers.get(c.index).unwrap_or(c);
            let overruns = grew(p.overruns_polling, c.overruns_polling)
                + grew(p.overruns_reading, c.overruns_reading);
            ConsumerRates {
                index: c.index,
                frags_per_s: per_s(grew(p.frags, c.frags)),
                bytes_per_s: per_s(grew(p.bytes, c.bytes)),
                overruns,
                frags_lost: grew(p.frags_lost, c.frags_lost),
            }
        })
        .collect();
    LinkRates {
        name: cur.name.clone(),
        publish_per_s: per_s(advanced(prev.producer_next, cur.producer_next)),
        consumers,
    }
}

fn tile_rates(
    p: &TileView,
    t: &TileView,
    prev: &Snapshot,
    cur: &Snapshot,
    interval_ns: u64,
    per_s: &impl Fn(u64) -> f64,
) -> TileRates {
    let (mut frags_in, mut bytes_in) = (0u64, 0u64);
    for (link, index) in &t.layout.inputs {
        let consumer = |s: &Snapshot| s.link(link)?.consumers.get(*index as usize).copied();
        if let (Some(a), Some(b)) = (consumer(prev), consumer(cur)) {
            frags_in += grew(a.frags, b.frags);
            bytes_in += grew(a.bytes, b.bytes);
        }
    }
    let frags_out: u64 = t
        .layout
        .outputs
        .iter()
        .filter_map(|o| {
            Some(advanced(
                prev.link(o)?.producer_next,
                cur.link(o)?.producer_next,
            ))
        })
        .sum();
    let bp_ns = grew(p.metrics.backpressure_ns, t.metrics.backpressure_ns);
    let backpressure_fraction = if interval_ns == 0 {
        0.0
    } else {
        (bp_ns as f64 / interval_ns as f64).min(1.0)
    };
    let work_ns = grew(p.metrics.work_ns, t.metrics.work_ns);
    let busy_fraction = if interval_ns == 0 {
        0.0
    } else {
        (work_ns as f64 / interval_ns as f64).min(1.0)
    };
    let counters = t
        .metrics
        .counters
        .iter()
        .map(|(name, v)| {
            let before = p
                .metrics
                .counters
                .iter()
                .find(|(n, _)| n == name)
                .map_or(*v, |(_, b)| *b);
            (name.clone(), per_s(grew(before, *v)))
        })
        .collect();
    let hb = t.metrics.heartbeat_ns;
    TileRates {
        name: t.name.clone(),
        frags_in_per_s: per_s(frags_in),
        bytes_in_per_s: per_s(bytes_in),
        frags_out_per_s: per_s(frags_out),
        backpressure_fraction,
        busy_fraction,
        counters,
        heartbeat_age_ns: (hb != 0).then(|| cur.taken_ns.saturating_sub(hb)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConsumerView;
    use tilewire_tile::stem::metrics::{TileLayout, TileSnapshot, TileState};

    fn consumer(frags: u64, lost: u64) -> ConsumerView {
        ConsumerView {
            index: 0,
            reliable: false,
            progress: frags,
            frags,
            bytes: frags * 100,
            filtered: 0,
            filtered_bytes: 0,
            overruns_polling: lost.min(1),
            frags_lost: lost,
            overruns_reading: 0,
            bad: 0,
            bad_last: None,
            corrupt_lines: 0,
        }
    }

    fn snap(taken_ns: u64, published: u64, consumed: u64, lost: u64, sent: u64) -> Snapshot {
        let seq0 = u64::MAX - 10; // sequence numbers wrap within the test
        Snapshot {
            workspace: "w".into(),
            taken_ns,
            tiles: vec![TileView {
                name: "drain".into(),
                layout: TileLayout {
                    kind: "drain".into(),
                    inputs: vec![("a".into(), 0)],
                    outputs: vec![],
                    counters: vec!["sent".into()],
                },
                metrics: TileSnapshot {
                    pid: 1,
                    state: Some(TileState::Running),
                    heartbeat_ns: taken_ns - 1_000,
                    housekeeping: 1,
                    loops: 1,
                    backpressure: 0,
                    backpressure_ns: taken_ns / 4,
                    out_backpressure: vec![],
                    counters: vec![("sent".into(), sent)],
                    boots: 1,
                    work_ns: taken_ns / 2,
                    forwarded_by_chunk: 0,
                    forwarded_copied: 0,
                    corrupt: None,
                },
                latency: vec![None],
            }],
            links: vec![LinkView {
                name: "a".into(),
                depth: 64,
                mtu: 100,
                chunks: (0, 100),
                seq0,
                producer_next: seq0.wrapping_add(published),
                consumers: vec![consumer(consumed, lost)],
            }],
            problems: vec![],
        }
    }

    #[test]
    fn rates_are_deltas_over_the_interval() {
        let a = snap(1_000_000_000, 5, 5, 0, 5);
        let b = snap(1_500_000_000, 105, 95, 3, 90);
        let r = Rates::between(&a, &b);
        assert_eq!(r.interval_ns, 500_000_000);
        let l = r.link("a").unwrap();
        assert_eq!(
            l.publish_per_s, 200.0,
            "100 frags over a wrapped seq in 0.5 s"
        );
        assert_eq!(l.consumers[0].frags_per_s, 180.0);
        assert_eq!(l.consumers[0].bytes_per_s, 18_000.0);
        assert_eq!((l.consumers[0].overruns, l.consumers[0].frags_lost), (1, 3));
        let t = r.tile("drain").unwrap();
        assert_eq!(t.frags_in_per_s, 180.0);
        assert_eq!(t.bytes_in_per_s, 18_000.0);
        assert_eq!(t.frags_out_per_s, 0.0);
        assert_eq!(t.counters, vec![("sent".to_string(), 170.0)]);
        assert_eq!(t.backpressure_fraction, 0.25);
        assert_eq!(t.busy_fraction, 0.5, "work grew by half the interval");
        assert_eq!(t.heartbeat_age_ns, Some(1_000));
    }

    #[test]
    fn counters_that_went_down_and_empty_intervals_give_zero() {
        let a = snap(1_000_000_000, 50, 50, 5, 50);
        let b = snap(2_000_000_000, 40, 10, 0, 10);
        let r = Rates::between(&a, &b);
        assert_eq!(r.link("a").unwrap().publish_per_s, 0.0);
        assert_eq!(r.tile("drain").unwrap().frags_in_per_s, 0.0);
        // Each counter that went down is named, with both values.
        let down: Vec<(&str, &str, u64, u64)> = r
            .backwards
            .iter()
            .map(|b| (b.object.as_str(), b.field.as_str(), b.before, b.after))
            .collect();
        assert_eq!(
            down,
            [
                ("link a consumer 0", "frags", 50, 10),
                ("link a consumer 0", "bytes", 5000, 1000),
                ("link a consumer 0", "overruns_polling", 1, 0),
                ("link a consumer 0", "frags_lost", 5, 0),
            ]
        );
        // A tile's loop count going down is corrupt within a boot, not
        // across a restart.
        let mut c = b.clone();
        c.tiles[0].metrics.loops = 0;
        let r = Rates::between(&a, &c);
        assert!(r.backwards.iter().any(|b| (
            b.object.as_str(),
            b.field.as_str(),
            b.before,
            b.after
        ) == ("tile drain", "loops", 1, 0)));
        c.tiles[0].metrics.boots = 2;
        let r = Rates::between(&a, &c);
        assert!(
            !r.backwards.iter().any(|b| b.object == "tile drain"),
            "{:?}",
            r.backwards
        );
        let same = Rates::between(&a, &a);
        assert_eq!(same.interval_ns, 0);
        assert_eq!(same.tile("drain").unwrap().backpressure_fraction, 0.0);
    }

    #[test]
    fn objects_only_in_the_newer_snapshot_get_no_rates() {
        let mut a = snap(1_000_000_000, 0, 0, 0, 0);
        a.tiles.clear();
        a.links.clear();
        let r = Rates::between(&a, &snap(2_000_000_000, 1, 1, 0, 1));
        assert!(r.tiles.is_empty() && r.links.is_empty());
    }
}
