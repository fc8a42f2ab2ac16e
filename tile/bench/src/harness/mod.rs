//! What every bench shares: its flags and output (the table and the
//! `--json` rows), repetitions and the statistics over them, CPU time per
//! thread, and the layout report (what ran pinned where, which vCPUs share
//! a cache).

pub(crate) mod cpu;
pub(crate) mod layout;
pub(crate) mod output;
pub(crate) mod pin;
pub(crate) mod stats;

pub(crate) use output::{print_json, round, window_secs, BenchArgs};

use std::time::Duration;

/// How long the parts of a cell last: a warm-up, then the window that is
/// measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub warm: Duration,
    pub window: Duration,
}
