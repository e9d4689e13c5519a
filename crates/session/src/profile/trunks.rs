//! Named source trunks (`[[trunks]]` of agent.toml): the addresses each
//! trunk's INVITEs come from, so a routing profile can take the calls of
//! one trunk by its name (`[profiles.match] source_trunk = "name"`)
//! rather than by its addresses.
//!
//! An INVITE comes from the first listed trunk whose addresses hold its
//! source ([`Trunks::of`]); a source in no trunk's addresses is from no
//! named trunk, and no `source_trunk` rule takes it.
//!
//! ```
//! use callbridge_session::profile::trunks::{TrunkSpec, Trunks};
//! let t = Trunks::load(&[TrunkSpec {
//!     name: "carrier-a".into(),
//!     sources: vec!["198.51.100.0/24".into()],
//! }])
//! .unwrap();
//! assert_eq!(t.of(Some("198.51.100.7".parse().unwrap())), Some("carrier-a"));
//! assert_eq!(t.of(Some("192.0.2.1".parse().unwrap())), None);
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Most named trunks.
pub const MAX_TRUNKS: usize = 64;
/// Most addresses or networks of one trunk.
pub const MAX_TRUNK_SOURCES: usize = 64;

/// One `[[trunks]]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSpec {
    /// Unique, 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
    pub name: String,
    /// The addresses or networks its INVITEs come from (at least one).
    pub sources: Vec<String>,
}

/// One problem with a `[[trunks]]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trunks[{index}] {name:?}: {field}: {message}")]
pub struct TrunkError {
    /// Its position (0-based).
    pub index: usize,
    /// Its name as given.
    pub name: String,
    /// The field (`name`, `sources[1]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A validated named trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trunk {
    name: String,
    sources: Vec<IpNet>,
}

/// The named trunks, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trunks(Vec<Trunk>);

impl Trunks {
    /// Checks every table; on any problem, every problem found.
    ///
    /// # Errors
    /// Each [`TrunkError`]: a bad or repeated name, no sources or too
    /// many, a source that is not an address or network, too many trunks.
    pub fn load(specs: &[TrunkSpec]) -> Result<Trunks, Vec<TrunkError>> {
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        let mut list = Vec::new();
        for (index, s) in specs.iter().enumerate() {
            let mut err = |field: &str, message: String| {
                errors.push(TrunkError {
                    index,
                    name: s.name.clone(),
                    field: field.into(),
                    message,
                });
            };
            if index == MAX_TRUNKS {
                err("trunks", format!("more than {MAX_TRUNKS} trunks"));
            }
            if !super::valid_name(&s.name) {
                err(
                    "name",
                    "1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'".into(),
                );
            } else if !names.insert(s.name.as_str()) {
                err("name", "a second trunk of this name".into());
            }
            if s.sources.is_empty() || s.sources.len() > MAX_TRUNK_SOURCES {
                err(
                    "sources",
                    format!("1 to {MAX_TRUNK_SOURCES} addresses or networks"),
                );
            }
            let mut sources = Vec::new();
            for (k, src) in s.sources.iter().enumerate() {
                match super::parse_net(src) {
                    Some(n) => sources.push(n),
                    None => err(
                        &format!("sources[{k}]"),
                        format!(
                            "{src:?}: an address or network (\"192.0.2.10\", \"198.51.100.0/24\")"
                        ),
                    ),
                }
            }
            list.push(Trunk {
                name: s.name.clone(),
                sources,
            });
        }
        if errors.is_empty() {
            Ok(Trunks(list))
        } else {
            Err(errors)
        }
    }

    /// The trunk an INVITE from `source` came from: the first whose
    /// addresses hold it.
    pub fn of(&self, source: Option<IpAddr>) -> Option<&str> {
        let ip = source?;
        self.0
            .iter()
            .find(|t| t.sources.iter().any(|n| n.contains(&ip)))
            .map(|t| t.name.as_str())
    }

    /// Whether a trunk has this name.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|t| t.name == name)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|t| t.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, sources: &[&str]) -> TrunkSpec {
        TrunkSpec {
            name: name.into(),
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_first_trunk_holding_the_source_is_the_one() {
        let t = Trunks::load(&[
            spec("a", &["192.0.2.10"]),
            spec("b", &["192.0.2.0/24", "2001:db8::/32"]),
        ])
        .unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(t.of(ip("192.0.2.10")), Some("a"));
        assert_eq!(t.of(ip("192.0.2.11")), Some("b"));
        assert_eq!(t.of(ip("2001:db8::1")), Some("b"));
        assert_eq!(t.of(ip("198.51.100.1")), None);
        assert_eq!(t.of(None), None);
        assert_eq!(t.names(), ["a", "b"]);
    }

    #[test]
    fn every_bad_table_is_named() {
        let errs = Trunks::load(&[
            spec("a", &["nowhere"]),
            spec("a", &[]),
            spec("bad name", &["192.0.2.1"]),
        ])
        .unwrap_err();
        let got: Vec<_> = errs.iter().map(|e| (e.index, e.field.as_str())).collect();
        assert_eq!(
            got,
            [(0, "sources[0]"), (1, "name"), (1, "sources"), (2, "name")],
            "{errs:?}"
        );
    }
}
