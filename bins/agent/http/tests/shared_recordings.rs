//! Recordings from any node (issue 21): several agents share one
//! recordings directory, mounted wherever each likes; a recording another
//! node wrote (its stored path is that node's) is served from this
//! node's directory by its file name.

use std::path::PathBuf;

use axum::http::StatusCode;
use callbridge_crm_store::SessionUpdate;

use super::reads::with_recording;
use super::{Callee, rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_another_node_wrote_is_served_from_the_shared_directory() {
    let r = rig(Callee::Ring, |_| {}).await;
    let (id, data) = with_recording(&r, 3000);
    // The node that recorded the call mounts the share elsewhere.
    let theirs = PathBuf::from(format!("/mnt/agent-b/recordings/{id}.wav"));
    let u = SessionUpdate {
        recording: Some((theirs, 3000)),
        ..SessionUpdate::default()
    };
    r.store().update_session(id, &u).unwrap();
    let uri = format!("/api/sessions/{id}/recording");
    let a = r.get(&uri, &r.admin).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, data);
    // Not in the shared directory either: 404, as for any missing file.
    std::fs::remove_file(r.dir.path().join(format!("{id}.wav"))).unwrap();
    let a = r.get(&uri, &r.admin).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}
