//! Issue 21: the dialer over several agents on one PostgreSQL store. Two
//! agents (nodes `agent-a`, `agent-b`) share the store; three `campaign
//! run` processes start at once, each given both agents (`--agent` twice):
//! one per campaign of 100 leads (200 leads), and a second run of the
//! first campaign, which finds the campaign's advisory lock held and
//! leaves it to the other. Every lead ends with exactly one call for its
//! one attempt, every attempt is recorded, and each campaign's calls are
//! spread over both agents.
//!
//! Without PostgreSQL installed the test skips, loudly.

mod campaign_support;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use callbridge_crm_store::{LeadStatus, NodeId, Outcome, SessionState};
use campaign_support::real::{Agent, Sipp};
use campaign_support::*;

fn run_args<'a>(name: &'a str, a: &'a str, b: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        name,
        "--agent",
        a,
        "--agent",
        b,
        "--poll",
        "200ms",
        "--agent-wait",
        "30s",
    ]
}

#[test]
fn two_dialers_over_two_agents_dial_every_lead_once_per_attempt_and_record_it() {
    let Some(env) = Env::on_postgres() else {
        eprintln!("SKIPPED: PostgreSQL (initdb) not installed; scripts/test installs it");
        return;
    };
    let sipp = Sipp::start(&env, Duration::from_secs(230));
    let a = Agent::start_as(&env, sipp.addr, 47800, Some("agent-a"));
    let b = Agent::start_as(&env, sipp.addr, 48000, Some("agent-b"));
    let opts = [
        "--concurrency",
        "10",
        "--rate",
        "600/min",
        "--max-attempts",
        "2",
    ];
    let north = env.campaign("north", 100, &opts);
    let south = env.campaign("south", 100, &opts);
    let (ua, ub) = (a.url(), b.url());
    let spawn = |name: &str| {
        env.cmd(&run_args(name, &ua, &ub))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [spawn("north"), spawn("south"), spawn("north")];
    let outs: Vec<_> = runs
        .into_iter()
        .map(|c| wait_bounded(c, Duration::from_secs(200)))
        .collect();
    for out in &outs {
        assert!(
            out.status.success(),
            "{}\n--- agent a\n{}\n--- agent b\n{}",
            show(out),
            a.log(),
            b.log()
        );
    }
    let yielded = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("another run holds"))
        .count();
    assert_eq!(
        yielded, 1,
        "one of the two runs of north left it to the other"
    );

    let (node_a, node_b) = (NodeId::new("agent-a").ok(), NodeId::new("agent-b").ok());
    for c in [&north, &south] {
        let leads = env.leads(c);
        assert_eq!(leads.len(), 100);
        let sessions = env.sessions(c);
        let per_lead = sessions_per_lead(&sessions);
        for l in &leads {
            let calls = per_lead.get(&l.id).copied().unwrap_or(0);
            assert_eq!(
                (l.status, l.attempts, l.last_outcome, calls),
                (LeadStatus::Done, 1, Some(Outcome::Completed), 1),
                "lead {} of {}: every lead dialled once for its one attempt, and recorded",
                l.id,
                c.settings.name
            );
            let s = sessions.iter().find(|s| s.lead == Some(l.id)).unwrap();
            assert_eq!(l.last_session, Some(s.id), "the attempt names its call");
        }
        assert!(sessions.iter().all(|s| s.state == SessionState::Ended));
        let mut by_node: HashMap<String, usize> = HashMap::new();
        for s in &sessions {
            assert!(s.node == node_a || s.node == node_b, "{s:?}");
            *by_node
                .entry(s.node.as_ref().map(ToString::to_string).unwrap_or_default())
                .or_default() += 1;
        }
        println!("campaign {}: calls per agent {by_node:?}", c.settings.name);
        assert_eq!(
            by_node.len(),
            2,
            "{} spread over both agents",
            c.settings.name
        );
        assert!(
            by_node.values().all(|&n| n >= 30),
            "round-robin: {by_node:?}"
        );
    }
}
