//! Parameter lists (`;name=value`) of URIs and headers, kept as the raw
//! bytes they were parsed from and split when asked (RFC 3261 sections 19.1.1
//! and 25.1 `generic-param`).

use crate::parse::lex::{self, split_params};
use bytes::Bytes;

/// A `;name[=value]` list, stored as raw bytes starting at the first `;`
/// (empty when there are none). Names compare case-insensitively.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Params(Bytes);

impl Params {
    /// No parameters.
    pub fn new() -> Params {
        Params(Bytes::new())
    }

    /// Wrap raw, already validated parameter bytes.
    pub(crate) fn from_raw(raw: Bytes) -> Params {
        Params(raw)
    }

    /// The raw bytes, starting with `;` unless empty.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        lex::trim(&self.0).is_empty()
    }

    /// Every parameter as (name, value) with white space trimmed; a quoted
    /// value keeps its quotes.
    pub fn iter(&self) -> impl Iterator<Item = (Bytes, Option<Bytes>)> + '_ {
        split_params(&self.0).map(|(n, v)| (self.0.slice_ref(n), v.map(|v| self.0.slice_ref(v))))
    }

    /// The first parameter named `name` (case-insensitive): `None` when
    /// absent, `Some(None)` when present without a value.
    pub fn get(&self, name: &str) -> Option<Option<Bytes>> {
        split_params(&self.0)
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.map(|v| self.0.slice_ref(v)))
    }

    /// Whether a parameter named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Append `;name` or `;name=value`. The caller supplies grammatical
    /// bytes (tokens, or a quoted string with its quotes).
    pub fn push(&mut self, name: &str, value: Option<&[u8]>) {
        let mut v =
            Vec::with_capacity(self.0.len() + name.len() + 2 + value.map_or(0, <[u8]>::len));
        v.extend_from_slice(&self.0);
        v.push(b';');
        v.extend_from_slice(name.as_bytes());
        if let Some(value) = value {
            v.push(b'=');
            v.extend_from_slice(value);
        }
        self.0 = Bytes::from(v);
    }

    /// Remove every parameter named `name`.
    pub fn remove(&mut self, name: &str) {
        if !self.contains(name) {
            return;
        }
        let mut v = Vec::with_capacity(self.0.len());
        for (n, val) in split_params(&self.0) {
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                continue;
            }
            v.push(b';');
            v.extend_from_slice(n);
            if let Some(val) = val {
                v.push(b'=');
                v.extend_from_slice(val);
            }
        }
        self.0 = Bytes::from(v);
    }

    /// Set `name` to `value`, replacing earlier values.
    pub fn set(&mut self, name: &str, value: Option<&[u8]>) {
        self.remove(name);
        self.push(name, value);
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Params({:?})", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_is_case_insensitive_and_distinguishes_flag_params() {
        let p = Params::from_raw(Bytes::from_static(
            b";Branch=z9hG4bK1;rport;received=1.2.3.4",
        ));
        assert_eq!(p.get("branch"), Some(Some(Bytes::from_static(b"z9hG4bK1"))));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("maddr"), None);
    }

    #[test]
    fn set_replaces_and_push_appends() {
        let mut p = Params::from_raw(Bytes::from_static(b";rport;branch=x"));
        p.set("rport", Some(b"5060"));
        p.push("received", Some(b"10.0.0.1"));
        assert_eq!(p.as_bytes(), b";branch=x;rport=5060;received=10.0.0.1");
    }
}
