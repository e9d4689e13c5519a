//! `[transfer] targets`, checked at start: every entry `name=target`, with
//! a usable target and a unique name (see `callbridge_session::dial_targets`).

use callbridge_session::dial_targets::DialTargets;

use super::Check;
use crate::config::ConfigError;

/// The validated list. An error names the entry by its position and its
/// name, never its target (a phone number).
pub(super) fn targets(c: &Check<'_>, raw: &[String]) -> Result<DialTargets, ConfigError> {
    DialTargets::parse(raw).map_err(|(i, e)| {
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
    })
}
