//! Latency samples and their summaries (p50, p99, max) for the report.
//!
//! Samples are microseconds in a plain vector: a 5,000-call soak at 50
//! packets a second holds a few million of them at most, which is a few
//! megabytes, and exact percentiles are simpler to trust than a histogram.

use serde::Serialize;
use std::time::Duration;

/// Durations collected for one figure, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<u32>);

impl Samples {
    /// Adds one duration (saturating at about 71 minutes).
    pub fn push(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    /// Adds every sample of `other`.
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// The summary (sorts the samples in place).
    pub fn summary(&mut self) -> Summary {
        self.0.sort_unstable();
        Summary {
            n: self.0.len(),
            p50_ms: percentile(&self.0, 50.0),
            p99_ms: percentile(&self.0, 99.0),
            max_ms: self.0.last().map(|&v| f64::from(v) / 1000.0),
        }
    }
}

/// p50/p99/max of one figure in milliseconds (`None` without samples).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
pub fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    Some(f64::from(sorted[idx]) / 1000.0)
}

/// Formats an optional millisecond figure for the table.
pub fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s = Samples::default();
        for v in 1..=100u64 {
            s.push(Duration::from_micros(v * 1000));
        }
        let sum = s.summary();
        assert_eq!(sum.n, 100);
        assert_eq!(sum.p50_ms, Some(50.0));
        assert_eq!(sum.p99_ms, Some(99.0));
        assert_eq!(sum.max_ms, Some(100.0));
    }

    #[test]
    fn one_sample_is_every_percentile_and_none_is_none() {
        let mut s = Samples::default();
        assert_eq!(s.summary().p99_ms, None);
        s.push(Duration::from_millis(7));
        let sum = s.summary();
        assert_eq!((sum.p50_ms, sum.p99_ms), (Some(7.0), Some(7.0)));
    }

    #[test]
    fn huge_durations_saturate_instead_of_wrapping() {
        let mut s = Samples::default();
        s.push(Duration::from_secs(10_000_000));
        assert_eq!(s.summary().max_ms, Some(f64::from(u32::MAX) / 1000.0));
    }
}
