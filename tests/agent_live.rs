//! End-to-end, issue 23 (call events out, live view and control) against
//! the real `agent` binary, sipp callers and a webhook receiver of the
//! test's own (loopback only):
//!
//! - webhooks survive an agent restart mid-delivery: the receiver is down
//!   during the call, the agent is killed, restarted, the receiver comes
//!   up; every event is delivered at least once (signatures verified, an
//!   idempotency key on each), none lost;
//! - webhooks per routing profile: two profiles with receivers of their
//!   own and the global `[webhooks]` for the default; each receiver gets
//!   exactly its calls' events, signed with its own secret;
//! - the event stream (SSE) followed during a real call: states and
//!   transcript turns in order, to the end;
//! - the control routes on a live call: the typed 409 for instructions,
//!   say, a transfer refused for an unlisted target, and the live audio
//!   WebSocket (frames with energy), 404 when it is off;
//! - the event stream replayed: a client connecting late gets the call's
//!   earlier events first, one reconnecting with `Last-Event-ID` gets
//!   those after it; then the live ones, none twice, none missing;
//! - an operator's transfer to its end: the REFER reaches the caller (a
//!   raw SIP peer here), its NOTIFY reports 200, the agent hangs up and
//!   the call is stored ended "transferred".

mod support_agent;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callbridge_session::signing::verify;
use serde_json::{Value, json};
use support_agent::raw_sip::{RawCall, header, status};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

const SECRET: &str = "e2e-webhook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hook {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A webhook receiver on `addr`: answers 200 to every POST and keeps it.
fn receiver(listener: TcpListener) -> Arc<Mutex<Vec<Hook>>> {
    let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let sink = Arc::clone(&got);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || serve(conn, &sink));
        }
    });
    got
}

fn serve(conn: TcpStream, sink: &Mutex<Vec<Hook>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        sink.lock().unwrap().push(Hook { headers, body });
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if r.get_mut().write_all(ok).is_err() {
            return;
        }
    }
}

fn webhook_env(url: &str, db: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("CALLBRIDGE_WEBHOOKS_URLS".into(), url.into()),
        (
            "CALLBRIDGE_WEBHOOKS_SECRET_ENV".into(),
            "E2E_WEBHOOK_SECRET".into(),
        ),
        ("E2E_WEBHOOK_SECRET".into(), SECRET.into()),
        ("CALLBRIDGE_WEBHOOKS_RETRY_INITIAL".into(), "200ms".into()),
        ("CALLBRIDGE_WEBHOOKS_RETRY_MAX".into(), "500ms".into()),
        ("CALLBRIDGE_WEBHOOKS_TIMEOUT".into(), "2s".into()),
        ("CALLBRIDGE_STORE_DATABASE".into(), db.display().to_string()),
    ]
}

