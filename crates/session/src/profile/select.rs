//! Which inbound calls a profile takes: its called-number rules (exact,
//! prefix, pattern) and its optional source set, and how specific a
//! match is, and its optional source trunk ([`super::trunks`]), so the
//! most specific profile wins: any exact match beats
//! any prefix, a longer prefix beats a shorter one, and a pattern comes
//! last; among equals the profile listed first wins.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

/// Longest pattern source, in bytes (the compiled size is bounded too).
pub const MAX_PATTERN: usize = 512;

/// One called-number rule.
#[derive(Debug, Clone)]
pub enum NumberRule {
    /// The called number exactly (`+4930123456`).
    Exact(String),
    /// The called number starts with it (`+4930`).
    Prefix(String),
    /// A regular expression the whole called number matches (it is
    /// anchored: `^(?:...)$`).
    Pattern(Regex),
}

/// How specifically a call matched; higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity {
    /// A pattern matched.
    Pattern,
    /// A prefix of this length matched.
    Prefix(usize),
    /// The number matched exactly.
    Exact,
}

/// A profile's inbound rules.
#[derive(Debug, Clone, Default)]
pub struct MatchRules {
    /// The called-number rules; empty: the profile is picked only as the
    /// default or by name.
    pub numbers: Vec<NumberRule>,
    /// Where the INVITE must come from (empty: anywhere).
    pub sources: Vec<IpNet>,
    /// The named trunk the INVITE must come from (`None`: any).
    pub trunk: Option<String>,
}

impl NumberRule {
    /// A pattern rule from `source`, anchored to the whole number.
    ///
    /// # Errors
    /// The regex crate's message when the pattern is bad or too large.
    pub fn pattern(source: &str) -> Result<NumberRule, String> {
        if source.len() > MAX_PATTERN {
            return Err("longer than 512 bytes".into());
        }
        regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map(NumberRule::Pattern)
            .map_err(|e| e.to_string().replace('\n', " "))
    }

    fn matches(&self, called: &str) -> Option<Specificity> {
        match self {
            NumberRule::Exact(n) => (n == called).then_some(Specificity::Exact),
            NumberRule::Prefix(p) => called
                .starts_with(p.as_str())
                .then_some(Specificity::Prefix(p.len())),
            NumberRule::Pattern(r) => r.is_match(called).then_some(Specificity::Pattern),
        }
    }
}

impl MatchRules {
    /// How specifically a call to `called` from `source` (of the named
    /// trunk `trunk`, if any) matches, if it does: the best of the number
    /// rules, when the source and its trunk are allowed.
    pub fn score(
        &self,
        called: &str,
        source: Option<IpAddr>,
        trunk: Option<&str>,
    ) -> Option<Specificity> {
        if let Some(want) = &self.trunk
            && trunk != Some(want.as_str())
        {
            return None;
        }
        if !self.sources.is_empty() {
            let ip = source?;
            if !self.sources.iter().any(|n| n.contains(&ip)) {
                return None;
            }
        }
        self.numbers.iter().filter_map(|r| r.matches(called)).max()
    }
}
