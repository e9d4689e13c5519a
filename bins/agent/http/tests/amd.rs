//! Issue 19: the answering-machine verdict as columns of the session row,
//! shown and filtered by `GET /api/sessions` and shown by
//! `GET /api/sessions/{id}`.

use std::time::Duration;

use axum::http::StatusCode;
use callbridge_crm_store::{AmdVerdict, MachineEnd, SessionId, SessionUpdate};

use super::{Callee, Rig, rig};

/// Stores a verdict (and a machine's end) on a session, as the call does.
fn decide(r: &Rig, id: SessionId, v: AmdVerdict, ms: u64, end: Option<MachineEnd>) {
    let u = SessionUpdate {
        amd_verdict: Some((v, Duration::from_millis(ms))),
        amd_machine_end: end,
        ..SessionUpdate::default()
    };
    r.store().update_session(id, &u).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_show_their_amd_verdict_and_the_list_filters_on_it() {
    let r = rig(Callee::Ring, |_| {}).await;
    let human = r.session(None, None, 30);
    let machine = r.session(None, None, 20);
    let none = r.session(None, None, 10);
    decide(&r, human, AmdVerdict::Human, 1180, None);
    decide(
        &r,
        machine,
        AmdVerdict::Machine,
        2660,
        Some(MachineEnd::Beep),
    );

    let listed = |q: &'static str| {
        let r = &r;
        async move {
            let page: callbridge_api::SessionList = r
                .get(&format!("/api/sessions?{q}"), &r.admin)
                .await
                .json_as();
            page.sessions
        }
    };
    let machines = listed("amd=machine").await;
    assert_eq!(machines.len(), 1);
    let m = &machines[0];
    assert_eq!(m.id, machine.to_string());
    assert_eq!(
        (
            m.amd.as_deref(),
            m.amd_decided_ms,
            m.amd_machine_end.as_deref()
        ),
        (Some("machine"), Some(2660), Some("beep"))
    );
    let humans = listed("amd=human").await;
    assert_eq!(humans.len(), 1);
    assert_eq!(humans[0].id, human.to_string());
    assert_eq!(humans[0].amd_machine_end, None);
    assert!(listed("amd=no_speech").await.is_empty());
    let all = listed("amd=").await;
    assert_eq!(all.len(), 3, "an empty amd is no filter");
    let plain = all.iter().find(|s| s.id == none.to_string()).unwrap();
    assert_eq!((plain.amd.as_ref(), plain.amd_decided_ms), (None, None));

    // Absent fields are left out of the JSON, not null.
    let raw = r
        .get(&format!("/api/sessions/{none}"), &r.admin)
        .await
        .json();
    assert!(raw["session"].get("amd").is_none(), "{raw}");
    let raw = r
        .get(&format!("/api/sessions/{machine}"), &r.admin)
        .await
        .json();
    assert_eq!(raw["session"]["amd"], "machine");
    assert_eq!(raw["session"]["amd_decided_ms"], 2660);
    assert_eq!(raw["session"]["amd_machine_end"], "beep");

    for bad in ["amd=robot", "amd=Machine", "amd=machine_end_beep"] {
        let a = r.get(&format!("/api/sessions?{bad}"), &r.admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(a.error().contains("amd"), "{bad}: {}", a.error());
    }
}
