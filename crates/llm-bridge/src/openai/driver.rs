//! The OpenAI Realtime session task (tokio): the only owner of the WebSocket.
//!
//! Owns: connect + wait for `session.created` + `session.update` + wait for
//! `session.updated` (per attempt, under the retry policy), and the thin
//! run loop: frames are decoded and fed to the sans-IO [`Core`], commands
//! too (caller audio is encoded straight into a reused buffer), and the
//! core's outputs (events, client events) are carried out in order. On
//! close, what the handle queued before it (the call's last audio) is sent
//! first.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::core::{Core, Output};
use super::wire::{self, Inbound};
use crate::audio::AudioFormat;
use crate::config::{CallMetadata, SessionConfig};
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
    pub(crate) metadata: CallMetadata,
    /// Audio format sent to the model.
    pub(crate) input: AudioFormat,
    /// Audio format the model sends.
    pub(crate) output: AudioFormat,
}

/// Reads server events until `want` is seen. An `error` event or a frame
/// that is not an event fails the setup (not retryable: the configuration
/// or the server is wrong).
async fn wait_for(conn: &mut Connection, want: &Inbound) -> Result<(), ConnectFailure> {
    loop {
        let payload = transport::setup_payload(conn).await?;
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
    let mut conn = transport::connect(
        &params.url,
        &params.headers,
        cfg.connect_timeout,
        cfg.tls_roots,
    )
    .await?;
    let update = wire::session_update_message(cfg, &params.metadata, params.input, params.output);
    let setup = async {
        wait_for(&mut conn, &Inbound::SessionCreated).await?;
        transport::send_text(&mut conn, update)
            .await
            .map_err(transport::setup_failure)?;
        wait_for(&mut conn, &Inbound::SessionUpdated).await
    };
    let result = transport::within_setup_timeout(cfg.setup_timeout, setup).await;
    transport::finish_setup(&mut conn, result, cfg.close_timeout).await?;
    Ok(conn)
}

/// Opens with retries.
pub(crate) async fn open_connection(params: &Params) -> Result<Connection, Error> {
    transport::with_retry(Provider::OpenAi, &params.config.retry, |attempt| {
        tracing::debug!(attempt, "openai connect");
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
        let core = Core::new(&params.config, params.output);
        // One chunk's message; tungstenite copies each message out before
        // the next is encoded, so `reserve` takes this allocation back.
        let out = BytesMut::with_capacity(wire::audio_message_len(
            params.config.uplink.bytes(params.input),
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
            let step = tokio::select! {
                biased;
                () = &mut close => self.client_close().await,
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
        let timeout = self.params.config.close_timeout;
        session::flush_queued(self, timeout).await;
        let clean =
            transport::close_connection(&mut self.conn, self.params.config.close_timeout).await;
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
                        return transport::connection_lost(&e, "openai");
                    }
                }
            }
        }
        Step::Continue
    }

    async fn on_frame(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Step {
        let payload = match transport::frame_payload(Some(&mut self.conn), msg, "openai").await {
            Ok(payload) => payload,
            Err(step) => return step,
        };
        match wire::decode_server_event(&payload) {
            Ok(ev) => self.core.handle_server(ev),
            Err(e) => {
                tracing::warn!(error = %e, "skipping openai server event");
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
                Err(e) => transport::connection_lost(&e, "openai"),
            };
        }
        // The call's context goes with new instructions, as at open.
        let cmd = match cmd {
            Command::UpdateInstructions(text) => {
                Command::UpdateInstructions(self.params.metadata.instructions_with_context(&text))
            }
            cmd => cmd,
        };
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
