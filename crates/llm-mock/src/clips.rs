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

impl Clip {
    /// The clip as samples.
    pub fn samples(&self) -> Vec<i16> {
        self.pcm
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect()
    }

    /// The clip at a lower rate that divides its own (24 kHz -> 8 kHz, 12 kHz...).
    pub fn samples_at(&self, rate: u32) -> Vec<i16> {
        downsample(&self.samples(), self.rate, rate)
    }

    /// The clip as G.711 µ-law at 8 kHz (what an OpenAI `audio/pcmu` session
    /// sends).
    pub fn ulaw_8k(&self) -> Bytes {
        self.samples_at(8000)
            .into_iter()
            .map(callbridge_llm_bridge::audio::linear_to_ulaw)
            .collect()
    }
}

/// Integer-ratio downsampling with a 63-tap Hamming-windowed sinc low-pass
/// at 85 % of the new Nyquist frequency (3.4 kHz for 8 kHz). Returns the
/// input unchanged when `to` does not divide `from`.
pub fn downsample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if to == 0 || to >= from || !from.is_multiple_of(to) {
        return input.to_vec();
    }
    const TAPS: usize = 63;
    let step = (from / to) as usize;
    let fc = 0.85 * f64::from(to) / 2.0 / f64::from(from);
    let mid = (TAPS / 2) as f64;
    let h: Vec<f64> = (0..TAPS)
        .map(|n| {
            let x = n as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 0.54 - 0.46 * (2.0 * std::f64::consts::PI * n as f64 / (TAPS - 1) as f64).cos();
            sinc * w
        })
        .collect();
    (0..input.len() / step)
        .map(|i| {
            let centre = (i * step) as isize;
            let mut acc = 0.0;
            for (k, hk) in h.iter().enumerate() {
                let idx = centre + k as isize - (TAPS / 2) as isize;
                if let Some(&x) = usize::try_from(idx).ok().and_then(|i| input.get(i)) {
                    acc += hk * f64::from(x);
                }
            }
            acc.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Transcript of the greeting clip.
pub const GREETING_TEXT: &str = "Hello, thanks for calling. How can I help?";
/// Transcript of the reply clip.
pub const REPLY_TEXT: &str = "Sure, I can help with that.";

/// "Hello, thanks for calling. How can I help?" (24 kHz, about 2.9 s).
pub fn greeting() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| Clip::from_wav(include_bytes!("../assets/greeting-24k.wav"), GREETING_TEXT))
}

/// "Sure, I can help with that." (24 kHz, about 1.75 s).
pub fn reply() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| Clip::from_wav(include_bytes!("../assets/reply-24k.wav"), REPLY_TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_audio::level::rms;

    fn sine(rate: u32, hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin() * 10000.0)
                    as i16
            })
            .collect()
    }

    #[test]
    fn downsampling_keeps_speech_band_and_removes_what_would_alias() {
        let pass = downsample(&sine(24000, 440.0, 24000), 24000, 8000);
        assert_eq!(pass.len(), 8000);
        assert!(
            (rms(&pass[100..7900]) / 7071.0 - 1.0).abs() < 0.05,
            "{}",
            rms(&pass)
        );
        let stop = downsample(&sine(24000, 6000.0, 24000), 24000, 8000);
        assert!(rms(&stop[100..7900]) < 100.0, "{}", rms(&stop));
    }

    #[test]
    fn ulaw_clip_is_a_third_of_the_samples() {
        let c = reply();
        assert_eq!(c.ulaw_8k().len(), c.pcm.len() / 2 / 3);
    }

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
