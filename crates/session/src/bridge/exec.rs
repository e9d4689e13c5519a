//! The call task's handlers: executing the machine's actions, and turning
//! media and model events into machine inputs (the audio paths live in
//! [`super::audio`]).

use super::transport::{Transport, TransportEvent};
use callbridge_crm_store::{
    EventKind, Finish, NewEvent, NewTurn, SessionState, SessionUpdate, Speaker,
};
use callbridge_llm_bridge::{AudioFrame, ModelEvent, ModelSession, SampleRate, ToolResult};
use callbridge_sip::StatusCode;
use serde_json::json;
use tracing::{debug, info, warn};

use super::audio::Uplink;
use super::{Call, send_refer};
use crate::dial_targets::DialRefused;
use crate::gauges::Gauge;
use crate::lifecycle::{
    Action, EndOutcome, Input, MediaInput, ModelInput, SipInput, StoreState, TransferTarget,
};
use crate::metrics::call::SPEECH_RMS;
use crate::store_writer::StoreOp;
use callbridge_audio::level::rms;
use callbridge_rtp::recorder::CallRecorder;

/// Ticks between two `CallerSpeech` inputs (the no-speech timer needs no more).
const SPEECH_EVERY: u32 = 10;
/// Ticks between two playback progress reports to the model (100 ms).
const PROGRESS_EVERY: u64 = 5;
/// Ticks between two store batch flushes (1 s).
const FLUSH_EVERY: u64 = 50;

