//! WebSocket plumbing shared by the provider drivers (tokio).
//!
//! Owns: connecting with a timeout, request headers and bounded frame sizes
//! (RFC 6455 over tokio-tungstenite); the counted [`Connection`]; the clean
//! close handshake (send close 1000, wait for the peer's close with a
//! timeout); and the retry loop of the [`RetryPolicy`]. Error values carry
//! typed causes only, never the URL (which may hold a key).

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
#[cfg(feature = "tls")]
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use bytes::Bytes;

use crate::config::RetryPolicy;
use crate::error::{ConnectFailure, Error};
use crate::event::CloseReason;
use crate::provider::Provider;
use crate::session::{CloseOutcome, Step};
use crate::stats::ConnectionGuard;
use crate::tls::TlsRoots;

/// Largest WebSocket message (and frame) accepted from a model server, in
/// bytes (audio deltas are tens of kB). The mock servers use the same bound.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The client WebSocket stream type.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One open client connection, counted in [`crate::stats::live_connections`]
/// until dropped.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) ws: Ws,
    _guard: ConnectionGuard,
}

/// Initial capacity of a connection's read buffer, and the most read from
/// the socket at once. The model's messages are a few kB (100 ms of 24 kHz
/// audio is 6.4 kB of base64); a longer one reserves its own length once
/// its header is read and takes several reads. tungstenite 0.29 zeroes up
/// to this much of the buffer before every read (`FrameCodec::read_in`
/// resizes it), and that zeroed memory stays resident: its default of
/// 128 KiB is zeroed on every read and kept by every connection.
pub(crate) const READ_BUFFER_BYTES: usize = 8 * 1024;

/// The WebSocket limits used for model connections: the read buffer sized
/// to the traffic ([`READ_BUFFER_BYTES`]); every message written at once
/// (the drivers send one message and flush, so there is nothing to
/// batch); at most [`MAX_MESSAGE_BYTES`] waiting to be written (a peer that
/// stops reading gets backpressure, then an error, never unbounded memory);
/// the same bound on what is read.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Maps a tungstenite error during connect to a typed failure.
pub(crate) fn connect_failure(e: &tungstenite::Error) -> ConnectFailure {
    match e {
        tungstenite::Error::Io(io) => ConnectFailure::Io(io.kind()),
        tungstenite::Error::Tls(_) => ConnectFailure::Tls,
        tungstenite::Error::Url(_) => ConnectFailure::InvalidUrl,
        tungstenite::Error::Http(resp) => ConnectFailure::HttpStatus(resp.status().as_u16()),
        _ => ConnectFailure::Handshake,
    }
}

/// Opens a WebSocket to `url` with extra `headers` within `timeout`; a
/// `wss://` URL's TLS trusts `roots`.
pub(crate) async fn connect(
    url: &str,
    headers: &[(&'static str, String)],
    timeout: Duration,
    roots: TlsRoots,
) -> Result<Connection, ConnectFailure> {
    let mut request = url
        .into_client_request()
        .map_err(|_| ConnectFailure::InvalidUrl)?;
    for (name, value) in headers {
        let v = HeaderValue::from_str(value).map_err(|_| ConnectFailure::InvalidUrl)?;
        request.headers_mut().insert(*name, v);
    }
    #[cfg(feature = "tls")]
    let fut = {
        // The roots are read once per process, and only for wss://.
        let connector = if request.uri().scheme_str() == Some("wss") {
            let config = roots.client_config().map_err(ConnectFailure::TlsRoots)?;
            Some(Connector::Rustls(config))
        } else {
            None
        };
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config()),
            true,
            connector,
        )
    };
    // Without TLS a wss:// connect fails as tungstenite reports it.
    #[cfg(not(feature = "tls"))]
    let fut = {
        let _ = roots;
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true)
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(ConnectFailure::ConnectTimeout(timeout)),
        Ok(Err(e)) => Err(connect_failure(&e)),
        Ok(Ok((ws, _response))) => Ok(Connection {
            ws,
            _guard: ConnectionGuard::new(),
        }),
    }
}

