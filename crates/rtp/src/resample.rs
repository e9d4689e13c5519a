//! Streaming sample-rate conversion between the telephone rate (8 kHz) and
//! the model rates (16 kHz, 24 kHz), in 20 ms frames: the call's view of
//! [`callbridge_audio::resample::Resampler`], the workspace's one
//! resampler (fixed-ratio polyphase FIR filters in fixed point; its module
//! docs carry the filter design and the quality figures).
//!
//! A [`StreamResampler`] converts exactly one 20 ms frame per call into a
//! caller-owned buffer. It keeps the filter state between calls, so frame
//! boundaries are seamless, and it allocates nothing.
//!
//! | | |
//! |---|---|
//! | added delay | 2.0 ms every direction ([`StreamResampler::delay_ms`]) |
//! | pass band | within 0.2 dB to 3 kHz, within 0.5 dB at 3.4 kHz |
//! | 1 kHz tone 8k->16k->8k, 8k->24k->8k | SNR 106 dB, 96 dB |
//! | 24k->8k stop band | ≥ 55 dB at 4.1-4.5 kHz, ≥ 63.5 dB from 4.5 kHz |
//! | cost per 20 ms frame | see `docs/PERFORMANCE.md`, "Issue 17: frame path" |
//!
//! Supported: 8000 Hz to and from 16000 or 24000 Hz, and each of the three
//! to itself (a copy). 16 kHz <-> 24 kHz is not a conversion a call makes.

use callbridge_audio::resample::Resampler;

use crate::error::Error;

/// Frame duration the resampler works in.
pub const FRAME_MS: u32 = 20;

/// One-direction, one-channel streaming resampler for 20 ms frames.
#[derive(Clone)]
pub struct StreamResampler {
    inner: Resampler,
    frame_in: usize,
    frame_out: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("rate_in", &self.inner.rate_in())
            .field("rate_out", &self.inner.rate_out())
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A resampler from `rate_in` to `rate_out` Hz: 8000 to or from 16000
    /// or 24000; equal rates (8000, 16000, 24000) give a pass-through copy.
    ///
    /// # Errors
    /// [`Error::UnsupportedRate`] for other rates.
    pub fn new(rate_in: u32, rate_out: u32) -> Result<StreamResampler, Error> {
        let inner = Resampler::new(rate_in, rate_out).map_err(|_| Error::UnsupportedRate {
            from: rate_in,
            to: rate_out,
        })?;
        Ok(StreamResampler {
            inner,
            frame_in: (rate_in * FRAME_MS / 1000) as usize,
            frame_out: (rate_out * FRAME_MS / 1000) as usize,
        })
    }

    /// Samples per input frame (160 at 8 kHz, 320 at 16 kHz, 480 at 24 kHz).
    #[must_use]
    pub fn input_frame_len(&self) -> usize {
        self.frame_in
    }

    /// Samples per output frame.
    #[must_use]
    pub fn output_frame_len(&self) -> usize {
        self.frame_out
    }

    /// Input rate in Hz.
    #[must_use]
    pub fn rate_in(&self) -> u32 {
        self.inner.rate_in()
    }

    /// Output rate in Hz.
    #[must_use]
    pub fn rate_out(&self) -> u32 {
        self.inner.rate_out()
    }

    /// Added delay in output samples.
    #[must_use]
    pub fn delay_samples(&self) -> usize {
        self.inner.delay()
    }

    /// Added delay in milliseconds (2.0 for every supported conversion).
    #[must_use]
    pub fn delay_ms(&self) -> f64 {
        self.delay_samples() as f64 * 1000.0 / f64::from(self.rate_out())
    }

