//! The comfort tone a caller hears while a slow tool runs (when the tool
//! names no filler of its own): 8 kHz samples, made once.
//!
//! A 440 Hz tone at -24 dBFS for 200 ms with 10 ms fades, then 800 ms of
//! silence: one second per beat, repeated while the tool runs, so the line
//! is never dead and the caller can tell the agent is working. The shape
//! is the "please hold" beep of call centres; quiet enough not to be taken
//! for a dial or busy tone (those are continuous or cadenced at -13 dBm).

use std::sync::LazyLock;

/// Sample rate of the tone.
pub const RATE: u32 = 8000;
/// One beat (tone and pause).
pub const BEAT_MS: u32 = 1000;

static BEAT: LazyLock<Vec<i16>> = LazyLock::new(|| beat(440.0, 200, 10));

/// One beat of the comfort tone.
pub fn comfort_tone() -> &'static [i16] {
    &BEAT
}

/// `tone_ms` of `freq` Hz with `fade_ms` ramps, then silence to
/// [`BEAT_MS`].
fn beat(freq: f64, tone_ms: u32, fade_ms: u32) -> Vec<i16> {
    let total = (RATE * BEAT_MS / 1000) as usize;
    let tone = (RATE * tone_ms / 1000) as usize;
    let fade = (RATE * fade_ms / 1000).max(1) as usize;
    // -24 dBFS peak.
    let amp = f64::from(i16::MAX) * 10f64.powf(-24.0 / 20.0);
    (0..total)
        .map(|n| {
            if n >= tone {
                return 0;
            }
            let ramp = (n.min(tone - 1 - n) as f64 / fade as f64).min(1.0);
            let v =
                amp * ramp * (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(RATE)).sin();
            // |v| <= amp < i16::MAX: the cast cannot overflow.
            #[allow(clippy::cast_possible_truncation)]
            let s = v.round() as i16;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_is_one_second_of_a_quiet_tone_then_silence() {
        let b = comfort_tone();
        assert_eq!(b.len(), 8000);
        let rms = |s: &[i16]| {
            (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        let on = rms(&b[80..1520]);
        // -24 dBFS peak is about -27 dBFS RMS: 1,460 of 32,767.
        assert!((1300.0..1700.0).contains(&on), "rms {on}");
        assert!(b[1600..].iter().all(|&s| s == 0));
        assert!(b[0].abs() < 100, "starts with a fade");
    }
}
