//! An in-test stand-in for the agent's call API (`POST /api/calls`,
//! `GET /api/calls/{id}`, per `callbridge_api`): it writes outbound
//! session rows into the same store the way the agent does (row with the
//! lead id first, then ringing, answered, ended or failed) and plays each
//! call by a per-number script. It can answer 503 on demand, so the dialer's
//! back-off and agent-down paths are tested without SIP. Like the agent, it
//! writes a row carrying the request's claim token through the store's
//! claim rule (409 when the claim is no longer held), and it can hold one
//! POST before its row and act on it later (a request that reaches the
//! agent late), in a task of its own that outlives the client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callbridge_api::{CallAccepted, CallRequest, CallStatus, ErrorBody};
use callbridge_crm_store::outcome_of;
use callbridge_crm_store::{
    CampaignId, ClaimToken, EndReason, Error as StoreError, Finish, LeadId, NewSession, Outcome,
    Party, Role, SessionId, SessionState, Store, User,
};
use jiff::Timestamp;

/// How a call to a number goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Rings for the first duration, then talks for the second and the
    /// callee hangs up.
    Answer(Duration, Duration),
    /// 486 Busy Here after the duration.
    Busy(Duration),
    /// Rings until the ring timeout (the duration), then 480.
    NoAnswer(Duration),
    /// Answered by voicemail after the first duration, which takes the
    /// message for the second; the agent reports the outcome `voicemail`.
    Voicemail(Duration, Duration),
}

/// How `POST /api/calls` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostMode {
    /// Row, then 202 at once.
    Normal,
    /// No row and no answer until the mode changes (a request the agent
    /// never acted on).
    HangBeforeRow,
    /// Row and call started, but no answer until the mode changes (the
    /// dialer dies between the agent's row and the 202).
    HangAfterRow,
}

/// What the fake saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Accepted POSTs, per lead.
    pub posts_per_lead: HashMap<i64, u32>,
    /// POSTs answered 503.
    pub refused_503: u32,
    /// Most calls live at once.
    pub max_live: usize,
    /// POSTs held without an answer (`PostMode::Hang*`, `hold_next_post`).
    pub hung: u32,
    /// Held POSTs (`hold_next_post`) acted on after `release_held`.
    pub held_done: u32,
    /// POSTs refused with 409 because their claim was no longer held.
    pub claim_refused: u32,
}

struct Inner {
    store: Mutex<Store>,
    live: Mutex<HashMap<SessionId, Option<i64>>>,
    voicemail: Mutex<std::collections::HashSet<SessionId>>,
    script: Box<dyn Fn(&str) -> Script + Send + Sync>,
    unavailable: Mutex<bool>,
    post_mode: Mutex<PostMode>,
    reject_tokens: Mutex<bool>,
    /// The next POST is held before its row until `held_open`.
    hold_next: Mutex<bool>,
    held_open: Mutex<bool>,
    seen: Mutex<Seen>,
}

/// A running fake agent; stops when dropped.
pub struct FakeAgent {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn err(status: StatusCode, msg: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: msg.to_owned(),
        }),
    )
        .into_response()
}

/// The token's user, verified against the store as the agent does (and
/// refused while `reject_tokens` is on).
fn caller(inner: &Inner, h: &HeaderMap) -> Option<User> {
    if *inner.reject_tokens.lock().unwrap() {
        return None;
    }
    let token = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .strip_prefix("Bearer ")?;
    inner.store.lock().unwrap().verify_token(token, now()).ok()
}

fn now() -> Timestamp {
    Timestamp::now()
}