#[test]
fn webhooks_survive_an_agent_restart_mid_delivery_and_are_signed() {
    // A port with nobody on it: the receiver is down.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let opts = Opts {
        env: webhook_env(&url, &db),
        ..Opts::default()
    };
    let mut agent = Agent::start(opts.clone());
    agent.db = db.clone();
    Sipp::uac("uac_short.xml", agent.sip)
        .within(Duration::from_secs(30))
        .run()
        .assert_ok("a short call");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let id = sessions[0].id;
    // Attempts fail while the receiver is down: pending, with the error.
    let pending = agent.wait_for("failed attempts", Duration::from_secs(15), || {
        let v = agent.get_json(&format!("/api/webhooks/deliveries?session={id}"));
        let list = v["deliveries"].as_array().cloned().unwrap_or_default();
        let names: HashSet<_> = list.iter().filter_map(|d| d["event"].as_str()).collect();
        let tried = list.iter().all(|d| d["attempts"].as_u64() >= Some(1));
        (names.contains("call.ended") && tried).then_some(list)
    });
    assert!(
        pending.iter().all(|d| d["status"] == "pending"),
        "{pending:?}"
    );
    assert!(
        pending
            .iter()
            .all(|d| d["last_error"] == "could not connect"),
        "{pending:?}"
    );
    let keys: HashSet<String> = pending
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    // Killed mid-delivery, restarted on the same store; the receiver up.
    drop(agent);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = receiver(listener);
    let mut agent = Agent::start(opts);
    agent.db = db;
    let delivered = agent.wait_for("every delivery", Duration::from_secs(30), || {
        let v = agent.get_json(&format!("/api/webhooks/deliveries?session={id}"));
        let list = v["deliveries"].as_array().cloned().unwrap_or_default();
        (!list.is_empty() && list.iter().all(|d| d["status"] == "delivered")).then_some(list)
    });
    assert!(delivered.len() >= pending.len());
    let hooks = got.lock().unwrap().clone();
    let now = jiff::Timestamp::now().as_second();
    let mut seen = HashSet::new();
    let mut names = HashSet::new();
    for h in &hooks {
        let sig = &h.headers["x-callbridge-signature"];
        verify(SECRET.as_bytes(), sig, &h.body, now, 300)
            .unwrap_or_else(|e| panic!("bad signature {sig}: {e}"));
        assert!(verify(b"wrong", sig, &h.body, now, 300).is_err());
        let doc: Value = serde_json::from_slice(&h.body).unwrap();
        let key = &h.headers["idempotency-key"];
        assert_eq!(doc["id"], key.as_str(), "the key is the event's id");
        assert_eq!(doc["session"], id.to_string());
        assert_eq!(
            h.headers["x-callbridge-event"],
            doc["event"].as_str().unwrap()
        );
        seen.insert(key.clone());
        names.insert(doc["event"].as_str().unwrap().to_owned());
    }
    for k in &keys {
        assert!(seen.contains(k), "{k} never delivered; got {seen:?}");
    }
    for n in ["call.started", "call.answered", "call.ended"] {
        assert!(names.contains(n), "no {n}: {names:?}");
    }
    let ended = hooks
        .iter()
        .map(|h| serde_json::from_slice::<Value>(&h.body).unwrap())
        .find(|d| d["event"] == "call.ended")
        .unwrap();
    assert_eq!(ended["data"]["reason"], "caller-hangup", "{ended}");
    assert!(ended["data"]["duration_ms"].as_u64().is_some(), "{ended}");
}

/// A receiver on a fresh loopback port: its URL and what it got.
fn new_receiver(path: &str) -> (String, Arc<Mutex<Vec<Hook>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/{path}", l.local_addr().unwrap());
    (url, receiver(l))
}

