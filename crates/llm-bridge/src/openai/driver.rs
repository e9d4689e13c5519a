//! The OpenAI Realtime session task (tokio): the only owner of the WebSocket.
//!
//! Owns: connect + wait for `session.created` + `session.update` + wait for
//! `session.updated` (per attempt, under the retry policy), and the run
//! loop: server events -> [`ModelEvent`]s, commands -> client events. It
//! keeps the little state the protocol needs: the active response (for
//! `response.cancel`), the assistant audio item being played and how much
//! of it the caller heard (for `conversation.item.truncate` on barge-in,
//! protocols.md §2.6), unanswered function calls (one `response.create`
//! once all are answered), and the transcript text already reported per
//! item (so a `.done` / `.completed` event reports only what the deltas
//! did not).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::wire::{self, Inbound, ResponseStatus};
use crate::audio::{AudioChunk, AudioFormat};
use crate::config::{CallMetadata, SessionConfig, TurnDetection};
use crate::error::{ConnectFailure, Error};
use crate::event::{CloseReason, ErrorKind, ModelEvent, ToolCall, ToolCallId};
use crate::provider::Provider;
use crate::session::{CloseOutcome, Command, DriverContext};
use crate::transport::{self, Connection};

/// Everything needed to connect, shared by `open` and the task.
#[derive(Debug)]
pub(crate) struct Params {
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) config: SessionConfig,
    pub(crate) metadata: CallMetadata,
    /// Audio format sent to the model.
    pub(crate) input: AudioFormat,
    /// Audio format the model sends.
    pub(crate) output: AudioFormat,
}

/// Bound on unanswered function calls remembered.
const MAX_PENDING_CALLS: usize = 64;
/// Bound on transcript text remembered per item (for delta/done reconciliation).
const MAX_TRANSCRIPT_BYTES: usize = 64 * 1024;
/// Server error code of a `response.cancel` that found nothing running
/// (expected when the server's own VAD cancelled first).
const CANCEL_NOT_ACTIVE: &str = "response_cancel_not_active";

async fn send_text(
    conn: &mut Connection,
    text: impl Into<Utf8Bytes>,
) -> Result<(), tungstenite::Error> {
    conn.ws.send(Message::Text(text.into())).await
}

fn setup_failure(e: tungstenite::Error) -> ConnectFailure {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ConnectFailure::ClosedDuringSetup {
                code: 1006,
                reason: String::new(),
            }
        }
        tungstenite::Error::Io(io) => ConnectFailure::Io(io.kind()),
        _ => ConnectFailure::Protocol("invalid WebSocket frame during setup"),
    }
}

/// Reads server events until `want` is seen. An `error` event or a frame
/// that is not an event fails the setup (not retryable: the configuration
/// or the server is wrong).
async fn wait_for(conn: &mut Connection, want: &Inbound) -> Result<(), ConnectFailure> {
    loop {
        let payload = match conn.ws.next().await {
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = transport::close_parts(frame.as_ref());
                return Err(ConnectFailure::ClosedDuringSetup { code, reason });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(setup_failure(e)),
            None => {
                return Err(ConnectFailure::ClosedDuringSetup {
                    code: 1006,
                    reason: String::new(),
                });
            }
        };
        match wire::decode_server_event(&payload) {
            Ok(ev) if ev == *want => return Ok(()),
            Ok(Inbound::Error { code, message }) => {
                tracing::warn!(?code, %message, "openai rejected the session setup");
                return Err(ConnectFailure::Protocol(
                    "the server answered the session setup with an error event",
                ));
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "openai: bad event during setup");
                return Err(ConnectFailure::Protocol(
                    "malformed event during session setup",
                ));
            }
        }
    }
}

/// One attempt: connect, wait for `session.created`, send `session.update`,
/// wait for `session.updated`.
pub(crate) async fn connect_and_setup(params: &Params) -> Result<Connection, ConnectFailure> {
    let cfg = &params.config;
    let mut conn = transport::connect(&params.url, &params.headers, cfg.connect_timeout).await?;
    let update = wire::session_update_message(cfg, &params.metadata, params.input, params.output);
    let setup = async {
        wait_for(&mut conn, &Inbound::SessionCreated).await?;
        send_text(&mut conn, update).await.map_err(setup_failure)?;
        wait_for(&mut conn, &Inbound::SessionUpdated).await
    };
    match tokio::time::timeout(cfg.setup_timeout, setup).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ConnectFailure::SetupTimeout(cfg.setup_timeout)),
    }
}

/// Opens with retries.
pub(crate) async fn open_connection(params: &Params) -> Result<Connection, Error> {
    transport::with_retry(Provider::OpenAi, &params.config.retry, |attempt| {
        tracing::debug!(attempt, "openai connect");
        connect_and_setup(params)
    })
    .await
}

