//! Voice activity: is a frame voiced, and how do voiced frames group into
//! utterances and a greeting.
//!
//! # Voiced frames
//!
//! A frame is voiced when all three hold:
//! - its level is at least `speech_min_dbfs` (-45 dBFS: quiet speech, well
//!   above a G.711 line's idle noise);
//! - it is at least `speech_snr_db` (9 dB) above the *noise floor*: the
//!   lowest frame level of the last 50 frames (1 s; minimum
//!   statistics, after Martin 2001). A voice pauses between words and
//!   phrases far more often than once a second, so the minimum is the line
//!   between them; steady noise sits at the floor and is never voiced, from
//!   the first frame on. The window starts empty: a voice that starts on
//!   the very first frame is heard from its first pause on (a phone always
//!   gives a few frames between the answer and the first word);
//! - its zero-crossing rate is at most `speech_zcr_max` (0.5 per sample:
//!   hiss and crackle cross zero more often than any voice).
//!
//! A frame that belongs to a tone (see [`crate::tone`]) is neither voiced
//! nor silence.
//!
//! # Utterances and the greeting
//!
//! An *utterance* is voiced frames with no gap of `utterance_gap` (300 ms)
//! or more between them; one shorter than `min_utterance` (100 ms) is a
//! click and is dropped. The *greeting* starts with the first utterance
//! and lasts while no gap of `human_silence` (800 ms) opens: its length
//! (first voiced frame to last) and its utterance count drive the human
//! and machine rules in [`crate::detector`].

use std::time::Duration;

use crate::config::AmdConfig;
use crate::frame::FrameStats;

/// Frames in the noise floor's window (1 s).
pub(crate) const FLOOR_FRAMES: usize = 50;

/// The noise floor and the voiced-frame test.
#[derive(Debug, Clone)]
pub(crate) struct Vad {
    window: [f32; FLOOR_FRAMES],
    next: usize,
}

impl Vad {
    pub(crate) fn new() -> Vad {
        Vad {
            window: [f32::INFINITY; FLOOR_FRAMES],
            next: 0,
        }
    }

    /// The current noise floor (dBFS).
    pub(crate) fn floor(&self) -> f32 {
        self.window.iter().copied().fold(f32::INFINITY, f32::min)
    }

    /// Whether the frame is voiced; then records its level.
    pub(crate) fn voiced(&mut self, cfg: &AmdConfig, stats: &FrameStats) -> bool {
        let floor = self.floor();
        self.window[self.next] = stats.level_dbfs;
        self.next = (self.next + 1) % FLOOR_FRAMES;
        stats.level_dbfs >= cfg.speech_min_dbfs
            && stats.level_dbfs >= floor + cfg.speech_snr_db
            && stats.zcr <= cfg.speech_zcr_max
    }
}

/// The utterance in progress.
#[derive(Debug, Clone, Copy)]
struct Utterance {
    start: Duration,
    last_voiced: Duration,
    /// Long enough to count (`min_utterance`).
    counted: bool,
}

/// The greeting in progress (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Greeting {
    /// Its first utterance's start.
    pub onset: Duration,
    /// Its last voiced frame's end.
    pub last_voiced: Duration,
    /// Utterances counted.
    pub utterances: u32,
}

impl Greeting {
    /// First voiced frame to last.
    pub(crate) fn length(&self) -> Duration {
        self.last_voiced.saturating_sub(self.onset)
    }
}

/// What a frame is, for the timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sound {
    Voiced,
    Tone,
    Quiet,
}

/// Utterances and the greeting, frame by frame.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timing {
    utterance: Option<Utterance>,
    greeting: Option<Greeting>,
    /// The first counted utterance's start.
    pub onset: Option<Duration>,
    /// The end of the last counted voiced frame or tone frame.
    pub last_sound: Option<Duration>,
}

impl Timing {
    pub(crate) fn greeting(&self) -> Option<Greeting> {
        self.greeting
    }

    /// A counted utterance is in progress (its gap not yet reached).
    pub(crate) fn speaking(&self) -> bool {
        self.utterance.is_some_and(|u| u.counted)
    }

    /// Forgets the greeting (a long one followed by silence: the next
    /// utterance starts a new one).
    pub(crate) fn reset_greeting(&mut self) {
        self.greeting = None;
    }

    /// Silence since the last sound, at `end` (since the start if none).
    pub(crate) fn silence(&self, end: Duration) -> Duration {
        end.saturating_sub(self.last_sound.unwrap_or(Duration::ZERO))
    }

