//! Test support: a manager on loopback with the mock Gemini model and a
//! temporary store, and a small SIP caller with an RTP peer that plays
//! speech frames and captures what it hears.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use callbridge_crm_store::{SessionId, SessionRecord, Store};
use callbridge_llm_bridge::{
    AudioFormat, GeminiLive, OpenAiRealtime, RealtimeModel, SessionConfig,
};
use callbridge_llm_mock::ScriptBook;
use callbridge_llm_mock::clips;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_llm_mock::openai::{MockOpenAi, OpenAiScript};
use callbridge_rtp::clock::SystemClock;
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ids::{SeqNo, Ssrc};
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaEvent, MediaStream};
use callbridge_session::{FixedSummarizer, Manager, ManagerConfig};
use callbridge_sip::driver::{Driver, DriverConfig, Handle};
use callbridge_sip::random::os_rng;
use callbridge_sip::sdp::{self, LocalMedia};
use callbridge_sip::ua::{self, CallRef, Event, Originate};
use callbridge_sip::{NameAddr, Uri};
use tokio::sync::mpsc;

pub mod raw;

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Each test gets its own RTP port ranges.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(20_000);

pub fn port_range(n: u16) -> std::ops::RangeInclusive<u16> {
    let lo = NEXT_RANGE.fetch_add(n * 2 + 2, Ordering::SeqCst);
    lo..=lo + n * 2
}

/// The manager's SIP T1 in tests.
pub const SIP_T1: Duration = Duration::from_millis(50);

/// How long [`Rig::idle`] waits for the live calls to end.
pub const IDLE_WITHIN: Duration = Duration::from_secs(30);

/// How long a test waits for the greeting after the answer, or for a
/// reply: generous, because a loaded 2-core machine can take seconds to
/// set up a model session; the latency itself is measured elsewhere
/// (metrics tests, benches, the load tool), never asserted by a wait.
pub const AUDIO_WITHIN: Duration = Duration::from_secs(15);

