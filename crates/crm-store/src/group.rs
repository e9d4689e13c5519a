//! Group commit: new session rows and sequenced session writes applied in
//! one transaction, for a writer that has several queued at once (the
//! agent's store writer).
//!
//! Each write alone costs a `BEGIN IMMEDIATE`, the read of the session's
//! last applied sequence number, its statements and a `COMMIT`; in WAL
//! mode the commit appends every page the transaction changed, so writes
//! to the same pages (the `call_sessions` and `call_events` b-trees) are
//! written once per group instead of once per write, and with
//! `synchronous = FULL` one fsync covers the group.
//!
//! A group is all or nothing: when any of its operations fails, the
//! transaction is rolled back and [`GroupError`] says which one and why,
//! so the caller can apply the operations one by one to learn each one's
//! fate (every operation is safe to try again: a sequenced write applies
//! once, and a session row that was rolled back was never written).

use crate::error::Error;
use crate::model::SessionId;
use crate::session_types::NewSession;
use crate::sessions::create_session_in;
use crate::store::Store;
use crate::writes::{Applied, SessionWrite, apply_write_in};

/// One operation of a group ([`Store::apply_group`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum GroupOp<'a> {
    /// A new session row, as [`Store::create_session`] writes it.
    Create(&'a NewSession),
    /// A sequenced write, as [`Store::apply_write`] applies it.
    Write {
        /// The session written to.
        session: SessionId,
        /// The write's sequence number (see [`Store::apply_write`]).
        seq: u64,
        /// The write.
        write: &'a SessionWrite,
    },
}

/// Why [`Store::apply_group`] wrote nothing.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", match failed {
    Some(i) => format!("operation {i} of the group"),
    None => "the group's transaction".to_owned(),
})]
pub struct GroupError {
    /// The index of the operation that failed; `None` when the
    /// transaction itself could not begin or commit.
    pub failed: Option<usize>,
    /// Why.
    #[source]
    pub source: Error,
}

