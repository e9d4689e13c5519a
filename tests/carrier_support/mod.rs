//! What the carrier end-to-end tests share: an agent started from the real
//! binary (`bins::AGENT`, built-in mock model) with both carriers
//! on and signatures checked, raw HTTP/1.1 requests, signed WebSocket
//! upgrades and the fake carriers' first messages. Every wait is bounded;
//! the agent is killed when its handle drops.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use callbridge_carrier::signature::twilio_signature;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

#[path = "../bin/paths.rs"]
mod bins;
#[path = "../common/process.rs"]
pub mod process;

pub const AGENT: &str = bins::AGENT;
pub const TOKEN: &str = "twilio-test-token";
pub const SECRET: &str = "vonage-test-secret";
pub const PUBLIC: &str = "http://agent.test";
pub const VONAGE_APP: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

/// A carrier WebSocket as the fake carrier holds it.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn test_key_path() -> String {
    format!(
        "{}/../crates/carrier/tests/data/vonage-test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The agent's configuration: both carriers on with signatures checked,
/// `rtp` the RTP port range (disjoint per test, they run in parallel), and
/// `extra` lines appended to each `[carrier.*]` table.
pub fn config_with(dir: &Path, rtp: (u16, u16), extra: &str) -> std::path::PathBuf {
    let (lo, hi) = rtp;
    let text = format!(
        "[sip]\nbind = \"127.0.0.1:0\"\nallowed_peers = [\"127.0.0.1/32\"]\n\
         [rtp]\nport_min = {lo}\nport_max = {hi}\n[calls]\nmax_concurrent = 4\n\
         [model]\nprovider = \"mock\"\n\
         [store]\ndatabase = \"agent.db\"\nrecordings_dir = \"rec\"\n\
         [http]\nbind = \"127.0.0.1:0\"\n\
         [carrier.twilio]\nenabled = true\npublic_url = \"{PUBLIC}\"\nverify_signatures = true\n{extra}\
         [carrier.vonage]\nenabled = true\npublic_url = \"{PUBLIC}\"\nverify_signatures = true\n{extra}"
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The agent command [`start`] runs: both carriers' secrets, the
/// Vonage test key, no Gemini key; then `env` on top (`Some` sets a
/// variable, `None` removes it). Output is not redirected.
pub fn agent_command(cfg: &Path, env: &[(&str, Option<&OsStr>)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(AGENT);
    cmd.args(["run", "--config", cfg.to_str().unwrap()])
        .env_remove("GEMINI_API_KEY")
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .env("VONAGE_SIGNATURE_SECRET", SECRET)
        // The REST hangup mints its JWTs from the committed test key.
        .env_remove("VONAGE_API_JWT")
        .env_remove("VONAGE_PRIVATE_KEY")
        .env("VONAGE_APPLICATION_ID", VONAGE_APP)
        .env("VONAGE_PRIVATE_KEY_PATH", test_key_path());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// Starts the agent; returns it and its HTTP address.
pub async fn start(cfg: &Path) -> (Child, SocketAddr) {
    start_with(cfg, &[]).await
}

/// Starts the agent with `env` on top of [`start`]'s environment (see
/// [`agent_command`]); returns it and its HTTP address once it says it is
/// ready (at most 30 s).
pub async fn start_with(cfg: &Path, env: &[(&str, Option<&OsStr>)]) -> (Child, SocketAddr) {
    let mut child = Command::from(agent_command(cfg, env))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .expect("ready within 30 s")
        .unwrap();
    let http = line
        .trim()
        .split_once(" http=")
        .unwrap_or_else(|| panic!("no ready line, got {line:?}"))
        .1
        .parse()
        .unwrap();
    (child, http)
}

/// One HTTP/1.1 request; returns the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: agent.test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).unwrap() + a.len();
    &s[i..i + s[i..].find(b).unwrap()]
}

/// Twilio's `connected` message.
pub const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;

/// A Twilio `start` for `call_sid` carrying `token` in its custom
/// parameters.
pub fn start_msg(call_sid: &str, token: &str) -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","streamSid":"MZ{call_sid}","start":{{"streamSid":"MZ{call_sid}","accountSid":"ACtest","callSid":"{call_sid}","tracks":["inbound"],"customParameters":{{"token":"{token}","from":"+15550001111","to":"+15550002222"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
    )
}

/// A Twilio `stop` for `call_sid`.
pub fn stop_msg(call_sid: &str) -> String {
    format!(
        r#"{{"event":"stop","streamSid":"MZ{call_sid}","stop":{{"accountSid":"ACtest","callSid":"{call_sid}"}}}}"#
    )
}

/// The Twilio voice webhook for `call_sid`, signed: its status and TwiML.
pub async fn twilio_voice(addr: SocketAddr, call_sid: &str) -> (u16, String) {
    let form = format!("CallSid={call_sid}&From=%2B15550001111&To=%2B15550002222");
    let params = [
        ("CallSid", call_sid),
        ("From", "+15550001111"),
        ("To", "+15550002222"),
    ];
    let url = format!("{PUBLIC}/carrier/twilio/voice");
    let sig = twilio_signature(TOKEN.as_bytes(), &url, &params);
    http(
        addr,
        "POST",
        "/carrier/twilio/voice",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-twilio-signature", &sig),
        ],
        &form,
    )
    .await
}

/// The per-call token of a TwiML answer.
pub fn twiml_token(twiml: &str) -> String {
    between(twiml, r#"<Parameter name="token" value=""#, "\"").to_owned()
}

/// The Media Streams upgrade, signed as Twilio signs it (the same bytes
/// every time: the signature covers the stream URL alone).
pub async fn twilio_upgrade(addr: SocketAddr) -> Ws {
    let sig = twilio_signature(TOKEN.as_bytes(), "ws://agent.test/carrier/twilio/ws", &[]);
    let mut req = format!("ws://{addr}/carrier/twilio/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-twilio-signature", sig.parse().unwrap());
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("upgrade answered within 10 s")
    .unwrap()
    .0
}

/// Opens `path` (`/carrier/vonage/ws?...`) on the agent: the socket, or
/// the HTTP status the upgrade was refused with.
pub async fn ws_connect(addr: SocketAddr, path: &str) -> Result<Ws, u16> {
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("upgrade answered within 10 s")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// The path and query of the WebSocket URI an NCCO points Vonage at.
pub fn ncco_ws_path(ncco: &serde_json::Value) -> String {
    let uri = ncco[0]["endpoint"][0]["uri"].as_str().unwrap();
    uri.strip_prefix("ws://agent.test").unwrap().to_owned()
}

/// Vonage's first frame for `uuid`, with the NCCO's `headers` echoed.
pub fn vonage_meta(uuid: &str, ncco: &serde_json::Value) -> String {
    let mut m = serde_json::json!({
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
    });
    if let Some(h) = ncco[0]["endpoint"][0]["headers"].as_object() {
        for (k, v) in h {
            m[k] = v.clone();
        }
    }
    m["uuid"] = uuid.into();
    m.to_string()
}

/// What became of a stream after its start.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The agent closed it with this code before sending any audio.
    Closed(Option<u16>),
    /// The agent sent audio: a call was admitted.
    Admitted,
    /// Neither within 10 s.
    Silent,
}

/// Reads until the agent closes the socket or sends audio (bounded).
pub async fn outcome(ws: &mut Ws) -> Outcome {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => return Outcome::Closed(f.map(|f| u16::from(f.code))),
                Ok(Message::Binary(_)) => return Outcome::Admitted,
                Ok(Message::Text(t)) if t.as_str().contains(r#""event":"media""#) => {
                    return Outcome::Admitted;
                }
                Ok(_) => {}
                Err(_) => return Outcome::Closed(None),
            }
        }
        Outcome::Closed(None)
    })
    .await
    .unwrap_or(Outcome::Silent)
}

/// Waits (bounded) until the store holds `n` ended sessions.
pub async fn wait_ended(db: &Path, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ended = callbridge_crm_store::Store::open(db)
            .unwrap()
            .list_sessions(&Default::default(), 50, None)
            .unwrap()
            .items
            .iter()
            .filter(|s| s.state.is_terminal())
            .count();
        if ended >= n || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
