//! `POST/GET/DELETE /api/calls` against a real manager and a SIP callee.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use callbridge_api::{CallAccepted, CallStatus};
use callbridge_crm_store::{
    CampaignStatus, ClaimToken, NewLead, PhoneNumber, SessionFilter, SessionId, jiff::Timestamp,
};
use serde_json::{Value, json};

use super::{Callee, rig};

fn accepted(a: &super::Answer) -> SessionId {
    assert_eq!(
        a.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let c: CallAccepted = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(c.state, "created");
    assert_eq!(a.header(header::LOCATION), format!("/api/calls/{}", c.id));
    c.id.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_call_is_stored_dialled_visible_and_hung_up_by_delete() {
    let mut r = rig(Callee::Ring, |_| {}).await;
    let a = r
        .post_call(
            &r.operator,
            json!({"to": "+1 (415) 555-0100", "greeting": "Say hi", "metadata": {"name": "Ada"}}),
        )
        .await;
    let id = accepted(&a);
    // The row is in the store before the 202.
    let row = r.store().get_session(id).unwrap();
    assert_eq!(row.direction, callbridge_crm_store::Direction::Outbound);
    assert_eq!(row.to.as_ref().map(|p| p.as_str()), Some("+14155550100"));
    assert_eq!(row.from.as_ref().map(|p| p.as_str()), Some("+15550100000"));
    assert_eq!(row.owner, Some(r.operator_id), "the caller owns the call");
    // The INVITE went to the outbound target, to the E.164 number.
    let user = tokio::time::timeout(Duration::from_secs(3), r.invites.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user, "+14155550100");

    let s: CallStatus = r
        .get(&format!("/api/calls/{id}"), &r.operator)
        .await
        .json_as();
    assert!(s.live);
    assert_eq!(s.direction, "outbound");
    assert_eq!(s.transport.as_deref(), Some("sip"));
    assert_eq!(s.outcome, None);
    let h = r.req(Method::GET, "/api/health", None).await.json();
    assert_eq!(h["active_sessions"], 1);
    // Another operator cannot see or hang up the call; an admin can see it.
    for (m, path) in [
        (Method::GET, format!("/api/calls/{id}")),
        (Method::GET, format!("/api/sessions/{id}")),
        (Method::DELETE, format!("/api/calls/{id}")),
    ] {
        let a = r.req(m, &path, Some(&r.other)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(
        r.manager.snapshot().calls.iter().any(|c| c.id == id),
        "still live"
    );
    let listed = r.get("/api/sessions", &r.operator).await.json();
    assert_eq!(listed["sessions"][0]["id"], id.to_string());
    assert_eq!(listed["sessions"][0]["live"], true);
    assert!(
        r.get("/api/sessions", &r.other).await.json()["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The model was opened at dial: health shows it reachable.
    let mut model = Value::Null;
    for _ in 0..300 {
        model = r.req(Method::GET, "/api/health", None).await.json()["model"].clone();
        if !model["reachable"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(model["reachable"], true, "{model}");
    assert!(
        model["last_checked"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .is_ok()
    );

    let a = r
        .req(Method::DELETE, &format!("/api/calls/{id}"), Some(&r.admin))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    r.until_not_live(id).await;
    let s: CallStatus = r
        .get(&format!("/api/calls/{id}"), &r.operator)
        .await
        .json_as();
    assert!(!s.live);
    assert!(
        matches!(s.state.as_str(), "ended" | "failed"),
        "terminal: {s:?}"
    );
    assert!(s.end_reason.is_some() && s.outcome.is_some(), "{s:?}");
    assert!(s.ended_at.is_some());
    // A second DELETE of the ended call changes nothing and says why.
    let a = r
        .req(Method::DELETE, &format!("/api/calls/{id}"), Some(&r.admin))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let body = String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        body.contains("the call has already ended (state "),
        "{body}"
    );
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_callee_gives_a_failed_call_with_486_and_outcome_busy() {
    let r = rig(Callee::Busy, |_| {}).await;
    let id = accepted(&r.post_call(&r.admin, json!({"to": "+14155550101"})).await);
    r.until_not_live(id).await;
    let s: CallStatus = r.get(&format!("/api/calls/{id}"), &r.admin).await.json_as();
    assert_eq!(s.state, "failed");
    assert_eq!(s.sip_status, Some(486));
    assert_eq!(s.outcome.as_deref(), Some("busy"));
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_requests_are_validated_against_numbers_campaigns_and_leads() {
    let r = rig(Callee::Ring, |_| {}).await;
    let mine = r.campaign("mine", Some(r.operator_id));
    let theirs = r.campaign("theirs", Some(r.other_id));
    let lead_in_theirs = r
        .store()
        .add_leads(
            theirs,
            &[NewLead::new(PhoneNumber::parse("+14155550102").unwrap())],
            Timestamp::now(),
        )
        .unwrap()[0];
    let lead_in_mine = r
        .store()
        .add_leads(
            mine,
            &[NewLead::new(PhoneNumber::parse("+14155550103").unwrap())],
            Timestamp::now(),
        )
        .unwrap()[0];
    let cases = [
        (
            json!({"to": "4155550100"}),
            StatusCode::BAD_REQUEST,
            "to: not an E.164",
        ),
        (
            json!({"to": "+14155550100", "from": "abc"}),
            StatusCode::BAD_REQUEST,
            "from:",
        ),
        (
            json!({"to": "+14155550100", "campaign_id": 999}),
            StatusCode::BAD_REQUEST,
            "does not exist",
        ),
        (
            json!({"to": "+14155550100", "lead_id": 999}),
            StatusCode::BAD_REQUEST,
            "does not exist",
        ),
        (
            json!({"to": "+14155550100", "campaign_id": theirs.0}),
            StatusCode::BAD_REQUEST,
            "does not exist",
        ),
        // The lead's campaign counts when none is given.
        (
            json!({"to": "+14155550100", "lead_id": lead_in_theirs.0}),
            StatusCode::BAD_REQUEST,
            "does not exist",
        ),
        (
            json!({"to": "+14155550100", "campaign_id": mine.0, "lead_id": lead_in_mine.0 + 1000}),
            StatusCode::BAD_REQUEST,
            "does not exist",
        ),
        (
            json!({"to": "+14155550100", "campaign_id": theirs.0, "lead_id": lead_in_mine.0}),
            StatusCode::BAD_REQUEST,
            "belongs to campaign",
        ),
        (
            json!({"to": "+14155550100", "greeting": "x".repeat(5000)}),
            StatusCode::BAD_REQUEST,
            "greeting",
        ),
    ];
    for (body, status, word) in cases {
        let a = r.post_call(&r.operator, body.clone()).await;
        assert_eq!(a.status, status, "{body}");
        assert!(a.error().contains(word), "{body}: {}", a.error());
    }
    // Without an outbound target nothing can be dialled: 501.
    let unrouted = super::app(
        &r.manager,
        &r.db,
        r.dir.path(),
        super::Outbound {
            target: None,
            domain: None,
            from: "+15550100000".into(),
            transport: Default::default(),
        },
    );
    let req = super::call_request(&r.operator, &json!({"to": "+14155550100"}));
    let a = super::send(&unrouted, req).await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert!(a.error().contains("outbound.target"), "{}", a.error());
    assert!(r.manager.snapshot().calls.is_empty(), "nothing was dialled");
    assert!(
        r.store()
            .list_sessions(&Default::default(), 10, None)
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_busy_is_409_capacity_and_shutdown_are_503_with_retry_after() {
    let r = rig(Callee::Ring, |c| c.max_calls = 2).await;
    let c = r.campaign("c", Some(r.operator_id));
    let lead = r
        .store()
        .add_leads(
            c,
            &[NewLead::new(PhoneNumber::parse("+14155550103").unwrap())],
            Timestamp::now(),
        )
        .unwrap()[0];
    let body = json!({"to": "+14155550103", "lead_id": lead.0});
    let first = accepted(&r.post_call(&r.operator, body.clone()).await);
    let a = r.post_call(&r.operator, body).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.error().contains("lead"));

    accepted(
        &r.post_call(&r.operator, json!({"to": "+14155550104"}))
            .await,
    );
    let a = r
        .post_call(&r.operator, json!({"to": "+14155550105"}))
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.header(header::RETRY_AFTER), "5");
    assert!(a.error().contains("call limit"));

    r.manager.shutdown().await;
    let a = r
        .post_call(&r.operator, json!({"to": "+14155550105"}))
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.error().contains("shutting down"));
    assert_eq!(a.header(header::RETRY_AFTER), "5");
    let s: CallStatus = r
        .get(&format!("/api/calls/{first}"), &r.operator)
        .await
        .json_as();
    assert!(!s.live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_for_a_claim_no_longer_held_is_409_and_dials_nothing() {
    let r = rig(Callee::Ring, |_| {}).await;
    let c = r.campaign("claims", Some(r.operator_id));
    let mut store = r.store();
    store
        .set_campaign_status(c, CampaignStatus::Active, Timestamp::now())
        .unwrap();
    let lead = store
        .add_leads(
            c,
            &[NewLead::new(PhoneNumber::parse("+14155550106").unwrap())],
            Timestamp::now(),
        )
        .unwrap()[0];
    // A dialer's claim (token A), released; the lead claimed again (token B).
    let a = store
        .claim_due_leads(c, Timestamp::now(), 1)
        .unwrap()
        .remove(0);
    store.release_lead(lead, Timestamp::now()).unwrap();
    let b = store
        .claim_due_leads(c, Timestamp::now(), 1)
        .unwrap()
        .remove(0);
    let body = |claim: &ClaimToken| json!({"to": "+14155550106", "lead_id": lead.0, "claim_token": claim.as_str()});

    let stale = r.post_call(&r.operator, body(&a.claim)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(
        stale.error().contains("claim is no longer held"),
        "{}",
        stale.error()
    );
    assert!(r.manager.snapshot().calls.is_empty(), "nothing dialled");
    let of_lead = SessionFilter {
        campaign: Some(c),
        ..SessionFilter::default()
    };
    assert!(
        store
            .list_sessions(&of_lead, 10, None)
            .unwrap()
            .items
            .is_empty()
    );

    // The current claim's call goes out, and its row names the lead.
    let id = accepted(&r.post_call(&r.operator, body(&b.claim)).await);
    let s = store.get_session(id).unwrap();
    assert_eq!(s.lead, Some(lead));
    assert_eq!(store.attempt_session(lead).unwrap().unwrap().session.id, id);
    // A request without a token is placed as before (here: lead busy).
    let a = r
        .post_call(
            &r.operator,
            json!({"to": "+14155550106", "lead_id": lead.0}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.error().contains("already live"), "{}", a.error());
}

/// Issue 14 item 6: probing `POST /api/calls` with other owners' ids must
/// not tell them apart from ids that do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_cannot_tell_another_owners_campaign_or_lead_from_a_missing_one() {
    let r = rig(Callee::Ring, |_| {}).await;
    let theirs = r.campaign("theirs", Some(r.other_id));
    let lead = r
        .store()
        .add_leads(
            theirs,
            &[NewLead::new(PhoneNumber::parse("+14155550104").unwrap())],
            Timestamp::now(),
        )
        .unwrap()[0];
    let missing_campaign = theirs.0 + 1000;
    let missing_lead = lead.0 + 1000;
    let probes = [
        (
            json!({"campaign_id": theirs.0}),
            json!({"campaign_id": missing_campaign}),
            theirs.0,
            missing_campaign,
        ),
        (
            json!({"lead_id": lead.0}),
            json!({"lead_id": missing_lead}),
            lead.0,
            missing_lead,
        ),
        // A lead of theirs named with a campaign id: not "belongs to ...".
        (
            json!({"lead_id": lead.0, "campaign_id": 7}),
            json!({"lead_id": missing_lead, "campaign_id": 7}),
            lead.0,
            missing_lead,
        ),
    ];
    for (real, fake, real_id, fake_id) in probes {
        let mut real_body = json!({"to": "+14155550100"});
        let mut fake_body = real_body.clone();
        for (k, v) in real.as_object().unwrap() {
            real_body[k] = v.clone();
        }
        for (k, v) in fake.as_object().unwrap() {
            fake_body[k] = v.clone();
        }
        let a = r.post_call(&r.operator, real_body.clone()).await;
        let b = r.post_call(&r.operator, fake_body).await;
        assert_eq!(a.status, b.status, "{real_body}: {}", a.error());
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{real_body}");
        assert_eq!(
            a.error(),
            b.error()
                .replace(&fake_id.to_string(), &real_id.to_string()),
            "{real_body}"
        );
    }
    // An admin still sees the truth.
    let a = r
        .post_call(
            &r.admin,
            json!({"to": "+14155550100", "lead_id": lead.0, "campaign_id": 7}),
        )
        .await;
    assert!(a.error().contains("belongs to campaign"), "{}", a.error());
    assert!(r.manager.snapshot().calls.is_empty(), "nothing was dialled");
    r.manager.shutdown().await;
}
