//! Erasure, retention and one caller's data: deleting a session with its
//! transcript and events ([`Store::delete_session`]), what a retention
//! policy removes ([`Store::expire`]), and everything stored about one
//! number ([`Store::data_of_number`]).
//!
//! The store owns rows, not files: a deleted session's or an expired
//! recording's path is handed back, and the caller (the agent) removes the
//! file. Turns and events go with their session through the schema's
//! `ON DELETE CASCADE`; a lead that pointed at the session keeps its
//! outcome and loses the link (`ON DELETE SET NULL`). Live sessions are
//! never touched: deleting one is a [`Error::Conflict`], retention skips
//! them.

use std::path::PathBuf;

use jiff::Timestamp;
use rusqlite::params;

use crate::db::{Begin, Optional};
use crate::error::{Entity, Error, Result};
use crate::leads::{LEAD_COLS, Lead, lead_from_row};
use crate::model::{PhoneNumber, SessionId};
use crate::session_types::SessionRecord;
use crate::sessions::{SESSION_COLS, session_from_row};
use crate::store::Store;
use crate::stored::ms;

/// The states of a call still in progress (kept by every erasure).
const LIVE_STATES: &str = "('created', 'ringing', 'answered', 'active')";

/// Most sessions one [`Store::expire`] pass removes per kind, so an hourly
/// pass over a large backlog stays short; the next pass takes the rest.
pub const EXPIRE_BATCH: u32 = 10_000;

/// What [`Store::delete_session`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSession {
    /// The session.
    pub id: SessionId,
    /// Its recording file, for the caller to remove.
    pub recording: Option<PathBuf>,
}

/// How long each kind of data is kept, counted from a session's end (its
/// start when it has no end); `None` keeps it forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Recordings: the file and its columns on the session row.
    pub recordings: Option<std::time::Duration>,
    /// Transcripts: the session's turns (its events and row stay).
    pub transcripts: Option<std::time::Duration>,
    /// Whole sessions: the row, its turns and its events (and recording).
    pub sessions: Option<std::time::Duration>,
}

/// What one [`Store::expire`] pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Sessions deleted, with their recording files to remove.
    pub sessions: Vec<DeletedSession>,
    /// Sessions whose transcript was deleted.
    pub transcripts: u64,
    /// Recordings taken off their session rows: the files to remove.
    pub recordings: Vec<PathBuf>,
}

/// Everything the store holds about one number.
#[derive(Debug, Clone)]
pub struct NumberData {
    /// The sessions where it was either party, oldest first, with their
    /// transcripts and events.
    pub sessions: Vec<SessionRecord>,
    /// The leads with this number (any campaign).
    pub leads: Vec<Lead>,
    /// When and why it went on the do-not-call list, if it is there.
    pub dnc: Option<crate::DncEntry>,
}

fn cutoff(now: Timestamp, keep: std::time::Duration) -> i64 {
    let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    ms(now).saturating_sub(keep)
}

