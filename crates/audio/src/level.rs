//! Signal level: the root mean square of 16-bit samples, the one measure
//! of loudness the media path, the metrics and the tests share (speech
//! detection compares it with a threshold, e.g. 300 for speech against
//! line noise).
//!
//! The sum is taken in `f64` in sample order, so the same samples give
//! the same bits whichever entry point computes it.

/// The RMS of `samples`; 0 for no samples.
///
/// ```
/// use callbridge_audio::level::rms;
/// assert_eq!(rms(&[3, -4, 3, -4, 3, -4, 3, -4]), 12.5f64.sqrt());
/// assert_eq!(rms(&[]), 0.0);
/// assert_eq!(rms(&[1000; 160]), 1000.0);
/// ```
#[must_use]
pub fn rms(samples: &[i16]) -> f64 {
    rms_iter(samples.iter().copied())
}

/// The RMS of samples produced on the fly (e.g. decoded from G.711 codes
/// without a buffer); 0 for none.
///
/// ```
/// use callbridge_audio::{g711, level};
/// let payload = [0x80u8; 160]; // mu-law full scale, positive
/// let loud = level::rms_iter(payload.iter().map(|&c| g711::ulaw_to_linear(c)));
/// assert_eq!(loud, 32124.0);
/// ```
#[must_use]
pub fn rms_iter(samples: impl IntoIterator<Item = i16>) -> f64 {
    let (sum, n) = samples.into_iter().fold((0.0f64, 0usize), |(sum, n), s| {
        let s = f64::from(s);
        (sum + s * s, n + 1)
    });
    (sum / n.max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_of_a_full_scale_square_wave_is_its_amplitude() {
        let square: Vec<i16> = (0..160)
            .map(|i| if i % 2 == 0 { 20_000 } else { -20_000 })
            .collect();
        assert_eq!(rms(&square), 20_000.0);
    }

    #[test]
    fn rms_of_a_sine_is_amplitude_over_root_two() {
        let sine: Vec<i16> = (0..8000)
            .map(|n| {
                (10_000.0 * (std::f64::consts::TAU * 1000.0 * f64::from(n) / 8000.0).sin()).round()
                    as i16
            })
            .collect();
        assert!((rms(&sine) - 10_000.0 / 2f64.sqrt()).abs() < 1.0);
    }

    #[test]
    fn the_extremes_do_not_overflow() {
        assert_eq!(rms(&[i16::MIN; 4]), 32768.0);
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(rms_iter(std::iter::empty()), 0.0);
    }

    #[test]
    fn slice_and_iterator_entry_points_agree_bit_for_bit() {
        let x: Vec<i16> = (0..997)
            .map(|i| ((i * 7919) % 65_536 - 32_768) as i16)
            .collect();
        assert_eq!(rms(&x).to_bits(), rms_iter(x.iter().copied()).to_bits());
    }
}