pub struct Rig<M = MockGemini> {
    pub mock: M,
    pub manager: Manager,
    pub db: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

pub fn fast_machine() -> callbridge_session::lifecycle::Config {
    callbridge_session::lifecycle::Config {
        answer_wait: Duration::from_millis(1500),
        model_setup: Duration::from_secs(3),
        no_speech: Duration::from_secs(8),
        farewell_drain: Duration::from_secs(4),
        cleanup_join: Duration::from_secs(2),
        ..Default::default()
    }
}

pub async fn rig(script: GeminiScript, tweak: impl FnOnce(&mut ManagerConfig)) -> Rig {
    rig_book(ScriptBook::all(script), tweak).await
}

/// A rig whose mock Gemini follows `book` (connection by connection).
pub async fn rig_book(
    book: ScriptBook<GeminiScript>,
    tweak: impl FnOnce(&mut ManagerConfig),
) -> Rig {
    let mock = MockGemini::start_with(book).await.unwrap();
    let url = mock.url();
    rig_with(
        mock,
        url,
        SessionConfig::default(),
        Arc::new(GeminiLive::new()),
        tweak,
    )
    .await
}

/// A rig with the mock OpenAI Realtime model (µ-law both ways, as the
/// phone path uses it).
pub async fn rig_openai(
    script: OpenAiScript,
    tweak: impl FnOnce(&mut ManagerConfig),
) -> Rig<MockOpenAi> {
    let mock = MockOpenAi::start(script).await.unwrap();
    let url = mock.url();
    let mut model = SessionConfig::default();
    model.input_format = AudioFormat::Pcmu;
    model.output_format = AudioFormat::Pcmu;
    rig_with(mock, url, model, Arc::new(OpenAiRealtime::new()), tweak).await
}

/// A rig with the mock GPT-Live model (µ-law both ways, as the agent
/// configures it).
/// What the rigs' summarizer reports for each summary, as an OpenAI Chat
/// Completions answer's `usage` would.
pub const SUMMARY_USAGE: callbridge_llm_bridge::Usage = callbridge_llm_bridge::Usage {
    input_tokens: 200,
    output_tokens: 40,
    total_tokens: 240,
    split: None,
};

pub async fn rig_gpt_live(
    script: callbridge_llm_mock::gpt_live::GptLiveScript,
    tweak: impl FnOnce(&mut ManagerConfig),
) -> Rig<callbridge_llm_mock::gpt_live::MockGptLive> {
    rig_gpt_live_with(script, callbridge_llm_bridge::GptLive::new(), tweak).await
}

/// [`rig_gpt_live`] with the provider given (a delegation model).
pub async fn rig_gpt_live_with(
    script: callbridge_llm_mock::gpt_live::GptLiveScript,
    provider: callbridge_llm_bridge::GptLive,
    tweak: impl FnOnce(&mut ManagerConfig),
) -> Rig<callbridge_llm_mock::gpt_live::MockGptLive> {
    let mock = callbridge_llm_mock::gpt_live::MockGptLive::start(script)
        .await
        .unwrap();
    let url = mock.url();
    let mut model = SessionConfig::default();
    model.input_format = AudioFormat::Pcmu;
    model.output_format = AudioFormat::Pcmu;
    rig_with(mock, url, model, Arc::new(provider), tweak).await
}

async fn rig_with<M>(
    mock: M,
    url: String,
    mut model: SessionConfig,
    provider: Arc<dyn RealtimeModel>,
    tweak: impl FnOnce(&mut ManagerConfig),
) -> Rig<M> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let store = Store::open(&db).unwrap();
    model.endpoint = Some(url);
    model.model = "mock-model".into();
    let sip_bind = SocketAddr::new(LOCAL, 0);
    let mut cfg = ManagerConfig::new(sip_bind, LOCAL, port_range(64), model);
    cfg.machine = fast_machine();
    cfg.machine.rtp_inactivity = Some(Duration::from_secs(2));
    cfg.recordings_dir = Some(dir.path().to_path_buf());
    cfg.shutdown_drain = Duration::from_secs(2);
    cfg.join_timeout = Duration::from_secs(3);
    // A small T1 so Timer J (64*T1 = 3.2 s) passes quickly in tests;
    // T2 and T4 scaled with it.
    cfg.sip.timers.t1 = SIP_T1;
    cfg.sip.timers.t2 = SIP_T1 * 8;
    cfg.sip.timers.t4 = SIP_T1 * 10;
    cfg.sip.timers.d = SIP_T1 * 64;
    tweak(&mut cfg);
    let manager = Manager::start(
        cfg,
        provider,
        store,
        Some(Arc::new(
            FixedSummarizer::new("a fixed summary").with_usage("openai", SUMMARY_USAGE),
        )),
    )
    .await
    .unwrap();
    Rig {
        mock,
        manager,
        db,
        dir,
    }
}

impl<M> Rig<M> {
    /// Waits (bounded by [`IDLE_WITHIN`], generous for a loaded machine)
    /// until no call is live, then until the store has written everything
    /// queued. Returns early; a call still live after the bound is left to
    /// the test's own assertions.
    pub async fn idle(&self) {
        let deadline = tokio::time::Instant::now() + IDLE_WITHIN;
        loop {
            let s = self.manager.snapshot();
            if (s.calls.is_empty() && s.call_tasks == 0) || tokio::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.manager.flush_store().await;
    }

    /// Waits until the SIP transaction table is empty, at most Timer J
    /// (64*T1, the longest a transaction may linger after its call) plus
    /// a margin for a loaded machine; returns the count left.
    pub async fn sip_transactions_after_timer_j(&self) -> usize {
        self.sip_transactions_within(SIP_T1 * 64 + Duration::from_secs(10))
            .await
    }

    /// Waits until the SIP transaction table is empty, at most `within`;
    /// returns the count left.
    pub async fn sip_transactions_within(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let n = self.manager.sip_transactions().await.unwrap();
            if n == 0 || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn record(&self, id: SessionId) -> SessionRecord {
        Store::open(&self.db).unwrap().load_session(id).unwrap()
    }

    pub fn all_ids(&self) -> Vec<SessionId> {
        let store = Store::open(&self.db).unwrap();
        store
            .list_sessions(&Default::default(), 1000, None)
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.id)
            .collect()
    }
}

/// The one media engine every test caller's streams run on (the system
/// clock): a caller per call would add a thread per call to the machine
/// the agent under test shares.
pub fn callers_engine() -> MediaEngine {
    static ENGINE: std::sync::OnceLock<MediaEngine> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| MediaEngine::new(EngineConfig::default(), Arc::new(SystemClock)).unwrap())
        .clone()
}

