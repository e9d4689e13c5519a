//! Group commit on both backends: a group of new rows and sequenced
//! writes lands as the same writes one by one would, and a group with a
//! failing operation leaves nothing behind and the connection usable (on
//! PostgreSQL a failed statement aborts the transaction it is in).
mod common;

use callbridge_crm_store::*;
use common::{fresh, t};

fn answered(at: i64) -> SessionWrite {
    SessionWrite::State {
        to: SessionState::Active,
        at: t(at),
    }
}

fn a_group_lands_whole_or_not_at_all_and_the_store_goes_on() {
    let (_d, mut s) = fresh();
    let (a, b) = (SessionId::new_v4(), SessionId::new_v4());
    let rows = [NewSession::inbound(a, t(0)), NewSession::inbound(b, t(0))];
    let turns = SessionWrite::Turns(vec![NewTurn::new(0, Speaker::Caller, "hello", 10)]);
    let end = SessionWrite::Finish(Finish::ended(EndReason::CallerHangup, t(9)));
    let up = answered(1);
    let stranger = SessionId::new_v4();

    // b's row, a's answer, then a write to a session that does not exist.
    let failing = [
        GroupOp::Create(&rows[1]),
        GroupOp::Write {
            session: b,
            seq: 1,
            write: &up,
        },
        GroupOp::Write {
            session: stranger,
            seq: 2,
            write: &turns,
        },
    ];
    let e = s.apply_group(&failing).unwrap_err();
    assert_eq!(e.failed, Some(2));
    assert!(matches!(e.source, Error::NotFound { .. }), "{e}");
    assert!(matches!(s.load_session(b), Err(Error::NotFound { .. })));

    // The connection takes the next group: rows, answers, a turn, an end.
    let ops = [
        GroupOp::Create(&rows[0]),
        GroupOp::Create(&rows[1]),
        GroupOp::Write {
            session: a,
            seq: 1,
            write: &up,
        },
        GroupOp::Write {
            session: b,
            seq: 2,
            write: &up,
        },
        GroupOp::Write {
            session: a,
            seq: 3,
            write: &turns,
        },
        GroupOp::Write {
            session: a,
            seq: 4,
            write: &end,
        },
    ];
    assert_eq!(s.apply_group(&ops).unwrap(), vec![Applied::Applied; 6]);
    let ra = s.load_session(a).unwrap();
    assert_eq!(ra.session.state, SessionState::Ended);
    assert_eq!(ra.turns.len(), 1);
    assert_eq!(
        s.load_session(b).unwrap().session.state,
        SessionState::Active
    );
    // Replayed one by one afterwards: already there.
    assert_eq!(
        s.apply_write(a, 3, &turns).unwrap(),
        Applied::AlreadyApplied
    );
    assert_eq!(s.load_session(a).unwrap().turns.len(), 1);
}

on_both_backends!(a_group_lands_whole_or_not_at_all_and_the_store_goes_on);
