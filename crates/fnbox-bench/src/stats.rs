//! Percentiles over latency samples.

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
}
