//! The detector of one call (stage A): frames in, verdicts out.
//!
//! # States
//!
//! ```text
//!              +-----------+  SIT ---------------------------> Unreachable
//!   frames --> | Listening |  beep ---------------------------> Machine, then MachineEndBeep
//!              +-----------+                                     after_beep after its end
//!                |   |   |    greeting > machine_speech, or
//!                |   |   +--  machine_utterances utterances --> Machine --+
//!                |   |                                                    v
//!                |   |                                          +------------------+
//!                |   |                                          | Machine          | beep: MachineEndBeep
//!                |   |                                          |  (greeting plays)| after_beep after it;
//!                |   |                                          +------------------+ greeting_end_silence
//!                |   |                                            of silence: MachineEndSilence;
//!                |   |                                            greeting_timeout: MachineEndTimeout
//!                |   +-- greeting <= human_max_greeting, then its silence ------> Human
//!                +------ no utterance by no_speech ------------------------------> NoSpeech
//!                        nothing by decision_timeout ----------------------------> Unknown
//! ```
//!
//! The silence that makes a greeting of at most `human_max_greeting` a
//! human depends on its length: a word or two (one utterance of at most
//! `human_quick_greeting`, "Hello?") waits `human_quick_silence`; a longer
//! one waits `human_verdict_by` minus its length (its first word to the
//! verdict), but at least `human_quick_silence` and at most
//! `human_silence`. A person who said "Hello, Maria speaking." slowly
//! does not wait longer for a reply than one who said "Hello?".
//!
//! A greeting longer than `human_max_greeting` but not a machine's, followed
//! by `human_silence`, is *undecided*: it is forgotten (the next utterance
//! starts a new greeting), and if neither speech nor a beep follows within
//! `undecided_silence` of its end, the verdict is `Unknown` at once (a
//! person who said "Hello, Maria speaking" and waits should not wait until
//! `decision_timeout`).
//! Every verdict but `Machine` ends the detection (`Done`): later frames
//! are not even analysed.
//!
//! # Timers
//!
//! There is no timer table: the call feeds a frame every 20 ms (silence
//! when no media arrived), and each frame checks the deadlines against its
//! own time. Times are from the detector's start, the start of the first
//! frame (the answer).
//!
//! | deadline | from | verdict |
//! |---|---|---|
//! | `no_speech` | the start, no utterance yet | `NoSpeech` |
//! | `human_quick_silence`, or `human_verdict_by` less the greeting, at most `human_silence` | the last sound of a short greeting | `Human` |
//! | `undecided_silence` | the last sound of an undecided greeting | `Unknown` |
//! | `decision_timeout` | the start | `Unknown` |
//! | `after_beep` | the end of the beep, after `Machine` | `MachineEndBeep` |
//! | `greeting_end_silence` | the last sound, after `Machine` | `MachineEndSilence` |
//! | `greeting_timeout` | the start, after `Machine` | `MachineEndTimeout` |

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::AmdConfig;
use crate::error::ConfigError;
use crate::frame::{Bank, FRAME_SAMPLES};
use crate::tone::{FRAME, ToneEvent, ToneTracker};
use crate::vad::{Greeting, Sound, Timing, Vad};
use crate::verdict::{Beep, Decision, Evidence, Sit, Verdict};

/// Where the detection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No verdict yet.
    Listening,
    /// `Machine` given; waiting for the greeting to end. `beep_due`: when
    /// `MachineEndBeep` is due, once a beep was heard.
    Machine { beep_due: Option<Duration> },
    /// The last verdict given.
    Done,
}

/// Answering-machine detection for one call, on its 8 kHz audio (see the
/// module docs for the rules).
///
/// ```
/// use std::time::{Duration, Instant};
/// use callbridge_amd::{AmdConfig, Detector, Verdict};
///
/// let mut amd = Detector::new(AmdConfig::default())?;
/// let t0 = Instant::now();
/// // Five seconds of silence, one frame every 20 ms.
/// for i in 1..=250u32 {
///     amd.push_frame(t0 + Duration::from_millis(20) * i, &[0i16; 160]);
/// }
/// let d = amd.poll_decision().expect("a verdict");
/// assert_eq!(d.verdict, Verdict::NoSpeech);
/// assert_eq!(d.evidence.decided_at, Duration::from_millis(4500));
/// assert!(amd.is_done());
/// # Ok::<(), callbridge_amd::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: AmdConfig,
    bank: Bank,
    vad: Vad,
    tones: ToneTracker,
    timing: Timing,
    /// The start of the first frame.
    origin: Option<Instant>,
    /// The end of the latest frame, from the origin.
    end: Duration,
    phase: Phase,
    verdict: Option<Verdict>,
    beep: Option<Beep>,
    sit: Option<Sit>,
    /// An undecided greeting was forgotten and no speech followed yet.
    undecided: bool,
    out: VecDeque<Decision>,
}

