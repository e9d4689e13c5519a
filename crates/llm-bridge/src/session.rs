//! The per-call handle, [`ModelSession`], and the plumbing between it and
//! the provider's driver task.
//!
//! Owns: the bounded command queue (handle -> driver), the bounded event
//! queue (driver -> handle), the caller's audio on its way out (converted
//! and cut into chunks of `SessionConfig::uplink` by [`Uplink`], one queue
//! entry and one model message per chunk), the close request, and the task
//! set. The driver task is the only owner of the WebSocket, so
//! there is exactly one reader by construction. Dropping the handle cancels
//! and aborts every task it started; [`ModelSession::close`] closes cleanly
//! (close frame 1000, wait for the peer's close) and joins them.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::audio::{AudioFormat, AudioFrame};
use crate::config::{Greeting, SessionConfig};
use crate::error::Error;
use crate::event::{CloseReason, ModelEvent, ToolCallId};
use crate::provider::Provider;
use crate::stats::TaskGuard;
use crate::uplink::{Uplink, UplinkChunk};

/// Outcome of one step of a driver's run loop.
pub(crate) enum Step {
    /// Keep running.
    Continue,
    /// The session is over.
    End(CloseOutcome),
}

/// The answer to a tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolResult {
    /// The tool ran; its output (any JSON value).
    Ok(serde_json::Value),
    /// The tool failed; a message for the model.
    Err(String),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOutcome {
    /// Why.
    pub reason: CloseReason,
    /// Whether the close handshake completed.
    pub clean: bool,
}

/// What the handle asks of the driver (crate-internal; each provider maps
/// these onto its wire messages).
#[derive(Debug)]
pub(crate) enum Command {
    /// One chunk of caller audio, already in the model's input format,
    /// and the same audio at 8 kHz (s16le) when the session was given it
    /// ([`ModelSession::send_audio_with_narrowband`]).
    Audio(Bytes, Option<Bytes>),
    /// The caller's audio stream paused (mic closed).
    AudioStreamEnd,
    /// User text (also DTMF as text).
    Text(String),
    /// Answer to a tool call (`name` as the model called it).
    ToolResult {
        id: ToolCallId,
        name: String,
        result: ToolResult,
    },
    /// Client-side activity detection: the caller started speaking.
    ActivityStart,
    /// Client-side activity detection: the caller stopped speaking.
    ActivityEnd,
    /// How much of the current reply has actually been played to the caller.
    PlaybackProgress(Duration),
    /// The caller barged in (detected by the caller of this crate): stop
    /// the reply and cut it at `played`.
    Interrupt(Duration),
    /// Make the model speak first now.
    StartGreeting,
    /// Replace the session's instructions (the driver appends the call's
    /// context, as at open). Only sent to providers that take it.
    UpdateInstructions(String),
}

/// The driver's side of a session: commands in, events out, close request.
#[derive(Debug)]
pub(crate) struct DriverContext {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: EventSink,
    /// Cancelled when [`ModelSession::close`] is called.
    pub(crate) close: CancellationToken,
}

/// A driver task as its close sees it: the queue it reads and the step
/// that sends one queued command.
pub(crate) trait SendQueued {
    /// The handle's command queue.
    fn queue(&mut self) -> &mut mpsc::Receiver<Command>;
    /// Sends one command the handle queued; `false` stops the flush (the
    /// connection is gone).
    async fn send_queued(&mut self, cmd: Command) -> bool;
}

