//! End-to-end calls over loopback: a SIP caller with an RTP peer, the
//! manager, the mock Gemini model, a temporary store.

mod support;

use std::time::Duration;

use callbridge_crm_store::{
    Direction as StoreDirection, EndReason, SessionState, Speaker, Transport,
};
use callbridge_llm_mock::gemini::SetupReply;
use callbridge_rtp::stream::MediaEvent;
use callbridge_sip::ua::{EndReason as SipEnd, Event};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_call_greets_replies_records_and_stores_caller_hangup() {
    let r = rig(fast_script(), |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await, "call answered");
    let snap = r.manager.snapshot();
    assert_eq!(snap.calls.len(), 1);
    assert_eq!(snap.media_sockets, 1);
    // The greeting's latency is printed, not bounded: it is a figure for
    // the load tool and PERFORMANCE.md, and a loaded machine must not fail
    // this test (the machine's own tests prove the answer waits for the
    // pre-warmed model session).
    let ticks = hear(&mut leg.media, 300.0, AUDIO_WITHIN).await;
    let ticks = ticks.expect("greeting heard after the answer");
    eprintln!(
        "greeting heard {} ms after the 200 OK reached the caller",
        ticks * 20
    );
    assert!(
        until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await,
        "greeting ends"
    );
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "reply heard after the caller spoke"
    );
    assert!(until_quiet(&mut leg.media, 10, AUDIO_WITHIN).await);
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let snap = r.manager.snapshot();
    assert!(snap.calls.is_empty());
    assert_eq!(
        (snap.call_tasks, snap.media_sockets, snap.model_sessions),
        (0, 0, 0)
    );
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.state, SessionState::Ended);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert_eq!(rec.session.direction, StoreDirection::Inbound);
    assert_eq!(rec.session.transport, Transport::Sip);
    assert!(rec.session.sip_call_id.is_some());
    assert_eq!(
        rec.session.summary.as_ref().map(|s| s.as_str()),
        Some("a fixed summary"),
        "post-call summary stored"
    );
    assert!(
        rec.turns.iter().any(|t| t.speaker == Speaker::Agent),
        "agent turns stored"
    );
    assert!(
        rec.turns.iter().any(|t| t.speaker == Speaker::Caller),
        "caller turns stored"
    );
    let path = rec
        .session
        .recording_path
        .clone()
        .expect("recording stored");
    let mut wav = hound::WavReader::open(&path).unwrap();
    assert_eq!(wav.spec().channels, 2);
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let caller_ch: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let agent_ch: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(
        rms(&caller_ch) > 50.0,
        "caller channel has the caller's speech"
    );
    assert!(rms(&agent_ch) > 50.0, "agent channel has what was played");
    assert_eq!(r.mock.stats().setups, 1, "one model session for the call");
    assert_eq!(r.mock.stats().clean_closes, 1, "closed cleanly");
    // The caller's BYE left a server transaction (Timer J, 64*T1): gone
    // once that has passed.
    assert_eq!(r.sip_transactions_after_timer_j().await, 0);
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_call_plays_the_farewell_then_sends_bye() {
    let script = callbridge_llm_mock::gemini::GeminiScript {
        end_call_after_turns: Some(1),
        ..fast_script()
    };
    let r = rig(script, |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "the farewell is heard before the BYE"
    );
    match caller.ended(SECS(20)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected the agent's BYE, got {other:?}"),
    }
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::AgentHangup));
    assert_eq!(rec.session.state, SessionState::Ended);
    r.manager.shutdown().await;
    caller.stop().await;
}

