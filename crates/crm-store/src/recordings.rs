//! Recording files and their sessions: the store never loses a recording
//! it could show.
//!
//! [`Store::reconcile_with`] walks a recordings directory after
//! [`Store::recover`] (start-up) and:
//!
//! - hands each file that may need it to the caller's probe, which reads
//!   (and when reconciling, repairs) the file's header and says how much
//!   audio it holds ([`RecordingFacts`]); the store knows no audio format,
//!   the agent brings the WAV code (`callbridge_rtp::wav`);
//! - attaches a file whose name holds the UUID of a session without a
//!   recording to that session (path, size);
//! - for a session a dead process left (`interrupted`, `process-died`),
//!   takes the call's end from its recording: ended at its start plus the
//!   audio's length (the recording starts with the call), instead of the
//!   time recovery ran;
//! - reports a file with no session row as an orphan and, if asked,
//!   imports it as a session of direction and transport `unknown`, state
//!   `interrupted`, end reason `orphan-recording`, timed by the file;
//! - reports sessions whose recording file is gone as missing.
//!
//! Files of sessions that another running process is still writing (a
//! live state, a live writer other than this process) are left alone.
//! [`Store::audit_recordings`] finds the same without writing anything
//! (`agent store check`). Paths are compared as strings: pass the
//! directory in the same form the agent records paths in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::params;

use crate::db::{Conn, Optional};
use crate::node::NodeId;

use crate::error::{Error, Result};
use crate::model::{Direction, EndReason, EventKind, SessionId, Transport};
use crate::store::{Store, WriterId};
use crate::stored::{ms, to_i64};

/// File extensions [`Store::reconcile`] treats as recordings.
pub const RECORDING_EXTENSIONS: &[&str] = &["wav", "mp3", "ogg", "opus", "flac", "ulaw", "alaw"];
/// Deepest directory level [`Store::reconcile`] descends to.
pub const MAX_DEPTH: usize = 8;
/// Most files [`Store::reconcile`] looks at in one run.
pub const MAX_FILES: usize = 1_000_000;

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

/// What a probe found in one recording file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingFacts {
    /// The file's size (after any repair).
    pub bytes: u64,
    /// How long its audio lasts, when the probe can tell.
    pub duration: Option<Duration>,
    /// The header did not describe the file: repaired when reconciling,
    /// to be repaired when auditing.
    pub stale: bool,
}

/// What [`Store::reconcile`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Recording files looked at.
    pub scanned: usize,
    /// Files attached to their (recording-less) session (when auditing:
    /// that would be attached).
    pub attached: Vec<(SessionId, PathBuf)>,
    /// Files with no session row.
    pub orphans: Vec<OrphanRecording>,
    /// Sessions created for orphans (when importing).
    pub imported: Vec<SessionId>,
    /// Sessions whose recording file does not exist.
    pub missing: Vec<SessionId>,
    /// Files whose header was stale (repaired when reconciling).
    pub stale: Vec<PathBuf>,
    /// Files the probe could not read as recordings.
    pub unreadable: Vec<PathBuf>,
    /// Interrupted sessions whose end was taken from their recording.
    pub ends_from_recording: Vec<SessionId>,
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

/// A session row as reconciliation needs it.
struct Row {
    id: SessionId,
    recording: Option<String>,
    bytes: Option<i64>,
    /// Live and written by another running process.
    busy: bool,
    /// `interrupted` by recovery (`process-died`).
    died: bool,
}

/// Who is reconciling: this process, on this node.
struct Me {
    writer: WriterId,
    node: NodeId,
}

fn row_of(r: &crate::db::Row<'_>, me: &Me) -> Result<Row> {
    let id: String = r.get(0)?;
    let state: String = r.get(3)?;
    let writer: Option<String> = r.get(4)?;
    let end_reason: Option<String> = r.get(5)?;
    let node: Option<String> = r.get(6)?;
    // A live session of another node is that node's to finish (its
    // process cannot be looked up here); rows without a node are local.
    let other_node = node.is_some_and(|n| n != me.node.as_str());
    let live = matches!(
        state.as_str(),
        "created" | "ringing" | "answered" | "active"
    );
    Ok(Row {
        id: id
            .parse()
            .map_err(|_| Error::Corrupt { what: "session id" })?,
        recording: r.get(1)?,
        bytes: r.get(2)?,
        busy: live
            && (other_node
                || writer
                    .map(WriterId::from_string)
                    .is_some_and(|w| w != me.writer && w.is_alive())),
        died: state == "interrupted"
            && end_reason.as_deref() == Some(EndReason::ProcessDied.as_str()),
    })
}