/// On close: sends what the handle queued before asking to close (the
/// call's last audio), bounded by the queue's capacity and `timeout`.
pub(crate) async fn flush_queued(driver: &mut impl SendQueued, timeout: Duration) {
    let flush = async {
        while let Ok(cmd) = driver.queue().try_recv() {
            if !driver.send_queued(cmd).await {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, flush).await;
}

/// The bounded sender of events. Waits for room (backpressure onto the
/// socket) except once a close was requested, when events are dropped so
/// that close never deadlocks on a consumer that stopped reading.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<ModelEvent>,
    close: CancellationToken,
}

impl EventSink {
    /// Sends one event; `false` when the handle is gone or closing.
    pub(crate) async fn emit(&self, event: ModelEvent) -> bool {
        tokio::select! {
            biased;
            r = self.tx.send(event) => r.is_ok(),
            () = self.close.cancelled() => false,
        }
    }

    /// Sends without waiting (for the final `Closed`).
    pub(crate) fn try_emit(&self, event: ModelEvent) {
        let _ = self.tx.try_send(event);
    }
}

/// One call's connection to a realtime model.
///
/// Obtained only from [`crate::RealtimeModel::open`]. Send audio with
/// [`send_audio`](Self::send_audio) (non-blocking, for the 20 ms loop; the
/// frames leave in chunks of `SessionConfig::uplink`), read events with
/// [`next_event`](Self::next_event), end with [`close`](Self::close).
/// Every other message to the model, a barge-in, a tool call and the end of
/// a caller turn send the audio collected so far first, so nothing
/// overtakes it. Dropping the handle without `close` still stops every task
/// and connection it owns (uncleanly).
#[derive(Debug)]
pub struct ModelSession {
    provider: Provider,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<ModelEvent>,
    uplink: Uplink,
    close: CancellationToken,
    cancel: CancellationToken,
    tasks: JoinSet<CloseOutcome>,
    join_timeout: Duration,
    /// Tool calls seen by `next_event` and not answered yet (id, name),
    /// oldest first, bounded.
    pending_tools: VecDeque<(ToolCallId, String)>,
}

/// Bound on remembered unanswered tool calls.
const MAX_PENDING_TOOLS: usize = 64;

impl ModelSession {
    /// Spawns `driver` as the session's task and returns the handle. The
    /// driver returns how the session ended; the `Closed` event is emitted
    /// here, after it returns.
    pub(crate) fn spawn<F, Fut>(
        provider: Provider,
        input_format: AudioFormat,
        uplink: UplinkChunk,
        command_capacity: usize,
        event_capacity: usize,
        close_timeout: Duration,
        driver: F,
    ) -> ModelSession
    where
        F: FnOnce(DriverContext) -> Fut,
        Fut: Future<Output = CloseOutcome> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::channel(command_capacity.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(event_capacity.max(1));
        let close = CancellationToken::new();
        let cancel = CancellationToken::new();
        let sink = EventSink {
            tx: ev_tx,
            close: close.clone(),
        };
        let fut = driver(DriverContext {
            commands: cmd_rx,
            events: sink.clone(),
            close: close.clone(),
        });
        let mut tasks = JoinSet::new();
        let guard = TaskGuard::new();
        let task_cancel = cancel.clone();
        tasks.spawn(async move {
            let _guard = guard;
            let outcome = tokio::select! {
                o = fut => o,
                () = task_cancel.cancelled() => CloseOutcome {
                    reason: CloseReason::Cancelled,
                    clean: false,
                },
            };
            sink.try_emit(ModelEvent::Closed {
                reason: outcome.reason.clone(),
                clean: outcome.clean,
            });
            outcome
        });
        crate::stats::note_session_opened();
        ModelSession {
            provider,
            commands: cmd_tx,
            events: ev_rx,
            uplink: Uplink::new(input_format, uplink),
            close,
            cancel,
            tasks,
            pending_tools: VecDeque::new(),
            join_timeout: close_timeout + Duration::from_secs(1),
        }
    }

    /// Spawns the driver of an opened connection, instrumented with `span`,
    /// with the queue capacities and close timeout of `config`, then starts
    /// the greeting when `config` asks for one on open.
    pub(crate) async fn start<F, Fut>(
        provider: Provider,
        input_format: AudioFormat,
        config: &SessionConfig,
        span: tracing::Span,
        driver: F,
    ) -> Result<ModelSession, Error>
    where
        F: FnOnce(DriverContext) -> Fut,
        Fut: Future<Output = CloseOutcome> + Send + 'static,
    {
        let greet_now = matches!(config.greeting, Greeting::OnOpen { .. });
        let mut session = ModelSession::spawn(
            provider,
            input_format,
            config.uplink,
            config.command_capacity,
            config.event_capacity,
            config.close_timeout,
            move |ctx| tracing::Instrument::instrument(driver(ctx), span),
        );
        if greet_now {
            session.start_greeting().await?;
        }
        Ok(session)
    }

    /// The provider behind this session.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The audio format the model receives (frames are converted to it).
    pub fn model_input_format(&self) -> AudioFormat {
        self.uplink.format()
    }

    /// How much caller audio goes into one message to the model.
    pub fn uplink_chunk(&self) -> UplinkChunk {
        self.uplink.chunk()
    }

    fn try_command(&self, cmd: Command) -> Result<(), Error> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })
    }

    async fn command(&self, cmd: Command) -> Result<(), Error> {
        self.commands.send(cmd).await.map_err(|_| Error::Closed)
    }

    /// Takes one frame of caller audio without waiting: converted to the
    /// model's input format here and queued to the connection when its
    /// chunk is full. Audio collected before it that is one chunk length
    /// old is queued first, alone (also when the frame itself is refused);
    /// nothing else sends collected audio by itself: when frames stop, it
    /// waits for the next frame, [`flush_audio`](Self::flush_audio) or any
    /// other message. [`Error::UnsupportedAudio`] refuses a frame that
    /// cannot be converted; [`Error::QueueFull`] means the connection is
    /// not keeping up and a chunk was dropped; [`Error::Closed`] that the
    /// session is over (also for a frame that would only have been
    /// collected).
    pub fn send_audio(&mut self, frame: AudioFrame<'_>) -> Result<(), Error> {
        self.send_audio_inner(frame, None)
    }

    /// [`send_audio`](Self::send_audio) of a frame interpolated from 8 kHz
    /// telephone audio, with that audio (`narrow`: the 8 kHz samples). A
    /// Gemini session keeps the caller audio its server has not yet
    /// taken into its state (for a transparent resume) at 8 kHz: given
    /// the samples, it need not decimate the frame again. Other providers
    /// ignore them.
    ///
    /// # Errors
    /// As [`send_audio`](Self::send_audio).
    pub fn send_audio_with_narrowband(
        &mut self,
        frame: AudioFrame<'_>,
        narrow: &[i16],
    ) -> Result<(), Error> {
        self.send_audio_inner(frame, Some(narrow))
    }

    fn send_audio_inner(
        &mut self,
        frame: AudioFrame<'_>,
        narrow: Option<&[i16]>,
    ) -> Result<(), Error> {
        if self.commands.is_closed() {
            return Err(Error::Closed);
        }
        // The handle is the driver edge of the sans-IO uplink: the time is
        // read here (tokio's clock, so paused-time tests drive it).
        let now = tokio::time::Instant::now().into_std();
        let pushed = match narrow {
            Some(n) if self.provider == Provider::Gemini => {
                self.uplink.push_with_narrowband(now, frame, n)
            }
            _ => self.uplink.push(now, frame),
        };
        // A refused frame may still have made due audio ready.
        self.queue_ready_audio()?;
        pushed
    }

    /// Queues the caller audio collected so far now, as a partial chunk if
    /// need be (for a local barge-in, or before the caller's audio pauses).
    /// Every other message, [`close`](Self::close), a barge-in, a tool
    /// call and the end of a caller turn do this by themselves.
    pub fn flush_audio(&mut self) -> Result<(), Error> {
        self.uplink.flush();
        self.queue_ready_audio()
    }

    fn queue_ready_audio(&mut self) -> Result<(), Error> {
        while let Some((chunk, narrow)) = self.uplink.poll_chunk_with_narrowband() {
            tracing::trace!(
                bytes = chunk.len(),
                "caller audio chunk queued for the model"
            );
            self.try_command(Command::Audio(chunk, narrow))?;
        }
        Ok(())
    }

    /// Flushes pending audio ahead of another message, waiting for room so
    /// that the message never overtakes it.
    async fn audio_before(&mut self) -> Result<(), Error> {
        self.uplink.flush();
        while let Some((chunk, narrow)) = self.uplink.poll_chunk_with_narrowband() {
            self.command(Command::Audio(chunk, narrow)).await?;
        }
        Ok(())
    }

    /// Tells the model the caller's audio stream paused (server VAD only);
    /// the audio collected so far goes first.
    pub fn audio_stream_end(&mut self) -> Result<(), Error> {
        self.flush_audio()?;
        self.try_command(Command::AudioStreamEnd)
    }

    /// Sends user text (a complete user turn; the model answers it).
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), Error> {
        self.audio_before().await?;
        self.command(Command::Text(text.into())).await
    }

    /// Replaces the model's instructions (system prompt) for the rest of the
    /// session, without reconnecting, where the provider allows it; the
    /// call's context lines ([`crate::CallMetadata::context`]) are appended
    /// as at open. The audio collected so far goes first.
    ///
    /// - OpenAI Realtime: a `session.update` carrying only `instructions`
    ///   (the API takes any field but the model and, once audio was sent,
    ///   the voice, at any time); the next response follows them.
    /// - Gemini Live: [`Error::InstructionsUpdateUnsupported`]. The system
    ///   instruction is part of `setup` and "can only be set at the
    ///   beginning of a session" (ai.google.dev, Live API); a change needs
    ///   a new session.
    /// - OpenAI GPT-Live: [`Error::InstructionsUpdateUnsupported`]. The
    ///   session object's `instructions` are immutable after
    ///   `session.start`, and `session.update` changes only the delegation;
    ///   `session.instructions.append` adds up to 500 tokens of context and
    ///   replaces nothing (`docs/providers/gpt-live.md`).
    ///
    /// A refusal leaves the session unchanged and usable (nothing is sent).
    pub async fn update_instructions(
        &mut self,
        instructions: impl Into<String>,
    ) -> Result<(), Error> {
        match self.provider {
            Provider::OpenAi => {
                self.audio_before().await?;
                self.command(Command::UpdateInstructions(instructions.into()))
                    .await
            }
            Provider::Gemini | Provider::GptLive => Err(Error::InstructionsUpdateUnsupported {
                provider: self.provider,
            }),
        }
    }

    /// Tells the model which phone keys the caller pressed (as text;
    /// digits `0-9 * # A-D`).
    pub async fn send_dtmf(&mut self, digits: &str) -> Result<(), Error> {
        let text = crate::tools::dtmf_text(digits)?;
        self.audio_before().await?;
        self.command(Command::Text(text)).await
    }

    /// Answers a tool call (including `transfer_call` / `end_call`) that
    /// was returned by [`next_event`](Self::next_event).
    /// [`Error::UnknownToolCall`] if no such call is outstanding.
    pub async fn send_tool_result(
        &mut self,
        id: ToolCallId,
        result: ToolResult,
    ) -> Result<(), Error> {
        let pos = self
            .pending_tools
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or(Error::UnknownToolCall)?;
        let Some((id, name)) = self.pending_tools.remove(pos) else {
            return Err(Error::UnknownToolCall);
        };
        self.audio_before().await?;
        self.command(Command::ToolResult { id, name, result }).await
    }

    fn track_tools(&mut self, ev: &ModelEvent) {
        let (id, name) = match ev {
            ModelEvent::ToolCall(c) => (c.id.clone(), c.name.clone()),
            ModelEvent::EndCall { id, .. } => (id.clone(), crate::tools::END_CALL.to_owned()),
            ModelEvent::TransferCall { id, .. } => {
                (id.clone(), crate::tools::TRANSFER_CALL.to_owned())
            }
            ModelEvent::ToolCallCancelled { ids } => {
                self.pending_tools.retain(|(i, _)| !ids.contains(i));
                return;
            }
            _ => return,
        };
        if self.pending_tools.len() >= MAX_PENDING_TOOLS {
            self.pending_tools.pop_front();
        }
        self.pending_tools.push_back((id, name));
    }

    /// Client-side turn detection: the caller started speaking.
    pub async fn activity_start(&mut self) -> Result<(), Error> {
        self.audio_before().await?;
        self.command(Command::ActivityStart).await
    }

    /// Client-side turn detection: the caller stopped speaking (the audio
    /// collected so far goes first: it belongs to the turn that ends).
    pub async fn activity_end(&mut self) -> Result<(), Error> {
        self.audio_before().await?;
        self.command(Command::ActivityEnd).await
    }

    /// Reports how much of the model's current reply has actually been
    /// played to the caller (used to truncate the reply on barge-in where the
    /// provider supports it). Dropped silently if the queue is full: a later
    /// report supersedes it.
    pub fn playback_progress(&self, played: Duration) {
        // Gemini tracks playback itself: nothing to tell its driver.
        if self.provider == Provider::Gemini {
            return;
        }
        let _ = self.try_command(Command::PlaybackProgress(played));
    }

    /// The caller barged in on the current reply, as the application
    /// detected it (its own voice activity detection, before or without
    /// the model's): the model is told to stop the reply, and the reply is
    /// cut where the caller stopped hearing it, `played` into it.
    ///
    /// OpenAI Realtime: `response.cancel` for a response in progress and
    /// `conversation.item.truncate` at `played` (the session then reports
    /// [`ModelEvent::Interrupted`] as for the server's own barge-in).
    /// Gemini Live has no client message for this under its automatic
    /// activity detection: the server interrupts itself when it hears the
    /// caller in the audio it is sent, so only that audio is sent. Never waits;
    /// dropped if the queue is full (the model's own detection remains).
    /// The caller audio collected so far goes first (the caller is the one
    /// speaking).
    pub fn interrupt(&mut self, played: Duration) {
        let _ = self.flush_audio();
        // Gemini: the server interrupts on the caller's audio, just
        // flushed; no message to send, so nothing for its driver.
        if self.provider == Provider::Gemini {
            return;
        }
        let _ = self.try_command(Command::Interrupt(played));
    }

    /// Makes the model greet the caller now (with
    /// [`crate::Greeting::OnRequest`]: open while ringing, greet on answer).
    pub async fn start_greeting(&mut self) -> Result<(), Error> {
        self.audio_before().await?;
        self.command(Command::StartGreeting).await
    }

    /// The next event; `None` after [`ModelEvent::Closed`] was returned.
    /// Cancel safe. A barge-in, a tool call or the end of the caller's turn
    /// sends the caller audio collected so far at once.
    pub async fn next_event(&mut self) -> Option<ModelEvent> {
        let ev = self.events.recv().await?;
        self.track_tools(&ev);
        if matches!(
            ev,
            ModelEvent::Interrupted
                | ModelEvent::CallerTurnEnded
                | ModelEvent::ToolCall(_)
                | ModelEvent::EndCall { .. }
                | ModelEvent::TransferCall { .. }
        ) {
            // A full queue drops the chunk, as `send_audio` would.
            let _ = self.flush_audio();
        }
        Some(ev)
    }

    /// Closes cleanly: the audio collected so far is queued, then the
    /// driver sends what is queued and close 1000 and waits for the peer's
    /// close (bounded by the close timeout); then its task is joined.
    pub async fn close(mut self) -> CloseOutcome {
        let _ = self.flush_audio();
        self.close.cancel();
        let join_all = async {
            let mut first = None;
            while let Some(r) = self.tasks.join_next().await {
                if let (None, Ok(o)) = (&first, r) {
                    first = Some(o);
                }
            }
            first
        };
        match tokio::time::timeout(self.join_timeout, join_all).await {
            Ok(Some(o)) => o,
            Ok(None) => CloseOutcome {
                reason: CloseReason::Cancelled,
                clean: false,
            },
            Err(_) => {
                self.cancel.cancel();
                self.tasks.abort_all();
                while self.tasks.join_next().await.is_some() {}
                CloseOutcome {
                    reason: CloseReason::Cancelled,
                    clean: false,
                }
            }
        }
    }
}

impl Drop for ModelSession {
    fn drop(&mut self) {
        // JoinSet's own drop aborts every task; cancelling first lets a task
        // that is between polls see the request too.
        self.cancel.cancel();
        self.tasks.abort_all();
    }
}

#[cfg(test)]
mod tests;
