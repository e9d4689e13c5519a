//! Admission by the media engine's load (issue 17, "Overload"): an engine
//! on a simulated clock whose ticks are all served late refuses new calls:
//! an INVITE gets 503 with the configured Retry-After, an originate
//! `ManagerError::Overloaded`, no session is created and both refusals
//! are counted in the manager's snapshot.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_rtp::clock::SimClock;
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaStream, PTIME};
use callbridge_rtp::{SeqNo, Ssrc};
use callbridge_session::ManagerError;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_engine_refuses_new_calls_with_503_and_retry_after_and_counts_them() {
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = MediaEngine::new(EngineConfig::default(), clock.clone()).unwrap();
    let e = engine.clone();
    let r = rig(fast_script(), move |c| {
        c.engine = Some(e);
        c.retry_after = Duration::from_secs(17);
    })
    .await;
    assert!(engine.admits(), "an idle engine admits");
    // One call whose every tick is served 12 ms or more late (the engine
    // thread wakes only when the simulated clock moves), for a window.
    let pool = PortPool::new(PortPoolConfig {
        bind_ip: LOCAL,
        range: port_range(4),
        rtcp: false,
    })
    .unwrap();
    let peer = std::net::UdpSocket::bind((LOCAL, 0)).unwrap();
    let cfg = MediaConfig::new(
        Law::MuLaw,
        Some(peer.local_addr().unwrap()),
        Ssrc(1),
        SeqNo(0),
        0,
    );
    let stream = MediaStream::open(&engine, &pool, cfg).unwrap();
    let late = PTIME + Duration::from_millis(12);
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.admits() && Instant::now() < deadline {
        clock.advance(late);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(!engine.admits(), "late ticks make the engine refuse calls");
    assert!(engine.load().late_p99 >= Duration::from_millis(10));

    // An INVITE: 503 with the configured Retry-After.
    let mut peer_sip = raw::RawPeer::new(r.manager.sip_addr(), "raw-overload@127.0.0.1").await;
    let offer = raw::pcmu_offer(
        peer_sip.rtp.local_addr().unwrap().port(),
        "0",
        "a=rtpmap:0 PCMU/8000\r\n",
    );
    let inv = peer_sip.request("INVITE", "z9hG4bK-overload", "", "application/sdp", &offer);
    peer_sip.send(&inv).await;
    let resp = peer_sip
        .response("z9hG4bK-overload", Duration::from_secs(5))
        .await
        .expect("a final response to the INVITE");
    assert_eq!(raw::status(&resp), 503, "{resp}");
    assert_eq!(raw::header(&resp, "retry-after"), Some("17"), "{resp}");

    // An originate: refused before anything is dialled or stored.
    let req = callbridge_session::OriginateRequest::new(
        "sip:+15550002222@127.0.0.1:9",
        "sip:agent@127.0.0.1",
        "127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap(),
    );
    assert!(matches!(
        r.manager.originate(req).await,
        Err(ManagerError::Overloaded)
    ));
    let snap = r.manager.snapshot();
    assert_eq!(snap.engine.refused_overload, 2);
    assert!(snap.engine.late_p99_us >= 10_000, "{:?}", snap.engine);
    assert_eq!(snap.engine.headroom_permille, 0);
    assert!(r.all_ids().is_empty(), "no session for a refused call");
    stream.close().await;
    r.manager.shutdown().await;
}
