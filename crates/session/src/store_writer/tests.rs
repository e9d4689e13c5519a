//! Tests of the store writer with real SQLite files on real filesystems.
//! The fault tests mount a small tmpfs of their own (root only: CI runs
//! as root) and fill it mid-run; without root they skip and say why.
//! (A filesystem cannot be remounted read-only while SQLite holds its
//! file open for writing: Linux answers EBUSY. A full disk is the fault
//! a live store meets.)

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callbridge_crm_store::{
    EndReason, EventKind, Finish, NewEvent, NewSession, NewTurn, SessionId, SessionState,
    SessionWrite, Speaker, Store,
};
use callbridge_test_support::tmpfs::Tmpfs;

use super::journal::{Entry, JOURNAL_FILE, Journal};
use super::*;

fn fast(spool: Option<PathBuf>) -> WriterConfig {
    WriterConfig {
        spool_dir: spool,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        probe_every: Duration::from_millis(50),
        ..WriterConfig::default()
    }
}

fn t(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
}

/// The writes of one call after its row: the answer, `turns` turns (each
/// batch of one), one event, the end.
fn call_ops(id: SessionId, turns: u32) -> Vec<StoreOp> {
    let mut ops = vec![StoreOp::State(id, SessionState::Active, t(1))];
    for i in 0..turns {
        let who = if i % 2 == 0 {
            Speaker::Caller
        } else {
            Speaker::Agent
        };
        ops.push(StoreOp::Turns(
            id,
            vec![NewTurn::new(
                i,
                who,
                format!("turn {i}"),
                u64::from(i) * 1000,
            )],
        ));
    }
    ops.push(StoreOp::Events(
        id,
        vec![NewEvent {
            at: t(5),
            kind: EventKind::Note,
            detail: serde_json::json!({"n": 1}),
        }],
    ));
    ops.push(StoreOp::Finish(
        id,
        Finish::ended(EndReason::CallerHangup, t(9)),
    ));
    ops
}

/// Sends [`call_ops`] to the store thread.
async fn run_call(w: &StoreWriter, id: SessionId, turns: u32) {
    for op in call_ops(id, turns) {
        w.send(op).await;
    }
}

fn assert_complete(db: &Path, id: SessionId, turns: u32) {
    let s = Store::open(db).unwrap();
    let rec = s.load_session(id).unwrap();
    assert_eq!(rec.session.state, SessionState::Ended);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    let seqs: Vec<u32> = rec.turns.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, (0..turns).collect::<Vec<_>>(), "every turn, once");
    let notes = rec
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Note)
        .count();
    assert_eq!(notes, 1, "the event, once");
}

async fn drained(w: &StoreWriter) {
    tokio::time::timeout(Duration::from_secs(20), w.drained())
        .await
        .expect("the backlog reached the store");
}

