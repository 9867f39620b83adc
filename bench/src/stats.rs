//! Percentiles of latency samples and medians of repeated runs.

use std::time::Duration;

/// The p50 and p99 of a set of round trips, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// The median, in µs.
    pub p50: f64,
    /// The 99th percentile, in µs.
    pub p99: f64,
}

impl Latency {
    /// The percentiles of `samples` (nearest-rank); zeros when there are none.
    pub fn of(samples: &[Duration]) -> Self {
        let mut micros: Vec<f64> = samples
            .iter()
            .map(|sample| sample.as_secs_f64() * 1e6)
            .collect();
        micros.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&micros, 0.50),
            p99: percentile(&micros, 0.99),
        }
    }
}

/// The nearest-rank percentile `fraction` (0 to 1) of sorted `values`.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (the upper one for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let latency = Latency::of(&samples);
        assert_eq!(latency.p50, 50.0);
        assert_eq!(latency.p99, 99.0);
        assert_eq!(Latency::of(&[Duration::from_micros(7)]).p99, 7.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }
}
