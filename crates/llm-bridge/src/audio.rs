//! Audio formats on the model legs, and the conversion from what the caller
//! of the trait hands in to what the model takes.
//!
//! Owns: the borrowed input [`AudioFrame`], the owned output [`AudioChunk`]
//! and [`InputConverter`], which turns caller frames into the model's input
//! format. The G.711 µ-law / A-law sample codecs are `callbridge_audio`'s
//! (the same code the RTP leg uses), re-exported here. The formats
//! themselves ([`SampleRate`], [`AudioFormat`]) live in the leaf module
//! [`crate::format`] and are re-exported here. The session layer normally
//! hands the model audio at the model's input rate already; the conversions
//! here exist so that a telephone-rate caller works without it. Every
//! conversion writes into a buffer the caller owns.
//!
//! Upsampling (8 kHz to 16 or 24 kHz) is the workspace's one resampler,
//! [`callbridge_audio::resample::Resampler`] (the RTP leg's too): a
//! band-limited polyphase FIR that takes frames of any length, returns
//! exactly 2 or 3 samples per input sample and delays the signal by 2 ms.

use bytes::{Bytes, BytesMut};
use callbridge_audio::g711::{alaw_decode, ulaw_decode};
use callbridge_audio::resample::Resampler;

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

/// Samples converted per step: the input is taken in pieces of this
/// size through stack buffers, so a conversion allocates nothing beyond
/// the output it appends to.
const STEP: usize = 160;

/// Upsamples `input` with `up` (any length; `up` keeps the state),
/// appending the result to `out` as s16le bytes.
fn upsample_into(up: &mut Resampler, input: &[i16], out: &mut BytesMut) {
    let mut wide = [0i16; 3 * STEP];
    for piece in input.chunks(STEP) {
        // `wide` holds 3 * STEP samples: the most any supported factor
        // writes for STEP inputs, so this cannot fail.
        let n = up.process(piece, &mut wide).unwrap_or(0);
        put_pcm_le(&wide[..n], out);
    }
}

/// Appends `samples` as 16-bit little-endian PCM: converted on the stack
/// and copied once per 3 * STEP samples, not one `put` per sample (the
/// per-sample `put_i16_le` was about 4 % of the agent's CPU at 200 calls,
/// perf, 2026-12-06).
fn put_pcm_le(samples: &[i16], out: &mut BytesMut) {
    let mut bytes = [0u8; 6 * STEP];
    for piece in samples.chunks(3 * STEP) {
        for (b, s) in bytes.chunks_exact_mut(2).zip(piece) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(&bytes[..2 * piece.len()]);
    }
}

