//! Health, auth, error shapes, session listing and detail, recordings.

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use callbridge_crm_store::{
    ApiToken, Direction, EndReason, EventKind, Finish, NewEvent, NewSession, NewTurn, PersonName,
    Role, SessionId, SessionState, SessionUpdate, Speaker, Transport, jiff::Timestamp,
};
use serde_json::{Value, json};

use super::{Callee, Rig, rig};

fn ids(v: &Value) -> Vec<String> {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(v: &[SessionId]) -> HashSet<String> {
    v.iter().map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token_and_shows_no_caller_data() {
    let r = rig(Callee::Ring, |_| {}).await;
    r.session(None, None, 1);
    let a = r.req(Method::GET, "/api/health", None).await;
    assert_eq!(a.status, StatusCode::OK);
    let h = a.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["active_sessions"], 0);
    assert!(h.get("active_ids").is_none(), "no ids without auth: {h}");
    assert_eq!(h["admitting"], true);
    assert_eq!(h["store_ok"], true);
    assert_eq!(h["model"]["provider"], "mock");
    assert!(h["model"]["reachable"].is_null());
    assert!(h["uptime_s"].is_u64());
    let text = String::from_utf8(a.body).unwrap();
    assert!(!text.contains("5550001111"), "no caller numbers: {text}");
    // A shutdown shows as draining.
    r.manager.shutdown().await;
    let h = r.req(Method::GET, "/api/health", None).await.json();
    assert_eq!(h["status"], "draining");
    assert_eq!(h["admitting"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_endpoint_needs_a_valid_bearer_token() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, None, 1);
    let endpoints = [
        (Method::GET, "/api/sessions".to_owned()),
        (Method::GET, format!("/api/sessions/{id}")),
        (Method::GET, format!("/api/sessions/{id}/recording")),
        (Method::POST, "/api/calls".to_owned()),
        (Method::GET, format!("/api/calls/{id}")),
        (Method::DELETE, format!("/api/calls/{id}")),
    ];
    // A well-formed token the store does not know, and garbage.
    let unknown = format!("cbt_{}_{}", "0".repeat(16), "0".repeat(64));
    for (m, uri) in &endpoints {
        let a = r.req(m.clone(), uri, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{m} {uri}");
        assert_eq!(a.error(), "missing bearer token");
        assert_eq!(
            a.header(header::WWW_AUTHENTICATE),
            r#"Bearer realm="callbridge""#
        );
        for bad in [unknown.as_str(), "nonsense"] {
            let a = r.req(m.clone(), uri, Some(bad)).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{m} {uri} {bad}");
            assert_eq!(a.error(), "invalid API token");
            assert!(a.header(header::WWW_AUTHENTICATE).contains("invalid_token"));
        }
    }
    // Another scheme is no bearer token.
    let req = Request::builder()
        .uri("/api/sessions")
        .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
        .body(Body::empty())
        .unwrap();
    assert_eq!(r.send(req).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_rotated_away_tokens_are_401() {
    let r = rig(Callee::Ring, |_| {}).await;
    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    // Issued two hours ago, expired an hour ago.
    let expired = ApiToken::generate().unwrap();
    r.store()
        .create_user_expiring(
            &PersonName::new("expired").unwrap(),
            Role::Admin,
            &expired,
            Some(now - hour),
            now - hour * 2,
        )
        .unwrap();
    // Expires in an hour: still good.
    let fresh = ApiToken::generate().unwrap();
    r.store()
        .create_user_expiring(
            &PersonName::new("fresh").unwrap(),
            Role::Admin,
            &fresh,
            Some(now + hour),
            now,
        )
        .unwrap();
    assert_eq!(
        r.get("/api/sessions", &fresh.expose()).await.status,
        StatusCode::OK
    );
    let a = r.get("/api/sessions", &expired.expose()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error(), "invalid API token");
    // Revoked: 401 at once.
    assert_eq!(
        r.get("/api/sessions", &r.viewer).await.status,
        StatusCode::OK
    );
    r.store().revoke_user(r.viewer_id, now).unwrap();
    assert_eq!(
        r.get("/api/sessions", &r.viewer).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Rotated: the old token is 401, the new one works.
    let new = ApiToken::generate().unwrap();
    r.store().rotate_token(r.other_id, &new, None, now).unwrap();
    assert_eq!(
        r.get("/api/sessions", &r.other).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        r.get("/api/sessions", &new.expose()).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_but_may_not_place_or_hang_up_calls() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, Some(r.viewer_id), 1);
    let a = r.get("/api/sessions", &r.viewer).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(ids(&a.json()), vec![id.to_string()]);
    assert_eq!(
        r.get(&format!("/api/calls/{id}"), &r.viewer).await.status,
        StatusCode::OK
    );
    let a = r.post_call(&r.viewer, json!({"to": "+14155550100"})).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.error().contains("agent-operator"));
    // The role is checked before the body is even read.
    let a = r.post_call(&r.viewer, json!({"bogus": 1})).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = r
        .req(Method::DELETE, &format!("/api/calls/{id}"), Some(&r.viewer))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_see_their_campaigns_and_their_calls_and_nothing_else() {
    let r = rig(Callee::Ring, |_| {}).await;
    let mine = r.campaign("mine", Some(r.operator_id));
    let theirs = r.campaign("theirs", Some(r.other_id));
    let in_mine = r.session(Some(mine), None, 6);
    let in_theirs = r.session(Some(theirs), None, 5);
    let assigned_to_me = r.session(None, Some(r.operator_id), 4);
    let assigned_to_them = r.session(None, Some(r.other_id), 3);
    let nobodys = r.session(None, None, 2);
    let mine_in_theirs = r.session(Some(theirs), Some(r.operator_id), 1);
    let all = [
        in_mine,
        in_theirs,
        assigned_to_me,
        assigned_to_them,
        nobodys,
        mine_in_theirs,
    ];

    let seen = |a: super::Answer| ids(&a.json()).into_iter().collect::<HashSet<_>>();
    assert_eq!(seen(r.get("/api/sessions", &r.admin).await), set(&all));
    assert_eq!(
        seen(r.get("/api/sessions", &r.operator).await),
        set(&[in_mine, assigned_to_me, mine_in_theirs])
    );
    assert_eq!(
        seen(r.get("/api/sessions", &r.other).await),
        set(&[in_theirs, assigned_to_them, mine_in_theirs]),
        "a campaign's owner sees every call in it"
    );
    assert!(seen(r.get("/api/sessions", &r.viewer).await).is_empty());
    // Filtering by another user's campaign shows only what is mine in it.
    assert_eq!(
        seen(
            r.get(
                &format!("/api/sessions?campaign_id={}", theirs.0),
                &r.operator
            )
            .await
        ),
        set(&[mine_in_theirs])
    );

    // Sessions I may not see answer exactly like sessions that do not exist.
    let ghost = SessionId::new_v4();
    for id in [in_theirs, assigned_to_them, nobodys] {
        for (m, path) in [
            (Method::GET, format!("/api/sessions/{id}")),
            (Method::GET, format!("/api/sessions/{id}/recording")),
            (Method::GET, format!("/api/calls/{id}")),
            (Method::DELETE, format!("/api/calls/{id}")),
        ] {
            let hidden = r.req(m.clone(), &path, Some(&r.operator)).await;
            let missing = r
                .req(
                    m.clone(),
                    &path.replace(&id.to_string(), &ghost.to_string()),
                    Some(&r.operator),
                )
                .await;
            assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{m} {path}");
            assert_eq!(missing.status, StatusCode::NOT_FOUND);
            assert_eq!(
                hidden.error().replace(&id.to_string(), "ID"),
                missing.error().replace(&ghost.to_string(), "ID")
            );
        }
    }
    for id in [in_mine, assigned_to_me, mine_in_theirs] {
        assert_eq!(
            r.get(&format!("/api/sessions/{id}"), &r.operator)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        r.get(&format!("/api/sessions/{nobodys}"), &r.admin)
            .await
            .status,
        StatusCode::OK
    );
}

/// Walks every page with `limit`, returning the ids in order.
async fn walk(r: &Rig, token: &str, query: &str, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut uri = format!("/api/sessions?limit={limit}{query}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let a = r.get(&uri, token).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        let v = a.json();
        let page = ids(&v);
        assert!(page.len() <= limit as usize);
        out.extend(page);
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("paging did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_and_pages_newest_first_for_admins_and_owners() {
    let r = rig(Callee::Ring, |_| {}).await;
    let mine = r.campaign("mine", Some(r.operator_id));
    let other = r.campaign("other", None);
    // Newest first: the order the API must give.
    let mut expected_mine = Vec::new();
    let mut expected_all = Vec::new();
    for age in (1..=12).rev() {
        let (c, o) = match age % 3 {
            0 => (Some(mine), None),
            1 => (None, Some(r.operator_id)),
            _ => (Some(other), None),
        };
        let id = r.session(c, o, age * 10);
        expected_all.insert(0, id.to_string());
        if age % 3 != 2 {
            expected_mine.insert(0, id.to_string());
        }
    }
    // One ended outbound session for the state and direction filters.
    let out = callbridge_crm_store::SessionId::new_v4();
    {
        let mut st = r.store();
        st.create_session(&callbridge_crm_store::NewSession::outbound(
            out,
            Timestamp::now(),
        ))
        .unwrap();
        st.finish_session(
            out,
            &Finish::ended(EndReason::CallerHangup, Timestamp::now()),
        )
        .unwrap();
    }
    expected_all.insert(0, out.to_string());

    for limit in [1, 3, 5, 100] {
        assert_eq!(
            walk(&r, &r.admin, "", limit).await,
            expected_all,
            "limit {limit}"
        );
        assert_eq!(
            walk(&r, &r.operator, "", limit).await,
            expected_mine,
            "limit {limit}"
        );
    }
    // Oldest first, across pages, for the admin (one store listing) and
    // for the operator (owned sessions and campaigns merged).
    let reversed = |v: &Vec<String>| v.iter().rev().cloned().collect::<Vec<_>>();
    for limit in [1, 4, 100] {
        assert_eq!(
            walk(&r, &r.admin, "&order=oldest", limit).await,
            reversed(&expected_all),
            "limit {limit}"
        );
        assert_eq!(
            walk(&r, &r.operator, "&order=oldest", limit).await,
            reversed(&expected_mine),
            "limit {limit}"
        );
    }
    let bad = r.get("/api/sessions?order=state", &r.admin).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let rr = &r;
    let only = |q: String| async move { walk(rr, &rr.admin, &q, 100).await };
    assert_eq!(only("&state=ended".into()).await, vec![out.to_string()]);
    assert_eq!(
        only("&direction=outbound".into()).await,
        vec![out.to_string()]
    );
    assert_eq!(
        only("&direction=inbound&state=".into()).await,
        expected_all[1..].to_vec()
    );
    assert_eq!(only(format!("&campaign_id={}", other.0)).await.len(), 4);
    // since/until bound created_at (since inclusive, until exclusive).
    let since =
        (Timestamp::now() - callbridge_crm_store::jiff::SignedDuration::from_secs(35)).to_string();
    let recent = only(format!("&since={since}")).await;
    assert_eq!(
        recent,
        expected_all[..4].to_vec(),
        "the outbound one and ages 10, 20, 30"
    );
    let old = only(format!("&until={since}")).await;
    assert_eq!(old, expected_all[4..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_calls_show_their_transport_and_the_list_filters_on_it() {
    let r = rig(Callee::Ring, |_| {}).await;
    let sip = r.session(None, None, 30);
    let carrier = |transport: Transport, age_s: i64| {
        let id = SessionId::new_v4();
        let at = Timestamp::now() - callbridge_crm_store::jiff::SignedDuration::from_secs(age_s);
        let mut s = NewSession::inbound(id, at);
        s.transport = transport;
        s.sip_call_id = Some(format!("{transport}:call-{age_s}"));
        r.store().create_session(&s).unwrap();
        id
    };
    let twilio = carrier(Transport::Twilio, 20);
    let vonage = carrier(Transport::Vonage, 10);

    let rr = &r;
    let only = |q: &'static str| async move { walk(rr, &rr.admin, q, 100).await };
    assert_eq!(only("&transport=twilio").await, vec![twilio.to_string()]);
    assert_eq!(only("&transport=vonage").await, vec![vonage.to_string()]);
    assert_eq!(only("&transport=sip").await, vec![sip.to_string()]);
    assert!(only("&transport=unknown").await.is_empty());
    assert_eq!(
        only("&transport=&direction=inbound").await,
        vec![vonage.to_string(), twilio.to_string(), sip.to_string()],
        "an empty transport is no filter"
    );

    let list = r.get("/api/sessions", &r.admin).await.json();
    let shown: Vec<(&str, &str)> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["transport"].as_str().unwrap(),
                s["direction"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("vonage", "inbound"),
            ("twilio", "inbound"),
            ("sip", "inbound")
        ]
    );
    let detail = r
        .get(&format!("/api/sessions/{vonage}"), &r.admin)
        .await
        .json();
    assert_eq!(detail["session"]["transport"], "vonage");
    assert_eq!(detail["session"]["sip_call_id"], "vonage:call-10");
    for (id, want) in [(sip, "sip"), (twilio, "twilio"), (vonage, "vonage")] {
        let s: callbridge_api::CallStatus =
            r.get(&format!("/api/calls/{id}"), &r.admin).await.json_as();
        assert_eq!(s.transport.as_deref(), Some(want));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_filter_by_exact_number_and_by_whole_days() {
    use callbridge_crm_store::Party;
    let r = rig(Callee::Ring, |_| {}).await;
    let day = |d: &str| format!("{d}T12:00:00Z").parse::<Timestamp>().unwrap();
    let add = |from: &str, to: &str, at: Timestamp| {
        let id = callbridge_crm_store::SessionId::new_v4();
        let mut s = callbridge_crm_store::NewSession::inbound(id, at);
        s.from = Some(Party::new(from).unwrap());
        s.to = Some(Party::new(to).unwrap());
        r.store().create_session(&s).unwrap();
        id.to_string()
    };
    let a = add("+14155550100", "+4930123456", day("2026-12-05"));
    let b = add("+14155550199", "+4930123456", day("2026-12-06"));
    let c = add("+4930123456", "+14155550100", day("2026-12-07"));
    let only = |q: &'static str| {
        let r = &r;
        async move { walk(r, &r.admin, q, 100).await }
    };
    // Either party, exactly (a prefix does not match); + is %2B in a URL.
    assert_eq!(
        only("&number=%2B14155550100").await,
        vec![c.clone(), a.clone()]
    );
    assert_eq!(only("&number=%2B1415555010").await, Vec::<String>::new());
    // A date is a whole UTC day: since from its start, until to its end.
    assert_eq!(only("&since=2026-12-06").await, vec![c.clone(), b.clone()]);
    assert_eq!(only("&until=2026-12-06").await, vec![b.clone(), a.clone()]);
    assert_eq!(
        only("&since=2026-12-06&until=2026-12-06").await,
        vec![b.clone()]
    );
    // Every time in an answer has the same shape: UTC, three fractional digits.
    let page: callbridge_api::SessionList = r
        .get("/api/sessions?since=2026-12-05", &r.admin)
        .await
        .json_as();
    for s in &page.sessions {
        assert_eq!(
            s.created_at.len(),
            "2026-12-05T12:00:00.000Z".len(),
            "{}",
            s.created_at
        );
        assert!(s.created_at.ends_with(".000Z"), "{}", s.created_at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listing_parameters_are_400_with_the_parameter_named() {
    let r = rig(Callee::Ring, |_| {}).await;
    for (q, word) in [
        ("state=bogus", "state"),
        ("direction=sideways", "direction"),
        ("transport=pigeon", "transport"),
        ("transport=Twilio", "transport"),
        ("campaign_id=x", "campaign_id"),
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00Z", "until"),
        ("since=2026-02-30", "since"),
        ("number=4155550100", "number"),
        ("number=%2Babc", "number"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("cursor=garbage", "cursor"),
        ("colour=red", "colour"),
    ] {
        let a = r.get(&format!("/api/sessions?{q}"), &r.admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(a.error().contains(word), "{q}: {}", a.error());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_comes_with_its_transcript_and_events_and_unknown_ids_are_404() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, None, 1);
    {
        let mut st = r.store();
        let now = Timestamp::now();
        st.set_state(id, SessionState::Active, now).unwrap();
        st.append_turns(
            id,
            &[
                NewTurn::new(0, Speaker::Agent, "Hello, how can I help?", 0),
                NewTurn::new(1, Speaker::Caller, "What are your hours?", 2000),
            ],
        )
        .unwrap();
        st.append_events(
            id,
            &[NewEvent {
                at: now,
                kind: EventKind::BargeIn,
                detail: json!({"after_ms": 1200}),
            }],
        )
        .unwrap();
        st.finish_session(id, &Finish::ended(EndReason::CallerHangup, now))
            .unwrap();
    }
    let a = r.get(&format!("/api/sessions/{id}"), &r.admin).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["session"]["id"], id.to_string());
    assert_eq!(v["session"]["state"], "ended");
    assert_eq!(v["session"]["end_reason"], "caller-hangup");
    assert_eq!(v["session"]["direction"], Direction::Inbound.as_str());
    assert_eq!(v["session"]["from"], "+15550001111");
    assert_eq!(v["session"]["live"], false);
    assert_eq!(v["transcript"][0]["speaker"], "agent");
    assert_eq!(v["transcript"][1]["text"], "What are your hours?");
    assert_eq!(v["transcript"][1]["start_ms"], 2000);
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"barge-in"), "{kinds:?}");

    let ghost = SessionId::new_v4();
    let a = r.get(&format!("/api/sessions/{ghost}"), &r.admin).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error(), format!("session {ghost} does not exist"));
    for bad in [
        "not-a-uuid",
        "1",
        "%00",
        "%FF%FE",
        "6f1c1f7e-58a3-4a47-9f53-2b1b2e6f7a1",
    ] {
        for (m, path) in [
            (Method::GET, format!("/api/sessions/{bad}")),
            (Method::GET, format!("/api/sessions/{bad}/recording")),
            (Method::GET, format!("/api/calls/{bad}")),
            (Method::DELETE, format!("/api/calls/{bad}")),
        ] {
            let a = r.req(m, &path, Some(&r.admin)).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                a.error().contains("does not exist"),
                "{path}: {}",
                a.error()
            );
        }
    }
    // A viewer's DELETE is refused for the role before the id is looked at.
    let a = r
        .req(Method::DELETE, "/api/calls/nope", Some(&r.viewer))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_wrong_methods_and_bad_bodies_answer_json() {
    let r = rig(Callee::Ring, |_| {}).await;
    let a = r.get("/api/nothing-here", &r.admin).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error(), "no such endpoint");
    // (`/` is the console's now: an unknown path outside the API.)
    let a = r.req(Method::GET, "/nothing-here", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    a.error();
    let a = r.req(Method::PUT, "/api/health", None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.error().contains("method"));
    assert!(a.header(header::ALLOW).contains("GET"));
    let a = r.req(Method::PATCH, "/api/sessions", Some(&r.admin)).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    a.error();

    let post = |ct: Option<&str>, body: Vec<u8>| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/api/calls")
            .header(header::AUTHORIZATION, format!("Bearer {}", r.operator));
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        r.send(b.body(Body::from(body)).unwrap())
    };
    let a = post(None, br#"{"to":"+14155550100"}"#.to_vec()).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(a.error().contains("application/json"));
    let a = post(Some("text/plain"), br#"{"to":"+14155550100"}"#.to_vec()).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = post(Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    a.error();
    let a = post(
        Some("application/json"),
        br#"{"to":"+14155550100","colour":1}"#.to_vec(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().contains("colour"), "{}", a.error());
    let a = post(Some("application/json"), br#"{"to":5}"#.to_vec()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = post(Some("application/json"), br#"{}"#.to_vec()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let big = format!(
        r#"{{"to":"+14155550100","prompt":"{}"}}"#,
        "x".repeat(super::super::MAX_BODY)
    );
    let a = post(Some("application/json"), big.into_bytes()).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.error().contains("larger than"), "{}", a.error());
}

/// A stored session with a recording of `len` bytes (0, 1, 2, ...).
pub(super) fn with_recording(r: &Rig, len: usize) -> (SessionId, Vec<u8>) {
    let id = r.session(None, None, 1);
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let path = r.dir.path().join(format!("{id}.wav"));
    std::fs::write(&path, &data).unwrap();
    let u = SessionUpdate {
        recording: Some((path, len as u64)),
        ..SessionUpdate::default()
    };
    r.store().update_session(id, &u).unwrap();
    (id, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_stream_whole_or_by_single_byte_ranges() {
    let r = rig(Callee::Ring, |_| {}).await;
    let (id, data) = with_recording(&r, 10_000);
    let uri = format!("/api/sessions/{id}/recording");
    let ranged = |range: &str, if_range: bool| {
        let mut b = Request::builder()
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", r.admin))
            .header(header::RANGE, range);
        if if_range {
            b = b.header(header::IF_RANGE, "\"x\"");
        }
        r.send(b.body(Body::empty()).unwrap())
    };

    let a = r.get(&uri, &r.admin).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), "audio/wav");
    assert_eq!(a.header(header::ACCEPT_RANGES), "bytes");
    assert_eq!(a.header(header::CONTENT_LENGTH), "10000");
    assert_eq!(a.body, data);

    let a = ranged("bytes=0-499", false).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.header(header::CONTENT_RANGE), "bytes 0-499/10000");
    assert_eq!(a.header(header::CONTENT_LENGTH), "500");
    assert_eq!(a.body, data[..500]);

    let a = ranged("bytes=9000-", false).await;
    assert_eq!(a.header(header::CONTENT_RANGE), "bytes 9000-9999/10000");
    assert_eq!(a.body, data[9000..]);

    let a = ranged("bytes=-300", false).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.header(header::CONTENT_RANGE), "bytes 9700-9999/10000");
    assert_eq!(a.body, data[9700..]);

    let a = ranged("bytes=4000-4000", false).await;
    assert_eq!(a.body, data[4000..=4000]);

    let a = ranged("bytes=10000-", false).await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(a.header(header::CONTENT_RANGE), "bytes */10000");
    a.error();

    // Several ranges, or If-Range (no validators kept): the whole file.
    for (range, if_range) in [
        ("bytes=0-1,5-6", false),
        ("bytes=0-1", true),
        ("lines=1-2", false),
    ] {
        let a = ranged(range, if_range).await;
        assert_eq!(a.status, StatusCode::OK, "{range}");
        assert_eq!(a.body.len(), data.len());
    }

    // HEAD: the headers without the body.
    let a = r.req(Method::HEAD, &uri, Some(&r.admin)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_LENGTH), "10000");
    assert!(a.body.is_empty());
}

/// What tower-http's file serving adds, and the Range answers it would
/// give otherwise (see `recording`'s module doc): `Last-Modified`, 304
/// and 412 on conditional requests, `If-Range` with that date, a suffix
/// longer than the file, an empty file; and the entity tag added to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_answer_conditional_requests_by_their_last_modified_date() {
    use std::time::{Duration, SystemTime};
    let r = rig(Callee::Ring, |_| {}).await;
    let (id, data) = with_recording(&r, 100);
    let then = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(r.dir.path().join(format!("{id}.wav")))
        .unwrap()
        .set_modified(then)
        .unwrap();
    let uri = format!("/api/sessions/{id}/recording");
    let with = |headers: &[(header::HeaderName, String)]| {
        let mut b = Request::builder()
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", r.admin));
        for (k, v) in headers {
            b = b.header(k, v);
        }
        r.send(b.body(Body::empty()).unwrap())
    };
    let date = httpdate::fmt_http_date(then);
    let a = with(&[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::LAST_MODIFIED), date);

    let a = with(&[(header::IF_MODIFIED_SINCE, date.clone())]).await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert!(a.body.is_empty());

    let earlier = httpdate::fmt_http_date(then - Duration::from_secs(60));
    let a = with(&[(header::IF_UNMODIFIED_SINCE, earlier)]).await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED);
    a.error();

    let a = with(&[
        (header::RANGE, "bytes=10-19".into()),
        (header::IF_RANGE, date.clone()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "If-Range matches");
    assert_eq!(a.body, data[10..20]);

    let a = with(&[(header::RANGE, "bytes=-500".into())]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.header(header::CONTENT_RANGE), "bytes 0-99/100");
    assert_eq!(a.body, data);

    // The entity tag: 304 for If-None-Match (over If-Modified-Since),
    // 412 for an If-Match naming another version, If-Range by the tag.
    let a = with(&[]).await;
    let tag = a.header(header::ETAG).to_owned();
    assert!(
        tag.starts_with("\"64-"),
        "a strong tag of length and mtime: {tag}"
    );
    let a = with(&[(header::IF_NONE_MATCH, tag.clone())]).await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(a.header(header::ETAG), tag);
    assert!(a.body.is_empty());
    let a = with(&[
        (header::IF_NONE_MATCH, "\"older\"".into()),
        (header::IF_MODIFIED_SINCE, date.clone()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::OK, "If-Modified-Since is ignored");
    assert_eq!(a.body, data);
    let a = with(&[(header::IF_MATCH, "\"older\"".into())]).await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED);
    a.error();
    let a = with(&[
        (header::IF_MATCH, tag.clone()),
        (header::RANGE, "bytes=0-9".into()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    let a = with(&[(header::RANGE, "bytes=0-9".into()), (header::IF_RANGE, tag)]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "If-Range by the tag");
    assert_eq!(a.body, data[..10]);
    let a = with(&[
        (header::RANGE, "bytes=0-9".into()),
        (header::IF_RANGE, "\"older\"".into()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::OK, "another version: the whole file");

    let (empty, _) = with_recording(&r, 0);
    let b = Request::builder()
        .uri(format!("/api/sessions/{empty}/recording"))
        .header(header::AUTHORIZATION, format!("Bearer {}", r.admin))
        .header(header::RANGE, "bytes=0-");
    let a = r.send(b.body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(a.header(header::CONTENT_RANGE), "bytes */0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_recordings_are_404_never_500() {
    let r = rig(Callee::Ring, |_| {}).await;
    // No recording at all.
    let id = r.session(None, None, 1);
    let a = r
        .get(&format!("/api/sessions/{id}/recording"), &r.admin)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error(), format!("session {id} has no recording"));
    // The file is gone.
    let (gone, _) = with_recording(&r, 10);
    std::fs::remove_file(r.dir.path().join(format!("{gone}.wav"))).unwrap();
    let a = r
        .get(&format!("/api/sessions/{gone}/recording"), &r.admin)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // A path outside the recordings directory is not served.
    let outside = tempfile::NamedTempFile::new().unwrap();
    let id = r.session(None, None, 1);
    let u = SessionUpdate {
        recording: Some((outside.path().to_path_buf(), 0)),
        ..SessionUpdate::default()
    };
    r.store().update_session(id, &u).unwrap();
    let a = r
        .get(&format!("/api/sessions/{id}/recording"), &r.admin)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_split_shows_where_the_provider_gave_it_and_is_null_elsewhere() {
    let r = rig(Callee::Ring, |_| {}).await;
    let split = r.session(None, None, 2);
    let plain = r.session(None, None, 1);
    let usage = |s: Option<callbridge_crm_store::TokenSplit>| SessionUpdate {
        usage: Some(callbridge_crm_store::Usage {
            input_tokens: Some(30),
            output_tokens: Some(11),
            audio_ms: Some(4000),
            split: s,
            ..Default::default()
        }),
        ..SessionUpdate::default()
    };
    let s = callbridge_crm_store::TokenSplit {
        input_audio: 24,
        input_text: 6,
        output_audio: 9,
        output_text: 2,
    };
    r.store().update_session(split, &usage(Some(s))).unwrap();
    r.store().update_session(plain, &usage(None)).unwrap();
    let one = r
        .get(&format!("/api/sessions/{split}"), &r.admin)
        .await
        .json()["session"]
        .clone();
    assert_eq!(
        (
            &one["input_tokens"],
            &one["input_audio_tokens"],
            &one["input_text_tokens"],
            &one["output_audio_tokens"],
            &one["output_text_tokens"]
        ),
        (&json!(30), &json!(24), &json!(6), &json!(9), &json!(2)),
        "{one}"
    );
    let list = r.get("/api/sessions", &r.admin).await.json();
    let rows = list["sessions"].as_array().unwrap();
    let of = |id: SessionId| {
        rows.iter()
            .find(|v| v["id"] == id.to_string())
            .unwrap()
            .clone()
    };
    assert_eq!(of(split)["output_audio_tokens"], 9);
    let p = of(plain);
    assert_eq!(p["input_tokens"], 30);
    for k in [
        "input_audio_tokens",
        "input_text_tokens",
        "output_audio_tokens",
        "output_text_tokens",
    ] {
        assert!(p[k].is_null(), "{k}: {p}");
        assert!(
            p.as_object().unwrap().contains_key(k),
            "{k} present as null"
        );
    }
}
