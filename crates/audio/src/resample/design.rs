//! The filter design: Kaiser-windowed sinc low-pass prototypes, computed
//! in `f64` once per process and quantized to Q15 polyphase kernels.
//!
//! This module *is* the script that produces the coefficients: there is no
//! table to regenerate. [`up_kernel`], [`down2_kernel`] and [`down3_kernel`]
//! design on first use and keep the result in a `OnceLock`; the quality
//! tests in `super::tests` measure the quantized kernels (their
//! exact frequency response) and the resampler built on them against the
//! bars in the parent module's documentation.
//!
//! Kaiser (1974): `w[n] = I0(β·sqrt(1 - (2n/(N-1) - 1)²)) / I0(β)`, the
//! ideal low-pass `2·fc/fs · sinc(2·fc/fs · (n - (N-1)/2))` times `w`.

use std::f64::consts::PI;
use std::sync::OnceLock;

use wide::i16x8;

/// Taps of every polyphase branch of the interpolators, and the length of
/// their input window.
pub(crate) const UP_BRANCH: usize = 32;
/// `UP_BRANCH` in 8-lane vectors.
pub(crate) const UP_VECS: usize = UP_BRANCH / 8;
/// Input samples the interpolators' center branch lags the newest one by
/// (the delay at 8 kHz: 16 samples = 2 ms).
pub(crate) const UP_CENTER_LAG: usize = 16;

/// The parameters of one prototype low-pass filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    /// Sample rate of the prototype (the high rate), Hz.
    pub rate_hz: f64,
    /// Taps (odd: linear phase with an integer delay of `(taps-1)/2`).
    pub taps: usize,
    /// The -6 dB point, Hz.
    pub cutoff_hz: f64,
    /// Kaiser's β.
    pub beta: f64,
}

/// The interpolation (8 kHz -> 8·`factor` kHz) prototype: a Nyquist
/// (L-th band) filter, cut off at 4 kHz, so every `factor`-th tap is zero
/// and one polyphase branch is a pure delay.
pub(crate) fn up_spec(factor: usize) -> Spec {
    Spec {
        rate_hz: 8000.0 * factor as f64,
        taps: 2 * UP_CENTER_LAG * factor + 1,
        cutoff_hz: 4000.0,
        beta: 7.0,
    }
}

/// The decimation (8·`factor` kHz -> 8 kHz) prototype: cut off at 3.68 kHz,
/// so that 3.4 kHz stays within 1 dB and 4.1 kHz (which would alias to
/// 3.9 kHz) is 50 dB down. Cutoff and β were chosen by a grid search
/// (cutoff 3640-3710 Hz by 10, β 4.6-5.6 by 0.2, on the Q15 taps) for the
/// largest smallest margin over the three bars (pass band at 3.4 kHz,
/// 4.1-4.5 kHz, 4.5 kHz to Nyquist) at both rates: 0.5, 5.3 and 3.5 dB.
pub(crate) fn down_spec(factor: usize) -> Spec {
    Spec {
        rate_hz: 8000.0 * factor as f64,
        taps: 2 * UP_CENTER_LAG * factor + 1,
        cutoff_hz: 3680.0,
        beta: 5.2,
    }
}

/// The zeroth-order modified Bessel function of the first kind, by its
/// power series (converges fast for the β used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0f64, 1.0f64, 1.0f64);
    loop {
        term *= (x / (2.0 * k)).powi(2);
        sum += term;
        if term < 1e-17 * sum {
            return sum;
        }
        k += 1.0;
    }
}

/// The prototype's taps in `f64`, with a DC gain of 1.
pub(crate) fn prototype(spec: Spec) -> Vec<f64> {
    let mid = (spec.taps - 1) as f64 / 2.0;
    let fc = 2.0 * spec.cutoff_hz / spec.rate_hz;
    let norm = bessel_i0(spec.beta);
    let mut h: Vec<f64> = (0..spec.taps)
        .map(|n| {
            let m = n as f64 - mid;
            let r = m / mid;
            let w = bessel_i0(spec.beta * (1.0 - r * r).max(0.0).sqrt()) / norm;
            let sinc = if m == 0.0 {
                fc
            } else {
                (PI * fc * m).sin() / (PI * m)
            };
            sinc * w
        })
        .collect();
    let dc: f64 = h.iter().sum();
    for v in &mut h {
        *v /= dc;
    }
    h
}

/// Fraction bits of the interpolators' taps (Q14): their branches' taps
/// add up to 2.25-2.43 in absolute value, and `|x| ≤ 32768` times that
/// must stay below 2^31 in the `i32` sum.
pub(crate) const UP_SHIFT: u32 = 14;
/// Fraction bits of the decimators' taps (Q15; absolute sum 1.97).
pub(crate) const DOWN_SHIFT: u32 = 15;