/// The assistant audio item being played to the caller.
#[derive(Debug)]
struct PlayingItem {
    item_id: String,
    /// Audio received for it so far.
    received: Duration,
    /// Audio the caller has heard, as last reported (`None`: never reported).
    played: Option<Duration>,
}

/// Transcript text already reported for one item.
#[derive(Debug, Default)]
struct TranscriptSoFar {
    item_id: String,
    text: String,
}

impl TranscriptSoFar {
    fn delta(&mut self, item_id: &str, text: &str) {
        if self.item_id != item_id {
            self.item_id.clear();
            self.item_id.push_str(item_id);
            self.text.clear();
        }
        if self.text.len() + text.len() <= MAX_TRANSCRIPT_BYTES {
            self.text.push_str(text);
        }
    }

    /// What of the full `transcript` was not reported yet (all of it when
    /// the deltas do not prefix it).
    fn rest(&mut self, item_id: &str, transcript: String) -> String {
        let rest = if self.item_id == item_id && transcript.starts_with(&self.text) {
            transcript[self.text.len()..].to_owned()
        } else {
            transcript
        };
        self.item_id.clear();
        self.text.clear();
        rest
    }
}

enum Step {
    Continue,
    End(CloseOutcome),
}

pub(crate) struct Driver {
    params: Arc<Params>,
    conn: Connection,
    ctx: DriverContext,
    out: BytesMut,
    greeted: bool,
    /// The response in progress (between `response.created` and `response.done`).
    response: Option<String>,
    /// A `response.create` was sent and its `response.created` is not in yet.
    response_requested: bool,
    /// Send `response.create` once the current response is done.
    want_response: bool,
    /// A response this client cancelled; its late deltas are dropped.
    cancelled: Option<String>,
    playing: Option<PlayingItem>,
    pending_calls: HashSet<String>,
    input_text: TranscriptSoFar,
    output_text: TranscriptSoFar,
}

impl Driver {
    pub(crate) fn new(params: Arc<Params>, conn: Connection, ctx: DriverContext) -> Self {
        Driver {
            params,
            conn,
            ctx,
            out: BytesMut::with_capacity(16 * 1024),
            greeted: false,
            response: None,
            response_requested: false,
            want_response: false,
            cancelled: None,
            playing: None,
            pending_calls: HashSet::new(),
            input_text: TranscriptSoFar::default(),
            output_text: TranscriptSoFar::default(),
        }
    }

