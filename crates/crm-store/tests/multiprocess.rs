//! Two OS processes on one file, and a writer killed with SIGKILL.
//!
//! The workers are this test binary re-run with `--exact worker --ignored`
//! and an environment variable naming the job; `worker` does nothing when
//! run without it. This works under plain `cargo test -p
//! callbridge-crm-store`.
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callbridge_crm_store::*;
use jiff::Timestamp;

const JOB: &str = "CB_STORE_TEST_JOB";
const DB: &str = "CB_STORE_TEST_DB";
const OUT: &str = "CB_STORE_TEST_OUT";
const CAMPAIGN: &str = "CB_STORE_TEST_CAMPAIGN";
const TURN_BATCH: u32 = 50;

#[test]
#[ignore = "worker body of the multi-process tests; they spawn it with an environment job"]
fn worker() {
    let Ok(job) = std::env::var(JOB) else {
        return;
    };
    let db = PathBuf::from(std::env::var(DB).unwrap());
    match job.as_str() {
        "mixed" => mixed_worker(&db),
        "turns" => turns_worker(&db),
        other => panic!("unknown job {other}"),
    }
}

/// For about three seconds (and at least 20 sessions): sessions with
/// turns and events, and lead claims, each success written to the output file after it committed.
fn mixed_worker(db: &Path) {
    let campaign = CampaignId(std::env::var(CAMPAIGN).unwrap().parse().unwrap());
    let mut out = std::fs::File::create(std::env::var(OUT).unwrap()).unwrap();
    let mut s = Store::open(db).unwrap();
    // SQLite's busy handler is not fair: on a loaded machine one process
    // can hold the lock for most of the three seconds, so a worker goes on
    // (up to 20 s) until it has written a few sessions of its own.
    let start = Instant::now();
    let mut written = 0;
    while start.elapsed() < Duration::from_secs(3)
        || (written < 20 && start.elapsed() < Duration::from_secs(20))
    {
        let now = Timestamp::now();
        let id = SessionId::new_v4();
        s.create_session(&NewSession::outbound(id, now)).unwrap();
        s.set_state(id, SessionState::Active, now).unwrap();
        let turns: Vec<_> = (0..5)
            .map(|i| NewTurn::new(i, Speaker::Agent, "words", u64::from(i) * 100))
            .collect();
        s.append_turns(id, &turns).unwrap();
        let ev = NewEvent {
            at: now,
            kind: EventKind::Note,
            detail: serde_json::json!({}),
        };
        s.append_events(id, &[ev.clone(), ev]).unwrap();
        s.finish_session(id, &Finish::ended(EndReason::AgentHangup, now))
            .unwrap();
        writeln!(out, "S {id}").unwrap();
        written += 1;
        for l in s.claim_due_leads(campaign, now, 2).unwrap() {
            s.record_attempt(l.lead.id, Outcome::Completed, Some(id), now)
                .unwrap();
            writeln!(out, "L {}", l.lead.id).unwrap();
        }
    }
    out.flush().unwrap();
}

/// Appends turn batches to one session until killed (or 20 s pass),
/// printing each committed total.
fn turns_worker(db: &Path) {
    let mut s = Store::open(db).unwrap();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, Timestamp::now()))
        .unwrap();
    s.set_state(id, SessionState::Active, Timestamp::now())
        .unwrap();
    println!("SESSION {id}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = "x".repeat(200);
    let mut seq = 0;
    while Instant::now() < deadline {
        let batch: Vec<_> = (seq..seq + TURN_BATCH)
            .map(|i| NewTurn::new(i, Speaker::Caller, text.clone(), u64::from(i)))
            .collect();
        s.append_turns(id, &batch).unwrap();
        seq += TURN_BATCH;
        println!("COMMITTED {seq}");
        std::io::stdout().flush().unwrap();
    }
}

