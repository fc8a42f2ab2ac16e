#![doc = include_str!("../README.md")]
//!
//! Monitoring a workspace: what every tile and link of a pipeline is doing,
//! read from shared memory by a process that can change nothing.
//!
//! A monitor joins a workspace read-only (the mapping is `PROT_READ`, so no
//! bug here can corrupt a running pipeline) and looks at what the tiles
//! leave there for it:
//!
//! - each tile's [metrics](tilewire_tile::stem::metrics) object `<tile>.tm`: its kind, its
//!   input and output links, pid, state, heartbeat, loop and back-pressure
//!   counts and counters of its own;
//! - each link's [mcache](tilewire_tile::link::mcache), whose lines say how far the
//!   producer has published, and the [fseq](tilewire_tile::link::fseq) of each consumer:
//!   its published progress and what it counted (frags and bytes consumed,
//!   filtered, overruns, frags lost, bad frags);
//! - the latency histogram `<tile>.lat<i>` of each tile input.
//!
//! # Snapshots and rates
//!
//! [`Snapshot::take`] reads all of that once and records the
//! `CLOCK_MONOTONIC` time it was taken. Words are read one at a time while
//! the tiles run, so a snapshot is a set of recent values, not an atomic
//! picture, and a consumer's counts trail its real position by up to the
//! frags between two of its progress publishes (a reliable consumer never
//! trails the producer by more than the ring's depth). Nothing a snapshot
//! finds can make it panic: an object that is not what its name says, a
//! tile caught half made, a link whose parts are missing, all become
//! [`Problem`]s in the snapshot.
//!
//! [`Rates::between`] turns two snapshots into rates: per tile the frags
//! and bytes read per second (from its inputs' fseqs), frags published per
//! second (from its outputs' mcaches), each counter's rate and the fraction
//! of the interval spent back-pressured (closed episodes only: an episode
//! still going is counted when it ends); per link the publish rate and per
//! consumer its rate, overruns and frags lost in the interval.
//!
//! # Liveness
//!
//! A tile that stops cleanly says [`TileState::Halted`](tilewire_tile::stem::metrics::TileState).
//! A tile that dies (SIGKILL, a panic, a machine check) cannot say anything:
//! its metrics keep saying `Running` with a heartbeat that no longer moves.
//! [`classify`] therefore calls a tile [`TileHealth::Dead`] when its state
//! says running or booting and either its process is gone or its heartbeat
//! is older than a threshold ([`HEARTBEAT_TIMEOUT`], 500 ms by default;
//! housekeeping runs many times a millisecond in a live tile, idle or not).
//! The classification is a pure function of the snapshot, the time and a
//! pid test, so it is tested without killing anything. [`workspace_status`]
//! sums it up per workspace for `tilewire shmem ls`.
//!
//! # Output
//!
//! A [`Report`] is a snapshot with its rates and health, ready to show:
//! [`render::table`] draws it as text, [`render::prometheus`] in the
//! Prometheus text exposition format, and [`Report::to_json`] as JSON with
//! these fields (stable: new fields may be added, none renamed):
//!
//! ```text
//! workspace, taken_ns, interval_ns (null without rates)
//! tiles[]: name, kind, pid, state ("booting"|"running"|"halted"|"unknown"),
//!   health ("booting"|"running"|"halted"|"dead"), dead_reason,
//!   heartbeat_ns, heartbeat_age_ns (null: never), loops, housekeeping, boots,
//!   backpressure_episodes, backpressure_ns, out_backpressure[],
//!   frags_in_per_s, bytes_in_per_s, frags_out_per_s,
//!   backpressure_fraction, busy_fraction (null without rates), work_ns,
//!   inputs[]: link, consumer, latency {count, p50_ns, p99_ns} or null,
//!   outputs[], counters[]: name, value, per_s
//! links[]: name, depth, mtu, producer (tile name or null), seq0,
//!   producer_next, published, publish_per_s,
//!   consumers[]: index, tile, reliable, progress, lag (at most depth),
//!     lapped, frags, bytes,
//!     filtered, overruns_polling, overruns_reading, frags_lost, bad,
//!     frags_per_s, bytes_per_s, overruns_in_interval,
//!     frags_lost_in_interval, latency_p50_ns, latency_p99_ns
//! problems[]: object, why
//! ```
//!
//! Rates are per second, times in nanoseconds; a rate is `null` in a
//! report made without a previous snapshot.
//!
//! # Corrupt words
//!
//! A value no healthy pipeline can hold is shown as CORRUPT, with a
//! problem naming the place, the value seen and what was possible, never
//! as a figure: a consumer progress past its producer, a reliable lag
//! beyond the depth, more frags lost than ever published, frags pointing
//! outside their dcache, ring lines with a seq no producer writes, a
//! counter that went down between two snapshots ([`Rates::backwards`]),
//! a heartbeat from the future, an allocation table entry outside the
//! data region or over another (the object in it is not read). A
//! workspace whose file was truncated under the monitor is an error
//! ([`Snapshot::try_take`]; `tilewire monitor` exits with it), not a
//! SIGBUS (see `tilewire_shmem::sigbus`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod health;
mod objects;
mod rates;
pub mod render;
mod report;
mod snapshot;
mod units;

pub use health::{
    classify, pid_alive, workspace_status, HealthCounts, TileHealth, WorkspaceStatus,
    HEARTBEAT_TIMEOUT,
};
pub use objects::{identify, ObjectKind};
pub use rates::{Backwards, ConsumerRates, LinkRates, Rates, TileRates};
pub use report::{ConsumerReport, CounterReport, InputReport, LinkReport, Report, TileReport};
pub use snapshot::{
    ConsumerView, LatencyView, LinkView, Problem, Snapshot, TileView, LATENCY_BOUNDS_NS,
};