impl Store {
    /// Deletes a session, its transcript and its events, and returns its
    /// recording's path for the caller to remove. [`Error::NotFound`] if
    /// there is no such session; [`Error::Conflict`] while the call is
    /// live.
    pub fn delete_session(&mut self, id: SessionId) -> Result<DeletedSession> {
        let sid = id.to_string();
        let tx = self.write_tx()?;
        let row: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT state, recording_path FROM call_sessions WHERE id = ?1",
                params![sid],
                |r| Ok::<_, Error>((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((state, recording)) = row else {
            return Err(Error::NotFound {
                entity: Entity::Session,
                id: sid,
            });
        };
        if LIVE_STATES.contains(&format!("'{state}'")) {
            return Err(Error::Conflict {
                entity: Entity::Session,
                reason: "the call is still in progress",
            });
        }
        tx.execute("DELETE FROM call_sessions WHERE id = ?1", params![sid])?;
        tx.commit()?;
        Ok(DeletedSession {
            id,
            recording: recording.map(PathBuf::from),
        })
    }

    /// Applies `policy` as of `now`: deletes the sessions, transcripts and
    /// recording links older than their limit (at most [`EXPIRE_BATCH`]
    /// sessions per kind in one pass), ended sessions only. The recording
    /// files are the caller's to remove.
    pub fn expire(&mut self, policy: &Retention, now: Timestamp) -> Result<Expired> {
        let mut out = Expired::default();
        // `COALESCE(ended_at, created_at)`: a session's age counts from
        // its end.
        let old = format!(
            "state NOT IN {LIVE_STATES} AND COALESCE(ended_at, created_at) < ?1 \
             ORDER BY created_at LIMIT {EXPIRE_BATCH}"
        );
        if let Some(keep) = policy.sessions {
            let tx = self.write_tx()?;
            let gone: Vec<(String, Option<String>)> = tx.query_map(
                &format!("SELECT id, recording_path FROM call_sessions WHERE {old}"),
                params![cutoff(now, keep)],
                |r| Ok::<_, Error>((r.get(0)?, r.get(1)?)),
            )?;
            for (id, recording) in gone {
                tx.execute("DELETE FROM call_sessions WHERE id = ?1", params![id])?;
                out.sessions.push(DeletedSession {
                    id: id
                        .parse()
                        .map_err(|_| Error::Corrupt { what: "session id" })?,
                    recording: recording.map(PathBuf::from),
                });
            }
            tx.commit()?;
        }
        if let Some(keep) = policy.transcripts {
            let tx = self.write_tx()?;
            let ids: Vec<String> = tx.query_map(
                &format!(
                    "SELECT id FROM call_sessions WHERE EXISTS \
                     (SELECT 1 FROM transcript_turns t WHERE t.session_id = call_sessions.id) \
                     AND {old}"
                ),
                params![cutoff(now, keep)],
                |r| Ok::<_, Error>(r.get(0)?),
            )?;
            for id in &ids {
                tx.execute(
                    "DELETE FROM transcript_turns WHERE session_id = ?1",
                    params![id],
                )?;
            }
            tx.commit()?;
            out.transcripts = ids.len() as u64;
        }
        if let Some(keep) = policy.recordings {
            let tx = self.write_tx()?;
            let rows: Vec<(String, String)> = tx.query_map(
                &format!(
                    "SELECT id, recording_path FROM call_sessions \
                     WHERE recording_path IS NOT NULL AND {old}"
                ),
                params![cutoff(now, keep)],
                |r| Ok::<_, Error>((r.get(0)?, r.get(1)?)),
            )?;
            for (id, path) in rows {
                tx.execute(
                    "UPDATE call_sessions SET recording_path = NULL, recording_bytes = NULL \
                     WHERE id = ?1",
                    params![id],
                )?;
                out.recordings.push(PathBuf::from(path));
            }
            tx.commit()?;
        }
        Ok(out)
    }

    /// Everything stored about `phone`, read as one snapshot: its sessions
    /// (as either party, oldest first, with transcripts and events), its
    /// leads and its do-not-call entry.
    pub fn data_of_number(&self, phone: &PhoneNumber) -> Result<NumberData> {
        let tx = self.conn.begin(Begin::Read)?;
        let sessions = tx.query_map(
            &format!(
                "SELECT {SESSION_COLS} FROM call_sessions \
                 WHERE from_number = ?1 OR to_number = ?1 ORDER BY created_at, id"
            ),
            params![phone.as_str()],
            session_from_row,
        )?;
        let leads = tx.query_map(
            &format!("SELECT {LEAD_COLS} FROM leads WHERE phone = ?1 ORDER BY id"),
            params![phone.as_str()],
            lead_from_row,
        )?;
        tx.commit()?;
        let dnc = self.get_dnc(phone)?;
        let sessions = sessions
            .into_iter()
            .map(|s| self.load_session(s.id))
            .collect::<Result<Vec<_>>>()?;
        Ok(NumberData {
            sessions,
            leads,
            dnc,
        })
    }
}
