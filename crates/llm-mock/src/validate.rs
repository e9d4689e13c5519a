//! JSON field checks shared by the mocks' strict client-message validators
//! ([`super::gemini_validate`], [`super::openai_validate`]): an object with
//! only the allowed keys and all the required ones, and typed field reads.
//! Every failure is a message naming the JSON path, so a test can see
//! exactly what the client got wrong.

use serde_json::{Map, Value};

/// A validation result: the error is a human-readable message with the path.
pub(super) type R<T> = Result<T, String>;

/// `v` as an object whose keys are all in `allowed` and include every `required`.
pub(super) fn obj<'a>(
    v: &'a Value,
    path: &str,
    allowed: &[&str],
    required: &[&str],
) -> R<&'a Map<String, Value>> {
    let m = v
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object"))?;
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("{path}: unknown field `{k}`"));
        }
    }
    for r in required {
        if !m.contains_key(*r) {
            return Err(format!("{path}: missing required field `{r}`"));
        }
    }
    Ok(m)
}

/// The string at `key` (required).
pub(super) fn string<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a str> {
    m.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{path}.{key}: expected a string"))
}

/// The boolean at `key`, if present.
pub(super) fn opt_bool(m: &Map<String, Value>, key: &str, path: &str) -> R<Option<bool>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{path}.{key}: expected a boolean")),
    }
}

/// Checks that `key`, if present, is an unsigned integer (or an int64 string).
pub(super) fn opt_uint(m: &Map<String, Value>, key: &str, path: &str) -> R<()> {
    match m.get(key) {
        None => Ok(()),
        Some(v) if v.as_u64().is_some() => Ok(()),
        // int64 may also come as a string.
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(()),
        Some(_) => Err(format!("{path}.{key}: expected an unsigned integer")),
    }
}

/// Checks that `key`, if present, is one of the `allowed` strings.
pub(super) fn one_of(m: &Map<String, Value>, key: &str, path: &str, allowed: &[&str]) -> R<()> {
    match m.get(key) {
        None => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(other) => Err(format!("{path}.{key}: invalid value {other}")),
    }
}

/// The string at `key`, if present.
pub(super) fn opt_string(m: &Map<String, Value>, key: &str, path: &str) -> R<Option<String>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{path}.{key}: expected a string")),
    }
}

/// The non-negative integer at `key` (required).
pub(super) fn uint(m: &Map<String, Value>, key: &str, path: &str) -> R<u64> {
    m.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{path}.{key}: expected a non-negative integer"))
}

/// Checks that `key`, if present, passes the JSON type `check`.
pub(super) fn opt_kind(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
    check: fn(&Value) -> bool,
) -> R<()> {
    match m.get(key) {
        Some(v) if !check(v) => Err(format!("{path}.{key}: wrong type")),
        _ => Ok(()),
    }
}