impl Call {
    pub(super) async fn execute(&mut self, action: Action) {
        debug!(?action, "action");
        let sip = self.shared.sip.clone();
        match action {
            Action::WriteStoreState { state } => self.write_state(state).await,
            Action::SendInvite => {
                let Some(orig) = self.originate.clone() else {
                    self.inputs
                        .push_back(Input::Sip(SipInput::Failed { code: 500 }));
                    return;
                };
                match sip.originate_with_call_id(orig).await {
                    Ok((call, call_id)) => {
                        let call_id = call_id.to_string();
                        self.call = Some(call);
                        self.shared.bind_call_ref(self.id, call);
                        self.shared.bind_call_id(self.id, call_id.clone());
                        self.sip_call_id = Some(call_id.clone());
                        let u = SessionUpdate {
                            sip_call_id: Some(call_id),
                            ..Default::default()
                        };
                        self.shared
                            .store
                            .send(StoreOp::Update(self.id, Box::new(u)))
                            .await;
                    }
                    Err(e) => {
                        warn!(error = %e, "INVITE could not be sent");
                        self.inputs
                            .push_back(Input::Sip(SipInput::Failed { code: 503 }));
                    }
                }
            }
            Action::SendRinging => {
                if let Some(call) = self.call
                    && let Err(e) = sip.ring(call).await
                {
                    warn!(error = %e, "180 failed");
                }
            }
            Action::Answer => {
                // The caller learns our port from this answer: from now on
                // a source the latch policy allows may latch.
                if let Some(s) = self.stream.as_ref().and_then(Transport::rtp) {
                    s.answered();
                }
                if let (Some(call), Some(sdp)) = (self.call, self.answer_sdp.clone())
                    && let Err(e) = sip.answer(call, sdp).await
                {
                    warn!(error = %e, "200 OK failed");
                    self.inputs.push_back(Input::Sip(SipInput::Cancel));
                }
            }
            Action::Reject { code, retry_after } => {
                if let (Some(call), Some(status)) = (self.call, StatusCode::new(code)) {
                    let sent = match retry_after {
                        Some(after) => sip.reject_retry_after(call, status, after).await,
                        None => sip.reject(call, status).await,
                    };
                    if let Err(e) = sent {
                        debug!(error = %e, code, "rejection not sent (call already gone)");
                    }
                }
                if let Some(t) = &mut self.stream {
                    t.hangup().await;
                }
            }
            Action::SendBye | Action::SendCancel => {
                if let Some(call) = self.call
                    && let Err(e) = sip.hangup(call).await
                {
                    debug!(error = %e, "hangup not sent (dialog already gone)");
                }
                if let Some(t) = &mut self.stream {
                    t.hangup().await;
                }
            }
            Action::Refer { target } => {
                let r = match self.call {
                    Some(call) => send_refer(&sip, call, &target).await,
                    None => Err("no dialog"),
                };
                self.event(EventKind::Sip, json!({"refer_sent": r.is_ok()}));
                if r.is_err() {
                    self.inputs
                        .push_back(Input::Sip(SipInput::ReferFailed { code: None }));
                }
            }
            Action::TransferFailed { .. } => {
                let mut told = false;
                if let (Some(m), Some(id)) = (&mut self.model, self.transfer_id.take()) {
                    told = m
                        .send_tool_result(id, ToolResult::Err("the transfer failed".into()))
                        .await
                        .is_ok();
                }
                self.event(
                    EventKind::ToolCall,
                    json!({"tool": "transfer_call", "result": "failed", "model_told": told}),
                );
            }
            Action::OpenModel => self.open_model(),
            Action::StartGreeting => {
                if let Some(m) = &mut self.model
                    && let Err(e) = m.start_greeting().await
                {
                    warn!(error = %e, "greeting request failed");
                }
            }
            Action::SendDtmfToModel { digit } => {
                self.event(EventKind::Dtmf, json!({}));
                if let Some(m) = &mut self.model {
                    let _ = m.send_dtmf(&digit.as_char().to_string()).await;
                }
            }
            Action::ClearPlayback => {
                let base = self.reply_base;
                self.played_at_clear = self
                    .stream
                    .as_mut()
                    .and_then(|s| s.clear_playback())
                    .map(|played| played.saturating_sub(base));
                self.downlink.clear();
                self.replies.on_clear();
                self.event(EventKind::BargeIn, json!({}));
            }
            Action::ReportPlayedToModel => {
                // What the carrier confirmed played (marks), else what
                // our pacing sent.
                let played = match self.played_at_clear.take() {
                    Some(frames) => std::time::Duration::from_millis(frames.saturating_mul(20)),
                    None => self.downlink.played(),
                };
                if let Some(m) = &self.model {
                    m.playback_progress(played);
                }
            }
            Action::PlayFallback => {
                self.replies.on_announcement(self.downlink.frames_ahead());
                self.downlink.new_reply();
                self.downlink.push_pcm_8k(self.shared.fallback.samples());
                self.event(
                    EventKind::Note,
                    json!({"fallback_played_ms": self.shared.fallback.duration().as_millis() as u64}),
                );
                if !self.downlink.is_busy() {
                    self.inputs
                        .push_back(Input::Media(MediaInput::PlaybackDrained));
                }
            }
            Action::PauseCallerAudio => {
                self.caller_audio_paused = true;
                // The model's uplink sends the audio it collected before the pause.
                if let Some(m) = &mut self.model {
                    let _ = m.flush_audio();
                }
            }
            Action::ResumeCallerAudio => self.caller_audio_paused = false,
            Action::CloseModel => self.close_model().await,
            Action::StopMedia => {
                if let Some(s) = self.stream.take() {
                    self.metrics.media_stopped(s.stats().as_ref());
                    s.close().await;
                }
                self.stream_guard = None;
            }
            Action::FinalizeRecording => self.finalize_recording().await,
            Action::WriteStoreEnd {
                reason,
                outcome,
                sip_status,
            } => {
                self.flush_store().await;
                let mut f = match outcome {
                    EndOutcome::Ended => Finish::ended(reason.into(), jiff::Timestamp::now()),
                    EndOutcome::Failed => Finish::failed(reason.into(), jiff::Timestamp::now()),
                };
                f.sip_status = sip_status;
                info!(reason = reason.as_str(), ?sip_status, "call ended");
                self.shared.store.send(StoreOp::Finish(self.id, f)).await;
            }
            Action::EmitMetric(m) => {
                debug!(?m, "metric");
                if let crate::lifecycle::Metric::ModelReplyTimeout(waited) = m {
                    self.event(
                        EventKind::Note,
                        json!({"model_failure": "no reply", "model_reply_timeout_ms": waited.as_millis() as u64}),
                    );
                }
                self.metrics.on_metric(m);
            }
            Action::Closed => self.closed = true,
        }
    }

    async fn write_state(&mut self, state: StoreState) {
        let store = &self.shared.store;
        match state {
            StoreState::Created => {
                // Outbound rows were written by `Manager::originate`.
                if let Some(row) = self.row.take()
                    && store.create(row).await.is_err()
                {
                    warn!("session row could not be written");
                }
            }
            StoreState::Ringing => {
                store
                    .send(StoreOp::State(self.id, SessionState::Ringing))
                    .await
            }
            StoreState::Answered => {
                self.metrics.answered(super::now());
                store
                    .send(StoreOp::State(self.id, SessionState::Answered))
                    .await
            }
            StoreState::Active => {
                store
                    .send(StoreOp::State(self.id, SessionState::Active))
                    .await
            }
        }
    }

