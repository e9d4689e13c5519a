//! One mock OpenAI Realtime connection after `session.created`: the
//! session state set by `session.update`, the energy VAD on the decoded
//! input, caller turns, replies (the event stream of a response), barge-in
//! and the client events that steer them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use callbridge_llm_bridge::audio::{AudioFormat, alaw_to_linear, ulaw_to_linear};

use super::encode::cached;
use super::script::{MidResponseClose, OpenAiHandler, OpenAiScript, SessionReply, Truncation, log};
use crate::clips::{self, Clip};
use crate::openai_validate::{ClientEvent, SessionInfo, parse_client_event};
use crate::server::{Incoming, MockConnection};
use crate::vad::{EnergyVad, VadEvent};

struct Session {
    input: AudioFormat,
    output: AudioFormat,
    /// `None`: manual turns; `Some(interrupt_response)`: server VAD.
    vad: Option<bool>,
    transcription: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            input: AudioFormat::PCM_24K,
            output: AudioFormat::PCM_24K,
            vad: Some(true),
            transcription: false,
        }
    }
}

impl Session {
    fn apply(&mut self, info: &SessionInfo) {
        if let Some(f) = info.input_format {
            self.input = f;
        }
        if let Some(f) = info.output_format {
            self.output = f;
        }
        if let Some(v) = info.turn_detection {
            self.vad = v;
        }
        if let Some(t) = info.transcription {
            self.transcription = t;
        }
    }
}

struct Playing {
    ends_at: Instant,
    response_id: String,
    /// The caller turn it answers (`None` for the greeting).
    turn: Option<u32>,
}

enum Flow {
    Continue,
    Stop,
    Abort,
}

pub(super) struct Conversation {
    h: Arc<OpenAiHandler>,
    pub(super) script: OpenAiScript,
    session: Session,
    vad: EnergyVad,
    vad_events: Vec<VadEvent>,
    pcm: Vec<i16>,
    turns: u32,
    replies: u32,
    next_id: u64,
    playing: Option<Playing>,
    outstanding: HashSet<String>,
    /// Audio milliseconds sent per assistant item (bounded).
    items: HashMap<String, u64>,
}

impl Conversation {
    pub(super) fn new(h: Arc<OpenAiHandler>, script: OpenAiScript) -> Self {
        let vad = EnergyVad::new(24000, script.vad_threshold, script.vad_silence_ms);
        Conversation {
            h,
            script,
            session: Session::default(),
            vad,
            vad_events: Vec::new(),
            pcm: Vec::with_capacity(4096),
            turns: 0,
            replies: 0,
            next_id: 0,
            playing: None,
            outstanding: HashSet::new(),
            items: HashMap::new(),
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_mock{}", self.next_id)
    }

    pub(super) async fn send(&mut self, conn: &mut MockConnection, mut v: Value) -> bool {
        let event_id = self.id("event");
        if let Some(m) = v.as_object_mut() {
            m.insert("event_id".into(), json!(event_id));
        }
        conn.send_json(&v, false).await.is_ok()
    }

    async fn error(&mut self, conn: &mut MockConnection, code: &str, message: &str) -> bool {
        self.send(
            conn,
            json!({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                   "message": message, "param": null, "event_id": null}}),
        )
        .await
    }

    pub(super) async fn run(&mut self, mut conn: MockConnection) {
        let mut updated = false;
        loop {
            let reply_end = self.playing.as_ref().map(|p| p.ends_at);
            let flow = tokio::select! {
                inc = conn.recv() => self.on_incoming(&mut conn, inc, &mut updated).await,
                () = crate::server::sleep_until_opt(reply_end) => self.finish_reply(&mut conn).await,
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::Abort => {
                    conn.abort();
                    return;
                }
            }
        }
    }