#[test]
fn journal_lines_read_back_as_the_writes_they_hold() {
    let id = SessionId::new_v4();
    let mut fin = Finish::failed(EndReason::RtpTimeout, t(3));
    fin.sip_status = Some(408);
    let writes = vec![
        SessionWrite::State {
            to: SessionState::Answered,
            at: t(1),
        },
        SessionWrite::Turns(vec![NewTurn::new(3, Speaker::Agent, "héllo \"x\"\n", 12)]),
        SessionWrite::Events(vec![NewEvent {
            at: t(2),
            kind: EventKind::BargeIn,
            detail: serde_json::json!({"a": [1, 2]}),
        }]),
        SessionWrite::Update(Box::new(callbridge_crm_store::SessionUpdate {
            recording: Some(("/r/x.wav".into(), 42)),
            summary: Some(callbridge_crm_store::Sensitive::new("sum")),
            ..Default::default()
        })),
        SessionWrite::Update(Box::new(callbridge_crm_store::SessionUpdate {
            amd_verdict: Some((
                callbridge_crm_store::AmdVerdict::Machine,
                Duration::from_millis(2660),
            )),
            amd_machine_end: Some(callbridge_crm_store::MachineEnd::Silence),
            ..Default::default()
        })),
        SessionWrite::Update(Box::new(callbridge_crm_store::SessionUpdate {
            usage: Some(callbridge_crm_store::Usage {
                input_tokens: Some(30),
                output_tokens: Some(11),
                audio_ms: Some(4000),
                split: Some(callbridge_crm_store::TokenSplit {
                    input_audio: 24,
                    input_text: 6,
                    output_audio: 9,
                    output_text: 2,
                }),
                summary_input_tokens: Some(412),
                summary_output_tokens: Some(38),
            }),
            ..Default::default()
        })),
        SessionWrite::Finish(fin),
        SessionWrite::Outbox(vec![callbridge_crm_store::NewOutbox::new(
            format!("{id}:4"),
            "call.ended",
            "http://127.0.0.1:9/hook",
            "{\"event\":\"call.ended\"}",
            t(4),
        )]),
        SessionWrite::Outbox(vec![
            callbridge_crm_store::NewOutbox::new(
                format!("{id}:5"),
                "call.ended",
                "http://127.0.0.1:9/sales",
                "{}",
                t(5),
            )
            .for_target(Some("sales".into())),
        ]),
    ];
    let mut amd_read_back = 0;
    for (i, w) in writes.into_iter().enumerate() {
        let e = Entry {
            session: id,
            seq: i as u64 + 1,
            write: w,
        };
        let line = e.to_line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back = Entry::from_line(&line[..line.len() - 1]).unwrap();
        assert_eq!((back.session, back.seq), (id, i as u64 + 1));
        // The same line again: nothing was lost on the way.
        assert_eq!(back.to_line(), line);
        if let SessionWrite::Update(u) = &back.write
            && let Some(usage) = u.usage
        {
            assert_eq!(usage.audio_ms, Some(4000));
            assert_eq!(usage.split.map(|s| s.output_audio), Some(9));
            assert_eq!(usage.summary_output_tokens, Some(38));
        }
        if let SessionWrite::Update(u) = &back.write
            && let Some((v, d)) = u.amd_verdict
        {
            assert_eq!(v, callbridge_crm_store::AmdVerdict::Machine);
            assert_eq!(d, Duration::from_millis(2660));
            assert_eq!(
                u.amd_machine_end,
                Some(callbridge_crm_store::MachineEnd::Silence)
            );
            assert!(
                String::from_utf8_lossy(&line).contains("\"amd_machine_end\":\"silence\""),
                "{line:?}"
            );
            amd_read_back += 1;
        }
    }
    assert_eq!(
        amd_read_back, 1,
        "the detection's verdict survives the journal"
    );
    assert!(Entry::from_line(b"{\"session\":\"x\"}").is_err());
}

#[tokio::test]
async fn writes_during_a_full_disk_are_journaled_and_land_once_it_is_freed() {
    let Some(fs) = Tmpfs::mount("3m", "this store-writer fault test") else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let db = fs.path().join("crm.sqlite");
    let (w, thread) =
        StoreWriter::start_with(Store::open(&db).unwrap(), fast(Some(spool.path().into())))
            .unwrap();
    let id = SessionId::new_v4();
    w.create(NewSession::inbound(id, t(0))).await.unwrap();
    assert!(w.healthy());

    let filler = fs.fill();
    run_call(&w, id, 6).await;
    w.flush().await;
    assert!(!w.healthy(), "a full disk makes the store unhealthy");
    let journal = spool.path().join(JOURNAL_FILE);
    assert!(journal.exists(), "the writes went to the journal");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&journal).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let stats = w.health().stats();
    assert!(stats.backlog >= 1 && stats.journaled >= 1, "{stats:?}");
    assert!(
        stats.write_failures.iter().any(|(_, n)| *n > 0),
        "{stats:?}"
    );
    // A new call's row cannot be written: it is refused, not half-made.
    assert_eq!(
        w.create(NewSession::inbound(SessionId::new_v4(), t(1)))
            .await,
        Err(CreateRefused::Failed)
    );

    std::fs::remove_file(filler).unwrap();
    drained(&w).await;
    assert!(w.healthy());
    assert!(!journal.exists(), "the replayed journal is removed");
    assert_eq!(w.health().stats().backlog, 0);
    drop(w);
    drop(thread.join());
    assert_complete(&db, id, 6);
}