fn spawn(job: &str, db: &Path, extra: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "worker",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(JOB, job)
    .env(DB, db);
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

#[test]
fn two_processes_write_concurrently_without_loss_double_claims_or_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.sqlite");
    let mut s = Store::open(&db).unwrap();
    let c = common::active_campaign(&mut s, "shared", 10_000);
    let leads: Vec<_> = (0..3000)
        .map(|i| NewLead::new(PhoneNumber::parse(&format!("+4420{i:08}")).unwrap()))
        .collect();
    s.add_leads(c, &leads, common::t(-3600)).unwrap();

    let outs: Vec<_> = (0..2).map(|i| dir.path().join(format!("out{i}"))).collect();
    let children: Vec<Child> = outs
        .iter()
        .map(|o| {
            spawn(
                "mixed",
                &db,
                &[(OUT, o.display().to_string()), (CAMPAIGN, c.0.to_string())],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for ch in children {
        let o = ch.wait_with_output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(!text.contains("locked"), "lock error escaped: {text}");
        assert!(o.status.success(), "worker failed: {text}");
        assert!(text.contains("1 passed"), "worker did not run: {text}");
    }

    let mut sessions = HashSet::new();
    let mut claimed = Vec::new();
    for o in &outs {
        let text = std::fs::read_to_string(o).unwrap();
        let (mut ns, mut nl) = (0, 0);
        for line in text.lines() {
            match line.split_once(' ').unwrap() {
                ("S", id) => {
                    sessions.insert(id.parse::<SessionId>().unwrap());
                    ns += 1;
                }
                ("L", id) => {
                    claimed.push(LeadId(id.parse().unwrap()));
                    nl += 1;
                }
                _ => panic!("bad line {line}"),
            }
        }
        // Claims may all go to one worker when the other waits on the
        // lock while the leads run out; sessions are each worker's own.
        assert!(
            ns > 10,
            "each worker did real work ({ns} sessions, {nl} claims)"
        );
        println!("worker wrote {ns} sessions and claimed {nl} leads");
    }
    assert!(!claimed.is_empty(), "the workers claimed leads");
    let unique: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a lead was claimed twice");

    let s = Store::open(&db).unwrap();
    let mut stored = 0;
    let mut cursor = None;
    loop {
        let page = s
            .list_sessions(&SessionFilter::default(), 1000, cursor)
            .unwrap();
        stored += page.items.len();
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        stored,
        sessions.len(),
        "every reported session, and nothing else"
    );
    for id in &sessions {
        let rec = s.load_session(*id).unwrap();
        assert_eq!(rec.session.state, SessionState::Ended);
        assert_eq!(rec.turns.len(), 5);
        assert_eq!(rec.events.len(), 5, "created, active, 2 notes, ended");
    }
    let done = s.lead_counts(c).unwrap();
    let done = done
        .iter()
        .find(|(st, _)| *st == LeadStatus::Done)
        .map_or(0, |x| x.1);
    assert_eq!(done as usize, claimed.len());
    for id in unique {
        assert_eq!(s.get_lead(id).unwrap().attempts, 1);
    }
}

#[test]
fn a_writer_killed_mid_batch_leaves_every_committed_batch_and_no_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.sqlite");
    drop(Store::open(&db).unwrap());
    let mut child = spawn("turns", &db, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut session = None;
    let mut committed = 0u32;
    for line in lines.by_ref() {
        let line = line.unwrap();
        // The harness prints "test worker ... " without a newline first.
        if let Some((_, id)) = line.split_once("SESSION ") {
            session = Some(id.parse::<SessionId>().unwrap());
        } else if let Some(n) = line.strip_prefix("COMMITTED ") {
            committed = n.parse().unwrap();
            if committed >= 40 * TURN_BATCH {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix.
    let status = child.wait().unwrap();
    assert!(!status.success());
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("COMMITTED ") {
            committed = n.parse().unwrap();
        }
    }
    let session = session.expect("worker announced its session");
    assert!(committed >= 40 * TURN_BATCH);

    let mut s = Store::open(&db).unwrap();
    assert!(s.integrity_ok().unwrap());
    let rec = s.load_session(session).unwrap();
    let n = rec.turns.len() as u32;
    assert!(
        n >= committed,
        "{n} turns stored, {committed} reported committed"
    );
    assert_eq!(n % TURN_BATCH, 0, "a partial batch survived");
    assert!(rec.turns.iter().enumerate().all(|(i, t)| t.seq == i as u32));
    // The killed process is dead, so its live session is now interrupted.
    let r = s.recover(Timestamp::now()).unwrap();
    assert_eq!(r.interrupted, vec![session]);
    assert_eq!(
        s.get_session(session).unwrap().state,
        SessionState::Interrupted
    );
}
