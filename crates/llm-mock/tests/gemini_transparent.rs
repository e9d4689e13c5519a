//! Transparent resumption (issue 18 section 2): a connection dropped in
//! the middle of the caller's utterance is resumed, the messages the
//! server had not taken into its state are replayed first, and the model
//! ends up with the whole utterance, each byte once.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{AudioFrame, ErrorKind, ModelEvent, SampleRate};
use callbridge_llm_mock::ScriptBook;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use common::gemini::*;
use common::*;

#[tokio::test]
async fn a_drop_mid_utterance_resumes_and_the_model_hears_all_of_it() {
    let tracked = GeminiScript {
        track_model_audio: true,
        ..fast_script()
    };
    let book = ScriptBook {
        // After 10 audio messages, a handle whose state leaves out the
        // last 4, then the TCP connection drops.
        per_connection: vec![GeminiScript {
            abort_mid_utterance: Some((10, 4)),
            ..tracked.clone()
        }],
        default: tracked,
    };
    let mock = MockGemini::start_with(book).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    // 1.2 s of one utterance (no trailing silence: no turn ends), 20 ms
    // frames of 16 kHz PCM, the model's own input format (no conversion:
    // the bytes the model holds can be compared with the bytes sent).
    let frames = caller_turn(1200, 0);
    let mut sent: Vec<u8> = Vec::new();
    for f in &frames {
        s.send_audio(AudioFrame::Pcm16 {
            rate: SampleRate::HZ_16000,
            samples: f,
        })
        .unwrap();
        sent.extend(f.iter().flat_map(|x| x.to_le_bytes()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let events = events_until(&mut s, |e| matches!(e, ModelEvent::Resumed)).await;
    assert!(
        events.iter().any(|e| matches!(e, ModelEvent::Resumed)),
        "{:?}",
        summary(&events)
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            ModelEvent::Error {
                kind: ErrorKind::InputDropped,
                ..
            }
        )),
        "{:?}",
        summary(&events)
    );
    assert!(s.close().await.clean);
    let (stats, ended) = mock
        .server()
        .wait_for(Duration::from_secs(5), |s| s.open_connections == 0)
        .await;
    assert!(ended, "{stats:?}");
    assert_eq!(stats.resumed_setups, 1, "{stats:?}");
    mock.server().assert_no_violations();
    let heard = mock.model_audio();
    assert_eq!(heard.len(), sent.len(), "the whole utterance, once");
    assert!(heard == sent, "in order");
    mock.shutdown().await;
}
