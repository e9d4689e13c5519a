//! The fallback announcement: the short clip an answered call plays when
//! its model cannot serve it (lifecycle `PlayFallback`), before the BYE.
//!
//! The built-in clip, [`BUILTIN_WAV`], says "Sorry, we cannot take your
//! call right now. Please call again later." (4.8 s). It was made with
//!
//! ```text
//! espeak-ng -v en-us -s 160 -w apology.wav "Sorry, we cannot take your call right now. Please call again later."
//! sox apology.wav -r 8000 -c 1 -b 16 -e signed-integer fallback-apology-8k.wav norm -3
//! ```
//!
//! An operator replaces it with `ManagerConfig::fallback_clip` (a WAV file:
//! mono, 16-bit PCM, 8000 Hz, at most [`MAX_CLIP`], checked at
//! [`crate::Manager::start`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The built-in apology (mono 16-bit PCM WAV at 8 kHz; see the module docs).
pub const BUILTIN_WAV: &[u8] = include_bytes!("../../assets/fallback-apology-8k.wav");

/// The longest clip accepted (the playback queue's bound is 30 s).
pub const MAX_CLIP: Duration = Duration::from_secs(30);

/// Why a fallback clip was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The clip's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a readable WAV file.
    #[error("not a readable WAV file: {0}")]
    NotWav(String),
    /// A WAV file of another format.
    #[error(
        "expected mono 16-bit PCM at 8000 Hz, got {channels} channel(s), {bits}-bit, {rate} Hz"
    )]
    Format {
        /// Channels in the file.
        channels: u16,
        /// Bits per sample.
        bits: u16,
        /// Sample rate in Hz.
        rate: u32,
    },
    /// No audio in it.
    #[error("the clip is empty")]
    Empty,
    /// Longer than allowed.
    #[error("the clip lasts {got_ms} ms, longer than the {max_ms} ms allowed")]
    TooLong {
        /// The clip's length in ms.
        got_ms: u64,
        /// The limit in ms.
        max_ms: u64,
    },
}

/// A fallback announcement: 8 kHz samples, cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct FallbackClip {
    samples: Arc<[i16]>,
}

impl std::fmt::Debug for FallbackClip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackClip")
            .field("duration", &self.duration())
            .finish()
    }
}

impl FallbackClip {
    /// Parses a WAV file's bytes: mono, 16-bit integer PCM, 8000 Hz, not
    /// empty, at most [`MAX_CLIP`].
    ///
    /// # Errors
    /// [`ClipError`] says what is wrong with it.
    pub fn from_wav(bytes: &[u8]) -> Result<FallbackClip, ClipError> {
        let reader = hound::WavReader::new(bytes).map_err(|e| ClipError::NotWav(e.to_string()))?;
        let spec = reader.spec();
        if spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_rate != 8000
            || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(ClipError::Format {
                channels: spec.channels,
                bits: spec.bits_per_sample,
                rate: spec.sample_rate,
            });
        }
        let max_samples = MAX_CLIP.as_millis() as u64 * 8;
        let declared = u64::from(reader.duration());
        if declared > max_samples {
            return Err(ClipError::TooLong {
                got_ms: declared / 8,
                max_ms: max_samples / 8,
            });
        }
        let samples = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(|e| ClipError::NotWav(e.to_string()))?;
        if samples.is_empty() {
            return Err(ClipError::Empty);
        }
        Ok(FallbackClip {
            samples: samples.into(),
        })
    }

    /// Reads and checks the WAV file at `path` (see [`FallbackClip::from_wav`]).
    ///
    /// # Errors
    /// The file cannot be read, or [`FallbackClip::from_wav`] refuses it.
    pub fn load(path: &Path) -> Result<FallbackClip, ClipError> {
        let bytes = std::fs::read(path).map_err(|source| ClipError::Io {
            path: path.to_owned(),
            source,
        })?;
        FallbackClip::from_wav(&bytes)
    }

    /// The built-in apology, [`BUILTIN_WAV`].
    ///
    /// # Errors
    /// Never for the committed file (a unit test parses it); typed anyway.
    pub fn builtin() -> Result<FallbackClip, ClipError> {
        FallbackClip::from_wav(BUILTIN_WAV)
    }

    /// The clip's samples at 8 kHz.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// How long the clip plays.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.samples.len() as u64 / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn the_builtin_apology_is_a_few_seconds_of_audible_8k_audio() {
        let c = FallbackClip::builtin().unwrap();
        assert!(c.duration() > Duration::from_secs(3) && c.duration() < Duration::from_secs(6));
        let peak = c.samples().iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 10_000, "normalized speech, peak {peak}");
    }

    #[test]
    fn clips_of_other_formats_empty_or_too_long_are_refused() {
        assert!(matches!(
            FallbackClip::from_wav(&wav(2, 8000, &[1, 2])),
            Err(ClipError::Format { channels: 2, .. })
        ));
        assert!(matches!(
            FallbackClip::from_wav(&wav(1, 16000, &[1, 2])),
            Err(ClipError::Format { rate: 16000, .. })
        ));
        assert!(matches!(
            FallbackClip::from_wav(&wav(1, 8000, &[])),
            Err(ClipError::Empty)
        ));
        assert!(matches!(
            FallbackClip::from_wav(b"RIFF nonsense"),
            Err(ClipError::NotWav(_))
        ));
        let long = vec![1i16; 8000 * 31];
        assert!(matches!(
            FallbackClip::from_wav(&wav(1, 8000, &long)),
            Err(ClipError::TooLong { got_ms: 31_000, .. })
        ));
        let c = FallbackClip::from_wav(&wav(1, 8000, &[5; 8000])).unwrap();
        assert_eq!(c.duration(), Duration::from_secs(1));
        assert!(matches!(
            FallbackClip::load(Path::new("/nonexistent/clip.wav")),
            Err(ClipError::Io { .. })
        ));
    }
}