impl Detector {
    /// A detector with `cfg`.
    ///
    /// # Errors
    /// [`ConfigError`] when `cfg` does not validate.
    pub fn new(cfg: AmdConfig) -> Result<Detector, ConfigError> {
        cfg.validate()?;
        Ok(Detector {
            vad: Vad::new(),
            cfg,
            bank: Bank::new(),
            tones: ToneTracker::default(),
            timing: Timing::default(),
            origin: None,
            end: Duration::ZERO,
            phase: Phase::Listening,
            verdict: None,
            beep: None,
            sit: None,
            undecided: false,
            // Two decisions at most come from one frame; room for a caller
            // that polls late.
            out: VecDeque::with_capacity(4),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &AmdConfig {
        &self.cfg
    }

    /// One 20 ms frame of the callee's audio at 8 kHz, ending at `now`.
    /// Feed one every 20 ms from the answer on, silence when no media
    /// arrived: the deadlines are checked on each frame. The first frame
    /// starts the detector's clock (at `now` minus 20 ms); a `now` earlier
    /// than the previous one counts as the previous one. Allocates nothing.
    pub fn push_frame(&mut self, now: Instant, frame: &[i16; FRAME_SAMPLES]) {
        let origin = *self
            .origin
            .get_or_insert_with(|| now.checked_sub(FRAME).unwrap_or(now));
        self.end = now.saturating_duration_since(origin).max(self.end);
        if self.phase == Phase::Done {
            return;
        }
        let end = self.end;
        let stats = self.bank.analyze(frame);
        let tone = self.tones.on_frame(&self.cfg, end, &stats);
        let sound = if self.tones.tone_active() {
            Sound::Tone
        } else if self.vad.voiced(&self.cfg, &stats) {
            Sound::Voiced
        } else {
            Sound::Quiet
        };
        self.timing
            .on_frame(&self.cfg, end.saturating_sub(FRAME), end, sound);
        match self.phase {
            Phase::Listening => self.listening(end, tone),
            Phase::Machine { beep_due } => self.machine(end, tone, beep_due),
            Phase::Done => {}
        }
    }

    /// Another stage (the transcript's words, [`crate::WordEvidence`])
    /// decided `Machine` while this one was still listening: from now on
    /// the detector waits for the greeting's end as after its own
    /// `Machine` verdict (a beep, `greeting_end_silence`,
    /// `greeting_timeout`). No decision is queued for it; the latest
    /// verdict becomes `Machine`. Ignored once a verdict was given.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use callbridge_amd::{AmdConfig, Detector, Verdict};
    ///
    /// let mut amd = Detector::new(AmdConfig::default())?;
    /// let t0 = Instant::now();
    /// amd.push_frame(t0 + Duration::from_millis(20), &[0i16; 160]);
    /// amd.assume_machine();
    /// assert_eq!(amd.verdict(), Some(Verdict::Machine));
    /// // Two seconds of silence end the greeting.
    /// for i in 2..=110u32 {
    ///     amd.push_frame(t0 + Duration::from_millis(20) * i, &[0i16; 160]);
    /// }
    /// assert_eq!(amd.poll_decision().map(|d| d.verdict), Some(Verdict::MachineEndSilence));
    /// # Ok::<(), callbridge_amd::ConfigError>(())
    /// ```
    pub fn assume_machine(&mut self) {
        if self.phase == Phase::Listening {
            self.phase = Phase::Machine { beep_due: None };
            self.verdict = Some(Verdict::Machine);
        }
    }

    /// The next decision, oldest first.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.out.pop_front()
    }

    /// The latest verdict given (polled or not).
    #[must_use]
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// No verdict will follow: frames are no longer analysed.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The end of the latest frame, from the start.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.end
    }

    fn listening(&mut self, end: Duration, tone: Option<ToneEvent>) {
        let cfg = &self.cfg;
        match tone {
            Some(ToneEvent::Sit(sit)) => {
                self.sit = Some(sit);
                return self.decide(end, Verdict::Unreachable, Phase::Done);
            }
            Some(ToneEvent::Beep(beep)) => {
                self.beep = Some(beep);
                let beep_due = Some(beep.end.saturating_add(cfg.after_beep));
                self.decide(end, Verdict::Machine, Phase::Machine { beep_due });
                // A zero `after_beep` ends the greeting on the same frame.
                return self.machine(end, None, beep_due);
            }
            None => {}
        }
        if let Some(g) = self.timing.greeting() {
            if g.length() > cfg.machine_speech || g.utterances >= cfg.machine_utterances {
                return self.decide(end, Verdict::Machine, Phase::Machine { beep_due: None });
            }
            let quiet = !self.timing.speaking() && !self.tones.busy();
            let silence = self.timing.silence(end);
            if g.length() <= cfg.human_max_greeting {
                if quiet && silence >= human_wait(cfg, g) {
                    return self.decide(end, Verdict::Human, Phase::Done);
                }
            } else if quiet && silence >= cfg.human_silence {
                self.timing.reset_greeting();
                self.undecided = true;
            }
        } else if self.undecided
            && !self.timing.speaking()
            && !self.tones.busy()
            && self.timing.silence(end) >= cfg.undecided_silence
        {
            return self.decide(end, Verdict::Unknown, Phase::Done);
        }
        if self.timing.onset.is_none() && end >= cfg.no_speech && !self.tones.busy() {
            return self.decide(end, Verdict::NoSpeech, Phase::Done);
        }
        if end >= cfg.decision_timeout {
            self.decide(end, Verdict::Unknown, Phase::Done);
        }
    }

    fn machine(&mut self, end: Duration, tone: Option<ToneEvent>, beep_due: Option<Duration>) {
        let mut beep_due = beep_due;
        if let (None, Some(ToneEvent::Beep(beep))) = (beep_due, tone) {
            self.beep = Some(beep);
            beep_due = Some(beep.end.saturating_add(self.cfg.after_beep));
            self.phase = Phase::Machine { beep_due };
        }
        match beep_due {
            Some(due) if end >= due => {
                return self.decide(end, Verdict::MachineEndBeep, Phase::Done);
            }
            Some(_) => {}
            None => {
                if !self.timing.speaking()
                    && !self.tones.busy()
                    && self.timing.silence(end) >= self.cfg.greeting_end_silence
                {
                    return self.decide(end, Verdict::MachineEndSilence, Phase::Done);
                }
            }
        }
        if end >= self.cfg.greeting_timeout {
            self.decide(end, Verdict::MachineEndTimeout, Phase::Done);
        }
    }

    fn decide(&mut self, end: Duration, verdict: Verdict, next: Phase) {
        let greeting = self.timing.greeting();
        self.out.push_back(Decision {
            verdict,
            evidence: Evidence {
                decided_at: end,
                speech_onset: self.timing.onset,
                greeting: greeting.map_or(Duration::ZERO, |g| g.length()),
                utterances: greeting.map_or(0, |g| g.utterances),
                last_sound: self.timing.last_sound,
                beep: self.beep,
                sit: self.sit,
            },
        });
        self.verdict = Some(verdict);
        self.phase = next;
    }
}

/// The silence after greeting `g` (at most `human_max_greeting` long)
/// that makes it a person (see the module docs).
fn human_wait(cfg: &AmdConfig, g: Greeting) -> Duration {
    let quick = cfg.human_quick_silence.min(cfg.human_silence);
    if g.utterances == 1 && g.length() <= cfg.human_quick_greeting {
        quick
    } else if cfg.human_verdict_by.is_zero() {
        cfg.human_silence
    } else {
        // `quick` is at most `human_silence`: `clamp`'s bounds are in order.
        cfg.human_verdict_by
            .saturating_sub(g.length())
            .clamp(quick, cfg.human_silence)
    }
}

#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
