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
        // starts on a multiple of the decimation factor), and `output` is
        // exactly that long, so the inner call cannot fail.
        let written = self.inner.process(input, output);
        debug_assert_eq!(written, Ok(self.frame_out), "one frame in, one frame out");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The wrapper only: frame sizes, delay, refused rates. The conversion
    //! itself (quality, stop band, seamless chunks) is tested where it
    //! lives, in `callbridge_audio::resample`.
    use super::*;

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
    fn every_frame_fills_exactly_one_output_frame() {
        // A decimator writes one sample per M inputs counting earlier
        // calls: were a frame not a whole number of M-sample steps, some
        // frame would come out a sample short (the debug assertion in
        // `process`) or leave the last sample of the buffer untouched.
        for (a, b) in [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000)] {
            let mut r = StreamResampler::new(a, b).unwrap();
            let input = vec![1000i16; r.input_frame_len()];
            for _ in 0..5 {
                let mut out = vec![i16::MIN; r.output_frame_len() + 1];
                r.process(&input, &mut out).unwrap();
                assert_ne!(out[r.output_frame_len() - 1], i16::MIN, "{a}->{b}");
                assert_eq!(out[r.output_frame_len()], i16::MIN, "{a}->{b}");
            }
        }
    }
}
