//! Typed reads of the layered values, collecting errors instead of stopping
//! at the first: each read that fails records an error naming the key, the
//! value, where it came from and what was expected, and returns `None`, so
//! validation goes on and reports every bad key in one pass.
//!
//! A key whose value has the wrong TOML type was already reported by
//! [`super::source::Sources::new`]; its read returns `None` silently.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use figment::value::Value;

use super::error::{ConfigError, Origin};
use super::keys::{self, Kind, Preset};
use super::source::{Sources, fits};

/// The reader: the sources, the errors found so far and the keys read.
pub struct Check<'a> {
    sources: &'a Sources,
    errors: RefCell<Vec<ConfigError>>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Check<'a> {
    /// A reader of `sources`, starting with the errors already found.
    pub fn new(sources: &'a Sources, errors: Vec<ConfigError>) -> Check<'a> {
        Check {
            sources,
            errors: RefCell::new(errors),
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// The errors, and the keys that were read (every key of
    /// [`keys::KEYS`] that validation looked at).
    pub fn finish(self) -> (Vec<ConfigError>, BTreeSet<&'static str>) {
        (self.errors.into_inner(), self.read.into_inner())
    }

    /// Records an error.
    pub fn push(&self, e: ConfigError) {
        self.errors.borrow_mut().push(e);
    }

    /// Whether any error was recorded.
    pub fn failed(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    /// Where the value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.sources
            .value(key)
            .map_or(Origin::Default, |(_, origin)| origin)
    }

    /// Records that `key` = `value` is not what it should be; `None`, so
    /// it ends a chain of checks.
    pub fn invalid<T>(
        &self,
        key: &str,
        value: impl std::fmt::Display,
        expected: &str,
    ) -> Option<T> {
        self.push(ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.origin(key),
            value: value.to_string(),
            expected: expected.to_owned(),
        });
        None
    }

    /// The `[[profiles]]` tables (see [`Sources::profiles`]).
    pub fn profiles(&self) -> Result<Vec<callbridge_session::profile::ProfileSpec>, String> {
        self.sources.profiles()
    }

    /// The `[[tools]]` tables (see [`Sources::tools`]).
    pub fn tools(&self) -> Result<Vec<callbridge_session::http_tool::HttpToolSpec>, String> {
        self.sources.tools()
    }

    /// The `[[trunks]]` tables (see [`Sources::trunks`]).
    pub fn trunks(&self) -> Result<Vec<callbridge_session::profile::trunks::TrunkSpec>, String> {
        self.sources.trunks()
    }

    /// Whether the file or the environment sets anything in `section`.
    pub fn present(&self, section: &str) -> bool {
        self.sources.contains(section)
    }

    /// The key's value when it has its type (`Some(None)`: not set), or
    /// `None` when it has another type.
    fn raw(&self, path: &str, kind: Kind) -> Option<(Option<Value>, Preset)> {
        let Some(key) = keys::key(path).filter(|k| k.kind == kind) else {
            // Our bug, never the operator's: the schema has no such key.
            self.push(ConfigError::Missing {
                key: path.to_owned(),
                expected: format!("(internal) {} in the key table", kind.expected()),
            });
            return None;
        };
        self.read.borrow_mut().insert(key.path);
        match self.sources.value(path) {
            None => Some((None, key.default)),
            Some((v, _)) if fits(kind, &v) => Some((Some(v), key.default)),
            Some(_) => None,
        }
    }

    /// A string key that is optional (`Some(None)`: not set).
    pub fn optional(&self, key: &str) -> Option<Option<String>> {
        match self.raw(key, Kind::Text)? {
            (Some(v), _) => v.into_string().map(Some),
            (None, Preset::Text(d)) => Some(Some(d.to_owned())),
            (None, _) => Some(None),
        }
    }

    /// A string key with a default.
    pub fn text(&self, key: &str) -> Option<String> {
        self.optional(key).map(Option::unwrap_or_default)
    }

    /// An integer key.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.raw(key, Kind::Int)? {
            (Some(v), _) => v
                .to_i128()
                .and_then(|i| i64::try_from(i).ok())
                .or_else(|| self.invalid(key, super::source::show(&v), "an integer")),
            (None, Preset::Int(d)) => Some(d),
            (None, _) => Some(0),
        }
    }

    /// A number key (finite).
    pub fn float(&self, key: &str) -> Option<f64> {
        match self.raw(key, Kind::Float)? {
            (Some(v), _) => match &v {
                Value::Num(_, n) => super::source::number(n).filter(|f| f.is_finite()),
                _ => None,
            }
            .or_else(|| self.invalid(key, super::source::show(&v), "a number")),
            (None, Preset::Float(d)) => Some(d),
            (None, _) => Some(0.0),
        }
    }

    /// A boolean key.
    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.raw(key, Kind::Flag)? {
            (Some(v), _) => v.to_bool(),
            (None, Preset::Flag(d)) => Some(d),
            (None, _) => Some(false),
        }
    }

    /// A list key (empty when not set).
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        match self.raw(key, Kind::List)? {
            (Some(v), _) => v
                .into_array()?
                .into_iter()
                .map(Value::into_string)
                .collect(),
            (None, _) => Some(Vec::new()),
        }
    }

    /// `v`, given for `key`, as `ip:port`.
    pub fn addr(&self, key: &str, v: &str) -> Option<SocketAddr> {
        v.trim().parse().ok().or_else(|| {
            self.invalid(
                key,
                format!("{v:?}"),
                "ip:port (e.g. \"0.0.0.0:5060\" or \"[::1]:5060\")",
            )
        })
    }

    /// A socket address key.
    pub fn socket(&self, key: &str) -> Option<SocketAddr> {
        let v = self.text(key)?;
        self.addr(key, &v)
    }

    /// A duration key (`"30s"`, `"1h 30m"`), above zero.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        let v = self.text(key)?;
        match parse_duration(&v) {
            Ok(d) => Some(d),
            Err(expected) => self.invalid(key, format!("{v:?}"), expected),
        }
    }

    /// A duration key that may also be `"off"` (`None`): above zero and
    /// at most `max`; `expected` says what is accepted when it is not.
    pub fn duration_or_off(
        &self,
        key: &str,
        max: Duration,
        expected: &str,
    ) -> Option<Option<Duration>> {
        let v = self.text(key)?;
        if v.trim() == "off" {
            return Some(None);
        }
        match parse_duration(&v) {
            Ok(d) if d <= max => Some(Some(d)),
            _ => self.invalid(key, format!("{v:?}"), expected),
        }
    }

    /// A port key: 1 to 65535.
    pub fn port(&self, key: &str) -> Option<u16> {
        let v = self.int(key)?;
        u16::try_from(v)
            .ok()
            .filter(|p| *p > 0)
            .or_else(|| self.invalid(key, v, "a port number from 1 to 65535"))
    }

    /// A count key within `1..=max`.
    pub fn count(&self, key: &str, max: usize) -> Option<usize> {
        let v = self.int(key)?;
        usize::try_from(v)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .or_else(|| self.invalid(key, v, &format!("a number from 1 to {max}")))
    }

    /// The model uplink's chunk length: 20, 40 or 60 (milliseconds).
    pub fn uplink(&self, key: &str) -> Option<callbridge_llm_bridge::UplinkChunk> {
        let v = self.int(key)?;
        u64::try_from(v)
            .ok()
            .and_then(callbridge_llm_bridge::UplinkChunk::from_ms)
            .or_else(|| self.invalid(key, v, "20, 40 or 60 (milliseconds of audio per message)"))
    }

    /// A key naming one of `options`.
    pub fn choice<T: Copy>(&self, key: &str, options: &[(&str, T)]) -> Option<T> {
        let v = self.text(key)?;
        options
            .iter()
            .find(|(name, _)| *name == v.trim())
            .map(|(_, t)| *t)
            .or_else(|| {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.invalid(
                    key,
                    format!("{v:?}"),
                    &format!("one of {}", names.join(", ")),
                )
            })
    }
}

/// A humantime duration above zero, or what was expected.
pub fn parse_duration(v: &str) -> Result<Duration, &'static str> {
    let d = humantime_serde::re::humantime::parse_duration(v.trim())
        .map_err(|_| "a duration like \"30s\", \"5m\", \"250ms\"")?;
    if d.is_zero() {
        return Err("a duration above zero");
    }
    Ok(d)
}
