//! The GPT-Live session task (tokio): the only owner of the WebSocket.
//!
//! Owns: connect + `session.start` + wait for `session.started` (per
//! attempt, under the retry policy), and the thin run loop: frames are
//! decoded and fed to the sans-IO [`Core`] with the time, commands too
//! (caller audio is encoded straight into a reused buffer), the core's
//! reply-end deadline is a timer arm, and its outputs are carried out in
//! order. On close: what the handle queued first, then `session.close`,
//! `session.closed` awaited (bounded by the close timeout), then the
//! WebSocket close handshake.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::core::{Core, Output};
use super::wire::{self, Inbound};
use crate::audio::AudioFormat;
use crate::config::SessionConfig;
use crate::error::{ConnectFailure, Error};
use crate::event::CloseReason;
use crate::provider::Provider;
use crate::session::{self, CloseOutcome, Command, DriverContext, SendQueued, Step};
use crate::transport::{self, Connection};

/// Everything needed to connect, shared by `open` and the task.
#[derive(Debug)]
pub(crate) struct Params {
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) config: SessionConfig,
    /// The `session.start` event.
    pub(crate) start: String,
    /// The session's audio format (both ways).
    pub(crate) format: AudioFormat,
}

/// Reads server events until `session.started`. An `error` event or a
/// frame that is not an event fails the setup (not retryable: the
/// configuration or the server is wrong).
async fn wait_started(conn: &mut Connection) -> Result<(), ConnectFailure> {
    loop {
        let payload = transport::setup_payload(conn).await?;
        match wire::decode_server_event(&payload) {
            Ok(Inbound::SessionStarted {
                session_id,
                expires_at,
            }) => {
                tracing::debug!(%session_id, ?expires_at, "gpt-live session started");
                return Ok(());
            }
            Ok(Inbound::Error { code, message }) => {
                tracing::warn!(?code, %message, "gpt-live rejected session.start");
                return Err(ConnectFailure::Protocol(
                    "the server answered session.start with an error event",
                ));
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "gpt-live: bad event during setup");
                return Err(ConnectFailure::Protocol(
                    "malformed event during session setup",
                ));
            }
        }
    }
}

/// One attempt: connect, send `session.start`, wait for `session.started`.
pub(crate) async fn connect_and_setup(params: &Params) -> Result<Connection, ConnectFailure> {
    let cfg = &params.config;
    let mut conn = transport::connect(
        &params.url,
        &params.headers,
        cfg.connect_timeout,
        cfg.tls_roots,
    )
    .await?;
    let setup = async {
        transport::send_text(&mut conn, Utf8Bytes::from(params.start.clone()))
            .await
            .map_err(transport::setup_failure)?;
        wait_started(&mut conn).await
    };
    let result = transport::within_setup_timeout(cfg.setup_timeout, setup).await;
    transport::finish_setup(&mut conn, result, cfg.close_timeout).await?;
    Ok(conn)
}

/// Opens with retries.
pub(crate) async fn open_connection(params: &Params) -> Result<Connection, Error> {
    transport::with_retry(Provider::GptLive, &params.config.retry, |attempt| {
        tracing::debug!(attempt, "gpt-live connect");
        connect_and_setup(params)
    })
    .await
}

pub(crate) struct Driver {
    params: Arc<Params>,
    conn: Connection,
    ctx: DriverContext,
    out: BytesMut,
    core: Core,
}

impl Driver {
    pub(crate) fn new(params: Arc<Params>, conn: Connection, ctx: DriverContext) -> Self {
        let core = Core::new(&params.config, params.format);
        let out = BytesMut::with_capacity(wire::audio_message_len(
            params.config.uplink.bytes(params.format),
        ));
        Driver {
            params,
            conn,
            ctx,
            out,
            core,
        }
    }

    pub(crate) async fn run(mut self) -> CloseOutcome {
        // One wait for the whole run (see the Gemini driver's `run`).
        let close = self.ctx.close.clone().cancelled_owned();
        tokio::pin!(close);
        loop {
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            let step = tokio::select! {
                biased;
                () = &mut close => self.client_close().await,
                msg = self.conn.ws.next() => self.on_frame(msg).await,
                cmd = self.ctx.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => self.client_close().await,
                },
                () = transport::sleep_until_opt(deadline) => {
                    self.core.handle_timeout(Instant::now().into_std());
                    self.drain().await
                }
            };
            if let Step::End(outcome) = step {
                return outcome;
            }
        }
    }

    /// Sends what the handle queued, then `session.close`; waits for
    /// `session.closed` (or the close timeout), then closes the WebSocket.
    async fn client_close(&mut self) -> Step {
        let timeout = self.params.config.close_timeout;
        session::flush_queued(self, timeout).await;
        let closed = async {
            if transport::send_text(&mut self.conn, Utf8Bytes::from_static(wire::SESSION_CLOSE))
                .await
                .is_err()
            {
                return;
            }
            while let Some(Ok(msg)) = self.conn.ws.next().await {
                if let Message::Text(t) = msg
                    && matches!(
                        wire::decode_server_event(t.as_bytes()),
                        Ok(Inbound::Closed { .. })
                    )
                {
                    return;
                }
            }
        };
        if tokio::time::timeout(timeout, closed).await.is_err() {
            tracing::debug!("no session.closed within the close timeout");
        }
        let clean = transport::close_connection(&mut self.conn, timeout).await;
        Step::End(CloseOutcome {
            reason: CloseReason::ClientClosed,
            clean,
        })
    }

    /// Carries out what the core asked for, in order.
    async fn drain(&mut self) -> Step {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Event(ev) => {
                    self.ctx.events.emit(ev).await;
                }
                Output::Send(msg) => {
                    let text = match msg {
                        Cow::Borrowed(s) => Utf8Bytes::from_static(s),
                        Cow::Owned(s) => Utf8Bytes::from(s),
                    };
                    if let Err(e) = transport::send_text(&mut self.conn, text).await {
                        return transport::connection_lost(&e, "gpt-live");
                    }
                }
            }
        }
        Step::Continue
    }

    async fn on_frame(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Step {
        let payload = match transport::frame_payload(Some(&mut self.conn), msg, "gpt-live").await {
            Ok(payload) => payload,
            Err(step) => return step,
        };
        let now = Instant::now().into_std();
        match wire::decode_server_event(&payload) {
            Ok(ev) => self.core.handle_server(ev, now),
            Err(e) => {
                tracing::warn!(error = %e, "skipping gpt-live server event");
                self.core.handle_decode_error(&e);
            }
        }
        self.drain().await
    }

    async fn on_command(&mut self, cmd: Command) -> Step {
        if let Command::Audio(audio, _) = cmd {
            // Hot path: encode into the reused buffer, no per-frame JSON value.
            self.out.clear();
            wire::encode_audio_into(&audio, &mut self.out);
            let bytes = self.out.split().freeze();
            // The encoder writes ASCII only (JSON punctuation and base64).
            let Ok(text) = Utf8Bytes::try_from(bytes) else {
                return Step::Continue;
            };
            return match transport::send_text(&mut self.conn, text).await {
                Ok(()) => Step::Continue,
                Err(e) => transport::connection_lost(&e, "gpt-live"),
            };
        }
        self.core.handle_command(cmd);
        self.drain().await
    }
}

impl SendQueued for Driver {
    fn queue(&mut self) -> &mut tokio::sync::mpsc::Receiver<Command> {
        &mut self.ctx.commands
    }

    async fn send_queued(&mut self, cmd: Command) -> bool {
        matches!(self.on_command(cmd).await, Step::Continue)
    }
}