async fn place(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(req): Json<CallRequest>,
) -> Response {
    let Some(user) = caller(&inner, &headers) else {
        return err(StatusCode::UNAUTHORIZED, "missing or bad token");
    };
    if let Some(c) = req.campaign_id {
        let owner = inner
            .store
            .lock()
            .unwrap()
            .get_campaign(CampaignId(c))
            .map(|c| c.settings.owner);
        if user.role != Role::Admin && owner.ok().flatten() != Some(user.id) {
            return err(StatusCode::FORBIDDEN, "campaign belongs to another user");
        }
    }
    if *inner.unavailable.lock().unwrap() {
        inner.seen.lock().unwrap().refused_503 += 1;
        let mut r = err(StatusCode::SERVICE_UNAVAILABLE, "at capacity");
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    }
    if std::mem::take(&mut *inner.hold_next.lock().unwrap()) {
        // Acted on later in a task of its own, like the agent's originate:
        // a client that dies meanwhile does not cancel it.
        let task = tokio::spawn(async move {
            inner.seen.lock().unwrap().hung += 1;
            for _ in 0..600 {
                if *inner.held_open.lock().unwrap() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let r = admit(&inner, req, PostMode::Normal).await;
            inner.seen.lock().unwrap().held_done += 1;
            r
        });
        return task
            .await
            .unwrap_or_else(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "held POST failed"));
    }
    let mode = *inner.post_mode.lock().unwrap();
    if mode == PostMode::HangBeforeRow {
        hold(&inner, mode).await;
        return err(StatusCode::SERVICE_UNAVAILABLE, "held, then refused");
    }
    admit(&inner, req, mode).await
}

/// Writes the row (through the store's claim rule, as the agent does) and
/// starts the call.
async fn admit(inner: &Arc<Inner>, req: CallRequest, mode: PostMode) -> Response {
    {
        let live = inner.live.lock().unwrap();
        if req.lead_id.is_some() && live.values().any(|l| *l == req.lead_id) {
            return err(StatusCode::CONFLICT, "lead already has a live call");
        }
    }
    let claim = match req.claim_token.as_deref().map(ClaimToken::parse) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return err(StatusCode::BAD_REQUEST, "claim_token: not a claim token"),
    };
    let id = SessionId::new_v4();
    let mut s = NewSession::outbound(id, now());
    s.campaign = req.campaign_id.map(CampaignId);
    s.lead = req.lead_id.map(LeadId);
    s.claim = claim;
    s.to = Party::new(req.to.clone()).ok();
    match inner.store.lock().unwrap().create_session(&s) {
        Ok(()) => {}
        Err(StoreError::ClaimNotHeld { .. }) => {
            inner.seen.lock().unwrap().claim_refused += 1;
            return err(
                StatusCode::CONFLICT,
                "the lead's claim is no longer held; nothing was dialled",
            );
        }
        Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
    {
        let mut live = inner.live.lock().unwrap();
        live.insert(id, req.lead_id);
        let mut seen = inner.seen.lock().unwrap();
        seen.max_live = seen.max_live.max(live.len());
        if let Some(l) = req.lead_id {
            *seen.posts_per_lead.entry(l).or_default() += 1;
        }
    }
    let script = (inner.script)(&req.to);
    tokio::spawn(play(Arc::clone(inner), id, script));
    if mode == PostMode::HangAfterRow {
        hold(inner, mode).await;
    }
    (
        StatusCode::ACCEPTED,
        Json(CallAccepted {
            id: id.to_string(),
            state: "created".into(),
        }),
    )
        .into_response()
}