/// The close frame of a normal end.
pub(crate) fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Clean close: send close 1000, then read (discarding) until the peer's
/// close arrives or `timeout` passes. Returns whether the handshake completed.
pub(crate) async fn close_connection(conn: &mut Connection, timeout: Duration) -> bool {
    let handshake = async {
        if conn.ws.send(normal_close()).await.is_err() {
            return false;
        }
        loop {
            match conn.ws.next().await {
                Some(Ok(Message::Close(_))) => {
                    // Let tungstenite finish its side (flush) before dropping.
                    while let Some(Ok(_)) = conn.ws.next().await {}
                    return true;
                }
                Some(Ok(_)) => continue,
                Some(Err(tungstenite::Error::ConnectionClosed)) | None => return true,
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(false)
}

/// Sends one text frame.
pub(crate) async fn send_text(
    conn: &mut Connection,
    text: impl Into<Utf8Bytes>,
) -> Result<(), tungstenite::Error> {
    conn.ws.send(Message::Text(text.into())).await
}

/// Maps a WebSocket error while waiting for the setup answer to a typed
/// failure (a vanished peer is an abnormal close, 1006).
pub(crate) fn setup_failure(e: tungstenite::Error) -> ConnectFailure {
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

/// The payload of the next text or binary frame during setup (control
/// frames are skipped); a close, an error or the end of the stream fails
/// the setup.
pub(crate) async fn setup_payload(conn: &mut Connection) -> Result<Vec<u8>, ConnectFailure> {
    loop {
        return match conn.ws.next().await {
            Some(Ok(Message::Text(t))) => Ok(t.as_bytes().to_vec()),
            Some(Ok(Message::Binary(b))) => Ok(b.to_vec()),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = close_parts(frame.as_ref());
                Err(ConnectFailure::ClosedDuringSetup { code, reason })
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => Err(setup_failure(e)),
            None => Err(ConnectFailure::ClosedDuringSetup {
                code: 1006,
                reason: String::new(),
            }),
        };
    }
}

/// Runs the setup exchange `setup` within `timeout`.
pub(crate) async fn within_setup_timeout(
    timeout: Duration,
    setup: impl Future<Output = Result<(), ConnectFailure>>,
) -> Result<(), ConnectFailure> {
    tokio::time::timeout(timeout, setup)
        .await
        .unwrap_or(Err(ConnectFailure::SetupTimeout(timeout)))
}

/// The outcome of a connection's setup: `Ok` goes on; a failure ends the
/// connection and is returned. Where the connection is still open (a timeout, an error event,
/// a message that is not the protocol) it is closed with a close frame
/// 1000 and a wait for the server's close, bounded by `close_timeout`
/// (RFC 6455 §7): dropping it would end the attempt as 1006, an abnormal
/// closure a provider may count against the key. Where the server already
/// closed, or the socket failed, there is nothing left to close.
pub(crate) async fn finish_setup(
    conn: &mut Connection,
    setup: Result<(), ConnectFailure>,
    close_timeout: Duration,
) -> Result<(), ConnectFailure> {
    let Err(failure) = setup else {
        return Ok(());
    };
    let open = !matches!(
        failure,
        ConnectFailure::ClosedDuringSetup { .. } | ConnectFailure::Io(_)
    );
    if open {
        let clean = close_connection(conn, close_timeout).await;
        tracing::debug!(clean, cause = %failure, "setup abandoned; connection closed");
    }
    Err(failure)
}

/// The payload of a frame the run loop received on `conn`, or the step to
/// take instead: control frames are skipped; the server's close frame
/// (after driving out tungstenite's queued close reply), an oversized
/// message, a failure or the end of the stream end the session. `who`
/// names the provider in logs.
pub(crate) async fn frame_payload(
    conn: Option<&mut Connection>,
    msg: Option<Result<Message, tungstenite::Error>>,
    who: &'static str,
) -> Result<Bytes, Step> {
    match msg {
        Some(Ok(Message::Text(t))) => Ok(t.into()),
        Some(Ok(Message::Binary(b))) => Ok(b),
        Some(Ok(Message::Close(frame))) => {
            let (code, reason) = close_parts(frame.as_ref());
            if let Some(conn) = conn {
                while let Some(Ok(_)) = conn.ws.next().await {}
            }
            tracing::info!(code, %reason, "{who} server closed the session");
            Err(Step::End(CloseOutcome {
                clean: code == 1000,
                reason: CloseReason::ServerClosed { code, reason },
            }))
        }
        Some(Ok(_)) => Err(Step::Continue),
        Some(Err(tungstenite::Error::Capacity(_))) => Err(Step::End(CloseOutcome {
            reason: CloseReason::ProtocolError("server message over the size limit"),
            clean: false,
        })),
        Some(Err(e)) => Err(connection_lost(&e, who)),
        None => Err(Step::End(CloseOutcome {
            reason: CloseReason::ConnectionLost,
            clean: false,
        })),
    }
}

/// The end of a session whose connection failed with `e` (logged).
pub(crate) fn connection_lost(e: &tungstenite::Error, who: &'static str) -> Step {
    tracing::warn!(error = %e, "{who} connection failed");
    Step::End(CloseOutcome {
        reason: CloseReason::ConnectionLost,
        clean: false,
    })
}

/// Sleeps until `deadline`, or forever without one (an optional timer arm
/// of a `select!`).
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs `attempt` (1-based attempt number) until it succeeds, fails with a
/// non-retryable cause, or `policy.max_attempts` is reached, sleeping the
/// policy's backoff between attempts.
pub(crate) async fn with_retry<T, F, Fut>(
    provider: Provider,
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ConnectFailure>>,
{
    let max = policy.max_attempts.max(1);
    let mut n = 1;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(last) => {
                tracing::warn!(%provider, attempt = n, max, cause = %last, "model connect attempt failed");
                if n >= max || !last.is_retryable() {
                    return Err(Error::Connect {
                        provider,
                        attempts: n,
                        last,
                    });
                }
                tokio::time::sleep(policy.backoff(n)).await;
                n += 1;
            }
        }
    }
}

/// Text of a close frame's reason, bounded (RFC 6455: at most 123 bytes).
pub(crate) fn close_parts(frame: Option<&CloseFrame>) -> (u16, String) {
    match frame {
        Some(f) => (
            u16::from(f.code),
            f.reason.as_str().chars().take(123).collect(),
        ),
        None => (1005, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retry_stops_after_max_attempts_with_the_last_cause() {
        let mut calls = 0;
        let r: Result<(), Error> = with_retry(Provider::Gemini, &RetryPolicy::default(), |_| {
            calls += 1;
            async { Err(ConnectFailure::Io(std::io::ErrorKind::ConnectionRefused)) }
        })
        .await;
        assert_eq!(calls, 3);
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Connect { attempts: 3, .. }));
        assert!(e.to_string().contains("after 3 attempt(s)"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_does_not_repeat_a_rejected_setup() {
        let mut calls = 0;
        let r: Result<(), Error> = with_retry(Provider::Gemini, &RetryPolicy::default(), |_| {
            calls += 1;
            async {
                Err(ConnectFailure::ClosedDuringSetup {
                    code: 1008,
                    reason: "Requested entity was not found".into(),
                })
            }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(r, Err(Error::Connect { attempts: 1, .. })));
    }

    /// A wss:// endpoint that does not speak TLS fails the handshake with a
    /// typed error (and the TLS stack has a crypto provider: no panic).
    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn wss_to_a_non_tls_server_is_a_typed_failure() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            if let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let url = format!("wss://127.0.0.1:{port}/ws");
        let r = connect(&url, &[], Duration::from_secs(2), TlsRoots::Bundled).await;
        assert!(
            matches!(r, Err(ConnectFailure::Tls | ConnectFailure::Io(_))),
            "{r:?}"
        );
        server.abort();
    }

    /// A loopback server that sends `sizes` text messages of that many
    /// bytes each, then closes.
    async fn sender_of(sizes: Vec<usize>) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async_with_config(
                tcp,
                Some(WebSocketConfig::default().max_message_size(None)),
            )
            .await
            .unwrap();
            for n in sizes {
                if ws.send(Message::text("x".repeat(n))).await.is_err() {
                    return;
                }
            }
            let _ = ws.close(None).await;
            while ws.next().await.is_some() {}
        });
        (format!("ws://127.0.0.1:{port}/"), server)
    }

    /// The small read buffer bounds each read, not what can be received:
    /// messages from 1 byte to the 4 MiB limit arrive whole; one byte more
    /// ends the session as over the limit.
    #[tokio::test]
    async fn messages_far_larger_than_the_read_buffer_arrive_whole() {
        let sizes = vec![
            1,
            READ_BUFFER_BYTES - 1,
            READ_BUFFER_BYTES + 1,
            6_400,
            300_000,
            MAX_MESSAGE_BYTES,
            MAX_MESSAGE_BYTES + 1,
        ];
        let (url, server) = sender_of(sizes.clone()).await;
        let mut conn = connect(&url, &[], Duration::from_secs(5), TlsRoots::Bundled)
            .await
            .unwrap();
        for &n in &sizes[..sizes.len() - 1] {
            match frame_payload(None, conn.ws.next().await, "test").await {
                Ok(payload) => assert_eq!(payload.len(), n),
                Err(_) => panic!("message of {n} bytes not received"),
            }
        }
        match frame_payload(None, conn.ws.next().await, "test").await {
            Err(Step::End(o)) => assert_eq!(
                o.reason,
                CloseReason::ProtocolError("server message over the size limit")
            ),
            _ => panic!("a message over the limit was accepted"),
        }
        drop(conn);
        server.abort();
    }

    #[tokio::test]
    async fn invalid_url_is_a_typed_failure() {
        let r = connect("not a url", &[], Duration::from_secs(1), TlsRoots::Bundled).await;
        assert_eq!(r.unwrap_err(), ConnectFailure::InvalidUrl);
    }
}
