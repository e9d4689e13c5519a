//! Streaming sample-rate conversion between the telephone rate (8 kHz)
//! and the model rates (16 kHz, 24 kHz): fixed-ratio polyphase FIR
//! filters in 16-bit fixed point, the one resampler of the workspace.
//!
//! Owns [`Resampler`]: one direction, one channel, any input length per
//! call (the filter state carries over, so chunk boundaries are seamless;
//! any split of the input gives the same output as one call), writing into
//! a buffer the caller owns. It never allocates: its state is a fixed
//! array, the kernels are designed once per process (`resample/design.rs`).
//!
//! # Why by hand
//!
//! The frame path has a budget of 1 µs per 20 ms frame each way with at
//! most 2 ms of added delay. rubato's FFT resampler (the previous one) at
//! 2 ms delay took 1.90-2.88 µs per frame in criterion (measured under
//! load) and 23,743-42,203 instructions per frame under callgrind, against
//! 5,322-9,294 for this one (`docs/PERFORMANCE.md`, "Issue 17: frame
//! path"). libspeexdsp was not measured here; soxr delays by 12-100 ms, and
//! the small polyphase crates (`audio-codec`: 24 taps per phase;
//! `embedded-dsp`: one-shot functions without stream state) cannot meet
//! the stop band below. Two fixed ratios
//! (×2, ×3) need nothing general: a 32-tap dot product per output sample.
//!
//! # Filter design
//!
//! All prototypes are linear-phase Kaiser-windowed sinc low-passes with
//! `32·L + 1` taps at the high rate 8·L kHz, so the group delay is
//! `16·L` high-rate samples = 16 samples at 8 kHz = **2.0 ms** in every
//! direction ([`Resampler::delay`]). Coefficients are computed in `f64` by
//! `resample/design.rs` (that module is the generator; nothing is pasted) and
//! quantized to Q15 so that every polyphase branch sums to exactly 1.0.
//!
//! | | up ×2, ×3 (8k -> 16k, 24k) | down ×2, ×3 (16k, 24k -> 8k) |
//! |---|---|---|
//! | taps | 65 / 97 (a Nyquist filter: every L-th tap 0) | 65 / 97, padded to 72 / 104 |
//! | cutoff (-6 dB) | 4.0 kHz | 3.68 kHz |
//! | Kaiser β | 7.0 | 5.2 |
//! | taps' format | Q14 | Q15 |
//! | pass band | flat to 3.4 kHz (< 0.01 dB) | -0.48 dB at 3.4 kHz |
//! | stop band | ≥ 70 dB from 4.6 kHz (images of ≤ 3.4 kHz) | ≥ 55.3 dB at 4.1-4.5 kHz, ≥ 63.5 dB from 4.5 kHz |
//! | work per output | branch 0: a copy; others: 32 MACs | 72 / 104 MACs |
//!
//! Interpolation by `L` computes `y[L·n + p] = Σ_j L·h[p + L·j]·x[n - j]`:
//! because the prototype is a Nyquist filter, branch `p = 0` is the input
//! delayed by 16 samples, and the other branches are 32 taps each. The
//! decimator's cutoff is lower (3.68 kHz) because what lies between 4 and
//! 4.5 kHz at the model rate aliases into 3.5-4 kHz at 8 kHz: 4.1 kHz must
//! be 50 dB down, so the transition is 3.4-4.1 kHz. Decimation by `M`
//! computes `y[m] = Σ_k h[k]·x[M·m - k]`, one output per `M` inputs.
//!
//! Arithmetic: samples and taps are `i16`, products are summed in `i32`
//! (the taps' absolute sum times 32768 stays below 2^31 — Q14 taps for
//! the interpolators, Q15 for the decimators — so no input can overflow
//! it) and the sum is rounded once and saturated to `i16`. The dot products use
//! `wide`'s `i16x8::dot` (`pmaddwd` on x86-64, `vmull`/`vpadd` on aarch64,
//! plain code elsewhere), so that baseline x86-64 gets `pmaddwd` without
//! relying on the autovectorizer (a plain scalar loop was not measured
//! here).
//!
//! Quality (the tests in this module pin each figure): a 1 kHz tone
//! 8k -> 16k -> 8k and 8k -> 24k -> 8k comes back with an SNR ≥ 85 dB
//! (measured 106 and 96 dB; a 997 Hz tone 88 and 85 dB); the
//! pass band is within 1 dB at 3.4 kHz and within 0.2 dB to 3 kHz; 24k ->
//! 8k suppresses 4.1 kHz by ≥ 50 dB and everything from 4.5 kHz by ≥ 60 dB.
//!
//! ```
//! use callbridge_audio::resample::Resampler;
//!
//! let mut up = Resampler::new(8000, 24_000)?;
//! let mut out = [0i16; 480];
//! assert_eq!(up.output_len(160), 480);
//! let n = up.process(&[1000i16; 160], &mut out)?;
//! assert_eq!(n, 480);
//! assert_eq!(up.delay(), 48); // 2 ms at 24 kHz
//! # Ok::<(), callbridge_audio::Error>(())
//! ```

