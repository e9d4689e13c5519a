//! The store's files from the operator's side: start-up recovery of
//! recordings (link, repair, end of a killed call from its audio), and the
//! `agent store check` and `agent store backup PATH` commands.
//!
//! `check` opens the database read-only (safe beside a running agent; it
//! migrates nothing) and reports the file's integrity, its schema version
//! against this build's, its sessions, the recordings directory (files to
//! link, orphans, missing files, stale WAV headers; files of calls in
//! progress are skipped) and the store writer's journal backlog. It exits
//! 0 when all is well, 1 on any problem, 2 on a configuration error.
//!
//! `backup` copies the database with SQLite's online backup API to a new
//! file (0600), checked before it is renamed into place; safe while the
//! agent writes. Exit 0 done, 1 failed, 2 configuration error.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::Path;
use std::time::Duration;

use callbridge_crm_store::{RecordingFacts, Store};
use callbridge_rtp::wav;
use tracing::{info, warn};

use crate::cli::{BackupArgs, ConfigArg};
use crate::settings::Settings;

/// How long `check` and `backup` wait for another process's lock.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Reads a recording's audio; with `repair`, first brings a stale WAV
/// header up to the frames on disk. Files that are not WAV are only sized.
pub fn wav_probe(repair: bool) -> impl FnMut(&Path) -> Option<RecordingFacts> {
    move |path: &Path| {
        let is_wav = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if !is_wav {
            return std::fs::metadata(path).ok().map(|m| RecordingFacts {
                bytes: m.len(),
                duration: None,
                stale: false,
            });
        }
        let found = if repair {
            wav::repair(path)
        } else {
            wav::inspect(path).map(|info| (info, info.is_stale()))
        };
        match found {
            Ok((info, stale)) => Some(RecordingFacts {
                bytes: info.file_bytes,
                duration: Some(info.duration()),
                stale,
            }),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "recording is not a readable WAV file");
                None
            }
        }
    }
}

/// Start-up: links every recording a crash left to its session (or to a
/// new `unknown` session), repairs stale headers and dates the end of each
/// killed call from its audio. A failure is logged, never fatal: the files
/// stay for the next start.
pub fn recover_recordings(store: &mut Store, dir: &Path) {
    match store.reconcile_with(dir, true, jiff::Timestamp::now(), wav_probe(true)) {
        Ok(r) => info!(
            dir = %dir.display(),
            scanned = r.scanned,
            linked = r.attached.len(),
            imported_orphans = r.imported.len(),
            repaired_headers = r.stale.len(),
            ends_from_audio = r.ends_from_recording.len(),
            missing = r.missing.len(),
            unreadable = r.unreadable.len(),
            "recordings reconciled"
        ),
        Err(e) => warn!(dir = %dir.display(), error = %e, "recordings could not be reconciled"),
    }
}

/// Journal entries waiting to be replayed: the lines of every `*.jsonl`
/// file in `dir` (none when the directory does not exist).
pub fn journal_backlog(dir: &Path) -> std::io::Result<(usize, u64)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut files, mut lines) = (0, 0u64);
    for entry in entries {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "jsonl") && p.is_file() {
            files += 1;
            let f = std::io::BufReader::new(std::fs::File::open(&p)?);
            for line in f.split(b'\n') {
                if !line?.is_empty() {
                    lines += 1;
                }
            }
        }
    }
    Ok((files, lines))
}

fn load(file: &ConfigArg, env: &BTreeMap<String, String>) -> Result<Settings, i32> {
    Settings::load(&file.config, env).map_err(|e| {
        crate::report(&e.to_string());
        2
    })
}

/// The SQLite file of `settings`' store, or `None` after saying that
/// `agent store <what>` is for SQLite stores (PostgreSQL has `pg_dump` and
/// `amcheck`; docs/SCALING.md).
fn sqlite_only<'a>(settings: &'a Settings, what: &str) -> Option<&'a Path> {
    match &settings.store_url {
        callbridge_crm_store::StoreUrl::Sqlite(p) => Some(p.as_path()),
        other => {
            eprintln!(
                "agent store {what}: the store is {other}, a PostgreSQL database; \
                 `agent store {what}` works on SQLite files (use pg_dump / amcheck)"
            );
            None
        }
    }
}

