//! The console through the router: sign-in and its cookie, the gate
//! (expiry, revocation, CSRF, foreign origins), the security headers, the
//! owner scoping of the pages, escaping, the not-found page, the
//! recording and its waveform.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use callbridge_crm_store::jiff::Timestamp;
use callbridge_crm_store::{
    EndReason, Finish, NewTurn, Sensitive, SessionId, SessionUpdate, Speaker,
};

use super::super::console::CSP;
use super::super::console::table::IDLE;
use super::{Answer, Callee, Rig, rig};

/// A signed-in browser: its cookie and the CSRF token of its pages.
struct Browser {
    cookie: String,
    csrf: String,
}

fn form(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, "console.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn page(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn location(&self) -> &str {
        self.header(header::LOCATION)
    }
}

async fn sign_in(r: &Rig, token: &str) -> Browser {
    let a = r
        .send(form("/sign-in", &format!("token={token}"), None))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
    assert_eq!(a.location(), "/calls");
    let set = a.header(header::SET_COOKIE);
    let cookie = set.split(';').next().unwrap().to_owned();
    let calls = r.send(page("/calls", &cookie)).await;
    assert_eq!(calls.status, StatusCode::OK);
    let html = calls.text();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..at + 64].to_owned();
    Browser { cookie, csrf }
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_expiring_cookie_and_bad_tokens_are_refused() {
    let r = rig(Callee::Ring, |_| {}).await;
    let a = r.send(page("/calls", "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/sign-in");
    let a = r.req(Method::GET, "/sign-in", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text().contains("API token"));

    let a = r.send(form("/sign-in", "token=cbt_nope", None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.text().contains("not valid"), "{}", a.text());
    assert!(a.headers.get(header::SET_COOKIE).is_none());

    let a = r
        .send(form("/sign-in", &format!("token={}", r.viewer), None))
        .await;
    let c = a.header(header::SET_COOKIE);
    assert!(c.starts_with("cb_console="), "{c}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(c.contains(attr), "{attr} in {c}");
    }
    assert!(!c.contains("Secure"), "plain HTTP: {c}");
    assert!(
        !c.contains(&r.viewer),
        "the API token never goes to the browser"
    );

    let mut behind_tls = form("/sign-in", &format!("token={}", r.viewer), None);
    behind_tls
        .headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let a = r.send(behind_tls).await;
    assert!(a.header(header::SET_COOKIE).ends_with("; Secure"));
}

#[tokio::test]
async fn pages_carry_the_security_headers() {
    let r = rig(Callee::Ring, |_| {}).await;
    let b = sign_in(&r, &r.admin).await;
    for uri in ["/calls", "/sign-in"] {
        let a = r.send(page(uri, &b.cookie)).await;
        assert_eq!(a.header(header::CONTENT_SECURITY_POLICY), CSP, "{uri}");
        assert!(!CSP.contains("unsafe-inline"));
        assert_eq!(a.header(header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(a.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }
    let a = r.send(page("/calls", &b.cookie)).await;
    assert_eq!(a.header(header::CACHE_CONTROL), "no-store");
    assert!(a.header(header::CONTENT_TYPE).starts_with("text/html"));
    let html = a.text();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");
    let js = r.req(Method::GET, "/assets/console.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.header(header::CONTENT_TYPE)
            .starts_with("text/javascript")
    );
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_or_from_another_origin_is_refused() {
    let r = rig(Callee::Ring, |_| {}).await;
    let b = sign_in(&r, &r.admin).await;
    let other = sign_in(&r, &r.operator).await;
    for body in [
        String::new(),
        "csrf=".into(),
        format!("csrf={}", other.csrf),
    ] {
        let a = r.send(form("/sign-out", &body, Some(&b.cookie))).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{body}");
        assert!(a.header(header::CONTENT_TYPE).starts_with("text/html"));
    }
    let mut foreign = form("/sign-out", &format!("csrf={}", b.csrf), Some(&b.cookie));
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    assert_eq!(r.send(foreign).await.status, StatusCode::FORBIDDEN);
    // Still signed in.
    assert_eq!(
        r.send(page("/calls", &b.cookie)).await.status,
        StatusCode::OK
    );

    let a = r
        .send(form(
            "/sign-out",
            &format!("csrf={}", b.csrf),
            Some(&b.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.location().starts_with("/sign-in"));
    assert!(a.header(header::SET_COOKIE).contains("Max-Age=0"));
    let a = r.send(page("/calls", &b.cookie)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "signed out");
    assert_eq!(a.location(), "/sign-in");
}

#[tokio::test]
async fn an_expired_session_or_a_revoked_token_leads_to_the_sign_in_page() {
    let r = rig(Callee::Ring, |_| {}).await;
    let b = sign_in(&r, &r.viewer).await;
    r.console.age(IDLE + Duration::from_secs(1));
    let a = r.send(page("/calls", &b.cookie)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/sign-in");
    assert!(a.header(header::SET_COOKIE).contains("Max-Age=0"));
    assert_eq!(r.console.len(), 0);

    let b = sign_in(&r, &r.operator).await;
    r.store()
        .revoke_user(r.operator_id, Timestamp::now())
        .unwrap();
    let a = r.send(page("/calls", &b.cookie)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/sign-in");
}

#[tokio::test]
async fn a_viewer_sees_only_their_own_calls_as_the_api_does() {
    let r = rig(Callee::Ring, |_| {}).await;
    let mine = r.session(None, Some(r.viewer_id), 10);
    let theirs = r.session(None, Some(r.other_id), 5);
    let owned = r.campaign("viewer's", Some(r.viewer_id));
    let of_campaign = r.session(Some(owned), None, 1);
    let b = sign_in(&r, &r.viewer).await;
    let html = r.send(page("/calls", &b.cookie)).await.text();
    assert!(html.contains(&mine.to_string()));
    assert!(html.contains(&of_campaign.to_string()));
    assert!(!html.contains(&theirs.to_string()));
    let api = r.get("/api/sessions", &r.viewer).await.json();
    assert_eq!(api["sessions"].as_array().unwrap().len(), 2);

    let a = r.send(page(&format!("/calls/{theirs}"), &b.cookie)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.text().contains("Call not found"));
    let a = r.send(page(&format!("/calls/{mine}"), &b.cookie)).await;
    assert_eq!(a.status, StatusCode::OK);

    let admin = sign_in(&r, &r.admin).await;
    let html = r.send(page("/calls", &admin.cookie)).await.text();
    assert!(html.contains(&theirs.to_string()));
}

#[tokio::test]
async fn an_unknown_or_malformed_session_id_gets_the_not_found_page() {
    let r = rig(Callee::Ring, |_| {}).await;
    let b = sign_in(&r, &r.admin).await;
    for id in [
        SessionId::new_v4().to_string(),
        "not-a-uuid".into(),
        "%3Cscript%3E".into(),
    ] {
        let a = r.send(page(&format!("/calls/{id}"), &b.cookie)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{id}");
        let html = a.text();
        assert!(html.contains("Call not found"), "{html}");
        assert!(!html.contains("<script>"), "escaped: {html}");
    }
}

#[tokio::test]
async fn the_filters_narrow_the_history_and_bad_ones_are_explained() {
    let r = rig(Callee::Ring, |_| {}).await;
    let hung = r.session(None, None, 20);
    let other = r.session(None, None, 10);
    let mut st = r.store();
    st.finish_session(
        hung,
        &Finish::ended(EndReason::CallerHangup, Timestamp::now()),
    )
    .unwrap();
    st.finish_session(
        other,
        &Finish::ended(EndReason::AgentHangup, Timestamp::now()),
    )
    .unwrap();
    let b = sign_in(&r, &r.admin).await;
    let html = r
        .send(page("/calls?end_reason=caller-hangup", &b.cookie))
        .await
        .text();
    assert!(html.contains(&hung.to_string()) && !html.contains(&other.to_string()));
    let html = r
        .send(page("/calls?direction=outbound", &b.cookie))
        .await
        .text();
    assert!(html.contains("No calls match."));
    // Issue 19: the AMD verdict is a column, a filter and a detail line.
    st.update_session(
        hung,
        &callbridge_crm_store::SessionUpdate {
            amd_verdict: Some((
                callbridge_crm_store::AmdVerdict::Human,
                std::time::Duration::from_millis(1180),
            )),
            ..Default::default()
        },
    )
    .unwrap();
    let html = r.send(page("/calls?amd=human", &b.cookie)).await.text();
    assert!(html.contains(&hung.to_string()) && !html.contains(&other.to_string()));
    assert!(html.contains("<td>human</td>"), "{html}");
    let html = r.send(page("/calls?amd=machine", &b.cookie)).await.text();
    assert!(html.contains("No calls match."));
    let html = r
        .send(page(&format!("/calls/{hung}"), &b.cookie))
        .await
        .text();
    assert!(html.contains("human after 1.18 s"), "{html}");
    // Sorted by the store across pages: oldest first puts the older call
    // (20 s ago) first; a sort the store does not have is refused.
    let html = r.send(page("/calls?sort=oldest", &b.cookie)).await.text();
    let (h, o) = (html.find(&hung.to_string()), html.find(&other.to_string()));
    assert!(h.is_some() && o.is_some() && h < o, "oldest first");
    let html = r.send(page("/calls", &b.cookie)).await.text();
    let (h, o) = (html.find(&hung.to_string()), html.find(&other.to_string()));
    assert!(h.is_some() && o.is_some() && o < h, "newest first");
    let a = r.send(page("/calls?sort=state", &b.cookie)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = r.send(page("/calls?from=yesterday", &b.cookie)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().contains("from"), "{}", a.text());
    assert!(a.header(header::CONTENT_TYPE).starts_with("text/html"));
}

fn stereo_wav(path: &std::path::Path) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000i32 {
        let v = i16::try_from((i % 200 - 100) * 100).unwrap();
        w.write_sample(v).unwrap();
        w.write_sample(v / 2).unwrap();
    }
    w.finalize().unwrap();
}

#[tokio::test]
async fn the_detail_page_escapes_text_links_the_transcript_and_serves_the_recording() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, Some(r.viewer_id), 5);
    let wav = r.dir.path().join("call.wav");
    stereo_wav(&wav);
    let mut st = r.store();
    st.append_turns(
        id,
        &[
            NewTurn::new(0, Speaker::Caller, "<script>alert(1)</script> hi", 1500),
            NewTurn::new(1, Speaker::Agent, "Hello & welcome", 2750),
        ],
    )
    .unwrap();
    st.update_session(
        id,
        &SessionUpdate {
            recording: Some((wav.clone(), std::fs::metadata(&wav).unwrap().len())),
            summary: Some(Sensitive::new("<b>bold</b> summary")),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    let b = sign_in(&r, &r.viewer).await;
    let a = r.send(page(&format!("/calls/{id}"), &b.cookie)).await;
    assert_eq!(a.status, StatusCode::OK);
    let html = a.text();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>bold</b>"));
    assert!(html.contains("Hello &#38; welcome") || html.contains("Hello &amp; welcome"));
    assert!(html.contains("data-seek=\"1.5\""), "{html}");
    assert!(html.contains("data-seek=\"2.8\"") || html.contains("data-seek=\"2.7\""));
    assert!(html.contains(&format!("src=\"/calls/{id}/recording\"")));
    assert!(html.len() < 100 * 1024, "pages under 100 kB");

    let mut ranged = page(&format!("/calls/{id}/recording"), &b.cookie);
    ranged
        .headers_mut()
        .insert(header::RANGE, "bytes=0-99".parse().unwrap());
    let a = r.send(ranged).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body.len(), 100);
    assert_eq!(a.header(header::CONTENT_TYPE), "audio/wav");

    let a = r
        .send(page(&format!("/calls/{id}/waveform.svg"), &b.cookie))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), "image/svg+xml");
    assert_eq!(a.text().matches("<path").count(), 2);

    // Another user's recording is not served to the viewer.
    let theirs = r.session(None, Some(r.other_id), 5);
    let a = r
        .send(page(&format!("/calls/{theirs}/recording"), &b.cookie))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_is_listed_and_only_an_operator_can_hang_it_up() {
    let r = rig(Callee::Ring, |_| {}).await;
    let a = r
        .post_call(&r.operator, serde_json::json!({"to": "+14155550100"}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let id: SessionId = a.json()["id"].as_str().unwrap().parse().unwrap();

    let op = sign_in(&r, &r.operator).await;
    let html = r.send(page("/live", &op.cookie)).await.text();
    assert!(html.contains(&format!("/calls/{id}")), "{html}");
    assert!(html.contains("**********00"), "masked numbers: {html}");
    assert!(!html.contains("+14155550100"));
    let detail = r
        .send(page(&format!("/calls/{id}"), &op.cookie))
        .await
        .text();
    assert!(detail.contains("id=\"hang-up\""));
    assert!(detail.contains(&format!("data-events=\"/calls/{id}/events\"")));

    // Another operator does not see it; a viewer may not hang up at all.
    let other = sign_in(&r, &r.other).await;
    let html = r.send(page("/live", &other.cookie)).await.text();
    assert!(html.contains("No live calls."));
    let viewer = sign_in(&r, &r.viewer).await;
    let a = r
        .send(form(
            &format!("/calls/{id}/hangup"),
            &format!("csrf={}", viewer.csrf),
            Some(&viewer.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(r.manager.snapshot().calls.iter().any(|c| c.id == id));

    let a = r
        .send(form(
            &format!("/calls/{id}/hangup"),
            &format!("csrf={}", op.csrf),
            Some(&op.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), format!("/calls/{id}"));
    r.until_not_live(id).await;
    let html = r.send(page("/live", &op.cookie)).await.text();
    assert!(html.contains("No live calls."));
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_the_transcript_then_ends_for_a_call_that_is_over() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, Some(r.viewer_id), 5);
    r.store()
        .append_turns(
            id,
            &[
                NewTurn::new(0, Speaker::Caller, "<i>hello</i>", 0),
                NewTurn::new(1, Speaker::Agent, "hi there", 1200),
            ],
        )
        .unwrap();
    let b = sign_in(&r, &r.viewer).await;
    let a = r
        .send(page(&format!("/calls/{id}/events"), &b.cookie))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.header(header::CONTENT_TYPE)
            .starts_with("text/event-stream")
    );
    let body = a.text();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["turn", "turn", "state", "end"], "{body}");
    assert!(
        body.contains(r#""text":"<i>hello</i>""#),
        "JSON, inserted as text by the script: {body}"
    );
    assert!(body.contains(r#""at":"0:01""#));

    let theirs = r.session(None, Some(r.other_id), 5);
    let a = r
        .send(page(&format!("/calls/{theirs}/events"), &b.cookie))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_health_page_shows_the_apis_report() {
    let r = rig(Callee::Ring, |_| {}).await;
    let b = sign_in(&r, &r.viewer).await;
    let html = r.send(page("/health", &b.cookie)).await.text();
    assert!(html.contains(env!("CARGO_PKG_VERSION")));
    assert!(html.contains("id=\"active\">0<"), "{html}");
    assert!(html.contains("Model provider</dt><dd>mock"));
    assert!(html.contains("Store</dt><dd>ok"), "{html}");
}

#[tokio::test]
async fn campaigns_are_scoped_to_their_owner_and_import_shows_each_bad_row() {
    let r = rig(Callee::Ring, |_| {}).await;
    let mine = r.campaign("spring <b>sale</b>", Some(r.operator_id));
    let theirs = r.campaign("theirs", Some(r.other_id));
    let op = sign_in(&r, &r.operator).await;
    let html = r.send(page("/campaigns", &op.cookie)).await.text();
    assert!(html.contains(&format!("/campaigns/{mine}")));
    assert!(
        html.contains("spring &#60;b&#62;sale&#60;/b&#62;") || html.contains("spring &lt;b&gt;"),
        "{html}"
    );
    assert!(!html.contains(&format!("/campaigns/{theirs}\"")));
    let a = r
        .send(page(&format!("/campaigns/{theirs}"), &op.cookie))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // CRLF, as a browser sends a text area.
    let csv = "phone,name\r\n+14155550100,<script>alert(1)</script>\r\n12ab,Bad Row\r\n+14155550101,Grace\r\n";
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &op.csrf)
        .append_pair("csv", csv)
        .finish();
    let a = r
        .send(form(
            &format!("/campaigns/{mine}/import"),
            &body,
            Some(&op.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let html = a.text();
    assert!(html.contains("3 row(s): 2 new"), "{html}");
    assert!(
        html.contains("line 3: phone"),
        "the bad row with its line: {html}"
    );
    assert!(!html.contains("<script>alert"), "lead names are escaped");
    assert!(html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"));
    assert!(html.contains(">pending</a> <b>2</b>"), "the funnel: {html}");

    // The leads filtered by status (the funnel's entries link to it).
    let leads = |q: &'static str| {
        let cookie = op.cookie.clone();
        let r = &r;
        async move {
            r.send(page(&format!("/campaigns/{mine}?{q}"), &cookie))
                .await
        }
    };
    let html = leads("status=pending").await.text();
    assert!(html.contains("Grace"), "{html}");
    let html = leads("status=done").await.text();
    assert!(
        html.contains("No leads.") && !html.contains("Grace"),
        "{html}"
    );
    let a = leads("status=sideways").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().contains("lead status"), "{}", a.text());

    // A viewer may look at nothing here and change nothing.
    let viewer = sign_in(&r, &r.viewer).await;
    let body = format!("csrf={}&csv=phone%0A%2B14155550102", viewer.csrf);
    let a = r
        .send(form(
            &format!("/campaigns/{mine}/import"),
            &body,
            Some(&viewer.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let a = r
        .send(form(
            &format!("/campaigns/{mine}/status"),
            &format!("csrf={}&status=paused", op.csrf),
            Some(&op.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.store().get_campaign(mine).unwrap().status,
        callbridge_crm_store::CampaignStatus::Paused
    );
    let a = r
        .send(form(
            &format!("/campaigns/{theirs}/status"),
            &format!("csrf={}&status=paused", op.csrf),
            Some(&op.cookie),
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "not their campaign");
}

#[tokio::test]
async fn the_do_not_call_list_takes_numbers_from_operators_and_removals_from_admins() {
    let r = rig(Callee::Ring, |_| {}).await;
    let op = sign_in(&r, &r.operator).await;
    let add = |b: &Browser, action: &str| {
        form(
            "/dnc",
            &format!(
                "csrf={}&action={action}&phone=%2B14155550199&reason=asked",
                b.csrf
            ),
            Some(&b.cookie),
        )
    };
    let a = r.send(add(&op, "add")).await;
    assert_eq!(a.status, StatusCode::OK);
    let html = a.text();
    assert!(html.contains("asked"));
    assert!(!html.contains("+14155550199"), "numbers are masked: {html}");
    assert!(
        r.store()
            .is_dnc(&callbridge_crm_store::PhoneNumber::parse("+14155550199").unwrap())
            .unwrap()
    );
    assert_eq!(
        r.send(add(&op, "remove")).await.status,
        StatusCode::FORBIDDEN
    );
    let admin = sign_in(&r, &r.admin).await;
    assert_eq!(r.send(add(&admin, "remove")).await.status, StatusCode::OK);
    assert!(
        !r.store()
            .is_dnc(&callbridge_crm_store::PhoneNumber::parse("+14155550199").unwrap())
            .unwrap()
    );
    let viewer = sign_in(&r, &r.viewer).await;
    assert_eq!(
        r.send(add(&viewer, "add")).await.status,
        StatusCode::FORBIDDEN
    );
}
