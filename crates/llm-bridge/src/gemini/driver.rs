//! The Gemini Live session task (tokio): the only owner of the WebSocket.
//!
//! Owns: connect + `setup` + wait for `setupComplete` (per attempt, under
//! the retry policy), the run loop (server messages -> events, commands ->
//! client messages), and transparent session resumption: on `goAway` input
//! is held back, the switch waits until the model's turn is over (bounded),
//! the old connection is closed cleanly (1000) and only then a new one is
//! opened with the latest resumption handle, so there are never two live
//! connections; held input is replayed on the new connection in order.
//!
//! A connection that ends unexpectedly with no `goAway` (no close frame,
//! or close 1001/1011-1014: `Resumption::resumes_after`) while a handle is
//! known is resumed the same way under `SessionConfig::reconnect`, the
//! whole attempt bounded by `SessionConfig::reconnect_budget`: a reply the
//! drop cut short is ended with `TurnComplete`, `Reconnecting` is reported,
//! input is held, then `Resumed` (held input replayed) or
//! `Closed { ResumptionFailed }`. Without a handle, or for any other end,
//! the session ends with the connection's own reason.
//!
//! Resumption is transparent: every message sent after `setup` is kept
//! ([`Unconsumed`], bounded) until a `sessionResumptionUpdate` says the
//! state of its handle includes it (`lastConsumedClientMessageIndex`);
//! a resumed connection is sent what was not included first, then the
//! input held during the reconnect, so caller speech cut by a drop
//! reaches the model whole. Over the buffer's bounds the oldest messages
//! are lost, and `Error { InputDropped }` says so.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::resume::Resumption;
use super::unconsumed::{self, Expander, Kept, Unconsumed};
use super::wire::{self, Inbound};
use crate::config::{CallMetadata, RetryPolicy, SessionConfig, TurnDetection};
use crate::error::{ConnectFailure, Error};
use crate::event::{CloseReason, ErrorKind, ModelEvent};
use crate::provider::Provider;
use crate::session::{self, CloseOutcome, Command, DriverContext, SendQueued, Step};
use crate::transport::{self, Connection};

/// Everything needed to (re)connect, shared by `open` and the task.
#[derive(Debug)]
pub(crate) struct Params {
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) config: SessionConfig,
    pub(crate) metadata: CallMetadata,
}

/// Bound on non-audio commands held during a switch.
const MAX_HELD_COMMANDS: usize = 64;

/// Bound on the messages kept for a transparent resume: 10 s of 20 ms
/// chunks with room for the other messages of those seconds.
const MAX_UNCONSUMED_MESSAGES: usize = 1024;

async fn send_on(
    conn: &mut Option<Connection>,
    text: impl Into<Utf8Bytes>,
) -> Result<(), tungstenite::Error> {
    match conn {
        Some(c) => transport::send_text(c, text).await,
        None => Err(tungstenite::Error::AlreadyClosed),
    }
}

async fn next_frame(conn: &mut Option<Connection>) -> Option<Result<Message, tungstenite::Error>> {
    match conn {
        Some(c) => c.ws.next().await,
        None => std::future::pending().await,
    }
}

async fn close_opt(conn: &mut Option<Connection>, timeout: Duration) -> bool {
    match conn {
        Some(c) => transport::close_connection(c, timeout).await,
        None => true,
    }
}