    /// One frame `[start, end)`.
    pub(crate) fn on_frame(
        &mut self,
        cfg: &AmdConfig,
        start: Duration,
        end: Duration,
        sound: Sound,
    ) {
        match sound {
            Sound::Voiced => {
                let u = self.utterance.get_or_insert(Utterance {
                    start,
                    last_voiced: end,
                    counted: false,
                });
                u.last_voiced = end;
                if !u.counted && end.saturating_sub(u.start) >= cfg.min_utterance {
                    u.counted = true;
                    self.onset.get_or_insert(u.start);
                    match &mut self.greeting {
                        Some(g) => g.utterances = g.utterances.saturating_add(1),
                        None => {
                            self.greeting = Some(Greeting {
                                onset: u.start,
                                last_voiced: end,
                                utterances: 1,
                            });
                        }
                    }
                }
                if u.counted {
                    self.last_sound = Some(end);
                    if let Some(g) = &mut self.greeting {
                        g.last_voiced = end;
                    }
                }
            }
            Sound::Tone | Sound::Quiet => {
                if sound == Sound::Tone {
                    self.last_sound = Some(end);
                }
                if let Some(u) = self.utterance
                    && end.saturating_sub(u.last_voiced) >= cfg.utterance_gap
                {
                    self.utterance = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Bank;
    use crate::frame::signal::{noise, speech};
    use crate::tone::FRAME;

    #[test]
    fn speech_over_steady_noise_is_voiced_and_the_noise_is_not() {
        let cfg = AmdConfig::default();
        let bank = Bank::new();
        let mut vad = Vad::new();
        let mut voiced_noise = 0;
        for i in 0..150 {
            if vad.voiced(&cfg, &bank.analyze(&noise(-42.0, i, 5))) && i >= FLOOR_FRAMES {
                voiced_noise += 1;
            }
        }
        assert_eq!(voiced_noise, 0, "floor {}", vad.floor());
        let voiced = (0..25)
            .filter(|&i| {
                let s = speech(130.0, -18.0, i);
                let n = noise(-42.0, i, 6);
                let mix: [i16; 160] = std::array::from_fn(|k| s[k].saturating_add(n[k]));
                vad.voiced(&cfg, &bank.analyze(&mix))
            })
            .count();
        // The speech's 4 Hz syllables dip 20 dB: about half its frames.
        assert!(voiced >= 10, "{voiced} of 25");
    }

    #[test]
    fn speech_after_five_frames_of_silence_is_heard_from_its_first_frame() {
        let cfg = AmdConfig::default();
        let bank = Bank::new();
        let mut vad = Vad::new();
        for _ in 0..5 {
            assert!(!vad.voiced(&cfg, &bank.analyze(&[0; 160])));
        }
        assert!(vad.voiced(&cfg, &bank.analyze(&speech(200.0, -20.0, 1))));
    }

    #[test]
    fn loud_hiss_is_not_voiced() {
        let cfg = AmdConfig::default();
        let bank = Bank::new();
        let mut vad = Vad::new();
        assert!(!vad.voiced(&cfg, &bank.analyze(&noise(-10.0, 0, 1))));
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Feeds 20 ms frames: `pattern` characters 'v' voiced, 't' tone, '.' quiet.
    fn timing(pattern: &str) -> Timing {
        let cfg = AmdConfig::default();
        let mut t = Timing::default();
        for (i, c) in pattern.chars().enumerate() {
            let end = FRAME * (i as u32 + 1);
            let sound = match c {
                'v' => Sound::Voiced,
                't' => Sound::Tone,
                _ => Sound::Quiet,
            };
            t.on_frame(&cfg, end - FRAME, end, sound);
        }
        t
    }

    #[test]
    fn a_click_is_not_an_utterance() {
        let t = timing("....vvvv..........");
        assert_eq!(t.greeting(), None);
        assert_eq!(t.onset, None);
        assert_eq!(t.last_sound, None);
    }

    #[test]
    fn short_pauses_stay_inside_one_utterance_and_long_ones_split() {
        // 200 ms voiced, 200 ms pause (inside), 200 ms voiced.
        let t = timing("vvvvvvvvvv..........vvvvvvvvvv");
        let g = t.greeting().unwrap();
        assert_eq!(g.utterances, 1);
        assert_eq!(g.onset, at(0));
        assert_eq!(g.length(), at(600));
        // 200 ms voiced, 400 ms pause (a gap), 200 ms voiced.
        let t = timing("vvvvvvvvvv....................vvvvvvvvvv");
        assert_eq!(t.greeting().unwrap().utterances, 2);
    }

    #[test]
    fn tones_are_sound_but_not_speech() {
        let t = timing("....tttttttttt....");
        assert_eq!(t.greeting(), None);
        assert_eq!(t.last_sound, Some(at(280)));
        assert_eq!(t.silence(at(360)), at(80));
    }
}