    async fn on_incoming(
        &mut self,
        conn: &mut MockConnection,
        inc: Incoming,
        updated: &mut bool,
    ) -> Flow {
        let v = match inc {
            Incoming::Json(v) => v,
            Incoming::NotJson(e) => {
                conn.violation(format!("frame is not JSON: {e}"));
                self.error(conn, "invalid_json", "The event is not valid JSON.")
                    .await;
                return Flow::Continue;
            }
            Incoming::Closed { .. } | Incoming::Gone => return Flow::Stop,
        };
        let ev = match parse_client_event(&v, self.session.input) {
            Ok(ev) => ev,
            Err(e) => {
                conn.violation(e.clone());
                self.error(conn, "invalid_value", &e).await;
                return Flow::Continue;
            }
        };
        match ev {
            ClientEvent::SessionUpdate(info) => {
                if self.script.session == SessionReply::NeverUpdated {
                    return Flow::Continue;
                }
                if self.script.session == SessionReply::RejectUpdate {
                    self.error(conn, "invalid_value", "Invalid session configuration.")
                        .await;
                    return Flow::Continue;
                }
                conn.count_setup(false);
                self.session.apply(&info);
                let rate = self.session.input.rate().hz();
                self.vad =
                    EnergyVad::new(rate, self.script.vad_threshold, self.script.vad_silence_ms);
                log(&self.h, |l| {
                    if l.session_updates.len() < 10_000 {
                        l.session_updates.push(info);
                    }
                });
                if !self
                    .send(
                        conn,
                        json!({"type": "session.updated", "session": {"type": "realtime"}}),
                    )
                    .await
                {
                    return Flow::Stop;
                }
                if !*updated && self.script.malformed_after_setup {
                    self.send_malformed(conn).await;
                }
                *updated = true;
                Flow::Continue
            }
            ClientEvent::Append(bytes) => self.on_audio(conn, &bytes).await,
            ClientEvent::Commit => {
                if self.session.vad.is_some() {
                    conn.violation("input_audio_buffer.commit with server VAD on");
                }
                self.caller_turn(conn, false).await
            }
            ClientEvent::Clear => {
                self.send(conn, json!({"type": "input_audio_buffer.cleared"}))
                    .await;
                Flow::Continue
            }
            ClientEvent::Message { role, text } => {
                log(&self.h, |l| {
                    if l.user_messages.len() < 10_000 {
                        l.user_messages.push(text);
                    }
                });
                let id = self.id("item");
                self.send(
                    conn,
                    json!({"type": "conversation.item.added", "item": {
                    "id": id, "type": "message", "role": role, "content": []}}),
                )
                .await;
                Flow::Continue
            }
            ClientEvent::FunctionOutput { call_id, output } => {
                if !self.outstanding.remove(&call_id) {
                    conn.violation(format!("function_call_output for unknown call {call_id}"));
                }
                log(&self.h, |l| l.function_outputs.push((call_id, output)));
                Flow::Continue
            }
            ClientEvent::Truncate {
                item_id,
                audio_end_ms,
            } => {
                let Some(&item_audio_ms) = self.items.get(&item_id) else {
                    conn.violation(format!("truncate of unknown item {item_id}"));
                    self.error(conn, "item_not_found", "No such item.").await;
                    return Flow::Continue;
                };
                if audio_end_ms > item_audio_ms {
                    conn.violation(format!(
                        "truncate at {audio_end_ms} ms beyond the item's {item_audio_ms} ms"
                    ));
                    self.error(
                        conn,
                        "invalid_value",
                        "audio_end_ms is longer than the audio.",
                    )
                    .await;
                    return Flow::Continue;
                }
                log(&self.h, |l| {
                    l.truncations.push(Truncation {
                        item_id: item_id.clone(),
                        audio_end_ms,
                        item_audio_ms,
                    })
                });
                self.send(
                    conn,
                    json!({"type": "conversation.item.truncated", "item_id": item_id,
                    "content_index": 0, "audio_end_ms": audio_end_ms}),
                )
                .await;
                Flow::Continue
            }
            ClientEvent::ItemOther => Flow::Continue,
            ClientEvent::ResponseCreate => {
                log(&self.h, |l| l.response_creates += 1);
                if self.playing.is_some() {
                    conn.violation("response.create while a response is in progress");
                    self.error(
                        conn,
                        "conversation_already_has_active_response",
                        "Conversation already has an active response in progress.",
                    )
                    .await;
                    return Flow::Continue;
                }
                let clip = if self.replies == 0 && self.turns == 0 {
                    clips::greeting()
                } else {
                    clips::reply()
                };
                self.start_reply(conn, clip, None).await
            }
            ClientEvent::ResponseCancel(id) => {
                log(&self.h, |l| l.cancels.push(id.clone()));
                let active = self.playing.as_ref().map(|p| p.response_id.clone());
                match active {
                    Some(a) if id.as_deref().is_none_or(|i| i == a) => {
                        self.cancel(conn, "client_cancelled").await
                    }
                    _ => {
                        self.error(
                            conn,
                            "response_cancel_not_active",
                            "Cancellation failed: no active response found",
                        )
                        .await;
                        Flow::Continue
                    }
                }
            }
        }
    }

