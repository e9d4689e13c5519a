//! One mock GPT-Live connection: the handshake checks, the strict
//! validation of every client event against the session's state, the VAD
//! on the decoded caller audio, paced replies, scripted delegations and
//! tool calls, and the close.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use callbridge_llm_bridge::audio::{AudioFormat, alaw_to_linear, ulaw_to_linear};
use callbridge_llm_bridge::gpt_live::wire::{ClientEvent, Delegation, SessionObject};

use super::{GptLiveHandler, GptLiveScript, StartReply};
use crate::clips::{self, Clip};
use crate::openai::{MidResponseClose, clip_in_format};
use crate::server::{Incoming, MockConnection};
use crate::vad::{EnergyVad, VadEvent};

/// A reply being sent: its chunks (with the transcript word due with
/// each), when the next is due, and what follows it.
struct Reply {
    chunks: VecDeque<(Bytes, Option<String>)>,
    next_at: Instant,
    /// Milliseconds of audio per chunk.
    chunk_ms: u64,
    turn: Option<u32>,
    end_call_after: bool,
}

/// Which `session.*.append` event.
#[derive(Clone, Copy)]
enum Append {
    Instructions,
    Thinking,
    Commentary,
}

/// The contract's limit on an append's content.
const MAX_APPEND_TOKENS: usize = 500;

enum Flow {
    Continue,
    Stop,
    Abort,
}

struct Conversation {
    h: Arc<GptLiveHandler>,
    script: GptLiveScript,
    t0: Instant,
    next_id: u64,
    session: Option<SessionObject>,
    format: AudioFormat,
    responses: bool,
    closing: bool,
    vad: EnergyVad,
    vad_events: Vec<VadEvent>,
    pcm: Vec<i16>,
    turns: u32,
    greeted: bool,
    reply: Option<Reply>,
    /// Output timeline position (ms) of the next reply chunk.
    out_ms: u64,
    client_delegations: HashSet<String>,
    /// Unanswered function calls: call id → name.
    calls: HashMap<String, String>,
    /// A function output arrived; the reply waits for `response.create`.
    reply_due: bool,
}

pub(super) async fn run_connection(h: Arc<GptLiveHandler>, mut conn: MockConnection) {
    let script = h.book.for_connection(conn.index());
    if let Some(q) = conn.header(":path").and_then(|p| p.split_once('?')) {
        conn.violation(format!("query parameters on the Live URL: {}", q.1));
    }
    if conn.header("openai-beta").is_some() {
        conn.violation("OpenAI-Beta header sent to the Live API");
    }
    let mut c = Conversation {
        vad: EnergyVad::new(8000, script.vad_threshold, script.vad_silence_ms),
        h,
        script,
        t0: Instant::now(),
        next_id: 0,
        session: None,
        format: AudioFormat::Pcmu,
        responses: false,
        closing: false,
        vad_events: Vec::new(),
        pcm: Vec::with_capacity(4096),
        turns: 0,
        greeted: false,
        reply: None,
        out_ms: 0,
        client_delegations: HashSet::new(),
        calls: HashMap::new(),
        reply_due: false,
    };
    if let Some(key) = &c.script.expect_api_key {
        let want = format!("Bearer {key}");
        if conn.header("authorization") != Some(want.as_str()) {
            conn.violation("missing or wrong Authorization header");
            c.error(&mut conn, "invalid_api_key", "Incorrect API key provided.")
                .await;
            conn.close(1008, "invalid_api_key").await;
            return;
        }
    }
    c.run(conn).await;
}

