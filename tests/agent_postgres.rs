//! End-to-end: the real `agent` binary on a PostgreSQL store (`store.url`,
//! from `CALLBRIDGE_STORE_URL`), two agents sharing it as two nodes.
//! Each call's row names the agent that took it; the HTTP API of either
//! agent lists both agents' calls; an agent killed mid-call and restarted
//! marks only its own call interrupted, while the other agent's call goes
//! on and ends normally.
//!
//! PostgreSQL runs as a throw-away cluster made by the test
//! (`callbridge_test_support::postgres`); without PostgreSQL installed the
//! test skips, loudly.

mod support_agent;

use std::time::Duration;

use callbridge_crm_store::{
    EndReason, NodeId, OpenOptions, Session, SessionFilter, SessionId, SessionState, Store,
};
use callbridge_test_support::postgres::PgCluster;
use support_agent::raw_sip::RawCall;
use support_agent::{Agent, Opts};

/// Options putting the agent on the store at `url` as node `node`.
fn on_postgres(url: &str, node: &str) -> Opts {
    Opts {
        env: vec![
            ("CALLBRIDGE_STORE_URL".into(), url.into()),
            ("CALLBRIDGE_STORE_NODE".into(), node.into()),
        ],
        // Long enough that the other agent's silent call outlives the
        // kill and restart.
        no_speech_timeout: "120s",
        ..Opts::default()
    }
}

fn sessions(url: &str) -> Vec<Session> {
    Store::open_url(url, &OpenOptions::default())
        .unwrap()
        .list_sessions(&SessionFilter::default(), 100, None)
        .unwrap()
        .items
}

fn session(url: &str, id: SessionId) -> Session {
    Store::open_url(url, &OpenOptions::default())
        .unwrap()
        .get_session(id)
        .unwrap()
}

fn node(name: &str) -> Option<NodeId> {
    Some(NodeId::new(name).unwrap())
}

#[test]
fn two_agents_share_a_postgresql_store_and_a_restart_recovers_only_its_own_call() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let url = pg.create_database(Some("callbridge"));
    let mut a = Agent::start(on_postgres(&url, "agent-a"));
    let b = Agent::start(on_postgres(&url, "agent-b"));

    let mut call_a = RawCall::new("127.0.0.1", a.sip);
    call_a.invite_and_ack(Duration::from_secs(15));
    let mut call_b = RawCall::new("127.0.0.1", b.sip);
    call_b.invite_and_ack(Duration::from_secs(15));

    // Both calls are in the one store, each with the node that took it.
    let live = a.wait_for(
        "both calls live in the store",
        Duration::from_secs(10),
        || {
            let all = sessions(&url);
            (all.len() == 2 && all.iter().all(|s| s.state == SessionState::Active)).then_some(all)
        },
    );
    let of = |n: &str| live.iter().find(|s| s.node == node(n)).unwrap().id;
    let (id_a, id_b) = (of("agent-a"), of("agent-b"));

    // Either agent's API lists both agents' calls. (The admin user is
    // one row of the shared store: starting b gave it a new token.)
    for agent in [&a, &b] {
        let r =
            support_agent::http::request(agent.http, "GET", "/api/sessions", Some(&b.token), None)
                .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        let listed = body["sessions"].as_array().expect("a page of sessions");
        assert_eq!(listed.len(), 2, "{body}");
    }

    // Agent a dies mid-call and comes back on the same store and node.
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(10));
    drop(call_a);
    assert!(!session(&url, id_a).state.is_terminal());
    let a2 = Agent::start(on_postgres(&url, "agent-a"));
    let s = session(&url, id_a);
    assert_eq!(s.state, SessionState::Interrupted, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::ProcessDied));
    // Agent b's call was not a's to recover: it goes on, and ends as
    // calls end.
    assert_eq!(session(&url, id_b).state, SessionState::Active);
    let sock = call_b.sock.try_clone().unwrap();
    let ok = call_b.bye_from(&sock, Duration::from_secs(10));
    assert_eq!(
        ok.as_deref().and_then(support_agent::raw_sip::status),
        Some(200),
        "BYE answered: {ok:?}"
    );
    let ended = b.wait_for("b's call ended", Duration::from_secs(10), || {
        let s = session(&url, id_b);
        s.state.is_terminal().then_some(s)
    });
    assert_eq!(ended.state, SessionState::Ended, "{ended:?}");
    assert_eq!(ended.end_reason, Some(EndReason::CallerHangup));
    drop(a2);
}