/// Rounds `taps` to `shift` fraction bits so that they sum to exactly 1.0
/// (a constant input comes out exactly, with no ripple): the rounding
/// residue goes to the largest tap. `taps` must sum to about 1.
fn quantize(taps: &[f64], shift: u32) -> Vec<i16> {
    let one = 1i32 << shift;
    let mut q: Vec<i32> = taps
        .iter()
        .map(|&v| (v * f64::from(one)).round() as i32)
        .collect();
    let residue = one - q.iter().sum::<i32>();
    if let Some(big) = q.iter_mut().max_by_key(|v| v.abs()) {
        *big += residue;
    }
    q.into_iter()
        // The taps of these designs are below 1.0 (checked in the tests),
        // so this never saturates.
        .map(|v| v.clamp(-i32::from(i16::MAX), i32::from(i16::MAX)) as i16)
        .collect()
}

fn vectors<const V: usize>(taps: &[i16]) -> [i16x8; V] {
    std::array::from_fn(|i| {
        let mut lane = [0i16; 8];
        for (l, t) in lane.iter_mut().zip(taps.iter().skip(8 * i)) {
            *l = *t;
        }
        i16x8::new(lane)
    })
}

/// An interpolator's kernel: the `factor - 1` branches that are not the
/// pure delay, each reversed (oldest input first) for a dot product with
/// the input window `x[n-31..=n]`, in Q14 ([`UP_SHIFT`]).
#[derive(Debug)]
pub(crate) struct UpKernel {
    /// Branch `p` (1-based) at index `p - 1`; unused rows are zero.
    pub branches: [[i16x8; UP_VECS]; 2],
    /// The same taps as plain numbers (the tests measure them; not in
    /// other builds).
    #[cfg(test)]
    pub taps: [[i16; UP_BRANCH]; 2],
}

/// The branches of `up_spec(factor)`: `y[L·n + p] = Σ_j L·h[p + L·j]·x[n - j]`.
pub(crate) fn build_up(factor: usize) -> UpKernel {
    let h = prototype(up_spec(factor));
    let mut taps = [[0i16; UP_BRANCH]; 2];
    for (p, row) in taps.iter_mut().enumerate().take(factor - 1) {
        let phase = p + 1;
        // Reversed: window index q holds x[n - (31 - q)].
        let branch: Vec<f64> = (0..UP_BRANCH)
            .map(|q| {
                let k = phase + factor * (UP_BRANCH - 1 - q);
                h.get(k).map_or(0.0, |v| v * factor as f64)
            })
            .collect();
        row.copy_from_slice(&quantize(&branch, UP_SHIFT));
    }
    UpKernel {
        branches: [vectors(&taps[0]), vectors(&taps[1])],
        #[cfg(test)]
        taps,
    }
}

/// A decimator's kernel: the prototype in Q15 ([`DOWN_SHIFT`]) reversed
/// (it is symmetric) and zero-padded at the oldest end to `V` vectors.
#[derive(Debug)]
pub(crate) struct DownKernel<const V: usize> {
    /// The window's taps, oldest input first.
    pub window: [i16x8; V],
    /// The prototype in Q15, `h[0]` first (the tests measure it; not in
    /// other builds).
    #[cfg(test)]
    pub taps: Vec<i16>,
}

/// `y[m] = Σ_k h[k]·x[M·m - k]` with the window `x[M·m - 8V + 1 ..= M·m]`.
pub(crate) fn build_down<const V: usize>(factor: usize) -> DownKernel<V> {
    let taps = quantize(&prototype(down_spec(factor)), DOWN_SHIFT);
    let pad = 8 * V - taps.len();
    let mut window = vec![0i16; pad];
    window.extend(taps.iter().rev());
    DownKernel {
        window: vectors(&window),
        #[cfg(test)]
        taps,
    }
}

/// Kernel of 8 kHz -> 16 kHz and 8 kHz -> 24 kHz (`factor` 2 or 3).
pub(crate) fn up_kernel(factor: usize) -> &'static UpKernel {
    static UP2: OnceLock<UpKernel> = OnceLock::new();
    static UP3: OnceLock<UpKernel> = OnceLock::new();
    if factor == 2 {
        UP2.get_or_init(|| build_up(2))
    } else {
        UP3.get_or_init(|| build_up(3))
    }
}

/// Window vectors of 16 kHz -> 8 kHz: 65 taps padded to 72.
pub(crate) const DOWN2_VECS: usize = 9;
/// Window vectors of 24 kHz -> 8 kHz: 97 taps padded to 104.
pub(crate) const DOWN3_VECS: usize = 13;

/// Kernel of 16 kHz -> 8 kHz.
pub(crate) fn down2_kernel() -> &'static DownKernel<DOWN2_VECS> {
    static K: OnceLock<DownKernel<DOWN2_VECS>> = OnceLock::new();
    K.get_or_init(|| build_down(2))
}

/// Kernel of 24 kHz -> 8 kHz.
pub(crate) fn down3_kernel() -> &'static DownKernel<DOWN3_VECS> {
    static K: OnceLock<DownKernel<DOWN3_VECS>> = OnceLock::new();
    K.get_or_init(|| build_down(3))
}
