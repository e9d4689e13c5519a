//! The resampler against the bars of issue 17 (module docs), on the
//! quantized kernels themselves (their exact frequency response) and on
//! tones through [`Resampler`], plus properties over arbitrary input.

use std::f64::consts::TAU;

use callbridge_test_support::tone::tone;
use proptest::prelude::*;

use super::design::{self, DOWN_SHIFT, UP_BRANCH, UP_CENTER_LAG, UP_SHIFT};
use super::*;
use crate::level::rms;

const PAIRS: [(u32, u32); 4] = [
    (8000, 16_000),
    (16_000, 8000),
    (8000, 24_000),
    (24_000, 8000),
];

/// Runs `input` through `r` in chunks of `chunk` samples.
fn run(r: &mut Resampler, input: &[i16], chunk: usize) -> Vec<i16> {
    let mut out = Vec::new();
    let mut buf = vec![0i16; 3 * chunk + 3];
    for c in input.chunks(chunk) {
        let n = r.process(c, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn through(a: u32, b: u32, input: &[i16]) -> Vec<i16> {
    run(&mut Resampler::new(a, b).unwrap(), input, (a / 50) as usize)
}

/// (amplitude, phase in radians, SNR in dB) of a sine of `hz` fitted to `x`.
fn fit_tone(x: &[i16], rate: u32, hz: f64) -> (f64, f64, f64) {
    let f = callbridge_test_support::tone::fit_tone(x, rate, hz);
    (f.amplitude, f.phase, f.snr_db)
}

/// |H(f)| in dB of taps `h` with `shift` fraction bits at rate `fs`,
/// scaled by `1/gain`.
fn response_db(h: &[i64], shift: u32, fs: f64, f: f64, gain: f64) -> f64 {
    let w = TAU * f / fs;
    let (re, im) = h.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, &v)| {
        let (s, c) = (w * n as f64).sin_cos();
        (re + v as f64 * c, im - v as f64 * s)
    });
    20.0 * (re.hypot(im) / f64::from(1u32 << shift) / gain).log10()
}

/// The interpolator's whole prototype, rebuilt from its quantized
/// branches (branch 0 is the pure delay), in Q14 times `factor`.
fn up_prototype(factor: usize) -> Vec<i64> {
    let k = design::up_kernel(factor);
    let mut h = vec![0i64; 2 * UP_CENTER_LAG * factor + 1];
    h[UP_CENTER_LAG * factor] = 1 << UP_SHIFT;
    for (p, row) in k.taps.iter().enumerate().take(factor - 1) {
        for (q, &t) in row.iter().enumerate() {
            let idx = p + 1 + factor * (UP_BRANCH - 1 - q);
            if let Some(slot) = h.get_mut(idx) {
                *slot = i64::from(t);
            }
        }
    }
    h
}

fn down_prototype(factor: usize) -> Vec<i64> {
    let taps = if factor == 2 {
        &design::down2_kernel().taps
    } else {
        &design::down3_kernel().taps
    };
    taps.iter().map(|&t| i64::from(t)).collect()
}

fn grid(from: f64, to: f64, step: f64) -> impl Iterator<Item = f64> {
    (0..)
        .map(move |i| from + step * f64::from(i))
        .take_while(move |&f| f <= to)
}

#[test]
fn delay_is_two_ms_in_every_direction() {
    for (a, b) in PAIRS {
        let r = Resampler::new(a, b).unwrap();
        assert_eq!(r.delay() as f64 * 1000.0 / f64::from(b), 2.0, "{a}->{b}");
    }
    assert_eq!(Resampler::new(16_000, 16_000).unwrap().delay(), 0);
}

#[test]
fn an_impulse_peaks_exactly_at_the_stated_delay() {
    for (a, b) in PAIRS {
        let mut input = vec![0i16; (a / 50) as usize * 4];
        input[0] = 20_000;
        let mut r = Resampler::new(a, b).unwrap();
        let out = through(a, b, &input);
        let peak = (0..out.len()).max_by_key(|&i| out[i]).unwrap();
        assert_eq!(peak, r.delay(), "{a}->{b}");
        assert_eq!(out.len(), r.output_len(input.len()), "{a}->{b}");
        // The whole input in one call: the same samples as frame by frame.
        let mut one_call = vec![0; out.len()];
        assert_eq!(r.process(&input, &mut one_call).unwrap(), out.len());
        assert_eq!(one_call, out, "{a}->{b}");
    }
}

#[test]
fn unsupported_rates_are_refused() {
    for (a, b) in [
        (8000, 44_100),
        (16_000, 24_000),
        (24_000, 16_000),
        (0, 0),
        (48_000, 48_000),
    ] {
        assert_eq!(
            Resampler::new(a, b).err(),
            Some(Error::UnsupportedRate { from: a, to: b })
        );
    }
}

#[test]
fn a_short_output_buffer_is_refused_and_nothing_is_consumed() {
    let mut r = Resampler::new(24_000, 8000).unwrap();
    let input = tone(24_000, 440.0, 8000.0, 480);
    assert_eq!(
        r.process(&input, &mut [0; 159]),
        Err(Error::BufferTooSmall {
            need: 160,
            have: 159
        })
    );
    let mut out = [0i16; 160];
    assert_eq!(r.process(&input, &mut out), Ok(160));
    assert_eq!(&out[..], &through(24_000, 8000, &input)[..]);
}

#[test]
fn kernels_cannot_overflow_and_keep_dc_exact() {
    for factor in [2, 3] {
        let up = design::up_kernel(factor);
        // The largest |sum| any input can make, plus the rounding offset,
        // fits an i32.
        let fits = |taps: &[i64], shift: u32| {
            let abs: i64 = taps.iter().map(|t| t.abs()).sum();
            abs * 32_768 + (1 << (shift - 1)) <= i64::from(i32::MAX)
        };
        for row in up.taps.iter().take(factor - 1) {
            let row: Vec<i64> = row.iter().map(|&t| i64::from(t)).collect();
            assert_eq!(row.iter().sum::<i64>(), 1 << UP_SHIFT);
            assert!(fits(&row, UP_SHIFT), "x{factor} up branch {row:?}");
        }
        let down = down_prototype(factor);
        assert_eq!(down.len(), 32 * factor + 1);
        assert_eq!(down.iter().sum::<i64>(), 1 << DOWN_SHIFT);
        assert!(fits(&down, DOWN_SHIFT), "x{factor} down");
        // Linear phase: symmetric (up to the DC correction on the center).
        let mid = down.len() / 2;
        for k in 0..mid {
            assert_eq!(down[k], down[down.len() - 1 - k], "x{factor} tap {k}");
        }
    }
    // The Nyquist property the up path relies on: every L-th tap of the
    // prototype is zero but the center one.
    for factor in [2, 3] {
        let h = design::prototype(design::up_spec(factor));
        let mid = h.len() / 2;
        for (n, v) in h.iter().enumerate() {
            if n != mid && (n as isize - mid as isize) % factor as isize == 0 {
                assert!(v.abs() < 1e-12, "x{factor} tap {n} = {v}");
            }
        }
    }
    // A constant comes out exactly (after the filter has filled).
    for (a, b) in PAIRS {
        let out = through(a, b, &vec![12_345i16; (a / 50) as usize * 5]);
        assert!(
            out[out.len() / 2..].iter().all(|&s| s == 12_345),
            "{a}->{b}"
        );
    }
}

#[test]
fn kernel_pass_band_is_within_1_db_at_3400_hz_and_0_2_db_to_3_khz() {
    for factor in [2usize, 3] {
        let fs = 8000.0 * factor as f64;
        for (name, h, shift, gain) in [
            ("up", up_prototype(factor), UP_SHIFT, factor as f64),
            ("down", down_prototype(factor), DOWN_SHIFT, 1.0),
        ] {
            for f in grid(0.0, 3400.0, 25.0) {
                let db = response_db(&h, shift, fs, f, gain);
                let bar = if f <= 3000.0 { 0.2 } else { 1.0 };
                assert!(db.abs() < bar, "x{factor} {name} at {f} Hz: {db:.3} dB");
            }
        }
    }
}

#[test]
fn kernel_24k_to_8k_stop_band_is_50_db_at_4100_hz_and_60_db_from_4500_hz() {
    for factor in [3usize, 2] {
        let fs = 8000.0 * factor as f64;
        let h = down_prototype(factor);
        // Not only at 4.1 kHz: everywhere from there to 4.5 kHz.
        for f in grid(4100.0, 4500.0, 5.0) {
            let db = response_db(&h, DOWN_SHIFT, fs, f, 1.0);
            assert!(db <= -50.0, "x{factor} at {f} Hz: {db:.1} dB");
        }
        for f in grid(4500.0, fs / 2.0, 5.0) {
            let db = response_db(&h, DOWN_SHIFT, fs, f, 1.0);
            assert!(db <= -60.0, "x{factor} at {f} Hz: {db:.1} dB");
        }
    }
}

#[test]
fn kernel_up_images_of_the_telephone_band_are_70_db_down() {
    for factor in [2usize, 3] {
        let fs = 8000.0 * factor as f64;
        let h = up_prototype(factor);
        for f in grid(4600.0, fs / 2.0, 5.0) {
            let db = response_db(&h, UP_SHIFT, fs, f, factor as f64);
            assert!(db <= -70.0, "x{factor} image at {f} Hz: {db:.1} dB");
        }
    }
}

#[test]
fn tone_1khz_round_trip_snr_is_at_least_85_db() {
    for wide in [16_000, 24_000] {
        let input = tone(8000, 1000.0, 10_000.0, 8000);
        let back = through(wide, 8000, &through(8000, wide, &input));
        // Skip the first 100 ms: filter start-up.
        let (amp, _, snr) = fit_tone(&back[800..], 8000, 1000.0);
        assert!(snr >= 85.0, "8k->{wide}->8k SNR {snr:.1} dB");
        assert!((amp / 10_000.0 - 1.0).abs() < 0.01, "gain {amp}");
    }
}

#[test]
fn off_grid_tone_round_trip_lines_up_at_the_two_delays() {
    for wide in [16_000, 24_000] {
        let input = tone(8000, 997.0, 10_000.0, 8000);
        let back = through(wide, 8000, &through(8000, wide, &input));
        let (_, _, snr) = fit_tone(&back[800..], 8000, 997.0);
        assert!(snr >= 70.0, "8k->{wide}->8k 997 Hz SNR {snr:.1} dB");
        // 2 ms + 2 ms = 32 samples at 8 kHz: shifted by that, the output
        // is the input.
        let d = 32;
        let err = back[800..]
            .iter()
            .zip(&input[800 - d..])
            .map(|(&o, &i)| (f64::from(o) - f64::from(i)).powi(2))
            .sum::<f64>()
            / (back.len() - 800) as f64;
        let snr_aligned = 20.0 * (10_000.0 / 2f64.sqrt() / err.sqrt()).log10();
        assert!(
            snr_aligned >= 60.0,
            "{wide}: aligned SNR {snr_aligned:.1} dB"
        );
    }
}

#[test]
fn measured_phase_delay_is_two_ms() {
    for (a, b) in PAIRS {
        // 300 Hz: 2 ms is 0.6 of a period, so the phase is unambiguous.
        let hz = 300.0;
        let input = tone(a, hz, 10_000.0, a as usize);
        let out = through(a, b, &input);
        let skip = (b / 10) as usize;
        let (_, phase_in, _) = fit_tone(&input[(a / 10) as usize..], a, hz);
        let (_, phase_out, _) = fit_tone(&out[skip..], b, hz);
        let lag = (phase_in - phase_out).rem_euclid(TAU);
        let delay_ms = lag / (TAU * hz) * 1000.0;
        assert!((delay_ms - 2.0).abs() < 0.01, "{a}->{b}: {delay_ms:.4} ms");
    }
}

#[test]
fn tones_through_24k_to_8k_meet_the_stop_band() {
    let in_rms = 10_000.0 / 2f64.sqrt();
    for (hz, min_db) in [
        (4100.0, 50.0),
        (4530.7, 60.0),
        (5000.0, 60.0),
        (5987.3, 60.0),
        (8000.0, 60.0),
        (11_900.0, 60.0),
    ] {
        let out = through(24_000, 8000, &tone(24_000, hz, 10_000.0, 24_000));
        let att = 20.0 * (in_rms / rms(&out[800..]).max(1e-9)).log10();
        assert!(att >= min_db, "{hz} Hz attenuated by only {att:.1} dB");
    }
}

#[test]
fn tones_in_the_pass_band_keep_their_level() {
    for (a, b) in PAIRS {
        for hz in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
            let out = through(a, b, &tone(a, hz, 10_000.0, a as usize));
            let (amp, _, _) = fit_tone(&out[(b / 10) as usize..], b, hz);
            let db = 20.0 * (amp / 10_000.0).log10();
            let bar = if hz <= 3000.0 { 0.2 } else { 1.0 };
            assert!(db.abs() < bar, "{a}->{b} at {hz} Hz: {db:.3} dB");
        }
    }
}

