//! The caller's side of the media, without IO: what each 20 ms tick of
//! caller audio tells the call (media arrived in the last second, the
//! first audio, speech for the no-speech timer, sustained speech for
//! barge-in).
//!
//! # Barge-in detection
//!
//! The caller barges in when they speak over our reply for at least the
//! configured time (`ManagerConfig::barge_in_after`, 250 ms by default):
//! long enough that a backchannel ("mm-hm", "ok", "yes") does not cut the
//! agent off, short enough that the reply stops while the caller is still
//! on their first words, whether or not the model is reachable.
//!
//! A frame is *voiced* when both hold:
//! - its RMS is above [`SPEECH_RMS`] (the level the metrics count as
//!   speech: well above line noise and comfort noise), and
//! - its zero-crossing rate (sign changes per sample) is between
//!   [`ZCR_MIN`] and [`ZCR_MAX`] (0.02 to 0.35 per sample): voiced speech
//!   at 8 kHz crosses zero about that often (a 100-300 Hz fundamental plus
//!   formants below 3.4 kHz); mains hum and DC drift cross less, hiss,
//!   crackle and white noise near 0.5.
//!
//! Sustained speech is the threshold's worth of voiced frames in one run;
//! a run survives gaps of at most [`HANGOVER_FRAMES`] unvoiced frames (a
//! fricative, a stop consonant) without counting them, and ends after a
//! longer gap (the pause inside "mm-hm" ends it). It is reported when the
//! run reaches the threshold and again each time it lasts another
//! threshold: the machine acts on it only while our reply plays, so a
//! reply that starts while the caller is still talking (one a resumed
//! model connection sends again) is cut too, within one threshold.
//!
//! Why by hand: the well-kept pure Rust VAD (`earshot`) takes 16 kHz audio
//! in 16 ms frames, so each call would need its own resampler and
//! reframing, and it costs a few microseconds per 20 ms of audio, which
//! at 1,000 calls is a large part of the one core the whole agent may use
//! (issue 17). The decision needed here is coarse ("is the caller talking
//! over us, for long"), and level plus zero crossings make it for a
//! fraction of a microsecond per frame, on the frame the call already has.

use callbridge_rtp::stream::{Frame, PTIME};

use crate::metrics::call::SPEECH_RMS;

/// Ticks between two `CallerSpeech` inputs (the no-speech timer needs no more).
const SPEECH_EVERY: u32 = 10;
/// Ticks in one `MediaArrived` window (1 s): the RTP inactivity timer is
/// re-armed at the end of each window in which media arrived, so it fires
/// at most one window after its time, never before.
pub(crate) const MEDIA_EVERY: u32 = 50;
/// The lowest zero-crossing rate of a voiced frame (per sample).
pub(crate) const ZCR_MIN: f64 = 0.02;
/// The highest zero-crossing rate of a voiced frame (per sample).
pub(crate) const ZCR_MAX: f64 = 0.35;
/// Unvoiced frames a speech run survives (60 ms).
pub(crate) const HANGOVER_FRAMES: u32 = 3;

/// Sign changes per sample pair of `frame` (0 for fewer than 2 samples).
pub(crate) fn zero_crossing_rate(frame: &[i16]) -> f64 {
    if frame.len() < 2 {
        return 0.0;
    }
    let crossings = frame
        .windows(2)
        .filter(|w| (w[0] >= 0) != (w[1] >= 0))
        .count();
    crossings as f64 / (frame.len() - 1) as f64
}

/// Whether `frame` is voiced speech (see the module docs), given its RMS.
pub(crate) fn is_voiced(frame: &[i16], level: f64) -> bool {
    level > SPEECH_RMS && (ZCR_MIN..=ZCR_MAX).contains(&zero_crossing_rate(frame))
}

/// Sustained speech over runs of voiced frames (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct SustainedSpeech {
    need: u32,
    voiced: u32,
    gap: u32,
    /// Voiced frames at which the run is reported next.
    next: u32,
}

