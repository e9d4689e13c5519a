//! Carrier WebSocket calls end to end inside the session crate: a scripted
//! fake carrier (Twilio Media Streams or Vonage) on the far side of the
//! call's socket, the manager, the mock Gemini model and a temporary
//! store. Same lifecycle, bridge, recording and store rows as SIP calls.

mod carrier_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use callbridge_carrier::{Carrier, CarrierHangup, RecordingHangup};
use callbridge_crm_store::{
    Direction as StoreDirection, EndReason, EventKind, SessionState, Transport,
};
use callbridge_session::carrier;
use callbridge_session::{CarrierCall, ManagerError};
use carrier_support::FakeCarrier;
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

async fn admit(
    r: &Rig,
    kind: Carrier,
    id: &str,
    hangup: &RecordingHangup,
) -> (
    FakeCarrier,
    Result<callbridge_crm_store::SessionId, ManagerError>,
) {
    admit_with(r, kind, id, Arc::new(hangup.clone())).await
}

async fn admit_with(
    r: &Rig,
    kind: Carrier,
    id: &str,
    hangup: Arc<dyn CarrierHangup>,
) -> (
    FakeCarrier,
    Result<callbridge_crm_store::SessionId, ManagerError>,
) {
    let (fake, mut socket) = match kind {
        Carrier::Vonage => FakeCarrier::vonage(id).await,
        _ => FakeCarrier::twilio(id).await,
    };
    let (core, start) = carrier::accept(kind, &mut socket, SECS(2)).await.unwrap();
    let from = start.parameter("from").map(str::to_owned);
    let res = r
        .manager
        .admit_carrier(CarrierCall {
            core,
            start,
            socket,
            hangup,
            from,
            to: Some("+15550002222".into()),
        })
        .await;
    (fake, res)
}

