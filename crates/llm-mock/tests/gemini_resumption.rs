//! Transparent session resumption across goAway, with continuous input.
//! Alone in its binary so the process-wide connection gauge is exact.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{
    AudioFrame, CallMetadata, GeminiLive, ModelEvent, RealtimeModel, SampleRate, stats,
};
use callbridge_llm_mock::ScriptBook;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini, SetupReply};
use common::gemini::*;
use common::*;

#[tokio::test]
async fn go_away_resumes_on_one_new_connection_without_losing_input_audio() {
    let book = ScriptBook {
        per_connection: vec![
            GeminiScript {
                go_away_after_turns: Some(1),
                track_model_audio: true,
                ..fast_script()
            },
            // A slow resumed setup: ~50 frames arrive while the switch is
            // in progress and must be held, then replayed.
            GeminiScript {
                setup: SetupReply::Delay(Duration::from_millis(50)),
                track_model_audio: true,
                ..fast_script()
            },
        ],
        default: fast_script(),
    };
    let mock = MockGemini::start_with(book).await.unwrap();
    let mut s = GeminiLive
        .open(config(mock.url()), CallMetadata::with_call_id("resume"))
        .await
        .unwrap();

    // Input never stops: the first caller turn, then silence frames (one
    // per millisecond) through the goAway and the switch, then a second
    // turn once 30 frames have gone out after the goAway, then silence
    // until the second reply is complete.
    let turn1 = caller_turn(400, 500);
    let turn2 = caller_turn(400, 500);
    let silence = vec![0i16; 320];
    let (mut i1, mut i2, mut after_go_away) = (0, 0, 0);
    let mut sent = 0usize;
    let mut events: Vec<ModelEvent> = Vec::new();
    let mut max_live = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        max_live = max_live.max(stats::live_connections());
        if tokio::time::Instant::now() > deadline {
            break;
        }
        let went_away = events
            .iter()
            .any(|e| matches!(e, ModelEvent::GoingAway { .. }));
        let resumed_at = events.iter().position(|e| matches!(e, ModelEvent::Resumed));
        if let Some(r) = resumed_at
            && i2 == turn2.len()
            && events[r..]
                .iter()
                .any(|e| matches!(e, ModelEvent::TurnComplete))
        {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                let frame = if i1 < turn1.len() {
                    i1 += 1;
                    &turn1[i1 - 1]
                } else if went_away && after_go_away >= 30 && i2 < turn2.len() {
                    i2 += 1;
                    &turn2[i2 - 1]
                } else {
                    if went_away {
                        after_go_away += 1;
                    }
                    &silence
                };
                s.send_audio(AudioFrame::Pcm16 { rate: SampleRate::HZ_16000, samples: frame }).unwrap();
                sent += frame.len() * 2;
            },
            ev = s.next_event() => match ev {
                Some(e) => events.push(e),
                None => break,
            },
        }
    }
    let pos = |pred: &dyn Fn(&ModelEvent) -> bool| events.iter().position(pred);
    let going = pos(&|e| matches!(e, ModelEvent::GoingAway { .. }))
        .unwrap_or_else(|| panic!("no goAway: {:?}", summary(&events)));
    let resumed = pos(&|e| matches!(e, ModelEvent::Resumed)).expect("resumed");
    assert!(going < resumed);
    assert!(
        events[resumed..]
            .iter()
            .any(|e| matches!(e, ModelEvent::TurnComplete)),
        "the second turn is answered on the new connection: {:?}",
        summary(&events)
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ModelEvent::Closed { .. } | ModelEvent::Error { .. }))
    );
    assert_eq!(max_live, 1, "never two live connections for one handle");

    let outcome = s.close().await;
    assert!(outcome.clean);
    let (st, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |st| st.open_connections == 0)
        .await;
    assert!(ok);
    assert_eq!(st.connections, 2);
    assert_eq!(st.setups, 2);
    assert_eq!(st.resumed_setups, 1);
    assert_eq!(
        st.clean_closes, 2,
        "old connection closed with 1000, then the final one"
    );
    // What the old connection received after its last handle is sent
    // again on the new one (transparent resumption: the handle's state
    // does not hold it), so the wire carries it twice and the model's
    // state once.
    assert!(st.audio_bytes_in >= sent as u64, "{st:?}");
    assert_eq!(
        mock.model_audio().len(),
        sent,
        "no input audio lost across the switch, none twice"
    );
    assert_eq!(st.caller_turns, 2);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(stats::live_connections(), 0);
}