/// Holds a request while the mode stays `mode` (at most 30 s).
async fn hold(inner: &Inner, mode: PostMode) {
    inner.seen.lock().unwrap().hung += 1;
    for _ in 0..600 {
        if *inner.post_mode.lock().unwrap() != mode {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn play(inner: Arc<Inner>, id: SessionId, script: Script) {
    let set = |st| {
        let _ = inner.store.lock().unwrap().set_state(id, st, now());
    };
    set(SessionState::Ringing);
    let finish = match script {
        Script::Answer(ring, talk) => {
            tokio::time::sleep(ring).await;
            set(SessionState::Answered);
            set(SessionState::Active);
            tokio::time::sleep(talk).await;
            Finish::ended(EndReason::CallerHangup, now())
        }
        Script::Voicemail(ring, talk) => {
            inner.voicemail.lock().unwrap().insert(id);
            tokio::time::sleep(ring).await;
            set(SessionState::Answered);
            set(SessionState::Active);
            tokio::time::sleep(talk).await;
            Finish::ended(EndReason::AgentHangup, now())
        }
        Script::Busy(after) => {
            tokio::time::sleep(after).await;
            let mut f = Finish::failed(EndReason::Busy, now());
            f.sip_status = Some(486);
            f
        }
        Script::NoAnswer(after) => {
            tokio::time::sleep(after).await;
            let mut f = Finish::failed(EndReason::NoAnswer, now());
            f.sip_status = Some(480);
            f
        }
    };
    let _ = inner.store.lock().unwrap().finish_session(id, &finish);
    inner.live.lock().unwrap().remove(&id);
}

async fn status(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if caller(&inner, &headers).is_none() {
        return err(StatusCode::UNAUTHORIZED, "missing or bad token");
    }
    let Ok(sid) = id.parse::<SessionId>() else {
        return err(StatusCode::NOT_FOUND, "no such call");
    };
    let Ok(s) = inner.store.lock().unwrap().get_session(sid) else {
        return err(StatusCode::NOT_FOUND, "no such call");
    };
    let live = inner.live.lock().unwrap().contains_key(&sid);
    let voicemail = inner.voicemail.lock().unwrap().contains(&sid);
    let outcome = outcome_of(s.state, s.end_reason, s.sip_status).map(|o| {
        if voicemail && o == Outcome::Completed {
            "voicemail".to_owned()
        } else {
            o.as_str().to_owned()
        }
    });
    Json(CallStatus {
        id,
        state: s.state.as_str().into(),
        live,
        direction: s.direction.as_str().into(),
        transport: Some(s.transport.as_str().into()),
        campaign_id: s.campaign.map(|c| c.0),
        lead_id: s.lead.map(|l| l.0),
        end_reason: s.end_reason.map(|r| r.as_str().into()),
        sip_status: s.sip_status,
        outcome,
        created_at: s.created_at.to_string(),
        answered_at: s.answered_at.map(|t| t.to_string()),
        ended_at: s.ended_at.map(|t| t.to_string()),
        duration_ms: s.duration.map(|d| d.as_millis() as u64),
    })
    .into_response()
}

impl FakeAgent {
    /// Starts a fake agent on 127.0.0.1 writing to the store at `url`.
    pub fn start(url: &str, script: impl Fn(&str) -> Script + Send + Sync + 'static) -> Self {
        let inner = Arc::new(Inner {
            store: Mutex::new(
                Store::open_url(url, &callbridge_crm_store::OpenOptions::default()).unwrap(),
            ),
            live: Mutex::new(HashMap::new()),
            voicemail: Mutex::new(std::collections::HashSet::new()),
            script: Box::new(script),
            unavailable: Mutex::new(false),
            post_mode: Mutex::new(PostMode::Normal),
            reject_tokens: Mutex::new(false),
            hold_next: Mutex::new(false),
            held_open: Mutex::new(false),
            seen: Mutex::new(Seen::default()),
        });
        let app = Router::new()
            .route("/api/calls", post(place))
            .route("/api/calls/{id}", get(status))
            .with_state(Arc::clone(&inner));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        FakeAgent {
            addr,
            inner,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer every POST with 503 + `Retry-After: 1` (or stop doing so).
    pub fn set_unavailable(&self, on: bool) {
        *self.inner.unavailable.lock().unwrap() = on;
    }

    /// How POSTs are answered from now on.
    pub fn set_post_mode(&self, mode: PostMode) {
        *self.inner.post_mode.lock().unwrap() = mode;
    }

    /// Holds the next POST before its row (counted in `hung`) until
    /// [`FakeAgent::release_held`] (at most 30 s), then acts on it as usual
    /// (`held_done`); later POSTs are not held.
    pub fn hold_next_post(&self) {
        *self.inner.held_open.lock().unwrap() = false;
        *self.inner.hold_next.lock().unwrap() = true;
    }

    /// Lets the held POST go on.
    pub fn release_held(&self) {
        *self.inner.held_open.lock().unwrap() = true;
    }

    /// Answer 401 to every request (or stop doing so).
    pub fn set_reject_tokens(&self, on: bool) {
        *self.inner.reject_tokens.lock().unwrap() = on;
    }

    /// What it saw so far.
    pub fn seen<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&self.inner.seen.lock().unwrap())
    }

    /// Calls live now.
    pub fn live(&self) -> usize {
        self.inner.live.lock().unwrap().len()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A script answering every call after 100 ms and ending it after `ms`.
pub fn answer(ms: u64) -> impl Fn(&str) -> Script + Send + Sync + 'static {
    move |_| Script::Answer(Duration::from_millis(100), Duration::from_millis(ms))
}

/// `campaign run NAME` against `agent`, polling fast and giving up on an
/// unreachable agent after 3 s.
pub fn run_args<'a>(name: &'a str, agent: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        name,
        "--agent",
        agent,
        "--poll",
        "50ms",
        "--agent-wait",
        "3s",
    ]
}