/// OpenAI Realtime waits for a `function_call_output` for every call: the
/// agent answers `end_call` when the model calls it, before the farewell
/// has played and the BYE goes out (issue 18 section 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_end_call_is_answered_before_the_bye() {
    let script = callbridge_llm_mock::openai::OpenAiScript {
        end_call_after_turns: Some(1),
        playback_speed: 2.0,
        ..Default::default()
    };
    let r = rig_openai(script, |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "the farewell is heard before the BYE"
    );
    match caller.ended(SECS(20)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected the agent's BYE, got {other:?}"),
    }
    // Read as the BYE arrives: the answer was on the wire before it.
    let outputs = r.mock.log().function_outputs;
    assert_eq!(outputs.len(), 1, "end_call answered once: {outputs:?}");
    assert_eq!(outputs[0].1, r#"{"status":"ending"}"#);
    assert_eq!(
        r.mock.log().response_creates,
        1,
        "the greeting's only: nothing after end_call"
    );
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::AgentHangup));
    r.mock.server().assert_no_violations();
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_dropping_mid_call_ends_the_call_as_model_failure_when_resumption_is_refused() {
    use callbridge_llm_mock::ScriptBook;
    use callbridge_llm_mock::gemini::GeminiScript;
    // The drop comes after the greeting's handle was issued, so the agent
    // tries to resume; the server refuses it (1008, not retried).
    let r = rig_book(
        ScriptBook {
            per_connection: vec![GeminiScript {
                close_mid_response_at_turn: Some(1),
                ..fast_script()
            }],
            default: GeminiScript {
                setup: SetupReply::Close {
                    code: 1008,
                    reason: "Invalid session handle".into(),
                },
                ..fast_script()
            },
        },
        |_| {},
    )
    .await;
    let mut caller = Caller::new().await;
    let leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    match caller.ended(SECS(20)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE after the model failure, got {other:?}"),
    }
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::ModelFailure));
    assert_eq!(rec.session.state, SessionState::Failed);
    assert_eq!(r.mock.stats().connections, 2, "one resumption attempt");
    assert_eq!(r.manager.metrics().model_reconnects, 0);
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_stores_cancelled() {
    let script = callbridge_llm_mock::gemini::GeminiScript {
        // The call rings until the model is ready: long enough that the
        // caller's CANCEL comes first even on a loaded machine.
        setup: SetupReply::Delay(SECS(10)),
        ..fast_script()
    };
    let r = rig(script, |c| {
        c.machine.answer_wait = SECS(20);
        c.machine.model_setup = SECS(20);
    })
    .await;
    let mut caller = Caller::new().await;
    let leg = caller.dial(r.manager.sip_addr()).await;
    // Ringing: wait for the 180.
    loop {
        match caller.next(SECS(20)).await {
            Some(Event::Progress { .. }) => break,
            Some(_) => {}
            None => panic!("no 180"),
        }
    }
    caller.sip.hangup(leg.call).await.unwrap();
    let end = caller.ended(SECS(20)).await;
    assert!(end.is_some(), "the INVITE ends after CANCEL: {end:?}");
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::Cancelled));
    assert_eq!(rec.session.state, SessionState::Ended);
    assert_eq!(rec.session.sip_status, Some(487));
    let s = r.manager.snapshot();
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_vanishing_without_bye_ends_with_rtp_timeout_and_bye() {
    let r = rig(fast_script(), |c| c.machine.rtp_inactivity = Some(SECS(1))).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some());
    // The peer's RTP stops (its socket closes); SIP stays up.
    leg.media.close().await;
    match caller.ended(SECS(20)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE after the RTP timeout, got {other:?}"),
    }
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::RtpTimeout));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_call_sends_bye_and_stores_shutdown() {
    let r = rig(fast_script(), |c| {
        c.shutdown_drain = Duration::from_millis(300)
    })
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some());
    let m = r.manager.clone();
    let shut = tokio::spawn(async move { m.shutdown().await });
    match caller.ended(SECS(20)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE at shutdown, got {other:?}"),
    }
    shut.await.unwrap();
    leg.media.close().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::Shutdown));
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty() && !s.admitting);
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    caller.stop().await;
}

/// The model never hears the caller (its VAD is deaf): the agent's own
/// detector stops the greeting after `barge_in_after` of speech and tells
/// the model; the event says it was detected locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_stops_a_reply_itself_when_the_model_does_not_hear_the_barge_in() {
    let script = callbridge_llm_mock::gemini::GeminiScript {
        playback_speed: 0.5,
        vad_threshold: u16::MAX,
        ..fast_script()
    };
    let greeting_loud = callbridge_llm_mock::clips::greeting()
        .samples_at(8000)
        .chunks(160)
        .filter(|f| rms(f) > 300.0)
        .count();
    let r = rig(script, |c| {
        c.barge_in_after = Some(Duration::from_millis(250))
    })
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some());
    speak(&leg.media).await;
    let (quiet, loud) = count_loud_until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await;
    assert!(quiet, "playback stops after the barge-in");
    eprintln!("heard {loud} loud frames of the greeting's {greeting_loud} after speaking");
    assert!(
        loud + 25 <= greeting_loud,
        "the rest of the greeting was not played: heard {loud} of its {greeting_loud} loud frames"
    );
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    let barge = rec
        .events
        .iter()
        .find(|e| e.kind == callbridge_crm_store::EventKind::BargeIn);
    assert_eq!(
        barge.map(|e| e.detail["local"].clone()),
        Some(serde_json::Value::Bool(true)),
        "a local barge-in event: {:?}",
        rec.events
    );
    r.manager.shutdown().await;
    caller.stop().await;
}

