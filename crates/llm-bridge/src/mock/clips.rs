//! Speech clips the mocks answer with: committed WAV files (espeak-ng,
//! resampled with sox to 24 kHz mono 16-bit), embedded with `include_bytes!`.
//!
//! Owns: [`Clip`], [`greeting`], [`reply`] and their transcripts.

use std::sync::OnceLock;

use bytes::Bytes;

/// A mono 16-bit clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Sample rate in Hz.
    pub rate: u32,
    /// s16le bytes.
    pub pcm: Bytes,
    /// What is said.
    pub transcript: &'static str,
}

impl Clip {
    /// Playing time.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_micros(
            self.pcm.len() as u64 / 2 * 1_000_000 / u64::from(self.rate.max(1)),
        )
    }

    /// Decodes a WAV file (16-bit mono); an empty clip if the file is not one.
    pub fn from_wav(wav: &[u8], transcript: &'static str) -> Clip {
        let parsed = hound::WavReader::new(std::io::Cursor::new(wav))
            .ok()
            .and_then(|r| {
                let spec = r.spec();
                (spec.channels == 1 && spec.bits_per_sample == 16).then_some(())?;
                let samples: Result<Vec<i16>, _> = r.into_samples::<i16>().collect();
                let pcm: Vec<u8> = samples.ok()?.iter().flat_map(|s| s.to_le_bytes()).collect();
                Some((spec.sample_rate, pcm))
            });
        match parsed {
            Some((rate, pcm)) => Clip {
                rate,
                pcm: Bytes::from(pcm),
                transcript,
            },
            None => Clip {
                rate: 24000,
                pcm: Bytes::new(),
                transcript,
            },
        }
    }
}

/// Transcript of the greeting clip.
pub const GREETING_TEXT: &str = "Hello, thanks for calling. How can I help?";
/// Transcript of the reply clip.
pub const REPLY_TEXT: &str = "Sure, I can help with that.";

/// "Hello, thanks for calling. How can I help?" (24 kHz, about 2.9 s).
pub fn greeting() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        Clip::from_wav(
            include_bytes!("../../assets/greeting-24k.wav"),
            GREETING_TEXT,
        )
    })
}

/// "Sure, I can help with that." (24 kHz, about 1.75 s).
pub fn reply() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| Clip::from_wav(include_bytes!("../../assets/reply-24k.wav"), REPLY_TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_clips_decode_at_24k_with_speech() {
        for c in [greeting(), reply()] {
            assert_eq!(c.rate, 24000);
            assert!(c.duration() > std::time::Duration::from_secs(1));
            let peak = c
                .pcm
                .chunks_exact(2)
                .map(|p| i16::from_le_bytes([p[0], p[1]]).unsigned_abs())
                .max()
                .unwrap_or(0);
            assert!(peak > 3000, "clip is silent");
        }
    }
}
