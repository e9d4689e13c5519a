//! Router tests, in-process with `tower::ServiceExt::oneshot`: a real
//! `Manager` on loopback with the callbridge-llm-mock model, a temporary store
//! with one user per role (and a second operator), and for outbound calls
//! a SIP callee on loopback that rings or answers busy.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

// --- issue 19 (amd) ---
mod amd;
// --- end issue 19 (amd) ---
mod calls;
mod carrier;
mod console;
mod erase;
mod layers;
mod limits;
mod live;
mod openapi;
mod probes;
mod reads;
mod shared_recordings;
mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use callbridge_crm_store::jiff::{SignedDuration, Timestamp};
use callbridge_crm_store::{
    ApiToken, CampaignId, CampaignSettings, NewSession, PersonName, Role, SessionId, Store, UserId,
};
use callbridge_llm_bridge::{GeminiLive, SessionConfig};
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_session::{Manager, ManagerConfig};
use callbridge_sip::StatusCode as SipStatus;
use callbridge_sip::driver::{Driver, DriverConfig};
use callbridge_sip::random::os_rng;
use callbridge_sip::ua::{self, Event};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::{AppState, Outbound, State};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Each rig gets its own RTP ports (busy ones are skipped by the pool).
static NEXT_PORTS: AtomicU16 = AtomicU16::new(43_000);

/// What the test callee does with an INVITE.
#[derive(Debug, Clone, Copy)]
pub enum Callee {
    /// 180, then waits (until CANCEL).
    Ring,
    /// 486 Busy Here.
    Busy,
}

pub struct Rig {
    pub app: Router,
    /// The console's sign-in sessions (to age them).
    pub console: Arc<super::console::table::Table>,
    pub manager: Manager,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    pub admin: String,
    pub operator: String,
    pub operator_id: UserId,
    pub other: String,
    pub other_id: UserId,
    pub viewer: String,
    pub viewer_id: UserId,
    /// The To user part of every INVITE the callee got.
    pub invites: mpsc::Receiver<String>,
    _mock: MockGemini,
    _callee: tokio::task::JoinHandle<()>,
}

/// A SIP UA on loopback that treats every INVITE as `mode` says.
async fn callee(
    mode: Callee,
) -> (
    SocketAddr,
    mpsc::Receiver<String>,
    tokio::task::JoinHandle<()>,
) {
    let cfg = DriverConfig::new(
        SocketAddr::new(LOCAL, 0),
        ua::Config::new(SocketAddr::new(LOCAL, 0)),
    );
    let (driver, sip, mut events) = Driver::bind(cfg, os_rng()).await.unwrap();
    let addr = driver.local_addr();
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let run = driver.run(std::future::pending::<()>());
        let handle = async move {
            while let Some(ev) = events.recv().await {
                if let Event::IncomingCall(inc) = ev {
                    let user = inc
                        .to
                        .uri()
                        .user()
                        .map(|u| String::from_utf8_lossy(u).into_owned())
                        .unwrap_or_default();
                    let _ = tx.try_send(user);
                    let _ = match mode {
                        Callee::Ring => sip.ring(inc.call).await,
                        Callee::Busy => sip.reject(inc.call, SipStatus::BUSY_HERE).await,
                    };
                }
            }
        };
        tokio::select! {
            _ = run => {}
            () = handle => {}
        }
    });
    (addr, rx, task)
}

/// The router over `manager` with the store at `db`.
pub fn app(manager: &Manager, db: &Path, recordings: &Path, outbound: Outbound) -> Router {
    super::router(state(manager, db, recordings, outbound))
}

/// The handlers' state over `manager` with the store at `db`.
pub fn state(manager: &Manager, db: &Path, recordings: &Path, outbound: Outbound) -> AppState {
    Arc::new(State {
        manager: manager.clone(),
        store: callbridge_crm_store::StoreAt::sqlite(db),
        recordings_dir: Some(recordings.to_path_buf()),
        started: Instant::now(),
        provider: "mock".into(),
        outbound,
        carrier: None,
        console: Arc::default(),
        listen: false,
        profiles: None,
    })
}

