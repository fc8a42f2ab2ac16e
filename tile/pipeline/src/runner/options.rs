//! How a pipeline runs: [`RunOptions`].

use std::time::Duration;

use tilewire_tile::stem::StemConfig;

use super::tile_process::StopFlag;

/// How [`Pipeline::run`](crate::Pipeline::run) runs: [`RunOptions::new`] and the setters, or
/// the fields of a value made so.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The tiles' loop settings (each tile's stop grace among them).
    pub stem: StemConfig,
    /// Stop after this long (default: only when told).
    pub duration: Option<Duration>,
    /// Stop when this is set.
    pub stop: Option<StopFlag>,
    /// Longest wait for every tile to run (default 10 s).
    pub start_timeout: Duration,
    /// How often [`Pipeline::run_with`](crate::Pipeline::run_with) calls its tick (default 1 s).
    pub tick: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            stem: StemConfig::default(),
            duration: None,
            stop: None,
            start_timeout: Duration::from_secs(10),
            tick: Duration::from_secs(1),
        }
    }
}

impl RunOptions {
    /// The defaults.
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// Stops after `d`.
    pub fn duration(mut self, d: Duration) -> RunOptions {
        self.duration = Some(d);
        self
    }

    /// Stops when `flag` is set.
    pub fn stop_on(mut self, flag: StopFlag) -> RunOptions {
        self.stop = Some(flag);
        self
    }

    /// The tiles' loop settings.
    pub fn stem(mut self, stem: StemConfig) -> RunOptions {
        self.stem = stem;
        self
    }

    /// The longest wait for every tile to run.
    pub fn start_timeout(mut self, d: Duration) -> RunOptions {
        self.start_timeout = d;
        self
    }

    /// How often [`Pipeline::run_with`](crate::Pipeline::run_with) calls its tick.
    pub fn tick(mut self, d: Duration) -> RunOptions {
        self.tick = d;
        self
    }
}
