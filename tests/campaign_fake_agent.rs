//! `campaign run` end to end against an in-test fake of the agent's call
//! API (`campaign_support::fake_agent`), which writes session rows into the
//! same store: pacing and concurrency, retry and failure over successive
//! runs, voicemail, overlapping runs, SIGKILL and rerun, SIGTERM,
//! `--max-duration`, a window closing mid-run, 503 back-off, the agent
//! down, refused and unknown tokens, and a killed run's POST that reaches
//! the agent only after the rerun dialled the lead again; an `https://`
//! agent with an unusable system trust store and `--tls-roots`.

mod campaign_support;

use std::process::Stdio;
use std::time::Duration;

use callbridge_crm_store::{LeadStatus, Outcome};
use campaign_support::fake_agent::{FakeAgent, PostMode, Script, answer, run_args};
use campaign_support::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn run_dials_every_lead_once_never_above_concurrency_and_marks_them_done() {
    let env = Env::new();
    let c = env.campaign(
        "paced",
        8,
        &[
            "--concurrency",
            "2",
            "--rate",
            "600/min",
            "--max-attempts",
            "3",
        ],
    );
    // Calls of 700 ms at up to 10 starts a second: the concurrency bound
    // (2) is what holds them back.
    let agent = FakeAgent::start(&env.url, answer(600));
    let out = env.run(&run_args("paced", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One line per call and a summary (no terminal: no progress bar).
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("lead ")).count(),
        8,
        "{stdout}"
    );
    assert!(stdout.contains("campaign paced: 8 calls"), "{stdout}");
    for l in env.leads(&c) {
        assert_eq!(l.status, LeadStatus::Done, "lead {}", l.id);
        assert_eq!(l.attempts, 1);
        assert_eq!(l.last_outcome, Some(Outcome::Completed));
        assert!(l.last_session.is_some());
    }
    let sessions = env.sessions(&c);
    assert_eq!(sessions.len(), 8);
    assert!(sessions_per_lead(&sessions).values().all(|&n| n == 1));
    assert!(
        max_overlap(&sessions) <= 2,
        "overlap {}",
        max_overlap(&sessions)
    );
    assert!(agent.seen(|s| s.max_live) <= 2);
    assert_eq!(max_overlap(&sessions), 2, "both slots used");
}

