//! Carrier calls through the real `agent` binary (`bins::AGENT`,
//! built-in mock model): the webhooks refuse unsigned and wrongly signed
//! requests with 403 and answer signed ones with TwiML / an NCCO; a fake
//! Twilio connects to the Media Streams socket with the token from the
//! TwiML, hears the greeting, a second stream for the same call is refused
//! (close 1008), the caller hangs up, and the store row says inbound,
//! transport `twilio` and `twilio:<CallSid>` with the caller's hangup; the
//! HTTP API shows each call's transport and filters the list on it. The
//! Media Streams upgrade itself must carry a valid `X-Twilio-Signature`.
//! The agent starts with a Vonage application key (the test key) and
//! refuses to start, exit 2, with an unusable one, or when its REST
//! hang-ups would have to trust a system store without a usable
//! certificate (`tls.roots = "system"`); `bundled` starts it there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod carrier_support;

use std::ffi::OsStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use callbridge_carrier::signature::{payload_hash, sign_hs256, twilio_signature};
use callbridge_crm_store::{
    ApiToken, Direction, EndReason, PersonName, Role, SessionState, Store, Transport,
};
use carrier_support::process::{show, wait_bounded};
use carrier_support::{
    AGENT, PUBLIC, SECRET, TOKEN, VONAGE_APP, agent_command, between, config_with, http,
    ncco_ws_path, start, start_msg, start_with, vonage_meta,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    config_with(dir, (41000, 41039), "")
}