#[test]
fn each_profiles_receivers_get_exactly_its_calls_events_signed_with_its_secret() {
    let (sales_url, sales) = new_receiver("sales");
    let (support_url, support) = new_receiver("support");
    let (global_url, global) = new_receiver("global");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let mut env = webhook_env(&global_url, &db);
    env.push(("E2E_SALES_SECRET".into(), "sales-secret".into()));
    env.push(("E2E_SUPPORT_SECRET".into(), "support-secret".into()));
    let profiles = format!(
        r#"
[[profiles]]
name = "sales"
[profiles.match]
exact = ["+15550100123"]
[profiles.webhooks]
urls = ["{sales_url}"]
secret_env = "E2E_SALES_SECRET"

[[profiles]]
name = "support"
[profiles.match]
exact = ["+15550100456"]
[profiles.webhooks]
urls = ["{support_url}"]
secret_env = "E2E_SUPPORT_SECRET"
events = ["call.started", "call.ended"]
"#
    );
    let mut agent = Agent::start(Opts {
        env,
        extra_toml: profiles,
        ..Opts::default()
    });
    agent.db = db;
    for called in ["+15550100123", "+15550100456", "+15550100789"] {
        Sipp::uac("uac_profile.xml", agent.sip)
            .key("called", called)
            .key("customer", "C-1")
            .pause_ms(800)
            .within(Duration::from_secs(20))
            .run()
            .assert_ok("a routed call");
    }
    let sessions = agent.wait_sessions_terminal(3, Duration::from_secs(15));
    let session_to = |to: &str| {
        sessions
            .iter()
            .find(|s| s.to.as_ref().is_some_and(|p| p.as_str() == to))
            .unwrap_or_else(|| panic!("no session to {to}"))
            .id
            .to_string()
    };
    let cases = [
        (
            "sales",
            &sales,
            "sales-secret",
            session_to("+15550100123"),
            3,
        ),
        (
            "support",
            &support,
            "support-secret",
            session_to("+15550100456"),
            2,
        ),
        ("global", &global, SECRET, session_to("+15550100789"), 3),
    ];
    for (name, got, secret, session, least) in cases {
        agent.wait_for(name, Duration::from_secs(20), || {
            let h = got.lock().unwrap();
            let ended = h
                .iter()
                .any(|h| h.headers["x-callbridge-event"] == "call.ended");
            (ended && h.len() >= least).then_some(())
        });
        // A stray row would come within the worker's next looks.
        std::thread::sleep(Duration::from_millis(1500));
        let hooks = got.lock().unwrap().clone();
        let now = jiff::Timestamp::now().as_second();
        let mut names = HashSet::new();
        for h in &hooks {
            let doc: Value = serde_json::from_slice(&h.body).unwrap();
            assert_eq!(
                doc["session"],
                session.as_str(),
                "{name} got another call's event: {doc}"
            );
            let sig = &h.headers["x-callbridge-signature"];
            verify(secret.as_bytes(), sig, &h.body, now, 300)
                .unwrap_or_else(|e| panic!("{name}: bad signature {sig}: {e}"));
            for other in ["sales-secret", "support-secret", SECRET] {
                if other != secret {
                    assert!(verify(other.as_bytes(), sig, &h.body, now, 300).is_err());
                }
            }
            names.insert(doc["event"].as_str().unwrap().to_owned());
        }
        assert!(
            names.contains("call.started") && names.contains("call.ended"),
            "{name}: {names:?}"
        );
        if name == "support" {
            assert!(
                !names.contains("call.answered"),
                "support's filter: {names:?}"
            );
        } else {
            assert!(names.contains("call.answered"), "{name}: {names:?}");
        }
        // The deliveries name their target.
        let v = agent.get_json(&format!("/api/webhooks/deliveries?session={session}"));
        let list = v["deliveries"].as_array().cloned().unwrap_or_default();
        let want = if name == "global" {
            Value::Null
        } else {
            json!(name)
        };
        assert!(
            !list.is_empty() && list.iter().all(|d| d["target"] == want),
            "{name}: {v}"
        );
    }
}

/// A Server-Sent Events client over a raw socket (chunked body).
struct Sse {
    r: BufReader<TcpStream>,
}

impl Sse {
    fn open(http: SocketAddr, path: &str, token: &str) -> Sse {
        Sse::open_with(http, path, token, "")
    }

    /// `extra`: more header lines, each ending in CRLF.
    fn open_with(http: SocketAddr, path: &str, token: &str, extra: &str) -> Sse {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\n{extra}\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim_end().is_empty() {
                break;
            }
        }
        Sse { r }
    }

    /// The next chunk of the body; `None` at its end.
    fn chunk(&mut self) -> Option<String> {
        let mut size = String::new();
        self.r.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return None;
        }
        let mut buf = vec![0; n + 2];
        self.r.read_exact(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Every event (name, data) until the stream ends.
    fn all(mut self) -> (Vec<(String, Value)>, String) {
        let mut text = String::new();
        while let Some(c) = self.chunk() {
            text.push_str(&c);
        }
        Sse::parse(text)
    }

    /// The events until one numbered `seq` or above has come.
    fn until_seq(&mut self, seq: u64) -> Vec<(String, Value)> {
        let mut text = String::new();
        loop {
            let c = self.chunk().expect("the stream ended early");
            text.push_str(&c);
            let (events, _) = Sse::parse(text.clone());
            if events.iter().any(|(_, d)| d["seq"].as_u64() >= Some(seq)) {
                return events;
            }
        }
    }

    fn parse(text: String) -> (Vec<(String, Value)>, String) {
        let mut out = Vec::new();
        for block in text.split("\n\n") {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(n), Some(d)) = (name, data) {
                out.push((n.to_owned(), serde_json::from_str(d).unwrap()));
            }
        }
        (out, text)
    }
}