    pub(crate) async fn run(mut self) -> CloseOutcome {
        loop {
            let step = tokio::select! {
                biased;
                () = self.ctx.close.cancelled() => self.client_close().await,
                msg = self.conn.ws.next() => self.on_frame(msg).await,
                cmd = self.ctx.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => self.client_close().await,
                },
            };
            if let Step::End(outcome) = step {
                return outcome;
            }
        }
    }

    async fn client_close(&mut self) -> Step {
        let clean =
            transport::close_connection(&mut self.conn, self.params.config.close_timeout).await;
        Step::End(CloseOutcome {
            reason: CloseReason::ClientClosed,
            clean,
        })
    }

    async fn emit(&self, ev: ModelEvent) {
        self.ctx.events.emit(ev).await;
    }

    async fn send(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), tungstenite::Error> {
        send_text(&mut self.conn, text).await
    }

    async fn on_frame(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Step {
        let payload = match msg {
            Some(Ok(Message::Text(t))) => t.into(),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = transport::close_parts(frame.as_ref());
                // tungstenite queued the close reply; drive it out.
                while let Some(Ok(_)) = self.conn.ws.next().await {}
                tracing::info!(code, %reason, "openai server closed the session");
                return Step::End(CloseOutcome {
                    clean: code == 1000,
                    reason: CloseReason::ServerClosed { code, reason },
                });
            }
            Some(Ok(_)) => return Step::Continue,
            Some(Err(tungstenite::Error::Capacity(_))) => {
                return Step::End(CloseOutcome {
                    reason: CloseReason::ProtocolError("server message over the size limit"),
                    clean: false,
                });
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "openai connection failed");
                return Step::End(CloseOutcome {
                    reason: CloseReason::ConnectionLost,
                    clean: false,
                });
            }
            None => {
                return Step::End(CloseOutcome {
                    reason: CloseReason::ConnectionLost,
                    clean: false,
                });
            }
        };
        match wire::decode_server_event(&payload) {
            Ok(ev) => match self.on_inbound(ev).await {
                Ok(()) => Step::Continue,
                Err(e) => self.send_failed(e),
            },
            Err(e) => {
                let kind = match e {
                    wire::DecodeError::Unknown => ErrorKind::UnknownMessage,
                    _ => ErrorKind::MalformedMessage,
                };
                tracing::warn!(error = %e, "skipping openai server event");
                self.emit(ModelEvent::Error {
                    kind,
                    message: e.to_string(),
                })
                .await;
                Step::Continue
            }
        }
    }

    fn send_failed(&self, e: tungstenite::Error) -> Step {
        tracing::warn!(error = %e, "openai send failed");
        Step::End(CloseOutcome {
            reason: CloseReason::ConnectionLost,
            clean: false,
        })
    }

    async fn on_inbound(&mut self, ev: Inbound) -> Result<(), tungstenite::Error> {
        let transcribe_out = self.params.config.transcription.output;
        match ev {
            Inbound::SessionCreated | Inbound::SessionUpdated | Inbound::Ignored => {}
            Inbound::SpeechStarted { .. } => self.barge_in().await?,
            Inbound::SpeechStopped => {}
            Inbound::ResponseCreated { response_id } => {
                self.response = Some(response_id);
                self.response_requested = false;
            }
            Inbound::AudioDelta {
                response_id,
                item_id,
                data,
            } => {
                if self.cancelled.as_deref() == Some(response_id.as_str()) {
                    return Ok(());
                }
                let format = self.params.output;
                let dur = format.duration_of(data.len());
                match &mut self.playing {
                    Some(p) if p.item_id == item_id => p.received += dur,
                    _ => {
                        self.playing = Some(PlayingItem {
                            item_id,
                            received: dur,
                            played: None,
                        })
                    }
                }
                self.emit(ModelEvent::Audio(AudioChunk { format, data }))
                    .await;
            }
            Inbound::AudioDone => self.emit(ModelEvent::GenerationComplete).await,
            Inbound::OutputTranscriptDelta {
                response_id,
                item_id,
                text,
            } => {
                if transcribe_out && self.cancelled.as_deref() != Some(response_id.as_str()) {
                    self.output_text.delta(&item_id, &text);
                    self.emit(ModelEvent::OutputTranscript {
                        text,
                        finished: false,
                    })
                    .await;
                }
            }
            Inbound::OutputTranscriptDone {
                item_id,
                transcript,
            } => {
                let text = self.output_text.rest(&item_id, transcript);
                if transcribe_out {
                    self.emit(ModelEvent::OutputTranscript {
                        text,
                        finished: true,
                    })
                    .await;
                }
            }
            Inbound::InputTranscriptDelta { item_id, text } => {
                self.input_text.delta(&item_id, &text);
                self.emit(ModelEvent::InputTranscript {
                    text,
                    finished: false,
                })
                .await;
            }
            Inbound::InputTranscriptCompleted {
                item_id,
                transcript,
            } => {
                let text = self.input_text.rest(&item_id, transcript);
                self.emit(ModelEvent::InputTranscript {
                    text,
                    finished: true,
                })
                .await;
            }
            Inbound::InputTranscriptFailed { message } => {
                self.emit(ModelEvent::Error {
                    kind: ErrorKind::Server,
                    message: format!("input transcription failed: {message}"),
                })
                .await;
            }
            Inbound::FunctionCall {
                call_id,
                name,
                arguments,
            } => self.on_function_call(call_id, name, arguments).await?,
            Inbound::ResponseDone {
                response_id,
                status,
                details,
                usage,
            } => {
                if response_id.is_none() || response_id == self.response {
                    self.response = None;
                }
                if let Some(u) = usage {
                    self.emit(ModelEvent::Usage(u)).await;
                }
                if matches!(status, ResponseStatus::Failed | ResponseStatus::Incomplete) {
                    self.emit(ModelEvent::Error {
                        kind: ErrorKind::Server,
                        message: format!(
                            "response ended {status:?}: {}",
                            details.as_deref().unwrap_or("no details")
                        ),
                    })
                    .await;
                }
                self.emit(ModelEvent::TurnComplete).await;
                if self.want_response && self.pending_calls.is_empty() {
                    self.request_response().await?;
                }
            }
            Inbound::RateLimits(limits) => self.emit(ModelEvent::RateLimits(limits)).await,
            Inbound::Error { code, message } => {
                if code.as_deref() == Some(CANCEL_NOT_ACTIVE) {
                    tracing::debug!("response.cancel raced the server's own cancel");
                } else {
                    tracing::warn!(?code, %message, "openai error event");
                    self.emit(ModelEvent::Error {
                        kind: ErrorKind::Server,
                        message: match code {
                            Some(c) => format!("{c}: {message}"),
                            None => message,
                        },
                    })
                    .await;
                }
            }
        }
        Ok(())
    }

    async fn on_function_call(
        &mut self,
        call_id: String,
        name: String,
        arguments: String,
    ) -> Result<(), tungstenite::Error> {
        let args = match serde_json::from_str::<serde_json::Value>(&arguments) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(serde_json::Value::Null) => serde_json::json!({}),
            _ if arguments.trim().is_empty() => serde_json::json!({}),
            _ => {
                // Tell the model at once; the call never reaches the caller.
                self.emit(ModelEvent::Error {
                    kind: ErrorKind::MalformedMessage,
                    message: format!("function call {name}: arguments are not a JSON object"),
                })
                .await;
                let out = wire::tool_output(&crate::session::ToolResult::Err(
                    "the arguments were not a valid JSON object".into(),
                ));
                self.send(wire::function_output_message(&call_id, &out))
                    .await?;
                return self.request_response().await;
            }
        };
        if self.pending_calls.len() >= MAX_PENDING_CALLS {
            self.pending_calls.clear();
        }
        self.pending_calls.insert(call_id.clone());
        let call = ToolCall {
            id: ToolCallId(call_id),
            name,
            args,
        };
        self.emit(crate::tools::classify(
            call,
            self.params.config.builtin_tools,
        ))
        .await;
        Ok(())
    }

    /// Sends `response.create` now, or once the response in progress is done.
    async fn request_response(&mut self) -> Result<(), tungstenite::Error> {
        if self.response.is_some() || self.response_requested {
            self.want_response = true;
            return Ok(());
        }
        self.want_response = false;
        self.response_requested = true;
        self.send(wire::response_create_message()).await
    }

    /// The caller started talking over the model (protocols.md §2.6):
    /// report it, cancel the response in progress, and cut the assistant
    /// item to what the caller actually heard.
    async fn barge_in(&mut self) -> Result<(), tungstenite::Error> {
        let playing = self.playing.take();
        let unheard = playing
            .as_ref()
            .is_some_and(|p| p.played.is_none_or(|played| played < p.received));
        if self.response.is_some() || unheard {
            self.emit(ModelEvent::Interrupted).await;
        }
        if let Some(id) = self.response.take() {
            self.send(wire::response_cancel_message(&id)).await?;
            self.cancelled = Some(id);
        }
        if let Some(p) = playing {
            match p.played {
                Some(played) if played < p.received => {
                    let ms = played.as_millis() as u64;
                    tracing::debug!(item = %p.item_id, ms, "truncating the interrupted reply");
                    self.send(wire::truncate_message(&p.item_id, ms)).await?;
                }
                Some(_) => {}
                None => tracing::debug!(
                    "barge-in without playback progress: the reply is not truncated"
                ),
            }
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Step {
        match self.send_command(cmd).await {
            Ok(()) => Step::Continue,
            Err(e) => self.send_failed(e),
        }
    }

    async fn send_command(&mut self, cmd: Command) -> Result<(), tungstenite::Error> {
        let manual = matches!(self.params.config.turn_detection, TurnDetection::Manual);
        match cmd {
            Command::Audio(audio) => {
                self.out.clear();
                wire::encode_audio_into(&audio, &mut self.out);
                let bytes = self.out.split().freeze();
                // The encoder writes ASCII only (JSON punctuation and base64).
                let text = Utf8Bytes::try_from(bytes)
                    .map_err(|_| tungstenite::Error::Utf8(String::new()))?;
                self.send(text).await
            }
            Command::ActivityStart if manual => {
                self.barge_in().await?;
                self.send(wire::clear_message()).await
            }
            Command::ActivityEnd if manual => {
                self.send(wire::commit_message()).await?;
                self.request_response().await
            }
            Command::AudioStreamEnd | Command::ActivityStart | Command::ActivityEnd => {
                tracing::debug!(
                    "activity signal does not apply to the configured turn detection; skipped"
                );
                Ok(())
            }
            Command::Text(t) => {
                self.send(wire::user_text_message(&t)).await?;
                self.request_response().await
            }
            Command::ToolResult { id, name, result } => {
                let output = wire::tool_output(&result);
                self.send(wire::function_output_message(id.as_str(), &output))
                    .await?;
                self.pending_calls.remove(id.as_str());
                // After end_call the conversation is over: no new response.
                if name != crate::tools::END_CALL && self.pending_calls.is_empty() {
                    self.request_response().await?;
                }
                Ok(())
            }
            Command::PlaybackProgress(played) => {
                if let Some(p) = &mut self.playing {
                    p.played = Some(played.min(p.received));
                }
                Ok(())
            }
            Command::StartGreeting => {
                if self.greeted {
                    return Ok(());
                }
                self.greeted = true;
                let prompt = self
                    .params
                    .config
                    .greeting
                    .prompt()
                    .unwrap_or(crate::config::Greeting::DEFAULT_PROMPT)
                    .to_owned();
                self.send(wire::user_text_message(&prompt)).await?;
                self.request_response().await
            }
        }
    }
}