    fn open_model(&mut self) {
        let Some(cfg) = self.model_config.take() else {
            warn!("OpenModel a second time refused");
            return;
        };
        let rate = match self.shared.model.input_format(&cfg) {
            callbridge_llm_bridge::AudioFormat::Pcm16 { rate } => rate.hz(),
            _ => 8000,
        };
        match Uplink::new(rate) {
            Ok(u) => self.uplink = Some(u),
            Err(e) => warn!(error = %e, "unsupported model input rate; sending 8 kHz"),
        }
        self.model_guard = Some(self.shared.gauges.hold(Gauge::ModelSession));
        let model = std::sync::Arc::clone(&self.shared.model);
        let meta = self.metadata.clone();
        self.opening = Some(Box::pin(async move { model.open(cfg, meta).await }));
    }

    pub(super) fn on_opened(&mut self, r: Result<ModelSession, callbridge_llm_bridge::Error>) {
        match r {
            Ok(m) => {
                self.metrics.model_opened(true);
                self.model = Some(m);
                self.event(EventKind::Model, json!({"ready": true}));
                self.inputs.push_back(Input::Model(ModelInput::Ready));
            }
            Err(e) => {
                self.metrics.model_opened(false);
                warn!(error = %e, "model session could not be opened");
                self.event(EventKind::Model, json!({"open_failed": e.to_string()}));
                self.model_guard = None;
                self.inputs
                    .push_back(Input::Model(ModelInput::Error { fatal: true }));
            }
        }
    }

    async fn close_model(&mut self) {
        self.opening = None;
        let clean = match self.model.take() {
            Some(m) => {
                let o = m.close().await;
                debug!(clean = o.clean, reason = %o.reason, "model session closed");
                self.model_closed_clean.unwrap_or(o.clean)
            }
            None => false,
        };
        self.model_guard = None;
        self.inputs
            .push_back(Input::Model(ModelInput::Closed { clean }));
    }

    async fn finalize_recording(&mut self) {
        if let Some(mut r) = self.recorder.take()
            && let Err(e) = r.finish()
        {
            // The recorder repaired the file to what reached the disk.
            self.recording_stopped(&r, &e);
        }
        // Linked at the start; the size is settled now, also after a
        // recording that stopped early.
        if let Some(path) = self.recording_path.take() {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let u = SessionUpdate {
                recording: Some((path, bytes)),
                ..Default::default()
            };
            self.shared
                .store
                .send(StoreOp::Update(self.id, Box::new(u)))
                .await;
        }
    }

    /// A write to the recording failed (a full disk): the recording stops,
    /// the call goes on, and the session gets an event saying why and how
    /// much audio the file kept.
    fn recording_stopped(&mut self, r: &CallRecorder, e: &callbridge_rtp::Error) {
        let why = if e.is_disk_full() {
            "disk full"
        } else {
            "write failed"
        };
        let kept = r.stopped().and_then(|s| s.kept);
        warn!(error = %e, reason = why, "recording stopped; the call goes on");
        self.event(
            EventKind::Recording,
            json!({
                "stopped": why,
                "error": e.to_string(),
                "kept_ms": kept.map(|k| k.duration().as_millis() as u64),
                "kept_bytes": kept.map(|k| k.file_bytes),
            }),
        );
    }

