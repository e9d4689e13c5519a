//! The manager's metrics after a real call over loopback (caller, manager,
//! mock Gemini, store): counters, histograms, the depth gauge back to
//! zero, the model's reachability, and the per-call latency notes in the
//! store.

mod support;

use std::time::Duration;

use callbridge_crm_store::EventKind;
use callbridge_session::lifecycle::{Direction, EndReason};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_one_reply_shows_in_the_metrics_and_its_latencies_in_the_store() {
    let r = rig(fast_script(), |_| {}).await;
    let before = r.manager.metrics();
    assert_eq!(before.model, None, "no model opening seen yet");
    assert_eq!(before.answer_to_first_audio.count, 0);
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    let live = r.manager.metrics();
    assert_eq!(
        live.calls_started,
        vec![(Direction::Inbound, 1), (Direction::Outbound, 0)]
    );
    assert!(live.calls_ended.is_empty(), "still live");
    assert_eq!(live.answer_to_first_audio.count, 1, "greeting measured");
    // The caller's RTP (silence) has flowed for over a second: the call is
    // in the depth gauge, with a depth the buffer can hold (at most 200 ms
    // by default, plus a frame or two in flight).
    assert_eq!(live.jitter_buffer_streams, 1);
    eprintln!(
        "live jitter buffer depth {} ms",
        live.jitter_buffer_depth_ms
    );
    assert!(live.jitter_buffer_depth_ms <= 260.0);
    assert!(
        live.rtp_packets_in > 0,
        "RTP counted while the call is live"
    );
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "reply heard"
    );
    assert!(until_quiet(&mut leg.media, 10, AUDIO_WITHIN).await);
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;

    let m = r.manager.metrics();
    assert_eq!(
        m.calls_ended,
        vec![(Direction::Inbound, EndReason::CallerHangup, 1)]
    );
    // The greeting (about 2.9 s at 4x speed) and the reply were sent; the
    // caller sent the greeting's length of silence plus its speech.
    assert!(m.rtp_packets_out > 50, "packets out {}", m.rtp_packets_out);
    assert!(m.rtp_packets_in > 50, "packets in {}", m.rtp_packets_in);
    assert_eq!(m.rtp_packets_late, 0, "loopback: nothing late");
    assert_eq!(
        (m.jitter_buffer_streams, m.jitter_buffer_depth_ms),
        (0, 0.0),
        "the ended call left the depth gauge"
    );
    let first = &m.answer_to_first_audio;
    assert_eq!(first.count, 1);
    assert!(
        first.sum < 1.0,
        "pre-warmed greeting within 1 s of the 200 OK: {} s",
        first.sum
    );
    let reply = &m.caller_stop_to_agent_audio;
    assert_eq!(reply.count, 1, "one caller turn, one reply");
    assert!(
        reply.sum > 0.0 && reply.sum < 3.0,
        "reply latency {} s",
        reply.sum
    );
    assert_eq!(m.call_duration.count, 1);
    assert!(m.call_duration.sum > 1.0);
    assert_eq!(m.model.map(|x| x.reachable), Some(true));
    assert_eq!(m.barge_ins, 0);
    assert_eq!(m.model_reconnects, 0);

    // The same figures, per call, in the store.
    let rec = r.record(r.all_ids()[0]);
    let notes: Vec<(String, u64)> = rec
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Note)
        .filter_map(|e| {
            Some((
                e.detail.get("metric")?.as_str()?.to_owned(),
                e.detail.get("value")?.as_u64()?,
            ))
        })
        .collect();
    let first_ms: Vec<u64> = notes
        .iter()
        .filter(|(k, _)| k == "answer_to_first_audio_ms")
        .map(|(_, v)| *v)
        .collect();
    let reply_ms: Vec<u64> = notes
        .iter()
        .filter(|(k, _)| k == "caller_stop_to_agent_audio_ms")
        .map(|(_, v)| *v)
        .collect();
    eprintln!("answer_to_first_audio_ms {first_ms:?}, caller_stop_to_agent_audio_ms {reply_ms:?}");
    let same = |ms: &[u64], secs: f64| ms.len() == 1 && (ms[0] as f64 - secs * 1000.0).abs() < 1.0;
    assert!(
        same(&first_ms, first.sum),
        "{first_ms:?} vs {} s",
        first.sum
    );
    assert!(
        same(&reply_ms, reply.sum),
        "{reply_ms:?} vs {} s",
        reply.sum
    );
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_session_resumed_after_go_away_counts_one_reconnect() {
    let script = callbridge_llm_mock::gemini::GeminiScript {
        go_away_after_turns: Some(1),
        go_away_time_left: Duration::from_millis(300),
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "reply heard"
    );
    let mut reconnects = 0;
    for _ in 0..250 {
        reconnects = r.manager.metrics().model_reconnects;
        if reconnects > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reconnects, 1, "one resumption after the server's goAway");
    assert_eq!(r.manager.snapshot().calls.len(), 1, "the call goes on");
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let m = r.manager.metrics();
    assert_eq!(m.model_reconnects, 1);
    assert_eq!(
        m.calls_ended,
        vec![(Direction::Inbound, EndReason::CallerHangup, 1)]
    );
    assert_eq!(
        r.mock.stats().setups,
        2,
        "the resumed session's second setup"
    );
    r.manager.shutdown().await;
    caller.stop().await;
}