impl Conversation {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_mock{}", self.next_id)
    }

    async fn send(&mut self, conn: &mut MockConnection, mut v: Value) -> bool {
        let event_id = self.id("event");
        if let Some(m) = v.as_object_mut()
            && m.get("type") != Some(&json!("session.output_audio.delta"))
        {
            m.insert("event_id".into(), json!(event_id));
        }
        conn.send_json(&v, false).await.is_ok()
    }

    async fn error(&mut self, conn: &mut MockConnection, code: &str, message: &str) -> bool {
        self.h.log(|l| l.errors.push(code.to_owned()));
        self.send(
            conn,
            json!({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                   "message": message}}),
        )
        .await
    }

    /// A client violation: recorded, answered with an `error` event.
    async fn refuse(&mut self, conn: &mut MockConnection, code: &str, message: &str) -> Flow {
        conn.violation(format!("{code}: {message}"));
        if self.error(conn, code, message).await {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    fn resource(&self) -> Value {
        let mut s = serde_json::to_value(&self.session).unwrap_or(Value::Null);
        if let Some(m) = s.as_object_mut() {
            m.insert("id".into(), json!("sess_mock"));
            m.insert("expires_at".into(), json!(4_102_444_800u64));
            m.insert("status".into(), json!("active"));
        }
        s
    }

    async fn run(&mut self, mut conn: MockConnection) {
        loop {
            let due = self.reply.as_ref().map(|r| r.next_at);
            let flow = tokio::select! {
                inc = conn.recv() => match inc {
                    Incoming::Json(v) => self.on_event(&mut conn, v).await,
                    Incoming::NotJson(e) => self.refuse(&mut conn, "invalid_json", &e).await,
                    Incoming::Closed { .. } | Incoming::Gone => Flow::Stop,
                },
                () = crate::server::sleep_until_opt(due) => self.next_chunk(&mut conn).await,
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::Abort => return conn.abort(),
            }
        }
    }

    async fn on_event(&mut self, conn: &mut MockConnection, v: Value) -> Flow {
        let ev: ClientEvent = match serde_json::from_value(v) {
            Ok(ev) => ev,
            Err(e) => return self.refuse(conn, "unknown_parameter", &e.to_string()).await,
        };
        if self.closing {
            return self
                .refuse(conn, "session_closing", "event after session.close")
                .await;
        }
        match ev {
            ClientEvent::SessionStart { session, .. } => self.start(conn, session).await,
            _ if self.session.is_none() => {
                self.refuse(
                    conn,
                    "session_not_started",
                    "send session.start and wait for session.started first",
                )
                .await
            }
            ClientEvent::SessionUpdate { session, .. } => {
                self.responses = matches!(session.delegation, Delegation::Responses { .. });
                let snapshot = self.resource();
                if self
                    .send(
                        conn,
                        json!({"type": "session.updated", "session": snapshot}),
                    )
                    .await
                {
                    Flow::Continue
                } else {
                    Flow::Stop
                }
            }
            ClientEvent::InputAudioAppend { audio, .. } => self.on_audio(conn, &audio).await,
            ClientEvent::InputAudioMute { .. } | ClientEvent::InputAudioUnmute { .. } => {
                Flow::Continue
            }
            ClientEvent::InstructionsAppend {
                content,
                delegation_id,
                ..
            } => {
                self.on_append(conn, Append::Instructions, content, delegation_id)
                    .await
            }
            ClientEvent::ThinkingAppend {
                content,
                delegation_id,
                ..
            } => {
                self.on_append(conn, Append::Thinking, content, delegation_id)
                    .await
            }
            ClientEvent::CommentaryAppend {
                content,
                delegation_id,
                ..
            } => {
                self.on_append(conn, Append::Commentary, content, delegation_id)
                    .await
            }
            ClientEvent::ResponseItemCreate { item, .. } => self.on_item(conn, item).await,
            ClientEvent::ResponseCreate { .. } => {
                if !self.responses {
                    return self
                        .refuse(
                            conn,
                            "delegation_not_responses",
                            "response.create needs Responses delegation",
                        )
                        .await;
                }
                self.h.log(|l| l.response_creates += 1);
                if std::mem::take(&mut self.reply_due) {
                    let turn = Some(self.turns);
                    return self.start_reply(clips::reply(), turn, false);
                }
                Flow::Continue
            }
            ClientEvent::SessionClose { .. } => {
                self.closing = true;
                self.reply = None;
                self.h.log(|l| l.closes += 1);
                let snapshot = self.resource();
                let seconds = self.t0.elapsed().as_secs_f64();
                if self
                    .send(
                        conn,
                        json!({"type": "session.closed", "reason": "close_requested",
                        "session": snapshot, "usage": {"seconds": seconds}}),
                    )
                    .await
                {
                    Flow::Continue
                } else {
                    Flow::Stop
                }
            }
        }
    }

    async fn start(&mut self, conn: &mut MockConnection, session: SessionObject) -> Flow {
        if self.session.is_some() {
            return self
                .refuse(
                    conn,
                    "session_already_started",
                    "session.start was already sent",
                )
                .await;
        }
        if session.model.trim().is_empty() {
            return self
                .refuse(conn, "invalid_value", "session.model is empty")
                .await;
        }
        let format = match session.audio.as_ref().and_then(|a| a.format) {
            None => AudioFormat::PCM_24K,
            Some(f) => match f.format() {
                Some(f) => f,
                None => {
                    return self
                        .refuse(
                            conn,
                            "invalid_value",
                            "session.audio.format: G.711 is 8000 Hz, PCM 16000 or 24000 Hz",
                        )
                        .await;
                }
            },
        };
        match self.script.start.clone() {
            StartReply::Ready => {}
            StartReply::Delay(d) => tokio::time::sleep(d).await,
            StartReply::Never => return Flow::Continue,
            StartReply::Reject => {
                return if self
                    .error(conn, "server_error", "the session could not start")
                    .await
                {
                    Flow::Continue
                } else {
                    Flow::Stop
                };
            }
            StartReply::Close { code, reason } => {
                conn.close(code, &reason).await;
                return Flow::Stop;
            }
        }
        self.format = format;
        self.vad = EnergyVad::new(
            format.rate().hz(),
            self.script.vad_threshold,
            self.script.vad_silence_ms,
        );
        self.responses = matches!(session.delegation, Some(Delegation::Responses { .. }));
        self.h.log(|l| l.starts.push(session.clone()));
        self.session = Some(session);
        conn.count_setup(false);
        self.t0 = Instant::now();
        let snapshot = self.resource();
        if self
            .send(
                conn,
                json!({"type": "session.started", "session": snapshot}),
            )
            .await
        {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    async fn on_audio(&mut self, conn: &mut MockConnection, audio: &str) -> Flow {
        let Ok(bytes) = B64.decode(audio) else {
            return self
                .refuse(
                    conn,
                    "invalid_base64",
                    "session.input_audio.append: audio is not base64",
                )
                .await;
        };
        let format = self.format;
        if bytes.len() % format.bytes_per_sample() != 0 {
            return self
                .refuse(conn, "invalid_value", "audio is not whole 16-bit samples")
                .await;
        }
        conn.count_audio(bytes.len());
        self.pcm.clear();
        match format {
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
        let rate = u64::from(format.rate().hz());
        let mut flow = Flow::Continue;
        let mut start_ms = 0;
        for ev in events.drain(..) {
            flow = match ev {
                VadEvent::SpeechStart(at) => {
                    start_ms = at * 1000 / rate;
                    if self.reply.take().is_some() {
                        // Full duplex: the model yields by going quiet.
                        self.h.log(|l| l.barge_ins += 1);
                    }
                    Flow::Continue
                }
                VadEvent::SpeechEnd(at) => self.caller_turn(conn, start_ms, at * 1000 / rate).await,
            };
            if !matches!(flow, Flow::Continue) {
                break;
            }
        }
        self.vad_events = events;
        flow
    }

    async fn caller_turn(&mut self, conn: &mut MockConnection, start_ms: u64, end_ms: u64) -> Flow {
        self.turns += 1;
        conn.count_turn();
        let turn = self.turns;
        let text = match &self.script.delegation_task {
            Some(task) if self.script.client_delegation_at_turn == Some(turn) => task.clone(),
            _ => format!("caller turn {turn}"),
        };
        if !self
            .send(
                conn,
                json!({"type": "session.input_transcript.delta", "delta": text,
                "start_ms": start_ms, "end_ms": end_ms}),
            )
            .await
        {
            return Flow::Stop;
        }
        if let Some((t, target)) = self.script.transfer_at_turn.clone()
            && t == turn
        {
            return self
                .function_call(
                    conn,
                    "transfer_call",
                    json!({"target": target, "reason": "caller asked"}),
                )
                .await;
        }
        if let Some((t, name, args)) = self.script.tool_call_at_turn.clone()
            && t == turn
        {
            return self.function_call(conn, &name, args).await;
        }
        if self.script.client_delegation_at_turn == Some(turn) {
            let id = self.id("del");
            self.client_delegations.insert(id.clone());
            let offset = self.t0.elapsed().as_millis() as u64;
            if !self
                .send(
                    conn,
                    json!({"type": "session.delegation.created", "offset_ms": offset,
                    "delegation": {"id": id, "target": "client", "type": "delegation"}}),
                )
                .await
            {
                return Flow::Stop;
            }
        }
        let end_call = self.script.end_call_after_turns == Some(turn);
        self.start_reply(clips::reply(), Some(turn), end_call)
    }

    async fn function_call(&mut self, conn: &mut MockConnection, name: &str, args: Value) -> Flow {
        if !self.responses {
            conn.violation(format!(
                "scripted {name} call under client delegation: no tools"
            ));
            return Flow::Continue;
        }
        let del = self.id("del");
        let call_id = self.id("call");
        let item_id = self.id("fc");
        let resp = self.id("resp");
        self.calls.insert(call_id.clone(), name.to_owned());
        let offset = self.t0.elapsed().as_millis() as u64;
        let ok = self
            .send(conn, json!({"type": "session.delegation.created", "offset_ms": offset,
                "delegation": {"id": del, "target": "responses", "type": "delegation", "response_id": resp}}))
            .await
            && self
                .send(conn, json!({"type": "response.event", "delegation_id": del, "event": {
                    "type": "response.output_item.done", "output_index": 0, "sequence_number": 1,
                    "item": {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
                             "arguments": args.to_string(), "status": "completed"}}}))
                .await
            // The backend response ends as a Responses stream ends: its
            // `response.completed` carries the whole response with its
            // `ResponseUsage` (details are parts of the totals).
            && self
                .send(conn, json!({"type": "response.event", "delegation_id": del, "event": {
                    "type": "response.completed", "sequence_number": 2,
                    "response": {"id": resp, "object": "response", "status": "completed",
                        "output": [{"type": "function_call", "id": item_id, "call_id": call_id,
                                    "name": name, "arguments": args.to_string(), "status": "completed"}],
                        "usage": {"input_tokens": super::DELEGATION_INPUT_TOKENS,
                                  "input_tokens_details": {"cached_tokens": 0},
                                  "output_tokens": super::DELEGATION_OUTPUT_TOKENS,
                                  "output_tokens_details": {"reasoning_tokens": 0},
                                  "total_tokens": super::DELEGATION_INPUT_TOKENS + super::DELEGATION_OUTPUT_TOKENS}}}}))
                .await;
        if ok { Flow::Continue } else { Flow::Stop }
    }

    async fn on_append(
        &mut self,
        conn: &mut MockConnection,
        kind: Append,
        content: String,
        delegation_id: Option<String>,
    ) -> Flow {
        if content.trim().is_empty() {
            return self.refuse(conn, "invalid_value", "content is empty").await;
        }
        // "limited to 500 tokens" (openai-python `types/live/*_append_event_param.py`).
        // The mock has no tokenizer: more than 4 characters a token on
        // average is refused (the bridge sends at most 1,500 characters).
        if content.chars().count() > MAX_APPEND_TOKENS * 4 {
            return self
                .refuse(conn, "invalid_value", "content exceeds 500 tokens")
                .await;
        }
        if let Some(id) = &delegation_id {
            if self.responses {
                return self
                    .refuse(
                        conn,
                        "invalid_value",
                        "delegation_id is not accepted with Responses delegation",
                    )
                    .await;
            }
            // A delegation takes several appends (progress as thinking,
            // then the result as commentary): it stays open.
            if !self.client_delegations.contains(id) {
                return self
                    .refuse(conn, "unknown_delegation", "no such client delegation")
                    .await;
            }
        }
        let general = delegation_id.is_none();
        let delegated = delegation_id.is_some();
        self.h.log(|l| {
            let to = match kind {
                Append::Instructions => &mut l.instructions,
                Append::Thinking => &mut l.thinking,
                Append::Commentary => &mut l.commentary,
            };
            to.push((content, delegation_id));
        });
        // A delegation's commentary is a result the model communicates.
        if delegated && matches!(kind, Append::Commentary) && self.reply.is_none() {
            let turn = Some(self.turns);
            return self.start_reply(clips::reply(), turn, false);
        }
        // General context (the greeting prompt, keys pressed) makes the
        // model speak when it is quiet; thinking is silent.
        if general && !matches!(kind, Append::Thinking) && self.reply.is_none() {
            let clip = if self.greeted {
                clips::reply()
            } else {
                clips::greeting()
            };
            self.greeted = true;
            return self.start_reply(clip, None, false);
        }
        Flow::Continue
    }

    async fn on_item(&mut self, conn: &mut MockConnection, item: Value) -> Flow {
        if !self.responses {
            return self
                .refuse(
                    conn,
                    "delegation_not_responses",
                    "response.item.create needs Responses delegation",
                )
                .await;
        }
        let obj = item.as_object();
        let allowed = ["type", "call_id", "output", "id", "status"];
        let shape_ok = obj.is_some_and(|o| {
            o.get("type") == Some(&json!("function_call_output"))
                && o.get("call_id").is_some_and(Value::is_string)
                && o.get("output").is_some_and(Value::is_string)
                && o.keys().all(|k| allowed.contains(&k.as_str()))
        });
        if !shape_ok {
            return self
                .refuse(
                    conn,
                    "invalid_value",
                    "item: a function_call_output {call_id, output}",
                )
                .await;
        }
        let call_id = item["call_id"].as_str().unwrap_or_default().to_owned();
        let output = item["output"].as_str().unwrap_or_default().to_owned();
        let Some(name) = self.calls.remove(&call_id) else {
            return self
                .refuse(conn, "unknown_call_id", "no such function call")
                .await;
        };
        self.h.log(|l| l.function_outputs.push((call_id, output)));
        // After end_call the conversation is over; otherwise reply once
        // the client asks for the response.
        self.reply_due = name != callbridge_llm_bridge::tools::END_CALL;
        Flow::Continue
    }

    /// The clip in the session format (PCM 16 kHz by dropping every third
    /// 24 kHz sample: a mock, not a resampler).
    fn audio(&self, clip: &Clip) -> Bytes {
        match self.format {
            AudioFormat::Pcm16 { rate } if rate.hz() == 16000 => clip
                .samples()
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 3 != 2)
                .flat_map(|(_, s)| s.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
            f => clip_in_format(clip, f),
        }
    }

    fn start_reply(
        &mut self,
        clip: &'static Clip,
        turn: Option<u32>,
        end_call_after: bool,
    ) -> Flow {
        let format = self.format;
        let audio = self.audio(clip);
        let chunk_ms = u64::from(self.script.chunk_ms.max(10));
        let step =
            (format.rate().hz() as usize / 1000 * format.bytes_per_sample() * chunk_ms as usize)
                .max(2);
        let words: Vec<&str> = clip.transcript.split_inclusive(' ').collect();
        let n = audio.len().div_ceil(step).max(1);
        let mut sent = 0;
        let chunks = audio
            .chunks(step)
            .enumerate()
            .map(|(i, c)| {
                let due = (words.len() * (i + 1)).div_ceil(n).min(words.len());
                let text: String = words[sent.min(due)..due].concat();
                sent = due;
                (
                    Bytes::copy_from_slice(c),
                    (!text.is_empty()).then_some(text),
                )
            })
            .collect();
        self.reply = Some(Reply {
            chunks,
            next_at: Instant::now(),
            chunk_ms,
            turn,
            end_call_after,
        });
        Flow::Continue
    }

    async fn next_chunk(&mut self, conn: &mut MockConnection) -> Flow {
        let Some(mut r) = self.reply.take() else {
            return Flow::Continue;
        };
        let Some((audio, text)) = r.chunks.pop_front() else {
            return self.reply_done(conn, r).await;
        };
        let start = self.out_ms.max(self.t0.elapsed().as_millis() as u64);
        self.out_ms = start + r.chunk_ms;
        let mut ok = self
            .send(
                conn,
                json!({"type": "session.output_audio.delta", "delta": B64.encode(&audio)}),
            )
            .await;
        if ok && let Some(text) = text {
            ok = self
                .send(
                    conn,
                    json!({"type": "session.output_transcript.delta", "delta": text,
                    "start_ms": start, "end_ms": start + r.chunk_ms}),
                )
                .await;
        }
        if !ok {
            return Flow::Stop;
        }
        let speed = if self.script.playback_speed > 0.0 {
            self.script.playback_speed
        } else {
            1.0
        };
        r.next_at += std::time::Duration::from_secs_f64(r.chunk_ms as f64 / 1000.0 / speed);
        self.reply = Some(r);
        Flow::Continue
    }

    async fn reply_done(&mut self, conn: &mut MockConnection, r: Reply) -> Flow {
        if !self.send_usage(conn).await {
            return Flow::Stop;
        }
        if r.end_call_after {
            let flow = self
                .function_call(
                    conn,
                    callbridge_llm_bridge::tools::END_CALL,
                    json!({"reason": "done"}),
                )
                .await;
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
        match &self.script.close_after_turn {
            Some((t, how)) if r.turn == Some(*t) => match how.clone() {
                MidResponseClose::Abort => Flow::Abort,
                MidResponseClose::Close { code, reason } => {
                    conn.close(code, &reason).await;
                    Flow::Stop
                }
            },
            _ => Flow::Continue,
        }
    }

    /// `session.usage.updated` as the service sends it (token usage, issue
    /// 22): the session's audio so far in seconds, a running total; the
    /// live session reports no tokens.
    async fn send_usage(&mut self, conn: &mut MockConnection) -> bool {
        let seconds = self.t0.elapsed().as_secs_f64();
        self.send(
            conn,
            json!({"type": "session.usage.updated", "usage": {"seconds": seconds}}),
        )
        .await
    }
}