    pub(super) fn on_media(&mut self, ev: Option<TransportEvent>) {
        let Some(ev) = ev else {
            if let Some(s) = &self.stream {
                self.metrics.media_stopped(s.stats().as_ref());
                warn!("media stream stopped by itself");
                self.stream = None;
                self.stream_guard = None;
                self.inputs.push_back(Input::Media(MediaInput::RtpTimeout));
            }
            return;
        };
        match ev {
            TransportEvent::Tick { pcm, heard, sent } => {
                self.ticks += 1;
                if let Some(r) = &mut self.recorder
                    && let Err(e) = r.write(&pcm, &sent)
                    && let Some(r) = self.recorder.take()
                {
                    self.recording_stopped(&r, &e);
                }
                self.check_rtp_inactivity(heard);
                if heard {
                    if !self.first_audio_seen {
                        self.first_audio_seen = true;
                        self.inputs
                            .push_back(Input::Media(MediaInput::FirstCallerAudio));
                    }
                    self.speech_cooldown = self.speech_cooldown.saturating_sub(1);
                    if self.speech_cooldown == 0 && rms(&pcm) > SPEECH_RMS {
                        self.speech_cooldown = SPEECH_EVERY;
                        self.inputs
                            .push_back(Input::Media(MediaInput::CallerSpeech));
                    }
                }
                let reply = self.replies.on_tick();
                if let Some(n) = self
                    .metrics
                    .on_tick(super::now(), &pcm, heard, &sent, reply)
                {
                    self.event(EventKind::Note, n.detail());
                }
                self.send_caller_audio(&pcm);
                let mut stream = self.stream.as_mut();
                let drained = self
                    .downlink
                    .on_tick(|f| stream.as_mut().is_some_and(|s| s.try_play(f)));
                if drained {
                    self.inputs
                        .push_back(Input::Media(MediaInput::PlaybackDrained));
                }
                if self.ticks.is_multiple_of(PROGRESS_EVERY) {
                    self.report_progress();
                }
                if self.ticks.is_multiple_of(FLUSH_EVERY) {
                    if let Some(st) = self.stream.as_ref().and_then(|s| s.stats()) {
                        self.metrics.media_stats(&st);
                    }
                    self.flush_store_now();
                }
            }
            TransportEvent::Dtmf(d) => self.inputs.push_back(Input::Sip(SipInput::Dtmf(d))),
            TransportEvent::Hangup => {
                info!("the carrier ended the stream");
                self.inputs.push_back(Input::Sip(SipInput::Bye));
            }
        }
    }

    /// Tells the model how much of the reply playing now the caller has
    /// heard (what the carrier confirmed by marks, else what our pacing
    /// sent), when it changed: a barge-in truncates the reply there
    /// (OpenAI `conversation.item.truncate`).
    fn report_progress(&mut self) {
        if !self.downlink.is_busy() {
            return;
        }
        let played = match self.stream.as_ref().and_then(|s| s.frames_played()) {
            Some(f) => std::time::Duration::from_millis(
                f.saturating_sub(self.reply_base).saturating_mul(20),
            ),
            None => self.downlink.played(),
        };
        if self.last_progress != Some(played) {
            self.last_progress = Some(played);
            if let Some(m) = &self.model {
                m.playback_progress(played);
            }
        }
    }

    /// Ends the call (`RtpTimeout`, once) when no RTP arrived for the
    /// configured time since the answer or the last packet; not while held.
    fn check_rtp_inactivity(&mut self, packet: bool) {
        let now = super::now();
        if packet {
            self.last_rx = Some(now);
        }
        if self.answered_at.is_none()
            && matches!(
                self.machine.phase(),
                crate::lifecycle::Phase::Answered | crate::lifecycle::Phase::Active
            )
        {
            self.answered_at = Some(now);
        }
        let Some(answered) = self.answered_at else {
            return;
        };
        if self.rtp_timeout_sent || self.caller_audio_paused {
            self.last_rx = Some(now);
            return;
        }
        let since = self.last_rx.map_or(answered, |t| t.max(answered));
        if now.saturating_duration_since(since) >= self.shared.cfg.rtp_inactivity {
            self.rtp_timeout_sent = true;
            info!("no RTP from the peer since the answer or its last packet");
            self.inputs.push_back(Input::Media(MediaInput::RtpTimeout));
        }
    }

    fn send_caller_audio(&mut self, pcm: &[i16; 160]) {
        if self.caller_audio_paused
            || !matches!(self.machine.phase(), crate::lifecycle::Phase::Active)
        {
            return;
        }
        let (Some(m), Some(up)) = (&mut self.model, &mut self.uplink) else {
            return;
        };
        let rate = SampleRate::new(up.rate());
        let samples = up.process(pcm);
        if let Err(e) = m.send_audio(AudioFrame::Pcm16 { rate, samples }) {
            debug!(error = %e, "caller audio frame not sent to the model");
        }
    }

