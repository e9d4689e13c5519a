//! Checks on what a run left: recordings (complete WAV files, per-channel
//! level) and the latency figures the sessions carry in the store.

use std::path::Path;

use callbridge_crm_store::{Session, Store};

/// Checks that `path` is a complete WAV file (header sizes match the file)
/// and returns (channels, sample rate, frames).
pub fn check_wav(path: &Path) -> (u16, u32, u32) {
    let r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a readable WAV: {e}", path.display()));
    let spec = r.spec();
    let frames = r.duration();
    let len = std::fs::metadata(path).unwrap().len();
    let data = u64::from(frames) * u64::from(spec.channels) * u64::from(spec.bits_per_sample / 8);
    assert!(
        data + 44 <= len && len <= data + 4096,
        "{}: header says {data} data bytes but the file has {len} bytes",
        path.display()
    );
    (spec.channels, spec.sample_rate, frames)
}

/// Per-channel RMS of a stereo 16-bit WAV (left = caller, right = agent).
pub fn wav_channel_rms(path: &Path) -> (f64, f64) {
    let mut r = hound::WavReader::open(path).unwrap();
    let ch = usize::from(r.spec().channels);
    let mut sums = [0f64; 2];
    let mut n = [0u64; 2];
    for (i, s) in r.samples::<i16>().enumerate() {
        let s = f64::from(s.unwrap());
        let c = (i % ch).min(1);
        sums[c] += s * s;
        n[c] += 1;
    }
    let rms = |c: usize| {
        if n[c] == 0 {
            0.0
        } else {
            (sums[c] / n[c] as f64).sqrt()
        }
    };
    (rms(0), rms(1))
}

/// Latency figures (ms) a set of sessions carry as store events (kind
/// `note`, `{"metric": NAME, "value": N}`), sorted.
pub fn latency_notes(store: &Store, sessions: &[Session], metric: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for s in sessions {
        let rec = store.load_session(s.id).unwrap();
        for e in &rec.events {
            if e.kind == callbridge_crm_store::EventKind::Note
                && e.detail["metric"] == metric
                && let Some(v) = e.detail["value"].as_u64()
            {
                out.push(v);
            }
        }
    }
    out.sort_unstable();
    out
}

/// "n=.. min=.. p50=.. p95=.. max=.. mean=.. ms" of sorted figures.
pub fn summary_ms(sorted: &[u64]) -> String {
    if sorted.is_empty() {
        return "n=0".into();
    }
    let pick = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let mean = sorted.iter().sum::<u64>() as f64 / sorted.len() as f64;
    format!(
        "n={} min={} p50={} p95={} max={} mean={mean:.1} ms",
        sorted.len(),
        sorted[0],
        pick(0.5),
        pick(0.95),
        sorted[sorted.len() - 1]
    )
}