/// The RMS of a µ-law payload.
fn rms(b: &[u8]) -> f64 {
    callbridge_audio::level::rms_iter(b.iter().map(|&c| callbridge_audio::g711::ulaw_to_linear(c)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_calls_through_the_agent_binary() {
    let dir = tempfile::tempdir().unwrap();
    // An admin token for the session API, in the store the agent opens.
    let admin = ApiToken::generate().unwrap();
    Store::open(dir.path().join("agent.db"))
        .unwrap()
        .create_user(
            &PersonName::new("ops").unwrap(),
            Role::Admin,
            &admin,
            jiff::Timestamp::now(),
        )
        .unwrap();
    let bearer = format!("Bearer {}", admin.expose());
    let (mut child, addr) = start(&config(dir.path())).await;
    let form = "CallSid=CA0e2e&From=%2B15550001111&To=%2B15550002222";
    let params = [
        ("CallSid", "CA0e2e"),
        ("From", "+15550001111"),
        ("To", "+15550002222"),
    ];
    let url = format!("{PUBLIC}/carrier/twilio/voice");
    let ct = ("content-type", "application/x-www-form-urlencoded");
    // Unsigned and wrongly signed webhooks: 403.
    let (st, _) = http(addr, "POST", "/carrier/twilio/voice", &[ct], form).await;
    assert_eq!(st, 403, "unsigned");
    let bad = twilio_signature(b"other-token", &url, &params);
    let (st, _) = http(
        addr,
        "POST",
        "/carrier/twilio/voice",
        &[ct, ("x-twilio-signature", &bad)],
        form,
    )
    .await;
    assert_eq!(st, 403, "wrong key");
    let sig = twilio_signature(TOKEN.as_bytes(), &url, &params);
    let (st, twiml) = http(
        addr,
        "POST",
        "/carrier/twilio/voice",
        &[ct, ("x-twilio-signature", &sig)],
        form,
    )
    .await;
    assert_eq!(st, 200, "{twiml}");
    assert!(
        twiml.contains(r#"<Connect><Stream url="ws://agent.test/carrier/twilio/ws">"#),
        "{twiml}"
    );
    let token = between(&twiml, r#"<Parameter name="token" value=""#, "\"").to_owned();

    // Vonage: unsigned answer 403, signed answer an NCCO, signed event 204.
    let (st, _) = http(
        addr,
        "GET",
        "/carrier/vonage/answer?uuid=u-1&from=447700900001&to=447700900002",
        &[],
        "",
    )
    .await;
    assert_eq!(st, 403);
    let now = jiff::Timestamp::now().as_second();
    let jwt = sign_hs256(
        SECRET.as_bytes(),
        &serde_json::json!({"iat": now, "jti": "e2e-answer-1"}),
    );
    let auth = format!("Bearer {jwt}");
    let (st, ncco) = http(
        addr,
        "GET",
        "/carrier/vonage/answer?uuid=u-1&from=447700900001&to=447700900002",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(st, 200, "{ncco}");
    let ncco: serde_json::Value = serde_json::from_str(&ncco).unwrap();
    // The call id and its single-use token ride in the socket's URI.
    let vonage_path = ncco_ws_path(&ncco);
    assert!(
        vonage_path.starts_with("/carrier/vonage/ws?uuid=u-1&token="),
        "{ncco}"
    );
    assert_eq!(
        ncco[0]["endpoint"][0]["content-type"],
        "audio/l16;rate=16000"
    );
    assert_eq!(ncco[0]["endpoint"][0]["headers"]["uuid"], "u-1");
    let ev = r#"{"status":"ringing","uuid":"u-1","direction":"inbound"}"#;
    let jwt = sign_hs256(
        SECRET.as_bytes(),
        &serde_json::json!({"iat": now, "jti": "e2e-event-1", "payload_hash": payload_hash(ev.as_bytes())}),
    );
    let auth = format!("Bearer {jwt}");
    let (st, _) = http(
        addr,
        "POST",
        "/carrier/vonage/events",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        ev,
    )
    .await;
    assert_eq!(st, 204);
    let tampered = ev.replace("ringing", "answered");
    let (st, _) = http(
        addr,
        "POST",
        "/carrier/vonage/events",
        &[("authorization", &auth)],
        &tampered,
    )
    .await;
    assert_eq!(st, 403, "payload hash checked");

    // The Twilio stream: the upgrade is signed over the stream URL of the
    // TwiML (an unsigned one is refused with 403 before any upgrade).
    let ws_url = format!("ws://{addr}/carrier/twilio/ws");
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 403, "unsigned upgrade");
        }
        other => panic!("unsigned upgrade not refused: {:?}", other.map(|_| ())),
    }
    let ws_sig = twilio_signature(TOKEN.as_bytes(), "ws://agent.test/carrier/twilio/ws", &[]);
    let signed = || {
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("x-twilio-signature", ws_sig.parse().unwrap());
        req
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(signed()).await.unwrap();
    ws.send(Message::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(start_msg("CA0e2e", &token)))
        .await
        .unwrap();
    let mut heard = false;
    let mut media = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !heard {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("greeting within 15 s");
        let Some(Ok(Message::Text(t))) = m else {
            panic!("socket ended: {m:?}")
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        match v["event"].as_str() {
            Some("media") => {
                media += 1;
                let b = B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
                assert_eq!(b.len(), 160);
                heard = rms(&b) > 300.0;
            }
            Some("mark") => ws.send(Message::text(t.as_str().to_owned())).await.unwrap(),
            _ => {}
        }
    }
    assert!(media > 0);
    // A second stream for the same call is refused.
    let (mut second, _) = tokio_tungstenite::connect_async(signed()).await.unwrap();
    second
        .send(Message::text(start_msg("CA0e2e", &token)))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = second.next().await {
            if let Message::Close(f) = m {
                return f.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(1008));
    // The caller hangs up.
    ws.send(Message::text(r#"{"event":"stop","streamSid":"MZCA0e2e","stop":{"accountSid":"ACtest","callSid":"CA0e2e"}}"#)).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    // A Vonage stream: metadata with the NCCO's token, binary L16 frames
    // both ways; the caller hangs up by closing the socket.
    let (mut vws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{vonage_path}"))
        .await
        .unwrap();
    vws.send(Message::text(vonage_meta("u-1", &ncco)))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut heard = false;
    while !heard {
        let m = tokio::time::timeout_at(deadline, vws.next())
            .await
            .expect("Vonage greeting within 15 s");
        match m {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b.len(), 640, "one 20 ms L16 16 kHz frame per message");
                let pcm: Vec<f64> = b
                    .chunks_exact(2)
                    .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
                    .collect();
                heard = (pcm.iter().map(|v| v * v).sum::<f64>() / 320.0).sqrt() > 300.0;
            }
            Some(Ok(_)) => {}
            other => panic!("Vonage socket ended: {other:?}"),
        }
    }
    vws.close(None).await.unwrap();
    // The API shows each call's transport (set when its row was written)
    // and filters the list on it.
    let api = |path: String| {
        let bearer = bearer.clone();
        async move {
            let (st, body) = http(addr, "GET", &path, &[("authorization", &bearer)], "").await;
            assert_eq!(st, 200, "GET {path}: {body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let mut carrier_ids = Vec::new();
    for (transport, key) in [("twilio", "twilio:CA0e2e"), ("vonage", "vonage:u-1")] {
        let v = api(format!("/api/sessions?transport={transport}")).await;
        let listed = v["sessions"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "transport={transport}: {v}");
        assert_eq!(listed[0]["transport"], transport);
        assert_eq!(listed[0]["direction"], "inbound");
        assert_eq!(listed[0]["sip_call_id"], key);
        let id = listed[0]["id"].as_str().unwrap().to_owned();
        let detail = api(format!("/api/sessions/{id}")).await;
        assert_eq!(detail["session"]["transport"], transport);
        let call = api(format!("/api/calls/{id}")).await;
        assert_eq!(call["transport"], transport, "{call}");
        carrier_ids.push(id);
    }
    let sip = api("/api/sessions?transport=sip".into()).await;
    assert_eq!(
        sip["sessions"],
        serde_json::json!([]),
        "no SIP call was made"
    );
    // Both hangups are handled before the shutdown signal (else the
    // shutdown would be the first end reason): wait until both rows are
    // terminal, bounded, instead of a fixed pause.
    let db = dir.path().join("agent.db");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ended = Store::open(&db)
            .unwrap()
            .list_sessions(&Default::default(), 10, None)
            .unwrap()
            .items
            .iter()
            .filter(|s| s.state.is_terminal())
            .count();
        if ended >= 2 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM)
    };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let store = Store::open(dir.path().join("agent.db")).unwrap();
    let list = store
        .list_sessions(&Default::default(), 10, None)
        .unwrap()
        .items;
    assert_eq!(
        list.len(),
        2,
        "one session per call: the refused stream made none"
    );
    for key in ["twilio:CA0e2e", "vonage:u-1"] {
        let s = list
            .iter()
            .find(|s| s.sip_call_id.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no row for {key}"));
        assert_eq!(s.direction, Direction::Inbound);
        let carrier = key.split_once(':').unwrap().0;
        assert_eq!(s.transport.as_str(), carrier, "{key}");
        assert!(carrier_ids.contains(&s.id.to_string()), "{key}");
        assert_ne!(s.transport, Transport::Sip);
        assert_eq!(s.state, SessionState::Ended);
        assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{key}");
    }
    // The Vonage status that came before the stream is in the call's events.
    let v = list
        .iter()
        .find(|s| s.sip_call_id.as_deref() == Some("vonage:u-1"))
        .unwrap();
    let rec = store.load_session(v.id).unwrap();
    assert!(
        rec.events
            .iter()
            .any(|e| e.detail["carrier"] == "vonage" && e.detail["status"] == "ringing"),
        "Vonage ringing status stored: {:?}",
        rec.events
    );
}

#[test]
fn an_unusable_vonage_private_key_stops_the_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(AGENT);
        cmd.args(["run", "--config", cfg.to_str().unwrap()])
            .env_remove("GEMINI_API_KEY")
            .env_remove("VONAGE_API_JWT")
            .env_remove("VONAGE_PRIVATE_KEY_PATH")
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .env("VONAGE_SIGNATURE_SECRET", SECRET)
            .env("VONAGE_APPLICATION_ID", VONAGE_APP);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let secret_ish =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
    let (code, err) = run(&[("VONAGE_PRIVATE_KEY", secret_ish)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("VONAGE_PRIVATE_KEY is not usable"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "the key is not echoed: {err}");
    let (code, err) = run(&[("VONAGE_PRIVATE_KEY_PATH", "/nonexistent/vonage.key")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("VONAGE_PRIVATE_KEY_PATH"), "{err}");
}

#[tokio::test]
async fn rest_hangups_without_a_usable_system_trust_store_stop_the_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // Ports of its own: the agent with bundled roots really starts.
    let cfg = config_with(dir.path(), (41120, 41129), "");
    // rustls-native-certs reads only these when they are set: an empty
    // store.
    let empty_file = dir.path().join("no-certs.pem");
    std::fs::write(&empty_file, "").unwrap();
    let empty_dir = dir.path().join("no-certs.d");
    std::fs::create_dir(&empty_dir).unwrap();
    // Twilio's auth token (set by `agent_command`) turns on its REST
    // hang-ups (default base https://api.twilio.com); Vonage's stay off.
    let env = |roots: &'static str| {
        [
            ("VONAGE_APPLICATION_ID", None),
            ("VONAGE_PRIVATE_KEY_PATH", None),
            ("SSL_CERT_FILE", Some(empty_file.as_os_str())),
            ("SSL_CERT_DIR", Some(empty_dir.as_os_str())),
            ("CALLBRIDGE_TLS_ROOTS", Some(OsStr::new(roots))),
        ]
    };
    // Bounded: an agent that starts anyway is a failure, not a hang.
    let child = agent_command(&cfg, &env("system"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(err.contains("tls.roots system"), "{err}");
    assert!(err.contains("REST hang-up"), "{err}");
    assert!(err.contains("select the bundled roots"), "{err}");
    assert!(!err.contains(TOKEN), "the token is not echoed: {err}");

    // The bundled roots need no store: the agent comes up (at most 30 s;
    // killed when it drops).
    let (_agent, _http) = start_with(&cfg, &env("bundled")).await;
}
