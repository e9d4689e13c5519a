//! The campaign dialer against the real `agent run` (mock model) and a real
//! sipp UAS playing the leads: a 60-lead campaign (every lead done, one
//! session per lead, concurrency and pacing checked from the store's
//! timestamps, the sustained calls per minute printed), busy and unanswered
//! leads through retry to failed over successive runs, and overlapping runs
//! plus SIGKILL and rerun.

mod campaign_support;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use callbridge_crm_store::{LeadStatus, Outcome, SessionState};
use campaign_support::real::{Agent, Sipp};
use campaign_support::*;

fn run_args<'a>(name: &'a str, agent: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        name,
        "--agent",
        agent,
        "--poll",
        "200ms",
        "--agent-wait",
        "20s",
    ]
}

#[test]
fn sixty_leads_all_end_done_within_concurrency_and_pacing_with_the_real_agent() {
    let env = Env::new();
    let sipp = Sipp::start(&env, Duration::from_secs(170));
    let agent = Agent::start(&env, sipp.addr, 47000);
    // The token as an operator gets it; its user owns the campaign.
    let token = agent.add_operator(&env, "cron-dialer");
    let c = env.campaign(
        "sixty",
        60,
        &[
            "--concurrency",
            "5",
            "--rate",
            "120/min",
            "--max-attempts",
            "3",
        ],
    );
    env.ok(&["update", "sixty", "--owner", "cron-dialer"]);
    let child = env
        .cmd(&run_args("sixty", &agent.url()))
        .env("CALLBRIDGE_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(150));
    assert!(
        out.status.success(),
        "{}\n--- agent log\n{}",
        show(&out),
        agent.log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("lead ")).count(),
        60
    );
    let leads = env.leads(&c);
    assert_eq!(leads.len(), 60);
    let sessions = env.sessions(&c);
    for l in &leads {
        let calls: Vec<String> = sessions
            .iter()
            .filter(|s| s.lead == Some(l.id))
            .map(|s| format!("{} {:?} {:?}", s.state, s.end_reason, s.sip_status))
            .collect();
        assert_eq!(
            (l.status, l.attempts, l.last_outcome),
            (LeadStatus::Done, 1, Some(Outcome::Completed)),
            "lead {}: its calls {calls:?}\n--- agent log\n{}",
            l.id,
            agent.log()
        );
    }
    assert_eq!(sessions.len(), 60);
    let per_lead = sessions_per_lead(&sessions);
    assert_eq!(per_lead.len(), 60);
    assert!(per_lead.values().all(|&n| n == 1));
    for s in &sessions {
        assert_eq!(s.state, SessionState::Ended, "{s:?}");
        assert!(s.answered_at.is_some());
        let lead = leads.iter().find(|l| Some(l.id) == s.lead).unwrap();
        assert_eq!(lead.last_session, Some(s.id));
    }
    let overlap = max_overlap(&sessions);
    assert!(overlap <= 5, "{overlap} calls at once");
    // 120/min: one start per 500 ms; the agent stamps the row after the
    // POST, within 1.5 s even on a loaded machine.
    assert_paced(
        &sessions,
        Duration::from_millis(500),
        Duration::from_millis(1500),
    );
    let gap = min_start_gap(&sessions);
    let cpm = calls_per_minute(&sessions);
    eprintln!(
        "60-lead campaign: {cpm:.1} calls/min sustained (store timestamps, first start to last end), \
         at most {overlap} at once, closest starts {gap:?} apart; dialer summary: {}",
        stdout.lines().last().unwrap_or_default()
    );
}

