//! The webhook worker against receivers on loopback: a refused attempt is
//! retried and then delivered (attempts and last status recorded, the
//! signature and idempotency key on every request); a receiver that never
//! answers 2xx is given up at the horizon (failed, with its last error);
//! a profile's row is signed with that profile's secret, and a row whose
//! profile has no webhooks any more is failed, not sent; a row the store
//! writer writes while the worker idles goes out at once (no polling).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callbridge_crm_store::{DeliveryStatus, NewOutbox, NewSession, SessionId, Store};
use callbridge_llm_bridge::TlsRoots;
use callbridge_session::signing::{SIGNATURE_HEADER, verify};
use callbridge_session::webhooks::{Backoff, NoProfiles, Targets, WebhookConfig, worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"worker-test-secret";

/// A receiver that answers each request with the next status of
/// `statuses` (the last one from then on) and keeps the raw requests.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&got);
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let mut buf = vec![0u8; 16 * 1024];
            let mut len = 0;
            // Head and body arrive together for these small requests;
            // read until the body's length is in.
            loop {
                let r = s.read(&mut buf[len..]).await.unwrap_or(0);
                if r == 0 {
                    break;
                }
                len += r;
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let want = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if len >= end + 4 + want {
                        break;
                    }
                }
            }
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..len]).into_owned());
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    (url, got)
}

fn store_with_row(dir: &std::path::Path, url: &str) -> (std::path::PathBuf, SessionId) {
    let db = dir.join("crm.db");
    let mut s = Store::open(&db).unwrap();
    let id = SessionId::new_v4();
    let now = jiff::Timestamp::now();
    s.create_session(&NewSession::inbound(id, now)).unwrap();
    let row = NewOutbox::new(
        format!("{id}:1"),
        "call.started",
        url,
        format!("{{\"id\":\"{id}:1\"}}"),
        now,
    );
    s.enqueue_outbox(id, &[row]).unwrap();
    (db, id)
}

fn cfg(url: &str, give_up_after: Duration) -> WebhookConfig {
    WebhookConfig {
        urls: vec![url.to_owned()],
        secret: Some(callbridge_redact::Secret::new(SECRET.to_vec())),
        timeout: Duration::from_secs(2),
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            give_up_after,
        },
        ..WebhookConfig::default()
    }
}