#[test]
fn full_scale_input_clips_at_the_rails() {
    // A full-scale square wave overshoots after filtering (Gibbs): the
    // filtered samples must saturate at the rails, not wrap around to the
    // other sign. (Overflow would not panic, even in a debug build: the
    // SIMD lane sums wrap. That the sums fit is the business of
    // `kernels_cannot_overflow_and_keep_dc_exact`; this test is about
    // the final rounding to `i16`.)
    for (a, b) in PAIRS {
        let square: Vec<i16> = (0..(a as usize / 10))
            .map(|i| if (i / 7) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let out = through(a, b, &square);
        // Interpolation copies every input sample into the output (branch
        // 0, the samples at multiples of the factor), rails included: only
        // the others are filtered.
        let factor = (b / a).max(1) as usize;
        let filtered: Vec<i16> = out
            .iter()
            .enumerate()
            .filter(|&(i, _)| factor == 1 || i % factor != 0)
            .map(|(_, &s)| s)
            .collect();
        assert!(
            filtered.contains(&i16::MAX) && filtered.contains(&i16::MIN),
            "{a}->{b}"
        );
    }
}

fn conversions() -> impl Strategy<Value = (u32, u32)> {
    prop::sample::select(vec![
        (8000, 16_000),
        (16_000, 8000),
        (8000, 24_000),
        (24_000, 8000),
        (8000, 8000),
    ])
}

proptest! {
    #[test]
    fn any_input_in_any_chunks_matches_one_call(
        (a, b) in conversions(),
        input in prop::collection::vec(any::<i16>(), 0..2000),
        cuts in prop::collection::vec(0usize..700, 0..12),
    ) {
        let mut whole = Resampler::new(a, b).unwrap();
        let mut expected = vec![0i16; whole.output_len(input.len())];
        prop_assert_eq!(whole.process(&input, &mut expected).unwrap(), expected.len());

        let mut split = Resampler::new(a, b).unwrap();
        let mut got = Vec::new();
        let mut rest = &input[..];
        for cut in cuts.into_iter().chain([usize::MAX]) {
            let (now, later) = rest.split_at(cut.min(rest.len()));
            let mut out = vec![0i16; split.output_len(now.len())];
            prop_assert_eq!(split.process(now, &mut out).unwrap(), out.len());
            got.extend_from_slice(&out);
            rest = later;
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn linear_up_to_rounding(
        (a, b) in conversions(),
        x in prop::collection::vec(-8000i16..8000, 0..1500),
        y in prop::collection::vec(-8000i16..8000, 1500),
    ) {
        let y = &y[..x.len()];
        let sum: Vec<i16> = x.iter().zip(y).map(|(&p, &q)| p + q).collect();
        let rx = through(a, b, &x);
        let ry = through(a, b, y);
        let rs = through(a, b, &sum);
        for ((&s, &p), &q) in rs.iter().zip(&rx).zip(&ry) {
            // Each output is rounded once: at most 1.5 apart.
            prop_assert!((i32::from(s) - i32::from(p) - i32::from(q)).abs() <= 1);
        }
    }

    #[test]
    fn silence_in_gives_silence_out_once_the_filter_has_emptied(
        (a, b) in conversions(),
        noise in prop::collection::vec(any::<i16>(), 0..600),
    ) {
        let mut r = Resampler::new(a, b).unwrap();
        let zeros = vec![0i16; 400];
        prop_assert!(run(&mut r, &zeros, 160).iter().all(|&s| s == 0));
        run(&mut r, &noise, 97);
        // 20 ms at 24 kHz is longer than any filter.
        let tail = run(&mut r, &[0i16; 480], 480);
        let quiet = &tail[tail.len() / 2..];
        prop_assert!(quiet.iter().all(|&s| s == 0), "{:?}", quiet);
    }
}