impl SustainedSpeech {
    /// Reports a run once it has `after` of voiced audio (rounded up to
    /// whole frames, at least one).
    pub(crate) fn new(after: std::time::Duration) -> SustainedSpeech {
        let need =
            u32::try_from(after.as_nanos().div_ceil(PTIME.as_nanos()).max(1)).unwrap_or(u32::MAX);
        SustainedSpeech {
            need,
            voiced: 0,
            gap: 0,
            next: need,
        }
    }

    /// Voiced frames a run needs.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> u32 {
        self.need
    }

    /// One frame; true when the current run just reached the threshold,
    /// or another multiple of it.
    pub(crate) fn on_frame(&mut self, voiced: bool) -> bool {
        if voiced {
            self.gap = 0;
            self.voiced = self.voiced.saturating_add(1);
            if self.voiced >= self.next {
                self.next = self.next.saturating_add(self.need);
                return true;
            }
            return false;
        }
        self.gap = self.gap.saturating_add(1);
        if self.gap > HANGOVER_FRAMES {
            self.voiced = 0;
            self.next = self.need;
        }
        false
    }
}

/// What one tick of caller audio means for the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Heard {
    /// A [`MEDIA_EVERY`] window just ended in which media arrived (re-arms
    /// the RTP inactivity timer).
    pub media: bool,
    /// The first caller media of the call.
    pub first: bool,
    /// Caller speech, at most every [`SPEECH_EVERY`] ticks (the no-speech
    /// timer).
    pub speech: bool,
    /// A run of caller speech just became long enough to be a barge-in.
    pub sustained: bool,
}

/// The caller's audio, tick by tick (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct CallerAudio {
    first_seen: bool,
    cooldown: u32,
    /// Ticks into the current media window.
    window: u32,
    /// Media arrived in the current window.
    media_in_window: bool,
    barge: Option<SustainedSpeech>,
}

impl CallerAudio {
    /// `barge_in_after`: how long caller speech must last to be a barge-in;
    /// `None` leaves barge-in to the model.
    pub(crate) fn new(barge_in_after: Option<std::time::Duration>) -> CallerAudio {
        CallerAudio {
            first_seen: false,
            cooldown: 0,
            window: 0,
            media_in_window: false,
            barge: barge_in_after.map(SustainedSpeech::new),
        }
    }

