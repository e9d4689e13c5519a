//! End-to-end: `agent user add|list|revoke|rotate` against the real
//! binary and a running agent's API. Names are unique and non-empty; a
//! rotated-away or revoked token gets 401 at once; `user list` shows each
//! token's state and last use (recorded off the request path).

mod support_agent;

use std::time::Duration;

use serde_json::Value;
use support_agent::http::request;
use support_agent::{Agent, Opts, run_agent_cmd};

/// Runs `agent user ARGS --config <the agent's>`; (status, stdout, stderr).
fn user(agent: &Agent, args: &[&str]) -> (Option<i32>, String, String) {
    let cfg = agent.config.to_str().unwrap();
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", cfg]);
    let out = run_agent_cmd(&all, &Opts::default(), Duration::from_secs(20));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The status of `GET /api/sessions` with `token`.
fn api_status(agent: &Agent, token: &str) -> u16 {
    request(agent.http, "GET", "/api/sessions", Some(token), None)
        .unwrap()
        .status
}

/// `user list --json`, by name.
fn listed(agent: &Agent, name: &str) -> Value {
    let (code, out, err) = user(agent, &["list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {out}"))
}

#[test]
fn duplicate_and_empty_user_names_are_refused() {
    let agent = Agent::start(Opts::default());
    let (code, token, err) = user(&agent, &["add", "ann", "--role", "viewer"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = user(&agent, &["add", "ann", "--role", "admin"]);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert!(err.contains("exists already"), "{err}");
    for bad in ["", "   ", "42"] {
        let (code, out, err) = user(&agent, &["add", bad, "--role", "viewer"]);
        assert_eq!((code, out.as_str()), (Some(2), ""), "{bad:?}: {err}");
    }
    // The first ann is untouched and is the only one.
    let (_, list, _) = user(&agent, &["list", "--json"]);
    assert_eq!(list.matches("\"name\":\"ann\"").count(), 1, "{list}");
    assert_eq!(listed(&agent, "ann")["role"], "viewer");
    assert_eq!(api_status(&agent, token.trim()), 200);
}

#[test]
fn rotate_kills_the_old_token_and_revoke_kills_the_user_token() {
    let agent = Agent::start(Opts::default());
    let (code, first, err) = user(&agent, &["add", "ops", "--role", "agent-operator"]);
    assert_eq!(code, Some(0), "{err}");
    let first = first.trim().to_owned();
    assert_eq!(api_status(&agent, &first), 200);
    let (code, second, err) = user(&agent, &["rotate", "ops", "--expires", "90d"]);
    assert_eq!(code, Some(0), "{err}");
    let second = second.trim().to_owned();
    assert!(second.starts_with("cbt_") && second != first);
    assert_eq!(api_status(&agent, &first), 401, "the old token is dead");
    assert_eq!(api_status(&agent, &second), 200);
    let u = listed(&agent, "ops");
    assert_eq!(u["token"], "active");
    assert!(u["token_expires_at"].is_string(), "{u}");
    // Revoke by id: the token dies at once, the user stays listed.
    let id = u["id"].as_i64().unwrap().to_string();
    let (code, _, err) = user(&agent, &["revoke", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        api_status(&agent, &second),
        401,
        "a revoked user's token is dead"
    );
    assert_eq!(listed(&agent, "ops")["token"], "revoked");
    let (code, _, err) = user(&agent, &["revoke", "nobody"]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn the_last_use_of_a_token_is_recorded() {
    let agent = Agent::start(Opts::default());
    assert!(listed(&agent, "e2e-admin")["token_last_used_at"].is_null());
    assert_eq!(api_status(&agent, &agent.token), 200);
    // Written by the agent's side task after the answer: wait, bounded.
    let used = agent.wait_for(
        "the last use to be recorded",
        Duration::from_secs(10),
        || {
            let u = listed(&agent, "e2e-admin");
            u["token_last_used_at"].as_str().map(str::to_owned)
        },
    );
    assert!(used.starts_with("20"), "{used}");
}