/// On OpenAI the agent's own barge-in makes the model answer `Interrupted`
/// (its response is cancelled). That arrives with nothing playing any
/// more and is no second barge-in: every stored barge-in event is the
/// local one, one per counted barge-in (a second, model-side event
/// without `local` was stored before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_barge_in_on_openai_is_one_event_despite_the_models_interrupted() {
    let script = callbridge_llm_mock::openai::OpenAiScript {
        playback_speed: 0.5,
        vad_threshold: u16::MAX,
        ..Default::default()
    };
    let r = rig_openai(script, |c| {
        c.barge_in_after = Some(Duration::from_millis(250))
    })
    .await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some());
    speak(&leg.media).await;
    let (quiet, _) = count_loud_until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await;
    assert!(quiet, "playback stops after the barge-in");
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    let barge: Vec<_> = rec
        .events
        .iter()
        .filter(|e| e.kind == callbridge_crm_store::EventKind::BargeIn)
        .collect();
    assert!(!barge.is_empty(), "a barge-in event: {:?}", rec.events);
    assert!(
        barge.iter().all(|e| e.detail["local"] == true),
        "only the local barge-in is stored: {barge:?}"
    );
    assert_eq!(barge.len() as u64, r.manager.metrics().barge_ins);
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_silences_the_greeting_at_once_and_is_recorded() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // The mock's greeting "plays" (may be interrupted) for twice its
    // length, so the caller's speech reaches the model while it still
    // counts as playing however late a loaded machine delivers it; what
    // the caller hears is counted in frames, not timed.
    let script = callbridge_llm_mock::gemini::GeminiScript {
        playback_speed: 0.5,
        ..fast_script()
    };
    let greeting_loud = callbridge_llm_mock::clips::greeting()
        .samples_at(8000)
        .chunks(160)
        .filter(|f| rms(f) > 300.0)
        .count();
    let r = rig(script, |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some());
    // 200 ms into the 2.9 s greeting, the caller talks over it.
    let mut loud = 1;
    for _ in 0..10 {
        if let Some(MediaEvent::Audio { pcm, .. }) = leg.media.recv().await
            && rms(&pcm) > 300.0
        {
            loud += 1;
        }
    }
    speak(&leg.media).await;
    // Quiet means 500 ms of silence: the greeting's own pauses are up to
    // 300 ms, and a shorter run was once taken for the barge-in's silence
    // (the test hung up before the barge-in happened: no event stored).
    let (quiet, after) = count_loud_until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await;
    assert!(quiet, "playback stops after the barge-in");
    loud += after;
    eprintln!("heard {loud} loud frames of the greeting's {greeting_loud}");
    assert!(
        loud + 25 <= greeting_loud,
        "the rest of the greeting was not played: heard {loud} of its {greeting_loud} loud frames"
    );
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert!(
        rec.events
            .iter()
            .any(|e| e.kind == callbridge_crm_store::EventKind::BargeIn),
        "barge-in event stored: {:?} ({:?})",
        rec.events,
        rec.session.end_reason
    );
    assert!(
        r.manager.metrics().barge_ins >= 1,
        "the interrupted greeting counts as a barge-in"
    );
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_capacity_invite_gets_503_and_no_session() {
    let r = rig(fast_script(), |c| c.max_calls = 1).await;
    let mut caller = Caller::new().await;
    let first = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&first).await);
    let second = caller.dial(r.manager.sip_addr()).await;
    match caller.ended(SECS(20)).await {
        Some(Event::Failed { call, outcome }) => {
            assert_eq!(call, second.call);
            assert_eq!(outcome, callbridge_sip::ua::Outcome::Unavailable);
        }
        other => panic!("expected 503 for the second call, got {other:?}"),
    }
    second.media.close().await;
    caller.sip.hangup(first.call).await.unwrap();
    first.media.close().await;
    r.idle().await;
    assert_eq!(r.all_ids().len(), 1, "the refused INVITE made no session");
    // Refused at the limit: by the SIP core (its own `max_calls`, the
    // same bound) or the manager; the metrics page adds the two.
    let refused = r.manager.metrics().calls_refused;
    let by_manager = refused
        .iter()
        .find(|(r, _)| *r == callbridge_session::metrics::CallRefusal::Limit)
        .map_or(0, |(_, n)| *n);
    let by_core = r.manager.sip_stats().await.unwrap().overloaded;
    assert_eq!(by_manager + by_core, 1, "{refused:?} and {by_core}");
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originate_writes_the_row_first_refuses_a_second_call_for_the_lead() {
    let r = rig(fast_script(), |_| {}).await;
    let mut callee = Caller::new().await;
    let callee_addr = callee.sip_addr().await;
    let (campaign, lead, owner) = {
        use callbridge_crm_store::{
            ApiToken, CampaignSettings, NewLead, PersonName, PhoneNumber, Role, Store,
        };
        let mut s = Store::open(&r.db).unwrap();
        let now = callbridge_crm_store::jiff::Timestamp::now();
        let c = s
            .create_campaign(&CampaignSettings::new("t", "gemini"), now)
            .unwrap();
        let phone = PhoneNumber::parse("+15550002222").unwrap();
        let l = s.add_leads(c, &[NewLead::new(phone)], now).unwrap()[0];
        let name = PersonName::new("operator").unwrap();
        let token = ApiToken::generate().unwrap();
        let u = s
            .create_user(&name, Role::AgentOperator, &token, now)
            .unwrap();
        (Some(c), Some(l), Some(u))
    };
    let mut req = callbridge_session::OriginateRequest::new(
        format!("sip:+15550002222@{callee_addr}"),
        "sip:agent@127.0.0.1",
        callee_addr,
    );
    req.lead = lead;
    req.campaign = campaign;
    req.owner = owner;
    let id = r.manager.originate(req.clone()).await.unwrap();
    // The row is in the store when `originate` returns (no flush), with
    // its owner, campaign and lead.
    let row = r.record(id).session;
    assert_eq!(row.direction, StoreDirection::Outbound);
    assert_eq!(row.transport, Transport::Sip);
    assert_eq!((row.owner, row.campaign, row.lead), (owner, campaign, lead));
    assert!(matches!(
        r.manager.originate(req).await,
        Err(callbridge_session::ManagerError::LeadBusy)
    ));
    let inc = loop {
        match callee.next(SECS(20)).await {
            Some(Event::IncomingCall(inc)) => break inc,
            Some(_) => {}
            None => panic!("no INVITE reached the callee"),
        }
    };
    // ...and gets the Call-ID of the INVITE the callee got (written once
    // the driver has placed the call: allow the store a moment).
    let mut row_call_id = None;
    for _ in 0..100 {
        r.manager.flush_store().await;
        row_call_id = r.record(id).session.sip_call_id;
        if row_call_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(row_call_id, Some(inc.call_id.to_string()));
    let media = callee.answer_offer(&inc, 9).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.manager.snapshot().calls.len(), 1);
    callee.sip.hangup(inc.call).await.unwrap();
    media.close().await;
    r.idle().await;
    let rec = r.record(id);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert_eq!(rec.session.lead, lead);
    let m = r.manager.metrics();
    use callbridge_session::lifecycle::{Direction, EndReason as End};
    assert_eq!(
        m.calls_started,
        vec![(Direction::Inbound, 0), (Direction::Outbound, 1)],
        "the refused second originate is not counted"
    );
    assert_eq!(
        m.calls_ended,
        vec![(Direction::Outbound, End::CallerHangup, 1)]
    );
    r.manager.shutdown().await;
    callee.stop().await;
}

