//! The call task's side of answering-machine detection (issue 19): the
//! callee's frames and transcript fed to the sans-IO `amd_gate::AmdGate`,
//! and its outputs carried out: the held model audio played or dropped,
//! the voicemail message left, the verdicts recorded (an event each, the
//! metrics), the call ended.

use std::time::Duration;

use callbridge_amd::Verdict;
use callbridge_crm_store::{AmdVerdict, EventKind, MachineEnd, SessionUpdate};
use callbridge_llm_bridge::AudioChunk;
use serde_json::json;
use tracing::{info, warn};

use super::Call;
use super::amd_gate::{GateOut, Recorded, ms};
use super::transport::Transport;
use crate::amd::{MachinePolicy, VoicemailMessage};
use crate::lifecycle::{AmdEnd, Command, Input, MediaInput};
use crate::store_writer::StoreOp;

/// The most model audio held before a verdict (the detection decides
/// within `decision_timeout`, 8 s by default): more is dropped.
const MAX_HELD: Duration = Duration::from_secs(30);

/// The call's detection work outside the gate: the model's audio held
/// until the verdict, a prompt voicemail due, the verdict for the session
/// row.
#[derive(Debug, Default)]
pub(super) struct Held {
    chunks: Vec<AudioChunk>,
    len: Duration,
    /// The voicemail prompt is to be sent to the model (an async send,
    /// done by the call's pump).
    prompt_due: bool,
    /// The verdict's columns of the session row, not yet queued to the
    /// store (an async send, done by the call's pump).
    row: Option<SessionUpdate>,
}

impl Held {
    /// Drops the held audio (the rest stays).
    fn drop_audio(&mut self) {
        self.chunks = Vec::new();
        self.len = Duration::ZERO;
    }
}

impl Call {
    /// One tick of the callee's audio, from the answer on.
    pub(super) fn amd_frame(&mut self, pcm: &[i16; 160]) {
        let Some(g) = &mut self.amd else { return };
        if self.answered_at.is_none() || !g.listening() {
            return;
        }
        g.on_frame(super::now(), pcm);
        self.run_amd();
    }

    /// The model's transcript of the callee (stage B).
    pub(super) fn amd_transcript(&mut self, text: &str, finished: bool) {
        let Some(g) = &mut self.amd else { return };
        g.on_transcript(text, finished);
        self.run_amd();
    }

    /// Whether the callee's sustained speech is no barge-in now (nothing
    /// of ours plays while the detection decides).
    pub(super) fn amd_mutes_barge_in(&self) -> bool {
        self.amd.as_ref().is_some_and(|g| g.mutes_barge_in())
    }

    /// The model's audio: back when it plays now; held or dropped while
    /// the detection decides or a machine's greeting plays.
    pub(super) fn amd_model_audio(&mut self, chunk: AudioChunk) -> Option<AudioChunk> {
        let Some(g) = &mut self.amd else {
            return Some(chunk);
        };
        if g.holds() {
            let d = chunk.duration();
            if self.held.len + d <= MAX_HELD {
                self.held.len += d;
                self.held.chunks.push(chunk);
            }
            return None;
        }
        if g.drops() {
            return None;
        }
        g.on_model_audio();
        Some(chunk)
    }

    /// The model's reply was interrupted: a held reply is void (the model
    /// answers anew).
    pub(super) fn amd_model_interrupted(&mut self) {
        if self.amd.as_ref().is_some_and(|g| g.holds()) {
            self.held.drop_audio();
        }
    }

    /// The model's turn is complete.
    pub(super) fn amd_turn_complete(&mut self) {
        let busy = self.playback.is_busy();
        if let Some(g) = &mut self.amd {
            g.on_model_turn_complete(busy);
            self.run_amd();
        }
    }

    /// The playback ran empty.
    pub(super) fn amd_playback_drained(&mut self) {
        if let Some(g) = &mut self.amd {
            g.on_playback_drained();
            self.run_amd();
        }
    }

    /// Carries out what the gate decided.
    fn run_amd(&mut self) {
        while let Some(o) = self.amd.as_mut().and_then(|g| g.poll()) {
            match o {
                GateOut::Verdict(r) => self.amd_record(&r),
                GateOut::Release => {
                    let held = std::mem::take(&mut self.held.chunks);
                    self.held.len = Duration::ZERO;
                    for chunk in &held {
                        self.play_model_audio(chunk);
                    }
                }
                GateOut::Discard => {
                    self.held.drop_audio();
                    if !self.playback.is_busy() {
                        // The machine counted the held audio as queued.
                        self.inputs
                            .push_back(Input::Media(MediaInput::PlaybackDrained));
                    }
                }
                GateOut::LeaveVoicemail => self.leave_voicemail(),
                GateOut::End(why) => {
                    self.inputs.push_back(Input::Command(Command::AmdEnd(why)));
                }
            }
        }
    }

    /// Queues model audio for playback (the reply playing, or a new one);
    /// false: dropped, the rest of a reply the caller barged in on.
    pub(super) fn play_model_audio(&mut self, chunk: &AudioChunk) -> bool {
        let sent = self.stream.as_ref().and_then(Transport::frames_sent);
        let ahead = self.playback.frames_ahead();
        if !self
            .playback
            .push_model_audio(sent, |v| chunk.decode_into(v))
        {
            return false;
        }
        self.transcript.agent_audio(super::now());
        self.replies.on_model_audio(ahead);
        true
    }