/// The id of the first live call, once there is one.
fn live_call(agent: &Agent) -> String {
    agent.wait_for("a live call", Duration::from_secs(10), || {
        let v = agent.get_json("/api/live");
        v["active_ids"][0].as_str().map(str::to_owned)
    })
}

#[test]
fn the_event_stream_follows_a_real_call_in_order_to_its_end() {
    let agent = Agent::start(Opts::default());
    let sipp = Sipp::uac("uac_speak.xml", agent.sip)
        .pause_ms(3000)
        .within(Duration::from_secs(30))
        .spawn();
    let id = live_call(&agent);
    let sse = Sse::open(agent.http, &format!("/api/calls/{id}/events"), &agent.token);
    let (events, text) = sse.all();
    sipp.finish().assert_ok("the caller");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    println!("events: {names:?}");
    assert_eq!(names.first(), Some(&"call.state"), "{text}");
    assert_eq!(names.last(), Some(&"call.ended"), "{text}");
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|(_, d)| d["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless, in order: {seqs:?}"
    );
    let turns: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "transcript.turn")
        .map(|(_, d)| &d["data"])
        .collect();
    assert!(
        turns.iter().any(|t| t["speaker"] == "caller"),
        "no caller turn: {text}"
    );
    assert!(
        turns.iter().any(|t| t["speaker"] == "agent"),
        "no agent turn: {text}"
    );
    let numbers: Vec<u64> = turns.iter().filter_map(|t| t["turn"].as_u64()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert!(names.contains(&"transcript.delta"), "{names:?}");
    let states: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "call.state")
        .filter_map(|(_, d)| d["data"]["state"].as_str())
        .collect();
    let ending = states.iter().position(|s| *s == "ending");
    assert!(ending.is_some(), "{states:?}");
    assert_eq!(
        events.last().unwrap().1["data"]["reason"],
        "caller-hangup",
        "{text}"
    );
}

