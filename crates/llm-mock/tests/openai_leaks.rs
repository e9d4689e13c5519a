//! Nothing outlives an OpenAI Realtime session: 500 sequential sessions
//! against the mock leave zero tasks and zero open connections behind, on
//! both sides, whether the handle was closed or dropped. Its own test
//! binary, so the process-wide gauges count only these sessions.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{CallMetadata, OpenAiRealtime, RealtimeModel, stats};
use callbridge_llm_mock::openai::MockOpenAi;
use common::openai::*;
use common::*;

#[tokio::test]
async fn five_hundred_sequential_sessions_leave_no_tasks_or_connections() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let cfg = config(mock.url());
    let sessions_before = stats::sessions_opened();
    for i in 0..500u32 {
        let mut s = OpenAiRealtime
            .open(cfg.clone(), CallMetadata::with_call_id(format!("leak-{i}")))
            .await
            .unwrap();
        if i % 50 == 0 {
            // Some traffic on a few of them.
            send_ulaw(&mut s, &caller_turn_ulaw(100, 0));
        }
        if i % 10 == 9 {
            // Dropped without close: its tasks must still end.
            drop(s);
        } else {
            assert!(s.close().await.clean, "session {i}");
        }
    }
    assert_eq!(stats::sessions_opened() - sessions_before, 500);
    let (tasks, connections) = live_tasks_and_connections_after(Duration::from_secs(3)).await;
    assert_eq!(tasks, 0, "tasks outlived their sessions");
    assert_eq!(connections, 0, "connections outlived their sessions");
    let (st, ok) = mock
        .server()
        .wait_for(Duration::from_secs(3), |s| s.open_connections == 0)
        .await;
    assert!(
        ok,
        "the mock still has {} open connections",
        st.open_connections
    );
    assert_eq!(st.connections, 500);
    assert_eq!(st.setups, 500, "exactly one session.update per session");
    assert_eq!(st.clean_closes, 450);
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    mock.shutdown().await;
}
