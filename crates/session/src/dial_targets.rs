//! Where a tool may send a call (issue 14, "Toll fraud"): the operator's
//! allowlist of transfer targets and the one check every path that dials
//! on a model's word goes through ([`DialTargets::check`]).
//!
//! A model is steered by whoever talks to it. Without a list, a caller can
//! talk it into a transfer to a premium-rate number, and the operator pays.
//! So the model never names a destination: it names one of the operator's
//! targets, and the agent dials what the operator wrote. Each entry is
//! written `name=target`, where the target is
//!
//! - a SIP URI (`sales=sip:sales@pbx.example`),
//! - an E.164 number (`uk-support=+441632960123`), or
//! - an E.164 prefix ending in `*` (`london=+4420*`): the model also gives
//!   the number, which must start with the prefix and be valid E.164.
//!
//! An empty list (the default) means no tool dials at all: the transfer
//! tool is not even offered to the model. A request outside the list is
//! refused with [`DialRefused`]; the caller of [`DialTargets::check`]
//! tells the model and stores an event.

use std::fmt;

use bytes::Bytes;
use callbridge_llm_bridge::TransferChoice;
use callbridge_sip::Uri;

/// Longest name of a target.
const MAX_NAME: usize = 32;
/// Most targets in a list.
const MAX_TARGETS: usize = 256;

/// A list entry that cannot be used (checked when the agent starts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialTargetError {
    /// Not written `name=target`.
    #[error("expected name=target")]
    NotNameTarget,
    /// The name is empty, too long or not `[A-Za-z0-9_-]`.
    #[error("the name must be 1-32 characters of A-Z, a-z, 0-9, '-' or '_'")]
    BadName,
    /// Two entries have the same name (names are case-insensitive).
    #[error("the name is used twice")]
    DuplicateName,
    /// The target is neither a SIP URI, an E.164 number nor a prefix.
    #[error(
        "the target must be a sip:/sips: URI, an E.164 number (+ and 3-15 digits) or an E.164 prefix ending in *"
    )]
    BadTarget,
    /// More than 256 entries.
    #[error("at most 256 targets")]
    TooMany,
}

/// What an entry lets a tool dial.
#[derive(Clone, PartialEq, Eq)]
enum Destination {
    /// Exactly this SIP URI (as written).
    Uri(String),
    /// Exactly this E.164 number.
    Number(String),
    /// Any E.164 number starting with this (`+` and digits).
    Prefix(String),
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    dest: Destination,
}

/// The operator's allowlist of dial targets. `Debug` shows the names
/// only (the targets are phone numbers).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DialTargets {
    entries: Vec<Entry>,
}

impl fmt::Debug for DialTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.name))
            .finish()
    }
}

/// A destination the list allows.
#[derive(Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The entry's name.
    pub name: String,
    /// What to dial: the SIP URI, or the E.164 number.
    pub target: String,
}

impl fmt::Debug for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allowed")
            .field("name", &self.name)
            .field("target", &"<redacted>")
            .finish()
    }
}

/// Why a dial request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialRefused {
    /// No target is configured: no tool may dial.
    #[error("no transfer targets are configured")]
    NoTargets,
    /// The request names nothing on the list.
    #[error("not one of the allowed transfer targets")]
    NotListed,
    /// The entry covers a range of numbers and no number was given.
    #[error("this target needs the number to dial")]
    NumberMissing,
    /// The number is not E.164 or lies outside the entry's range.
    #[error("the number is not in this target's range")]
    NumberOutsideRange,
}

impl DialRefused {
    /// The store's and the metrics' label.
    pub fn as_str(self) -> &'static str {
        match self {
            DialRefused::NoTargets => "no-targets",
            DialRefused::NotListed => "not-listed",
            DialRefused::NumberMissing => "number-missing",
            DialRefused::NumberOutsideRange => "number-outside-range",
        }
    }
}