    fn leave_voicemail(&mut self) {
        match &self.shared.cfg.amd.policy {
            MachinePolicy::Voicemail(VoicemailMessage::File(_)) => {
                match self.shared.voicemail.clone() {
                    Some(clip) => {
                        self.replies.on_announcement(self.playback.frames_ahead());
                        self.playback.announce(clip.samples());
                        self.event(
                            EventKind::Note,
                            json!({"voicemail": "file", "duration_ms": ms(clip.duration())}),
                        );
                    }
                    None => self.voicemail_failed("no voicemail file loaded"),
                }
            }
            MachinePolicy::Voicemail(VoicemailMessage::Prompt(_)) => self.held.prompt_due = true,
            MachinePolicy::Hangup => self.voicemail_failed("the policy is hangup"),
        }
    }

    /// Queues the verdict's columns of the session row, once there are
    /// any.
    pub(super) async fn write_amd_row(&mut self) {
        if let Some(u) = self.held.row.take() {
            self.shared
                .store
                .send(StoreOp::Update(self.id, Box::new(u)))
                .await;
        }
    }

    /// Sends the voicemail prompt to the model once it is due.
    pub(super) async fn leave_voicemail_prompt(&mut self) {
        if !std::mem::take(&mut self.held.prompt_due) {
            return;
        }
        let MachinePolicy::Voicemail(VoicemailMessage::Prompt(text)) = &self.shared.cfg.amd.policy
        else {
            return;
        };
        let text = text.clone();
        let sent = match &mut self.model {
            Some(m) => m.send_text(text).await.map_err(|e| e.to_string()),
            None => Err("no model session".to_owned()),
        };
        match sent {
            Ok(()) => self.event(EventKind::Note, json!({"voicemail": "prompt"})),
            Err(e) => {
                warn!(error = %e, "voicemail prompt not sent");
                self.voicemail_failed("the voicemail prompt could not be sent");
            }
        }
    }

    fn voicemail_failed(&mut self, why: &'static str) {
        warn!(why, "voicemail not left; hanging up");
        self.event(EventKind::Note, json!({"voicemail_failed": why}));
        self.inputs
            .push_back(Input::Command(Command::AmdEnd(AmdEnd::Machine)));
    }

    /// A verdict: its metrics, a log line and an event with its evidence.
    fn amd_record(&mut self, r: &Recorded) {
        let e = &r.evidence;
        let first = !r.verdict.is_machine_end();
        self.shared
            .metrics
            .amd_verdict(r.verdict.as_str(), first.then_some(e.decided_at));
        info!(
            verdict = r.verdict.as_str(),
            stage = r.stage.as_str(),
            decided_ms = ms(e.decided_at),
            "answering-machine detection"
        );
        let detail = json!({
            "amd": r.verdict.as_str(),
            "first": first,
            "stage": r.stage.as_str(),
            "decided_ms": ms(e.decided_at),
            "speech_onset_ms": e.speech_onset.map(ms),
            "greeting_ms": ms(e.greeting),
            "utterances": e.utterances,
            "last_sound_ms": e.last_sound.map(ms),
            "beep": e.beep.map(|b| json!({
                "hz": b.frequency_hz.round(),
                "start_ms": ms(b.start),
                "end_ms": ms(b.end),
                "dbfs": b.level_dbfs.round(),
            })),
            "sit_hz": e.sit.map(|s| s.frequencies_hz.map(f32::round)),
            "words": r.words,
            "phrase": r.phrase,
        });
        self.publish(crate::events::CallEvent::AmdVerdict(detail.clone()));
        self.event(EventKind::Note, detail);
        let row = self.held.row.get_or_insert_with(SessionUpdate::default);
        match stored(r.verdict) {
            Stored::Verdict(v) => row.amd_verdict = Some((v, e.decided_at)),
            Stored::MachineEnd(end) => row.amd_machine_end = Some(end),
        }
    }
}

/// A verdict as the session row keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// The first verdict.
    Verdict(AmdVerdict),
    /// How a machine's greeting ended.
    MachineEnd(MachineEnd),
}

/// The session row's name for `v`.
fn stored(v: Verdict) -> Stored {
    match v {
        Verdict::Human => Stored::Verdict(AmdVerdict::Human),
        Verdict::Machine => Stored::Verdict(AmdVerdict::Machine),
        Verdict::NoSpeech => Stored::Verdict(AmdVerdict::NoSpeech),
        Verdict::Unreachable => Stored::Verdict(AmdVerdict::Unreachable),
        Verdict::MachineEndBeep => Stored::MachineEnd(MachineEnd::Beep),
        Verdict::MachineEndSilence => Stored::MachineEnd(MachineEnd::Silence),
        Verdict::MachineEndTimeout => Stored::MachineEnd(MachineEnd::Timeout),
        Verdict::Unknown => Stored::Verdict(AmdVerdict::Unknown),
        // `Verdict` is non-exhaustive: a verdict added later is stored as
        // no decision until the store knows it.
        _ => Stored::Verdict(AmdVerdict::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verdict_has_its_stored_name() {
        for v in Verdict::ALL {
            let want = match v.as_str().strip_prefix("machine_end_") {
                Some(end) => Stored::MachineEnd(end.parse().unwrap()),
                None => Stored::Verdict(v.as_str().parse().unwrap()),
            };
            assert_eq!(stored(v), want, "{v}");
        }
    }
}
