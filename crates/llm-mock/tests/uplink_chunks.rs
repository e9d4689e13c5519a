//! `SessionConfig::uplink` on the real wire: the strict mocks count one
//! audio message per chunk and every byte arrives, also the partial chunk
//! pending at a close, a flush or the end of a manual turn.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{AudioFrame, ModelEvent, SampleRate, TurnDetection, UplinkChunk};
use callbridge_llm_mock::gemini::MockGemini;
use callbridge_llm_mock::openai::MockOpenAi;
use common::*;

/// `n` 20 ms frames of 16 kHz silence.
fn frames16(n: usize) -> Vec<Vec<i16>> {
    vec![vec![0i16; 320]; n]
}

async fn gemini_messages(chunk: UplinkChunk, frames: usize) -> (u64, u64, usize) {
    let mock = MockGemini::start(gemini::fast_script()).await.unwrap();
    let mut cfg = gemini::config(mock.url());
    cfg.uplink = chunk;
    let mut s = gemini::open_with(cfg).await.unwrap();
    assert_eq!(s.uplink_chunk(), chunk);
    let sent = gemini::send_frames(&mut s, &frames16(frames));
    let outcome = s.close().await;
    assert!(outcome.clean, "{outcome:?}");
    let (stats, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.open_connections == 0)
        .await;
    assert!(ok);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    (stats.audio_messages_in, stats.audio_bytes_in, sent)
}

#[tokio::test]
async fn gemini_sends_one_message_per_chunk_and_every_byte() {
    // 1.2 s of caller audio: 60, 30 or 20 messages.
    for (chunk, want) in [
        (UplinkChunk::Ms20, 60),
        (UplinkChunk::Ms40, 30),
        (UplinkChunk::Ms60, 20),
    ] {
        let (messages, bytes, sent) = gemini_messages(chunk, 60).await;
        assert_eq!(messages, want, "{chunk:?}");
        assert_eq!(bytes, sent as u64, "{chunk:?}");
    }
}

#[tokio::test]
async fn close_sends_the_partial_chunk() {
    // Seven frames at 60 ms: two full chunks, then one frame sent at close.
    let (messages, bytes, sent) = gemini_messages(UplinkChunk::Ms60, 7).await;
    assert_eq!(messages, 3);
    assert_eq!(bytes, sent as u64);
}

#[tokio::test]
async fn openai_g711_is_chunked_the_same_way() {
    let mock = MockOpenAi::start(openai::fast_script()).await.unwrap();
    let mut cfg = openai::config(mock.url());
    cfg.uplink = UplinkChunk::Ms60;
    let mut s = openai::open_with(cfg).await.unwrap();
    let frames: Vec<Vec<u8>> = vec![vec![0xFF; 160]; 30];
    let sent = openai::send_ulaw(&mut s, &frames);
    let outcome = s.close().await;
    assert!(outcome.clean, "{outcome:?}");
    let (stats, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.open_connections == 0)
        .await;
    assert!(ok);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    assert_eq!(stats.audio_messages_in, 10);
    assert_eq!(stats.audio_bytes_in, sent as u64);
}

/// Manual turns with 60 ms chunks: the caller's last frame is still
/// pending when the activity ends; it goes out with the end, the turn is
/// answered, and every byte was there before the reply finished. (The
/// order itself is proven on the handle's queue in llm-bridge.)
#[tokio::test]
async fn a_manual_turn_in_chunks_is_answered_with_every_byte() {
    let mock = MockGemini::start(gemini::fast_script()).await.unwrap();
    let mut cfg = gemini::config(mock.url());
    cfg.uplink = UplinkChunk::Ms60;
    cfg.turn_detection = TurnDetection::Manual;
    let mut s = gemini::open_with(cfg).await.unwrap();
    s.activity_start().await.unwrap();
    // 500 ms of speech: 8 full chunks and one pending frame.
    let speech = gemini::caller_turn(500, 0);
    let sent = gemini::send_frames(&mut s, &speech);
    s.activity_end().await.unwrap();
    let reply = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(
        reply.iter().any(|e| matches!(e, ModelEvent::Audio(_))),
        "{reply:?}"
    );
    let stats = mock.stats();
    assert_eq!(
        stats.audio_bytes_in, sent as u64,
        "all of it before the end"
    );
    assert_eq!(stats.audio_messages_in, 9);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    let _ = s.close().await;
}

#[tokio::test]
async fn flush_audio_sends_what_is_pending_at_once() {
    let mock = MockGemini::start(gemini::fast_script()).await.unwrap();
    let mut cfg = gemini::config(mock.url());
    cfg.uplink = UplinkChunk::Ms60;
    let mut s = gemini::open_with(cfg).await.unwrap();
    s.send_audio(AudioFrame::Pcm16 {
        rate: SampleRate::HZ_16000,
        samples: &[0; 320],
    })
    .unwrap();
    s.flush_audio().unwrap();
    let (stats, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.audio_messages_in == 1)
        .await;
    assert!(ok, "{stats:?}");
    assert_eq!(stats.audio_bytes_in, 640);
    let _ = s.close().await;
}
