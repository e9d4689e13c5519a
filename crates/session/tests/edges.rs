//! Paths the other call tests do not take: the max call duration ends the
//! call with BYE (`MaxDuration`); a key pressed as SIP INFO
//! (`application/dtmf-relay`) reaches the model as text; an offer with no
//! codec in common is refused 488 and leaves no session behind.

mod support;

use std::time::Duration;

use callbridge_crm_store::{EndReason, Speaker};
use callbridge_sip::ua::{EndReason as SipEnd, Event};
use support::raw::{RawPeer, pcmu_offer, status};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_call_duration_sends_bye_and_stores_max_duration() {
    // Only the 2 s cap may end this call: the no-speech and RTP
    // inactivity timers (which also run from the answer) are far longer,
    // so a loaded machine that delays the greeting or the caller's first
    // RTP cannot end it for another reason first. The stored reason below
    // says which timer fired; the waits only bound the test.
    let r = rig(fast_script(), |c| {
        c.machine.max_duration = SECS(2);
        c.machine.no_speech = SECS(60);
        c.machine.rtp_inactivity = Some(SECS(60));
    })
    .await;
    let mut caller = Caller::new().await;
    let leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    match caller.ended(SECS(30)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE at the max duration, got {other:?}"),
    }
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::MaxDuration));
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_info_dtmf_reaches_the_model_as_text() {
    let r = rig(fast_script(), |_| {}).await;
    let mut peer = RawPeer::new(r.manager.sip_addr(), "raw-info-dtmf@127.0.0.1").await;
    let offer = pcmu_offer(
        peer.rtp.local_addr().unwrap().port(),
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    peer.invite(&offer).await.expect("the INVITE is answered");
    assert_eq!(r.mock.stats().caller_turns, 0);
    let info = peer.request(
        "INFO",
        "z9hG4bK-raw-info",
        "",
        "application/dtmf-relay",
        "Signal=7\r\nDuration=160\r\n",
    );
    peer.send(&info).await;
    let ok = peer.response("z9hG4bK-raw-info", SECS(3)).await;
    assert_eq!(ok.as_deref().map(status), Some(200));
    // The mock counts the DTMF text as a caller turn (no audio was sent).
    r.mock
        .server()
        .wait_for(SECS(5), |s| s.caller_turns >= 1)
        .await;
    assert_eq!(r.mock.stats().caller_turns, 1, "the key reached the model");
    // The model's transcript of the key comes back as a caller turn,
    // written in the next store batch (every second).
    let id = r.all_ids()[0];
    let key_turn = |rec: &callbridge_crm_store::SessionRecord| {
        rec.turns
            .iter()
            .any(|t| t.speaker == Speaker::Caller && t.text.as_str().contains("keys: 7"))
    };
    for _ in 0..100 {
        r.manager.flush_store().await;
        if key_turn(&r.record(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bye = peer.request("BYE", "z9hG4bK-raw-bye", "", "", "");
    peer.send(&bye).await;
    let ok = peer.response("z9hG4bK-raw-bye", SECS(3)).await;
    assert_eq!(ok.as_deref().map(status), Some(200));
    r.idle().await;
    let rec = r.record(id);
    assert!(
        key_turn(&rec),
        "the model's transcript of the key is stored: {:?}",
        rec.turns
    );
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    r.mock.assert_no_violations();
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_without_a_common_codec_gets_488_and_leaves_no_session() {
    let r = rig(fast_script(), |_| {}).await;
    let mut peer = RawPeer::new(r.manager.sip_addr(), "raw-no-codec@127.0.0.1").await;
    let offer = pcmu_offer(
        peer.rtp.local_addr().unwrap().port(),
        "18",
        "a=rtpmap:18 G729/8000\r\n",
    );
    assert_eq!(peer.invite(&offer).await, Err(488));
    r.idle().await;
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty());
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    assert!(
        r.all_ids().is_empty(),
        "refused before admission: no session row"
    );
    assert_eq!(r.mock.stats().setups, 0, "no model opened");
    let refused = r.manager.metrics().calls_refused;
    assert!(
        refused.contains(&(callbridge_session::metrics::CallRefusal::Codec, 1)),
        "counted as refused for the codec: {refused:?}"
    );
    r.manager.shutdown().await;
}