async fn wait_status(db: &std::path::Path, id: SessionId, want: DeliveryStatus) -> u32 {
    for _ in 0..200 {
        let rows = Store::open(db).unwrap().outbox_for_session(id).unwrap();
        if rows[0].status == want {
            return rows[0].attempts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the row never became {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_attempt_is_retried_then_delivered_signed_with_its_key() {
    let (url, got) = receiver(vec![503, 200]).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = store_with_row(dir.path(), &url);
    let stop = CancellationToken::new();
    let task = worker::start(
        Store::open(&db).unwrap(),
        cfg(&url, Duration::from_secs(60)),
        Arc::new(NoProfiles),
        TlsRoots::Bundled,
        "node-a".into(),
        Arc::new(Notify::new()),
        stop.clone(),
    )
    .await
    .unwrap();
    assert_eq!(wait_status(&db, id, DeliveryStatus::Delivered).await, 2);
    let row = &Store::open(&db).unwrap().outbox_for_session(id).unwrap()[0];
    assert_eq!(row.last_status, Some(200));
    stop.cancel();
    task.await.unwrap();
    let reqs = got.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "one refused, one delivered");
    let now = jiff::Timestamp::now().as_second();
    for (i, r) in reqs.iter().enumerate() {
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("no {name} in {head}"))
        };
        assert_eq!(header("idempotency-key"), format!("{id}:1"));
        assert_eq!(header("x-callbridge-event"), "call.started");
        assert_eq!(header("x-callbridge-delivery-attempt"), (i + 1).to_string());
        verify(SECRET, &header(SIGNATURE_HEADER), body.as_bytes(), now, 300).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_takes_it_is_given_up_at_the_horizon() {
    let (url, got) = receiver(vec![500]).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = store_with_row(dir.path(), &url);
    let stop = CancellationToken::new();
    let task = worker::start(
        Store::open(&db).unwrap(),
        cfg(&url, Duration::from_millis(400)),
        Arc::new(NoProfiles),
        TlsRoots::Bundled,
        "node-a".into(),
        Arc::new(Notify::new()),
        stop.clone(),
    )
    .await
    .unwrap();
    let attempts = wait_status(&db, id, DeliveryStatus::Failed).await;
    stop.cancel();
    task.await.unwrap();
    let row = &Store::open(&db).unwrap().outbox_for_session(id).unwrap()[0];
    assert_eq!(row.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(row.last_status, Some(500));
    assert!(attempts >= 2, "retried before giving up: {attempts}");
    assert_eq!(got.lock().unwrap().len() as u32, attempts);
}

/// One profile, `sales`, with webhooks of its own.
struct Sales(Arc<WebhookConfig>);

impl Targets for Sales {
    fn profile(&self, name: &str) -> Option<Arc<WebhookConfig>> {
        (name == "sales").then(|| Arc::clone(&self.0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiles_row_is_signed_with_its_secret_and_an_orphan_row_is_failed() {
    const SALES_SECRET: &[u8] = b"sales-secret";
    let (url, got) = receiver(vec![200]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let mut s = Store::open(&db).unwrap();
    let id = SessionId::new_v4();
    let now = jiff::Timestamp::now();
    s.create_session(&NewSession::inbound(id, now)).unwrap();
    let row = |seq: u32, target: &str| {
        NewOutbox::new(format!("{id}:{seq}"), "call.started", &url, "{}", now)
            .for_target(Some(target.to_owned()))
    };
    s.enqueue_outbox(id, &[row(1, "sales"), row(2, "gone")])
        .unwrap();
    let sales = WebhookConfig {
        profile: Some("sales".into()),
        secret: Some(callbridge_redact::Secret::new(SALES_SECRET.to_vec())),
        ..cfg(&url, Duration::from_secs(60))
    };
    let stop = CancellationToken::new();
    let task = worker::start(
        Store::open(&db).unwrap(),
        cfg("http://127.0.0.1:9/global", Duration::from_secs(60)),
        Arc::new(Sales(Arc::new(sales))),
        TlsRoots::Bundled,
        "node-a".into(),
        Arc::new(Notify::new()),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut rows = Vec::new();
    for _ in 0..200 {
        rows = Store::open(&db).unwrap().outbox_for_session(id).unwrap();
        if rows.iter().all(|r| r.status != DeliveryStatus::Pending) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rows[0].status, DeliveryStatus::Delivered, "{rows:?}");
    assert_eq!(rows[1].status, DeliveryStatus::Failed, "{rows:?}");
    assert_eq!(
        rows[1].last_error.as_deref(),
        Some("target profile has no webhooks")
    );
    let reqs = got.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1, "the orphan row is never sent");
    let (head, body) = reqs[0].split_once("\r\n\r\n").unwrap();
    let sig = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(SIGNATURE_HEADER)
                .then(|| v.trim().to_owned())
        })
        .unwrap();
    let at = jiff::Timestamp::now().as_second();
    verify(SALES_SECRET, &sig, body.as_bytes(), at, 300).unwrap();
    assert!(
        verify(SECRET, &sig, body.as_bytes(), at, 300).is_err(),
        "not the global secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_store_writer_writes_wakes_the_idle_worker_at_once() {
    use callbridge_session::store_writer::{StoreOp, StoreWriter};
    let (url, got) = receiver(vec![200]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let (writer, thread) = StoreWriter::start(Store::open(&db).unwrap()).unwrap();
    let stop = CancellationToken::new();
    let task = worker::start(
        Store::open(&db).unwrap(),
        cfg(&url, Duration::from_secs(60)),
        Arc::new(NoProfiles),
        TlsRoots::Bundled,
        "node-a".into(),
        writer.outbox_written(),
        stop.clone(),
    )
    .await
    .unwrap();
    // The worker has looked at the empty outbox and waits: its next
    // look on its own is worker::FALLBACK_POLL away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = SessionId::new_v4();
    let now = jiff::Timestamp::now();
    writer.create(NewSession::inbound(id, now)).await.unwrap();
    let written = std::time::Instant::now();
    writer
        .send(StoreOp::Outbox(
            id,
            vec![NewOutbox::new(
                format!("{id}:1"),
                "call.started",
                url.as_str(),
                "{}",
                now,
            )],
        ))
        .await;
    writer.drained().await;
    assert_eq!(wait_status(&db, id, DeliveryStatus::Delivered).await, 1);
    let took = written.elapsed();
    assert!(
        took < worker::FALLBACK_POLL / 4,
        "delivered {took:?} after the write: woken, not polled"
    );
    assert_eq!(got.lock().unwrap().len(), 1);
    stop.cancel();
    task.await.unwrap();
    drop(writer);
    thread.join();
}