/// `+` and 3-15 digits (ITU-T E.164: at most 15 digits).
fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (3..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A number as a model may say it (`+44 20 7946-0000`): spaces, dashes,
/// dots and parentheses removed; `None` unless the rest is E.164.
fn normalize_number(s: &str) -> Option<String> {
    let n: String = s
        .trim()
        .trim_start_matches("tel:")
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    is_e164(&n).then_some(n)
}

fn parse_dest(t: &str) -> Result<Destination, DialTargetError> {
    // The REFER carries it; the lifecycle's bound on a target.
    if t.len() > crate::lifecycle::TransferTarget::MAX_LEN {
        return Err(DialTargetError::BadTarget);
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return match Uri::parse(&Bytes::copy_from_slice(t.as_bytes())) {
            Ok(Uri::Sip(_)) => Ok(Destination::Uri(t.to_owned())),
            _ => Err(DialTargetError::BadTarget),
        };
    }
    if let Some(prefix) = t.strip_suffix('*') {
        let digits = prefix.strip_prefix('+').ok_or(DialTargetError::BadTarget)?;
        if (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Destination::Prefix(prefix.to_owned()));
        }
        return Err(DialTargetError::BadTarget);
    }
    if is_e164(t) {
        return Ok(Destination::Number(t.to_owned()));
    }
    Err(DialTargetError::BadTarget)
}

impl DialTargets {
    /// No targets: nothing may be dialled by a tool.
    pub fn none() -> DialTargets {
        DialTargets::default()
    }

    /// Parses the list (`name=target` each; see the module docs).
    ///
    /// # Errors
    /// The index of the first unusable entry and why.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<DialTargets, (usize, DialTargetError)> {
        if list.len() > MAX_TARGETS {
            return Err((MAX_TARGETS, DialTargetError::TooMany));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(list.len());
        for (i, raw) in list.iter().enumerate() {
            let (name, target) = raw
                .as_ref()
                .split_once('=')
                .ok_or((i, DialTargetError::NotNameTarget))?;
            let (name, target) = (name.trim(), target.trim());
            let name_ok = !name.is_empty()
                && name.len() <= MAX_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err((i, DialTargetError::BadName));
            }
            if entries.iter().any(|e| e.name.eq_ignore_ascii_case(name)) {
                return Err((i, DialTargetError::DuplicateName));
            }
            let dest = parse_dest(target).map_err(|e| (i, e))?;
            entries.push(Entry {
                name: name.to_owned(),
                dest,
            });
        }
        Ok(DialTargets { entries })
    }

    /// Whether the list is empty (no tool may dial).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The targets as the model sees them: names, and the prefix of each
    /// range.
    pub fn choices(&self) -> Vec<TransferChoice> {
        self.entries
            .iter()
            .map(|e| TransferChoice {
                name: e.name.clone(),
                number_prefix: match &e.dest {
                    Destination::Prefix(p) => Some(p.clone()),
                    _ => None,
                },
            })
            .collect()
    }

    /// The names, for telling the model what it may choose.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The one check before anything is dialled on a model's word.
    /// `requested` is the target as the model named it (an entry's name,
    /// or exactly a listed URI or number, or a number in a listed range);
    /// `number` is the number the model gave for a range entry.
    ///
    /// # Errors
    /// [`DialRefused`] for anything the list does not allow.
    pub fn check(&self, requested: &str, number: Option<&str>) -> Result<Allowed, DialRefused> {
        if self.entries.is_empty() {
            return Err(DialRefused::NoTargets);
        }
        let requested = requested.trim();
        let allowed = |e: &Entry, target: &str| Allowed {
            name: e.name.clone(),
            target: target.to_owned(),
        };
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(requested))
        {
            return match &e.dest {
                Destination::Uri(t) | Destination::Number(t) => Ok(allowed(e, t)),
                Destination::Prefix(p) => {
                    let raw = number.ok_or(DialRefused::NumberMissing)?;
                    match normalize_number(raw) {
                        Some(n) if n.starts_with(p.as_str()) => Ok(allowed(e, &n)),
                        _ => Err(DialRefused::NumberOutsideRange),
                    }
                }
            };
        }
        // Not a name: exactly a listed URI or number, or a number in a
        // listed range.
        if let Some(n) = normalize_number(requested) {
            let by_number = self.entries.iter().find(|e| match &e.dest {
                Destination::Number(t) => *t == n,
                Destination::Prefix(p) => n.starts_with(p.as_str()),
                Destination::Uri(_) => false,
            });
            return by_number
                .map(|e| allowed(e, &n))
                .ok_or(DialRefused::NotListed);
        }
        self.entries
            .iter()
            .find(|e| matches!(&e.dest, Destination::Uri(t) if t.eq_ignore_ascii_case(requested)))
            .map(|e| allowed(e, requested))
            .ok_or(DialRefused::NotListed)
    }
}