async fn assert_all_released(r: &Rig) {
    r.idle().await;
    let snap = r.manager.snapshot();
    assert!(snap.calls.is_empty());
    assert_eq!(
        (snap.call_tasks, snap.media_sockets, snap.model_sessions),
        (0, 0, 0),
        "gauges back to zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_call_greets_hears_the_caller_replies_and_ends_on_stop() {
    let r = rig(fast_script(), |_| {}).await;
    let hangup = RecordingHangup::default();
    let (mut fake, id) = admit(&r, Carrier::Twilio, "CA0001", &hangup).await;
    let id = id.unwrap();
    assert!(fake.hear(300.0, SECS(5)).await.is_some(), "greeting heard");
    assert!(
        fake.until_quiet(Duration::from_millis(400), SECS(8)).await,
        "greeting ends"
    );
    fake.speak().await;
    assert!(fake.hear(300.0, SECS(5)).await.is_some(), "reply heard");
    assert!(fake.until_quiet(Duration::from_millis(400), SECS(8)).await);
    assert!(!fake.marks.is_empty(), "playout marks sent");
    assert!(
        fake.marks.windows(2).all(|w| w[1] == w[0] + 5),
        "one mark every 5 frames, in order: {:?}",
        &fake.marks[..fake.marks.len().min(8)]
    );
    fake.hang_up().await;
    assert_all_released(&r).await;
    assert!(
        hangup.calls().is_empty(),
        "the caller hung up: no REST hangup"
    );
    let rec = r.record(id);
    assert_eq!(rec.session.direction, StoreDirection::Inbound);
    assert_eq!(rec.session.transport, Transport::Twilio);
    assert_eq!(rec.session.state, SessionState::Ended);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert_eq!(rec.session.sip_call_id.as_deref(), Some("twilio:CA0001"));
    assert!(rec.session.from.is_some() && rec.session.to.is_some());
    assert!(
        rec.events
            .iter()
            .any(|e| e.kind == EventKind::Note && e.detail["carrier"] == "twilio"),
        "carrier event stored"
    );
    assert!(rec.session.recording_path.is_some(), "recorded");
    assert!(!rec.turns.is_empty(), "transcript stored");
    assert_eq!(r.mock.stats().setups, 1, "one model session");
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_barge_in_sends_clear_and_the_agent_hangup_uses_rest() {
    let script = callbridge_llm_mock::gemini::GeminiScript {
        playback_speed: 1.0,
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let hangup = RecordingHangup::default();
    let (mut fake, id) = admit(&r, Carrier::Twilio, "CA0002", &hangup).await;
    let id = id.unwrap();
    assert!(fake.hear(300.0, SECS(5)).await.is_some(), "greeting heard");
    // Into the 2.9 s greeting, the caller talks over it.
    for _ in 0..10 {
        let _ = fake.hear(-1.0, SECS(1)).await;
    }
    let before = fake.media_frames;
    fake.speak().await;
    assert!(fake.clears >= 1, "clear sent on barge-in");
    assert!(
        fake.until_quiet(Duration::from_millis(300), SECS(3)).await,
        "playback stops after the barge-in"
    );
    assert!(
        fake.media_frames - before < 140,
        "the rest of the greeting was not sent ({} frames after the barge-in began)",
        fake.media_frames - before
    );
    r.manager.hangup(id).await.unwrap();
    assert_eq!(
        fake.closed_by_agent(SECS(5)).await,
        Some(Some(1000)),
        "socket closed with 1000"
    );
    assert_all_released(&r).await;
    let calls = hangup.calls();
    assert_eq!(calls.len(), 1, "one REST hangup");
    assert_eq!(calls[0].call.as_str(), "CA0002");
    assert_eq!(calls[0].account.as_deref(), Some("ACtest"));
    let rec = r.record(id);
    assert_eq!(rec.session.end_reason, Some(EndReason::AgentHangup));
    assert!(rec.events.iter().any(|e| e.kind == EventKind::BargeIn));
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stream_for_a_live_call_is_refused_without_a_second_model_session() {
    let r = rig(fast_script(), |_| {}).await;
    let hangup = RecordingHangup::default();
    let (mut first, id) = admit(&r, Carrier::Twilio, "CA0003", &hangup).await;
    id.unwrap();
    assert!(first.hear(300.0, SECS(5)).await.is_some());
    let (mut second, res) = admit(&r, Carrier::Twilio, "CA0003", &hangup).await;
    assert!(matches!(res, Err(ManagerError::AlreadyLive)));
    assert_eq!(second.closed_by_agent(SECS(2)).await, Some(Some(1008)));
    assert_eq!(r.manager.snapshot().calls.len(), 1);
    first.hang_up().await;
    assert_all_released(&r).await;
    assert_eq!(r.mock.stats().setups, 1, "never a second model session");
    assert_eq!(r.all_ids().len(), 1, "one session row");
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_call_with_dtmf_replies_and_ends_when_the_socket_closes() {
    let r = rig(fast_script(), |_| {}).await;
    let hangup = RecordingHangup::default();
    let (mut fake, id) = admit(&r, Carrier::Vonage, "aaaa-0004", &hangup).await;
    let id = id.unwrap();
    assert!(fake.hear(300.0, SECS(5)).await.is_some(), "greeting heard");
    assert!(fake.until_quiet(Duration::from_millis(400), SECS(8)).await);
    fake.dtmf('5').await;
    fake.speak().await;
    assert!(fake.hear(300.0, SECS(5)).await.is_some(), "reply heard");
    assert!(!fake.marks.is_empty(), "notify markers sent");
    fake.hang_up().await;
    assert_all_released(&r).await;
    let rec = r.record(id);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert_eq!(rec.session.direction, StoreDirection::Inbound);
    assert_eq!(rec.session.transport, Transport::Vonage);
    assert_eq!(rec.session.sip_call_id.as_deref(), Some("vonage:aaaa-0004"));
    assert!(
        rec.events.iter().any(|e| e.kind == EventKind::Dtmf),
        "DTMF stored"
    );
    assert!(hangup.calls().is_empty());
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_agent_hangup_after_end_call_uses_rest_and_closes() {
    let script = callbridge_llm_mock::gemini::GeminiScript {
        end_call_after_turns: Some(1),
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let hangup = RecordingHangup::default();
    let (mut fake, id) = admit(&r, Carrier::Vonage, "aaaa-0005", &hangup).await;
    let id = id.unwrap();
    assert!(fake.hear(300.0, SECS(5)).await.is_some());
    assert!(fake.until_quiet(Duration::from_millis(400), SECS(8)).await);
    fake.speak().await;
    assert_eq!(fake.closed_by_agent(SECS(15)).await, Some(Some(1000)));
    assert_all_released(&r).await;
    let calls = hangup.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call.key(), "vonage:aaaa-0005");
    assert_eq!(
        r.record(id).session.end_reason,
        Some(EndReason::AgentHangup)
    );
    r.manager.shutdown().await;
}

/// The Vonage REST hang-up end to end: the model ends the call, the session
/// asks `VonageRest` (minting an RS256 application JWT from the committed
/// test key) and a loopback stand-in for api.nexmo.com receives
/// `PUT /v1/calls/{uuid}` with a bearer token that verifies with the
/// test key's public half and carries Vonage's claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_agent_hangup_sends_a_minted_jwt_that_verifies() {
    use callbridge_carrier::hangup::VonageRest;
    use callbridge_carrier::vonage_jwt::{ApplicationId, VonageBearer, VonageSigner};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const KEY: &str = include_str!("../../carrier/tests/data/vonage-test-key.pem");
    const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
    // One request: read the head and the body its content-length names,
    // answer 204, hand back the request text.
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", api.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut s, _) = api.accept().await.unwrap();
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 2048];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "request incomplete");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    });
    let signer = VonageSigner::from_pem(ApplicationId::new(APP).unwrap(), KEY.as_bytes()).unwrap();
    let rest = VonageRest::new(
        &base,
        VonageBearer::minted(signer),
        callbridge_llm_bridge::TlsRoots::System,
    )
    .unwrap();

    let script = callbridge_llm_mock::gemini::GeminiScript {
        end_call_after_turns: Some(1),
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let (mut fake, id) = admit_with(&r, Carrier::Vonage, "aaaa-0006", Arc::new(rest)).await;
    let id = id.unwrap();
    assert!(fake.hear(300.0, SECS(5)).await.is_some());
    assert!(fake.until_quiet(Duration::from_millis(400), SECS(8)).await);
    fake.speak().await;
    assert_eq!(fake.closed_by_agent(SECS(15)).await, Some(Some(1000)));
    let req = tokio::time::timeout(SECS(10), server)
        .await
        .expect("the REST hangup arrives")
        .unwrap();
    assert!(req.starts_with("PUT /v1/calls/aaaa-0006 HTTP/1.1"), "{req}");
    assert!(req.ends_with(r#"{"action":"hangup"}"#), "{req}");
    let jwt = req
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().strip_prefix("Bearer "))?
        })
        .expect("Authorization: Bearer <jwt>");
    let claims = jwt_support::verify_rs256(jwt);
    assert_eq!(claims["application_id"], APP);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
    assert!(!claims["jti"].as_str().unwrap().is_empty());
    assert_all_released(&r).await;
    assert_eq!(
        r.record(id).session.end_reason,
        Some(EndReason::AgentHangup)
    );
    r.manager.shutdown().await;
}

mod jwt_support {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    const PUB: &str = include_str!("../../carrier/tests/data/vonage-test-key.pub.pem");

    /// Checks an RS256 JWT against the test key's public half (PKCS#1,
    /// decoded from its PEM by hand) and returns its claims; panics when
    /// the header or signature is wrong.
    pub fn verify_rs256(jwt: &str) -> serde_json::Value {
        let der = STANDARD
            .decode(
                PUB.lines()
                    .filter(|l| !l.starts_with('#') && !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
            .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .expect("the JWT's signature verifies with the public key");
        let (h, c) = signed.split_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap()
    }
}
