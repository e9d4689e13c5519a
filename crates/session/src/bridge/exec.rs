//! The call task's executor of the machine's actions, and the store
//! batches (turns and events) it writes.

use super::transport::Transport;
use callbridge_crm_store::{EventKind, Finish, NewEvent, SessionState, SessionUpdate};
use callbridge_llm_bridge::ToolResult;
use callbridge_sip::StatusCode;
use serde_json::json;
use tracing::{debug, info, warn};

use super::{Call, send_refer};
use crate::lifecycle::{Action, EndOutcome, Input, MediaInput, Metric, SipInput, StoreState};
use crate::store_writer::StoreOp;

impl Call {
    pub(super) async fn execute(&mut self, action: Action) {
        debug!(action = %crate::log_name::Variant(&action), "action");
        let sip = self.shared.sip.clone();
        match action {
            Action::WriteStoreState { state } => self.write_state(state).await,
            Action::SendInvite => {
                let Some(orig) = self.sip.originate.clone() else {
                    self.inputs
                        .push_back(Input::Sip(SipInput::Failed { code: 500 }));
                    return;
                };
                let placed = match orig.located {
                    None => sip.originate_with_call_id(orig.spec).await,
                    Some((route, _)) if route.is_empty() => {
                        warn!(
                            "no SIP server found for the destination (RFC 3263); call not placed"
                        );
                        // As when no server answers at all (Timer B).
                        self.inputs
                            .push_back(Input::Sip(SipInput::Failed { code: 408 }));
                        return;
                    }
                    Some((route, domain)) => {
                        info!(targets = route.len(), first = %route[0].addr, "INVITE to a located SIP server");
                        sip.originate_located(orig.spec, route, Some(domain)).await
                    }
                };
                match placed {
                    Ok((call, call_id)) => {
                        let call_id = call_id.to_string();
                        self.sip.call = Some(call);
                        self.shared.bind_call_ref(self.id, call);
                        self.shared.bind_call_id(self.id, call_id.clone());
                        self.sip.call_id = Some(call_id.clone());
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
                if let Some(call) = self.sip.call {
                    match sip.ring(call).await {
                        Ok(()) => {}
                        // The caller cancelled (or the call ended) before
                        // the 180 went out: its CANCEL arrives as an input.
                        Err(callbridge_sip::driver::DriverError::Ua(
                            callbridge_sip::ua::UaError::UnknownCall,
                        )) => tracing::debug!("180 not sent: the call already ended"),
                        Err(e) => warn!(error = %e, "180 failed"),
                    }
                }
            }
            Action::Answer => {
                // The caller learns our port from this answer: from now on
                // a source the latch policy allows may latch.
                if let Some(s) = self.stream.as_ref().and_then(Transport::rtp) {
                    s.answered();
                }
                if let (Some(call), Some(sdp)) = (self.sip.call, self.sip.answer_sdp.clone())
                    && let Err(e) = sip.answer(call, sdp).await
                {
                    warn!(error = %e, "200 OK failed");
                    self.inputs.push_back(Input::Sip(SipInput::Cancel));
                }
            }
            Action::Reject { code, retry_after } => {
                if let (Some(call), Some(status)) = (self.sip.call, StatusCode::new(code)) {
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
                if let Some(call) = self.sip.call
                    && let Err(e) = sip.hangup(call).await
                {
                    debug!(error = %e, "hangup not sent (dialog already gone)");
                }
                if let Some(t) = &mut self.stream {
                    t.hangup().await;
                }
            }
            Action::Refer { target } => {
                let r = match self.sip.call {
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
                if let (Some(m), Some(id)) = (&mut self.model, self.link.take_transfer()) {
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
                // collect_digits takes the digit instead of the model.
                if !self.collect_digit(digit.as_char()).await
                    && let Some(m) = &mut self.model
                {
                    let _ = m.send_dtmf(&digit.as_char().to_string()).await;
                }
            }
            Action::ClearPlayback => {
                let confirmed = self.stream.as_mut().and_then(Transport::clear_playback);
                self.playback.clear(confirmed);
                self.replies.on_clear();
            }
            Action::ReportPlayedToModel => {
                // What the carrier confirmed played (marks), else what
                // our pacing sent.
                self.link.progress(self.playback.played_at_barge_in());
            }
            Action::InterruptModel => {
                let played = self.playback.played_at_barge_in();
                self.playback.mute_rest();
                self.link.interrupt(played);
                self.transcript.interrupted(super::now());
                info!(
                    model = self.link.state().as_str(),
                    played_ms = played.as_millis() as u64,
                    "barge-in detected locally"
                );
            }
            Action::PlayFallback => {
                self.replies.on_announcement(self.playback.frames_ahead());
                self.playback.announce(self.shared.fallback.samples());
                self.event(
                    EventKind::Note,
                    json!({"fallback_played_ms": self.shared.fallback.duration().as_millis() as u64}),
                );
                if !self.playback.is_busy() {
                    self.inputs
                        .push_back(Input::Media(MediaInput::PlaybackDrained));
                }
            }
            Action::PauseCallerAudio => {
                self.link.pause_audio();
                // The model's uplink sends the audio it collected before the pause.
                if let Some(m) = &mut self.model {
                    let _ = m.flush_audio();
                }
            }
            Action::ResumeCallerAudio => self.link.resume_audio(),
            Action::CloseModel => self.close_model().await,
            Action::StopMedia => {
                if let Some(s) = self.stream.take() {
                    let last = s.close().await;
                    self.metrics.media_stopped(last.as_ref());
                }
                self.stream_guard = None;
            }
            Action::FinalizeRecording => self.finalize_recording().await,
            Action::WriteStoreEnd {
                reason,
                outcome,
                sip_status,
            } => {
                self.store_usage().await;
                self.flush_store().await;
                let mut f = match outcome {
                    EndOutcome::Ended => Finish::ended(reason.into(), jiff::Timestamp::now()),
                    EndOutcome::Failed => Finish::failed(reason.into(), jiff::Timestamp::now()),
                };
                f.sip_status = sip_status;
                let end = super::now();
                info!(
                    reason = reason.as_str(),
                    sip_status,
                    duration_ms = millis(end.saturating_duration_since(self.started)),
                    talk_ms = self
                        .answered_at
                        .map(|a| millis(end.saturating_duration_since(a))),
                    "call ended"
                );
                self.publish(crate::events::CallEvent::Ended {
                    reason: reason.as_str(),
                    failed: matches!(outcome, EndOutcome::Failed),
                    sip_status,
                    duration_ms: millis(end.saturating_duration_since(self.started)),
                    talk_ms: self
                        .answered_at
                        .map(|a| millis(end.saturating_duration_since(a))),
                });
                self.shared.store.send(StoreOp::Finish(self.id, f)).await;
                if !self.pending_outbox.is_empty() {
                    let o = std::mem::take(&mut self.pending_outbox);
                    self.shared.store.send(StoreOp::Outbox(self.id, o)).await;
                }
            }
            Action::EmitMetric(m) => {
                debug!(metric = m.name(), ms = m.millis(), "metric");
                match m {
                    Metric::ModelReplyTimeout(waited) => self.event(
                        EventKind::Note,
                        json!({"model_failure": "no reply", "model_reply_timeout_ms": waited.as_millis() as u64}),
                    ),
                    // The one event of a barge-in (a clear with nothing
                    // playing is none).
                    Metric::BargeIn { local: true } => self.event(
                        EventKind::BargeIn,
                        json!({"local": true, "model": self.link.state().as_str()}),
                    ),
                    Metric::BargeIn { local: false } => self.event(EventKind::BargeIn, json!({})),
                    _ => {}
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
                    .send(StoreOp::State(
                        self.id,
                        SessionState::Ringing,
                        jiff::Timestamp::now(),
                    ))
                    .await
            }
            StoreState::Answered => {
                let at = super::now();
                self.answered_at = Some(at);
                self.metrics.answered(at);
                store
                    .send(StoreOp::State(
                        self.id,
                        SessionState::Answered,
                        jiff::Timestamp::now(),
                    ))
                    .await;
                self.publish(crate::events::CallEvent::Answered);
            }
            StoreState::Active => {
                store
                    .send(StoreOp::State(
                        self.id,
                        SessionState::Active,
                        jiff::Timestamp::now(),
                    ))
                    .await
            }
        }
    }

    pub(super) fn event(&mut self, kind: EventKind, detail: serde_json::Value) {
        if kind == EventKind::ToolCall {
            self.publish(crate::events::CallEvent::ToolCalled(detail.clone()));
        }
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
    pub(super) fn flush_store_now(&mut self) {
        let tx = &self.shared.store;
        if self.transcript.has_pending() {
            let t = self.transcript.take_pending();
            if let Err(StoreOp::Turns(_, t)) = tx.try_send(StoreOp::Turns(self.id, t)) {
                self.transcript.give_back(t);
            }
        }
        if !self.pending_events.is_empty() {
            let e = std::mem::take(&mut self.pending_events);
            if let Err(StoreOp::Events(_, e)) = tx.try_send(StoreOp::Events(self.id, e)) {
                self.pending_events = e;
            }
        }
        if !self.pending_outbox.is_empty() {
            let o = std::mem::take(&mut self.pending_outbox);
            if let Err(StoreOp::Outbox(_, o)) = tx.try_send(StoreOp::Outbox(self.id, o)) {
                self.pending_outbox = o;
            }
        }
    }

    /// Writes every batched turn and event (waiting for queue room).
    pub(super) async fn flush_store(&mut self) {
        self.transcript.finish(super::now());
        self.publish_turns();
        if self.transcript.has_pending() {
            let t = self.transcript.take_pending();
            self.shared.store.send(StoreOp::Turns(self.id, t)).await;
        }
        if !self.pending_events.is_empty() {
            let e = std::mem::take(&mut self.pending_events);
            self.shared.store.send(StoreOp::Events(self.id, e)).await;
        }
        if !self.pending_outbox.is_empty() {
            let o = std::mem::take(&mut self.pending_outbox);
            self.shared.store.send(StoreOp::Outbox(self.id, o)).await;
        }
    }
}

/// A duration in whole ms (the logs' unit for durations).
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
