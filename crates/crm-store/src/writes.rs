//! Sequenced writes to a session: what the agent's store writer applies,
//! and replays from its journal after the store could not be written.
//!
//! Every write the agent makes to a session after its row exists carries a
//! sequence number, increasing in the order the writes were made. The
//! session row keeps the number of the last one applied (`write_seq`,
//! schema v7), set in the same transaction as the write itself. A write
//! whose number is not above it was applied already, and applying it again
//! changes nothing ([`Applied::AlreadyApplied`]). That makes replaying a
//! journal idempotent however often a replay is cut short: by a failure
//! half-way, or by the process being killed before the journal was
//! removed.
//!
//! The writer must apply one session's writes in order (a journal is
//! appended and replayed in order), so "not above the last applied" means
//! "applied before".

use jiff::Timestamp;
use rusqlite::params;

use crate::db::{Optional, Tx};
use crate::error::{Entity, Error, Result};
use crate::model::{SessionId, SessionState};
use crate::outbox::{NewOutbox, enqueue_outbox_in};
use crate::session_types::{Finish, NewEvent, NewTurn, SessionUpdate};
use crate::sessions::{
    append_events_in, append_turns_in, finish_session_in, set_state_in, update_session_in,
};
use crate::store::Store;
use crate::stored::to_i64;

/// One write to an existing session (see the module docs).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionWrite {
    /// [`Store::set_state`].
    State {
        /// The new live state.
        to: SessionState,
        /// When the call reached it.
        at: Timestamp,
    },
    /// [`Store::append_turns`].
    Turns(Vec<NewTurn>),
    /// [`Store::append_events`].
    Events(Vec<NewEvent>),
    /// [`Store::update_session`].
    Update(Box<SessionUpdate>),
    /// [`Store::finish_session`] (idempotent by itself as well).
    Finish(Finish),
    /// [`Store::enqueue_outbox`]: the webhook rows of the call's events.
    Outbox(Vec<NewOutbox>),
}

impl SessionWrite {
    /// A short name for logs and metric labels: `state`, `turns`,
    /// `events`, `update`, `finish` or `outbox`.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionWrite::State { .. } => "state",
            SessionWrite::Turns(_) => "turns",
            SessionWrite::Events(_) => "events",
            SessionWrite::Update(_) => "update",
            SessionWrite::Finish(_) => "finish",
            SessionWrite::Outbox(_) => "outbox",
        }
    }
}

/// What [`Store::apply_write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The write is now in the store.
    Applied,
    /// A write with this or a later sequence number was applied to the
    /// session before; nothing changed.
    AlreadyApplied,
}

impl Store {
    /// Applies `write` to session `id` as its write number `seq`, in one
    /// transaction together with the record that `seq` was applied; a
    /// `seq` not above the session's last applied number changes nothing
    /// ([`Applied::AlreadyApplied`]). Sequence numbers start at 1.
    ///
    /// # Errors
    /// Those of the write's own method ([`Error::NotFound`] when the
    /// session row does not exist, [`Error::InvalidTransition`],
    /// [`Error::InvalidInput`], ...), and [`Error::Busy`] or
    /// [`Error::Database`] when the file cannot be written (see
    /// [`Error::is_transient`]).
    pub fn apply_write(
        &mut self,
        id: SessionId,
        seq: u64,
        write: &SessionWrite,
    ) -> Result<Applied> {
        let tx = self.write_tx()?;
        let applied = apply_write_in(&tx, id, seq, write)?;
        if applied == Applied::Applied {
            tx.commit()?;
        }
        Ok(applied)
    }

