//! Making and measuring sines in test audio, for the resampler quality
//! tests of `callbridge-audio` (round-trip SNR, pass-band gain, stop band,
//! delay).

use std::f64::consts::TAU;

/// `len` samples of a sine of `hz` at `rate` with peak `amp`, starting at
/// phase 0, each rounded to the nearest `i16` (an `amp` above 32767
/// saturates).
///
/// ```
/// use callbridge_test_support::tone::tone;
/// let x = tone(8000, 2000.0, 10_000.0, 5);
/// assert_eq!(x, [0, 10_000, 0, -10_000, 0]);
/// ```
#[must_use]
pub fn tone(rate: u32, hz: f64, amp: f64, len: usize) -> Vec<i16> {
    (0..len)
        .map(|n| (amp * (TAU * hz * n as f64 / f64::from(rate)).sin()).round() as i16)
        .collect()
}

/// A least-squares fit of a sine of `hz` to `x` sampled at `rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneFit {
    /// The fitted amplitude (gain and delay are fitted out).
    pub amplitude: f64,
    /// The fitted phase, in radians.
    pub phase: f64,
    /// Signal (the fitted sine) to residual ratio, in dB.
    pub snr_db: f64,
}

/// Fits a sine of frequency `hz` with any amplitude and phase to `x`.
///
/// ```
/// use callbridge_test_support::tone::fit_tone;
/// let x: Vec<i16> = (0..800)
///     .map(|n| (10_000.0 * (std::f64::consts::TAU * 1000.0 * n as f64 / 8000.0).sin()) as i16)
///     .collect();
/// let fit = fit_tone(&x, 8000, 1000.0);
/// assert!((fit.amplitude - 10_000.0).abs() < 1.0 && fit.snr_db > 80.0);
/// ```
pub fn fit_tone(x: &[i16], rate: u32, hz: f64) -> ToneFit {
    let w = TAU * hz / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let v = f64::from(v);
        ss += s * s;
        sc += s * c;
        cc += c * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let (mut sig, mut res) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let fit = a * s + b * c;
        sig += fit * fit;
        res += (f64::from(v) - fit).powi(2);
    }
    ToneFit {
        amplitude: (a * a + b * b).sqrt(),
        phase: b.atan2(a),
        snr_db: 10.0 * (sig / res).log10(),
    }
}
