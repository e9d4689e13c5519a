//! The worker's looks at an idle outbox: none but the first until it is
//! woken or its fallback poll comes (issue 22: no polling every half
//! second on every agent).

use super::*;
use crate::webhooks::NoProfiles;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_looks_at_the_store_once_until_woken() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("crm.db")).unwrap();
    let wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let (task, looks) = start_counted(
        store,
        WebhookConfig::default(),
        Arc::new(NoProfiles),
        TlsRoots::Bundled,
        "node-a".into(),
        Arc::clone(&wake),
        stop.clone(),
    )
    .await
    .unwrap();
    // Two seconds (four of the old half-second polls): an empty outbox
    // is looked at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(looks.load(Ordering::Relaxed), 1);
    // A wake-up is one more look, at once, and then quiet again.
    wake.notify_one();
    for _ in 0..200 {
        if looks.load(Ordering::Relaxed) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(looks.load(Ordering::Relaxed), 2);
    stop.cancel();
    task.await.unwrap();
}
