//! Nothing outlives its session: counted with the process-wide gauges, so
//! this binary holds a single test (tests in one binary run concurrently).

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{CallMetadata, GeminiLive, RealtimeModel, stats};
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use common::gemini::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_closed_sessions_leave_no_tasks_or_connections() {
    let mock = MockGemini::start(GeminiScript::default()).await.unwrap();

    // Dropping a handle without close still ends its task and connection.
    let mut s = GeminiLive
        .open(config(mock.url()), CallMetadata::with_call_id("drop"))
        .await
        .unwrap();
    send_frames(&mut s, &caller_turn(100, 0));
    assert_eq!((stats::live_tasks(), stats::live_connections()), (1, 1));
    drop(s);
    assert_eq!(
        live_tasks_and_connections_after(Duration::from_secs(2)).await,
        (0, 0)
    );

    // 500 sequential sessions, each opened, fed a frame and closed cleanly.
    let before = mock.stats();
    for i in 0..500 {
        let mut s = GeminiLive
            .open(
                config(mock.url()),
                CallMetadata::with_call_id(format!("seq-{i}")),
            )
            .await
            .unwrap();
        send_frames(&mut s, &caller_turn(20, 0));
        let outcome = s.close().await;
        assert!(outcome.clean, "session {i}: {outcome:?}");
        assert_eq!(stats::live_tasks(), 0, "session {i} left its task");
    }
    assert_eq!(
        live_tasks_and_connections_after(Duration::from_secs(2)).await,
        (0, 0)
    );
    let (st, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.open_connections == 0)
        .await;
    assert!(
        ok,
        "mock still has {} open connections",
        st.open_connections
    );
    assert_eq!(
        st.setups - before.setups,
        500,
        "exactly one setup per session"
    );
    assert_eq!(st.connections - before.connections, 500);
    assert_eq!(st.clean_closes - before.clean_closes, 500);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    mock.shutdown().await;
}