    /// One tick: the caller's frame, its RMS (`level`, computed once per
    /// tick by the call) and whether media arrived for it (a frame that
    /// did not arrive is concealment or silence, never speech).
    pub(crate) fn on_tick(&mut self, pcm: &Frame, level: f64, arrived: bool) -> Heard {
        let mut out = Heard::default();
        self.media_in_window |= arrived;
        self.window += 1;
        if self.window == MEDIA_EVERY {
            self.window = 0;
            out.media = std::mem::take(&mut self.media_in_window);
        }
        if !arrived {
            if let Some(b) = &mut self.barge {
                b.on_frame(false);
            }
            return out;
        }
        if !self.first_seen {
            self.first_seen = true;
            out.first = true;
        }
        self.cooldown = self.cooldown.saturating_sub(1);
        if self.cooldown == 0 && level > SPEECH_RMS {
            self.cooldown = SPEECH_EVERY;
            out.speech = true;
        }
        if let Some(b) = &mut self.barge {
            out.sustained = b.on_frame(is_voiced(pcm, level));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use callbridge_audio::level::rms;
    use std::time::Duration;

    /// A voiced-speech-like frame: a 150 Hz fundamental with two formant
    /// partials, at `amp`; `n` is the frame's index (phase continues).
    pub(crate) fn voiced(n: usize, amp: f64) -> Frame {
        let mut f = [0i16; 160];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (n * 160 + i) as f64 / 8000.0;
            let v = (std::f64::consts::TAU * 150.0 * t).sin()
                + 0.5 * (std::f64::consts::TAU * 600.0 * t).sin()
                + 0.25 * (std::f64::consts::TAU * 1200.0 * t).sin();
            *s = (amp * v / 1.75) as i16;
        }
        f
    }

    /// Loud white-ish noise (a deterministic LCG).
    fn hiss(seed: u32, amp: i32) -> Frame {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut f = [0i16; 160];
        for s in &mut f {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *s = ((i64::from(x >> 16) % (2 * i64::from(amp) + 1)) - i64::from(amp)) as i16;
        }
        f
    }

    #[test]
    fn zero_crossings_are_counted_per_sample_pair() {
        assert_eq!(zero_crossing_rate(&[1, -1, 1, -1, 1]), 1.0);
        assert_eq!(zero_crossing_rate(&[5; 160]), 0.0);
        assert_eq!(zero_crossing_rate(&[3]), 0.0);
        assert_eq!(zero_crossing_rate(&[1, 1, -1, -1, 1]), 0.5);
    }

    #[test]
    fn speech_is_voiced_and_noise_hum_and_quiet_are_not() {
        let v = voiced(0, 6000.0);
        assert!(is_voiced(&v, rms(&v)));
        let quiet = voiced(0, 200.0);
        assert!(!is_voiced(&quiet, rms(&quiet)), "below the speech level");
        let h = hiss(7, 8000);
        assert!(!is_voiced(&h, rms(&h)), "zcr {}", zero_crossing_rate(&h));
        let hum: Frame = std::array::from_fn(|i| {
            (8000.0 * (std::f64::consts::TAU * 50.0 * i as f64 / 8000.0).sin()) as i16 + 9000
        });
        assert!(!is_voiced(&hum, rms(&hum)), "hum with an offset");
    }

    #[test]
    fn a_run_is_reported_at_the_threshold_and_each_threshold_after() {
        let mut s = SustainedSpeech::new(Duration::from_millis(250));
        assert_eq!(s.frames(), 13);
        let fired: Vec<usize> = (0..30).filter(|_| s.on_frame(true)).collect();
        assert_eq!(fired, vec![12, 25]);
    }

    #[test]
    fn short_gaps_are_bridged_and_long_ones_end_the_run() {
        let mut s = SustainedSpeech::new(Duration::from_millis(100));
        for _ in 0..4 {
            assert!(!s.on_frame(true));
        }
        for _ in 0..HANGOVER_FRAMES {
            assert!(!s.on_frame(false));
        }
        assert!(s.on_frame(true), "the gap was bridged: 5 voiced frames");
        let mut s = SustainedSpeech::new(Duration::from_millis(100));
        for _ in 0..4 {
            s.on_frame(true);
        }
        for _ in 0..=HANGOVER_FRAMES {
            s.on_frame(false);
        }
        assert!(!s.on_frame(true), "the run ended: counting starts again");
        for _ in 0..3 {
            assert!(!s.on_frame(true));
        }
        assert!(s.on_frame(true));
    }

    /// One tick of `f`, its level computed as the call does.
    fn tick(c: &mut CallerAudio, f: &Frame) -> Heard {
        c.on_tick(f, rms(f), true)
    }

    /// Reports of sustained speech for `parts` (runs of voiced frames or
    /// of silence, `(frames, voiced)`) between silences.
    fn reports(parts: &[(usize, bool)]) -> usize {
        let mut c = CallerAudio::new(Some(Duration::from_millis(250)));
        let silence = [0i16; 160];
        let mut n = 0;
        let mut fired = 0;
        for _ in 0..10 {
            fired += usize::from(tick(&mut c, &silence).sustained);
        }
        for &(len, loud) in parts {
            for _ in 0..len {
                let f = if loud { voiced(n, 5000.0) } else { silence };
                fired += usize::from(tick(&mut c, &f).sustained);
                n += 1;
            }
        }
        for _ in 0..20 {
            fired += usize::from(tick(&mut c, &silence).sustained);
        }
        fired
    }

    // The edges the detector decides at 250 ms (13 voiced frames, runs
    // surviving gaps of up to HANGOVER_FRAMES): a threshold off by one, a
    // hangover that ends runs early or bridges longer gaps, or a voicing
    // test that lets loud noise through makes one of these fail.

    #[test]
    fn one_burst_fires_from_13_frames_and_not_at_12() {
        assert_eq!(reports(&[(12, true)]), 0, "240 ms: a backchannel");
        for len in 13..=20 {
            assert_eq!(reports(&[(len, true)]), 1, "{len} frames");
        }
        assert_eq!(reports(&[(26, true)]), 2, "a second threshold");
    }

    #[test]
    fn two_bursts_fire_across_a_gap_within_the_hangover_and_not_beyond() {
        for (a, b) in [(7, 6), (6, 7), (12, 1), (1, 12), (10, 5)] {
            for gap in 1..=HANGOVER_FRAMES as usize {
                assert_eq!(
                    reports(&[(a, true), (gap, false), (b, true)]),
                    1,
                    "{a} + {b} voiced frames across a {gap}-frame gap"
                );
            }
            let gap = HANGOVER_FRAMES as usize + 1;
            assert_eq!(
                reports(&[(a, true), (gap, false), (b, true)]),
                0,
                "{a} + {b} frames with a {gap}-frame pause (\"mm-hm\")"
            );
        }
        assert_eq!(
            reports(&[(6, true), (3, false), (6, true)]),
            0,
            "the gap's frames do not count: 12 voiced frames"
        );
    }

    #[test]
    fn loud_unvoiced_audio_never_fires() {
        // Hiss (white noise) at several levels and a crackle (impulses of
        // random sign on every other sample): loud enough to be caller
        // speech for the no-speech timer, never a barge-in.
        let crackle = |seed: u32| -> Frame {
            let h = hiss(seed, 20_000);
            std::array::from_fn(|i| if i % 2 == 0 { h[i] } else { 0 })
        };
        for amp in [2_000, 8_000, 20_000] {
            let mut c = CallerAudio::new(Some(Duration::from_millis(250)));
            let mut speech = false;
            for n in 0..200 {
                let h = tick(&mut c, &hiss(n, amp));
                assert!(!h.sustained, "hiss at {amp}, frame {n}");
                speech |= h.speech;
            }
            assert!(speech, "loud enough to count as speech at {amp}");
        }
        let mut c = CallerAudio::new(Some(Duration::from_millis(250)));
        for n in 0..200 {
            let f = crackle(n);
            assert!(rms(&f) > SPEECH_RMS);
            assert!(!tick(&mut c, &f).sustained, "crackle, frame {n}");
        }
        // Noise inside speech is a gap, not more speech: 12 voiced frames
        // with hiss in the middle stay below the threshold.
        let mut c = CallerAudio::new(Some(Duration::from_millis(250)));
        let mut fired = false;
        for n in 0..6 {
            fired |= tick(&mut c, &voiced(n, 5000.0)).sustained;
        }
        for n in 0..HANGOVER_FRAMES {
            fired |= tick(&mut c, &hiss(n, 8_000)).sustained;
        }
        for n in 6..12 {
            fired |= tick(&mut c, &voiced(n, 5000.0)).sustained;
        }
        assert!(!fired);
        assert!(tick(&mut c, &voiced(12, 5000.0)).sustained, "the 13th");
    }

    #[test]
    fn sustained_speech_fires_at_the_threshold_and_not_without_a_detector() {
        let mut c = CallerAudio::new(Some(Duration::from_millis(250)));
        let at = (0..20).position(|n| tick(&mut c, &voiced(n, 5000.0)).sustained);
        assert_eq!(at, Some(12), "the 13th voiced frame: 260 ms");
        let mut off = CallerAudio::new(None);
        assert!((0..40).all(|n| !tick(&mut off, &voiced(n, 5000.0)).sustained));
    }

    #[test]
    fn ticks_report_first_audio_and_rate_limited_speech() {
        let mut c = CallerAudio::new(None);
        let v = voiced(0, 5000.0);
        let none = c.on_tick(&v, rms(&v), false);
        assert_eq!(none, Heard::default(), "nothing arrived: no speech");
        let first = tick(&mut c, &[0; 160]);
        assert!(first.first && !first.speech);
        let speech: Vec<bool> = (0..25)
            .map(|n| tick(&mut c, &voiced(n, 5000.0)).speech)
            .collect();
        assert_eq!(speech.iter().filter(|s| **s).count(), 3);
        assert!(!tick(&mut c, &[0; 160]).first);
    }

    #[test]
    fn media_is_reported_at_the_end_of_each_second_that_had_any() {
        let mut c = CallerAudio::new(None);
        let quiet = [0i16; 160];
        // `arrived` per tick -> the ticks (from 0) that report media.
        let mut run = |arrived: &dyn Fn(u32) -> bool, ticks: u32| -> Vec<u32> {
            (0..ticks)
                .filter(|&t| c.on_tick(&quiet, 0.0, arrived(t)).media)
                .collect()
        };
        let every = MEDIA_EVERY;
        assert_eq!(
            run(&|_| true, 3 * every),
            vec![every - 1, 2 * every - 1, 3 * every - 1],
            "once a second, not every tick"
        );
        // One packet early in a window: reported at the window's end, so
        // a timer re-armed from the report counts from after the packet.
        assert_eq!(run(&|t| t == 1, 2 * every), vec![every - 1]);
        assert_eq!(run(&|t| t == every - 1, every), vec![every - 1]);
        assert!(run(&|_| false, 3 * every).is_empty(), "silence: no media");
    }

    /// 20 ms frames of a recorded clip at 8 kHz.
    fn frames_of(clip: &callbridge_llm_mock::clips::Clip) -> Vec<Frame> {
        clip.samples_at(8000)
            .chunks(160)
            .map(|c| {
                let mut f = [0i16; 160];
                f[..c.len()].copy_from_slice(c);
                f
            })
            .collect()
    }

    /// The detection figures of docs/PERFORMANCE.md ("Issue 17: bridge /
    /// barge-in"): how soon recorded speech is taken for a barge-in. Run
    /// with `cargo test -p callbridge-session --lib barge_in_figures --
    /// --nocapture`. Fails if recorded speech is not detected, or later
    /// than 400 ms after its first loud frame.
    #[test]
    fn barge_in_figures_on_recorded_speech() {
        let after = Duration::from_millis(250);
        for (name, clip) in [
            ("reply", callbridge_llm_mock::clips::reply()),
            ("greeting", callbridge_llm_mock::clips::greeting()),
        ] {
            let frames = frames_of(clip);
            let first_loud = frames.iter().position(|f| rms(f) > 300.0).unwrap();
            let mut c = CallerAudio::new(Some(after));
            let fired = frames
                .iter()
                .position(|f| tick(&mut c, f).sustained)
                .unwrap();
            let ms = (fired - first_loud + 1) * 20;
            eprintln!("barge-in detected {ms} ms into the {name} clip's speech");
            assert!((260..=400).contains(&ms), "{name}: {ms} ms");
        }
    }

    /// The ticks callgrind counts (docs/PERFORMANCE.md, "Issue 17"): the
    /// level, which the call computes once per tick for the detector and
    /// its metrics, and the detector.
    #[inline(never)]
    fn run_ticks(c: &mut CallerAudio, frames: &[Frame], n: usize) -> u32 {
        let mut fired = 0;
        for i in 0..n {
            let f = std::hint::black_box(&frames[i % frames.len()]);
            fired += u32::from(c.on_tick(f, rms(f), true).sustained);
        }
        fired
    }

    /// A workload for callgrind, not a check of speed: 100,000 ticks of
    /// voiced caller audio (the detector's most expensive path).
    #[test]
    #[ignore = "a workload for callgrind (docs/PERFORMANCE.md)"]
    fn caller_tick_workload() {
        let frames: Vec<Frame> = (0..50).map(|n| voiced(n, 5000.0)).collect();
        let mut c = CallerAudio::new(Some(Duration::from_millis(250)));
        let fired = run_ticks(&mut c, &frames, 100_000);
        assert_eq!(fired, 100_000 / 13, "one report per threshold of speech");
    }
}
