//! The engine's admission on a simulated clock (issue 17, "Overload"): a
//! burst at an idle engine gets one step of calls, the next step waits
//! for a window that measured them, an overloaded window stops admission
//! and two in a row leave a ceiling under the calls they were overloaded
//! with; calls shorter than a window are never paced. The
//! clock moves only when the test moves it; each period's packets are
//! awaited at the peers, so the engine has served the period before the
//! test looks. Waits are bounded.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_rtp::clock::SimClock;
use callbridge_rtp::engine::{AdmissionPolicy, EngineConfig, MediaEngine, Refusal};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ports::PortPool;
use callbridge_rtp::stream::{MediaConfig, MediaStream, PTIME};
use callbridge_rtp::{SeqNo, Ssrc};
use tokio::net::UdpSocket;

use support::{peer, pool};

/// An engine on a simulated clock taking three calls a window.
fn engine(clock: &Arc<SimClock>) -> MediaEngine {
    let cfg = EngineConfig {
        admission: AdmissionPolicy {
            step: 3,
            ..AdmissionPolicy::default()
        },
        ..EngineConfig::default()
    };
    MediaEngine::new(cfg, clock.clone()).unwrap()
}

/// Three streams, each sending to its own peer socket.
async fn three_calls(engine: &MediaEngine, pool: &PortPool) -> Vec<(MediaStream, UdpSocket)> {
    let mut calls = Vec::new();
    for i in 0..3u32 {
        let (peer, a) = peer().await;
        let cfg = MediaConfig::new(Law::MuLaw, Some(a), Ssrc(i), SeqNo(0), 0);
        calls.push((MediaStream::open(engine, pool, cfg).unwrap(), peer));
    }
    calls
}

/// Moves the clock `periods` periods, waiting after each for a packet at
/// every peer (the engine served that period), and takes the calls'
/// events as a call task would when `keep_up` (call tasks that do not
/// are a backlog: overload).
async fn run(
    clock: &SimClock,
    calls: &mut [(MediaStream, UdpSocket)],
    periods: usize,
    keep_up: bool,
) {
    let mut buf = [0u8; 1500];
    for _ in 0..periods {
        clock.advance(PTIME);
        for (stream, peer) in calls.iter_mut() {
            tokio::time::timeout(Duration::from_secs(10), peer.recv(&mut buf))
                .await
                .expect("the period's packet within 10 s")
                .unwrap();
            if keep_up {
                take_events(stream).await;
            }
        }
    }
}

/// The events a stream has ready.
async fn take_events(stream: &mut MediaStream) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, stream.recv()).await {}
}

#[tokio::test]
async fn a_burst_at_an_idle_engine_gets_one_step_and_the_next_after_a_window() {
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = engine(&clock);
    let pool = pool(44700, 16, false);
    // Ten INVITEs at once: three are admitted, seven paced.
    let verdicts: Vec<_> = (0..10).map(|_| engine.admit()).collect();
    assert_eq!(verdicts.iter().filter(|v| v.is_ok()).count(), 3);
    assert!(verdicts[3..].iter().all(|v| *v == Err(Refusal::Paced)));
    let mut calls = three_calls(&engine, &pool).await;
    // Half a second: no window yet, still paced.
    run(&clock, &mut calls, 25, true).await;
    assert_eq!(engine.admit(), Err(Refusal::Paced));
    // A window that measured the three (1 s, published at the 50th
    // period; the 70th is awaited so its pass is over): three more.
    run(&clock, &mut calls, 45, true).await;
    assert_eq!(engine.load().calls, 3);
    let verdicts: Vec<_> = (0..5).map(|_| engine.admit()).collect();
    assert_eq!(
        verdicts,
        [
            Ok(()),
            Ok(()),
            Ok(()),
            Err(Refusal::Paced),
            Err(Refusal::Paced)
        ]
    );
    assert_eq!(engine.admission_ceiling(), None);
    for (s, _) in calls {
        s.close().await;
    }
}

#[tokio::test]
async fn an_overload_stops_admission_and_leaves_a_ceiling_under_its_calls() {
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = engine(&clock);
    let pool = pool(44740, 16, false);
    for _ in 0..3 {
        assert_eq!(engine.admit(), Ok(()));
    }
    let mut calls = three_calls(&engine, &pool).await;
    // Call tasks that take none of their audio, until a window says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.admits() && Instant::now() < deadline {
        run(&clock, &mut calls, 10, false).await;
    }
    assert!(!engine.admits(), "call tasks behind overload the engine");
    assert_eq!(engine.admit(), Err(Refusal::Overloaded));
    assert_eq!(engine.admission_ceiling(), None, "one window only pauses");
    // A second window still behind: an overload, and a ceiling.
    run(&clock, &mut calls, 55, false).await;
    assert_eq!(engine.admit(), Err(Refusal::Overloaded));
    assert_eq!(engine.admission_ceiling(), Some(2));
    // They catch up: periods until a healthy window.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !engine.admits() && Instant::now() < deadline {
        run(&clock, &mut calls, 10, true).await;
    }
    assert!(engine.admits(), "on-time periods give a healthy window");
    // Three calls overloaded it: the ceiling is two (3 x 0.95), raised by
    // one on the healthy window whose calls reach it. Three calls are at
    // that ceiling: refused until one ends.
    assert_eq!(engine.admit(), Err(Refusal::Ceiling));
    assert_eq!(engine.admission_ceiling(), Some(3));
    assert!(engine.at_ceiling());
    let (s, _) = calls.pop().unwrap();
    s.close().await;
    // A pass after the one that let it go has counted the calls again.
    run(&clock, &mut calls, 2, true).await;
    assert_eq!(engine.load().calls, 2);
    assert!(!engine.at_ceiling());
    assert_eq!(engine.admit(), Ok(()));
    for (s, _) in calls {
        s.close().await;
    }
}

#[tokio::test]
async fn calls_shorter_than_a_window_one_after_another_are_never_paced() {
    // Each call ends before the engine completes a window: the thread
    // going idle renews the budget, or the fourth call would be paced.
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = engine(&clock);
    let pool = pool(44780, 8, false);
    let (_peer, a) = peer().await;
    for i in 0..7u32 {
        assert_eq!(engine.admit(), Ok(()), "call {i}");
        let cfg = MediaConfig::new(Law::MuLaw, Some(a), Ssrc(i), SeqNo(0), 0);
        let stream = MediaStream::open(&engine, &pool, cfg).unwrap();
        clock.advance(PTIME);
        stream.close().await;
        // The pass that let it go has ended once the thread is idle again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.paces() && Instant::now() < deadline {
            clock.advance(PTIME);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(engine.admission_ceiling(), None);
}
