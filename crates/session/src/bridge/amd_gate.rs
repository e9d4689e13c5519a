//! Answering-machine detection as the call sees it, without IO (issue
//! 19): what happens to the model's audio until a verdict, and what each
//! verdict makes the call do.
//!
//! The call feeds the callee's 8 kHz frames from the answer on (one per
//! media tick: stage A, `callbridge_amd::Detector`) and the model's
//! transcript of the callee (stage B, `callbridge_amd::WordEvidence`),
//! and polls [`GateOut`]s.
//!
//! # States
//!
//! ```text
//!  +-----------+ human / unknown (as human): Release ----------------------> Released
//!  | Listening | no_speech, unreachable: End -------------------------------> Ended
//!  | (model    | machine, policy hangup: Discard, End(Machine) -------------> Ended
//!  |  audio    | machine, policy voicemail: Discard --+
//!  |  held)    |                                      v
//!  +-----------+                          +-------------------+ greeting_timeout: End(Machine)
//!                                         | AwaitGreetingEnd  | beep / silence: LeaveVoicemail
//!                                         | (model audio      |------------+
//!                                         |  dropped)         |            v
//!                                         +-------------------+   +-----------+ played to its end:
//!                                                                 | Voicemail |  End(VoicemailLeft)
//!                                                                 +-----------+ -----------> Ended
//! ```
//!
//! The first verdict of either stage decides. Stage B's `machine` makes
//! stage A wait for the greeting's end (`Detector::assume_machine`);
//! its `human` (a short first turn) releases the greeting at once.
//! While the model's audio is held or dropped nothing the model says
//! reaches the callee, and the callee's speech is no barge-in (nothing of
//! ours is playing to barge in on).
//!
//! A voicemail message is over when the playback has drained after it:
//! a file at once; a prompt once the model's turn that spoke it is
//! complete (a turn with audio after the message was asked for).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use callbridge_amd::{ConfigError, Decision, Detector, Evidence, Verdict, WordEvidence};

use crate::amd::{AmdSettings, MachinePolicy};
use crate::lifecycle::AmdEnd;

/// Which stage gave a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The acoustic detector.
    Acoustic,
    /// The transcript's words.
    Words,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Acoustic => "acoustic",
            Stage::Words => "words",
        }
    }
}

/// A verdict with what the call records of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recorded {
    pub verdict: Verdict,
    pub stage: Stage,
    /// Stage A's evidence (for a stage B verdict: only `decided_at`).
    pub evidence: Evidence,
    /// Words heard so far and the machine phrase, if any.
    pub words: u32,
    pub phrase: Option<String>,
}

/// What the gate tells the call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GateOut {
    /// A verdict: record it (event, metrics; the first one also on the
    /// session).
    Verdict(Recorded),
    /// Play the held model audio now (a person answered).
    Release,
    /// Drop the held model audio (a machine answered).
    Discard,
    /// The greeting ended: leave the voicemail message now.
    LeaveVoicemail,
    /// End the call.
    End(AmdEnd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Listening,
    AwaitGreetingEnd,
    /// The message is playing; `spoke`: the model's audio for it arrived
    /// (prompt), `complete`: nothing more of it will come.
    Voicemail {
        spoke: bool,
        complete: bool,
    },
    Released,
    Ended,
}

/// The detection of one call (see the module docs).
#[derive(Debug)]
pub(crate) struct AmdGate {
    detector: Detector,
    words: WordEvidence,
    unknown_is_human: bool,
    /// `None`: hang up on a machine; `Some(file)`: leave a voicemail, a
    /// file (true) or a prompt to the model (false).
    voicemail: Option<bool>,
    state: State,
    out: VecDeque<GateOut>,
}

impl AmdGate {
    /// A gate with `settings`.
    pub(crate) fn new(settings: &AmdSettings) -> Result<AmdGate, ConfigError> {
        Ok(AmdGate {
            detector: Detector::new(settings.acoustic.clone())?,
            words: WordEvidence::new(&settings.words, &settings.language)?,
            unknown_is_human: settings.unknown_is_human,
            voicemail: match &settings.policy {
                MachinePolicy::Hangup => None,
                MachinePolicy::Voicemail(m) => {
                    Some(matches!(m, crate::amd::VoicemailMessage::File(_)))
                }
            },
            state: State::Listening,
            out: VecDeque::with_capacity(4),
        })
    }

    /// The model's audio is held (no verdict yet).
    pub(crate) fn holds(&self) -> bool {
        self.state == State::Listening
    }

    /// The model's audio is dropped: a machine's greeting plays, or the
    /// voicemail message is a recording (the model's replies to the
    /// greeting must not follow it).
    pub(crate) fn drops(&self) -> bool {
        match self.state {
            State::AwaitGreetingEnd => true,
            State::Voicemail { .. } => self.voicemail == Some(true),
            _ => false,
        }
    }

    /// The callee's speech is no barge-in now (nothing of ours plays).
    pub(crate) fn mutes_barge_in(&self) -> bool {
        matches!(self.state, State::Listening | State::AwaitGreetingEnd)
    }

