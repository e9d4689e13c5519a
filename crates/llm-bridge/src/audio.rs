//! Audio formats on the model legs, and the conversion from what the caller
//! of the trait hands in to what the model takes.
//!
//! Owns: the borrowed input [`AudioFrame`], the owned output [`AudioChunk`]
//! and a simple stateful integer-ratio upsampler (8 kHz -> 16/24 kHz) with
//! linear interpolation. The G.711 µ-law / A-law sample codecs are
//! `callbridge_audio`'s (the same code the RTP leg uses), re-exported here.
//! The formats themselves ([`SampleRate`], [`AudioFormat`]) live in the leaf
//! module [`crate::format`] and are re-exported here. The session layer
//! normally hands the model audio at the model's input rate already (it owns
//! the proper band-limited resamplers); the conversions here exist so that a
//! telephone-rate caller works without it. Every conversion writes into a
//! buffer the caller owns.
//!
//! Why the upsampler is not rubato's (which the RTP leg uses): it takes
//! frames of any length and returns exactly `factor` samples per input
//! sample with no delay, which the trait's callers (and its tests) rely on;
//! rubato's FFT resampler works on whole fixed-size chunks and delays the
//! signal, so frames of other sizes would have to be buffered and the
//! output would lag and change length.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;
pub use crate::format::{AudioFormat, SampleRate};

/// One frame of caller audio handed to a session (borrowed: the session
/// converts it into its own buffer).
#[derive(Debug, Clone, Copy)]
pub enum AudioFrame<'a> {
    /// PCM samples at `rate`.
    Pcm16 {
        /// The sample rate of `samples`.
        rate: SampleRate,
        /// Mono samples.
        samples: &'a [i16],
    },
    /// G.711 µ-law bytes at 8 kHz.
    Pcmu(&'a [u8]),
    /// G.711 A-law bytes at 8 kHz.
    Pcma(&'a [u8]),
}

impl AudioFrame<'_> {
    /// The frame's format.
    pub fn format(&self) -> AudioFormat {
        match self {
            AudioFrame::Pcm16 { rate, .. } => AudioFormat::Pcm16 { rate: *rate },
            AudioFrame::Pcmu(_) => AudioFormat::Pcmu,
            AudioFrame::Pcma(_) => AudioFormat::Pcma,
        }
    }

    /// Number of samples in the frame.
    pub fn len(&self) -> usize {
        match self {
            AudioFrame::Pcm16 { samples, .. } => samples.len(),
            AudioFrame::Pcmu(b) | AudioFrame::Pcma(b) => b.len(),
        }
    }

    /// Whether the frame holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A chunk of model audio, in the format the model sent (PCM is s16le bytes,
/// exactly as decoded from the wire: no copy, no conversion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChunk {
    /// Encoding and rate of `data`.
    pub format: AudioFormat,
    /// The encoded audio.
    pub data: Bytes,
}

impl AudioChunk {
    /// Playing time of the chunk.
    pub fn duration(&self) -> std::time::Duration {
        self.format.duration_of(self.data.len())
    }

    /// Decodes the chunk to PCM samples (at `self.format.rate()`), appending
    /// to `out`.
    pub fn decode_into(&self, out: &mut Vec<i16>) {
        match self.format {
            AudioFormat::Pcm16 { .. } => out.extend(
                self.data
                    .chunks_exact(2)
                    .map(|p| i16::from_le_bytes([p[0], p[1]])),
            ),
            AudioFormat::Pcmu => out.extend(self.data.iter().map(|&b| ulaw_to_linear(b))),
            AudioFormat::Pcma => out.extend(self.data.iter().map(|&b| alaw_to_linear(b))),
        }
    }
}

/// G.711 one-sample conversions: the one implementation,
/// `callbridge_audio::g711` (bit-exact to ITU-T G.191), re-exported.
pub use callbridge_audio::g711::{alaw_to_linear, linear_to_ulaw, ulaw_to_linear};

/// A stateful upsampler by an integer factor, linear interpolation between
/// consecutive input samples (the previous frame's last sample carries over,
/// so frame boundaries are seamless). Adequate for speech into a model.
#[derive(Debug, Clone)]
pub struct Upsampler {
    factor: u32,
    last: i16,
}

impl Upsampler {
    /// An upsampler by `factor` (1 copies).
    pub fn new(factor: u32) -> Self {
        Upsampler {
            factor: factor.max(1),
            last: 0,
        }
    }

    /// Upsamples `input`, appending `input.len() * factor` samples to `out`
    /// as s16le bytes.
    pub fn process_into(&mut self, input: impl Iterator<Item = i16>, out: &mut BytesMut) {
        // Constant factors let the compiler turn the division into a multiply.
        match self.factor {
            1 => input.for_each(|s| out.put_i16_le(s)),
            2 => self.run::<2>(input, out),
            3 => self.run::<3>(input, out),
            f => {
                let f = f as i32;
                for s in input {
                    let (a, b) = (i32::from(self.last), i32::from(s));
                    for k in 1..=f {
                        out.put_i16_le((a + (b - a) * k / f) as i16);
                    }
                    self.last = s;
                }
            }
        }
    }