/// `agent store check`: returns the exit status.
pub fn check(file: &ConfigArg, env: &BTreeMap<String, String>) -> i32 {
    let settings = match load(file, env) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(db) = sqlite_only(&settings, "check") else {
        return 1;
    };
    let mut problems: Vec<String> = Vec::new();
    println!("store {}", db.display());
    if !db.exists() {
        println!("problem: store.database {} does not exist", db.display());
        return 1;
    }
    let store = match Store::open_read_only(db, BUSY_WAIT) {
        Ok(s) => s,
        Err(e) => {
            println!("problem: store.database {}: {e}", db.display());
            return 1;
        }
    };
    match store.integrity_problems() {
        Ok(p) if p.is_empty() => println!("  integrity: ok"),
        Ok(p) => {
            for line in &p {
                println!("  integrity: {line}");
            }
            problems.push(format!(
                "the database fails its integrity check ({} problem(s)): restore it from a backup",
                p.len()
            ));
        }
        Err(e) => problems.push(format!("integrity check failed: {e}")),
    }
    let supported = callbridge_crm_store::schema::SCHEMA_VERSION;
    match store.schema_version() {
        Ok(v) if v > supported => problems.push(format!(
            "schema version {v} is newer than this build supports ({supported})"
        )),
        Ok(v) if v < supported => println!(
            "  schema: version {v} (this build: {supported}; migrated on the agent's next start)"
        ),
        Ok(v) => println!("  schema: version {v} (this build: {supported})"),
        Err(e) => problems.push(format!("schema version unreadable: {e}")),
    }
    match store.session_counts() {
        Ok((all, live)) => println!("  sessions: {all} ({live} live)"),
        Err(e) => problems.push(format!("sessions unreadable: {e}")),
    }
    check_recordings(&store, &settings.recordings_dir, &mut problems);
    let journal = settings.spool_dir.clone();
    match journal_backlog(&journal) {
        Ok((0, _)) | Ok((_, 0)) => println!("  journal {}: no backlog", journal.display()),
        Ok((files, lines)) => problems.push(format!(
            "journal {}: {lines} write(s) in {files} file(s) not yet in the database \
             (the agent replays them when it starts or can write again)",
            journal.display()
        )),
        Err(e) => problems.push(format!("journal {}: {e}", journal.display())),
    }
    if problems.is_empty() {
        println!("ok");
        0
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        1
    }
}

fn check_recordings(store: &Store, dir: &Path, problems: &mut Vec<String>) {
    if !dir.is_dir() {
        println!("  recordings {}: no directory yet", dir.display());
        return;
    }
    let r = match store.audit_recordings(dir, wav_probe(false)) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("store.recordings_dir {}: {e}", dir.display()));
            return;
        }
    };
    println!(
        "  recordings {}: {} file(s); {} to link, {} orphan(s), {} missing, {} stale header(s), {} unreadable",
        dir.display(),
        r.scanned,
        r.attached.len(),
        r.orphans.len(),
        r.missing.len(),
        r.stale.len(),
        r.unreadable.len()
    );
    for (id, p) in &r.attached {
        problems.push(format!(
            "recording {} is not linked to its session {id} (the agent links it when it starts)",
            p.display()
        ));
    }
    for o in &r.orphans {
        problems.push(format!(
            "orphan recording {} has no session (the agent imports it when it starts)",
            o.path.display()
        ));
    }
    for id in &r.missing {
        problems.push(format!("session {id}: its recording file is missing"));
    }
    for p in &r.stale {
        problems.push(format!(
            "recording {} has a stale header (the agent repairs it when it starts)",
            p.display()
        ));
    }
    for p in &r.unreadable {
        problems.push(format!(
            "recording {} is not a readable WAV file",
            p.display()
        ));
    }
}

/// `agent store backup PATH`: returns the exit status.
pub fn backup(args: &BackupArgs, env: &BTreeMap<String, String>) -> i32 {
    let settings = match load(&args.file, env) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(db) = sqlite_only(&settings, "backup") else {
        return 1;
    };
    let store = match Store::open_read_only(db, BUSY_WAIT) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent: store.database {}: {e}", db.display());
            return 1;
        }
    };
    match store.backup_to(&args.path) {
        Ok(b) => {
            println!(
                "backup {}: {} bytes, schema version {}, {} session(s), integrity ok",
                b.path.display(),
                b.bytes,
                b.schema_version,
                b.sessions
            );
            0
        }
        Err(e) => {
            let cause = e.fault().map_or_else(|| e.to_string(), |f| f.to_string());
            eprintln!(
                "agent: backup of {} to {} failed: {cause}",
                db.display(),
                args.path.display()
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_backlog_counts_non_empty_lines_of_jsonl_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(journal_backlog(&d.path().join("none")).unwrap(), (0, 0));
        std::fs::write(d.path().join("a.jsonl"), "{}\n{}\n\n").unwrap();
        std::fs::write(d.path().join("b.jsonl"), "{}").unwrap();
        std::fs::write(d.path().join("notes.txt"), "x\ny\n").unwrap();
        assert_eq!(journal_backlog(d.path()).unwrap(), (2, 3));
    }
}
