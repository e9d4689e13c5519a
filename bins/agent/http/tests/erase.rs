//! `DELETE /api/sessions/{id}`: admin only; the row, transcript, events
//! and recording file go; a second delete is 404.

use axum::http::{Method, StatusCode};
use callbridge_crm_store::jiff::Timestamp;
use callbridge_crm_store::{EndReason, Finish, SessionUpdate};

use super::{Callee, rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_erases_a_session_with_its_recording_and_others_may_not() {
    let r = rig(Callee::Ring, |_| {}).await;
    let id = r.session(None, Some(r.operator_id), 5);
    let wav = r.dir.path().join(format!("{id}.wav"));
    std::fs::write(&wav, b"RIFF").unwrap();
    {
        let mut st = r.store();
        st.update_session(
            id,
            &SessionUpdate {
                recording: Some((wav.clone(), 4)),
                ..SessionUpdate::default()
            },
        )
        .unwrap();
        st.finish_session(
            id,
            &Finish::ended(EndReason::CallerHangup, Timestamp::now()),
        )
        .unwrap();
    }
    let uri = format!("/api/sessions/{id}");
    for token in [&r.operator, &r.viewer] {
        let a = r.req(Method::DELETE, &uri, Some(token)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.error().contains("admin"), "{}", a.error());
    }
    assert!(wav.exists(), "refused deletes touch nothing");
    let a = r.req(Method::DELETE, &uri, Some(&r.admin)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(!wav.exists(), "the recording file is gone");
    assert_eq!(
        r.get(&uri, &r.admin).await.status,
        StatusCode::NOT_FOUND,
        "the row is gone"
    );
    let again = r.req(Method::DELETE, &uri, Some(&r.admin)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bad = r
        .req(Method::DELETE, "/api/sessions/not-a-uuid", Some(&r.admin))
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
}
