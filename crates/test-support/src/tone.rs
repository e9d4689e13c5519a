//! Measuring a sine in test audio: the resampler quality tests (round-trip
//! SNR, pass-band gain, delay) of `callbridge-audio` and `callbridge-rtp`.

use std::f64::consts::TAU;

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
