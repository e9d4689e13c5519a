//! What one 20 ms frame of 8 kHz audio measures: its level, its
//! zero-crossing rate and its strongest tone, from a bank of Goertzel
//! filters.
//!
//! # The Goertzel bank
//!
//! A beep is one tone anywhere from 350 to 2,000 Hz, so the detector
//! cannot listen on a few known frequencies as a DTMF receiver does. The
//! bank runs one Goertzel filter every [`BANK_STEP_HZ`] (25 Hz) from
//! [`BANK_MIN_HZ`] to [`BANK_MAX_HZ`] over the 160 samples of a frame: 89
//! second-order recurrences `s = x + 2cos(w)·s1 - s2`, stepped together
//! sample by sample so the compiler vectorizes them across the bins. At 160
//! samples a filter's main lobe is 50 Hz wide each side, so a tone halfway
//! between two bins still keeps 81 % of its power in the nearer one.
//!
//! A frame's *purity* is the share of its energy in its strongest bin:
//! `2·P / (N·E)` with `P = s1² + s2² - 2cos(w)·s1·s2` the bin's power, `N`
//! the frame length and `E` the energy; 1 for a pure tone on a bin, 0.81
//! half a bin off, well under 0.5 for voiced speech (its energy spreads
//! over the harmonics of the voice) and near 0 for noise. The frequency is
//! refined between bins by a parabola through the three magnitudes around
//! the peak (a few Hz of error; the SIT bands are 100 Hz wide).
//!
//! Why by hand: the bank is 30 lines on the frame the call already has;
//! an FFT crate would need its own buffers, windowing and the same peak
//! search, for no better answer at this resolution.

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The sample rate the detector works at (Hz).
pub const SAMPLE_RATE: f32 = 8000.0;
/// The lowest frequency of the Goertzel bank (Hz).
pub const BANK_MIN_HZ: f32 = 300.0;
/// The highest frequency of the Goertzel bank (Hz).
pub const BANK_MAX_HZ: f32 = 2500.0;
/// The spacing of the Goertzel bank (Hz).
pub const BANK_STEP_HZ: f32 = 25.0;
/// Filters in the bank.
const BINS: usize = 89;
/// The level reported for digital silence (dBFS).
pub(crate) const SILENCE_DBFS: f32 = -120.0;

/// What one frame measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FrameStats {
    /// The level, dBFS against a full-scale sine.
    pub level_dbfs: f32,
    /// Sign changes per sample pair (0 to 1).
    pub zcr: f32,
    /// The strongest bin.
    pub bin: usize,
    /// Its frequency, refined between bins (Hz).
    pub tone_hz: f32,
    /// The share of the frame's energy in that bin (0 to 1).
    pub purity: f32,
}

/// The bank's coefficients, computed once per detector.
#[derive(Debug, Clone)]
pub(crate) struct Bank {
    coeff: [f32; BINS],
}

impl Bank {
    pub(crate) fn new() -> Bank {
        let mut coeff = [0.0f32; BINS];
        for (k, c) in coeff.iter_mut().enumerate() {
            let f = BANK_MIN_HZ + BANK_STEP_HZ * k as f32;
            *c = 2.0 * (std::f32::consts::TAU * f / SAMPLE_RATE).cos();
        }
        Bank { coeff }
    }

    /// The frequency of bin `k` (Hz).
    pub(crate) fn bin_hz(k: usize) -> f32 {
        BANK_MIN_HZ + BANK_STEP_HZ * k as f32
    }

