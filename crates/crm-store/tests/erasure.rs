//! Erasure through the public API: deleting one session, retention
//! passes, and one number's data; on both backends.
mod common;

use std::path::PathBuf;
use std::time::Duration;

use callbridge_crm_store::*;
use common::{fresh, t};

/// An ended inbound session from `from` at `start` (seconds), ended 60 s
/// later, with one turn, and a recording when `rec` is given.
fn call(s: &mut Store, from: &str, start: i64, rec: Option<&str>) -> SessionId {
    let id = SessionId::new_v4();
    let mut n = NewSession::inbound(id, t(start));
    n.from = Some(Party::new(from).unwrap());
    n.to = Some(Party::new("+4930123456").unwrap());
    s.create_session(&n).unwrap();
    s.append_turns(
        id,
        &[NewTurn {
            seq: 0,
            speaker: Speaker::Caller,
            text: Sensitive::new("hello"),
            start_ms: 0,
            end_ms: Some(900),
        }],
    )
    .unwrap();
    if let Some(path) = rec {
        s.update_session(
            id,
            &SessionUpdate {
                recording: Some((path.into(), 100)),
                ..SessionUpdate::default()
            },
        )
        .unwrap();
    }
    s.finish_session(id, &Finish::ended(EndReason::CallerHangup, t(start + 60)))
        .unwrap();
    id
}

fn deleting_a_session_removes_row_turns_and_events_and_hands_back_the_recording() {
    let (_d, mut s) = fresh();
    let gone = call(&mut s, "+14155550100", 0, Some("/rec/a.wav"));
    let kept = call(&mut s, "+14155550100", 10, None);
    let d = s.delete_session(gone).unwrap();
    assert_eq!(d.recording, Some(PathBuf::from("/rec/a.wav")));
    assert!(matches!(s.get_session(gone), Err(Error::NotFound { .. })));
    assert_eq!(s.load_session(kept).unwrap().turns.len(), 1, "others stay");
    // A second delete is a NotFound, not a silent success.
    assert!(matches!(
        s.delete_session(gone),
        Err(Error::NotFound { .. })
    ));
    // Nothing of it is left in the number's data either.
    let data = s
        .data_of_number(&PhoneNumber::parse("+14155550100").unwrap())
        .unwrap();
    assert_eq!(data.sessions.len(), 1);
    assert_eq!(data.sessions[0].session.id, kept);
}

fn a_live_session_cannot_be_deleted() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    s.set_state(id, SessionState::Active, t(1)).unwrap();
    assert!(matches!(s.delete_session(id), Err(Error::Conflict { .. })));
    assert!(s.get_session(id).is_ok());
}

fn retention_removes_each_kind_after_its_own_limit_and_never_live_calls() {
    let (_d, mut s) = fresh();
    // Ended at 60 s, 1060 s and 2060 s.
    let old = call(&mut s, "+14155550100", 0, Some("/rec/old.wav"));
    let mid = call(&mut s, "+14155550101", 1000, Some("/rec/mid.wav"));
    let new = call(&mut s, "+14155550102", 2000, Some("/rec/new.wav"));
    let live = SessionId::new_v4();
    s.create_session(&NewSession::inbound(live, t(0))).unwrap();
    s.set_state(live, SessionState::Active, t(1)).unwrap();

    // At 2100 s: sessions older than 1500 s go (old), transcripts older
    // than 1000 s (old's is gone with it, mid's goes), recordings older
    // than 30 s (mid's and new's; old's went with its session).
    let policy = Retention {
        sessions: Some(Duration::from_secs(1500)),
        transcripts: Some(Duration::from_secs(1000)),
        recordings: Some(Duration::from_secs(30)),
    };
    let e = s.expire(&policy, t(2100)).unwrap();
    assert_eq!(e.sessions.len(), 1);
    assert_eq!(e.sessions[0].id, old);
    assert_eq!(e.sessions[0].recording, Some(PathBuf::from("/rec/old.wav")));
    assert_eq!(e.transcripts, 1);
    let mut recs = e.recordings.clone();
    recs.sort();
    assert_eq!(
        recs,
        vec![PathBuf::from("/rec/mid.wav"), PathBuf::from("/rec/new.wav")]
    );
    assert!(s.get_session(old).is_err());
    let m = s.load_session(mid).unwrap();
    assert!(m.turns.is_empty(), "transcript expired");
    assert!(!m.events.is_empty(), "events stay with the row");
    assert_eq!(m.session.recording_path, None);
    assert_eq!(s.load_session(new).unwrap().turns.len(), 1);
    assert!(s.get_session(live).is_ok(), "live calls are never expired");
    // A second pass at the same time finds nothing more.
    assert_eq!(s.expire(&policy, t(2100)).unwrap(), Expired::default());
    // No policy, nothing removed.
    assert_eq!(
        s.expire(&Retention::default(), t(1_000_000)).unwrap(),
        Expired::default()
    );
}

fn a_numbers_data_holds_its_sessions_both_ways_its_leads_and_its_dnc_entry() {
    let (_d, mut s) = fresh();
    let number = PhoneNumber::parse("+14155550100").unwrap();
    let a = call(&mut s, "+14155550100", 0, None);
    let _other = call(&mut s, "+14155550199", 5, None);
    let b = SessionId::new_v4();
    let mut n = NewSession::outbound(b, t(10));
    n.to = Some(Party::new("+14155550100").unwrap());
    s.create_session(&n).unwrap();
    let c = common::active_campaign(&mut s, "c", 1);
    s.add_leads(c, &[NewLead::new(number.clone())], t(0))
        .unwrap();
    s.add_dnc(&number, "asked", t(20)).unwrap();
    let data = s.data_of_number(&number).unwrap();
    let ids: Vec<_> = data.sessions.iter().map(|r| r.session.id).collect();
    assert_eq!(ids, vec![a, b], "oldest first, as caller and as callee");
    assert_eq!(data.sessions[0].turns.len(), 1);
    assert_eq!(data.leads.len(), 1);
    assert_eq!(data.dnc.unwrap().reason, "asked");
    let none = s
        .data_of_number(&PhoneNumber::parse("+14155550000").unwrap())
        .unwrap();
    assert!(none.sessions.is_empty() && none.leads.is_empty() && none.dnc.is_none());
}

on_both_backends!(
    deleting_a_session_removes_row_turns_and_events_and_hands_back_the_recording,
    a_live_session_cannot_be_deleted,
    retention_removes_each_kind_after_its_own_limit_and_never_live_calls,
    a_numbers_data_holds_its_sessions_both_ways_its_leads_and_its_dnc_entry,
);