#[test]
fn busy_and_unanswered_leads_retry_at_the_policy_delay_then_fail_over_successive_runs() {
    let env = Env::new();
    let sipp = Sipp::start(&env, Duration::from_secs(120));
    let agent = Agent::start(&env, sipp.addr, 47200);
    let c = env.campaign(
        "mixed",
        0,
        &[
            "--concurrency",
            "6",
            "--rate",
            "600/min",
            "--max-attempts",
            "2",
            "--retry-busy",
            "10s",
            "--retry-no-answer",
            "11s",
        ],
    );
    // The sipp scenario: +1555010... answers, +1555020... is busy,
    // +1555030... never answers. The retry delays outlast the first run:
    // its answered call hears the campaign's greeting (~3 s of the mock's
    // clip) and then the agent's 2 s no-speech timeout, and a retry due
    // before the run ends would be dialled in that same run.
    let numbers = [
        "+15550100001",
        "+15550200001",
        "+15550200002",
        "+15550300001",
    ];
    let mut csv = String::from("phone\n");
    for n in numbers {
        csv.push_str(n);
        csv.push('\n');
    }
    let f = env.file("mixed.csv", &csv);
    env.ok(&["import", "mixed", f.to_str().unwrap()]);
    let first = env.run_for(&run_args("mixed", &agent.url()), Duration::from_secs(60));
    assert!(first.status.success(), "{}\n{}", show(&first), agent.log());
    let by_phone = |leads: &[callbridge_crm_store::Lead], n: &str| {
        leads
            .iter()
            .find(|l| l.phone.as_str() == n)
            .unwrap()
            .clone()
    };
    let leads = env.leads(&c);
    assert_eq!(by_phone(&leads, numbers[0]).status, LeadStatus::Done);
    for (n, outcome, delay) in [
        (numbers[1], Outcome::Busy, 10),
        (numbers[2], Outcome::Busy, 10),
        (numbers[3], Outcome::NoAnswer, 11),
    ] {
        let l = by_phone(&leads, n);
        assert_eq!(
            (l.status, l.attempts, l.last_outcome),
            (LeadStatus::Retry, 1, Some(outcome)),
            "{n}"
        );
        assert_eq!(
            l.updated_at.duration_until(l.next_attempt_at).as_secs(),
            delay,
            "{n}"
        );
    }
    let sessions = env.sessions(&c);
    let busy: Vec<_> = sessions
        .iter()
        .filter(|s| s.sip_status == Some(486))
        .collect();
    assert_eq!(busy.len(), 2, "{sessions:?}");
    assert!(busy.iter().all(|s| s.state == SessionState::Failed));
    std::thread::sleep(Duration::from_secs(11));
    let second = env.run_for(&run_args("mixed", &agent.url()), Duration::from_secs(60));
    assert!(
        second.status.success(),
        "{}\n{}",
        show(&second),
        agent.log()
    );
    let leads = env.leads(&c);
    for n in &numbers[1..] {
        let l = by_phone(&leads, n);
        assert_eq!((l.status, l.attempts), (LeadStatus::Failed, 2), "{n}");
    }
    // Failed leads are never dialled again; the done one was dialled once.
    let third = env.run_for(&run_args("mixed", &agent.url()), Duration::from_secs(30));
    assert!(
        third.status.success() && third.stdout.is_empty(),
        "{}",
        show(&third)
    );
    let per_lead = sessions_per_lead(&env.sessions(&c));
    let calls: HashMap<&str, u32> = numbers
        .iter()
        .map(|n| (*n, per_lead[&by_phone(&leads, n).id]))
        .collect();
    assert_eq!(calls[numbers[0]], 1);
    assert!(numbers[1..].iter().all(|n| calls[n] == 2), "{calls:?}");
}

#[test]
fn overlapping_runs_and_a_sigkilled_run_never_dial_a_lead_twice_with_the_real_agent() {
    let env = Env::new();
    let sipp = Sipp::start(&env, Duration::from_secs(120));
    let agent = Agent::start(&env, sipp.addr, 47400);
    let c = env.campaign("crash", 12, &["--concurrency", "3", "--rate", "300/min"]);
    let url = agent.url();
    let args = run_args("crash", &url);
    let first = env
        .cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the first run's calls", || {
        env.sessions(&c).len() >= 2
    });
    // A second run while the first holds the lock: one line, exit 0.
    let second = env.run_for(&args, Duration::from_secs(10));
    assert!(second.status.success(), "{}", show(&second));
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(
        said.contains("another run holds") && said.lines().count() == 1,
        "{said}"
    );
    // Kill the first mid-campaign, with calls live in the agent.
    wait_until(Duration::from_secs(30), "done leads and live calls", || {
        let leads = env.leads(&c);
        leads.iter().any(|l| l.status == LeadStatus::Done)
            && leads.iter().any(|l| l.status == LeadStatus::InProgress)
    });
    let mut first = first;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let rerun = env.run_for(&args, Duration::from_secs(90));
    assert!(rerun.status.success(), "{}\n{}", show(&rerun), agent.log());
    // The rerun settled the killed run's claims from the store.
    let said = String::from_utf8_lossy(&rerun.stdout);
    assert!(said.contains("killed run"), "{said}");
    let sessions = env.sessions(&c);
    let per_lead = sessions_per_lead(&sessions);
    for l in env.leads(&c) {
        // Exactly one final state, and never more calls than attempts.
        assert_eq!(l.status, LeadStatus::Done, "lead {}", l.id);
        let calls = per_lead.get(&l.id).copied().unwrap_or(0);
        assert!(
            calls <= l.attempts,
            "lead {}: {calls} calls, {} attempts",
            l.id,
            l.attempts
        );
        assert_eq!(calls, 1, "lead {}", l.id);
    }
    assert!(sessions.iter().all(|s| s.state.is_terminal()));
}

