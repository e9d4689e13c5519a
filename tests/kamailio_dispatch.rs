//! End-to-end: two agents behind Kamailio with the shipped configuration
//! (`deploy/kamailio/`), on loopback, each agent on its own SQLite store.
//!
//! 1. Call setup through Kamailio and directly, timed (printed, not
//!    asserted: speed targets are not timed tests).
//! 2. sipp places 100 calls through Kamailio: all succeed, spread over
//!    both agents (counted in each agent's store).
//! 3. One agent is SIGTERMed mid-run: it answers OPTIONS 503 while it
//!    drains, Kamailio takes it out (its log), its live calls finish, new
//!    calls go to the other agent and none fails; it exits 0.
//! 4. Restarted, it answers OPTIONS 200 and Kamailio takes it back.
//! 5. It is SIGKILLed mid-run: Kamailio fails over (no call placed after
//!    the kill fails; only calls live on the dead agent do), and when it
//!    restarts its calls are marked interrupted.
//!
//! Without the kamailio binary the test skips, loudly (scripts/test and
//! .ci/run install it).

mod kamailio_support;
mod support_agent;

use std::path::Path;
use std::time::{Duration, Instant};

use callbridge_crm_store::{EndReason, SessionState};
use kamailio_support::{Kamailio, Timing, kamailio_bin, median, options, timed_call};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts, free_udp_port};

const TIMING: Timing = Timing {
    ping_interval_s: 1,
    fr_timer_ms: 1500,
    fr_inv_timer_ms: 8000,
};

/// An agent on a fixed SIP port and a store outside its temporary
/// directory, so a restart comes back where Kamailio expects it, on the
/// same store.
fn agent(port: u16, db: &Path) -> Agent {
    let mut agent = Agent::start(Opts {
        env: vec![
            ("CALLBRIDGE_SIP_BIND".into(), format!("127.0.0.1:{port}")),
            ("CALLBRIDGE_STORE_DATABASE".into(), db.display().to_string()),
        ],
        drain_timeout: "30s",
        max_concurrent: 60,
        ..Opts::default()
    });
    // The store the environment points it at, for `sessions()`.
    agent.db = db.to_path_buf();
    agent
}

/// Sessions in `agent`'s store.
fn count(agent: &Agent) -> usize {
    agent.sessions().len()
}

/// Live (answered) calls in `agent`'s store.
fn answered(agent: &Agent) -> usize {
    agent
        .sessions()
        .iter()
        .filter(|s| matches!(s.state, SessionState::Answered | SessionState::Active))
        .count()
}

/// How many calls `agents` refused because their media engine was
/// overloaded (the machine's load: other builds on the shared test host).
/// Such a refusal is the agent doing its job; it is reported, and the
/// phase's "no call fails" is then not asserted.
fn overloads(agents: &[&Agent]) -> usize {
    agents
        .iter()
        .map(|a| {
            let log = a.stderr();
            // Refused INVITEs, and OPTIONS answered 503 for the load.
            log.matches("media engine overloaded").count() + log.matches("overloaded=true").count()
        })
        .sum()
}