#[test]
fn a_live_call_is_controlled_and_listened_to() {
    let opts = Opts {
        env: vec![
            ("CALLBRIDGE_HTTP_LISTEN".into(), "true".into()),
            (
                "CALLBRIDGE_TRANSFER_TARGETS".into(),
                "sales=sip:sales@127.0.0.1:9".into(),
            ),
        ],
        ..Opts::default()
    };
    let agent = Agent::start(opts);
    let sipp = Sipp::uac("uac_speak.xml", agent.sip)
        .pause_ms(6000)
        .within(Duration::from_secs(30))
        .spawn();
    let id = live_call(&agent);
    // Active once the model is ready and the call answered.
    agent.wait_for("an active call", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        (v["state"] == "active").then_some(())
    });
    let post = |what: &str, body: Value| {
        agent.request("POST", &format!("/api/calls/{id}/{what}"), Some(&body))
    };
    let a = post("instructions", json!({"instructions": "Speak French."}));
    assert_eq!(a.status, 409, "{}", a.text());
    assert_eq!(a.json()["code"], "instructions_unsupported");
    let a = post("say", json!({"text": "This call may be recorded."}));
    assert_eq!(a.status, 202, "{}", a.text());
    let a = post("transfer", json!({"target": "support"}));
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["code"], "target_not_allowed");

    // The live audio: binary frames of 20 ms, with the caller's speech and
    // the agent's voice in them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (frames, peak) = rt.block_on(async {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/api/calls/{id}/listen", agent.http)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", agent.token).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let (mut frames, mut peak) = (0usize, 0f64);
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
            if let tokio_tungstenite::tungstenite::Message::Binary(b) = m {
                assert_eq!(b.len(), 320, "20 ms of 8 kHz 16-bit PCM");
                frames += 1;
                let samples: Vec<i16> = b
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                peak = peak.max(callbridge_audio::level::rms(&samples));
            }
        }
        (frames, peak)
    });
    println!("listen: {frames} frames, loudest rms {peak:.0}");
    assert!(frames >= 100, "only {frames} frames in 3 s");
    assert!(peak > 300.0, "no energy in the mixed audio (rms {peak:.0})");

    // A listed target is taken on the active call: the REFER goes to the
    // caller (sipp does not expect it, so its run is not checked).
    let a = post("transfer", json!({"target": "sales"}));
    assert_eq!(a.status, 202, "{}", a.text());
    drop(sipp);

    // Off by default: 404.
    let plain = Agent::start(Opts::default());
    let a = plain.request(
        "GET",
        "/api/calls/00000000-0000-4000-8000-000000000000/listen",
        None,
    );
    assert_eq!(a.status, 404, "{}", a.text());
}

// --- issue 23 (prof2): an operator's transfer to its end ---
/// The next SIP request on `sock` (responses are skipped), within 10 s.
fn next_request(sock: &std::net::UdpSocket) -> (String, SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65_536];
    while std::time::Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if status(&msg).is_none() {
            return (msg, from);
        }
    }
    panic!("no request within 10 s");
}

/// A response to `req` with `code`: its Via, From, To, Call-ID and CSeq.
fn answer(req: &str, code: &str) -> String {
    let mut out = format!("SIP/2.0 {code}\r\n");
    for l in req.split("\r\n").skip(1) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"].contains(&name.as_str()) {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

#[test]
fn an_operator_transfer_is_referred_notified_and_stored_as_transferred() {
    let agent = Agent::start(Opts {
        env: vec![(
            "CALLBRIDGE_TRANSFER_TARGETS".into(),
            "sales=sip:sales@127.0.0.1:9".into(),
        )],
        ..Opts::default()
    });
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    call.invite_and_ack(Duration::from_secs(10));
    let id = live_call(&agent);
    agent.wait_for("an active call", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        (v["state"] == "active").then_some(())
    });
    let a = agent.request(
        "POST",
        &format!("/api/calls/{id}/transfer"),
        Some(&json!({"target": "sales"})),
    );
    assert_eq!(a.status, 202, "{}", a.text());

    // The REFER reaches the caller, names the target; accepted.
    let (refer, from) = loop {
        let (m, from) = next_request(&call.sock);
        if m.starts_with("REFER ") {
            break (m, from);
        }
        call.sock
            .send_to(answer(&m, "200 OK").as_bytes(), from)
            .unwrap();
    };
    let refer_to = header(&refer, "Refer-To").unwrap_or_default();
    assert!(refer_to.contains("sip:sales@127.0.0.1:9"), "{refer}");
    assert_eq!(header(&refer, "Call-ID"), Some(call.call_id.as_str()));
    call.sock
        .send_to(answer(&refer, "202 Accepted").as_bytes(), from)
        .unwrap();

    // The transferee's INVITE succeeded: NOTIFY with a sipfrag 200.
    let local = call.sock.local_addr().unwrap();
    let frag = "SIP/2.0 200 OK\r\n";
    let notify = format!(
        "NOTIFY sip:agent@{agent} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-e2e-notify-1;rport\r\n\
         From: <sip:+15550100999@{local}>;tag={ftag}\r\n\
         To: <sip:+15550100123@{agent}>;tag={ttag}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: 2 NOTIFY\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Max-Forwards: 70\r\n\
         Event: refer\r\n\
         Subscription-State: terminated;reason=noresource\r\n\
         Content-Type: message/sipfrag\r\n\
         Content-Length: {len}\r\n\r\n{frag}",
        agent = agent.sip,
        ftag = call.from_tag,
        ttag = call.to_tag.clone().unwrap(),
        cid = call.call_id,
        len = frag.len(),
    );
    call.sock.send_to(notify.as_bytes(), agent.sip).unwrap();

    // The NOTIFY is answered 200 and the agent hangs up.
    let (mut notified, mut bye) = (false, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65_536];
    while !(notified && bye) && std::time::Instant::now() < deadline {
        call.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let Ok((n, from)) = call.sock.recv_from(&mut buf) else {
            continue;
        };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if status(&m).is_some() {
            if header(&m, "CSeq").is_some_and(|c| c.ends_with("NOTIFY")) {
                assert_eq!(status(&m), Some(200), "{m}");
                notified = true;
            }
        } else {
            if m.starts_with("BYE ") {
                bye = true;
            }
            call.sock
                .send_to(answer(&m, "200 OK").as_bytes(), from)
                .unwrap();
        }
    }
    assert!(notified, "the NOTIFY was not answered 200");
    assert!(bye, "the agent did not hang up after the transfer");

    // Stored: ended, transferred.
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    assert_eq!(
        sessions[0].end_reason,
        Some(callbridge_crm_store::EndReason::Transferred),
        "{:?}",
        sessions[0]
    );
    let v = agent.get_json(&format!("/api/sessions/{id}"));
    assert_eq!(v["session"]["end_reason"], "transferred", "{v}");
}
// --- end issue 23 (prof2) ---