/// One attempt: connect, send `setup`, wait for `setupComplete`.
pub(crate) async fn connect_and_setup(
    params: &Params,
    resume: Option<&str>,
) -> Result<Connection, ConnectFailure> {
    let cfg = &params.config;
    let mut conn = transport::connect(
        &params.url,
        &params.headers,
        cfg.connect_timeout,
        cfg.tls_roots,
    )
    .await?;
    let setup = wire::setup_message(cfg, &params.metadata, resume);
    transport::send_text(&mut conn, setup)
        .await
        .map_err(|e| transport::connect_failure(&e))?;
    let wait = async {
        let mut items = Vec::new();
        loop {
            let payload = transport::setup_payload(&mut conn).await?;
            items.clear();
            if wire::decode_server_message(&payload, &mut items).is_err() {
                return Err(ConnectFailure::Protocol(
                    "malformed message before setupComplete",
                ));
            }
            if items.iter().any(|i| matches!(i, Inbound::SetupComplete)) {
                return Ok(());
            }
        }
    };
    let result = transport::within_setup_timeout(cfg.setup_timeout, wait).await;
    transport::finish_setup(&mut conn, result, cfg.close_timeout).await?;
    Ok(conn)
}

/// Opens with retries.
pub(crate) async fn open_connection(
    params: &Params,
    resume: Option<&str>,
) -> Result<Connection, Error> {
    transport::with_retry(Provider::Gemini, &params.config.retry, |attempt| {
        tracing::debug!(attempt, resume = resume.is_some(), "gemini connect");
        connect_and_setup(params, resume)
    })
    .await
}

pub(crate) struct Driver {
    params: Arc<Params>,
    /// `None` only inside `switch_connection`, between closing the old
    /// connection and opening the new one.
    conn: Option<Connection>,
    ctx: DriverContext,
    out: BytesMut,
    items: Vec<Inbound>,
    resumption: Resumption,
    greeted: bool,
    held: VecDeque<Command>,
    held_audio_bytes: usize,
    /// Messages sent on this connection that the last resumption handle
    /// does not include (replayed on a resume).
    unconsumed: Unconsumed,
    /// A replayed chunk's samples, expanded from what `unconsumed` kept.
    replay_pcm: Vec<u8>,
}

impl Driver {
    pub(crate) fn new(
        params: Arc<Params>,
        conn: Connection,
        ctx: DriverContext,
        greeted: bool,
    ) -> Self {
        // One chunk's message, reused: the sent text is dropped once the
        // WebSocket has copied it into its frame, so `reserve` takes this
        // allocation back (`unconsumed` keeps the samples, not the text).
        let out = BytesMut::with_capacity(wire::audio_message_len(
            params
                .config
                .uplink
                .bytes(crate::audio::AudioFormat::PCM_16K),
        ));
        Driver {
            conn: Some(conn),
            ctx,
            out,
            items: Vec::with_capacity(8),
            resumption: Resumption::default(),
            greeted,
            held: VecDeque::new(),
            held_audio_bytes: 0,
            // Bounded by the input a reconnect may hold
            // (`max_buffered_input` of audio).
            unconsumed: Unconsumed::new(
                MAX_UNCONSUMED_MESSAGES,
                (params.config.max_buffered_input.as_millis() as usize)
                    .saturating_mul(unconsumed::AUDIO_BYTES_PER_MS),
            ),
            replay_pcm: Vec::new(),
            params,
        }
    }

    fn max_held_audio_bytes(&self) -> usize {
        max_held_audio_bytes(&self.params)
    }

