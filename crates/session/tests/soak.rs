//! Many calls in a row and at once (failure table: "after N calls the
//! server needs a restart"): afterwards the registry is empty, the task,
//! socket and model gauges are zero, the process has the file descriptors
//! it started with, and the mock saw one setup and one clean close per
//! call. Alone in its own test binary so the fd count is this test's.

mod support;

use std::time::{Duration, Instant};

use callbridge_crm_store::EndReason;
use support::*;

/// Sequential calls (the issue asks 300; see the report for the timing).
const SEQUENTIAL: usize = 300;
/// Concurrent calls (the issue asks 50).
const CONCURRENT: usize = 50;
/// SIP T1 here: Timer H (64*T1, how long the answer waits for the
/// caller's ACK) must outlast a loaded machine's delay in 50 callers'
/// ACKs; the rig's 50 ms gives 3.2 s, and calls ended by AckTimeout.
const SOAK_T1: Duration = Duration::from_millis(200);

async fn one_call(r: &Rig, caller: &mut Caller) -> bool {
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    if !caller.answered(&leg).await {
        return false;
    }
    // Generous: a loaded machine must not fail a call that is merely slow;
    // the latency itself is asserted elsewhere.
    let heard = hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some();
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    heard
}

/// One whole conversation: the greeting is heard, the caller speaks, and the
/// model's reply is heard. Used on the first and the last sequential call,
/// so call 300 is shown to sound like call 1.
async fn conversation(r: &Rig, caller: &mut Caller) -> (bool, bool) {
    let mut leg = caller.dial(r.manager.sip_addr()).await;
    if !caller.answered(&leg).await {
        return (false, false);
    }
    let greeting = hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some();
    let quiet = until_quiet(&mut leg.media, 25, AUDIO_WITHIN).await;
    speak(&leg.media).await;
    let reply = quiet && hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some();
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    (greeting, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sequential_then_concurrent_calls_return_every_resource() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let r = rig(fast_script(), |c| {
        c.max_calls = CONCURRENT + 5;
        // 50 model setups at once on a loaded 2-core machine in debug.
        c.machine.model_setup = Duration::from_secs(15);
        // Only the callers' BYEs may end these calls: on a loaded machine
        // dialling, answering and hanging up 50 calls one after another
        // takes longer than the rig's 8 s no-speech timeout.
        c.machine.no_speech = Duration::from_secs(300);
        c.machine.rtp_inactivity = Some(Duration::from_secs(60));
        c.sip.timers.t1 = SOAK_T1;
        c.sip.timers.t2 = SOAK_T1 * 8;
        c.sip.timers.t4 = SOAK_T1 * 10;
        c.sip.timers.d = SOAK_T1 * 64;
        // This test is about resources coming back; admission by load is
        // overload.rs's. 50 calls and their callers in a debug build on a
        // shared 2-core machine run the engine late: admit them anyway.
        c.engine = Some(
            callbridge_rtp::engine::MediaEngine::new(
                callbridge_rtp::engine::EngineConfig {
                    limits: callbridge_rtp::engine::LoadLimits {
                        max_late: Duration::from_secs(3600),
                        max_busy: f64::INFINITY,
                        max_backlog: u32::MAX,
                        max_stalled: f64::INFINITY,
                    },
                    ..Default::default()
                },
                std::sync::Arc::new(callbridge_rtp::clock::SystemClock),
            )
            .unwrap(),
        );
        c.rtp = callbridge_rtp::ports::PortPoolConfig {
            bind_ip: LOCAL,
            range: port_range(CONCURRENT as u16 + 8),
            rtcp: false,
        };
    })
    .await;
    let mut caller = Caller::new().await;
    // Warm up once so lazily created process-wide fds (runtime, DNS...)
    // are in the baseline.
    assert!(one_call(&r, &mut caller).await);
    r.idle().await;
    let fds = fd_count();
    let t0 = Instant::now();
    for i in 0..SEQUENTIAL {
        if i == 0 || i == SEQUENTIAL - 1 {
            assert_eq!(
                conversation(&r, &mut caller).await,
                (true, true),
                "call {i}: (greeting heard, reply heard after the caller spoke)"
            );
        } else {
            assert!(
                one_call(&r, &mut caller).await,
                "call {i} heard its greeting"
            );
        }
        r.idle().await;
    }
    let seq_time = t0.elapsed();
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty());
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    assert_eq!(
        fds_back_to(fds).await,
        fds,
        "fds back to baseline after the sequential calls"
    );

    let t1 = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..CONCURRENT {
        callers.push(Caller::new().await);
    }
    let fds_with_callers = fd_count();
    let mut legs = Vec::new();
    for c in &mut callers {
        let leg = c.dial(r.manager.sip_addr()).await;
        legs.push(leg);
    }
    let mut answered = 0;
    for (c, leg) in callers.iter_mut().zip(&legs) {
        if c.answered(leg).await {
            answered += 1;
        }
    }
    assert_eq!(answered, CONCURRENT);
    assert_eq!(r.manager.snapshot().calls.len(), CONCURRENT);
    for (c, leg) in callers.iter_mut().zip(legs) {
        if let Err(e) = c.sip.hangup(leg.call).await {
            eprintln!(
                "hangup failed: {e}; ended: {:?}",
                r.manager.snapshot().ended
            );
        }
        leg.media.close().await;
    }
    r.idle().await;
    let conc_time = t1.elapsed();
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty());
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    assert_eq!(
        fds_back_to(fds_with_callers).await,
        fds_with_callers,
        "fds back after the concurrent calls"
    );
    assert_eq!(
        r.sip_transactions_within(SOAK_T1 * 64 + Duration::from_secs(10))
            .await,
        0,
        "SIP transaction table empty once Timer J has passed"
    );
    for c in callers {
        c.stop().await;
    }

    let total = 1 + SEQUENTIAL + CONCURRENT;
    let ended: u64 = s
        .ended
        .iter()
        .filter(|(r, _)| *r == callbridge_session::lifecycle::EndReason::CallerHangup)
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(
        ended, total as u64,
        "every call ended by the caller's BYE: {:?}",
        s.ended
    );
    let ids = r.all_ids();
    assert_eq!(ids.len(), total);
    for id in &ids {
        assert_eq!(
            r.record(*id).session.end_reason,
            Some(EndReason::CallerHangup)
        );
    }
    // Model connections close asynchronously on the mock's side.
    r.mock
        .server()
        .wait_for(Duration::from_secs(20), |s| s.clean_closes >= total as u64)
        .await;
    let m = r.mock.stats();
    assert_eq!(m.setups, total as u64, "one model setup per call");
    assert_eq!(m.clean_closes, total as u64, "one clean close per call");
    assert_eq!(m.open_connections, 0);
    r.mock.assert_no_violations();
    eprintln!(
        "{SEQUENTIAL} sequential calls: {seq_time:?}; {CONCURRENT} concurrent: {conc_time:?}"
    );
    r.manager.shutdown().await;
    caller.stop().await;
}