#[tokio::test]
async fn with_the_journal_on_the_full_disk_too_writes_wait_in_memory_up_to_the_limit() {
    let Some(fs) = Tmpfs::mount("3m", "this store-writer fault test") else {
        return;
    };
    let db = fs.path().join("crm.sqlite");
    let mut cfg = fast(Some(fs.path().join("spool")));
    cfg.memory_limit = 5;
    let (w, thread) = StoreWriter::start_with(Store::open(&db).unwrap(), cfg).unwrap();
    let id = SessionId::new_v4();
    w.create(NewSession::inbound(id, t(0))).await.unwrap();
    let filler = fs.fill();
    // State + 3 turns + event + finish = 6 writes: one over the bound.
    run_call(&w, id, 3).await;
    w.flush().await;
    let stats = w.health().stats();
    assert_eq!((stats.in_memory, stats.lost), (5, 1), "{stats:?}");
    std::fs::remove_file(filler).unwrap();
    drained(&w).await;
    drop(w);
    drop(thread.join());
    // The write lost was the last one, the end.
    let rec = Store::open(&db).unwrap().load_session(id).unwrap();
    assert_eq!(rec.turns.len(), 3);
    assert_eq!(rec.session.state, SessionState::Active);
}

fn journal_of(dir: &Path, entries: &[Entry]) {
    let mut j = Journal::open(dir);
    j.append(entries).unwrap();
}

#[tokio::test]
async fn a_journal_left_by_a_killed_writer_is_replayed_at_start_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let db = dir.path().join("crm.sqlite");
    let id = SessionId::new_v4();
    let mut store = Store::open(&db).unwrap();
    store
        .create_session(&NewSession::inbound(id, t(0)))
        .unwrap();
    // The first two writes reached the store before the kill; the
    // journal holds them again (a replay cut short) and the rest.
    let entries: Vec<Entry> = vec![
        SessionWrite::State {
            to: SessionState::Active,
            at: t(1),
        },
        SessionWrite::Turns(vec![NewTurn::new(0, Speaker::Caller, "a", 0)]),
        SessionWrite::Turns(vec![NewTurn::new(1, Speaker::Agent, "b", 900)]),
        SessionWrite::Events(vec![NewEvent {
            at: t(5),
            kind: EventKind::Note,
            detail: serde_json::json!({}),
        }]),
        SessionWrite::Finish(Finish::ended(EndReason::CallerHangup, t(9))),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, write)| Entry {
        session: id,
        seq: i as u64 + 1,
        write,
    })
    .collect();
    for e in &entries[..2] {
        store.apply_write(e.session, e.seq, &e.write).unwrap();
    }
    journal_of(&spool, &entries);
    // A torn last line, as a kill mid-append leaves it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(spool.join(JOURNAL_FILE))
        .unwrap()
        .write_all(b"{\"session\":\"")
        .unwrap();

    let (w, thread) = StoreWriter::start_with(store, fast(Some(spool.clone()))).unwrap();
    drained(&w).await;
    assert!(!spool.join(JOURNAL_FILE).exists());
    drop(w);
    drop(thread.join());
    assert_complete(&db, id, 2);
}

