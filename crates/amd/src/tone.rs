//! Beeps and special information tones from the frames' strongest tones.
//!
//! A *tonal* frame has a purity of at least `tone_purity` and a level of at
//! least `beep_min_dbfs` (see [`crate::frame`]). A *run* is consecutive
//! tonal frames whose strongest bin stays within one bin (25 Hz) of the
//! run's first: a stable frequency. Runs of three frames (60 ms) or more are
//! *segments*; segments that follow each other within 60 ms form a
//! *chain*, and a chain is judged once it has ended (no new run within
//! 60 ms), because the first tone of a SIT is itself a 274-380 ms
//! beep and only the two after it tell them apart:
//!
//! - the first three segments are a **SIT** when their frequencies fall in
//!   the ITU-T E.180 bands, 950 ± 50, 1,400 ± 50 and 1,800 ± 50 Hz (which
//!   hold Telcordia's 913.8/985.2, 1,370.6/1,428.5 and 1,776.7 Hz), each
//!   lasting 200-440 ms (E.180: 330 ± 70 ms; Telcordia: 274 or 380 ms; plus
//!   the frames a tone edge spoils), with at most 60 ms between
//!   them (E.180: up to 30 ms of silence). The bands are widened by one
//!   bank step (25 Hz) for the frequency estimate.
//! - otherwise the chain's last segment from `beep_min_hz` to
//!   `beep_max_hz` (give or take half a bank step) lasting at least `beep_min_duration` (less one frame: a
//!   200 ms tone that starts mid-frame fills only 9 whole frames) is a
//!   **beep**.
//!
//! A beep is known 60 ms plus one frame after it ends; the issue's
//! verdict comes `after_beep` (1 s) after its end, so the wait costs
//! nothing.

use std::time::Duration;

use crate::config::AmdConfig;
use crate::frame::{BANK_STEP_HZ, FRAME_SAMPLES, FrameStats};
use crate::verdict::{Beep, Sit};

/// Frames a run needs to be a segment (and to count as tone, not speech).
pub(crate) const MIN_RUN_FRAMES: u32 = 3;
/// The longest gap inside a chain.
pub(crate) const CHAIN_GAP: Duration = Duration::from_millis(60);
/// One frame.
pub(crate) const FRAME: Duration = Duration::from_millis(20);
/// The SIT bands (Hz): ITU-T E.180 950/1,400/1,800 ± 50, widened by 25.
const SIT_BANDS: [(f32, f32); 3] = [(875.0, 1025.0), (1325.0, 1475.0), (1725.0, 1875.0)];
/// The frequency estimate's tolerance at the beep band's edges: half a
/// bank step (a 350 Hz beep may read 349 Hz).
const HALF_STEP: f32 = BANK_STEP_HZ / 2.0;
/// The shortest and longest SIT segment.
const SIT_MIN: Duration = Duration::from_millis(200);
const SIT_MAX: Duration = Duration::from_millis(440);

// The frame length the FRAME constant assumes.
const _: () = assert!(FRAME_SAMPLES == 160);

/// What a chain of tones was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ToneEvent {
    /// A beep.
    Beep(Beep),
    /// A special information tone.
    Sit(Sit),
}

#[derive(Debug, Clone, Copy)]
struct Run {
    first_bin: usize,
    start: Duration,
    end: Duration,
    frames: u32,
    hz_sum: f32,
    level_sum: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    hz: f32,
    start: Duration,
    end: Duration,
    level_dbfs: f32,
}

impl Run {
    fn segment(&self) -> Segment {
        let n = self.frames as f32;
        Segment {
            hz: self.hz_sum / n,
            start: self.start,
            end: self.end,
            level_dbfs: self.level_sum / n,
        }
    }
}

/// Runs, segments and chains (see the module docs). Fixed size: the chain
/// keeps its first three segments (a SIT's) and its last beep.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToneTracker {
    run: Option<Run>,
    first: [Option<Segment>; 3],
    segments: u32,
    last_beep: Option<Segment>,
    last_end: Duration,
}

impl ToneTracker {
    /// A run of at least [`MIN_RUN_FRAMES`] is in progress: the frame is
    /// tone, not speech.
    pub(crate) fn tone_active(&self) -> bool {
        self.run.is_some_and(|r| r.frames >= MIN_RUN_FRAMES)
    }

    /// A tone is in progress or a chain waits to be judged.
    pub(crate) fn busy(&self) -> bool {
        self.run.is_some() || self.segments > 0
    }

