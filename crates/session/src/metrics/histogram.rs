//! A fixed-bucket histogram of durations: one atomic counter per bucket,
//! allocated once; observing is a short scan and two atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) for telephony latencies: answer to first audio,
/// end of caller speech to the reply. A good reply starts within 0.3-0.8 s;
/// several seconds is a broken call.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

/// Upper bounds (seconds) for call durations, from one second to two hours.
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// The histogram (see the module docs).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, plus the overflow (`+Inf`) bucket.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// A histogram with these ascending upper bounds (seconds).
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation in the first bucket whose bound is at least
    /// `d` (Prometheus `le`, inclusive).
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The cumulative view. `count` is the sum of every bucket, so the
    /// `+Inf` bucket always equals it even while others observe.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, c) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += c.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let overflow = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: cumulative + overflow,
        }
    }
}

/// A histogram as of one moment, in Prometheus' shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, ascending,
    /// cumulative; the `+Inf` bucket is not listed (it is `count`).
    pub buckets: Vec<(f64, u64)>,
    /// The sum of every observation, in seconds.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// An empty histogram with these bounds (seconds).
    pub fn empty(bounds: &[f64]) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: bounds.iter().map(|&b| (b, 0)).collect(),
            sum: 0.0,
            count: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_inclusive_buckets_and_accumulate() {
        let h = Histogram::new(&[0.1, 0.5, 1.0]);
        h.observe(Duration::from_millis(100)); // le=0.1 (inclusive)
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_millis(1000));
        h.observe(Duration::from_secs(4)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(0.1, 1), (0.5, 2), (1.0, 3)]);
        assert_eq!(s.count, 4);
        assert!((s.sum - 5.4).abs() < 1e-9, "sum {}", s.sum);
    }

    #[test]
    fn bucket_bounds_ascend() {
        for b in [LATENCY_BUCKETS, DURATION_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