#[test]
fn start_up_replay_comes_before_recovery_so_the_journaled_end_wins() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let db = dir.path().join("crm.sqlite");
    let (ended, unfinished) = (SessionId::new_v4(), SessionId::new_v4());
    let mut store = Store::open(&db).unwrap();
    for id in [ended, unfinished] {
        store
            .create_session(&NewSession::inbound(id, t(0)))
            .unwrap();
    }
    let bad_line = b"not json\n";
    journal_of(
        &spool,
        &[
            Entry {
                session: ended,
                seq: 1,
                write: SessionWrite::Turns(vec![NewTurn::new(0, Speaker::Caller, "a", 0)]),
            },
            Entry {
                session: ended,
                seq: 2,
                write: SessionWrite::Finish(Finish::ended(EndReason::AgentHangup, t(4))),
            },
        ],
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(spool.join(JOURNAL_FILE))
        .unwrap()
        .write_all(bad_line)
        .unwrap();
    let report = replay_journal(&mut store, &spool).unwrap();
    assert_eq!((report.applied, report.bad_lines), (2, 1));
    let kept = report.kept.expect("a journal with a bad line is kept");
    assert!(kept.exists() && !spool.join(JOURNAL_FILE).exists());
    // Everyone's writer is dead now.
    store.recover_with(t(10), |_| false).unwrap();
    let e = store.get_session(ended).unwrap();
    assert_eq!(
        (e.state, e.end_reason),
        (SessionState::Ended, Some(EndReason::AgentHangup))
    );
    let u = store.get_session(unfinished).unwrap();
    assert_eq!(u.state, SessionState::Interrupted);
    // Nothing left: a second replay is a no-op.
    assert_eq!(
        replay_journal(&mut store, &spool).unwrap(),
        ReplayReport::default()
    );
}