/// Converts caller frames into one fixed model input format, keeping the
/// resampler state across frames.
#[derive(Debug, Clone)]
pub struct InputConverter {
    target: AudioFormat,
    up: Option<Box<Resampler>>,
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
    /// at 8 kHz to PCM at 16 kHz or 24 kHz (band-limited, 2 ms delay); PCM
    /// 8 kHz to µ-law; A-law to µ-law. Anything else (downsampling, other
    /// rates) is [`Error::UnsupportedAudio`]: the session layer resamples.
    pub fn convert_into(&mut self, frame: AudioFrame<'_>, out: &mut BytesMut) -> Result<(), Error> {
        let from = frame.format();
        if from == self.target {
            match frame {
                AudioFrame::Pcm16 { samples, .. } => {
                    out.reserve(samples.len() * 2);
                    put_pcm_le(samples, out);
                }
                AudioFrame::Pcmu(b) | AudioFrame::Pcma(b) => out.extend_from_slice(b),
            }
            return Ok(());
        }
        match self.target {
            AudioFormat::Pcm16 { rate } => {
                let target = self.target;
                let unsupported = || Error::UnsupportedAudio { from, to: target };
                if from.rate() != SampleRate::HZ_8000 {
                    return Err(unsupported());
                }
                let mut up = if rate == SampleRate::HZ_8000 {
                    // G.711 to PCM at its own rate: decoding only.
                    None
                } else {
                    // Made on first use for the one target rate.
                    if self.up.is_none() {
                        let r = Resampler::new(8000, rate.hz()).map_err(|_| unsupported())?;
                        self.up = Some(Box::new(r));
                    }
                    self.up.as_deref_mut()
                };
                let mut pcm = [0i16; STEP];
                let mut emit = |samples: &[i16], out: &mut BytesMut| match up.as_deref_mut() {
                    Some(up) => upsample_into(up, samples, out),
                    None => put_pcm_le(samples, out),
                };
                let factor = (rate.hz() / 8000) as usize;
                out.reserve(frame.len() * 2 * factor);
                match frame {
                    AudioFrame::Pcm16 { samples, .. } => emit(samples, out),
                    AudioFrame::Pcmu(b) => {
                        for piece in b.chunks(STEP) {
                            let pcm = &mut pcm[..piece.len()];
                            ulaw_decode(piece, pcm);
                            emit(pcm, out);
                        }
                    }
                    AudioFrame::Pcma(b) => {
                        for piece in b.chunks(STEP) {
                            let pcm = &mut pcm[..piece.len()];
                            alaw_decode(piece, pcm);
                            emit(pcm, out);
                        }
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

    fn samples(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect()
    }

    fn pcm8k(samples: &[i16]) -> AudioFrame<'_> {
        AudioFrame::Pcm16 {
            rate: SampleRate::HZ_8000,
            samples,
        }
    }

    /// The conversion is stateful: frames of any sizes give exactly
    /// `factor` samples per input sample, and the same samples as the whole
    /// input in one frame (no seam at frame boundaries).
    #[test]
    fn pcm8k_to_16k_doubles_length_and_interpolates_across_frames() {
        let input: Vec<i16> = (0..1000).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let mut one = InputConverter::new(AudioFormat::PCM_16K);
        let mut whole = BytesMut::new();
        one.convert_into(pcm8k(&input), &mut whole).unwrap();
        assert_eq!(whole.len(), 2 * 2 * input.len());

        let mut split = InputConverter::new(AudioFormat::PCM_16K);
        let mut pieces = BytesMut::new();
        for part in [&input[..1], &input[1..160], &input[160..161], &input[161..]] {
            split.convert_into(pcm8k(part), &mut pieces).unwrap();
        }
        assert_eq!(samples(&pieces), samples(&whole));
    }

    /// Upsampling is band-limited interpolation: a 1 kHz tone at 8 kHz
    /// becomes the same tone at 24 kHz, 2 ms (48 samples) later.
    #[test]
    fn pcm8k_to_24k_is_the_same_tone_two_ms_later() {
        let tone = |rate: f64, n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| (8000.0 * (std::f64::consts::TAU * 1000.0 * i as f64 / rate).sin()) as i16)
                .collect()
        };
        let mut c = InputConverter::new(AudioFormat::PCM_24K);
        let mut out = BytesMut::new();
        for f in tone(8000.0, 1600).chunks(160) {
            c.convert_into(pcm8k(f), &mut out).unwrap();
        }
        let got = samples(&out);
        let want = tone(24_000.0, got.len());
        let worst = got[2400..]
            .iter()
            .zip(&want[2400 - 48..])
            .map(|(&g, &w)| (i32::from(g) - i32::from(w)).abs())
            .max()
            .unwrap();
        assert!(worst <= 3, "off by {worst}");
    }

    #[test]
    fn rates_the_resampler_does_not_convert_are_refused() {
        let mut c = InputConverter::new(AudioFormat::Pcm16 {
            rate: SampleRate::new(48_000),
        });
        let err = c
            .convert_into(pcm8k(&[0; 160]), &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(err, Error::UnsupportedAudio { .. }));
    }

    #[test]
    fn alaw_to_pcm8k_decodes() {
        let mut c = InputConverter::new(AudioFormat::PCM_8K);
        let mut out = BytesMut::new();
        c.convert_into(AudioFrame::Pcma(&[0xD5; 160]), &mut out)
            .unwrap();
        assert_eq!(samples(&out), vec![alaw_to_linear(0xD5); 160]);
    }

    /// Every code of both laws, in a frame longer than one step: the
    /// slice decoders give the one-sample tables' values, in order.
    #[test]
    fn g711_frames_decode_code_by_code() {
        let codes: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for (frame, law) in [
            (AudioFrame::Pcmu(&codes), ulaw_to_linear as fn(u8) -> i16),
            (AudioFrame::Pcma(&codes), alaw_to_linear),
        ] {
            let mut c = InputConverter::new(AudioFormat::PCM_8K);
            let mut out = BytesMut::new();
            c.convert_into(frame, &mut out).unwrap();
            let want: Vec<i16> = codes.iter().map(|&b| law(b)).collect();
            assert_eq!(samples(&out), want);
        }
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