    pub(crate) async fn run(mut self) -> CloseOutcome {
        // One wait for the whole run: a new `cancelled()` each turn took the
        // token's lock three times (register, check, drop; part of 2.0 % of
        // the agent's CPU at 1,000 calls, perf, 2026-12-06).
        let close = self.ctx.close.clone().cancelled_owned();
        tokio::pin!(close);
        loop {
            let deadline = self.resumption.deadline().map(Instant::from_std);
            let step = tokio::select! {
                biased;
                () = &mut close => {
                    self.flush_queued().await;
                    let clean = close_opt(&mut self.conn, self.params.config.close_timeout).await;
                    Step::End(CloseOutcome { reason: CloseReason::ClientClosed, clean })
                }
                cmd = self.ctx.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => {
                        let clean = close_opt(&mut self.conn, self.params.config.close_timeout).await;
                        Step::End(CloseOutcome { reason: CloseReason::ClientClosed, clean })
                    }
                },
                msg = next_frame(&mut self.conn) => self.on_frame(msg).await,
                () = transport::sleep_until_opt(deadline) => self.switch_connection().await,
            };
            if let Step::End(outcome) = step {
                // The server ended the connection after its goAway but before
                // the turn was over: resume now rather than end the call.
                let resumable_end = matches!(
                    outcome.reason,
                    CloseReason::ServerClosed { .. } | CloseReason::ConnectionLost
                );
                if resumable_end && self.resumption.is_pending() {
                    tracing::info!(reason = %outcome.reason, "connection ended during goAway; resuming");
                    self.conn = None;
                    if let Step::End(outcome) = self.switch_connection().await {
                        return outcome;
                    }
                    continue;
                }
                // An unexpected drop mid-call: resume with the last handle
                // (bounded), or end when none is known or it is off.
                let may_reconnect = self.params.config.reconnect.max_attempts > 0;
                if may_reconnect && self.resumption.resumes_after(&outcome.reason) {
                    if let Step::End(outcome) = self.recover(outcome.reason).await {
                        return outcome;
                    }
                    continue;
                }
                return outcome;
            }
            if self.resumption.switch_due(Instant::now().into_std())
                && let Step::End(outcome) = self.switch_connection().await
            {
                return outcome;
            }
        }
    }

    async fn on_frame(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Step {
        let payload = match transport::frame_payload(self.conn.as_mut(), msg, "gemini").await {
            Ok(payload) => payload,
            Err(step) => return step,
        };
        let mut items = std::mem::take(&mut self.items);
        items.clear();
        if let Err(e) = wire::decode_server_message(&payload, &mut items) {
            self.items = items;
            let kind = match e {
                wire::DecodeError::Unknown => ErrorKind::UnknownMessage,
                _ => ErrorKind::MalformedMessage,
            };
            tracing::warn!(error = %e, "skipping gemini server message");
            self.emit(ModelEvent::Error {
                kind,
                message: e.to_string(),
            })
            .await;
            return Step::Continue;
        }
        for item in items.drain(..) {
            self.on_inbound(item).await;
        }
        self.items = items;
        Step::Continue
    }

    async fn emit(&self, ev: ModelEvent) {
        self.ctx.events.emit(ev).await;
    }

    async fn on_inbound(&mut self, item: Inbound) {
        match item {
            Inbound::SetupComplete => {
                tracing::debug!("duplicate setupComplete ignored");
            }
            Inbound::Event(ev) => {
                match &ev {
                    ModelEvent::Audio(_) => self.resumption.on_model_audio(),
                    ModelEvent::TurnComplete => self.resumption.on_turn_complete(),
                    _ => {}
                }
                // The caller's finished transcript while no reply is being
                // generated ends their turn (a late transcript of a turn
                // already being answered does not).
                let turn_ended = matches!(ev, ModelEvent::InputTranscript { finished: true, .. })
                    && !self.resumption.is_generating();
                let ev = match ev {
                    ModelEvent::ToolCall(call) => {
                        crate::tools::classify(call, self.params.config.builtin_tools)
                    }
                    other => other,
                };
                self.emit(ev).await;
                if turn_ended {
                    self.emit(ModelEvent::CallerTurnEnded).await;
                }
            }
            Inbound::Resumption {
                handle,
                resumable,
                last_consumed,
            } => {
                if let Some(h) = self.resumption.on_update(handle, resumable) {
                    self.unconsumed.on_update(last_consumed);
                    self.emit(ModelEvent::ResumptionHandle(h)).await;
                }
            }
            Inbound::GoAway(time_left) => {
                tracing::info!(
                    ?time_left,
                    "gemini goAway: preparing to resume on a new connection"
                );
                self.resumption
                    .on_go_away(Instant::now().into_std(), time_left);
                self.emit(ModelEvent::GoingAway { time_left }).await;
            }
        }
    }

    /// On close: sends what the handle queued before asking to close (the
    /// last frames of the call) unless a switch is pending or there is no
    /// connection ([`session::flush_queued`]).
    async fn flush_queued(&mut self) {
        if self.resumption.is_pending() || self.conn.is_none() {
            return;
        }
        let timeout = self.params.config.close_timeout;
        session::flush_queued(self, timeout).await;
    }

    /// Holds a command during a switch (bounded; the oldest audio goes first).
    async fn hold(&mut self, cmd: Command) {
        match &cmd {
            Command::Audio(b, _) => {
                self.held_audio_bytes += b.len();
                let max = self.max_held_audio_bytes();
                let mut dropped = false;
                while self.held_audio_bytes > max {
                    let Some(pos) = self
                        .held
                        .iter()
                        .position(|c| matches!(c, Command::Audio(..)))
                    else {
                        break;
                    };
                    if let Some(Command::Audio(old, _)) = self.held.remove(pos) {
                        self.held_audio_bytes -= old.len();
                        dropped = true;
                    }
                }
                if dropped {
                    self.emit(ModelEvent::Error {
                        kind: ErrorKind::InputDropped,
                        message: "input audio held during reconnect exceeded its bound".into(),
                    })
                    .await;
                }
            }
            _ => {
                if self.held.len() >= MAX_HELD_COMMANDS {
                    self.emit(ModelEvent::Error {
                        kind: ErrorKind::InputDropped,
                        message: "too many commands held during reconnect".into(),
                    })
                    .await;
                    return;
                }
            }
        }
        self.held.push_back(cmd);
    }

    async fn on_command(&mut self, cmd: Command) -> Step {
        if self.resumption.is_pending() {
            self.hold(cmd).await;
            return Step::Continue;
        }
        match self.send_command(cmd).await {
            Ok(()) => Step::Continue,
            Err(e) => {
                tracing::warn!(error = %e, "gemini send failed");
                Step::End(CloseOutcome {
                    reason: CloseReason::ConnectionLost,
                    clean: false,
                })
            }
        }
    }

    /// Sends one message other than audio on the connection and keeps it
    /// until the server reports it consumed.
    /// Kept before sending: a message whose send fails may still have
    /// reached the server, and the next update says whether it did.
    async fn send_kept(&mut self, text: Utf8Bytes) -> Result<(), tungstenite::Error> {
        self.unconsumed.on_sent(&text);
        send_on(&mut self.conn, text).await
    }

    /// Sends one chunk of 16 kHz s16le caller audio and keeps it (its
    /// 8 kHz `narrow` s16le samples when given, else decimated) until the
    /// server reports it consumed.
    async fn send_audio(
        &mut self,
        pcm: &[u8],
        narrow: Option<&[u8]>,
    ) -> Result<(), tungstenite::Error> {
        self.out.clear();
        wire::encode_audio_into(pcm, &mut self.out);
        let bytes = self.out.split().freeze();
        // The encoder writes ASCII only (JSON punctuation and base64).
        let text =
            Utf8Bytes::try_from(bytes).map_err(|_| tungstenite::Error::Utf8(String::new()))?;
        match narrow {
            Some(n) => self.unconsumed.on_sent_narrowband(n),
            None => self.unconsumed.on_sent_audio(pcm),
        }
        send_on(&mut self.conn, text).await
    }

    /// Sends one kept message again (a resume's replay; `expander` runs
    /// on through the replay's audio).
    async fn send_replayed(
        &mut self,
        kept: Kept,
        expander: Option<&mut Expander>,
    ) -> Result<(), tungstenite::Error> {
        match (kept, expander) {
            (Kept::Audio(samples), Some(expander)) => {
                let mut pcm = std::mem::take(&mut self.replay_pcm);
                pcm.clear();
                expander.expand(&samples, &mut pcm);
                // Kept again from the decoded 8 kHz samples themselves.
                let narrow: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
                let sent = self.send_audio(&pcm, Some(&narrow)).await;
                self.replay_pcm = pcm;
                sent
            }
            // No interpolator (the resampler supports 8 to 16 kHz: not
            // reached): the chunk cannot be replayed.
            (Kept::Audio(_), None) => Ok(()),
            (Kept::Message(text), _) => self.send_kept(text).await,
        }
    }

    async fn send_command(&mut self, cmd: Command) -> Result<(), tungstenite::Error> {
        let manual = matches!(self.params.config.turn_detection, TurnDetection::Manual);
        match cmd {
            Command::Audio(pcm, narrow) => self.send_audio(&pcm, narrow.as_deref()).await,
            Command::AudioStreamEnd if !manual => {
                self.send_kept(wire::audio_stream_end_message().into())
                    .await
            }
            Command::ActivityStart if manual => {
                self.send_kept(wire::activity_start_message().into()).await
            }
            Command::ActivityEnd if manual => {
                self.send_kept(wire::activity_end_message().into()).await
            }
            Command::AudioStreamEnd | Command::ActivityStart | Command::ActivityEnd => {
                tracing::debug!(
                    "activity signal does not apply to the configured turn detection; skipped"
                );
                Ok(())
            }
            Command::Text(t) => self.send_kept(wire::text_message(&t).into()).await,
            Command::ToolResult { id, name, result } => {
                self.send_kept(wire::tool_response_message(id.as_str(), &name, &result).into())
                    .await
            }
            // The handle sends neither to Gemini (it tracks playback and
            // interrupts on the caller's audio by itself).
            Command::PlaybackProgress(_) | Command::Interrupt(_) => Ok(()),
            // The handle refuses instruction updates for Gemini (the
            // system instruction is set in `setup` only): never sent here.
            Command::UpdateInstructions(_) => {
                tracing::debug!("gemini takes no instruction update; skipped");
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
                self.send_kept(wire::user_turn_message(&prompt).into())
                    .await
            }
        }
    }

    /// Closes the current connection cleanly, opens a resumed one, replays
    /// the held input.
    async fn switch_connection(&mut self) -> Step {
        let close_timeout = self.params.config.close_timeout;
        let clean = close_opt(&mut self.conn, close_timeout).await;
        // Drop the old connection before dialling the new one: never two.
        self.conn = None;
        tracing::info!(
            clean,
            has_handle = self.resumption.handle().is_some(),
            "gemini: old connection closed, resuming"
        );
        let handle = self.resumption.handle().map(str::to_owned);
        if handle.is_none() {
            self.emit(ModelEvent::Error {
                kind: ErrorKind::ContextLost,
                message: "no resumption handle yet: continuing in a new session".into(),
            })
            .await;
        }
        let retry = self.params.config.retry.clone();
        // Boxed: see `recover`.
        Box::pin(self.resume_on_new_connection(handle, retry, None, clean)).await
    }

    /// The connection dropped mid-call (no `goAway`): ends a reply it cut
    /// short, reports `Reconnecting`, then resumes with the last handle
    /// under the reconnect policy, bounded by the reconnect budget.
    async fn recover(&mut self, lost: CloseReason) -> Step {
        self.conn = None;
        tracing::warn!(reason = %lost, "gemini connection dropped mid-call; resuming with the last handle");
        if self.resumption.on_dropped() {
            self.emit(ModelEvent::TurnComplete).await;
        }
        self.emit(ModelEvent::Reconnecting { reason: lost }).await;
        let handle = self.resumption.handle().map(str::to_owned);
        let retry = self.params.config.reconnect.clone();
        let budget = self.params.config.reconnect_budget;
        // Boxed: the dial (TCP, TLS and WebSocket handshakes, setup) is
        // ~60 KB of future state, rare, and would otherwise sit inline in
        // every call's driver task for the whole call (measured with
        // heaptrack: most of the driver task's allocation).
        Box::pin(self.resume_on_new_connection(handle, retry, Some(budget), false)).await
    }

    /// Opens a connection resuming `handle` (a new session without one)
    /// under `retry`, within `budget` if given, holding input meanwhile;
    /// then replays the held input. `clean` is how the old one closed.
    async fn resume_on_new_connection(
        &mut self,
        handle: Option<String>,
        retry: RetryPolicy,
        budget: Option<Duration>,
        clean: bool,
    ) -> Step {
        let resuming = handle.is_some();
        let params = self.params.clone();
        let open = async move {
            transport::with_retry(Provider::Gemini, &retry, |attempt| {
                tracing::debug!(attempt, resume = handle.is_some(), "gemini reconnect");
                connect_and_setup(&params, handle.as_deref())
            })
            .await
        };
        let mut reconnect = pin!(async move {
            match budget {
                Some(b) => tokio::time::timeout(b, open)
                    .await
                    .unwrap_or(Err(Error::ReconnectTimeout(b))),
                None => open.await,
            }
        });
        let new_conn = loop {
            tokio::select! {
                biased;
                () = self.ctx.close.cancelled() => {
                    return Step::End(CloseOutcome { reason: CloseReason::ClientClosed, clean });
                }
                r = &mut reconnect => break r,
                cmd = self.ctx.commands.recv() => match cmd {
                    Some(cmd) => self.hold(cmd).await,
                    None => return Step::End(CloseOutcome { reason: CloseReason::ClientClosed, clean }),
                },
            }
        };
        match new_conn {
            Ok(conn) => {
                self.conn = Some(conn);
                self.resumption.on_switched();
                self.emit(ModelEvent::Resumed).await;
                self.held_audio_bytes = 0;
                // What the old connection's state did not include goes
                // first (transparent resumption), then the held input.
                let replay = if resuming {
                    self.unconsumed.take_replay()
                } else {
                    self.unconsumed.reset();
                    Default::default()
                };
                if replay.lost {
                    self.emit(ModelEvent::Error {
                        kind: ErrorKind::InputDropped,
                        message: "input not yet consumed by the model exceeded its bound".into(),
                    })
                    .await;
                }
                tracing::debug!(
                    messages = replay.messages.len(),
                    "gemini: replaying unconsumed input"
                );
                let mut expander = Expander::new();
                for kept in replay.messages {
                    if let Err(e) = self.send_replayed(kept, expander.as_mut()).await {
                        tracing::warn!(error = %e, "gemini send failed after resumption");
                        return Step::End(CloseOutcome {
                            reason: CloseReason::ConnectionLost,
                            clean: false,
                        });
                    }
                }
                while let Some(cmd) = self.held.pop_front() {
                    if let Err(e) = self.send_command(cmd).await {
                        tracing::warn!(error = %e, "gemini send failed after resumption");
                        return Step::End(CloseOutcome {
                            reason: CloseReason::ConnectionLost,
                            clean: false,
                        });
                    }
                }
                Step::Continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "gemini resumption failed");
                self.emit(ModelEvent::Error {
                    kind: ErrorKind::Server,
                    message: e.to_string(),
                })
                .await;
                Step::End(CloseOutcome {
                    reason: CloseReason::ResumptionFailed,
                    clean,
                })
            }
        }
    }
}

impl SendQueued for Driver {
    fn queue(&mut self) -> &mut tokio::sync::mpsc::Receiver<Command> {
        &mut self.ctx.commands
    }

    async fn send_queued(&mut self, cmd: Command) -> bool {
        self.send_command(cmd).await.is_ok()
    }
}

/// The caller audio a reconnect may hold: `max_buffered_input` of 16 kHz
/// s16le (32 bytes per millisecond).
fn max_held_audio_bytes(params: &Params) -> usize {
    (params.config.max_buffered_input.as_millis() as usize).saturating_mul(32)
}