    fn run<const F: i32>(&mut self, input: impl Iterator<Item = i16>, out: &mut BytesMut) {
        for s in input {
            let (a, b) = (i32::from(self.last), i32::from(s));
            let mut buf = [0u8; 6];
            for k in 1..=F {
                let v = (a + (b - a) * k / F) as i16;
                let i = (k as usize - 1) * 2;
                buf[i..i + 2].copy_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&buf[..F as usize * 2]);
            self.last = s;
        }
    }
}

/// Converts caller frames into one fixed model input format, keeping the
/// resampler state across frames.
#[derive(Debug, Clone)]
pub struct InputConverter {
    target: AudioFormat,
    up: Option<Upsampler>,
}

impl InputConverter {
    /// A converter producing `target`.
    pub fn new(target: AudioFormat) -> Self {
        InputConverter { target, up: None }
    }

    /// The format produced.
    pub fn target(&self) -> AudioFormat {
        self.target
    }

    /// Appends `frame` converted to the target format to `out`.
    ///
    /// Supported: any format to itself; G.711 to PCM at 8 kHz; PCM or G.711
    /// at 8 kHz to PCM at an integer multiple (16 kHz, 24 kHz); PCM 8 kHz to
    /// µ-law / A-law. Anything else (downsampling) is
    /// [`Error::UnsupportedAudio`]: the session layer resamples properly.
    pub fn convert_into(&mut self, frame: AudioFrame<'_>, out: &mut BytesMut) -> Result<(), Error> {
        let from = frame.format();
        if from == self.target {
            match frame {
                AudioFrame::Pcm16 { samples, .. } => {
                    out.reserve(samples.len() * 2);
                    for s in samples {
                        out.put_i16_le(*s);
                    }
                }
                AudioFrame::Pcmu(b) | AudioFrame::Pcma(b) => out.extend_from_slice(b),
            }
            return Ok(());
        }
        match self.target {
            AudioFormat::Pcm16 { rate } => {
                let in_rate = from.rate().hz();
                if in_rate == 0 || rate.hz() % in_rate != 0 {
                    return Err(Error::UnsupportedAudio {
                        from,
                        to: self.target,
                    });
                }
                let factor = rate.hz() / in_rate;
                let up = self.up.get_or_insert_with(|| Upsampler::new(factor));
                if up.factor != factor {
                    *up = Upsampler::new(factor);
                }
                out.reserve(frame.len() * 2 * factor as usize);
                match frame {
                    AudioFrame::Pcm16 { samples, .. } => {
                        up.process_into(samples.iter().copied(), out)
                    }
                    AudioFrame::Pcmu(b) => {
                        up.process_into(b.iter().map(|&x| ulaw_to_linear(x)), out)
                    }
                    AudioFrame::Pcma(b) => {
                        up.process_into(b.iter().map(|&x| alaw_to_linear(x)), out)
                    }
                }
                Ok(())
            }
            AudioFormat::Pcmu => match frame {
                AudioFrame::Pcm16 { rate, samples } if rate == SampleRate::HZ_8000 => {
                    out.extend(samples.iter().map(|&s| linear_to_ulaw(s)));
                    Ok(())
                }
                AudioFrame::Pcma(b) => {
                    out.extend(b.iter().map(|&x| linear_to_ulaw(alaw_to_linear(x))));
                    Ok(())
                }
                _ => Err(Error::UnsupportedAudio {
                    from,
                    to: self.target,
                }),
            },
            AudioFormat::Pcma => Err(Error::UnsupportedAudio {
                from,
                to: self.target,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm8k_to_16k_doubles_length_and_interpolates_across_frames() {
        let mut c = InputConverter::new(AudioFormat::PCM_16K);
        let mut out = BytesMut::new();
        c.convert_into(
            AudioFrame::Pcm16 {
                rate: SampleRate::HZ_8000,
                samples: &[100, 200],
            },
            &mut out,
        )
        .unwrap();
        c.convert_into(
            AudioFrame::Pcm16 {
                rate: SampleRate::HZ_8000,
                samples: &[400],
            },
            &mut out,
        )
        .unwrap();
        let s: Vec<i16> = out
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect();
        assert_eq!(s, vec![50, 100, 150, 200, 300, 400]);
    }

    #[test]
    fn ulaw_to_pcm16k_produces_two_samples_per_byte() {
        let mut c = InputConverter::new(AudioFormat::PCM_16K);
        let mut out = BytesMut::new();
        c.convert_into(AudioFrame::Pcmu(&[0xFF; 160]), &mut out)
            .unwrap();
        assert_eq!(out.len(), 640);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn downsampling_is_refused() {
        let mut c = InputConverter::new(AudioFormat::PCM_16K);
        let mut out = BytesMut::new();
        let err = c
            .convert_into(
                AudioFrame::Pcm16 {
                    rate: SampleRate::HZ_24000,
                    samples: &[0; 480],
                },
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(err, Error::UnsupportedAudio { .. }));
    }

    #[test]
    fn chunk_duration_and_decode() {
        let chunk = AudioChunk {
            format: AudioFormat::PCM_24K,
            data: Bytes::from(vec![0u8; 960]),
        };
        assert_eq!(chunk.duration(), std::time::Duration::from_millis(20));
        let mut v = Vec::new();
        chunk.decode_into(&mut v);
        assert_eq!(v.len(), 480);
    }
}