#[tokio::test]
async fn a_row_written_after_its_call_gave_up_is_ended_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.sqlite");
    let (w, thread) = StoreWriter::start_with(Store::open(&db).unwrap(), fast(None)).unwrap();
    let id = SessionId::new_v4();
    let (ack, rx) = tokio::sync::oneshot::channel();
    // The call stops waiting only after the writer took the row: here the
    // receiver is gone before the writer answers.
    w.send(StoreOp::Create(
        Box::new(NewSession::inbound(id, t(0))),
        Some(ack),
    ))
    .await;
    drop(rx);
    w.flush().await;
    drop(w);
    drop(thread.join());
    let s = Store::open(&db).unwrap();
    match s.get_session(id) {
        // Skipped before the write: no row at all.
        Err(callbridge_crm_store::Error::NotFound { .. }) => {}
        Ok(row) => assert_eq!(
            (row.state, row.end_reason),
            (SessionState::Failed, Some(EndReason::Error))
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_append_after_a_torn_line_starts_on_a_line_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let id = SessionId::new_v4();
    let entry = |seq| Entry {
        session: id,
        seq,
        write: SessionWrite::Turns(vec![NewTurn::new(seq as u32, Speaker::Caller, "x", 0)]),
    };
    journal_of(dir.path(), &[entry(1)]);
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"sess")
        .unwrap();
    // The next run reads the whole line, stops at the torn one, and its
    // first append cuts the torn bytes off.
    let mut j = Journal::open(dir.path());
    match j.next_line().unwrap() {
        journal::Next::Entry(e, off) => {
            assert_eq!(e.seq, 1);
            j.advance(off, false);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(j.next_line().unwrap(), journal::Next::End));
    j.append(&[entry(2)]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().all(|l| Entry::from_line(l.as_bytes()).is_ok()),
        "{text}"
    );
    let mut again = Journal::open(dir.path());
    assert_eq!(again.pending(), 2);
    let mut seqs = Vec::new();
    while let journal::Next::Entry(e, off) = again.next_line().unwrap() {
        seqs.push(e.seq);
        again.advance(off, false);
    }
    assert_eq!(seqs, [1, 2]);
}

/// A writer driven by hand, without its thread: the tests below give it
/// one batch as the thread would after `recv_many`.
fn by_hand(db: &Path, spool: Option<PathBuf>) -> (Writer, Arc<StoreHealth>) {
    by_hand_with(db, fast(spool))
}

fn by_hand_with(db: &Path, cfg: WriterConfig) -> (Writer, Arc<StoreHealth>) {
    let health = Arc::new(StoreHealth::default());
    let w = Writer::new(
        Store::open(db).unwrap(),
        cfg,
        Arc::clone(&health),
        Arc::new(tokio::sync::Notify::new()),
    );
    (w, health)
}

type CreateAck = tokio::sync::oneshot::Receiver<Result<(), CreateRefused>>;

fn create_op(id: SessionId) -> (StoreOp, CreateAck) {
    let (ack, rx) = tokio::sync::oneshot::channel();
    let op = StoreOp::Create(Box::new(NewSession::inbound(id, t(0))), Some(ack));
    (op, rx)
}

#[tokio::test]
async fn a_batch_is_one_transaction_and_answers_its_calls_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.sqlite");
    let (mut w, health) = by_hand(&db, None);
    let ids: Vec<SessionId> = (0..3).map(|_| SessionId::new_v4()).collect();
    let mut batch = Vec::new();
    let mut rows = Vec::new();
    for id in &ids {
        let (op, rx) = create_op(*id);
        batch.push(op);
        rows.push(rx);
        batch.extend(call_ops(*id, 4));
    }
    let (flush, flushed) = tokio::sync::oneshot::channel();
    batch.push(StoreOp::Flush(flush));
    let mut acks = Vec::new();
    w.handle_batch(&mut batch, &mut acks);
    assert!(batch.is_empty());
    let stats = health.stats();
    // Each call: its row, the answer, 4 turns, an event and the end.
    assert_eq!((stats.written, stats.commits), (3 * 8, 1), "{stats:?}");
    assert_eq!(stats.backlog, 0);
    for mut rx in rows {
        assert_eq!(rx.try_recv(), Ok(Ok(())));
    }
    assert_eq!(acks.len(), 1, "the flush is answered with the batch");
    for a in acks {
        a.send(()).unwrap();
    }
    flushed.await.unwrap();
    drop(w);
    for id in ids {
        assert_complete(&db, id, 4);
    }
}

#[tokio::test]
async fn a_refused_write_in_a_batch_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.sqlite");
    let (mut w, health) = by_hand(&db, None);
    let id = SessionId::new_v4();
    let (op, mut row) = create_op(id);
    let mut batch = vec![op];
    batch.extend(call_ops(id, 2));
    // A write to a session that does not exist, in the middle of the call's.
    batch.insert(
        3,
        StoreOp::State(SessionId::new_v4(), SessionState::Active, t(1)),
    );
    let mut acks = Vec::new();
    w.handle_batch(&mut batch, &mut acks);
    let stats = health.stats();
    assert_eq!(stats.rejected, 1, "{stats:?}");
    // The group failed on it; the rest went one by one.
    assert_eq!((stats.written, stats.commits), (6, 6), "{stats:?}");
    assert!(stats.healthy);
    assert_eq!(row.try_recv(), Ok(Ok(())));
    drop(w);
    assert_complete(&db, id, 2);
}