impl Store {
    /// Applies `ops` in order in one transaction: every one of them, or
    /// (on the first failure) none. Returns what each did, in order (a
    /// [`GroupOp::Create`] reports [`Applied::Applied`]).
    ///
    /// # Errors
    /// [`GroupError`] naming the operation that failed with the error its
    /// own method would have returned ([`Error::Conflict`],
    /// [`Error::ClaimNotHeld`], [`Error::NotFound`],
    /// [`Error::InvalidTransition`], ...), or the begin or commit that
    /// failed ([`Error::Busy`], [`Error::Database`]: see
    /// [`Error::is_transient`]). Nothing of the group is in the store then.
    ///
    /// # Examples
    /// ```
    /// use callbridge_crm_store::{
    ///     Applied, GroupOp, NewSession, SessionId, SessionState, SessionWrite, Store,
    /// };
    ///
    /// let mut store = Store::open(":memory:")?;
    /// let id = SessionId::new_v4();
    /// let row = NewSession::inbound(id, jiff::Timestamp::now());
    /// let ringing = SessionWrite::State { to: SessionState::Ringing, at: jiff::Timestamp::now() };
    /// let done = store.apply_group(&[
    ///     GroupOp::Create(&row),
    ///     GroupOp::Write { session: id, seq: 1, write: &ringing },
    /// ])?;
    /// assert_eq!(done, [Applied::Applied, Applied::Applied]);
    /// assert_eq!(store.load_session(id)?.session.state, SessionState::Ringing);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_group(&mut self, ops: &[GroupOp<'_>]) -> Result<Vec<Applied>, GroupError> {
        let whole = |source| GroupError {
            failed: None,
            source,
        };
        let writer = self.writer().as_str().to_owned();
        let node = self.node().as_str().to_owned();
        let tx = self.write_tx().map_err(whole)?;
        let mut done = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match *op {
                GroupOp::Create(s) => {
                    create_session_in(&tx, s, &writer, &node).map(|()| Applied::Applied)
                }
                GroupOp::Write {
                    session,
                    seq,
                    write,
                } => apply_write_in(&tx, session, seq, write),
            };
            match r {
                Ok(a) => done.push(a),
                Err(source) => {
                    return Err(GroupError {
                        failed: Some(i),
                        source,
                    });
                }
            }
        }
        tx.commit().map_err(|e| whole(e.into()))?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionState;
    use crate::writes::tests::{t, writes};

    /// A call's writes after its row, numbered from `first`.
    fn call(first: u64) -> Vec<(u64, SessionWrite)> {
        (first..).zip(writes()).collect()
    }

    fn group<'a>(
        rows: &'a [NewSession],
        writes: &'a [(SessionId, u64, SessionWrite)],
    ) -> Vec<GroupOp<'a>> {
        let mut ops: Vec<GroupOp<'a>> = rows.iter().map(GroupOp::Create).collect();
        ops.extend(writes.iter().map(|(id, seq, w)| GroupOp::Write {
            session: *id,
            seq: *seq,
            write: w,
        }));
        ops
    }

    #[test]
    fn a_group_stores_what_the_same_writes_one_by_one_store() {
        let ids = [SessionId::new_v4(), SessionId::new_v4()];
        let rows: Vec<NewSession> = ids
            .iter()
            .map(|id| NewSession::inbound(*id, t(0)))
            .collect();
        let writes: Vec<(SessionId, u64, SessionWrite)> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, id)| call(1 + 5 * i as u64).into_iter().map(|(s, w)| (*id, s, w)))
            .collect();

        let mut grouped = Store::open(":memory:").unwrap();
        let done = grouped.apply_group(&group(&rows, &writes)).unwrap();
        assert_eq!(done, vec![Applied::Applied; rows.len() + writes.len()]);

        let mut single = Store::open(":memory:").unwrap();
        for r in &rows {
            single.create_session(r).unwrap();
        }
        for (id, seq, w) in &writes {
            single.apply_write(*id, *seq, w).unwrap();
        }
        for id in ids {
            let (a, b) = (
                grouped.load_session(id).unwrap(),
                single.load_session(id).unwrap(),
            );
            assert_eq!(a.session.state, SessionState::Ended);
            assert_eq!(
                (a.session.end_reason, a.turns.len(), a.events.len()),
                (b.session.end_reason, b.turns.len(), b.events.len())
            );
        }
        // The same group again: every write was applied, nothing changes.
        let again = grouped.apply_group(&group(&[], &writes)).unwrap();
        assert_eq!(again, vec![Applied::AlreadyApplied; writes.len()]);
        assert_eq!(grouped.load_session(ids[0]).unwrap().turns.len(), 2);
    }

    #[test]
    fn a_failing_operation_rolls_the_whole_group_back_and_is_named() {
        let id = SessionId::new_v4();
        let stranger = SessionId::new_v4();
        let rows = [NewSession::inbound(id, t(0))];
        let mut writes: Vec<(SessionId, u64, SessionWrite)> =
            call(1).into_iter().map(|(s, w)| (id, s, w)).collect();
        // The third operation: a write to a session that does not exist.
        writes.insert(
            1,
            (
                stranger,
                9,
                SessionWrite::State {
                    to: SessionState::Active,
                    at: t(1),
                },
            ),
        );
        let mut s = Store::open(":memory:").unwrap();
        let e = s.apply_group(&group(&rows, &writes)).unwrap_err();
        assert_eq!(e.failed, Some(2));
        assert!(matches!(e.source, Error::NotFound { .. }), "{e}");
        assert!(
            e.to_string().starts_with("operation 2 of the group: "),
            "{e}"
        );
        assert!(
            matches!(s.load_session(id), Err(Error::NotFound { .. })),
            "the row created earlier in the group is rolled back too"
        );
        // A row that exists already fails the group where it stands.
        s.create_session(&rows[0]).unwrap();
        let e = s.apply_group(&group(&rows, &[])).unwrap_err();
        assert_eq!(e.failed, Some(0));
        assert!(matches!(e.source, Error::Conflict { .. }), "{e}");
    }
}