/// The README's example crontab: its variables and its command line.
fn readme_crontab() -> (Vec<(String, String)>, String) {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```crontab\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("README has a ```crontab block");
    let mut vars = Vec::new();
    let mut command = None;
    for line in block.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        match first.split_once('=') {
            Some((k, v)) if !k.is_empty() => vars.push((k.to_owned(), v.to_owned())),
            _ => {
                // Five schedule fields, then the command.
                let fields: Vec<&str> = line.split_whitespace().collect();
                assert!(fields.len() > 5, "schedule line: {line}");
                command = Some(fields[5..].join(" "));
            }
        }
    }
    (vars, command.expect("a schedule line"))
}

#[test]
fn the_readme_crontab_runs_a_campaign_end_to_end_in_crons_bare_environment() {
    let (vars, command) = readme_crontab();
    let keys: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    for needed in [
        "PATH",
        "CALLBRIDGE_STORE_DATABASE",
        "CALLBRIDGE_AGENT_URL",
        "CALLBRIDGE_TOKEN",
    ] {
        assert!(
            keys.contains(&needed),
            "the crontab sets {needed}: {keys:?}"
        );
    }
    let env = Env::new();
    let sipp = Sipp::start(&env, Duration::from_secs(90));
    let agent = Agent::start(&env, sipp.addr, 47600);
    let name = command
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .expect("campaign run NAME");
    let c = env.campaign(name, 3, &["--concurrency", "3", "--rate", "600/min"]);
    // The machine's values for the example's: binary on PATH, store, agent,
    // token, and the log directory. The crontab calls `campaign` by name:
    // this build's copy goes on PATH under that name.
    let bin_dir = env.dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bins::CAMPAIGN, bin_dir.join("campaign")).unwrap();
    let logs = env.dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let value = |k: &str, v: &str| -> String {
        match k {
            "PATH" => format!("{}:{v}", bin_dir.display()),
            "CALLBRIDGE_STORE_DATABASE" => env.db.display().to_string(),
            "CALLBRIDGE_AGENT_URL" => agent.url(),
            "CALLBRIDGE_TOKEN" => env.token.clone(),
            _ => v.to_owned(),
        }
    };
    let command = command.replace("/var/log/callbridge/", &format!("{}/", logs.display()));
    let cron = || {
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c").arg(&command).env_clear();
        for (k, v) in &vars {
            sh.env(k, value(k, v));
        }
        sh.current_dir(env.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_bounded(sh.spawn().unwrap(), Duration::from_secs(60))
    };
    let out = cron();
    // Nothing on stdout or stderr: cron mails nothing when all went well.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        show(&out)
    );
    let log_file = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("lead ")).count(),
        3,
        "{log}"
    );
    assert!(log.contains(&format!("campaign {name}: 3 calls")), "{log}");
    assert!(env.leads(&c).iter().all(|l| l.status == LeadStatus::Done));
    // The next cron run has nothing to do: quiet, nothing logged.
    let again = cron();
    assert!(again.status.success() && again.stdout.is_empty() && again.stderr.is_empty());
    assert_eq!(std::fs::read_to_string(&log_file).unwrap(), log);
}
