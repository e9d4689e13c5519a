//! Crash recovery and recording reconciliation, in one process (the
//! process-kill tests live in `multiprocess.rs`).
mod common;

use std::collections::HashSet;

use callbridge_crm_store::*;
use common::{active_campaign, fresh, leads, t};

fn live_sessions(s: &mut Store) -> Vec<SessionId> {
    let mut ids = Vec::new();
    for st in [
        SessionState::Created,
        SessionState::Ringing,
        SessionState::Active,
    ] {
        let id = SessionId::new_v4();
        s.create_session(&NewSession::inbound(id, t(0))).unwrap();
        if st != SessionState::Created {
            s.set_state(id, st, t(1)).unwrap();
        }
        ids.push(id);
    }
    ids
}

fn recover_interrupts_a_dead_writers_live_sessions_only() {
    let (_d, mut s) = fresh();
    let live = live_sessions(&mut s);
    let done = SessionId::new_v4();
    s.create_session(&NewSession::inbound(done, t(0))).unwrap();
    s.finish_session(done, &Finish::ended(EndReason::CallerHangup, t(2)))
        .unwrap();

    // Our own rows belong to a running process: untouched.
    assert!(s.recover(t(50)).unwrap().interrupted.is_empty());

    let r = s.recover_with(t(100), |_| false).unwrap();
    let got: HashSet<_> = r.interrupted.iter().copied().collect();
    assert_eq!(got, live.iter().copied().collect());
    for id in &live {
        let ses = s.load_session(*id).unwrap();
        assert_eq!(ses.session.state, SessionState::Interrupted);
        assert_eq!(ses.session.end_reason, Some(EndReason::ProcessDied));
        assert_eq!(ses.session.ended_at, Some(t(100)));
        assert_eq!(ses.events.last().unwrap().detail["to"], "interrupted");
    }
    assert_eq!(
        s.get_session(done).unwrap().end_reason,
        Some(EndReason::CallerHangup)
    );
    // A late finish from the dead process's view changes nothing.
    assert!(matches!(
        s.finish_session(live[2], &Finish::ended(EndReason::CallerHangup, t(200))),
        Ok(FinishResult::AlreadyFinished {
            state: SessionState::Interrupted,
            ..
        })
    ));
}

fn recover_releases_a_dead_dialers_leads_for_retry_or_fails_exhausted_ones() {
    let (_d, mut s) = fresh();
    let mut cs = CampaignSettings::new("c", "gemini");
    cs.retry.max_attempts = 1;
    cs.max_concurrent = 10;
    let one = s.create_campaign(&cs, t(0)).unwrap();
    s.set_campaign_status(one, CampaignStatus::Active, t(0))
        .unwrap();
    let many = active_campaign(&mut s, "m", 10);
    s.add_leads(one, &leads(2), t(0)).unwrap();
    s.add_leads(many, &leads(3), t(0)).unwrap();
    assert_eq!(s.claim_due_leads(one, t(1), 10).unwrap().len(), 2);
    assert_eq!(s.claim_due_leads(many, t(1), 10).unwrap().len(), 3);

    assert_eq!(s.recover(t(2)).unwrap(), RecoveryReport::default());
    let r = s.recover_with(t(5), |_| false).unwrap();
    assert_eq!((r.released_leads, r.failed_leads), (3, 2));
    assert_eq!(s.lead_counts(one).unwrap(), vec![(LeadStatus::Failed, 2)]);
    let again = s.claim_due_leads(many, t(5), 10).unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|l| l.lead.attempts == 2));
}

fn reconcile_attaches_reports_imports_orphans_and_finds_missing_files() {
    let (d, mut s) = fresh();
    let rec = d.path().join("recordings");
    std::fs::create_dir_all(rec.join("2026/11")).unwrap();
    // A session whose process died before it stored its recording.
    let no_rec = SessionId::new_v4();
    s.create_session(&NewSession::inbound(no_rec, t(0)))
        .unwrap();
    std::fs::write(rec.join(format!("2026/11/{no_rec}.wav")), b"RIFF1234").unwrap();
    // A session that knows its recording.
    let known = SessionId::new_v4();
    s.create_session(&NewSession::inbound(known, t(0))).unwrap();
    let known_path = rec.join(format!("{known}.wav"));
    std::fs::write(&known_path, b"RIFF").unwrap();
    s.update_session(
        known,
        &SessionUpdate {
            recording: Some((known_path.clone(), 4)),
            ..Default::default()
        },
    )
    .unwrap();
    // A session whose file was deleted.
    let gone = SessionId::new_v4();
    s.create_session(&NewSession::inbound(gone, t(0))).unwrap();
    s.update_session(
        gone,
        &SessionUpdate {
            recording: Some((rec.join("deleted.wav"), 4)),
            ..Default::default()
        },
    )
    .unwrap();
    // Orphans: one named by an unknown session id, one not.
    let lost = SessionId::new_v4();
    std::fs::write(rec.join(format!("call-{lost}-mixed.WAV")), b"RIFF12").unwrap();
    std::fs::write(rec.join("mystery.mp3"), b"ID3").unwrap();
    std::fs::write(rec.join("notes.txt"), b"not audio").unwrap();

    let r = s.reconcile(&rec, false, t(10)).unwrap();
    assert_eq!(r.scanned, 4);
    assert_eq!(r.attached.len(), 1);
    assert_eq!(r.attached[0].0, no_rec);
    assert_eq!(r.missing, vec![gone]);
    assert_eq!(r.orphans.len(), 2);
    assert!(
        r.orphans
            .iter()
            .any(|o| o.session_id == Some(lost) && o.bytes == 6)
    );
    assert!(r.imported.is_empty());
    assert_eq!(s.get_session(no_rec).unwrap().recording_bytes, Some(8));

    let r = s.reconcile(&rec, true, t(20)).unwrap();
    assert!(r.attached.is_empty());
    assert_eq!(r.imported.len(), 2);
    assert!(r.imported.contains(&lost));
    let ses = s.get_session(lost).unwrap();
    assert_eq!(ses.direction, Direction::Unknown);
    assert_eq!(ses.transport, Transport::Unknown);
    assert_eq!(ses.state, SessionState::Interrupted);
    assert_eq!(ses.end_reason, Some(EndReason::OrphanRecording));

    let r = s.reconcile(&rec, true, t(30)).unwrap();
    assert!(r.orphans.is_empty() && r.imported.is_empty() && r.attached.is_empty());
}

fn reconcile_of_a_missing_directory_is_an_io_error() {
    let (d, mut s) = fresh();
    assert!(matches!(
        s.reconcile(&d.path().join("nope"), false, t(0)),
        Err(Error::Io { .. })
    ));
}

on_both_backends!(
    recover_interrupts_a_dead_writers_live_sessions_only,
    recover_releases_a_dead_dialers_leads_for_retry_or_fails_exhausted_ones,
    reconcile_attaches_reports_imports_orphans_and_finds_missing_files,
    reconcile_of_a_missing_directory_is_an_io_error,
);
