//! CRM store throughput and latency: transcript turns appended per second
//! (batches of 100, one transaction each), call sessions created and
//! finished per second, and the due-lead claim latency with 100,000 leads in
//! one campaign. The store lives in a temporary directory on the local disk
//! (WAL, `synchronous = NORMAL`).
//!
//! The same groups run again as `crm_store_pg/...` against PostgreSQL
//! when it is installed: a throw-away cluster on loopback
//! (`callbridge_test_support::postgres`, `fsync = off`: the numbers are the
//! store's and the protocol's cost, not a disk's).
//!
//! `cargo bench --bench crm_store -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;
use std::time::{Duration, Instant};

use callbridge_crm_store::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_763_380_800 + secs).unwrap()
}

/// Where a group's store lives: a SQLite file, or a fresh database on a
/// PostgreSQL cluster.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres(&'static callbridge_test_support::postgres::PgCluster),
}

impl Backend {
    fn prefix(self) -> &'static str {
        match self {
            Backend::Sqlite => "crm_store",
            Backend::Postgres(_) => "crm_store_pg",
        }
    }

    fn store(self) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = match self {
            Backend::Sqlite => Store::open(dir.path().join("bench.sqlite")).unwrap(),
            Backend::Postgres(pg) => {
                Store::open_url(&pg.create_database(None), &OpenOptions::default()).unwrap()
            }
        };
        (dir, s)
    }
}

/// SQLite, and PostgreSQL when it is installed.
fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if let Some(pg) = callbridge_test_support::postgres::PgCluster::shared() {
        out.push(Backend::Postgres(pg));
    }
    out
}

fn turns(c: &mut Criterion) {
    for b in backends() {
        turns_on(c, b);
    }
}

fn sessions(c: &mut Criterion) {
    for b in backends() {
        sessions_on(c, b);
    }
}

fn claims(c: &mut Criterion) {
    for b in backends() {
        claims_on(c, b);
    }
}

fn turns_on(c: &mut Criterion, backend: Backend) {
    const BATCH: u32 = 100;
    let (_dir, mut s) = backend.store();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, at(0))).unwrap();
    let text = "I would like to know more about the offer you sent me last week.";
    let mut seq = 0u32;
    let mut g = c.benchmark_group(format!("{}/append_turns", backend.prefix()));
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    g.bench_function("batch_100", |b| {
        b.iter(|| {
            let batch: Vec<_> = (seq..seq + BATCH)
                .map(|i| NewTurn::new(i, Speaker::Caller, text, u64::from(i) * 1000))
                .collect();
            seq += BATCH;
            s.append_turns(id, black_box(&batch)).unwrap();
        })
    });
    g.finish();
}

fn sessions_on(c: &mut Criterion, backend: Backend) {
    let (_dir, mut s) = backend.store();
    let mut g = c.benchmark_group(format!("{}/session", backend.prefix()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("create_answer_finish", |b| {
        b.iter(|| {
            let id = SessionId::new_v4();
            s.create_session(&NewSession::inbound(id, at(0))).unwrap();
            s.set_state(id, SessionState::Active, at(1)).unwrap();
            s.finish_session(id, &Finish::ended(EndReason::CallerHangup, at(60)))
                .unwrap();
        })
    });
    g.finish();
}

fn claims_on(c: &mut Criterion, backend: Backend) {
    const LEADS: u32 = 100_000;
    let (_dir, mut s) = backend.store();
    let mut cs = CampaignSettings::new("bench", "gemini");
    cs.max_concurrent = LEADS;
    cs.retry = RetryPolicy {
        max_attempts: u32::MAX,
        busy: Duration::ZERO,
        no_answer: Duration::ZERO,
        failed: Duration::ZERO,
        voicemail: Duration::ZERO,
    };
    let camp = s.create_campaign(&cs, at(0)).unwrap();
    s.set_campaign_status(camp, CampaignStatus::Active, at(0))
        .unwrap();
    let leads: Vec<_> = (0..LEADS)
        .map(|i| NewLead::new(PhoneNumber::parse(&format!("+1555{i:07}")).unwrap()))
        .collect();
    s.add_leads(camp, &leads, at(0)).unwrap();
    // A second campaign of 100,000 leads whose window is closed: the claim
    // must answer without walking its queue.
    let mut closed = cs.clone();
    closed.name = "closed".into();
    closed.window = CallingWindow::new(0, 1, Weekdays::NONE).unwrap();
    let shut = s.create_campaign(&closed, at(0)).unwrap();
    s.set_campaign_status(shut, CampaignStatus::Active, at(0))
        .unwrap();
    s.add_leads(shut, &leads, at(0)).unwrap();
    let mut clock = 1;
    let mut g = c.benchmark_group(format!("{}/claim_due_leads_100k", backend.prefix()));
    for limit in [1u32, 10] {
        g.bench_function(format!("limit_{limit}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    clock += 1;
                    let start = Instant::now();
                    let got = s.claim_due_leads(camp, at(clock), limit).unwrap();
                    spent += start.elapsed();
                    assert_eq!(got.len(), limit as usize);
                    // Put them back at the end of the queue (untimed).
                    for l in got {
                        s.record_attempt(l.lead.id, Outcome::Busy, None, at(clock))
                            .unwrap();
                    }
                }
                spent
            })
        });
    }
    g.bench_function("window_closed", |b| {
        b.iter(|| {
            let got = s.claim_due_leads(shut, at(clock), 10).unwrap();
            assert!(got.is_empty());
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = turns, sessions, claims
}
criterion_main!(benches);
