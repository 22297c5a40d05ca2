//! Percentiles over latency samples, and the spread of interleaved series.

use std::time::Duration;

/// p50 and p99 of `samples`, in milliseconds (nearest-rank).
pub fn p50_p99(samples: &[Duration]) -> (f64, f64) {
    (percentile(samples, 50.0), percentile(samples, 99.0))
}

/// Nearest-rank percentile in milliseconds; 0 for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v: Vec<Duration> = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, v.len()) - 1;
    v[idx].as_secs_f64() * 1000.0
}

/// The figures of a latency series the peer comparison prints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Mean, ms.
    pub mean: f64,
    /// Share of samples over 10 ms (0–1).
    pub over_10ms: f64,
}

impl Summary {
    /// Summarises `samples` (all zero for none).
    pub fn of(samples: &[Duration]) -> Summary {
        let n = samples.len().max(1) as f64;
        Summary {
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            mean: samples.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / n,
            over_10ms: samples
                .iter()
                .filter(|d| **d > Duration::from_millis(10))
                .count() as f64
                / n,
        }
    }
}

/// Lowest and highest of `values` (0, 0 for none).
pub fn range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn summary_and_range() {
        let s: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        let m = Summary::of(&s);
        assert_eq!((m.p50, m.p90, m.p99), (10.0, 18.0, 20.0));
        assert!((m.mean - 10.5).abs() < 1e-9);
        assert!(
            (m.over_10ms - 0.5).abs() < 1e-9,
            "11..=20 ms are over 10 ms"
        );
        assert_eq!(range(&[1.2, 0.9, 1.1]), (0.9, 1.2));
        assert_eq!(range(&[]), (0.0, 0.0));
    }
}
