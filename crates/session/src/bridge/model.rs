//! The call task's model session: opening it (`OpenModel`), turning its
//! events into machine inputs, playback and transcript, telling it what
//! the call decided (playback positions, barge-in), and closing it.

use callbridge_crm_store::EventKind;
use callbridge_llm_bridge::{ModelEvent, ModelSession, ToolResult};
use serde_json::json;
use tracing::{debug, info, warn};

use super::Call;
use super::audio::Uplink;
use super::link::ToModel;
use crate::dial_targets::DialRefused;
use crate::gauges::Gauge;
use crate::lifecycle::{Input, MediaInput, ModelInput, TransferTarget};

impl Call {
    pub(super) fn open_model(&mut self) {
        let Some(cfg) = self.model_config.take() else {
            warn!("OpenModel a second time refused");
            return;
        };
        // The profile's provider, else the agent's own.
        let model = match &self.profile.client {
            Some(c) => std::sync::Arc::clone(&c.client),
            None => std::sync::Arc::clone(&self.shared.model),
        };
        let rate = match model.input_format(&cfg) {
            callbridge_llm_bridge::AudioFormat::Pcm16 { rate } => rate.hz(),
            _ => 8000,
        };
        match Uplink::new(rate) {
            Ok(u) => self.uplink = Some(u),
            Err(e) => warn!(error = %e, "unsupported model input rate; sending 8 kHz"),
        }
        self.model_guard = Some(self.shared.gauges.hold(Gauge::ModelSession));
        self.link.opening();
        let meta = self.metadata.clone();
        self.opening = Some(Box::pin(async move { model.open(cfg, meta).await }));
    }

    pub(super) fn on_opened(&mut self, r: Result<ModelSession, callbridge_llm_bridge::Error>) {
        match r {
            Ok(m) => {
                self.link.opened(true);
                self.metrics.model_opened(true);
                self.model = Some(m);
                self.event(EventKind::Model, json!({"ready": true}));
                self.inputs.push_back(Input::Model(ModelInput::Ready));
            }
            Err(e) => {
                self.link.opened(false);
                self.metrics.model_opened(false);
                warn!(error = %e, "model session could not be opened");
                self.event(EventKind::Model, json!({"open_failed": e.to_string()}));
                self.model_guard = None;
                self.inputs
                    .push_back(Input::Model(ModelInput::Error { fatal: true }));
            }
        }
    }

    pub(super) async fn close_model(&mut self) {
        self.opening = None;
        let clean = match self.model.take() {
            Some(m) => {
                let o = m.close().await;
                debug!(clean = o.clean, reason = %o.reason, "model session closed");
                self.link.closed(o.clean)
            }
            None => false,
        };
        self.model_guard = None;
        self.inputs
            .push_back(Input::Model(ModelInput::Closed { clean }));
    }

