//! Crash recovery: the store never keeps a call it cannot show, and never
//! loses a recording it could show.
//!
//! - [`Store::recover`] runs when a process starts. Sessions left in a live
//!   state (`created`, `ringing`, `answered`, `active`) by a process that is
//!   no longer running become `interrupted` (end reason `process-died`,
//!   ended at the time found), and leads left `in-progress` by a dead
//!   process go back to `retry`, due at once (or to `failed` when they
//!   have no attempts left; the crashed attempt counts). Rows of processes
//!   still running (the agent and the dialer share the file) are left
//!   alone: each live row carries its writer's [`WriterId`].
//! - [`Store::reconcile`] walks a recordings directory. A file whose name
//!   holds the UUID of a session without a recording is attached to it; a
//!   file with no session row is reported as an orphan and, if asked,
//!   imported as a session of direction `unknown`, state `interrupted`, end
//!   reason `orphan-recording`. Sessions whose recording file is gone are
//!   reported as missing. Paths are compared as strings: pass the directory
//!   in the same form the agent records paths in.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::params;

use crate::error::{Error, Result};
use crate::model::{Direction, EndReason, EventKind, SessionId, SessionState, Transport};
use crate::sessions::log_state_change;
use crate::store::{Store, WriterId, ms, to_i64};

/// File extensions [`Store::reconcile`] treats as recordings.
pub const RECORDING_EXTENSIONS: &[&str] = &["wav", "mp3", "ogg", "opus", "flac", "ulaw", "alaw"];
/// Deepest directory level [`Store::reconcile`] descends to.
pub const MAX_DEPTH: usize = 8;
/// Most files [`Store::reconcile`] looks at in one run.
pub const MAX_FILES: usize = 1_000_000;

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

/// A recording file with no session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRecording {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The session id found in its name, if any.
    pub session_id: Option<SessionId>,
    /// Its modification time, if readable.
    pub modified: Option<Timestamp>,
}

/// What [`Store::reconcile`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Recording files looked at.
    pub scanned: usize,
    /// Files attached to their (recording-less) session.
    pub attached: Vec<(SessionId, PathBuf)>,
    /// Files with no session row.
    pub orphans: Vec<OrphanRecording>,
    /// Sessions created for orphans (when importing).
    pub imported: Vec<SessionId>,
    /// Sessions whose recording file does not exist.
    pub missing: Vec<SessionId>,
    /// True if [`MAX_FILES`] stopped the walk early.
    pub truncated: bool,
}

