//! An AIMD limit on sends in flight, against a latency target: the
//! optional self-tuning of the io_uring engine ([`AimdConfig`]).
//!
//! The controller sees the latency of every send completion (submit to
//! completion reaped). Every `window` completions it decides once: if more
//! than 1% of them took longer than the target (the window's p99 is over
//! it), the limit halves (multiplicative decrease, not below `min`);
//! otherwise it grows by one (additive increase, not above the engine's
//! slots). Counting completions over the target is all the p99 test
//! needs, so a decision costs two counters and no allocation.
//!
//! Under a load that keeps the limit full, latency grows with the sends
//! in flight, and the limit settles into the usual AIMD saw-tooth between
//! about half and all of the largest limit that meets the target. A test
//! below drives it against such a model from both ends.

/// Settings of the in-flight limit ([`UdpConfig::aimd`](super::UdpConfig::aimd)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AimdConfig {
    /// The latency a send may take, submit to completion, in nanoseconds;
    /// the window's p99 is held under it.
    pub target_ns: u64,
    /// The smallest limit (at least 1).
    pub min: usize,
    /// Completions per decision (at least 100, so that "more than 1%" is
    /// a count of at least one).
    pub window: u32,
}

impl AimdConfig {
    /// A target of `target_ns`, limit at least 1, one decision per 256
    /// completions.
    pub const fn new(target_ns: u64) -> AimdConfig {
        AimdConfig {
            target_ns,
            min: 1,
            window: 256,
        }
    }
}

/// The controller's state.
#[derive(Debug, Clone)]
pub(crate) struct Aimd {
    cfg: AimdConfig,
    max: usize,
    limit: usize,
    samples: u32,
    over: u32,
    decreases: u64,
}

impl Aimd {
    /// Starts at `max` (no limit until latency says so).
    pub(super) fn new(cfg: AimdConfig, max: usize) -> Aimd {
        let cfg = AimdConfig {
            min: cfg.min.clamp(1, max.max(1)),
            window: cfg.window.max(100),
            ..cfg
        };
        Aimd {
            cfg,
            max,
            limit: max,
            samples: 0,
            over: 0,
            decreases: 0,
        }
    }

    /// Sends allowed in flight now.
    #[inline]
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Times the limit was halved.
    pub(super) fn decreases(&self) -> u64 {
        self.decreases
    }

    /// Records one completion's latency; decides at the end of a window.
    #[inline]
    pub(super) fn record(&mut self, ns: u64) {
        self.samples += 1;
        self.over += u32::from(ns > self.cfg.target_ns);
        if self.samples >= self.cfg.window {
            // p99 over the target: more than 1% of the window over it.
            if u64::from(self.over) * 100 > u64::from(self.samples) {
                self.limit = (self.limit / 2).max(self.cfg.min);
                self.decreases += 1;
            } else {
                self.limit = (self.limit + 1).min(self.max);
            }
            self.samples = 0;
            self.over = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue that is always full: each completion's latency is `base`
    /// plus `per` for every send in flight ahead of it, with a few percent
    /// of deterministic jitter. The largest limit that meets a target `t`
    /// is `(t - base) / per`.
    fn drive(aimd: &mut Aimd, completions: usize, base: u64, per: u64) -> Vec<usize> {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut limits = Vec::with_capacity(completions);
        for _ in 0..completions {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let ideal = base + per * aimd.limit() as u64;
            let jitter = seed % (ideal / 32 + 1);
            aimd.record(ideal - ideal / 64 + jitter);
            limits.push(aimd.limit());
        }
        limits
    }

    #[test]
    fn converges_to_the_limit_that_meets_the_target_from_both_ends() {
        let (base, per, target) = (2_000u64, 500u64, 40_000u64);
        let best = ((target - base) / per) as usize; // 76
        for start_low in [false, true] {
            let mut aimd = Aimd::new(AimdConfig::new(target), 256);
            if start_low {
                // Drive it down to the floor first with an impossible target.
                aimd.cfg.target_ns = 0;
                drive(&mut aimd, 256 * 20, base, per);
                assert_eq!(aimd.limit(), 1);
                aimd.cfg.target_ns = target;
            }
            let limits = drive(&mut aimd, 256 * 2_000, base, per);
            // After the first half, the limit stays in the saw-tooth below
            // the best limit and never far under half of it.
            let tail = &limits[limits.len() / 2..];
            let (lo, hi) = (*tail.iter().min().unwrap(), *tail.iter().max().unwrap());
            assert!(
                hi <= best + 2,
                "start_low={start_low}: peak {hi} over {best}"
            );
            assert!(
                lo + 2 >= best / 2,
                "start_low={start_low}: trough {lo} under {}",
                best / 2
            );
            let mean = tail.iter().sum::<usize>() as f64 / tail.len() as f64;
            assert!(
                mean > 0.6 * best as f64 && mean < best as f64,
                "start_low={start_low}: mean {mean} for best {best}"
            );
            assert!(aimd.decreases() > 10, "it keeps probing");
        }
    }

    #[test]
    fn a_target_always_met_keeps_the_limit_at_the_top() {
        let mut aimd = Aimd::new(AimdConfig::new(u64::MAX), 64);
        let limits = drive(&mut aimd, 256 * 100, 1_000, 100);
        assert!(limits.iter().all(|&l| l == 64));
        assert_eq!(aimd.decreases(), 0);
    }

    #[test]
    fn one_percent_is_the_line() {
        let mut aimd = Aimd::new(
            AimdConfig {
                target_ns: 100,
                min: 4,
                window: 200,
            },
            32,
        );
        // Two of 200 over the target: 1%, not more; the limit stays.
        for i in 0..200 {
            aimd.record(if i < 2 { 101 } else { 100 });
        }
        assert_eq!(aimd.limit(), 32);
        // Three of 200: halves.
        for i in 0..200 {
            aimd.record(if i < 3 { 101 } else { 100 });
        }
        assert_eq!(aimd.limit(), 16);
        // Never below min.
        for _ in 0..200 * 10 {
            aimd.record(1_000);
        }
        assert_eq!(aimd.limit(), 4);
    }
}