/// A requested target for logs and events: its first four and last two
/// characters, the rest masked (it may be a phone number).
/// At most 64 characters are shown.
pub fn masked(s: &str) -> String {
    let end = s.char_indices().nth(64).map_or(s.len(), |(i, _)| i);
    callbridge_redact::masked(&s[..end], 4, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> DialTargets {
        DialTargets::parse(&[
            "sales=sip:sales@127.0.0.1",
            "uk-support=+441632960123",
            "london=+4420*",
        ])
        .unwrap()
    }

    #[test]
    fn names_resolve_to_what_the_operator_wrote() {
        let l = list();
        let a = l.check("sales", None).unwrap();
        assert_eq!(
            (a.name.as_str(), a.target.as_str()),
            ("sales", "sip:sales@127.0.0.1")
        );
        assert_eq!(
            l.check(" UK-Support ", None).unwrap().target,
            "+441632960123"
        );
        let a = l.check("london", Some("+44 20 7946-0000")).unwrap();
        assert_eq!(a.target, "+442079460000");
    }

    #[test]
    fn premium_rate_and_unlisted_targets_are_refused() {
        let l = list();
        assert_eq!(l.check("+19005550123", None), Err(DialRefused::NotListed));
        assert_eq!(
            l.check("sip:premium@127.0.0.1", None),
            Err(DialRefused::NotListed)
        );
        assert_eq!(l.check("sales-vip", None), Err(DialRefused::NotListed));
        assert_eq!(l.check("london", None), Err(DialRefused::NumberMissing));
        assert_eq!(
            l.check("london", Some("+449065550123")),
            Err(DialRefused::NumberOutsideRange)
        );
        assert_eq!(
            l.check("london", Some("+4420 then dial 9")),
            Err(DialRefused::NumberOutsideRange)
        );
        // A listed number or URI named directly, or a number in a range.
        assert_eq!(l.check("+441632960123", None).unwrap().name, "uk-support");
        assert_eq!(l.check("+442079460000", None).unwrap().name, "london");
        assert_eq!(l.check("sip:sales@127.0.0.1", None).unwrap().name, "sales");
        assert_eq!(
            DialTargets::none().check("sales", None),
            Err(DialRefused::NoTargets)
        );
    }

    #[test]
    fn unusable_entries_are_refused_at_start_with_their_index() {
        let bad = |s: &str| DialTargets::parse(&["ok=+15551234567", s]).unwrap_err();
        assert_eq!(bad("sip:x@127.0.0.1"), (1, DialTargetError::NotNameTarget));
        assert_eq!(bad("a b=+15551234567"), (1, DialTargetError::BadName));
        assert_eq!(bad("OK=+15551234568"), (1, DialTargetError::DuplicateName));
        assert_eq!(bad("x=15551234567"), (1, DialTargetError::BadTarget));
        assert_eq!(bad("x=+1555*1"), (1, DialTargetError::BadTarget));
        assert_eq!(bad("x=+1234567890123456"), (1, DialTargetError::BadTarget));
        assert_eq!(bad("x=http://example.com"), (1, DialTargetError::BadTarget));
        assert_eq!(bad("x=*"), (1, DialTargetError::BadTarget));
    }

    #[test]
    fn the_model_sees_names_and_ranges_and_debug_hides_targets() {
        let l = list();
        let c = l.choices();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].number_prefix.as_deref(), Some("+4420"));
        let dbg = format!("{l:?} {:?}", l.check("sales", None).unwrap());
        assert!(!dbg.contains("+44") && !dbg.contains("127.0.0.1"), "{dbg}");
        assert_eq!(masked("+19005550123"), "+190******23");
    }
}