/// The first UUID found in a file name.
fn uuid_in(name: &str) -> Option<SessionId> {
    let b = name.as_bytes();
    (0..b.len().saturating_sub(35))
        .filter(|&i| name.is_char_boundary(i) && name.is_char_boundary(i + 36))
        .find_map(|i| name[i..i + 36].parse().ok())
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<bool> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let ft = entry.file_type().map_err(io)?;
        let p = entry.path();
        if ft.is_dir() {
            if depth < MAX_DEPTH && walk(&p, depth + 1, out)? {
                return Ok(true);
            }
        } else if ft.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| RECORDING_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            if out.len() >= MAX_FILES {
                return Ok(true);
            }
            out.push(p);
        }
    }
    Ok(false)
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
        let mut report = RecoveryReport::default();
        let tx = self.write_tx()?;
        let mut dead = Vec::new();
        {
            let mut st = tx.prepare(
                "SELECT id, state, writer FROM call_sessions \
                 WHERE state IN ('created', 'ringing', 'answered', 'active')",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if !alive(r.get(2)?) {
                    let id: String = r.get(0)?;
                    let id: SessionId = id
                        .parse()
                        .map_err(|_| Error::Corrupt { what: "session id" })?;
                    dead.push((id, SessionState::from_db(&r.get::<_, String>(1)?)?));
                }
            }
        }
        for (id, from) in dead {
            tx.execute(
                "UPDATE call_sessions SET state = 'interrupted', end_reason = ?2, ended_at = ?3, \
                 duration_ms = CASE WHEN answered_at IS NULL THEN NULL \
                                    ELSE MAX(0, ?3 - answered_at) END WHERE id = ?1",
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
        {
            let mut st = tx.prepare(
                "SELECT l.id, l.claimed_by, l.attempts >= c.max_attempts FROM leads l \
                 JOIN campaigns c ON c.id = l.campaign_id WHERE l.status = 'in-progress'",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if !alive(r.get(1)?) {
                    leads.push((r.get::<_, i64>(0)?, r.get::<_, bool>(2)?));
                }
            }
        }
        for (id, exhausted) in leads {
            tx.execute(
                "UPDATE leads SET status = ?2, next_attempt_at = ?3, claimed_by = NULL, \
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

    /// Matches recording files under `dir` with sessions (see the module
    /// docs); with `import_orphans`, creates a session for each orphan.
    pub fn reconcile(
        &mut self,
        dir: &Path,
        import_orphans: bool,
        now: Timestamp,
    ) -> Result<ReconcileReport> {
        let mut files = Vec::new();
        let mut report = ReconcileReport {
            truncated: walk(dir, 0, &mut files)?,
            ..ReconcileReport::default()
        };
        files.sort();
        report.scanned = files.len();
        let tx = self.write_tx()?;
        let mut known = HashSet::new();
        {
            let mut st = tx.prepare(
                "SELECT id, recording_path FROM call_sessions WHERE recording_path IS NOT NULL",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let (id, p): (String, String) = (r.get(0)?, r.get(1)?);
                if !Path::new(&p).exists() {
                    report.missing.push(
                        id.parse()
                            .map_err(|_| Error::Corrupt { what: "session id" })?,
                    );
                }
                known.insert(p);
            }
        }
        for path in files {
            let Some(p) = path.to_str() else {
                tracing::warn!(path = %path.display(), "recording path is not UTF-8; skipped");
                continue;
            };
            if known.contains(p) {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let bytes = meta.len();
            let id = path.file_name().and_then(|n| n.to_str()).and_then(uuid_in);
            if let Some(id) = id {
                let row: Option<Option<String>> = tx
                    .query_row(
                        "SELECT recording_path FROM call_sessions WHERE id = ?1",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                match row {
                    Some(None) => {
                        tx.execute(
                            "UPDATE call_sessions SET recording_path = ?2, recording_bytes = ?3 \
                             WHERE id = ?1",
                            params![id.to_string(), p, to_i64(bytes, "recording_bytes")?],
                        )?;
                        report.attached.push((id, path.clone()));
                        continue;
                    }
                    Some(Some(_)) => continue,
                    None => {}
                }
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| Timestamp::try_from(m).ok());
            report.orphans.push(OrphanRecording {
                path: path.clone(),
                bytes,
                session_id: id,
                modified,
            });
            if import_orphans {
                let sid = id.unwrap_or_else(SessionId::new_v4);
                let at = ms(modified.unwrap_or(now));
                tx.execute(
                    "INSERT INTO call_sessions (id, direction, transport, state, end_reason, \
                     created_at, ended_at, recording_path, recording_bytes) \
                     VALUES (?1, ?2, ?7, 'interrupted', ?3, ?4, ?4, ?5, ?6)",
                    params![
                        sid.to_string(),
                        Direction::Unknown.as_str(),
                        EndReason::OrphanRecording.as_str(),
                        at,
                        p,
                        to_i64(bytes, "recording_bytes")?,
                        Transport::Unknown.as_str()
                    ],
                )?;
                tx.execute(
                    "INSERT INTO call_events (session_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        sid.to_string(),
                        ms(now),
                        EventKind::Recording.as_str(),
                        serde_json::json!({ "imported": "orphan recording" }).to_string()
                    ],
                )?;
                report.imported.push(sid);
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_found_anywhere_in_a_file_name() {
        let id = SessionId::new_v4();
        assert_eq!(uuid_in(&format!("{id}.wav")), Some(id));
        assert_eq!(uuid_in(&format!("call-{id}-caller.wav")), Some(id));
        assert_eq!(
            uuid_in("é-not-a-uuid-at-all-but-long-enough-to-scan.wav"),
            None
        );
        assert_eq!(uuid_in("short.wav"), None);
    }
}