#[tokio::test]
async fn a_batch_meeting_a_full_disk_is_journaled_whole_and_lands_once_it_is_freed() {
    let Some(fs) = Tmpfs::mount("3m", "this store-writer fault test") else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let db = fs.path().join("crm.sqlite");
    let (mut w, health) = by_hand(&db, Some(spool.path().into()));
    let (a, b) = (SessionId::new_v4(), SessionId::new_v4());
    let (op, mut row) = create_op(a);
    let mut acks = Vec::new();
    w.handle_batch(&mut vec![op], &mut acks);
    assert_eq!(row.try_recv(), Ok(Ok(())));

    let filler = fs.fill();
    let (op, mut refused) = create_op(b);
    let mut batch = call_ops(a, 5);
    batch.push(op);
    w.handle_batch(&mut batch, &mut acks);
    w.journal_batch();
    w.publish();
    let stats = health.stats();
    assert!(!stats.healthy);
    assert_eq!((stats.backlog, stats.journaled), (8, 8), "{stats:?}");
    assert_eq!(
        refused.try_recv(),
        Ok(Err(CreateRefused::Failed)),
        "a new call's row is refused, not half-made"
    );

    std::fs::remove_file(filler).unwrap();
    w.drain();
    let stats = health.stats();
    assert!(stats.healthy);
    assert_eq!((stats.backlog, stats.replayed), (0, 8), "{stats:?}");
    drop(w);
    assert_complete(&db, a, 5);
    assert!(matches!(
        Store::open(&db).unwrap().load_session(b),
        Err(callbridge_crm_store::Error::NotFound { .. })
    ));
}

/// What the writer's commit window gathers: writes arriving within it join
/// the batch; a call's row or a flush ends the wait; "off" never waits.
/// On tokio's paused clock: the window's time passes only as the test says.
#[tokio::test(start_paused = true)]
async fn the_commit_window_gathers_writes_and_never_keeps_a_new_call_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.sqlite");
    let (w, _health) = by_hand(&db, None);
    let id = SessionId::new_v4();
    let turn = || StoreOp::Turns(id, vec![NewTurn::new(0, Speaker::Caller, "hi", 0)]);
    let window = Duration::from_millis(10);
    assert_eq!(WriterConfig::default().commit_window, window);

    // Writes within the window join; one after it waits for the next batch.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tx.send(turn()).await.unwrap();
    let late = tokio::spawn({
        let tx = tx.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(6)).await;
            tx.send(StoreOp::State(id, SessionState::Active, t(1)))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(StoreOp::Finish(
                id,
                Finish::ended(EndReason::CallerHangup, t(9)),
            ))
            .await
            .unwrap();
        }
    });
    let start = tokio::time::Instant::now();
    let mut batch = vec![turn()];
    w.gather(&mut rx, &mut batch).await;
    assert_eq!(start.elapsed(), window);
    assert_eq!(batch.len(), 3, "the queued turn and the answer 6 ms later");
    assert!(matches!(batch[2], StoreOp::State(..)));
    late.await.unwrap();
    assert!(matches!(rx.try_recv(), Ok(StoreOp::Finish(..))));

    // A call's row ends the wait at once, and so does a flush.
    let (row, _ack) = create_op(SessionId::new_v4());
    let (flush, _flushed) = tokio::sync::oneshot::channel();
    for urgent in [row, StoreOp::Flush(flush)] {
        tx.send(turn()).await.unwrap();
        tx.send(urgent).await.unwrap();
        let start = tokio::time::Instant::now();
        let mut batch = vec![turn()];
        w.gather(&mut rx, &mut batch).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(batch.len(), 3);
        assert!(matches!(batch[2], StoreOp::Create(..) | StoreOp::Flush(_)));
    }
    // A batch that starts with one does not wait either.
    let (row, _ack) = create_op(SessionId::new_v4());
    tx.send(turn()).await.unwrap();
    let mut batch = vec![row];
    w.gather(&mut rx, &mut batch).await;
    assert_eq!(batch.len(), 1);
    assert!(rx.try_recv().is_ok());

    // "off": nothing is gathered.
    let (off, _h) = by_hand_with(
        &db,
        WriterConfig {
            commit_window: Duration::ZERO,
            ..fast(None)
        },
    );
    tx.send(turn()).await.unwrap();
    let mut batch = vec![turn()];
    off.gather(&mut rx, &mut batch).await;
    assert_eq!(batch.len(), 1);
    // Dropped so the store files close before the directory goes.
    drop((w, off));
}
