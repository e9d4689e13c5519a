//! The reply clips in the session's output format: PCM as recorded, or
//! decimated to 8 kHz and G.711-encoded by the shared codec
//! (`callbridge_audio::g711`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
pub use callbridge_audio::g711::{linear_to_alaw, linear_to_ulaw};
use callbridge_llm_bridge::audio::AudioFormat;

use crate::clips::Clip;

/// A 24 kHz s16le clip in `format` (decimated ×3 with a 3-tap average for
/// the 8 kHz G.711 formats).
pub fn clip_in_format(clip: &Clip, format: AudioFormat) -> Bytes {
    let samples = clip
        .pcm
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]));
    match format {
        AudioFormat::Pcm16 { .. } => clip.pcm.clone(),
        AudioFormat::Pcmu | AudioFormat::Pcma => {
            let all: Vec<i16> = samples.collect();
            let enc = if format == AudioFormat::Pcmu {
                linear_to_ulaw
            } else {
                linear_to_alaw
            };
            all.chunks(3)
                .map(|c| {
                    let sum: i32 = c.iter().map(|&s| i32::from(s)).sum();
                    enc((sum / c.len().max(1) as i32) as i16)
                })
                .collect::<Vec<u8>>()
                .into()
        }
    }
}

/// `clip` in `format`, converted once per process and cached by `which`.
pub(super) fn cached(which: usize, clip: &'static Clip, format: AudioFormat) -> Bytes {
    static CACHE: OnceLock<Mutex<HashMap<(usize, AudioFormat), Bytes>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(mut c) = cache.lock() {
        return c
            .entry((which, format))
            .or_insert_with(|| clip_in_format(clip, format))
            .clone();
    }
    clip_in_format(clip, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clips;
    use callbridge_llm_bridge::audio::alaw_to_linear;

    #[test]
    fn alaw_encoder_round_trips_with_the_decoder() {
        for s in [-32000i16, -1000, -8, 0, 8, 1000, 32000] {
            let back = alaw_to_linear(linear_to_alaw(s));
            assert!(
                (i32::from(back) - i32::from(s)).abs() <= 1024,
                "{s} -> {back}"
            );
        }
        assert_eq!(linear_to_alaw(0), 0xD5);
    }

    #[test]
    fn clips_convert_to_8k_g711_at_a_third_of_the_samples() {
        let clip = clips::reply();
        let mu = clip_in_format(clip, AudioFormat::Pcmu);
        assert_eq!(mu.len(), (clip.pcm.len() / 2).div_ceil(3));
        assert_eq!(clip_in_format(clip, AudioFormat::PCM_24K), clip.pcm);
    }
}