// One thread, so nothing else runs between the single poll and the drop.
#[tokio::test(flavor = "current_thread")]
async fn an_originate_dropped_half_way_still_places_the_call_and_leaves_nothing_behind() {
    // An HTTP client that disconnects while `POST /api/calls` waits makes
    // hyper drop the handler, and with it `originate`'s future. Poll it
    // once (it is then waiting for the store) and drop it: the call must
    // still go out and end, not stay admitted with a row forever live.
    let r = rig(fast_script(), |_| {}).await;
    let mut callee = Caller::new().await;
    let callee_addr = callee.sip_addr().await;
    let req = callbridge_session::OriginateRequest::new(
        format!("sip:+15550002223@{callee_addr}"),
        "sip:agent@127.0.0.1",
        callee_addr,
    );
    {
        let mut originate = std::pin::pin!(r.manager.originate(req));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(originate.as_mut(), cx))
        })
        .await;
        assert!(
            first.is_pending(),
            "originate finished within its first poll"
        );
    } // dropped here, after exactly one poll
    let inc = loop {
        match callee.next(SECS(20)).await {
            Some(Event::IncomingCall(inc)) => break inc,
            Some(_) => {}
            None => panic!("the dropped originate never sent its INVITE"),
        }
    };
    callee
        .sip
        .reject(inc.call, callbridge_sip::StatusCode::BUSY_HERE)
        .await
        .unwrap();
    r.idle().await;
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty() && s.call_tasks == 0, "{:?}", s.calls);
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1);
    let row = r.record(ids[0]).session;
    assert_eq!(row.state, SessionState::Failed);
    assert_eq!(row.sip_status, Some(486));
    r.manager.shutdown().await;
    callee.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_by_reinvite_and_dtmf_reaches_the_model() {
    use callbridge_session::lifecycle::Phase;
    use callbridge_sip::sdp;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let r = rig(fast_script(), |_| {}).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    let phase = || r.manager.snapshot().calls.first().map(|c| c.phase);
    assert_eq!(phase(), Some(Phase::Active));
    let mut local = sdp::LocalMedia::new(LOCAL, leg.media.local_addr().port());
    local.session_version = 1;
    let hold = sdp::make_offer(&local, sdp::Direction::SendOnly).to_bytes();
    caller.sip.reinvite(leg.call, hold).await.unwrap();
    let mut held = false;
    for _ in 0..100 {
        if phase() == Some(Phase::OnHold) {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(held, "re-INVITE sendonly puts the call on hold");
    local.session_version = 2;
    let resume = sdp::make_offer(&local, sdp::Direction::SendRecv).to_bytes();
    caller.sip.reinvite(leg.call, resume).await.unwrap();
    let mut resumed = false;
    for _ in 0..100 {
        if phase() == Some(Phase::Active) {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(resumed, "re-INVITE sendrecv resumes the call");
    // An RFC 4733 key press goes to the model as text; the mock answers it.
    assert!(until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await);
    leg.media.send_dtmf('5', Duration::from_millis(120));
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "the model answered the key press"
    );
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert!(
        rec.events
            .iter()
            .any(|e| e.kind == callbridge_crm_store::EventKind::Dtmf),
        "DTMF event stored: {:?}",
        rec.events
            .iter()
            .map(|e| (e.kind, e.detail.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    r.manager.shutdown().await;
    caller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_caller_is_ended_by_the_no_speech_timeout() {
    let r = rig(fast_script(), |c| c.machine.no_speech = SECS(1)).await;
    let mut caller = Caller::new().await;
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    assert!(caller.answered(&leg).await);
    assert!(hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some());
    match caller.ended(SECS(20)).await {
        Some(Event::Ended { reason, .. }) => assert_eq!(reason, SipEnd::RemoteBye),
        other => panic!("expected BYE after the no-speech timeout, got {other:?}"),
    }
    leg.media.close().await;
    r.idle().await;
    let rec = r.record(r.all_ids()[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::NoSpeechTimeout));
    r.manager.shutdown().await;
    caller.stop().await;
}

/// The manager's randomness is injected (`ManagerConfig::rng_seed`): the
/// same seed gives the same SDP session id, another seed another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_manager_answers_with_the_same_sdp_session_id() {
    let mut ids = Vec::new();
    for seed in [7, 7, 8] {
        let r = rig(fast_script(), |c| c.rng_seed = Some(seed)).await;
        let mut caller = Caller::new().await;
        let leg = caller.dial(r.manager.sip_addr()).await;
        let answer = loop {
            match caller.next(SECS(20)).await {
                Some(Event::Answered { call, answer, .. }) if call == leg.call => break answer,
                Some(Event::Failed { .. }) | None => panic!("call not answered"),
                Some(_) => {}
            }
        };
        let text = String::from_utf8_lossy(&answer).into_owned();
        let origin = text.lines().find(|l| l.starts_with("o=")).expect("o= line");
        ids.push(origin.split(' ').nth(1).expect("session id").to_owned());
        caller.sip.hangup(leg.call).await.unwrap();
        leg.media.close().await;
        r.idle().await;
    }
    assert_eq!(ids[0], ids[1], "{ids:?}");
    assert_ne!(ids[0], ids[2], "{ids:?}");
}