    async fn send_malformed(&mut self, conn: &mut MockConnection) {
        let _ = conn
            .send_raw(Message::Text(
                "{\"type\": \"response.output_audio.delta\", ".into(),
            ))
            .await;
        let _ = conn
            .send_raw(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
            .await;
        let _ = conn
            .send_raw(Message::Text("{\"type\": \"no.such.event\"}".into()))
            .await;
        let _ = conn
            .send_raw(Message::Text(
                "{\"type\": \"response.output_audio.delta\", \"response_id\": \"r\", \"item_id\": \"i\"}"
                    .into(),
            ))
            .await;
    }

    async fn on_audio(&mut self, conn: &mut MockConnection, bytes: &[u8]) -> Flow {
        conn.count_audio(bytes.len());
        if self.session.vad.is_none() {
            return Flow::Continue;
        }
        self.pcm.clear();
        match self.session.input {
            AudioFormat::Pcmu => self.pcm.extend(bytes.iter().map(|&b| ulaw_to_linear(b))),
            AudioFormat::Pcma => self.pcm.extend(bytes.iter().map(|&b| alaw_to_linear(b))),
            AudioFormat::Pcm16 { .. } => self.pcm.extend(
                bytes
                    .chunks_exact(2)
                    .map(|p| i16::from_le_bytes([p[0], p[1]])),
            ),
        }
        let mut events = std::mem::take(&mut self.vad_events);
        events.clear();
        self.vad.push(self.pcm.iter().copied(), &mut events);
        let rate = u64::from(self.session.input.rate().hz());
        let mut flow = Flow::Continue;
        for ev in events.drain(..) {
            flow = match ev {
                VadEvent::SpeechStart(at) => self.speech_started(conn, at * 1000 / rate).await,
                VadEvent::SpeechEnd(at) => {
                    let end = at * 1000 / rate;
                    self.send(
                        conn,
                        json!({"type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": end, "item_id": format!("item_user_{}", self.turns + 1)}),
                    )
                    .await;
                    self.caller_turn(conn, true).await
                }
            };
            if !matches!(flow, Flow::Continue) {
                break;
            }
        }
        self.vad_events = events;
        flow
    }

    async fn speech_started(&mut self, conn: &mut MockConnection, at_ms: u64) -> Flow {
        let item = format!("item_user_{}", self.turns + 1);
        if !self
            .send(
                conn,
                json!({"type": "input_audio_buffer.speech_started",
                "audio_start_ms": at_ms, "item_id": item}),
            )
            .await
        {
            return Flow::Stop;
        }
        if self.playing.is_some() && self.session.vad == Some(true) {
            return self.cancel(conn, "turn_detected").await;
        }
        Flow::Continue
    }

    async fn cancel(&mut self, conn: &mut MockConnection, reason: &str) -> Flow {
        let details = json!({"type": "cancelled", "reason": reason});
        self.end_response(conn, "cancelled", details, [20, 15, 5])
            .await
    }

    async fn caller_turn(&mut self, conn: &mut MockConnection, respond: bool) -> Flow {
        self.turns += 1;
        conn.count_turn();
        let item = format!("item_user_{}", self.turns);
        let mut ok = self
            .send(conn, json!({"type": "input_audio_buffer.committed", "item_id": item,
                "previous_item_id": null}))
            .await
            && self
                .send(conn, json!({"type": "conversation.item.added", "item": {
                    "id": item, "type": "message", "role": "user", "content": [{"type": "input_audio"}]}}))
                .await;
        if ok && self.session.transcription {
            let text = format!("caller turn {}", self.turns);
            ok = self
                .send(
                    conn,
                    json!({"type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item, "content_index": 0, "delta": "caller "}),
                )
                .await
                && self
                    .send(
                        conn,
                        json!({"type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item, "content_index": 0, "transcript": text,
                        "usage": {"type": "duration", "seconds": 1}}),
                    )
                    .await;
        }
        if !ok {
            return Flow::Stop;
        }
        if !respond {
            return Flow::Continue;
        }
        if self
            .script
            .stall_after_turns
            .is_some_and(|n| self.turns >= n)
        {
            if self.playing.is_some() {
                return self.cancel(conn, "turn_detected").await;
            }
            return Flow::Continue;
        }
        if self.playing.is_some() {
            self.cancel(conn, "turn_detected").await;
        }
        let turn = self.turns;
        self.start_reply(conn, clips::reply(), Some(turn)).await
    }

    async fn function_call(
        &mut self,
        conn: &mut MockConnection,
        response_id: &str,
        name: &str,
        args: &Value,
    ) -> bool {
        let call_id = self.id("call");
        let item_id = self.id("item");
        let arguments = args.to_string();
        self.outstanding.insert(call_id.clone());
        self.send(conn, json!({"type": "response.output_item.added", "response_id": response_id,
            "output_index": 1, "item": {"id": item_id, "type": "function_call", "status": "in_progress",
            "call_id": call_id, "name": name, "arguments": ""}}))
            .await
            && self
                .send(conn, json!({"type": "response.function_call_arguments.delta",
                    "response_id": response_id, "item_id": item_id, "output_index": 1,
                    "call_id": call_id, "delta": arguments}))
                .await
            && self
                .send(conn, json!({"type": "response.function_call_arguments.done",
                    "response_id": response_id, "item_id": item_id, "output_index": 1,
                    "call_id": call_id, "name": name, "arguments": arguments}))
                .await
    }

    async fn start_reply(
        &mut self,
        conn: &mut MockConnection,
        clip: &'static Clip,
        turn: Option<u32>,
    ) -> Flow {
        self.replies += 1;
        let response_id = self.id("resp");
        let item_id = self.id("item");
        let format = self.session.output;
        let which = usize::from(std::ptr::eq(clip, clips::reply()));
        let audio = cached(which, clip, format);
        let mut ok = self
            .send(conn, json!({"type": "response.created", "response": {
                "id": response_id, "object": "realtime.response", "status": "in_progress", "output": []}}))
            .await;
        if ok && self.script.rate_limits {
            ok = self
                .send(conn, json!({"type": "rate_limits.updated", "rate_limits": [
                    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                    {"name": "tokens", "limit": 100000, "remaining": 99000, "reset_seconds": 0.6}]}))
                .await;
        }
        ok = ok
            && self
                .send(conn, json!({"type": "response.output_item.added", "response_id": response_id,
                    "output_index": 0, "item": {"id": item_id, "type": "message", "role": "assistant",
                    "status": "in_progress", "content": []}}))
                .await
            && self
                .send(conn, json!({"type": "response.content_part.added", "response_id": response_id,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": {"type": "audio", "transcript": ""}}))
                .await;
        if !ok {
            return Flow::Stop;
        }
        let close_mid = match &self.script.close_mid_response {
            Some((t, how)) if turn == Some(*t) => Some(how.clone()),
            _ => None,
        };
        let bytes_per_ms = format.rate().hz() as usize / 1000 * format.bytes_per_sample();
        let step = (bytes_per_ms * self.script.chunk_ms.max(10) as usize).max(2);
        let words: Vec<&str> = clip.transcript.split_inclusive(' ').collect();
        let chunks = audio.len().div_ceil(step).max(1);
        let mut sent_words = 0;
        for (i, chunk) in audio.chunks(step).enumerate() {
            ok = self
                .send(
                    conn,
                    json!({"type": "response.output_audio.delta", "response_id": response_id,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "delta": B64.encode(chunk)}),
                )
                .await;
            // Spread the transcript deltas over the audio.
            let due = (words.len() * (i + 1)).div_ceil(chunks);
            while ok && sent_words < due.min(words.len()) {
                ok = self
                    .send(
                        conn,
                        json!({"type": "response.output_audio_transcript.delta",
                        "response_id": response_id, "item_id": item_id, "output_index": 0,
                        "content_index": 0, "delta": words[sent_words]}),
                    )
                    .await;
                sent_words += 1;
            }
            if !ok {
                return Flow::Stop;
            }
            if i == 1 {
                match close_mid {
                    Some(MidResponseClose::Abort) => return Flow::Abort,
                    Some(MidResponseClose::Close { code, reason }) => {
                        conn.close(code, &reason).await;
                        return Flow::Stop;
                    }
                    None => {}
                }
            }
        }
        let audio_ms = (audio.len() / bytes_per_ms.max(1)) as u64;
        if self.items.len() < 10_000 {
            self.items.insert(item_id.clone(), audio_ms);
        }
        ok = self
            .send(conn, json!({"type": "response.output_audio.done", "response_id": response_id,
                "item_id": item_id, "output_index": 0, "content_index": 0}))
            .await
            && self
                .send(conn, json!({"type": "response.output_audio_transcript.done",
                    "response_id": response_id, "item_id": item_id, "output_index": 0,
                    "content_index": 0, "transcript": clip.transcript}))
                .await
            && self
                .send(conn, json!({"type": "response.content_part.done", "response_id": response_id,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": {"type": "audio", "transcript": clip.transcript}}))
                .await
            && self
                .send(conn, json!({"type": "response.output_item.done", "response_id": response_id,
                    "output_index": 0, "item": {"id": item_id, "type": "message", "role": "assistant",
                    "status": "completed", "content": []}}))
                .await;
        if ok && turn.is_some() && turn == self.script.end_call_after_turns {
            let args = json!({"reason": "the caller's request is handled"});
            ok = self
                .function_call(conn, &response_id, "end_call", &args)
                .await;
        }
        if let Some((t, name, args)) = self.script.tool_call_at_turn.clone()
            && ok
            && turn == Some(t)
        {
            ok = self.function_call(conn, &response_id, &name, &args).await;
        }
        if !ok {
            return Flow::Stop;
        }
        let speed = if self.script.playback_speed > 0.0 {
            self.script.playback_speed
        } else {
            1.0
        };
        self.playing = Some(Playing {
            ends_at: Instant::now() + clip.duration().div_f64(speed),
            response_id,
            turn,
        });
        Flow::Continue
    }

    async fn finish_reply(&mut self, conn: &mut MockConnection) -> Flow {
        let turn = self.playing.as_ref().and_then(|p| p.turn);
        let flow = self
            .end_response(conn, "completed", Value::Null, [150, 100, 50])
            .await;
        match &self.script.close_after_turn {
            Some((t, how)) if turn == Some(*t) && matches!(flow, Flow::Continue) => match how {
                MidResponseClose::Abort => Flow::Abort,
                MidResponseClose::Close { code, reason } => {
                    conn.close(*code, reason).await;
                    Flow::Stop
                }
            },
            _ => flow,
        }
    }

    /// Ends the playing response (if any) with `response.done` in `status`,
    /// with `details` and `[total, input, output]` token usage.
    async fn end_response(
        &mut self,
        conn: &mut MockConnection,
        status: &str,
        details: Value,
        [total, input, output]: [u32; 3],
    ) -> Flow {
        let Some(p) = self.playing.take() else {
            return Flow::Continue;
        };
        let ok = self
            .send(
                conn,
                json!({"type": "response.done", "response": {
                "id": p.response_id, "object": "realtime.response", "status": status,
                "status_details": details, "output": [],
                "usage": {"total_tokens": total, "input_tokens": input, "output_tokens": output,
                    "input_token_details": {"cached_tokens": 0, "text_tokens": input / 2,
                        "audio_tokens": input - input / 2, "image_tokens": 0,
                        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
                    "output_token_details": {"text_tokens": output / 5, "audio_tokens": output - output / 5}}}}),
            )
            .await;
        if ok { Flow::Continue } else { Flow::Stop }
    }
}