pub(crate) mod design;
#[cfg(test)]
mod tests;

use wide::{i16x8, i32x4};

use crate::error::Error;
use design::{
    DOWN_SHIFT, DOWN2_VECS, DOWN3_VECS, DownKernel, UP_BRANCH, UP_CENTER_LAG, UP_SHIFT, UpKernel,
};

/// Input samples handled per pass over the working buffer (20 ms at
/// 24 kHz: a whole frame of every supported rate in one pass).
const BLOCK: usize = 480;
/// The longest history a conversion keeps (the 24 kHz decimator's window
/// minus one).
const MAX_HISTORY: usize = 8 * DOWN3_VECS - 1;

/// What one resampler does.
#[derive(Clone, Copy)]
enum Conversion {
    /// Equal rates.
    Copy,
    /// Interpolation by `factor` (2 or 3).
    Up {
        factor: usize,
        kernel: &'static UpKernel,
    },
    /// Decimation by 2.
    Down2(&'static DownKernel<DOWN2_VECS>),
    /// Decimation by 3.
    Down3(&'static DownKernel<DOWN3_VECS>),
}

/// One-direction, one-channel streaming resampler between 8 kHz and
/// 16 or 24 kHz (or a copy for equal rates). See the module docs for the
/// filters.
#[derive(Clone)]
pub struct Resampler {
    conv: Conversion,
    rate_in: u32,
    rate_out: u32,
    /// The last `history()` input samples, then room for one block.
    buf: [i16; MAX_HISTORY + BLOCK],
    /// Input samples consumed, modulo the decimation factor.
    phase: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("rate_in", &self.rate_in)
            .field("rate_out", &self.rate_out)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// A resampler from `rate_in` to `rate_out` Hz: 8000 to or from 16000
    /// or 24000, or any of these to itself (a copy).
    ///
    /// # Errors
    /// [`Error::UnsupportedRate`] for any other pair.
    pub fn new(rate_in: u32, rate_out: u32) -> Result<Resampler, Error> {
        let conv = match (rate_in, rate_out) {
            (a, b) if a == b && matches!(a, 8000 | 16_000 | 24_000) => Conversion::Copy,
            (8000, 16_000) => Conversion::Up {
                factor: 2,
                kernel: design::up_kernel(2),
            },
            (8000, 24_000) => Conversion::Up {
                factor: 3,
                kernel: design::up_kernel(3),
            },
            (16_000, 8000) => Conversion::Down2(design::down2_kernel()),
            (24_000, 8000) => Conversion::Down3(design::down3_kernel()),
            _ => {
                return Err(Error::UnsupportedRate {
                    from: rate_in,
                    to: rate_out,
                });
            }
        };
        Ok(Resampler {
            conv,
            rate_in,
            rate_out,
            buf: [0; MAX_HISTORY + BLOCK],
            phase: 0,
        })
    }

    /// Input rate in Hz.
    #[must_use]
    pub fn rate_in(&self) -> u32 {
        self.rate_in
    }

    /// Output rate in Hz.
    #[must_use]
    pub fn rate_out(&self) -> u32 {
        self.rate_out
    }

    /// The added delay in output samples: 2 ms (32 at 16 kHz, 48 at
    /// 24 kHz, 16 at 8 kHz), 0 for a copy.
    #[must_use]
    pub fn delay(&self) -> usize {
        match self.conv {
            Conversion::Copy => 0,
            Conversion::Up { factor, .. } => UP_CENTER_LAG * factor,
            Conversion::Down2(_) | Conversion::Down3(_) => UP_CENTER_LAG,
        }
    }

    /// How many samples the next [`process`](Self::process) call writes
    /// for `input_len` input samples (a decimator writes one per `M`
    /// inputs, counting the inputs of earlier calls).
    #[must_use]
    pub fn output_len(&self, input_len: usize) -> usize {
        match self.conv {
            Conversion::Copy => input_len,
            Conversion::Up { factor, .. } => input_len * factor,
            Conversion::Down2(_) => down_len(self.phase, input_len, 2),
            Conversion::Down3(_) => down_len(self.phase, input_len, 3),
        }
    }

    /// Clears the filter state (a new talker, a discontinuity).
    pub fn reset(&mut self) {
        self.buf = [0; MAX_HISTORY + BLOCK];
        self.phase = 0;
    }

    /// Converts `input` (any length) into the start of `output`; returns
    /// the samples written, [`output_len`](Self::output_len)`(input.len())`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `output` is shorter than that (nothing
    /// is consumed then).
    ///
    /// ```
    /// use callbridge_audio::resample::Resampler;
    ///
    /// // 24 kHz model audio in odd-sized pieces, 8 kHz out.
    /// let mut down = Resampler::new(24_000, 8000)?;
    /// let mut out = [0i16; 160];
    /// let a = down.process(&[0i16; 250], &mut out)?; // 84 outputs
    /// let b = down.process(&[0i16; 230], &mut out[a..])?; // 76 more
    /// assert_eq!((a, b), (84, 76));
    /// # Ok::<(), callbridge_audio::Error>(())
    /// ```
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, Error> {
        let need = self.output_len(input.len());
        let Some(output) = output.get_mut(..need) else {
            return Err(Error::BufferTooSmall {
                need,
                have: output.len(),
            });
        };
        let mut written = 0;
        for block in input.chunks(BLOCK) {
            let out = &mut output[written..];
            written += match self.conv {
                Conversion::Copy => {
                    out[..block.len()].copy_from_slice(block);
                    block.len()
                }
                Conversion::Up { factor, kernel } => self.up(factor, kernel, block, out),
                Conversion::Down2(k) => self.down(2, &k.window, block, out),
                Conversion::Down3(k) => self.down(3, &k.window, block, out),
            };
        }
        Ok(written)
    }

    /// Appends `block` after `history` samples of history; returns the
    /// working window.
    fn fill(&mut self, history: usize, block: &[i16]) -> &[i16] {
        let end = history + block.len();
        self.buf[history..end].copy_from_slice(block);
        &self.buf[..end]
    }

    /// Keeps the last `history` samples of the `len`-sample window.
    fn keep(&mut self, history: usize, len: usize) {
        self.buf.copy_within(len - history..len, 0);
    }

    fn up(&mut self, factor: usize, k: &UpKernel, block: &[i16], out: &mut [i16]) -> usize {
        const H: usize = UP_BRANCH - 1;
        let x = self.fill(H, block);
        let [b1, b2] = &k.branches;
        if factor == 2 {
            for (n, o) in out.chunks_exact_mut(2).take(block.len()).enumerate() {
                let w = &x[n..n + UP_BRANCH];
                o[0] = w[H - UP_CENTER_LAG];
                o[1] = round::<UP_SHIFT>(dot(w, b1));
            }
        } else {
            for (n, o) in out.chunks_exact_mut(3).take(block.len()).enumerate() {
                let w = &x[n..n + UP_BRANCH];
                o[0] = w[H - UP_CENTER_LAG];
                o[1] = round::<UP_SHIFT>(dot(w, b1));
                o[2] = round::<UP_SHIFT>(dot(w, b2));
            }
        }
        self.keep(H, H + block.len());
        block.len() * factor
    }

    fn down<const V: usize>(
        &mut self,
        factor: usize,
        window: &[i16x8; V],
        block: &[i16],
        out: &mut [i16],
    ) -> usize {
        let h = 8 * V - 1;
        let first = (factor - self.phase) % factor;
        let written = down_len(self.phase, block.len(), factor);
        let x = self.fill(h, block);
        // The output due at block[i] uses x[i ..= i + h]; block[i] is x[i + h].
        for (j, o) in out[..written].iter_mut().enumerate() {
            let i = first + factor * j;
            *o = round::<DOWN_SHIFT>(dot(&x[i..i + 8 * V], window));
        }
        self.keep(h, h + block.len());
        self.phase = (self.phase + block.len()) % factor;
        written
    }
}

/// Outputs of a decimator by `m` at `phase` for `n` more inputs.
fn down_len(phase: usize, n: usize, m: usize) -> usize {
    let first = (m - phase) % m;
    if n > first {
        (n - first - 1) / m + 1
    } else {
        0
    }
}

/// `Σ x[i]·k[i]` over `k.len()` vectors, in 32-bit lanes.
#[inline(always)]
fn dot(x: &[i16], k: &[i16x8]) -> i32 {
    let mut acc = i32x4::ZERO;
    let (chunks, _) = x.as_chunks::<8>();
    for (c, kv) in chunks.iter().zip(k) {
        acc += i16x8::new(*c).dot(*kv);
    }
    acc.reduce_add()
}

/// A sum with `SHIFT` fraction bits to a sample: round half up, saturate.
#[inline(always)]
fn round<const SHIFT: u32>(acc: i32) -> i16 {
    ((acc + (1 << (SHIFT - 1))) >> SHIFT).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}
