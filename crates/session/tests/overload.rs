//! Admission by the media engine's load (issue 17, "Overload"): an engine
//! on a simulated clock whose ticks are all served late refuses new calls:
//! an INVITE gets 503 with the configured Retry-After, an originate
//! `ManagerError::Overloaded`, no session is created and both refusals
//! are counted in the manager's snapshot. And the engine's pacing: an
//! INVITE beyond the calls it takes per window waits (after its 100
//! Trying) for the next window and is answered; one that finds no window
//! within `admission_wait` gets 503; one cancelled while it waits is not
//! answered when the window comes.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_rtp::clock::SimClock;
use callbridge_rtp::engine::{AdmissionPolicy, EngineConfig, MediaEngine};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_invite_waits_for_the_next_window_and_one_that_finds_none_gets_503() {
    let clock = Arc::new(SimClock::new(Instant::now()));
    let cfg = EngineConfig {
        admission: AdmissionPolicy {
            step: 1,
            ..AdmissionPolicy::default()
        },
        ..EngineConfig::default()
    };
    let engine = MediaEngine::new(cfg, clock.clone()).unwrap();
    let e = engine.clone();
    let r = rig(fast_script(), move |c| {
        c.engine = Some(e);
        c.retry_after = Duration::from_secs(11);
        c.admission_wait = Duration::from_secs(1);
    })
    .await;
    let offer_for = |p: &raw::RawPeer| {
        raw::pcmu_offer(
            p.rtp.local_addr().unwrap().port(),
            "0",
            "a=rtpmap:0 PCMU/8000\r\n",
        )
    };
    // The engine's one call before its first window.
    let mut a = raw::RawPeer::new(r.manager.sip_addr(), "raw-paced-a@127.0.0.1").await;
    let offer = offer_for(&a);
    assert!(a.invite(&offer).await.is_ok(), "the first call is admitted");
    // The second is paced: 100 Trying, then it waits.
    let mut b = raw::RawPeer::new(r.manager.sip_addr(), "raw-paced-b@127.0.0.1").await;
    let inv = b.request(
        "INVITE",
        "z9hG4bK-paced-b",
        "",
        "application/sdp",
        &offer_for(&b),
    );
    b.send(&inv).await;
    let trying = b
        .next(Duration::from_secs(5), |t| t.starts_with("SIP/2.0 100"))
        .await;
    assert!(trying.is_some(), "100 Trying while the call waits");
    // A second of the simulated clock, a period at a time: the engine
    // measures its call (the call task takes its audio) and its window
    // lets the waiting INVITE in.
    for _ in 0..55 {
        clock.advance(PTIME);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resp = b
        .response("z9hG4bK-paced-b", Duration::from_secs(5))
        .await
        .expect("a final response for the paced INVITE");
    assert_eq!(raw::status(&resp), 200, "{resp}");
    // The third finds that window's budget spent and no other within
    // admission_wait: 503 with the Retry-After, after about a second.
    let mut c = raw::RawPeer::new(r.manager.sip_addr(), "raw-paced-c@127.0.0.1").await;
    let inv = c.request(
        "INVITE",
        "z9hG4bK-paced-c",
        "",
        "application/sdp",
        &offer_for(&c),
    );
    let sent = Instant::now();
    c.send(&inv).await;
    let resp = c
        .response("z9hG4bK-paced-c", Duration::from_secs(5))
        .await
        .expect("a final response for the third INVITE");
    assert_eq!(raw::status(&resp), 503, "{resp}");
    assert_eq!(raw::header(&resp, "retry-after"), Some("11"), "{resp}");
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "refused only after admission_wait: {:?}",
        sent.elapsed()
    );
    // A fourth, paced too, is cancelled while it waits: the SIP core
    // answers 487, and the window that comes next opens nothing for it.
    let mut d = raw::RawPeer::new(r.manager.sip_addr(), "raw-paced-d@127.0.0.1").await;
    let inv = d.request(
        "INVITE",
        "z9hG4bK-paced-d",
        "",
        "application/sdp",
        &offer_for(&d),
    );
    d.send(&inv).await;
    assert!(
        d.next(Duration::from_secs(5), |t| t.starts_with("SIP/2.0 100"))
            .await
            .is_some()
    );
    d.send(&cancel_of(&inv)).await;
    let resp = d
        .next(Duration::from_secs(5), |t| {
            t.starts_with("SIP/2.0 487") && t.contains("INVITE")
        })
        .await;
    assert!(
        resp.is_some(),
        "the SIP core ends the cancelled INVITE with 487"
    );
    for _ in 0..55 {
        clock.advance(PTIME);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answered = d
        .next(Duration::from_millis(1500), |t| {
            t.starts_with("SIP/2.0 2") && t.contains("INVITE")
        })
        .await;
    assert!(
        answered.is_none(),
        "a cancelled INVITE is not answered: {answered:?}"
    );
    let snap = r.manager.snapshot();
    assert_eq!(snap.engine.refused_overload, 1);
    assert_eq!(
        r.all_ids().len(),
        2,
        "sessions for the two admitted calls only"
    );
    r.manager.shutdown().await;
}

/// The CANCEL of `invite` (RFC 3261 section 9.1: its Request-URI, Via,
/// From, To, Call-ID and CSeq number).
fn cancel_of(invite: &str) -> String {
    let mut out = String::new();
    for (i, line) in invite.split("\r\n").enumerate() {
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&line.replacen("INVITE", "CANCEL", 1));
        } else if lower.starts_with("cseq:") {
            out.push_str(&line.replace("INVITE", "CANCEL"));
        } else if ["via:", "max-forwards:", "from:", "to:", "call-id:"]
            .iter()
            .any(|h| lower.starts_with(h))
        {
            out.push_str(line);
        } else {
            continue;
        }
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}
