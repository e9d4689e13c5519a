//! Barge-in on a Twilio stream with OpenAI Realtime: the model's reply is
//! truncated at what the carrier confirmed played (its `mark`s), not at
//! what was sent. The fake carrier answers only the first two marks (10
//! frames, 200 ms); the caller then talks over the greeting; the mock
//! OpenAI must see `conversation.item.truncate` with `audio_end_ms` 200.

mod carrier_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use callbridge_carrier::{Carrier, RecordingHangup};
use callbridge_crm_store::Store;
use callbridge_llm_bridge::{ApiKey, AudioFormat, OpenAiRealtime, SessionConfig};
use callbridge_llm_mock::openai::{MockOpenAi, OpenAiScript};
use callbridge_session::carrier;
use callbridge_session::{CarrierCall, Manager, ManagerConfig};
use carrier_support::FakeCarrier;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_truncates_the_reply_at_the_frames_the_carrier_confirmed_played() {
    let mock = MockOpenAi::start(OpenAiScript {
        playback_speed: 1.0,
        ..OpenAiScript::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("crm.db")).unwrap();
    let mut model = SessionConfig::default();
    model.endpoint = Some(mock.url());
    model.model = "mock-model".into();
    model.api_key = Some(ApiKey::new("test-key"));
    model.input_format = AudioFormat::Pcmu;
    model.output_format = AudioFormat::Pcmu;
    let mut cfg = ManagerConfig::new(
        std::net::SocketAddr::new(LOCAL, 0),
        LOCAL,
        port_range(8),
        model,
    );
    cfg.machine = fast_machine();
    let manager = Manager::start(cfg, Arc::new(OpenAiRealtime::new()), store, None)
        .await
        .unwrap();
    let (mut fake, mut socket) = FakeCarrier::twilio("CA0tr").await;
    fake.echo_limit = Some(2);
    let (core, start) = carrier::accept(Carrier::Twilio, &mut socket, Duration::from_secs(2))
        .await
        .unwrap();
    manager
        .admit_carrier(CarrierCall {
            core,
            start,
            socket,
            hangup: Arc::new(RecordingHangup::default()),
            from: None,
            to: None,
        })
        .await
        .unwrap();
    assert!(
        fake.hear(300.0, Duration::from_secs(5)).await.is_some(),
        "greeting heard"
    );
    while fake.media_frames < 40 {
        assert!(fake.hear(-1.0, Duration::from_secs(2)).await.is_some());
    }
    fake.speak().await;
    assert!(fake.clears >= 1, "clear sent");
    let truncations = mock.log().truncations;
    eprintln!("truncations: {truncations:?}");
    assert!(!truncations.is_empty(), "the reply was truncated");
    assert_eq!(
        truncations[0].audio_end_ms, 200,
        "truncated at the 10 frames the carrier confirmed played, not the {} sent",
        fake.media_frames
    );
    fake.hang_up().await;
    manager.shutdown().await;
}
