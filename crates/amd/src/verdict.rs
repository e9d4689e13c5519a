//! What the detector decides and why: [`Verdict`], and the [`Evidence`]
//! behind it (times are from the detector's start, the answer).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A decision about who answered.
///
/// A call gets one *first* verdict (every variant but the `MachineEnd*`
/// ones), which is final; after `Machine` it gets exactly one `MachineEnd*`
/// verdict when the greeting ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// A person: a short greeting, then silence.
    Human,
    /// An answering machine or voicemail (provisional: its greeting is
    /// still playing).
    Machine,
    /// The machine's greeting ended with a beep (`after_beep` ago).
    MachineEndBeep,
    /// The machine's greeting ended in silence (`greeting_end_silence`).
    MachineEndSilence,
    /// The machine's greeting had not ended by `greeting_timeout`.
    MachineEndTimeout,
    /// Nothing was said for `no_speech` after the answer.
    NoSpeech,
    /// A special information tone: the number is unreachable.
    Unreachable,
    /// No decision by `decision_timeout` (the caller treats it as a human
    /// unless configured otherwise).
    Unknown,
}

impl Verdict {
    /// Every verdict, first verdicts then machine ends (the metrics
    /// export each from start).
    pub const ALL: [Verdict; 8] = [
        Verdict::Human,
        Verdict::Machine,
        Verdict::NoSpeech,
        Verdict::Unreachable,
        Verdict::Unknown,
        Verdict::MachineEndBeep,
        Verdict::MachineEndSilence,
        Verdict::MachineEndTimeout,
    ];

    /// The snake-case name (the metrics label and the event name).
    ///
    /// ```
    /// assert_eq!(callbridge_amd::Verdict::MachineEndBeep.as_str(), "machine_end_beep");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Machine => "machine",
            Verdict::MachineEndBeep => "machine_end_beep",
            Verdict::MachineEndSilence => "machine_end_silence",
            Verdict::MachineEndTimeout => "machine_end_timeout",
            Verdict::NoSpeech => "no_speech",
            Verdict::Unreachable => "unreachable",
            Verdict::Unknown => "unknown",
        }
    }

    /// Whether this is the end of a machine's greeting (the only verdicts
    /// that may follow another).
    #[must_use]
    pub fn is_machine_end(self) -> bool {
        matches!(
            self,
            Verdict::MachineEndBeep | Verdict::MachineEndSilence | Verdict::MachineEndTimeout
        )
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A beep: one stable tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beep {
    /// Its mean frequency (Hz).
    pub frequency_hz: f32,
    /// When it started.
    pub start: Duration,
    /// When it ended.
    pub end: Duration,
    /// Its mean level (dBFS).
    pub level_dbfs: f32,
}

/// A special information tone: three rising tones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sit {
    /// The three tones' mean frequencies (Hz).
    pub frequencies_hz: [f32; 3],
    /// When the first tone started.
    pub start: Duration,
    /// When the third tone ended.
    pub end: Duration,
}

/// What the detector had heard when it decided. Times are from the start
/// (the first frame's start).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// When the verdict was given.
    pub decided_at: Duration,
    /// The start of the first utterance, if any.
    pub speech_onset: Option<Duration>,
    /// The current greeting: from its first utterance's start to its last
    /// voiced frame (zero if none).
    pub greeting: Duration,
    /// Utterances in the current greeting.
    pub utterances: u32,
    /// The end of the last utterance or tone before the decision.
    pub last_sound: Option<Duration>,
    /// The beep, if one was heard.
    pub beep: Option<Beep>,
    /// The SIT, if one was heard.
    pub sit: Option<Sit>,
}

/// One verdict with its evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub evidence: Evidence,
}
