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
    drop_mid_utterance(false).await;
}

/// The same with each frame's 8 kHz audio handed along (as the agent's
/// session does): the driver keeps that instead of decimating.
#[tokio::test]
async fn a_drop_mid_utterance_with_the_8_khz_audio_handed_along_loses_nothing() {
    drop_mid_utterance(true).await;
}

async fn drop_mid_utterance(narrowband: bool) {
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
    // frames of 16 kHz PCM, the model's own input format (no conversion on
    // the way out). The driver keeps unconsumed audio as 8 kHz ADPCM and
    // replays it through the resampler, so the replayed stretch is not
    // the very bytes sent: each frame's tone has its own level (a pattern
    // over 5 frames), and the model must hold every frame at its level, in
    // order; a chunk lost or heard twice would shift the pattern for all
    // the frames after it.
    let frames = patterned_turn(60);
    let mut sent: Vec<u8> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let frame = AudioFrame::Pcm16 {
            rate: SampleRate::HZ_16000,
            samples: f,
        };
        if narrowband {
            s.send_audio_with_narrowband(frame, &patterned_frame(i, 8000))
                .unwrap();
        } else {
            s.send_audio(frame).unwrap();
        }
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
    let mismatched: Vec<(usize, f64, f64)> = frame_levels(&sent)
        .into_iter()
        .zip(frame_levels(&heard))
        .enumerate()
        .filter(|(_, (s, h))| (h / s - 1.0).abs() > 0.25)
        .map(|(i, (s, h))| (i, s, h))
        .collect();
    // The replay's two edges: the filters' 2 ms each blend a neighbour's
    // level into at most two frames per edge.
    assert!(
        mismatched.len() <= 4,
        "in order, each frame once: {mismatched:?}"
    );
    mock.shutdown().await;
}

/// `n` 20 ms frames of a 1 kHz tone at 16 kHz, frame `i` at level
/// 3,000 + 6,000 * (i mod 5).
fn patterned_turn(n: usize) -> Vec<Vec<i16>> {
    (0..n).map(|i| patterned_frame(i, 16_000)).collect()
}

/// Frame `i` of [`patterned_turn`] at `rate` Hz.
fn patterned_frame(i: usize, rate: usize) -> Vec<i16> {
    let level = 3000.0 + 6000.0 * (i % 5) as f64;
    let per_frame = rate / 50;
    (0..per_frame)
        .map(|k| {
            let t = (i * per_frame + k) as f64 / rate as f64;
            ((t * std::f64::consts::TAU * 1000.0).sin() * level) as i16
        })
        .collect()
}

/// RMS of each 20 ms frame of 16 kHz s16le bytes.
fn frame_levels(pcm: &[u8]) -> Vec<f64> {
    pcm.chunks(640)
        .map(|f| {
            let sum: f64 = f
                .chunks_exact(2)
                .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])).powi(2))
                .sum();
            (sum / (f.len() / 2).max(1) as f64).sqrt()
        })
        .collect()
}
