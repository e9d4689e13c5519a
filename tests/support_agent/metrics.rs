//! Reading the agent's Prometheus text (`GET /metrics`): sample values by
//! name and label, and histogram summaries.

/// One parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// (name, raw label text without braces, value)
    pub samples: Vec<(String, String, f64)>,
}

/// A histogram's figures (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Histogram {
    pub count: f64,
    pub sum: f64,
    /// Upper bounds of the buckets holding the 50th and 95th percentile.
    pub p50_le: f64,
    pub p95_le: f64,
}

impl Histogram {
    /// The mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.sum / self.count * 1000.0
        }
    }
}

impl std::fmt::Display for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} mean={:.1} ms p50<={:.0} ms p95<={:.0} ms",
            self.count,
            self.mean_ms(),
            self.p50_le * 1000.0,
            self.p95_le * 1000.0
        )
    }
}

impl Metrics {
    /// Parses Prometheus text format (comments skipped).
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let value: f64 = match value.trim() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
                None => (series.trim().to_string(), String::new()),
            };
            samples.push((name, labels, value));
        }
        Metrics { samples }
    }

    /// The sum of every sample named `name` (all label sets); `None` when
    /// the metric is absent.
    pub fn value(&self, name: &str) -> Option<f64> {
        let mut found = None;
        for (n, _, v) in &self.samples {
            if n == name {
                *found.get_or_insert(0.0) += v;
            }
        }
        found
    }

    /// The sum of samples named `name` whose labels contain every
    /// `key="value"` in `want`.
    pub fn value_with(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.split(',').any(|p| p.trim() == format!("{k}=\"{v}\"")))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// A histogram's count, sum and bucket bounds of p50/p95.
    pub fn histogram(&self, name: &str) -> Option<Histogram> {
        let count = self.value(&format!("{name}_count"))?;
        let sum = self.value(&format!("{name}_sum"))?;
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|(n, _, _)| *n == format!("{name}_bucket"))
            .filter_map(|(_, l, v)| {
                let le = l
                    .split(',')
                    .find_map(|p| p.trim().strip_prefix("le=\""))?
                    .trim_end_matches('"');
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let q = |p: f64| {
            let want = count * p;
            buckets
                .iter()
                .find(|(_, c)| *c >= want && *c > 0.0)
                .map_or(f64::NAN, |(le, _)| *le)
        };
        Some(Histogram {
            count,
            sum,
            p50_le: q(0.5),
            p95_le: q(0.95),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_labels_and_histograms_parse() {
        let m = Metrics::parse(
            "# HELP x y\n# TYPE callbridge_call_tasks gauge\ncallbridge_call_tasks 3\n\
             callbridge_calls_ended_total{direction=\"inbound\",reason=\"caller-hangup\"} 5\n\
             callbridge_calls_ended_total{direction=\"outbound\",reason=\"busy\"} 1\n\
             h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"0.5\"} 9\nh_bucket{le=\"+Inf\"} 10\n\
             h_sum 2.5\nh_count 10\n",
        );
        assert_eq!(m.value("callbridge_call_tasks"), Some(3.0));
        assert_eq!(m.value("callbridge_calls_ended_total"), Some(6.0));
        assert_eq!(
            m.value_with("callbridge_calls_ended_total", &[("reason", "busy")]),
            1.0
        );
        let h = m.histogram("h").unwrap();
        assert_eq!((h.count, h.p50_le, h.p95_le), (10.0, 0.5, f64::INFINITY));
        assert_eq!(m.value("absent"), None);
    }
}