#[test]
fn run_starts_at_most_rate_calls_per_minute_when_concurrency_would_allow_more() {
    let env = Env::new();
    let c = env.campaign("rate", 8, &["--concurrency", "8", "--rate", "240/min"]);
    // Short calls and 8 slots: the rate (one start per 250 ms) holds them back.
    let agent = FakeAgent::start(&env.url, answer(100));
    let out = env.run(&run_args("rate", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let sessions = env.sessions(&c);
    assert_eq!(sessions.len(), 8);
    assert_paced(&sessions, MS(250), MS(150));
    let first = sessions.first().unwrap().created_at;
    let last = sessions.last().unwrap().created_at;
    // 8 starts at 250 ms: the last no sooner than 1.75 s after the first.
    assert!(first.duration_until(last).as_millis() >= 1_700);
}

#[test]
fn busy_and_no_answer_go_to_retry_at_the_policy_delay_then_fail_after_max_attempts() {
    let env = Env::new();
    let c = env.campaign(
        "mixed",
        3,
        &[
            "--concurrency",
            "3",
            "--rate",
            "600/min",
            "--max-attempts",
            "2",
            "--retry-busy",
            "2s",
            "--retry-no-answer",
            "3s",
        ],
    );
    // Lead 0 answers, lead 1 is busy, lead 2 never answers.
    let agent = FakeAgent::start(&env.url, |to| match index_of(to) {
        0 => Script::Answer(MS(50), MS(200)),
        1 => Script::Busy(MS(100)),
        _ => Script::NoAnswer(MS(300)),
    });
    let out = env.run(&run_args("mixed", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let leads = env.leads(&c);
    assert_eq!(leads[0].status, LeadStatus::Done);
    for (l, outcome, delay) in [
        (&leads[1], Outcome::Busy, 2),
        (&leads[2], Outcome::NoAnswer, 3),
    ] {
        assert_eq!(l.status, LeadStatus::Retry);
        assert_eq!(l.attempts, 1);
        assert_eq!(l.last_outcome, Some(outcome));
        // Due again at the policy's delay after the attempt was recorded.
        let due = l.updated_at.duration_until(l.next_attempt_at);
        assert_eq!(due.as_secs(), delay, "lead {}", l.id);
    }
    // Not due yet: a second run now dials nothing and says nothing.
    let quiet = env.run(&run_args("mixed", &agent.url()));
    assert!(
        quiet.status.success() && quiet.stdout.is_empty(),
        "{}",
        show(&quiet)
    );
    std::thread::sleep(Duration::from_secs(3));
    let out = env.run(&run_args("mixed", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let leads = env.leads(&c);
    assert_eq!(leads[0].status, LeadStatus::Done);
    for l in &leads[1..] {
        assert_eq!(l.status, LeadStatus::Failed, "lead {}", l.id);
        assert_eq!(l.attempts, 2);
    }
    let per_lead = sessions_per_lead(&env.sessions(&c));
    assert_eq!(per_lead[&leads[0].id], 1);
    assert_eq!(per_lead[&leads[1].id], 2);
    assert_eq!(per_lead[&leads[2].id], 2);
}

#[test]
fn two_runs_started_together_one_runs_the_other_exits_0_at_once() {
    two_runs_started_together(Env::new());
}

/// The same with the store on PostgreSQL: the run's lock is the store's
/// advisory lock of the campaign instead of a lock file.
#[test]
fn on_postgresql_two_runs_started_together_one_runs_the_other_exits_0_at_once() {
    if let Some(env) = Env::on_postgres() {
        two_runs_started_together(env);
    }
}

fn two_runs_started_together(env: Env) {
    let c = env.campaign("twice", 6, &["--concurrency", "3", "--rate", "600/min"]);
    let agent = FakeAgent::start(&env.url, answer(800));
    let url = agent.url();
    let args = run_args("twice", &url);
    let spawn = || {
        env.cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        wait_bounded(a, Duration::from_secs(30)),
        wait_bounded(b, Duration::from_secs(30)),
    );
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        show(&a),
        show(&b)
    );
    let held: Vec<_> = [&a, &b]
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("another run holds"))
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .collect();
    assert_eq!(held, vec![1], "exactly one run stepped aside with one line");
    let sessions = env.sessions(&c);
    assert_eq!(sessions.len(), 6);
    assert!(agent.seen(|s| s.posts_per_lead.values().all(|&n| n == 1)));
    assert!(env.leads(&c).iter().all(|l| l.status == LeadStatus::Done));
}

#[test]
fn sigkill_mid_run_then_rerun_leaves_every_lead_in_one_final_state_never_over_its_attempts() {
    let env = Env::new();
    let c = env.campaign("killed", 10, &["--concurrency", "3", "--rate", "600/min"]);
    let agent = FakeAgent::start(&env.url, answer(700));
    let child = env
        .cmd(&run_args("killed", &agent.url()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while calls are live and some leads already finished.
    wait_until(Duration::from_secs(20), "calls done and live", || {
        let done = env
            .leads(&c)
            .iter()
            .filter(|l| l.status == LeadStatus::Done)
            .count();
        done >= 2 && agent.live() >= 2
    });
    let mut child = child;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let in_progress = env
        .leads(&c)
        .iter()
        .filter(|l| l.status == LeadStatus::InProgress)
        .count();
    assert!(in_progress >= 1, "the kill left claims behind");
    let out = env.run(&run_args("killed", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("killed run"), "{stdout}");
    let sessions = env.sessions(&c);
    let per_lead = sessions_per_lead(&sessions);
    for l in env.leads(&c) {
        assert_eq!(l.status, LeadStatus::Done, "lead {}", l.id);
        let calls = per_lead.get(&l.id).copied().unwrap_or(0);
        assert_eq!(calls, 1, "lead {} dialled {calls} times", l.id);
        assert!(calls <= l.attempts);
    }
    assert!(agent.seen(|s| s.posts_per_lead.values().all(|&n| n == 1)));
}

#[test]
fn at_capacity_503_backs_off_without_using_attempts_then_dials_when_capacity_returns() {
    let env = Env::new();
    let c = env.campaign("capacity", 3, &["--concurrency", "1", "--rate", "600/min"]);
    let agent = FakeAgent::start(&env.url, answer(100));
    agent.set_unavailable(true);
    let child = env
        .cmd(&[
            "run",
            "capacity",
            "--agent",
            &agent.url(),
            "--poll",
            "50ms",
            "--agent-wait",
            "20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "two refused POSTs", || {
        agent.seen(|s| s.refused_503) >= 2
    });
    // While refused, no lead has used an attempt.
    assert!(
        env.leads(&c)
            .iter()
            .all(|l| l.attempts <= 1 && l.status != LeadStatus::Retry)
    );
    agent.set_unavailable(false);
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(out.status.success(), "{}", show(&out));
    for l in env.leads(&c) {
        assert_eq!(
            (l.status, l.attempts),
            (LeadStatus::Done, 1),
            "lead {}",
            l.id
        );
    }
    let refused = agent.seen(|s| s.refused_503);
    // Retry-After: 1 s and exponential back-off: a few tries, not a storm.
    assert!((2..=6).contains(&refused), "{refused} refused POSTs");
}

#[test]
fn agent_down_exits_1_with_a_clear_message_and_leaves_leads_untouched() {
    let env = Env::new();
    let c = env.campaign("down", 2, &["--concurrency", "1"]);
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = env.run(&["run", "down", "--agent", &url, "--agent-wait", "2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was unavailable for 2 s"), "{stderr}");
    // The cause, not only reqwest's `error sending request for url`.
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    for l in env.leads(&c) {
        assert_eq!((l.status, l.attempts), (LeadStatus::Pending, 0));
    }
    // 503 for longer than --agent-wait: the same.
    let agent = FakeAgent::start(&env.url, answer(100));
    agent.set_unavailable(true);
    let out = env.run(&["run", "down", "--agent", &agent.url(), "--agent-wait", "2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at capacity"));
    assert!(env.leads(&c).iter().all(|l| l.attempts == 0));
}

#[test]
fn token_refused_by_the_agent_exits_1_and_gives_the_claim_back() {
    let env = Env::new();
    let c = env.campaign("token", 1, &[]);
    let agent = FakeAgent::start(&env.url, answer(100));
    agent.set_reject_tokens(true);
    let out = env.run(&run_args("token", &agent.url()));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));
    assert_eq!(env.leads(&c)[0].attempts, 0);
    // An address without the call API (wrong URL): exit 1, claim given back.
    agent.set_reject_tokens(false);
    let wrong = format!("{}/not-the-agent", agent.url());
    let out = env.run(&run_args("token", &wrong));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no call API"),
        "{}",
        show(&out)
    );
    assert_eq!(env.leads(&c)[0].attempts, 0);
}

#[test]
fn unknown_missing_or_non_owner_tokens_are_usage_errors_before_any_claim() {
    let env = Env::new();
    let c = env.campaign("owned", 1, &[]);
    let agent = FakeAgent::start(&env.url, answer(100));
    let run = |token: Option<&str>| {
        let mut cmd = env.cmd(&run_args("owned", &agent.url()));
        match token {
            Some(t) => cmd.env("CALLBRIDGE_TOKEN", t),
            None => cmd.env_remove("CALLBRIDGE_TOKEN"),
        };
        cmd.output().unwrap()
    };
    let unknown = run(Some(
        "cbt_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef",
    ));
    assert_eq!(unknown.status.code(), Some(2), "{}", show(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not known to the store"));
    let missing = run(None);
    assert_eq!(missing.status.code(), Some(2), "{}", show(&missing));
    // Another operator, who does not own the campaign.
    let other = callbridge_crm_store::ApiToken::generate().unwrap();
    env.store()
        .create_user(
            &callbridge_crm_store::PersonName::new("other").unwrap(),
            callbridge_crm_store::Role::AgentOperator,
            &other,
            jiff::Timestamp::now(),
        )
        .unwrap();
    let not_owner = run(Some(&other.expose()));
    assert_eq!(not_owner.status.code(), Some(2), "{}", show(&not_owner));
    assert!(String::from_utf8_lossy(&not_owner.stderr).contains("--owner other"));
    assert!(agent.seen(|s| s.posts_per_lead.is_empty()));
    assert_eq!(env.leads(&c)[0].attempts, 0);
}

#[test]
fn voicemail_reported_by_the_agent_follows_the_voicemail_retry_delay() {
    let env = Env::new();
    let c = env.campaign(
        "voicemail",
        1,
        &["--retry-voicemail", "2h", "--retry-failed", "1m"],
    );
    let agent = FakeAgent::start(&env.url, |_| Script::Voicemail(MS(50), MS(200)));
    let out = env.run(&run_args("voicemail", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let l = &env.leads(&c)[0];
    assert_eq!(
        (l.status, l.last_outcome),
        (LeadStatus::Retry, Some(Outcome::Voicemail))
    );
    assert_eq!(
        l.updated_at.duration_until(l.next_attempt_at).as_secs(),
        7200
    );
}

#[test]
fn sigterm_stops_claiming_lets_live_calls_finish_and_exits_0() {
    let env = Env::new();
    let c = env.campaign("term", 6, &["--concurrency", "2", "--rate", "600/min"]);
    let agent = FakeAgent::start(&env.url, answer(1500));
    let child = env
        .cmd(&run_args("term", &agent.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "two live calls", || {
        agent.live() == 2
    });
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = wait_bounded(child, Duration::from_secs(20));
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SIGTERM: no new calls"));
    let leads = env.leads(&c);
    let done = leads
        .iter()
        .filter(|l| l.status == LeadStatus::Done)
        .count();
    assert_eq!(done, 2, "the two live calls finished and were recorded");
    assert!(
        leads
            .iter()
            .filter(|l| l.status != LeadStatus::Done)
            .all(|l| l.status == LeadStatus::Pending && l.attempts == 0)
    );
}

#[test]
fn max_duration_stops_claiming_new_leads() {
    let env = Env::new();
    // One call start every 2 s; the run may claim for 1 s: one call.
    let c = env.campaign("short", 3, &["--concurrency", "3", "--rate", "30/min"]);
    let agent = FakeAgent::start(&env.url, answer(100));
    let url = agent.url();
    let mut args = run_args("short", &url);
    args.extend(["--max-duration", "1s"]);
    let out = env.run(&args);
    assert!(out.status.success(), "{}", show(&out));
    let leads = env.leads(&c);
    assert_eq!(
        leads
            .iter()
            .filter(|l| l.status == LeadStatus::Done)
            .count(),
        1
    );
    assert_eq!(
        leads
            .iter()
            .filter(|l| l.status == LeadStatus::Pending)
            .count(),
        2
    );
}

/// A window `HH:MM-HH:MM` (UTC) that opens `from_h` hours from now and
/// lasts an hour.
fn window_from_now(from_h: i64) -> String {
    let t = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let m = (i64::from(t.hour()) * 60 + i64::from(t.minute()) + from_h * 60).rem_euclid(1440);
    let e = (m + 60) % 1440;
    format!("{:02}:{:02}-{:02}:{:02}", m / 60, m % 60, e / 60, e % 60)
}

#[test]
fn when_the_window_closes_mid_run_claiming_stops_and_the_live_call_finishes() {
    let env = Env::new();
    let c = env.campaign(
        "closing",
        6,
        &["--concurrency", "1", "--rate", "600/min", "--tz", "UTC"],
    );
    let agent = FakeAgent::start(&env.url, answer(1000));
    let child = env
        .cmd(&run_args("closing", &agent.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(15), "a call done and one live", || {
        let done = env
            .leads(&c)
            .iter()
            .filter(|l| l.status == LeadStatus::Done)
            .count();
        done >= 1 && agent.live() == 1
    });
    // The window now closes (as if its end time passed): the store's claim
    // checks it each time, so the run claims nothing more.
    let closed = window_from_now(3);
    env.ok(&["update", "closing", "--window", &closed, "--days", "all"]);
    let out = wait_bounded(child, Duration::from_secs(20));
    assert!(out.status.success(), "{}", show(&out));
    let leads = env.leads(&c);
    let done = leads
        .iter()
        .filter(|l| l.status == LeadStatus::Done)
        .count();
    let untouched = leads
        .iter()
        .filter(|l| l.status == LeadStatus::Pending && l.attempts == 0)
        .count();
    // The call live at the change finished and was recorded.
    assert!((2..=3).contains(&done), "{done} done");
    assert_eq!(done + untouched, 6, "{leads:?}");
    let dry = env.ok(&["run", "closing", "--dry-run"]);
    assert!(dry.contains("outside the calling window in UTC"), "{dry}");
}

/// Starts a run, waits until the fake holds its POST, SIGKILLs it.
fn kill_during_post(env: &Env, agent: &FakeAgent, name: &str) {
    let mut child = env
        .cmd(&run_args(name, &agent.url()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "a held POST", || {
        agent.seen(|s| s.hung) >= 1
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    agent.set_post_mode(PostMode::Normal);
}

#[test]
fn killed_after_the_agent_wrote_the_call_but_before_the_202_the_rerun_never_redials() {
    let env = Env::new();
    let c = env.campaign("after-row", 1, &[]);
    let agent = FakeAgent::start(&env.url, answer(300));
    agent.set_post_mode(PostMode::HangAfterRow);
    kill_during_post(&env, &agent, "after-row");
    let l = &env.leads(&c)[0];
    assert_eq!((l.status, l.attempts), (LeadStatus::InProgress, 1));
    let out = env.run(&run_args("after-row", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("killed run"),
        "{}",
        show(&out)
    );
    let l = &env.leads(&c)[0];
    assert_eq!((l.status, l.attempts), (LeadStatus::Done, 1));
    // The call the dead run never heard of is this attempt's: not dialled again.
    assert_eq!(agent.seen(|s| s.posts_per_lead[&l.id.0]), 1);
    assert_eq!(env.sessions(&c).len(), 1);
    assert_eq!(l.last_session, Some(env.sessions(&c)[0].id));
}

#[test]
fn killed_before_the_call_reached_the_agent_the_rerun_releases_the_claim_and_dials_once() {
    let env = Env::new();
    let c = env.campaign("before-row", 1, &[]);
    let agent = FakeAgent::start(&env.url, answer(300));
    agent.set_post_mode(PostMode::HangBeforeRow);
    kill_during_post(&env, &agent, "before-row");
    let l = &env.leads(&c)[0];
    assert_eq!((l.status, l.attempts), (LeadStatus::InProgress, 1));
    assert!(env.sessions(&c).is_empty());
    let out = env.run(&run_args("before-row", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("never dialled; released"), "{said}");
    // Released (the attempt given back), then dialled once by this run.
    let l = &env.leads(&c)[0];
    assert_eq!((l.status, l.attempts), (LeadStatus::Done, 1));
    assert_eq!(env.sessions(&c).len(), 1);
}

#[test]
fn a_killed_runs_post_that_reaches_the_agent_after_the_rerun_redialled_dials_nothing() {
    let env = Env::new();
    let c = env.campaign("late-post", 1, &[]);
    let agent = FakeAgent::start(&env.url, answer(300));
    // Run A claims the lead and POSTs; the fake holds that POST before its
    // row (a request still on its way to the agent) and A is SIGKILLed.
    agent.hold_next_post();
    let mut child = env
        .cmd(&run_args("late-post", &agent.url()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "a held POST", || {
        agent.seen(|s| s.hung) >= 1
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let l = &env.leads(&c)[0];
    assert_eq!((l.status, l.attempts), (LeadStatus::InProgress, 1));
    assert!(env.sessions(&c).is_empty());
    // Run B finds no row for A's claim: releases it, claims the lead again
    // for the same attempt, dials it and records the call.
    let out = env.run(&run_args("late-post", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("never dialled; released"), "{said}");
    assert_eq!(env.sessions(&c).len(), 1);
    // Only now does A's POST reach the agent's row insert.
    agent.release_held();
    wait_until(Duration::from_secs(10), "the held POST acted on", || {
        agent.seen(|s| s.held_done) >= 1
    });
    let sessions = env.sessions(&c);
    assert_eq!(sessions.len(), 1, "one call for the attempt, not two");
    assert_eq!(agent.seen(|s| s.claim_refused), 1, "A's claim was refused");
    let l = &env.leads(&c)[0];
    assert_eq!((l.status, l.attempts), (LeadStatus::Done, 1));
    assert_eq!(l.last_session, Some(sessions[0].id));
    assert_eq!(agent.seen(|s| s.posts_per_lead[&l.id.0]), 1);
}

#[test]
fn an_https_agent_needs_a_usable_trust_store_and_tls_roots_picks_it() {
    let env = Env::new();
    let c = env.campaign("tls", 1, &["--concurrency", "1"]);
    // rustls-native-certs reads only these when they are set: an empty
    // system store.
    let empty_file = env.file("no-certs.pem", "");
    let empty_dir = env.dir.path().join("no-certs.d");
    std::fs::create_dir(&empty_dir).unwrap();
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}");
    let run = |roots: &str| {
        let mut cmd = env.cmd(&["run", "tls", "--agent", &url, "--agent-wait", "1s"]);
        cmd.env("SSL_CERT_FILE", &empty_file)
            .env("SSL_CERT_DIR", &empty_dir)
            .env("CALLBRIDGE_TLS_ROOTS", roots)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(60))
    };
    // The system store (the default) is empty: a configuration error.
    let out = run("system");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-roots system"), "{stderr}");
    assert!(stderr.contains("select the bundled roots"), "{stderr}");
    assert!(env.leads(&c).iter().all(|l| l.attempts == 0));
    // The bundled roots need no store: the run gets as far as the agent,
    // which is down.
    let out = run("bundled");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was unavailable for 1 s"),
        "{}",
        show(&out)
    );
    // Neither name: bad usage.
    let out = run("webpki");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"system\" or \"bundled\""),
        "{}",
        show(&out)
    );
}
