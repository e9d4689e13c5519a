//! Issue 21, recordings from any node: two real agents on one PostgreSQL
//! store share one recordings directory (`store.recordings_dir`); a call
//! recorded by one is served by the other's
//! `GET /api/sessions/{id}/recording`, byte for byte. An agent with a
//! directory of its own (no share) answers 404 for it: the share is what
//! makes it work.
//!
//! Without PostgreSQL installed the test skips, loudly.

mod support_agent;

use std::path::Path;
use std::time::Duration;

use callbridge_crm_store::{OpenOptions, SessionFilter, SessionState, Store};
use callbridge_test_support::postgres::PgCluster;
use support_agent::raw_sip::RawCall;
use support_agent::{Agent, Opts};

fn node(url: &str, name: &str, recordings: Option<&Path>) -> Agent {
    let mut env = vec![
        ("CALLBRIDGE_STORE_URL".into(), url.into()),
        ("CALLBRIDGE_STORE_NODE".into(), name.into()),
    ];
    if let Some(dir) = recordings {
        env.push((
            "CALLBRIDGE_STORE_RECORDINGS_DIR".into(),
            dir.display().to_string(),
        ));
    }
    Agent::start(Opts {
        env,
        ..Opts::default()
    })
}

#[test]
fn a_recording_made_by_one_agent_is_served_by_another_sharing_the_directory() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let url = pg.create_database(Some("callbridge"));
    let shared = tempfile::tempdir().unwrap();
    let a = node(&url, "agent-a", Some(shared.path()));
    let b = node(&url, "agent-b", Some(shared.path()));
    let alone = node(&url, "agent-c", None);

    let mut call = RawCall::new("127.0.0.1", a.sip);
    call.invite_and_ack(Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    let sock = call.sock.try_clone().unwrap();
    let bye = call.bye_from(&sock, Duration::from_secs(10));
    assert!(bye.is_some(), "BYE answered");
    let store = Store::open_url(&url, &OpenOptions::default()).unwrap();
    let s = a.wait_for(
        "the call ended with its recording",
        Duration::from_secs(15),
        || {
            let s = store
                .list_sessions(&SessionFilter::default(), 10, None)
                .unwrap()
                .items
                .into_iter()
                .next()?;
            (s.state == SessionState::Ended && s.recording_bytes.is_some_and(|n| n > 44))
                .then_some(s)
        },
    );
    let path = s.recording_path.clone().expect("a recording path");
    assert!(path.starts_with(shared.path()), "{}", path.display());
    let file = std::fs::read(&path).unwrap();

    let uri = format!("/api/sessions/{}/recording", s.id);
    for (agent, name) in [(&a, "a, which recorded it"), (&b, "b, which did not")] {
        let r = support_agent::http::request(agent.http, "GET", &uri, Some(&alone.token), None)
            .unwrap();
        assert_eq!(r.status, 200, "agent {name}: {}", r.text());
        assert_eq!(r.body, file, "agent {name} serves the file byte for byte");
    }
    let r =
        support_agent::http::request(alone.http, "GET", &uri, Some(&alone.token), None).unwrap();
    assert_eq!(r.status, 404, "an agent without the share has no such file");
}