    /// Measures one frame. Allocates nothing.
    pub(crate) fn analyze(&self, frame: &[i16; FRAME_SAMPLES]) -> FrameStats {
        let mut s1 = [0.0f32; BINS];
        let mut s2 = [0.0f32; BINS];
        let mut energy = 0.0f32;
        let mut crossings = 0u32;
        let mut prev_neg = frame[0] < 0;
        for &sample in frame {
            let x = f32::from(sample) / 32768.0;
            energy += x * x;
            let neg = sample < 0;
            crossings += u32::from(neg != prev_neg);
            prev_neg = neg;
            for k in 0..BINS {
                let s0 = x + self.coeff[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        let zcr = crossings as f32 / (FRAME_SAMPLES - 1) as f32;
        if energy <= f32::EPSILON * f32::EPSILON {
            return FrameStats {
                level_dbfs: SILENCE_DBFS,
                zcr,
                bin: 0,
                tone_hz: BANK_MIN_HZ,
                purity: 0.0,
            };
        }
        let mut power = [0.0f32; BINS];
        let mut best = 0;
        for k in 0..BINS {
            power[k] = (s1[k] * s1[k] + s2[k] * s2[k] - self.coeff[k] * s1[k] * s2[k]).max(0.0);
            if power[k] > power[best] {
                best = k;
            }
        }
        let n = FRAME_SAMPLES as f32;
        let purity = (2.0 * power[best] / (n * energy)).clamp(0.0, 1.0);
        let level_dbfs = (10.0 * (2.0 * energy / n).log10()).max(SILENCE_DBFS);
        FrameStats {
            level_dbfs,
            zcr,
            bin: best,
            tone_hz: refine(&power, best),
            purity,
        }
    }
}

/// The peak's frequency between bins: the vertex of the parabola through
/// the magnitudes of bins `k - 1`, `k`, `k + 1` (the bin's own at the
/// bank's edges).
fn refine(power: &[f32; BINS], k: usize) -> f32 {
    let f = Bank::bin_hz(k);
    if k == 0 || k + 1 == BINS {
        return f;
    }
    let (a, b, c) = (power[k - 1].sqrt(), power[k].sqrt(), power[k + 1].sqrt());
    let denom = a - 2.0 * b + c;
    if denom.abs() <= f32::EPSILON {
        return f;
    }
    let p = (0.5 * (a - c) / denom).clamp(-0.5, 0.5);
    f + p * BANK_STEP_HZ
}

/// Test signals at 8 kHz, shared by the unit tests.
#[cfg(test)]
pub(crate) mod signal {
    use super::FRAME_SAMPLES;

    /// Frame `i` of a sine of `hz` at `dbfs` (against a full-scale sine).
    pub(crate) fn tone(hz: f32, dbfs: f32, i: usize) -> [i16; FRAME_SAMPLES] {
        let amp = 32767.0 * 10f32.powf(dbfs / 20.0);
        std::array::from_fn(|n| {
            let t = (i * FRAME_SAMPLES + n) as f32 / 8000.0;
            (amp * (std::f32::consts::TAU * hz * t).sin()) as i16
        })
    }

    /// Frame `i` of white noise at roughly `dbfs` (uniform, deterministic).
    pub(crate) fn noise(dbfs: f32, i: usize, seed: u32) -> [i16; FRAME_SAMPLES] {
        // Uniform in [-a, a] has RMS a/sqrt(3); a sine of amplitude A has A/sqrt(2).
        let amp = 32767.0 * 10f32.powf(dbfs / 20.0) * (3.0f32 / 2.0).sqrt();
        let mut x = seed
            .wrapping_add((i as u32).wrapping_mul(2_654_435_761))
            .max(1);
        std::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let u = (x as f32 / u32::MAX as f32) * 2.0 - 1.0;
            (amp * u).clamp(-32768.0, 32767.0) as i16
        })
    }

    /// Frame `i` of "speech": a glottal-like pulse train at `f0` (pitch
    /// gliding by 15 %) through two formant-like resonances, amplitude
    /// modulated at a syllable rate of 4 Hz, at roughly `dbfs` peak.
    pub(crate) fn speech(f0: f32, dbfs: f32, i: usize) -> [i16; FRAME_SAMPLES] {
        let amp = 32767.0 * 10f32.powf(dbfs / 20.0);
        std::array::from_fn(|n| {
            let t = (i * FRAME_SAMPLES + n) as f32 / 8000.0;
            let pitch = f0 * (1.0 + 0.15 * (std::f32::consts::TAU * 1.3 * t).sin());
            let mut v = 0.0;
            for h in 1..=12 {
                let hf = pitch * h as f32;
                let formant = (-((hf - 700.0) / 300.0).powi(2)).exp()
                    + 0.6 * (-((hf - 1800.0) / 400.0).powi(2)).exp()
                    + 0.2;
                v += formant * (std::f32::consts::TAU * hf * t).sin() / h as f32;
            }
            let syllable = 0.55 + 0.45 * (std::f32::consts::TAU * 4.0 * t).sin();
            (amp * 0.5 * v * syllable).clamp(-32768.0, 32767.0) as i16
        })
    }
}

#[cfg(test)]
mod tests {
    use super::signal::*;
    use super::*;

    #[test]
    fn a_tone_on_a_bin_is_pure_and_at_its_level() {
        let s = Bank::new().analyze(&tone(1000.0, -20.0, 3));
        assert!(s.purity > 0.95, "{s:?}");
        assert!((s.tone_hz - 1000.0).abs() < 5.0, "{s:?}");
        assert!((s.level_dbfs + 20.0).abs() < 0.3, "{s:?}");
    }

    #[test]
    fn a_tone_between_bins_is_found_within_a_few_hertz() {
        for hz in [440.0, 913.8, 1370.6, 1776.7, 1412.5, 1987.0] {
            let s = Bank::new().analyze(&tone(hz, -25.0, 7));
            assert!(s.purity > 0.75, "{hz}: {s:?}");
            assert!((s.tone_hz - hz).abs() < 8.0, "{hz}: {s:?}");
        }
    }

    #[test]
    fn noise_and_speech_are_not_pure() {
        let bank = Bank::new();
        for i in 0..50 {
            let n = bank.analyze(&noise(-20.0, i, 7));
            assert!(n.purity < 0.2, "noise frame {i}: {n:?}");
            assert!(n.zcr > 0.35, "noise frame {i}: {n:?}");
            let s = bank.analyze(&speech(120.0, -15.0, i));
            assert!(s.purity < 0.6, "speech frame {i}: {s:?}");
        }
    }

    #[test]
    fn digital_silence_is_the_floor_level() {
        let s = Bank::new().analyze(&[0; FRAME_SAMPLES]);
        assert_eq!(s.level_dbfs, SILENCE_DBFS);
        assert_eq!(s.purity, 0.0);
    }

    #[test]
    fn full_scale_extremes_do_not_overflow() {
        let s = Bank::new().analyze(&[i16::MIN; FRAME_SAMPLES]);
        assert!(s.level_dbfs.is_finite() && s.purity.is_finite());
        let alt: [i16; FRAME_SAMPLES] =
            std::array::from_fn(|n| if n % 2 == 0 { i16::MAX } else { i16::MIN });
        let s = Bank::new().analyze(&alt);
        assert!(s.zcr > 0.99, "{s:?}");
    }
}