    /// Whether frames still matter.
    pub(crate) fn listening(&self) -> bool {
        matches!(self.state, State::Listening | State::AwaitGreetingEnd)
    }

    /// One 20 ms frame of the callee's audio, ending at `now`.
    pub(crate) fn on_frame(&mut self, now: Instant, pcm: &[i16; 160]) {
        if !self.listening() {
            return;
        }
        self.detector.push_frame(now, pcm);
        while let Some(d) = self.detector.poll_decision() {
            self.on_decision(d);
        }
    }

    /// More of the model's transcript of the callee; `finished`: the
    /// callee's turn ended.
    pub(crate) fn on_transcript(&mut self, text: &str, finished: bool) {
        if self.state != State::Listening {
            return;
        }
        let mut verdict = self.words.push_transcript(text);
        if verdict.is_none() && finished {
            verdict = self.words.end_of_turn();
        }
        let Some(verdict) = verdict else { return };
        let evidence = Evidence {
            decided_at: self.detector.elapsed(),
            ..Evidence::default()
        };
        if verdict == Verdict::Machine {
            self.detector.assume_machine();
        }
        self.decide(verdict, Stage::Words, evidence);
    }

    /// Model audio arrived for the voicemail message.
    pub(crate) fn on_model_audio(&mut self) {
        if let State::Voicemail { complete, .. } = self.state {
            self.state = State::Voicemail {
                spoke: true,
                complete,
            };
        }
    }

    /// The model's turn is complete; `busy`: playback still queued.
    pub(crate) fn on_model_turn_complete(&mut self, busy: bool) {
        if let State::Voicemail { spoke: true, .. } = self.state {
            self.state = State::Voicemail {
                spoke: true,
                complete: true,
            };
            if !busy {
                self.end(AmdEnd::VoicemailLeft);
            }
        }
    }

    /// The playback ran empty.
    pub(crate) fn on_playback_drained(&mut self) {
        if let State::Voicemail { complete: true, .. } = self.state {
            self.end(AmdEnd::VoicemailLeft);
        }
    }

    /// The next thing to do.
    pub(crate) fn poll(&mut self) -> Option<GateOut> {
        self.out.pop_front()
    }

    fn on_decision(&mut self, d: Decision) {
        match self.state {
            State::Listening => self.decide(d.verdict, Stage::Acoustic, d.evidence),
            State::AwaitGreetingEnd => {
                self.record(d.verdict, Stage::Acoustic, d.evidence);
                match d.verdict {
                    Verdict::MachineEndBeep | Verdict::MachineEndSilence => {
                        let file = self.voicemail == Some(true);
                        self.state = State::Voicemail {
                            spoke: file,
                            complete: file,
                        };
                        self.out.push_back(GateOut::LeaveVoicemail);
                    }
                    _ => self.end(AmdEnd::Machine),
                }
            }
            _ => {}
        }
    }

    /// The first verdict.
    fn decide(&mut self, verdict: Verdict, stage: Stage, evidence: Evidence) {
        self.record(verdict, stage, evidence);
        match verdict {
            Verdict::Human => self.release(),
            Verdict::Unknown if self.unknown_is_human => self.release(),
            Verdict::Machine => {
                self.out.push_back(GateOut::Discard);
                match self.voicemail {
                    None => self.end(AmdEnd::Machine),
                    Some(_) => self.state = State::AwaitGreetingEnd,
                }
            }
            Verdict::Unknown => {
                // Taken for a machine whose greeting is over.
                self.out.push_back(GateOut::Discard);
                match self.voicemail {
                    None => self.end(AmdEnd::Machine),
                    Some(file) => {
                        self.state = State::Voicemail {
                            spoke: file,
                            complete: file,
                        };
                        self.out.push_back(GateOut::LeaveVoicemail);
                    }
                }
            }
            Verdict::NoSpeech => {
                self.out.push_back(GateOut::Discard);
                self.end(AmdEnd::NoSpeech);
            }
            Verdict::Unreachable => {
                self.out.push_back(GateOut::Discard);
                self.end(AmdEnd::Unreachable);
            }
            // A greeting's end before any machine verdict cannot happen
            // (the detector's order); a future verdict is taken as human.
            _ => self.release(),
        }
    }

    fn record(&mut self, verdict: Verdict, stage: Stage, evidence: Evidence) {
        self.out.push_back(GateOut::Verdict(Recorded {
            verdict,
            stage,
            evidence,
            words: self.words.words(),
            phrase: self.words.matched_phrase().map(str::to_owned),
        }));
    }

    fn release(&mut self) {
        self.state = State::Released;
        self.out.push_back(GateOut::Release);
    }

    fn end(&mut self, why: AmdEnd) {
        self.state = State::Ended;
        self.out.push_back(GateOut::End(why));
    }
}

/// A duration in whole ms (the events' unit).
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "amd_gate_tests.rs"]
mod tests;
