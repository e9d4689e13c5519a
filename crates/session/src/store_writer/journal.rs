//! The store writer's journal: an append-only file of JSON lines holding
//! the session writes the store could not take, in the order they were
//! made, each with its session id and sequence number
//! ([`callbridge_crm_store::Store::apply_write`] makes replaying one a
//! no-op when it was applied before).
//!
//! The file is `store-journal.jsonl` in the spool directory (created
//! 0700; the file 0600: it holds transcripts). Entries are appended one
//! batch at a time and the batch is fsync'd before the writer counts it
//! as journaled; a batch that cannot be written whole is cut off again
//! (the file is truncated to its length before the batch), so the file
//! only ever holds whole lines, except for a last line torn by a crash
//! mid-append, which replay skips. Replay reads one line at a time (memory
//! stays bounded whatever the file's size), remembers how far it got, and
//! removes the file once every line is in the store; a file with lines
//! that cannot be parsed is kept beside it as `store-journal.<time>.bad`
//! for the operator instead.
//!
//! A spool directory belongs to one agent process at a time.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use callbridge_crm_store::{
    AmdVerdict, EndReason, EventKind, Finish, MachineEnd, NewEvent, NewTurn, Sensitive, SessionId,
    SessionState, SessionUpdate, SessionWrite, Speaker, TokenSplit, Usage,
};
use serde::{Deserialize, Serialize};

/// The journal's file name inside the spool directory.
pub const JOURNAL_FILE: &str = "store-journal.jsonl";

/// One journaled write: the session, its write sequence number, the write.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The session written to.
    pub session: SessionId,
    /// The write's sequence number (see `Store::apply_write`).
    pub seq: u64,
    /// The write.
    pub write: SessionWrite,
}

/// Why a journal line could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not JSON of the journal's shape.
    #[error("not a journal entry")]
    Syntax,
    /// A field holds a value this build does not know.
    #[error("bad value in {0}")]
    Value(&'static str),
}