    pub(super) async fn on_model(&mut self, ev: Option<ModelEvent>) {
        let Some(ev) = ev else {
            self.model_events_done = true;
            return;
        };
        let input = match ev {
            // A model that failed (a stalled one that wakes up) must not
            // talk over the apology.
            ModelEvent::Audio(_)
                if self.machine.end_reason() == Some(crate::lifecycle::EndReason::ModelFailure) =>
            {
                return;
            }
            ModelEvent::Audio(chunk) => {
                if !self.downlink.is_busy() {
                    self.downlink.new_reply();
                    self.last_progress = None;
                    self.reply_base = self
                        .stream
                        .as_ref()
                        .and_then(|s| s.frames_sent())
                        .unwrap_or(0);
                }
                self.replies.on_model_audio(self.downlink.frames_ahead());
                self.downlink.push_model_audio(|v| chunk.decode_into(v));
                ModelInput::Audio
            }
            ModelEvent::InputTranscript { text, finished } => {
                self.caller_text.push_str(&text);
                if finished {
                    self.finish_turn(true);
                }
                self.inputs
                    .push_back(Input::Media(MediaInput::CallerSpeech));
                return;
            }
            ModelEvent::OutputTranscript { text, finished } => {
                self.agent_text.push_str(&text);
                if finished {
                    self.finish_turn(false);
                }
                return;
            }
            ModelEvent::TurnComplete => {
                self.replies.on_turn_end();
                self.downlink.flush_partial();
                self.finish_turn(true);
                self.finish_turn(false);
                ModelInput::TurnComplete
            }
            ModelEvent::Interrupted => {
                self.replies.on_turn_end();
                self.finish_turn(false);
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
                    .shared
                    .cfg
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
                        self.transfer_id = Some(id);
                        ModelInput::TransferCall { target: to }
                    }
                    Err(why) => {
                        self.refuse_transfer(id, &target, why).await;
                        return;
                    }
                }
            }
            ModelEvent::ToolCall(call) => {
                self.event(EventKind::ToolCall, json!({"tool": call.name}));
                if let Some(m) = &mut self.model {
                    let _ = m
                        .send_tool_result(call.id, ToolResult::Err("no such tool".into()))
                        .await;
                }
                return;
            }
            ModelEvent::GoingAway { .. } => ModelInput::GoingAway,
            ModelEvent::Reconnecting { reason } => {
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
            ModelEvent::CallerTurnEnded => ModelInput::CallerTurnEnded,
            ModelEvent::Error { kind, .. } => {
                self.event(EventKind::Model, json!({"error": format!("{kind:?}")}));
                ModelInput::Error { fatal: false }
            }
            ModelEvent::Closed { reason, clean } => {
                info!(%reason, clean, "model session closed");
                self.model_events_done = true;
                self.model_closed_clean = Some(clean);
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

    fn finish_turn(&mut self, caller: bool) {
        let text = if caller {
            std::mem::take(&mut self.caller_text)
        } else {
            std::mem::take(&mut self.agent_text)
        };
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let at = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let speaker = if caller {
            Speaker::Caller
        } else {
            Speaker::Agent
        };
        self.pending_turns
            .push(NewTurn::new(self.turn_seq, speaker, text, at));
        self.turn_seq += 1;
        self.transcript
            .push(callbridge_llm_bridge::summary::TranscriptLine {
                caller,
                text: text.to_owned(),
            });
    }

    pub(super) fn event(&mut self, kind: EventKind, detail: serde_json::Value) {
        if self.pending_events.len() < 256 {
            self.pending_events.push(NewEvent {
                at: jiff::Timestamp::now(),
                kind,
                detail,
            });
        }
    }

    /// Queues the batched turns and events without waiting (a full store
    /// queue keeps them for the next flush).
    fn flush_store_now(&mut self) {
        let tx = &self.shared.store;
        if !self.pending_turns.is_empty() {
            let t = std::mem::take(&mut self.pending_turns);
            if let Err(StoreOp::Turns(_, t)) = tx.try_send(StoreOp::Turns(self.id, t)) {
                self.pending_turns = t;
            }
        }
        if !self.pending_events.is_empty() {
            let e = std::mem::take(&mut self.pending_events);
            if let Err(StoreOp::Events(_, e)) = tx.try_send(StoreOp::Events(self.id, e)) {
                self.pending_events = e;
            }
        }
    }

    /// Writes every batched turn and event (waiting for queue room).
    pub(super) async fn flush_store(&mut self) {
        self.finish_turn(true);
        self.finish_turn(false);
        if !self.pending_turns.is_empty() {
            let t = std::mem::take(&mut self.pending_turns);
            self.shared.store.send(StoreOp::Turns(self.id, t)).await;
        }
        if !self.pending_events.is_empty() {
            let e = std::mem::take(&mut self.pending_events);
            self.shared.store.send(StoreOp::Events(self.id, e)).await;
        }
    }
}