/// A SIP caller with one RTP peer.
pub struct Caller {
    pub addr: SocketAddr,
    pub sip: Handle,
    pub events: mpsc::Receiver<Event>,
    pub pool: PortPool,
    /// The media engine all test callers share (the system clock).
    pub engine: MediaEngine,
    driver: tokio::task::JoinHandle<()>,
}

pub struct Leg {
    pub call: CallRef,
    pub media: MediaStream,
}

impl Caller {
    pub async fn new() -> Caller {
        let cfg = DriverConfig::new(
            SocketAddr::new(LOCAL, 0),
            ua::Config::new(SocketAddr::new(LOCAL, 0)),
        );
        let (driver, sip, events) = Driver::bind(cfg, os_rng()).await.unwrap();
        let addr = driver.local_addr();
        let driver = tokio::spawn(async move {
            let _ = driver.run(std::future::pending::<()>()).await;
        });
        let pool = PortPool::new(PortPoolConfig {
            bind_ip: LOCAL,
            range: port_range(64),
            rtcp: false,
        })
        .unwrap();
        let engine = callers_engine();
        Caller {
            addr,
            sip,
            events,
            pool,
            engine,
            driver,
        }
    }

    /// Answers an INVITE the manager sent (an outbound call) with PCMU
    /// on a new RTP stream of this peer, SSRC `ssrc`; returns the stream.
    pub async fn answer_offer(&self, inc: &ua::IncomingCall, ssrc: u32) -> MediaStream {
        let media = MediaStream::open(
            &self.engine,
            &self.pool,
            MediaConfig::new(Law::MuLaw, None, Ssrc(ssrc), SeqNo(1), 0),
        )
        .unwrap();
        let local = LocalMedia::new(LOCAL, media.local_addr().port());
        let offer = sdp::Session::parse(&inc.offer).unwrap();
        let (answer, n) = sdp::answer(&offer, &local).unwrap();
        media.set_remote(n.remote_rtp);
        self.sip.answer(inc.call, answer.to_bytes()).await.unwrap();
        media
    }

    /// The caller's SIP address.
    pub async fn sip_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends an INVITE to the manager; returns the leg (not answered yet).
    /// Dials the manager, waits for the answer, hears the greeting and
    /// waits until it has ended: the start of most call tests.
    pub async fn dial_through_greeting(&mut self, manager: SocketAddr) -> Leg {
        let mut leg = self.dial(manager).await;
        assert!(self.answered(&leg).await, "call answered");
        assert!(
            hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
            "greeting heard"
        );
        assert!(
            until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await,
            "greeting ends"
        );
        leg
    }

    pub async fn dial(&self, manager: SocketAddr) -> Leg {
        self.dial_user(manager, "agent").await
    }

    /// Dials `user` (the called number) at `manager`.
    pub async fn dial_user(&self, manager: SocketAddr, user: &str) -> Leg {
        let media = MediaStream::open(
            &self.engine,
            &self.pool,
            MediaConfig::new(Law::MuLaw, None, Ssrc(7), SeqNo(1), 0),
        )
        .unwrap();
        let local = LocalMedia::new(LOCAL, media.local_addr().port());
        let offer = sdp::make_offer(&local, sdp::Direction::SendRecv).to_bytes();
        let to = Uri::parse(&Bytes::from(format!("sip:{user}@{manager}"))).unwrap();
        let from = Uri::parse(&Bytes::from_static(b"sip:+15550001111@127.0.0.1")).unwrap();
        let call = self
            .sip
            .originate(Originate {
                to,
                from: NameAddr::new(from),
                target: manager,
                offer,
                credentials: None,
                extra_headers: Vec::new(),
            })
            .await
            .unwrap();
        Leg { call, media }
    }