#[derive(Serialize, Deserialize)]
struct Line {
    session: String,
    seq: u64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Op {
    State {
        to: String,
        at_ms: i64,
    },
    Turns {
        turns: Vec<TurnLine>,
    },
    Events {
        events: Vec<EventLine>,
    },
    Update {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sip_call_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_provider: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recording_path: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recording_bytes: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<[Option<u64>; 3]>,
        /// The usage's token split: input audio, input text, output
        /// audio, output text (issue 22; absent in older journals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_split: Option<Box<[u64; 4]>>,
        /// The summary's input and output tokens (issue 22).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary_tokens: Option<Box<[Option<u64>; 2]>>,
        // --- issue 19 (amd) ---
        /// The detection's first verdict and its time (ms from the answer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amd_verdict: Option<(String, u64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amd_machine_end: Option<String>,
        // --- end issue 19 (amd) ---
    },
    Finish {
        state: String,
        reason: String,
        sip_status: Option<u16>,
        at_ms: i64,
    },
    Outbox {
        rows: Vec<OutboxLine>,
    },
}

#[derive(Serialize, Deserialize)]
struct OutboxLine {
    key: String,
    event: String,
    url: String,
    payload: String,
    at_ms: i64,
    /// The routing profile whose receiver it is (absent: the global
    /// ones, and every line journaled before targets existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TurnLine {
    seq: u32,
    speaker: String,
    text: String,
    start_ms: u64,
    end_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct EventLine {
    at_ms: i64,
    kind: String,
    detail: serde_json::Value,
}

fn ts(ms: i64, what: &'static str) -> Result<jiff::Timestamp, LineError> {
    jiff::Timestamp::from_millisecond(ms).map_err(|_| LineError::Value(what))
}

fn parse<T: std::str::FromStr>(s: &str, what: &'static str) -> Result<T, LineError> {
    s.parse().map_err(|_| LineError::Value(what))
}

impl Entry {
    /// The entry as one JSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let op = match &self.write {
            SessionWrite::State { to, at } => Op::State {
                to: to.as_str().to_owned(),
                at_ms: at.as_millisecond(),
            },
            SessionWrite::Turns(t) => Op::Turns {
                turns: t
                    .iter()
                    .map(|t| TurnLine {
                        seq: t.seq,
                        speaker: t.speaker.as_str().to_owned(),
                        text: t.text.as_str().to_owned(),
                        start_ms: t.start_ms,
                        end_ms: t.end_ms,
                    })
                    .collect(),
            },
            SessionWrite::Events(e) => Op::Events {
                events: e
                    .iter()
                    .map(|e| EventLine {
                        at_ms: e.at.as_millisecond(),
                        kind: e.kind.as_str().to_owned(),
                        detail: e.detail.clone(),
                    })
                    .collect(),
            },
            SessionWrite::Update(u) => Op::Update {
                sip_call_id: u.sip_call_id.clone(),
                model_provider: u.model_provider.clone(),
                model: u.model.clone(),
                recording_path: u.recording.as_ref().map(|r| r.0.clone()),
                recording_bytes: u.recording.as_ref().map(|r| r.1),
                summary: u.summary.as_ref().map(|s| s.as_str().to_owned()),
                usage: u
                    .usage
                    .map(|u| [u.input_tokens, u.output_tokens, u.audio_ms]),
                token_split: u.usage.and_then(|u| u.split).map(|s| {
                    Box::new([s.input_audio, s.input_text, s.output_audio, s.output_text])
                }),
                summary_tokens: u
                    .usage
                    .map(|u| [u.summary_input_tokens, u.summary_output_tokens])
                    .filter(|t| t.iter().any(Option::is_some))
                    .map(Box::new),
                amd_verdict: u.amd_verdict.map(|(v, d)| {
                    (
                        v.as_str().to_owned(),
                        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    )
                }),
                amd_machine_end: u.amd_machine_end.map(|e| e.as_str().to_owned()),
            },
            SessionWrite::Finish(f) => Op::Finish {
                state: f.state.as_str().to_owned(),
                reason: f.reason.as_str().to_owned(),
                sip_status: f.sip_status,
                at_ms: f.at.as_millisecond(),
            },
            SessionWrite::Outbox(rows) => Op::Outbox {
                rows: rows
                    .iter()
                    .map(|r| OutboxLine {
                        key: r.key.clone(),
                        event: r.event.clone(),
                        url: r.url.clone(),
                        payload: r.payload.clone(),
                        at_ms: r.at.as_millisecond(),
                        target: r.target.clone(),
                    })
                    .collect(),
            },
            // `SessionWrite` is non-exhaustive; a write this build cannot
            // journal is recorded as an empty event batch (a no-op that
            // still advances the session's sequence number).
            _ => Op::Events { events: Vec::new() },
        };
        let line = Line {
            session: self.session.to_string(),
            seq: self.seq,
            op,
        };
        // Serializing plain strings, numbers and JSON values cannot fail.
        let mut v = serde_json::to_vec(&line).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Reads one line back (without its newline).
    ///
    /// # Errors
    /// [`LineError`] when the line is not an entry this build can read.
    pub fn from_line(line: &[u8]) -> Result<Entry, LineError> {
        let l: Line = serde_json::from_slice(line).map_err(|_| LineError::Syntax)?;
        let write = match l.op {
            Op::State { to, at_ms } => SessionWrite::State {
                to: parse::<SessionState>(&to, "state")?,
                at: ts(at_ms, "at_ms")?,
            },
            Op::Turns { turns } => SessionWrite::Turns(
                turns
                    .into_iter()
                    .map(|t| {
                        let mut n = NewTurn::new(
                            t.seq,
                            parse::<Speaker>(&t.speaker, "speaker")?,
                            t.text,
                            t.start_ms,
                        );
                        n.end_ms = t.end_ms;
                        Ok(n)
                    })
                    .collect::<Result<_, LineError>>()?,
            ),
            Op::Events { events } => SessionWrite::Events(
                events
                    .into_iter()
                    .map(|e| {
                        Ok(NewEvent {
                            at: ts(e.at_ms, "at_ms")?,
                            kind: parse::<EventKind>(&e.kind, "kind")?,
                            detail: e.detail,
                        })
                    })
                    .collect::<Result<_, LineError>>()?,
            ),
            Op::Update {
                sip_call_id,
                model_provider,
                model,
                recording_path,
                recording_bytes,
                summary,
                usage,
                token_split,
                summary_tokens,
                amd_verdict,
                amd_machine_end,
            } => SessionWrite::Update(Box::new(SessionUpdate {
                sip_call_id,
                model_provider,
                model,
                recording: recording_path.map(|p| (p, recording_bytes.unwrap_or(0))),
                summary: summary.map(Sensitive::new),
                usage: usage.map(|[i, o, a]| Usage {
                    input_tokens: i,
                    output_tokens: o,
                    audio_ms: a,
                    split: token_split.map(|t| *t).map(|[ia, it, oa, ot]| TokenSplit {
                        input_audio: ia,
                        input_text: it,
                        output_audio: oa,
                        output_text: ot,
                    }),
                    summary_input_tokens: summary_tokens.as_deref().and_then(|[i, _]| *i),
                    summary_output_tokens: summary_tokens.as_deref().and_then(|[_, o]| *o),
                }),
                amd_verdict: amd_verdict
                    .map(|(v, ms)| {
                        Ok::<_, LineError>((
                            parse::<AmdVerdict>(&v, "amd_verdict")?,
                            std::time::Duration::from_millis(ms),
                        ))
                    })
                    .transpose()?,
                amd_machine_end: amd_machine_end
                    .map(|e| parse::<MachineEnd>(&e, "amd_machine_end"))
                    .transpose()?,
            })),
            Op::Outbox { rows } => SessionWrite::Outbox(
                rows.into_iter()
                    .map(|r| {
                        Ok(callbridge_crm_store::NewOutbox::new(
                            r.key,
                            r.event,
                            r.url,
                            r.payload,
                            ts(r.at_ms, "at_ms")?,
                        )
                        .for_target(r.target))
                    })
                    .collect::<Result<_, LineError>>()?,
            ),
            Op::Finish {
                state,
                reason,
                sip_status,
                at_ms,
            } => {
                let state = parse::<SessionState>(&state, "state")?;
                let reason = parse::<EndReason>(&reason, "reason")?;
                let at = ts(at_ms, "at_ms")?;
                let mut f = if state == SessionState::Failed {
                    Finish::failed(reason, at)
                } else {
                    Finish::ended(reason, at)
                };
                f.sip_status = sip_status;
                SessionWrite::Finish(f)
            }
        };
        Ok(Entry {
            session: parse::<SessionId>(&l.session, "session")?,
            seq: l.seq,
            write,
        })
    }
}

/// Creates `dir` (and its parents) with mode 0700, or tightens an
/// existing one to 0700.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The size of the file at `path` (0 when absent) and its whole lines.
fn count_lines(path: &Path) -> (u64, u64) {
    let Ok(f) = File::open(path) else {
        return (0, 0);
    };
    let mut r = BufReader::new(f);
    let (mut len, mut lines) = (0u64, 0u64);
    loop {
        let buf = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        len += n as u64;
        r.consume(n);
    }
    (len, lines)
}

/// What reading the journal found.
#[derive(Debug)]
pub enum Next {
    /// An entry, and the offset just past its line.
    Entry(Box<Entry>, u64),
    /// A whole line that is not an entry (counted, skipped), and the
    /// offset just past it.
    Bad(LineError, u64),
    /// Nothing more (a torn last line without its newline is not
    /// returned).
    End,
}

/// The journal file of one spool directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    /// Open for appending, once something was appended.
    file: Option<File>,
    /// Bytes in the file (whole, synced lines).
    len: u64,
    /// Offset of the first line not yet replayed.
    replay_from: u64,
    /// Whole lines not yet replayed.
    pending: u64,
    /// Lines that could not be parsed during this file's replay.
    bad: u64,
    reader: Option<BufReader<File>>,
}

