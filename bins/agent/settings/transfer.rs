//! `[transfer] targets`, checked at start: every entry `name=target`, with
//! a usable target and a unique name (see `callbridge_session::dial_targets`).

use callbridge_session::dial_targets::DialTargets;

use super::check::Check;

/// The validated list (`None`: an entry is bad, recorded in `c`). An error
/// names the entry by its position and its name, never its target (a
/// phone number).
pub fn targets(c: &Check<'_>, raw: &[String]) -> Option<DialTargets> {
    match DialTargets::parse(raw) {
        Ok(t) => Some(t),
        Err((i, e)) => {
            let name = raw
                .get(i)
                .and_then(|s| s.split_once('=').map(|(n, _)| n.trim()))
                .unwrap_or("");
            c.invalid(
                "transfer.targets",
                format!("entry {} ({name:?})", i + 1),
                &format!(
                    "name=target, where {e} (e.g. \"sales=sip:sales@pbx.example\", \
                     \"support=+441632960123\", \"london=+4420*\")"
                ),
            )
        }
    }
}