    pub(super) async fn on_model(&mut self, ev: Option<ModelEvent>) {
        let Some(ev) = ev else {
            self.link.events_ended();
            return;
        };
        self.link.on_event(&ev);
        let now = super::now();
        let input = match ev {
            // A model that failed (a stalled one that wakes up) must not
            // talk over the apology.
            ModelEvent::Audio(_)
                if self.machine.end_reason() == Some(crate::lifecycle::EndReason::ModelFailure) =>
            {
                return;
            }
            ModelEvent::Audio(chunk) => {
                // Held or dropped while answering-machine detection
                // decides: the machine still learns the model replied.
                if let Some(chunk) = self.amd_model_audio(chunk)
                    && !self.play_model_audio(&chunk)
                {
                    // The rest of a reply the caller barged in on.
                    return;
                }
                ModelInput::Audio
            }
            ModelEvent::InputTranscript { text, finished } => {
                self.amd_transcript(&text, finished);
                self.transcript.caller_piece(now, &text, finished);
                self.publish(crate::events::CallEvent::TranscriptDelta { caller: true, text });
                self.inputs
                    .push_back(Input::Media(MediaInput::CallerSpeech));
                return;
            }
            ModelEvent::OutputTranscript { text, finished } => {
                if !self.playback.is_muted() {
                    self.transcript.agent_piece(now, &text, finished);
                    self.publish(crate::events::CallEvent::TranscriptDelta {
                        caller: false,
                        text,
                    });
                }
                return;
            }
            ModelEvent::GenerationComplete => {
                self.playback.on_reply_over();
                return;
            }
            ModelEvent::TurnComplete => {
                self.replies.on_turn_end();
                self.playback.flush_partial();
                self.playback.on_reply_over();
                self.transcript.turn_complete(now);
                self.amd_turn_complete();
                ModelInput::TurnComplete
            }
            ModelEvent::Interrupted => {
                self.amd_model_interrupted();
                self.replies.on_turn_end();
                self.playback.on_reply_over();
                self.transcript.interrupted(now);
                ModelInput::Interrupted
            }
            ModelEvent::EndCall { id, .. } => {
                self.event(EventKind::ToolCall, json!({"tool": "end_call"}));
                if let Some(m) = &mut self.model {
                    let _ = m
                        .send_tool_result(id, ToolResult::Ok(json!({"status": "ending"})))
                        .await;
                }
                ModelInput::EndCall
            }
            ModelEvent::TransferCall {
                id, target, number, ..
            } => {
                // The one dial check: nothing reaches the REFER unless the
                // operator listed it (toll fraud, issue 14).
                let checked = self
                    .profile
                    .transfer_targets
                    .check(&target, number.as_deref())
                    .and_then(|a| {
                        TransferTarget::new(&a.target)
                            .map(|t| (t, a.name))
                            .ok_or(DialRefused::NotListed)
                    });
                match checked {
                    Ok((to, name)) => {
                        self.event(
                            EventKind::ToolCall,
                            json!({"tool": "transfer_call", "target": name}),
                        );
                        self.link.transfer_requested(id);
                        ModelInput::TransferCall { target: to }
                    }
                    Err(why) => {
                        self.refuse_transfer(id, &target, why).await;
                        return;
                    }
                }
            }
            ModelEvent::ToolCall(call) => {
                self.on_tool_call(call).await;
                return;
            }
            ModelEvent::ToolCallCancelled { ids } => {
                self.on_tools_cancelled(&ids);
                return;
            }
            ModelEvent::GoingAway { .. } => ModelInput::GoingAway,
            ModelEvent::Reconnecting { reason } => {
                // The reply in flight is lost with the old connection.
                self.playback.on_reply_over();
                warn!(%reason, "model connection dropped; the session is resuming");
                self.event(
                    EventKind::Note,
                    json!({"model_reconnecting": reason.to_string()}),
                );
                ModelInput::Reconnecting
            }
            ModelEvent::Resumed => {
                self.metrics.model_resumed();
                self.event(EventKind::Note, json!({"model_resumed": true}));
                return;
            }
            ModelEvent::CallerTurnEnded => {
                self.transcript.caller_turn_ended(now);
                ModelInput::CallerTurnEnded
            }
            ModelEvent::Error { kind, .. } => {
                self.event(EventKind::Model, json!({"error": format!("{kind:?}")}));
                ModelInput::Error { fatal: false }
            }
            // Token usage (issue 22).
            ModelEvent::Usage(u) => {
                self.on_model_usage(&u, crate::metrics::TokenPurpose::Call);
                return;
            }
            ModelEvent::DelegationUsage(u) => {
                self.on_model_usage(&u, crate::metrics::TokenPurpose::Delegation);
                return;
            }
            ModelEvent::AudioUsage { total } => {
                self.usage.on_audio(total);
                return;
            }
            ModelEvent::Closed { reason, clean } => {
                info!(%reason, clean, "model session closed");
                self.event(
                    EventKind::Model,
                    json!({"closed": reason.to_string(), "clean": clean}),
                );
                ModelInput::Closed { clean }
            }
            _ => return,
        };
        self.inputs.push_back(Input::Model(input));
    }

    /// Sends what the model link has for the session (never waits).
    pub(super) fn tell_model(&mut self) {
        while let Some(msg) = self.link.poll_send() {
            let Some(m) = &mut self.model else { continue };
            match msg {
                ToModel::Progress(played) => m.playback_progress(played),
                ToModel::Interrupt(played) => m.interrupt(played),
            }
        }
    }
}