/// Asserts that every call of `run` succeeded, unless an agent refused
/// calls for overload since `before` refusals (then prints what happened).
fn all_succeeded(
    run: &support_agent::sipp::SippRun,
    total: u64,
    what: &str,
    agents: &[&Agent],
    before: usize,
) {
    if overloads(agents) > before {
        println!(
            "{what}: an agent refused calls for overload (machine load); {:?} of {total} \
             succeeded, {:?} failed: not asserted",
            run.successful_calls(),
            run.failed_calls()
        );
        return;
    }
    run.assert_ok(what);
    assert_eq!(run.successful_calls(), Some(total), "{what}");
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_agents_behind_kamailio_spread_drain_and_fail_over() {
    let Some(bin) = kamailio_bin() else {
        eprintln!(
            "SKIPPED: kamailio not installed (apt-get install kamailio; scripts/test installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let (db_a, db_b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let mut a = agent(port_a, &db_a);
    let b = agent(port_b, &db_b);
    let kam = Kamailio::start(&bin, &[a.sip, b.sip], TIMING);
    let a_addr = a.sip.to_string();

    // 1. Setup time, direct and through Kamailio, interleaved (20 calls
    // each, or CALLBRIDGE_E2E_TIMED_CALLS for docs/SCALING.md's figures).
    let n: usize = std::env::var("CALLBRIDGE_E2E_TIMED_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let before = overloads(&[&a, &b]);
    let (mut direct, mut proxied, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        // Direct calls alternate over the agents as Kamailio's do.
        let to = if i % 2 == 0 { a.sip } else { b.sip };
        for (target, times) in [(to, &mut direct), (kam.addr, &mut proxied)] {
            match timed_call(target, Duration::from_secs(10)) {
                Ok(t) => times.push(t),
                Err(why) => failed.push(why),
            }
        }
    }
    if !failed.is_empty() {
        println!("timed calls not made: {failed:?}");
        assert!(
            overloads(&[&a, &b]) > before,
            "timed calls failed without an agent overloaded: {failed:?}"
        );
    }
    let (d50, k50) = (median(&mut direct), median(&mut proxied));
    println!(
        "call setup p50 (INVITE to 200, {n} calls each): direct {:.2} ms, via kamailio {:.2} ms, \
         added {:.2} ms",
        d50.as_secs_f64() * 1e3,
        k50.as_secs_f64() * 1e3,
        (k50.as_secs_f64() - d50.as_secs_f64()) * 1e3
    );
    let (base_a, base_b) = (count(&a), count(&b));
    assert!(
        base_a + base_b >= direct.len() + proxied.len(),
        "the timed calls are in the stores"
    );

    // 2. 100 calls through Kamailio, spread over both agents.
    let before = overloads(&[&a, &b]);
    let run = Sipp::uac("uac_via_proxy.xml", kam.addr)
        .calls(100, 10, 10)
        .pause_ms(500)
        .within(Duration::from_secs(90))
        .run();
    all_succeeded(&run, 100, "100 calls through kamailio", &[&a, &b], before);
    a.wait_idle(Duration::from_secs(20));
    b.wait_idle(Duration::from_secs(20));
    let (on_a, on_b) = (count(&a) - base_a, count(&b) - base_b);
    println!("100 calls through kamailio: {on_a} on agent a, {on_b} on agent b");
    let ok = usize::try_from(run.successful_calls().unwrap_or(0)).unwrap();
    assert!(on_a + on_b >= ok, "every answered call is in a store");
    assert!(
        on_a * 10 >= ok * 3 && on_b * 10 >= ok * 3,
        "spread: {on_a} / {on_b}"
    );

    // 3. SIGTERM one agent mid-run.
    let before = overloads(&[&a, &b]);
    let (base_a, base_b) = (count(&a), count(&b));
    let callers = Sipp::uac("uac_via_proxy.xml", kam.addr)
        .calls(30, 8, 4)
        .pause_ms(2000)
        .within(Duration::from_secs(90))
        .spawn();
    wait_until("agent a has live calls", Duration::from_secs(20), || {
        answered(&a) >= 3
    });
    let mark = kam.log_len();
    a.signal("TERM");
    let mut drained = false;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !drained {
        drained = options(a.sip, Duration::from_millis(300)) == Some(503);
    }
    assert!(drained, "a draining agent answers OPTIONS 503");
    kam.wait_log(mark, &a_addr, "down", Duration::from_secs(5));
    let run = callers.finish();
    all_succeeded(
        &run,
        30,
        "no call fails while an agent drains",
        &[&a, &b],
        before,
    );
    let status = a.wait_exit(Duration::from_secs(40));
    assert_eq!(status.code(), Some(0), "the drained agent exits 0");
    b.wait_idle(Duration::from_secs(20));
    let a_sessions = a.sessions();
    let (on_a, on_b) = (a_sessions.len() - base_a, count(&b) - base_b);
    println!("30 calls with agent a draining: {on_a} on a (before its SIGTERM), {on_b} on b");
    let ok = usize::try_from(run.successful_calls().unwrap_or(0)).unwrap();
    assert!(on_a + on_b >= ok, "every answered call is in a store");
    for s in &a_sessions {
        assert_eq!(s.state, SessionState::Ended, "a's calls finished: {s:?}");
        assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    }

    // 4. Back on the same port and store: Kamailio takes it back.
    let mark = kam.log_len();
    let mut a = agent(port_a, &db_a);
    assert_eq!(options(a.sip, Duration::from_secs(2)), Some(200));
    kam.wait_log(mark, &a_addr, " up", Duration::from_secs(5));

    // 5. SIGKILL it mid-run.
    let (base_a, base_b) = (count(&a), count(&b));
    let before = overloads(&[&a, &b]);
    let callers = Sipp::uac("uac_via_proxy.xml", kam.addr)
        .calls(30, 8, 4)
        .pause_ms(2000)
        .within(Duration::from_secs(120))
        .spawn();
    wait_until("agent a has live calls", Duration::from_secs(20), || {
        answered(&a) >= 3
    });
    let mark = kam.log_len();
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(10));
    let killed_at = Instant::now();
    kam.wait_log(mark, &a_addr, "down", Duration::from_secs(10));
    println!(
        "kamailio marked the killed agent down {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    let run = callers.finish();
    let overload = overloads(&[&a, &b]) > before;
    if overload {
        println!("agents refused calls for overload (machine load) while agent a was killed");
    }
    let a = agent(port_a, &db_a);
    let a_sessions = a.sessions();
    let interrupted = a_sessions
        .iter()
        .filter(|s| s.state == SessionState::Interrupted)
        .count();
    for s in a_sessions
        .iter()
        .filter(|s| s.state == SessionState::Interrupted)
    {
        assert_eq!(s.end_reason, Some(EndReason::ProcessDied), "{s:?}");
    }
    assert!(
        a_sessions.iter().all(|s| s.state.is_terminal()),
        "after the restart no call of the killed agent is left live"
    );
    let failed = run.failed_calls().unwrap_or(0);
    let ok = run.successful_calls().unwrap_or(0);
    b.wait_idle(Duration::from_secs(20));
    let (on_a, on_b) = (a_sessions.len() - base_a, count(&b) - base_b);
    println!(
        "30 calls with agent a killed: {ok} succeeded, {failed} failed; {on_a} reached a \
         ({interrupted} interrupted), {on_b} on b"
    );
    assert!(interrupted >= 1, "the killed agent had live calls");
    assert!(
        overload || failed as usize <= interrupted,
        "only calls live on the killed agent fail: {failed} failed, {interrupted} interrupted"
    );
    assert_eq!(ok + failed, 30, "every call ended one way or the other");
    assert!(on_b > 0);
}