    /// Rewrites one small row, so the file must take a write: answers
    /// whether the store can be written now (a read or an empty
    /// transaction succeeds on a full or read-only disk).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Database`] when it cannot.
    pub fn probe_write(&mut self, now: Timestamp) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO write_probe (id, at) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            params![crate::stored::ms(now)],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// [`Store::apply_write`] inside `tx` (for [`Store::apply_group`]).
pub(crate) fn apply_write_in(
    tx: &Tx<'_>,
    id: SessionId,
    seq: u64,
    write: &SessionWrite,
) -> Result<Applied> {
    let seq_db = to_i64(seq, "write seq")?;
    if seq_db < 1 {
        return Err(Error::InvalidInput {
            field: "write seq",
            reason: "sequence numbers start at 1",
        });
    }
    let last: Option<i64> = tx
        .query_row(
            &format!(
                "SELECT write_seq FROM call_sessions WHERE id = ?1{}",
                tx.dialect().for_update()
            ),
            params![id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(last) = last else {
        return Err(Error::NotFound {
            entity: Entity::Session,
            id: id.to_string(),
        });
    };
    if seq_db <= last {
        return Ok(Applied::AlreadyApplied);
    }
    match write {
        SessionWrite::State { to, at } => set_state_in(tx, id, *to, *at)?,
        SessionWrite::Turns(t) => append_turns_in(tx, id, t)?,
        SessionWrite::Events(e) => append_events_in(tx, id, e)?,
        SessionWrite::Update(u) => update_session_in(tx, id, u)?,
        SessionWrite::Finish(f) => {
            finish_session_in(tx, id, f)?;
        }
        SessionWrite::Outbox(rows) => enqueue_outbox_in(tx, id, rows)?,
    }
    tx.execute(
        "UPDATE call_sessions SET write_seq = ?2 WHERE id = ?1",
        params![id.to_string(), seq_db],
    )?;
    Ok(Applied::Applied)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{EndReason, EventKind, Speaker};
    use crate::session_types::NewSession;

    pub(crate) fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// One call's writes after its row: the answer, two turns, an event,
    /// the end and an update.
    pub(crate) fn writes() -> Vec<SessionWrite> {
        vec![
            SessionWrite::State {
                to: SessionState::Active,
                at: t(1),
            },
            SessionWrite::Turns(vec![
                NewTurn::new(0, Speaker::Caller, "hello", 10),
                NewTurn::new(1, Speaker::Agent, "hi there", 900),
            ]),
            SessionWrite::Events(vec![NewEvent {
                at: t(2),
                kind: EventKind::Note,
                detail: serde_json::json!({"n": 1}),
            }]),
            SessionWrite::Finish(Finish::ended(EndReason::CallerHangup, t(3))),
            SessionWrite::Update(Box::new(SessionUpdate {
                model: Some("m".into()),
                ..Default::default()
            })),
        ]
    }

    #[test]
    fn replaying_every_write_twice_stores_each_once() {
        let mut s = Store::open(":memory:").unwrap();
        let id = SessionId::new_v4();
        s.create_session(&NewSession::inbound(id, t(0))).unwrap();
        let ws = writes();
        for (i, w) in ws.iter().enumerate() {
            assert_eq!(
                s.apply_write(id, i as u64 + 1, w).unwrap(),
                Applied::Applied
            );
        }
        let before = s.load_session(id).unwrap();
        // A whole replay, then a replay cut short and started again.
        for (i, w) in ws.iter().enumerate().chain(ws.iter().enumerate().take(2)) {
            assert_eq!(
                s.apply_write(id, i as u64 + 1, w).unwrap(),
                Applied::AlreadyApplied
            );
        }
        let after = s.load_session(id).unwrap();
        assert_eq!(after.turns.len(), 2);
        assert_eq!(after.events.len(), before.events.len());
        assert_eq!(after.session.state, SessionState::Ended);
        assert_eq!(after.session.end_reason, Some(EndReason::CallerHangup));
        assert_eq!(after.session.model.as_deref(), Some("m"));
    }

    #[test]
    fn a_refused_write_does_not_count_as_applied() {
        let mut s = Store::open(":memory:").unwrap();
        let id = SessionId::new_v4();
        s.create_session(&NewSession::inbound(id, t(0))).unwrap();
        let bad = SessionWrite::State {
            to: SessionState::Ended,
            at: t(1),
        };
        assert!(matches!(
            s.apply_write(id, 1, &bad),
            Err(Error::InvalidInput { .. })
        ));
        let ok = SessionWrite::State {
            to: SessionState::Ringing,
            at: t(1),
        };
        assert_eq!(s.apply_write(id, 1, &ok).unwrap(), Applied::Applied);
        assert!(matches!(
            s.apply_write(SessionId::new_v4(), 1, &ok),
            Err(Error::NotFound { .. })
        ));
        assert!(s.apply_write(id, 0, &ok).is_err());
    }
}
