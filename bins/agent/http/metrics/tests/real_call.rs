//! The page after one real call: a SIP caller with an RTP peer on
//! loopback dials the manager (mock Gemini, temporary store), hears the
//! greeting, speaks, hears the reply and hangs up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callbridge_audio::level::rms;
use callbridge_crm_store::Store;
use callbridge_llm_bridge::{GeminiLive, SessionConfig};
use callbridge_llm_mock::clips;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ids::{SeqNo, Ssrc};
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaEvent, MediaStream};
use callbridge_session::{Manager, ManagerConfig};
use callbridge_sip::driver::{Driver, DriverConfig};
use callbridge_sip::random::os_rng;
use callbridge_sip::sdp::{self, LocalMedia};
use callbridge_sip::ua::{self, Event, Originate};
use callbridge_sip::{NameAddr, Uri};

use super::{check, value};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Receives ticks until one is louder than 300 (`loud`) or until 25 in a
/// row (half a second) are silent (`!loud`), within `within`.
async fn until(media: &mut MediaStream, loud: bool, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut quiet = 0;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, media.recv()).await {
        if let MediaEvent::Audio { pcm, .. } = ev {
            let level = rms(&pcm);
            quiet = if level < 50.0 { quiet + 1 } else { 0 };
            if (loud && level > 300.0) || (!loud && quiet >= 25) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_one_real_call_the_page_counts_it_and_the_gauges_are_back_to_zero() {
    let mock = MockGemini::start(GeminiScript {
        playback_speed: 4.0,
        chunk_ms: 100,
        ..GeminiScript::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("crm.db")).unwrap();
    let mut model = SessionConfig::default();
    model.endpoint = Some(mock.url());
    model.model = "mock-model".into();
    let mut cfg = ManagerConfig::new(SocketAddr::new(LOCAL, 0), LOCAL, 43_000..=43_063, model);
    cfg.machine.answer_wait = Duration::from_millis(1500);
    cfg.machine.cleanup_join = SECS(2);
    cfg.join_timeout = SECS(3);
    cfg.shutdown_drain = SECS(1);
    let manager = Manager::start(cfg, Arc::new(GeminiLive::new()), store, None)
        .await
        .unwrap();

    // The caller.
    let (driver, sip, mut events) = Driver::bind(
        DriverConfig::new(
            SocketAddr::new(LOCAL, 0),
            ua::Config::new(SocketAddr::new(LOCAL, 0)),
        ),
        os_rng(),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(async move {
        let _ = driver.run(std::future::pending::<()>()).await;
    });
    let pool = PortPool::new(PortPoolConfig {
        bind_ip: LOCAL,
        range: 43_100..=43_131,
        rtcp: false,
    })
    .unwrap();
    let engine = callbridge_rtp::engine::MediaEngine::new(
        callbridge_rtp::engine::EngineConfig::default(),
        std::sync::Arc::new(callbridge_rtp::clock::SystemClock),
    )
    .unwrap();
    let mut media = MediaStream::open(
        &engine,
        &pool,
        MediaConfig::new(Law::MuLaw, None, Ssrc(7), SeqNo(1), 0),
    )
    .unwrap();
    let local = LocalMedia::new(LOCAL, media.local_addr().port());
    let offer = sdp::make_offer(&local, sdp::Direction::SendRecv).to_bytes();
    let target = manager.sip_addr();
    let call = sip
        .originate(Originate {
            to: Uri::parse(&Bytes::from(format!("sip:agent@{target}"))).unwrap(),
            from: NameAddr::new(
                Uri::parse(&Bytes::from_static(b"sip:+15550001111@127.0.0.1")).unwrap(),
            ),
            target,
            offer,
            credentials: None,
            extra_headers: Vec::new(),
        })
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(SECS(20), events.recv()).await {
            Ok(Some(Event::Answered {
                call: c, answer, ..
            })) if c == call => {
                let a = sdp::Session::parse(&answer).unwrap();
                let port = a.media.first().unwrap().port;
                media.set_remote(Some(SocketAddr::new(LOCAL, port)));
                break;
            }
            Ok(Some(Event::Failed { .. })) | Ok(None) | Err(_) => panic!("not answered"),
            Ok(Some(_)) => {}
        }
    }
    // Generous bounds: a loaded machine is slow, not wrong (the latency
    // figures are checked below, not by these waits).
    assert!(until(&mut media, true, SECS(15)).await, "greeting heard");
    assert!(until(&mut media, false, SECS(15)).await, "greeting ends");
    for chunk in clips::reply().samples_at(8000).chunks(160) {
        let mut f = [0i16; 160];
        f[..chunk.len()].copy_from_slice(chunk);
        media.play(f).await.unwrap();
    }
    assert!(until(&mut media, true, SECS(15)).await, "reply heard");
    assert!(until(&mut media, false, SECS(15)).await, "reply ends");
    sip.hangup(call).await.unwrap();
    media.close().await;
    let deadline = tokio::time::Instant::now() + SECS(30);
    loop {
        let s = manager.snapshot();
        if (s.calls.is_empty() && s.call_tasks == 0) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let page = super::super::Page::new(&manager).render().unwrap();
    let f = check(&page).unwrap_or_else(|e| panic!("{e}\n{page}"));
    let v = |n: &str, l: &[(&str, &str)]| value(&f, n, l).unwrap_or(f64::NAN);
    assert_eq!(
        v(
            "callbridge_calls_started_total",
            &[
                ("direction", "inbound"),
                ("transport", "sip"),
                ("provider", "gemini")
            ]
        ),
        1.0
    );
    assert_eq!(
        v(
            "callbridge_calls_started_total",
            &[
                ("direction", "outbound"),
                ("transport", "sip"),
                ("provider", "gemini")
            ]
        ),
        0.0
    );
    assert_eq!(
        v(
            "callbridge_calls_ended_total",
            &[
                ("direction", "inbound"),
                ("reason", "caller-hangup"),
                ("transport", "sip"),
                ("provider", "gemini")
            ]
        ),
        1.0
    );
    for g in [
        "callbridge_active_calls",
        "callbridge_call_tasks",
        "callbridge_media_sockets",
        "callbridge_model_sessions",
        "callbridge_jitter_buffer_depth_seconds",
    ] {
        assert_eq!(v(g, &[]), 0.0, "{g} back to zero after the call");
    }
    assert!(v("callbridge_rtp_packets_in_total", &[]) > 50.0);
    assert!(v("callbridge_rtp_packets_out_total", &[]) > 50.0);
    for h in [
        "callbridge_answer_to_first_audio_seconds",
        "callbridge_caller_stop_to_agent_audio_seconds",
        "callbridge_call_duration_seconds",
    ] {
        assert_eq!(v(&format!("{h}_count"), &[]), 1.0, "{h}: one observation");
        assert!(v(&format!("{h}_sum"), &[]) > 0.0, "{h}: a positive sum");
    }
    let first = v("callbridge_answer_to_first_audio_seconds_sum", &[]);
    assert!(first < 1.0, "pre-warmed greeting within 1 s: {first}");
    eprintln!("{page}");
    manager.shutdown().await;
    driver.abort();
    let _ = driver.await;
    drop(mock);
}