    /// One frame ending at `end`. At most one event per frame: a chain is
    /// judged only once no run is in progress.
    pub(crate) fn on_frame(
        &mut self,
        cfg: &AmdConfig,
        end: Duration,
        stats: &FrameStats,
    ) -> Option<ToneEvent> {
        let tonal = stats.purity >= cfg.tone_purity && stats.level_dbfs >= cfg.beep_min_dbfs;
        let start = end.saturating_sub(FRAME);
        match &mut self.run {
            Some(run) if tonal && stats.bin.abs_diff(run.first_bin) <= 1 => {
                run.end = end;
                run.frames += 1;
                run.hz_sum += stats.tone_hz;
                run.level_sum += stats.level_dbfs;
            }
            _ => {
                self.close_run();
                if tonal {
                    self.run = Some(Run {
                        first_bin: stats.bin,
                        start,
                        end,
                        frames: 1,
                        hz_sum: stats.tone_hz,
                        level_sum: stats.level_dbfs,
                    });
                }
            }
        }
        // A run that began within CHAIN_GAP of the chain's end may join it.
        let joining = self
            .run
            .is_some_and(|r| r.start.saturating_sub(self.last_end) <= CHAIN_GAP);
        if self.segments > 0 && end.saturating_sub(self.last_end) > CHAIN_GAP && !joining {
            return self.judge(cfg);
        }
        None
    }

    fn close_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        if run.frames < MIN_RUN_FRAMES {
            return;
        }
        let seg = run.segment();
        if let Some(slot) = self.first.get_mut(self.segments as usize) {
            *slot = Some(seg);
        }
        self.segments = self.segments.saturating_add(1);
        self.last_end = seg.end;
        self.last_beep = Some(seg);
    }

    /// Judges the ended chain and forgets it.
    fn judge(&mut self, cfg: &AmdConfig) -> Option<ToneEvent> {
        let first = std::mem::take(&mut self.first);
        let last = self.last_beep.take();
        self.segments = 0;
        if cfg.sit
            && let [Some(a), Some(b), Some(c)] = first
            && is_sit(&[a, b, c])
        {
            return Some(ToneEvent::Sit(Sit {
                frequencies_hz: [a.hz, b.hz, c.hz],
                start: a.start,
                end: c.end,
            }));
        }
        let seg = last?;
        // One frame of slack: a tone of exactly `beep_min_duration` that
        // starts mid-frame spoils a frame at each edge.
        let beep = seg.end.saturating_sub(seg.start) + FRAME >= cfg.beep_min_duration
            && (cfg.beep_min_hz - HALF_STEP..=cfg.beep_max_hz + HALF_STEP).contains(&seg.hz);
        beep.then_some(ToneEvent::Beep(Beep {
            frequency_hz: seg.hz,
            start: seg.start,
            end: seg.end,
            level_dbfs: seg.level_dbfs,
        }))
    }
}