const ROW_COLUMNS: &str = "id, recording_path, recording_bytes, state, writer, end_reason, node";

fn row_by_id(conn: &Conn, id: SessionId, me: &Me) -> Result<Option<Row>> {
    conn.query_row(
        &format!("SELECT {ROW_COLUMNS} FROM call_sessions WHERE id = ?1"),
        params![id.to_string()],
        |r| row_of(r, me),
    )
    .optional()
}

/// Whether reconciliation writes (and its probe repairs) or only looks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Audit,
    Apply { import_orphans: bool },
}

fn size_of(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The walk and the decisions, shared by reconciling and auditing; writes
/// only in [`Mode::Apply`] (on `conn`, a write transaction then).
fn reconcile_on(
    conn: &Conn,
    me: &Me,
    dir: &Path,
    mode: Mode,
    now: Timestamp,
    probe: &mut dyn FnMut(&Path) -> Option<RecordingFacts>,
) -> Result<ReconcileReport> {
    let mut files = Vec::new();
    let mut report = ReconcileReport {
        truncated: walk(dir, 0, &mut files)?,
        ..ReconcileReport::default()
    };
    files.sort();
    report.scanned = files.len();
    let apply = matches!(mode, Mode::Apply { .. });
    let mut known: HashMap<String, Row> = HashMap::new();
    conn.query_each(
        &format!("SELECT {ROW_COLUMNS} FROM call_sessions WHERE recording_path IS NOT NULL"),
        &[],
        |r| {
            let row = row_of(r, me)?;
            let Some(p) = row.recording.clone() else {
                return Ok::<_, Error>(());
            };
            if !Path::new(&p).exists() {
                report.missing.push(row.id);
            }
            known.insert(p, row);
            Ok(())
        },
    )?;
    for path in files {
        let Some(p) = path.to_str() else {
            tracing::warn!(path = %path.display(), "recording path is not UTF-8; skipped");
            continue;
        };
        let (row, linked) = match known.remove(p) {
            Some(row) => (Some(row), true),
            None => {
                let id = path.file_name().and_then(|n| n.to_str()).and_then(uuid_in);
                match id {
                    Some(id) => match row_by_id(conn, id, me)? {
                        // The session has its recording: this file is
                        // another of its files, not ours to judge.
                        Some(row) if row.recording.is_some() => continue,
                        other => (other, false),
                    },
                    None => (None, false),
                }
            }
        };
        if row.as_ref().is_some_and(|r| r.busy) {
            continue;
        }
        let meta = size_of(&path)?;
        // A linked file of a session that ended cleanly, with the size it
        // ended with, is complete: no need to read it at start-up.
        let settled = linked
            && row.as_ref().is_some_and(|r| {
                !r.died && r.bytes.and_then(|b| u64::try_from(b).ok()) == Some(meta.len())
            });
        let facts = if settled && apply {
            None
        } else {
            let f = probe(&path);
            match f {
                Some(f) if f.stale => report.stale.push(path.clone()),
                Some(_) => {}
                None => report.unreadable.push(path.clone()),
            }
            f
        };
        let bytes = facts.map_or(meta.len(), |f| f.bytes);
        match row {
            Some(row) => {
                if !linked {
                    report.attached.push((row.id, path.clone()));
                }
                if apply
                    && (!linked || row.bytes.and_then(|b| u64::try_from(b).ok()) != Some(bytes))
                {
                    conn.execute(
                        "UPDATE call_sessions SET recording_path = ?2, recording_bytes = ?3 \
                         WHERE id = ?1",
                        params![row.id.to_string(), p, to_i64(bytes, "recording_bytes")?],
                    )?;
                }
                if row.died
                    && let Some(audio) = facts.and_then(|f| f.duration)
                    && end_from_recording(conn, row.id, audio, apply)?
                {
                    report.ends_from_recording.push(row.id);
                }
            }
            None => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| Timestamp::try_from(m).ok());
                let session_id = path.file_name().and_then(|n| n.to_str()).and_then(uuid_in);
                report.orphans.push(OrphanRecording {
                    path: path.clone(),
                    bytes,
                    session_id,
                    modified,
                });
                if let Mode::Apply {
                    import_orphans: true,
                } = mode
                {
                    let sid = session_id.unwrap_or_else(SessionId::new_v4);
                    import_orphan(conn, sid, p, bytes, facts, modified.unwrap_or(now), now)?;
                    report.imported.push(sid);
                }
            }
        }
    }
    Ok(report)
}