    /// The next event of `call` within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits (bounded, 20 s) for the answer and points the RTP peer at
    /// the agent.
    pub async fn answered(&mut self, leg: &Leg) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Event::Answered { call, answer, .. }) if call == leg.call => {
                    let a = sdp::Session::parse(&answer).unwrap();
                    let m = a.media.first().unwrap();
                    let ip = LOCAL;
                    leg.media.set_remote(Some(SocketAddr::new(ip, m.port)));
                    return true;
                }
                Some(Event::Failed { .. }) | None => return false,
                Some(_) => {}
            }
        }
    }

    /// Waits for the end of `call`; returns the event.
    pub async fn ended(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(e @ (Event::Ended { .. } | Event::Failed { .. })) => return Some(e),
                Some(_) => {}
                None => return None,
            }
        }
    }

    pub async fn stop(self) {
        self.driver.abort();
        let _ = self.driver.await;
    }
}

pub use callbridge_audio::level::rms;

/// Receives frames until one is louder than `level`, within `within`;
/// returns the number of ticks waited.
pub async fn hear(media: &mut MediaStream, level: f64, within: Duration) -> Option<u32> {
    let mut ticks = 0;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, media.recv()).await {
            Ok(Some(MediaEvent::Audio { pcm, .. })) => {
                ticks += 1;
                if rms(&pcm) > level {
                    return Some(ticks);
                }
            }
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// Receives frames until `quiet` consecutive frames are silent.
pub async fn until_quiet(media: &mut MediaStream, quiet: u32, within: Duration) -> bool {
    let mut run = 0;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, media.recv()).await {
            Ok(Some(MediaEvent::Audio { pcm, .. })) => {
                if rms(&pcm) < 50.0 {
                    run += 1;
                    if run >= quiet {
                        return true;
                    }
                } else {
                    run = 0;
                }
            }
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
}

/// Receives frames until `quiet` consecutive frames are silent, within
/// `within`; returns whether that happened and how many loud frames (RMS
/// above 300) came before.
pub async fn count_loud_until_quiet(
    media: &mut MediaStream,
    quiet: u32,
    within: Duration,
) -> (bool, usize) {
    let (mut run, mut loud) = (0, 0);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, media.recv()).await {
            Ok(Some(MediaEvent::Audio { pcm, .. })) => {
                let level = rms(&pcm);
                if level > 300.0 {
                    loud += 1;
                }
                if level < 50.0 {
                    run += 1;
                    if run >= quiet {
                        return (true, loud);
                    }
                } else {
                    run = 0;
                }
            }
            Ok(Some(_)) => {}
            _ => return (false, loud),
        }
    }
}

/// Plays the reply clip (8 kHz) as the caller's speech, then returns.
pub async fn speak(media: &MediaStream) {
    let pcm = clips::reply().samples_at(8000);
    for chunk in pcm.chunks(160) {
        let mut f = [0i16; 160];
        f[..chunk.len()].copy_from_slice(chunk);
        media.play(f).await.unwrap();
    }
}

/// Waits (bounded, 15 s) until the process has `want` file descriptors:
/// sockets closed by tasks that are ending (the mock model's side of a
/// WebSocket, a media task) go a moment after the call has left the
/// registry. Returns the last count.
pub async fn fds_back_to(want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let n = fd_count();
        if n == want || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn fast_script() -> GeminiScript {
    GeminiScript {
        playback_speed: 4.0,
        chunk_ms: 100,
        ..GeminiScript::default()
    }
}