fn user(store: &mut Store, name: &str, role: Role) -> (String, UserId) {
    let token = ApiToken::generate().unwrap();
    let id = store
        .create_user(
            &PersonName::new(name).unwrap(),
            role,
            &token,
            Timestamp::now(),
        )
        .unwrap();
    (token.expose(), id)
}

pub async fn rig(mode: Callee, tweak: impl FnOnce(&mut ManagerConfig)) -> Rig {
    let mock = MockGemini::start(GeminiScript::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let mut store = Store::open(&db).unwrap();
    let (admin, _) = user(&mut store, "admin", Role::Admin);
    let (operator, operator_id) = user(&mut store, "op", Role::AgentOperator);
    let (other, other_id) = user(&mut store, "other", Role::AgentOperator);
    let (viewer, viewer_id) = user(&mut store, "viewer", Role::Viewer);
    let mut model = SessionConfig::default();
    model.endpoint = Some(mock.url());
    model.model = "mock-model".into();
    let lo = NEXT_PORTS.fetch_add(40, Ordering::SeqCst);
    let mut cfg = ManagerConfig::new(SocketAddr::new(LOCAL, 0), LOCAL, lo..=lo + 38, model);
    cfg.max_calls = 4;
    cfg.shutdown_drain = Duration::from_millis(500);
    cfg.join_timeout = Duration::from_secs(2);
    let t1 = Duration::from_millis(50);
    cfg.sip.timers.t1 = t1;
    cfg.sip.timers.t2 = t1 * 8;
    cfg.sip.timers.t4 = t1 * 10;
    cfg.sip.timers.d = t1 * 64;
    tweak(&mut cfg);
    let manager = Manager::start(cfg, Arc::new(GeminiLive::new()), store, None)
        .await
        .unwrap();
    let (target, invites, callee_task) = callee(mode).await;
    let outbound = Outbound {
        target: Some(target.into()),
        domain: None,
        from: "+15550100000".into(),
        transport: Default::default(),
    };
    let st = state(&manager, &db, dir.path(), outbound);
    Rig {
        app: super::router(st.clone()),
        console: st.console.clone(),
        manager,
        db,
        dir,
        admin,
        operator,
        operator_id,
        other,
        other_id,
        viewer,
        viewer_id,
        invites,
        _mock: mock,
        _callee: callee_task,
    }
}

/// An answer: status, headers and body bytes.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn json_as<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not the type ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error` of a JSON error body (asserts it is one).
    pub fn error(&self) -> String {
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "error bodies are JSON"
        );
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {}", self.json()))
            .to_owned()
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// Sends one request through `app`.
pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// `POST /api/calls` with a JSON body.
pub fn call_request(token: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/calls")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

impl Rig {
    /// Sends one request through the router.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        send(&self.app, req).await
    }

    /// `method uri` with `token` (if any) and no body.
    pub async fn req(&self, method: Method, uri: &str, token: Option<&str>) -> Answer {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Answer {
        self.req(Method::GET, uri, Some(token)).await
    }

    /// `POST /api/calls` with a JSON body.
    pub async fn post_call(&self, token: &str, body: Value) -> Answer {
        self.send(call_request(token, &body)).await
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db).unwrap()
    }

    /// A campaign owned by `owner`.
    pub fn campaign(&self, name: &str, owner: Option<UserId>) -> CampaignId {
        let mut s = CampaignSettings::new(name, "gemini");
        s.owner = owner;
        self.store().create_campaign(&s, Timestamp::now()).unwrap()
    }

    /// A stored inbound session created `age_s` seconds ago.
    pub fn session(
        &self,
        campaign: Option<CampaignId>,
        owner: Option<UserId>,
        age_s: i64,
    ) -> SessionId {
        let id = SessionId::new_v4();
        let at = Timestamp::now() - SignedDuration::from_secs(age_s);
        let mut s = NewSession::inbound(id, at);
        s.campaign = campaign;
        s.owner = owner;
        s.from = Some(callbridge_crm_store::Party::new("+15550001111").unwrap());
        self.store().create_session(&s).unwrap();
        id
    }

    /// Waits (bounded) until `id` is no longer live in the manager.
    pub async fn until_not_live(&self, id: SessionId) {
        for _ in 0..400 {
            if !self.manager.snapshot().calls.iter().any(|c| c.id == id) {
                self.manager.flush_store().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("call {id} still live after 4 s");
    }
}
