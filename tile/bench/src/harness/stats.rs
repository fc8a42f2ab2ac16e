//! Repetitions and the statistics over them: the best round of each
//! contestant (the contestants taking turns within a round, so machine
//! noise hits them alike), nearest-rank percentiles, and the median round
//! of a latency measured in rounds.

/// The `p` quantile (0 to 1) of sorted samples, nearest rank; 0 if none.
pub(crate) fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p99 of `v` (sorts it); `None` if it is empty.
pub(crate) fn p50_p99<T: Copy + Ord + Into<u64>>(v: &mut [T]) -> Option<(u64, u64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize].into();
    Some((at(0.5), at(0.99)))
}

/// The median of `v` (the upper one of an even count; sorts it); 0 if
/// it is empty.
pub(crate) fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Keeps `t` in `best` if it is the first or its `rate` is higher.
pub(crate) fn keep_best<T>(best: &mut Option<T>, t: T, rate: impl Fn(&T) -> f64) {
    if best.as_ref().is_none_or(|b| rate(&t) > rate(b)) {
        *best = Some(t);
    }
}

/// Runs `cell(k)` for each of `n` contestants `rounds` times, taking turns
/// within a round so machine noise hits them alike, and keeps each one's
/// best by `rate`. A contestant whose cell fails is told to `left_out` and
/// runs no more (its entry stays `None` if it never ran).
pub(crate) fn best_of<T>(
    rounds: usize,
    n: usize,
    mut cell: impl FnMut(usize) -> Result<T, String>,
    rate: impl Fn(&T) -> f64,
    mut left_out: impl FnMut(usize, String),
) -> Vec<Option<T>> {
    let mut best: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut out = vec![false; n];
    for _ in 0..rounds {
        for k in 0..n {
            if out[k] {
                continue;
            }
            match cell(k) {
                Ok(c) => keep_best(&mut best[k], c, &rate),
                Err(e) => {
                    left_out(k, e);
                    out[k] = true;
                }
            }
        }
    }
    best
}

/// A latency measured in rounds: each round's p50 and p99, and the median
/// round of each. On a shared VM a round the host preempts for a
/// millisecond queues hundreds of samples behind the stall, which would
/// decide the p99 of whichever contestant it hit; the median round shows
/// the thing measured, not the host.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoundPercentiles {
    p50s: Vec<u64>,
    p99s: Vec<u64>,
}

impl RoundPercentiles {
    /// Adds one round's samples (sorts them).
    pub(crate) fn add(&mut self, samples: &mut [u64]) {
        samples.sort_unstable();
        self.p50s.push(pct(samples, 0.5));
        self.p99s.push(pct(samples, 0.99));
    }

    /// The median round's p50 and p99; `None` before any round.
    pub(crate) fn median(&self) -> Option<(u64, u64)> {
        if self.p50s.is_empty() {
            return None;
        }
        Some((
            median(&mut self.p50s.clone()),
            median(&mut self.p99s.clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(pct(&v, 0.5), 51);
        assert_eq!(pct(&v, 0.99), 99);
        assert_eq!(pct(&[], 0.5), 0);
        let mut u: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(p50_p99(&mut u), Some((51, 99)));
        assert_eq!(p50_p99::<u32>(&mut []), None);
    }

    #[test]
    fn median_takes_the_upper_middle() {
        assert_eq!(median(&mut [3, 1, 2]), 2);
        assert_eq!(median(&mut [4, 1, 3, 2]), 3);
        assert_eq!(median(&mut []), 0);
        let mut r = RoundPercentiles::default();
        assert_eq!(r.median(), None);
        for base in [10u64, 30, 20] {
            r.add(&mut (base..base + 100).collect::<Vec<_>>());
        }
        assert_eq!(r.median(), Some((70, 118)));
    }

    #[test]
    fn best_of_keeps_each_best_and_drops_a_failing_contestant() {
        let mut calls = [0usize; 3];
        let mut out = Vec::new();
        let best = best_of(
            3,
            3,
            |k| {
                calls[k] += 1;
                match k {
                    2 => Err("no".into()),
                    _ => Ok((k as f64 + 1.0) * calls[k] as f64),
                }
            },
            |r| *r,
            |k, e| out.push((k, e)),
        );
        assert_eq!(best, vec![Some(3.0), Some(6.0), None]);
        assert_eq!(calls, [3, 3, 1]);
        assert_eq!(out, vec![(2, "no".to_string())]);
    }
}
