//! Blind transfer end to end (RFC 3515, RFC 5589 section 6): the mock model
//! calls `transfer_call` after the caller's first turn; a raw SIP peer
//! accepts the REFER (202 + NOTIFY `SIP/2.0 200 OK`) and the call ends as
//! transferred with one BYE, or refuses it (403) and the call goes on.
//! A target outside `transfer_targets` (toll fraud) never reaches a REFER.

mod support;

use std::time::Duration;

use callbridge_crm_store::EndReason;
use callbridge_llm_mock::gemini::GeminiScript;
use support::raw::{RawPeer, header, pcmu_offer, status};
use support::*;

fn transfer_script() -> GeminiScript {
    GeminiScript {
        transfer_after_turns: Some((1, "sip:sales@127.0.0.1".into())),
        ..fast_script()
    }
}

/// The operator's list: one SIP target.
fn allow_sales(cfg: &mut callbridge_session::ManagerConfig) {
    cfg.transfer_targets =
        callbridge_session::dial_targets::DialTargets::parse(&["sales=sip:sales@127.0.0.1"])
            .unwrap();
}

/// Dials in, speaks one turn and returns the agent's REFER.
async fn dial_until_refer(r: &Rig, peer: &mut RawPeer) -> String {
    let offer = pcmu_offer(
        peer.rtp.local_addr().unwrap().port(),
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let port = peer.invite(&offer).await.expect("the INVITE is answered");
    assert_eq!(r.manager.snapshot().calls.len(), 1);
    let _speech = peer.speak(port);
    let refer = peer
        .request_in("REFER", Duration::from_secs(15))
        .await
        .expect("the agent sends REFER after the transfer_call");
    assert_eq!(
        header(&refer, "refer-to"),
        Some("<sip:sales@127.0.0.1>"),
        "{refer}"
    );
    refer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_refer_ends_the_call_as_transferred_with_one_bye() {
    let r = rig(transfer_script(), allow_sales).await;
    let mut peer = RawPeer::new(r.manager.sip_addr(), "raw-transfer-ok@127.0.0.1").await;
    let refer = dial_until_refer(&r, &mut peer).await;
    peer.reply(&refer, 202, "Accepted").await;
    let cseq: u32 = header(&refer, "cseq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let notify = peer.request(
        "NOTIFY",
        "z9hG4bK-raw-notify",
        &format!("Event: refer;id={cseq}\r\nSubscription-State: terminated;reason=noresource\r\n"),
        "message/sipfrag",
        "SIP/2.0 200 OK\r\n",
    );
    peer.send(&notify).await;
    let notify_resp = peer
        .response("z9hG4bK-raw-notify", Duration::from_secs(3))
        .await;
    assert_eq!(notify_resp.as_deref().map(status), Some(200));
    let bye = peer
        .request_in("BYE", Duration::from_secs(10))
        .await
        .expect("the agent hangs up after the transfer");
    peer.reply(&bye, 200, "OK").await;
    // No second BYE (a retransmission carries the same branch).
    let branch = header(&bye, "via").unwrap().to_owned();
    let other = peer
        .next(Duration::from_millis(1500), |t| {
            t.starts_with("BYE ") && header(t, "via") != Some(branch.as_str())
        })
        .await;
    assert!(other.is_none(), "a second BYE: {other:?}");

    r.idle().await;
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::Transferred));
    let s = r.manager.snapshot();
    let ended: u64 = s.ended.iter().map(|(_, n)| *n).sum();
    assert_eq!(ended, 1, "one teardown: {:?}", s.ended);
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    assert_eq!(r.mock.stats().setups, 1);
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_refer_keeps_the_call_until_the_caller_hangs_up() {
    let r = rig(transfer_script(), allow_sales).await;
    let mut peer = RawPeer::new(r.manager.sip_addr(), "raw-transfer-403@127.0.0.1").await;
    let refer = dial_until_refer(&r, &mut peer).await;
    peer.reply(&refer, 403, "Forbidden").await;
    // The call goes on: no BYE from the agent for a while.
    let bye = peer.request_in("BYE", Duration::from_secs(2)).await;
    assert!(
        bye.is_none(),
        "the call must go on after a refused REFER: {bye:?}"
    );
    assert_eq!(r.manager.snapshot().calls.len(), 1);
    let ours = peer.request("BYE", "z9hG4bK-raw-bye", "", "", "");
    peer.send(&ours).await;
    let ok = peer
        .response("z9hG4bK-raw-bye", Duration::from_secs(3))
        .await;
    assert_eq!(ok.as_deref().map(status), Some(200));

    r.idle().await;
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert!(
        rec.events.iter().any(|e| {
            let d = e.detail.to_string();
            d.contains("\"result\":\"failed\"") && d.contains("\"model_told\":true")
        }),
        "the model got the transfer's tool error: {:?}",
        rec.events
    );
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    // The model's transfer_call was answered (with the error): no
    // outstanding tool call, no protocol violation.
    assert!(
        r.mock.stats().violations.is_empty(),
        "{:?}",
        r.mock.stats().violations
    );
    r.manager.shutdown().await;
}

/// Toll fraud (issue 14): the caller talks the model into a transfer to a
/// premium-rate number. It is not one of `transfer_targets`, so no REFER
/// goes out: the model is told, the refusal is stored as an event, and the
/// call goes on until the caller hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toll_fraud_transfer_to_a_premium_rate_number_is_refused() {
    let script = GeminiScript {
        transfer_after_turns: Some((1, "+19005550123".into())),
        ..fast_script()
    };
    let r = rig(script, allow_sales).await;
    let mut peer = RawPeer::new(r.manager.sip_addr(), "raw-toll-fraud@127.0.0.1").await;
    let offer = pcmu_offer(
        peer.rtp.local_addr().unwrap().port(),
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let port = peer.invite(&offer).await.expect("the INVITE is answered");
    let id = r.manager.snapshot().calls[0].id;
    let _speech = peer.speak(port);
    let refused = |r: &Rig| {
        r.record(id).events.iter().any(|e| {
            let d = e.detail.to_string();
            d.contains("\"tool\":\"transfer_call\"") && d.contains("\"result\":\"refused\"")
        })
    };
    // Until the refusal is stored, no REFER may reach the peer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !refused(&r) {
        let refer = peer.request_in("REFER", Duration::from_millis(250)).await;
        assert!(refer.is_none(), "a REFER went out: {refer:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the model's transfer_call was never refused"
        );
    }
    assert_eq!(r.manager.snapshot().calls.len(), 1, "the call goes on");
    let bye = peer.request("BYE", "z9hG4bK-raw-bye", "", "", "");
    peer.send(&bye).await;
    let ok = peer
        .next(Duration::from_secs(3), |t| {
            assert!(!t.starts_with("REFER "), "a REFER went out: {t}");
            t.starts_with("SIP/2.0 200") && t.contains("z9hG4bK-raw-bye")
        })
        .await;
    assert!(ok.is_some(), "the BYE is answered");

    r.idle().await;
    let rec = r.record(id);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    let details: Vec<String> = rec.events.iter().map(|e| e.detail.to_string()).collect();
    assert!(
        details.iter().any(|d| d.contains("\"result\":\"refused\"")
            && d.contains("\"reason\":\"not-listed\"")
            && d.contains("\"model_told\":true")),
        "{details:?}"
    );
    assert!(
        !details.iter().any(|d| d.contains("refer_sent")),
        "nothing was dialled: {details:?}"
    );
    assert!(
        !details.iter().any(|d| d.contains("9005550123")),
        "the number is stored masked: {details:?}"
    );
    // The model's tool call was answered (with the refusal).
    assert!(
        r.mock.stats().violations.is_empty(),
        "{:?}",
        r.mock.stats().violations
    );
    r.manager.shutdown().await;
}