// --- issue 23 (prof2): SSE replay ---
#[test]
fn a_late_or_reconnecting_event_stream_gets_the_earlier_events_then_the_live_ones_once() {
    let agent = Agent::start(Opts::default());
    let sipp = Sipp::uac("uac_speak.xml", agent.sip)
        .pause_ms(4000)
        .within(Duration::from_secs(30))
        .spawn();
    let id = live_call(&agent);
    agent.wait_for("an active call", Duration::from_secs(10), || {
        let v = agent.get_json(&format!("/api/calls/{id}"));
        (v["state"] == "active").then_some(())
    });
    // Late: the call has been going; the stream still starts at its
    // first event.
    let mut late = Sse::open(agent.http, &format!("/api/calls/{id}/events"), &agent.token);
    let seen = late.until_seq(3);
    drop(late);
    assert_eq!(seen[0].0, "call.state", "the state line opens: {seen:?}");
    let numbered: Vec<&Value> = seen
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["seq"].is_u64())
        .collect();
    assert_eq!(numbered[0]["seq"], 1, "{seen:?}");
    assert_eq!(numbered[0]["event"], "call.started", "{seen:?}");
    let last = numbered.last().unwrap()["seq"].as_u64().unwrap();
    // Reconnecting after `last`: the rest, to the end, each once.
    let again = Sse::open_with(
        agent.http,
        &format!("/api/calls/{id}/events"),
        &agent.token,
        &format!("Last-Event-ID: {id}:{last}\r\n"),
    );
    let (events, text) = again.all();
    sipp.finish().assert_ok("the caller");
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|(_, d)| d["seq"].as_u64())
        .collect();
    println!("first stream to #{last}; the second: {seqs:?}");
    assert_eq!(seqs.first(), Some(&(last + 1)), "{text}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless, once: {seqs:?}"
    );
    assert!(!events.iter().any(|(n, _)| n == "lagged"), "{text}");
    assert_eq!(events.last().unwrap().0, "call.ended", "{text}");
}
// --- end issue 23 (prof2) ---