impl Journal {
    /// The journal of `dir` (nothing is created until something is
    /// appended). A file left by an earlier process is found here and
    /// replayed first.
    pub fn open(dir: &Path) -> Journal {
        let path = dir.join(JOURNAL_FILE);
        let (len, pending) = count_lines(&path);
        Journal {
            dir: dir.to_path_buf(),
            path,
            file: None,
            len,
            replay_from: 0,
            pending,
            bad: 0,
            reader: None,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds lines not yet replayed.
    pub fn has_backlog(&self) -> bool {
        self.replay_from < self.len
    }

    /// Whole lines not yet replayed.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Appends `entries` as one batch and fsyncs it. On failure the file
    /// is cut back to its length before the batch, and nothing of the
    /// batch counts as journaled.
    ///
    /// # Errors
    /// The directory or file cannot be created, written or synced.
    pub fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            buf.extend_from_slice(&e.to_line());
        }
        if self.file.is_none() {
            ensure_dir(&self.dir)?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            // Lines past our length are a torn line from a crash: cut
            // them so our lines start on a line of their own.
            let on_disk = f.metadata()?.len();
            if on_disk > self.len {
                f.set_len(self.len)?;
            }
            self.file = Some(f);
            // A new file needs its directory entry synced too.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        let Some(f) = self.file.as_mut() else {
            return Err(std::io::Error::other("journal file not open"));
        };
        let written = f.write_all(&buf).and_then(|()| f.sync_data());
        if let Err(e) = written {
            // Cut off whatever part of the batch reached the file; if even
            // that fails, drop the handle so the next append re-opens and
            // truncates to the known length.
            if f.set_len(self.len).is_err() {
                self.file = None;
            }
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.pending += entries.len() as u64;
        Ok(())
    }

    /// The next line to replay. Does not advance: call
    /// [`Journal::advance`] with the offset once the line is dealt with.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn next_line(&mut self) -> std::io::Result<Next> {
        if self.replay_from >= self.len {
            return Ok(Next::End);
        }
        if self.reader.is_none() {
            let mut f = File::open(&self.path)?;
            f.seek(SeekFrom::Start(self.replay_from))?;
            self.reader = Some(BufReader::new(f));
        }
        let Some(r) = self.reader.as_mut() else {
            return Ok(Next::End);
        };
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        // A reader positioned past the line we have not dealt with yet
        // must re-read it next time.
        self.reader = None;
        if n == 0 || line.last() != Some(&b'\n') {
            // End of file, or a torn last line (a crash mid-append): what
            // is left is not ours to replay; the next append cuts it.
            self.len = self.replay_from;
            self.pending = 0;
            return Ok(Next::End);
        }
        line.pop();
        let next = self.replay_from + n as u64;
        Ok(match Entry::from_line(&line) {
            Ok(e) => Next::Entry(Box::new(e), next),
            Err(e) => Next::Bad(e, next),
        })
    }

    /// Marks everything before `offset` as replayed.
    pub fn advance(&mut self, offset: u64, bad: bool) {
        self.replay_from = offset;
        if bad {
            self.bad += 1;
        }
        self.pending = self.pending.saturating_sub(1);
    }

    /// Once every line is replayed: removes the file (or keeps it as
    /// `store-journal.<time>.bad` when some lines could not be read) and
    /// starts afresh. Returns the path a bad file was kept under.
    ///
    /// # Errors
    /// The file cannot be removed or renamed.
    pub fn finish_replay(&mut self) -> std::io::Result<Option<PathBuf>> {
        self.reader = None;
        self.file = None;
        let kept = if self.bad > 0 {
            let to = self.dir.join(format!(
                "store-journal.{}.bad",
                jiff::Timestamp::now().as_second()
            ));
            std::fs::rename(&self.path, &to)?;
            Some(to)
        } else {
            match std::fs::remove_file(&self.path) {
                Ok(()) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        };
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.len = 0;
        self.replay_from = 0;
        self.pending = 0;
        self.bad = 0;
        Ok(kept)
    }
}