fn is_sit(segs: &[Segment; 3]) -> bool {
    segs.iter().zip(SIT_BANDS).all(|(s, (lo, hi))| {
        let len = s.end.saturating_sub(s.start);
        (lo..=hi).contains(&s.hz) && (SIT_MIN..=SIT_MAX).contains(&len)
    }) && segs[1].start.saturating_sub(segs[0].end) <= CHAIN_GAP
        && segs[2].start.saturating_sub(segs[1].end) <= CHAIN_GAP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Bank;
    use crate::frame::signal::{noise, speech, tone};

    /// Feeds `frames` (one per 20 ms from 0) and collects the events with
    /// the frame index they came on.
    fn run(frames: &[[i16; FRAME_SAMPLES]]) -> Vec<(usize, ToneEvent)> {
        let cfg = AmdConfig::default();
        let bank = Bank::new();
        let mut t = ToneTracker::default();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let end = FRAME * (i as u32 + 1);
            if let Some(e) = t.on_frame(&cfg, end, &bank.analyze(f)) {
                out.push((i, e));
            }
        }
        out
    }

    fn silence(n: usize) -> Vec<[i16; FRAME_SAMPLES]> {
        vec![[0; FRAME_SAMPLES]; n]
    }

    fn tones(hz: f32, dbfs: f32, n: usize) -> Vec<[i16; FRAME_SAMPLES]> {
        (0..n).map(|i| tone(hz, dbfs, i)).collect()
    }

    #[test]
    fn a_250ms_beep_is_reported_after_its_end_with_its_frequency() {
        let mut f = silence(10);
        f.extend(tones(1000.0, -20.0, 12)); // 240 ms
        f.extend(silence(20));
        let ev = run(&f);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let (i, ToneEvent::Beep(b)) = ev[0] else {
            panic!("{ev:?}")
        };
        assert!((b.frequency_hz - 1000.0).abs() < 5.0, "{b:?}");
        assert_eq!(b.start, Duration::from_millis(200));
        assert_eq!(b.end, Duration::from_millis(440));
        assert_eq!(i, 22 + 3, "judged once the gap exceeds 60 ms");
    }

    #[test]
    fn a_tone_shorter_than_the_minimum_is_no_beep() {
        let mut f = silence(5);
        f.extend(tones(800.0, -20.0, 8)); // 160 ms
        f.extend(silence(20));
        assert!(run(&f).is_empty());
    }

    #[test]
    fn a_quiet_or_out_of_band_tone_is_no_beep() {
        let mut f = tones(1000.0, -35.0, 20);
        f.extend(silence(10));
        f.extend(tones(2300.0, -20.0, 20));
        f.extend(silence(10));
        f.extend(tones(320.0, -20.0, 20));
        f.extend(silence(10));
        assert!(run(&f).is_empty(), "{:?}", run(&f));
    }

    #[test]
    fn a_beep_in_light_noise_is_found() {
        let f: Vec<_> = (0..40)
            .map(|i| {
                let n = noise(-50.0, i, 3);
                let t = tone(1400.0, -25.0, i);
                if (10..25).contains(&i) {
                    std::array::from_fn(|k| t[k].saturating_add(n[k]))
                } else {
                    n
                }
            })
            .collect();
        let ev = run(&f);
        assert!(matches!(ev.as_slice(), [(_, ToneEvent::Beep(_))]), "{ev:?}");
    }

    #[test]
    fn a_gliding_tone_is_no_beep() {
        // 600 -> 1400 Hz over 400 ms: never two bins' worth in one place.
        let f: Vec<_> = (0..20)
            .map(|i| tone(600.0 + 40.0 * i as f32, -20.0, i))
            .collect();
        assert!(run(&f).is_empty());
    }

    #[test]
    fn speech_and_noise_give_no_tone() {
        let f: Vec<_> = (0..200)
            .map(|i| {
                if i < 100 {
                    speech(110.0 + i as f32 * 0.2, -15.0, i)
                } else {
                    noise(-25.0, i, 9)
                }
            })
            .collect();
        assert!(run(&f).is_empty());
    }

    /// The Telcordia SIT `tones` (frequency, ms) sampled continuously.
    fn sit(tones_ms: &[(f32, u32)]) -> Vec<[i16; FRAME_SAMPLES]> {
        let mut samples = vec![0i16; 1600];
        let mut n = 1600usize;
        for &(hz, ms) in tones_ms {
            for k in 0..(ms as usize * 8) {
                let t = (n + k) as f32 / 8000.0;
                let v = 0.08 * 32767.0 * (std::f32::consts::TAU * hz * t).sin();
                samples.push(v as i16);
            }
            n += ms as usize * 8;
        }
        samples.extend(std::iter::repeat_n(0, 3200));
        samples
            .chunks_exact(FRAME_SAMPLES)
            .map(|c| std::array::from_fn(|k| c[k]))
            .collect()
    }

    #[test]
    fn the_four_telcordia_sits_are_found() {
        for seq in [
            [(985.2, 380), (1428.5, 380), (1776.7, 380)],
            [(913.8, 274), (1370.6, 274), (1776.7, 380)],
            [(985.2, 380), (1370.6, 274), (1776.7, 380)],
            [(913.8, 274), (1428.5, 380), (1776.7, 380)],
        ] {
            let ev = run(&sit(&seq));
            assert!(
                matches!(ev.as_slice(), [(_, ToneEvent::Sit(_))]),
                "{seq:?}: {ev:?}"
            );
        }
    }

    #[test]
    fn falling_or_wrong_tones_are_no_sit() {
        let ev = run(&sit(&[(1776.7, 380), (1370.6, 274), (913.8, 274)]));
        assert!(matches!(ev.as_slice(), [(_, ToneEvent::Beep(_))]), "{ev:?}");
        let ev = run(&sit(&[(913.8, 900), (1370.6, 274), (1776.7, 380)]));
        assert!(matches!(ev.as_slice(), [(_, ToneEvent::Beep(_))]), "{ev:?}");
    }

    #[test]
    fn with_sit_off_a_sit_is_a_beep() {
        let cfg = AmdConfig {
            sit: false,
            ..AmdConfig::default()
        };
        let bank = Bank::new();
        let mut t = ToneTracker::default();
        let mut got = Vec::new();
        for (i, f) in sit(&[(913.8, 274), (1370.6, 274), (1776.7, 380)])
            .iter()
            .enumerate()
        {
            got.extend(t.on_frame(&cfg, FRAME * (i as u32 + 1), &bank.analyze(f)));
        }
        assert!(matches!(got.as_slice(), [ToneEvent::Beep(_)]), "{got:?}");
    }
}