/// Sets an interrupted session's end to its start plus its recording's
/// length when that is earlier than the end recovery wrote (the time it
/// ran). Returns whether it changed (or, auditing, would change) anything.
fn end_from_recording(conn: &Conn, id: SessionId, audio: Duration, apply: bool) -> Result<bool> {
    let audio_ms = i64::try_from(audio.as_millis()).unwrap_or(i64::MAX);
    let (created, ended): (i64, Option<i64>) = conn.query_row(
        "SELECT created_at, ended_at FROM call_sessions WHERE id = ?1",
        params![id.to_string()],
        |r| Ok::<_, crate::db::DbErr>((r.get(0)?, r.get(1)?)),
    )?;
    let end = created.saturating_add(audio_ms);
    if ended.is_some_and(|e| e <= end) {
        return Ok(false);
    }
    if apply {
        conn.execute(
            &format!(
                "UPDATE call_sessions SET ended_at = ?2, \
                 duration_ms = CASE WHEN answered_at IS NULL THEN NULL \
                                    ELSE {}(0, ?2 - answered_at) END WHERE id = ?1",
                conn.dialect().greatest()
            ),
            params![id.to_string(), end],
        )?;
    }
    Ok(true)
}

fn import_orphan(
    conn: &Conn,
    sid: SessionId,
    path: &str,
    bytes: u64,
    facts: Option<RecordingFacts>,
    modified: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let end = ms(modified);
    let audio = facts
        .and_then(|f| f.duration)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let start = end.saturating_sub(audio.unwrap_or(0));
    conn.execute(
        "INSERT INTO call_sessions (id, direction, transport, state, end_reason, \
         created_at, ended_at, duration_ms, recording_path, recording_bytes) \
         VALUES (?1, ?2, ?7, 'interrupted', ?3, ?4, ?8, ?9, ?5, ?6)",
        params![
            sid.to_string(),
            Direction::Unknown.as_str(),
            EndReason::OrphanRecording.as_str(),
            start,
            path,
            to_i64(bytes, "recording_bytes")?,
            Transport::Unknown.as_str(),
            end,
            audio,
        ],
    )?;
    conn.execute(
        "INSERT INTO call_events (session_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![
            sid.to_string(),
            ms(now),
            EventKind::Recording.as_str(),
            serde_json::json!({ "imported": "orphan recording" }).to_string()
        ],
    )?;
    Ok(())
}

impl Store {
    /// Matches recording files under `dir` with sessions (see the module
    /// docs), knowing only their sizes; with `import_orphans`, creates a
    /// session for each orphan.
    pub fn reconcile(
        &mut self,
        dir: &Path,
        import_orphans: bool,
        now: Timestamp,
    ) -> Result<ReconcileReport> {
        self.reconcile_with(dir, import_orphans, now, |p| {
            std::fs::metadata(p).ok().map(|m| RecordingFacts {
                bytes: m.len(),
                duration: None,
                stale: false,
            })
        })
    }

    /// [`Store::reconcile`] with a probe that reads each recording that
    /// may need it, repairs its header and says how much audio it holds
    /// (`None`: not a readable recording). Every change is one
    /// transaction.
    pub fn reconcile_with(
        &mut self,
        dir: &Path,
        import_orphans: bool,
        now: Timestamp,
        mut probe: impl FnMut(&Path) -> Option<RecordingFacts>,
    ) -> Result<ReconcileReport> {
        let me = Me {
            writer: self.writer.clone(),
            node: self.node.clone(),
        };
        let tx = self.write_tx()?;
        let report = reconcile_on(
            &tx,
            &me,
            dir,
            Mode::Apply { import_orphans },
            now,
            &mut probe,
        )?;
        tx.commit()?;
        if !(report.attached.is_empty()
            && report.imported.is_empty()
            && report.stale.is_empty()
            && report.ends_from_recording.is_empty())
        {
            tracing::warn!(
                attached = report.attached.len(),
                imported = report.imported.len(),
                repaired = report.stale.len(),
                ends = report.ends_from_recording.len(),
                "recordings recovered"
            );
        }
        Ok(report)
    }

    /// What [`Store::reconcile_with`] would do, without writing: `probe`
    /// should only read. Works on a read-only store.
    pub fn audit_recordings(
        &self,
        dir: &Path,
        mut probe: impl FnMut(&Path) -> Option<RecordingFacts>,
    ) -> Result<ReconcileReport> {
        let me = Me {
            writer: self.writer.clone(),
            node: self.node.clone(),
        };
        reconcile_on(
            &self.conn,
            &me,
            dir,
            Mode::Audit,
            Timestamp::now(),
            &mut probe,
        )
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
