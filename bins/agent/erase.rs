//! Erasure and export from the operator's side: `agent session delete ID`
//! (the session row, its transcript, its events and its recording file)
//! and `agent export --phone +E164` (everything stored about one caller,
//! as JSON: a data subject's copy). Both work on the configured store and
//! are safe beside a running agent (a live call cannot be deleted).
//!
//! Exit status: 0 done, 1 the store refused or failed (no such session, a
//! live call, the store unreachable), 2 bad usage or configuration.
//!
//! The recording is removed after its row: a crash in between leaves an
//! orphan file, which `agent store check` reports, never a row that points
//! at nothing. [`remove_recording`] is shared with the admin API's
//! `DELETE /api/sessions/{id}` and the retention task.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use callbridge_crm_store::{Error as StoreError, PhoneNumber, SessionId, Store};
use serde_json::json;
use tracing::warn;

use crate::cli::{ExportArgs, SessionDelete};
use crate::settings::Settings;

/// A failure, with its exit status.
struct Fail(i32, String);

fn open(config: &Path, env: &BTreeMap<String, String>) -> Result<(Settings, Store), Fail> {
    let settings = Settings::load(config, env).map_err(|e| Fail(2, e.to_string()))?;
    let store = settings.store_at().open().map_err(|e| {
        Fail(
            1,
            format!("cannot open the store {}: {e}", settings.store_url),
        )
    })?;
    Ok((settings, store))
}

fn finish(r: Result<(), Fail>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(Fail(code, msg)) => {
            crate::report(&msg);
            code
        }
    }
}

/// Removes a deleted or expired recording file (its path as the agent
/// stored it); a file already gone is fine, any other failure is logged.
/// Returns whether a file was removed.
pub fn remove_recording(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "recording could not be removed");
            false
        }
    }
}

/// `agent session delete ID`.
pub fn delete(args: &SessionDelete, env: &BTreeMap<String, String>) -> i32 {
    finish((|| {
        let id: SessionId = args
            .id
            .parse()
            .map_err(|_| Fail(2, format!("{:?} is not a session id (a UUID)", args.id)))?;
        let (_, mut store) = open(&args.file.config, env)?;
        let gone = store.delete_session(id).map_err(|e| match e {
            StoreError::NotFound { .. } => Fail(1, format!("session {id} does not exist")),
            StoreError::Conflict { .. } => Fail(
                1,
                format!("session {id} is a call in progress: hang it up first"),
            ),
            e => Fail(1, format!("cannot delete session {id}: {e}")),
        })?;
        let file = match &gone.recording {
            Some(p) if remove_recording(p) => format!(", recording {} removed", p.display()),
            Some(p) => format!(", recording {} was not there", p.display()),
            None => String::new(),
        };
        println!("session {id} deleted (row, transcript, events{file})");
        Ok(())
    })())
}

/// `agent export --phone +E164 [--out FILE]`.
pub fn export(args: &ExportArgs, env: &BTreeMap<String, String>) -> i32 {
    finish((|| {
        let phone = PhoneNumber::parse(&args.phone).map_err(|_| {
            Fail(
                2,
                "--phone: expected an E.164 number (+ and 8 to 15 digits)".into(),
            )
        })?;
        let (_, store) = open(&args.file.config, env)?;
        let data = store
            .data_of_number(&phone)
            .map_err(|e| Fail(1, format!("cannot read the store: {e}")))?;
        let ts = crate::http::ts;
        let doc = json!({
            "phone": phone.as_str(),
            "exported_at": ts(jiff::Timestamp::now()),
            "sessions": data
                .sessions
                .into_iter()
                .map(|r| crate::http::detail(r, false))
                .collect::<Vec<_>>(),
            "leads": data.leads.iter().map(|l| json!({
                "id": l.id.0,
                "campaign_id": l.campaign.0,
                "name": l.name.as_ref().map(|n| n.as_str()),
                "time_zone": l.time_zone,
                "fields": l.fields,
                "status": l.status.as_str(),
                "attempts": l.attempts,
                "last_outcome": l.last_outcome.map(|o| o.as_str()),
                "last_session": l.last_session.map(|s| s.to_string()),
                "created_at": ts(l.created_at),
                "updated_at": ts(l.updated_at),
            })).collect::<Vec<_>>(),
            "dnc": data.dnc.map(|d| json!({"reason": d.reason, "added_at": ts(d.added_at)})),
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Fail(1, format!("cannot encode the export: {e}")))?;
        match &args.out {
            None => println!("{text}"),
            Some(path) => write_private(path, text.as_bytes())
                .map_err(|e| Fail(1, format!("cannot write {}: {e}", path.display())))?,
        }
        Ok(())
    })())
}

/// Writes a new file only its owner can read (personal data); an existing
/// file is not overwritten.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}