    /// Clears the filter state (for a new talker or a discontinuity).
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Converts one frame: `input` must hold exactly
    /// [`input_frame_len`](Self::input_frame_len) samples and `output` at
    /// least [`output_frame_len`](Self::output_frame_len); the first
    /// `output_frame_len` samples of `output` are written.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] or [`Error::BufferTooSmall`] for wrong
    /// buffer sizes.
    ///
    /// ```
    /// let mut up = callbridge_rtp::resample::StreamResampler::new(8000, 16000).unwrap();
    /// let mut out = [0i16; 320];
    /// up.process(&[0i16; 160], &mut out).unwrap();
    /// ```
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<(), Error> {
        if input.len() != self.frame_in {
            return Err(Error::InvalidArgument {
                what: "input is not one 20 ms frame",
            });
        }
        let Some(output) = output.get_mut(..self.frame_out) else {
            return Err(Error::BufferTooSmall {
                need: self.frame_out,
                have: output.len(),
            });
        };
        // A whole frame in gives exactly a whole frame out (every frame
        // starts on a multiple of the decimation factor), so this cannot
        // fail; the error is mapped rather than unwrapped all the same.
        match self.inner.process(input, output) {
            Ok(n) if n == self.frame_out => Ok(()),
            _ => Err(Error::Resampler {
                what: "frame did not convert to one frame",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_audio::level::rms;
    use std::f64::consts::TAU;

    fn tone(rate: u32, hz: f64, amp: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (amp * (TAU * hz * n as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    fn run(r: &mut StreamResampler, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        let mut frame = vec![0i16; r.output_frame_len()];
        for chunk in input.chunks_exact(r.input_frame_len()) {
            r.process(chunk, &mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        out
    }

    /// (fitted amplitude, signal-to-residual ratio in dB) of a sine of
    /// `hz` fitted to `x` (delay and pass-band gain aligned out).
    fn fit_tone(x: &[i16], rate: u32, hz: f64) -> (f64, f64) {
        let f = callbridge_test_support::tone::fit_tone(x, rate, hz);
        (f.amplitude, f.snr_db)
    }

    #[test]
    fn delay_is_two_ms_for_every_direction() {
        for (a, b) in [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000)] {
            let r = StreamResampler::new(a, b).unwrap();
            assert_eq!(r.delay_ms(), 2.0, "{a}->{b}");
            assert_eq!(r.input_frame_len(), (a / 50) as usize);
            assert_eq!(r.output_frame_len(), (b / 50) as usize);
        }
    }

    #[test]
    fn rejects_unsupported_rate() {
        assert!(matches!(
            StreamResampler::new(8000, 44_100),
            Err(Error::UnsupportedRate { .. })
        ));
    }

    #[test]
    fn rejects_wrong_frame_sizes() {
        let mut r = StreamResampler::new(8000, 16000).unwrap();
        let mut out = [0i16; 320];
        assert!(r.process(&[0; 159], &mut out).is_err());
        assert!(r.process(&[0; 160], &mut out[..319]).is_err());
    }

    #[test]
    fn tone_1khz_8k_16k_8k_keeps_snr_above_60_db() {
        let off_grid = tone(8000, 997.0, 10_000.0, 8000);
        let mut up = StreamResampler::new(8000, 16000).unwrap();
        let mut down = StreamResampler::new(16000, 8000).unwrap();
        let back_997 = run(&mut down, &run(&mut up, &off_grid));
        let (_, snr) = fit_tone(&back_997[800..], 8000, 997.0);
        assert!(snr >= 60.0, "997 Hz round-trip SNR {snr:.1} dB");

        let input = tone(8000, 1000.0, 10_000.0, 8000);
        let mut up = StreamResampler::new(8000, 16000).unwrap();
        let mut down = StreamResampler::new(16000, 8000).unwrap();
        let mid = run(&mut up, &input);
        let back = run(&mut down, &mid);
        // Skip the first 100 ms: filter start-up.
        let (amp, snr) = fit_tone(&back[800..], 8000, 1000.0);
        assert!(snr >= 60.0, "round-trip SNR {snr:.1} dB");
        assert!((amp / 10_000.0 - 1.0).abs() < 0.05, "gain {amp}");
        // The tone is delayed by the sum of both delays (2 ms + 2 ms = 32
        // samples at 8 kHz): aligned that way, the output matches the input.
        // (997 Hz, so that no other shift lines up as well.)
        let d = 32;
        let err: f64 = back_997[800..]
            .iter()
            .zip(&off_grid[800 - d..])
            .map(|(&o, &i)| (f64::from(o) - f64::from(i)).powi(2))
            .sum::<f64>()
            / (back_997.len() - 800) as f64;
        let snr_aligned = 20.0 * (10_000.0 / 2f64.sqrt() / err.sqrt()).log10();
        assert!(snr_aligned >= 40.0, "delay-aligned SNR {snr_aligned:.1} dB");
    }

    #[test]
    fn frames_join_seamlessly() {
        // A 440 Hz tone through 8k->24k in 20 ms frames is one clean sine:
        // no clicks at frame boundaries.
        let input = tone(8000, 440.0, 8000.0, 4000);
        let mut up = StreamResampler::new(8000, 24000).unwrap();
        let out = run(&mut up, &input);
        let (_, snr) = fit_tone(&out[2400..], 24000, 440.0);
        assert!(snr >= 60.0, "8k->24k SNR {snr:.1} dB");
    }

    #[test]
    fn downsampling_24k_to_8k_suppresses_6khz_by_70_db() {
        // 5987.3 Hz does not sit on an FFT bin, so leakage shows.
        for (hz, min_db) in [(5987.3, 70.0), (4530.7, 60.0)] {
            let input = tone(24000, hz, 10_000.0, 24000);
            let mut down = StreamResampler::new(24000, 8000).unwrap();
            let out = run(&mut down, &input);
            let in_rms = 10_000.0 / 2f64.sqrt();
            let att = 20.0 * (in_rms / rms(&out[800..]).max(1e-9)).log10();
            assert!(att >= min_db, "{hz} Hz attenuated by only {att:.1} dB");
        }
    }

    #[test]
    fn pass_band_is_flat_to_3khz() {
        for (a, b) in [(8000, 16000), (8000, 24000)] {
            for hz in [300.0, 1000.0, 2000.0, 3000.0] {
                let input = tone(8000, hz, 10_000.0, 8000);
                let mut up = StreamResampler::new(a, b).unwrap();
                let out = run(&mut up, &input);
                let (amp, _) = fit_tone(&out[(b / 10) as usize..], b, hz);
                let db = 20.0 * (amp / 10_000.0).log10();
                assert!(db.abs() < 0.2, "{a}->{b} at {hz} Hz: {db:.2} dB");
            }
        }
    }

    #[test]
    fn downsampling_16k_to_8k_suppresses_5khz_by_40_db() {
        let input = tone(16000, 5000.0, 10_000.0, 16000);
        let mut down = StreamResampler::new(16000, 8000).unwrap();
        let out = run(&mut down, &input);
        let att = 20.0 * (10_000.0 / 2f64.sqrt() / rms(&out[800..]).max(1e-9)).log10();
        assert!(att >= 40.0, "5 kHz attenuated by only {att:.1} dB");
    }
}
