//! Crash recovery: the store never keeps a call it cannot show.
//!
//! - [`Store::recover`] runs when a process starts. Sessions left in a live
//!   state (`created`, `ringing`, `answered`, `active`) by a process that is
//!   no longer running become `interrupted` (end reason `process-died`,
//!   ended at the time found), and leads left `in-progress` by a dead
//!   process go back to `retry`, due at once (or to `failed` when they
//!   have no attempts left; the crashed attempt counts). Rows of processes
//!   still running (the agent and the dialer share the file) are left
//!   alone: each live row carries its writer's [`WriterId`].
//! - Only this node's rows are looked at (its [`NodeId`](crate::NodeId),
//!   recorded on each session and claim; rows without one, written before
//!   nodes were recorded, count as local): whether a process on another
//!   machine still runs cannot be told from here, so another node's rows
//!   wait for that node to restart. Listings see every node's rows.
//! - Recordings are reconciled next ([`Store::reconcile_with`], in
//!   `recordings`), so that a session recovery just interrupted takes its
//!   end from its recording.

use jiff::Timestamp;
use rusqlite::params;

use crate::error::{Error, Result};
use crate::model::{EndReason, SessionId, SessionState};
use crate::sessions::log_state_change;
use crate::store::{Store, WriterId};
use crate::stored::ms;

/// What [`Store::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Sessions marked `interrupted`.
    pub interrupted: Vec<SessionId>,
    /// Leads put back to `retry`.
    pub released_leads: usize,
    /// Leads marked `failed` (no attempts left).
    pub failed_leads: usize,
}

impl Store {
    /// Marks what dead processes left behind (see the module docs), using
    /// [`WriterId::is_alive`] to tell dead from running.
    pub fn recover(&mut self, now: Timestamp) -> Result<RecoveryReport> {
        let me = self.writer.clone();
        self.recover_with(now, |w| *w == me || w.is_alive())
    }

    /// [`Store::recover`] with a caller-supplied liveness check.
    pub fn recover_with(
        &mut self,
        now: Timestamp,
        is_alive: impl Fn(&WriterId) -> bool,
    ) -> Result<RecoveryReport> {
        let alive = |w: Option<String>| w.map(WriterId::from_string).is_some_and(|w| is_alive(&w));
        let node = self.node.as_str().to_owned();
        let mut report = RecoveryReport::default();
        let tx = self.write_tx()?;
        let mut dead = Vec::new();
        tx.query_each(
            &format!(
                "SELECT id, state, writer FROM call_sessions \
                 WHERE state IN ('created', 'ringing', 'answered', 'active') \
                 AND (node = ?1 OR node IS NULL){}",
                tx.dialect().for_update()
            ),
            params![node],
            |r| {
                if !alive(r.get(2)?) {
                    let id: String = r.get(0)?;
                    let id: SessionId = id
                        .parse()
                        .map_err(|_| Error::Corrupt { what: "session id" })?;
                    dead.push((id, SessionState::from_db(&r.get::<String>(1)?)?));
                }
                Ok::<_, Error>(())
            },
        )?;
        let greatest = tx.dialect().greatest();
        for (id, from) in dead {
            tx.execute(
                &format!(
                    "UPDATE call_sessions SET state = 'interrupted', end_reason = ?2, ended_at = ?3, \
                     duration_ms = CASE WHEN answered_at IS NULL THEN NULL \
                                        ELSE {greatest}(0, ?3 - answered_at) END WHERE id = ?1"
                ),
                params![id.to_string(), EndReason::ProcessDied.as_str(), ms(now)],
            )?;
            log_state_change(
                &tx,
                id,
                now,
                Some(from),
                SessionState::Interrupted,
                Some(EndReason::ProcessDied),
            )?;
            report.interrupted.push(id);
        }
        let mut leads = Vec::new();
        tx.query_each(
            "SELECT l.id, l.claimed_by, l.attempts >= c.max_attempts FROM leads l \
             JOIN campaigns c ON c.id = l.campaign_id WHERE l.status = 'in-progress' \
             AND (l.claimed_node = ?1 OR l.claimed_node IS NULL)",
            params![node],
            |r| {
                if !alive(r.get(1)?) {
                    leads.push((r.get::<i64>(0)?, r.get::<bool>(2)?));
                }
                Ok::<_, Error>(())
            },
        )?;
        for (id, exhausted) in leads {
            tx.execute(
                "UPDATE leads SET status = ?2, next_attempt_at = ?3, claimed_by = NULL, \
                 claimed_node = NULL, \
                 claim_token = NULL, updated_at = ?3 WHERE id = ?1",
                params![id, if exhausted { "failed" } else { "retry" }, ms(now)],
            )?;
            if exhausted {
                report.failed_leads += 1;
            } else {
                report.released_leads += 1;
            }
        }
        tx.commit()?;
        if !report.interrupted.is_empty() || report.released_leads + report.failed_leads > 0 {
            tracing::warn!(
                sessions = report.interrupted.len(),
                released = report.released_leads,
                failed = report.failed_leads,
                "recovered rows left by a dead process"
            );
        }
        Ok(report)
    }
}
