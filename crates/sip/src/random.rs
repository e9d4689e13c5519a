//! Injected randomness for the identifiers a user agent makes up: tags
//! (RFC 3261 section 19.3), branches (section 8.1.1.7), Call-IDs (section
//! 8.1.1.4) and digest client nonces (RFC 2617 section 3.2.2). The core
//! never draws randomness itself (STYLE rule 18), so tests pin every id.

use crate::ids::{BRANCH_MAGIC_COOKIE, Branch, CallId, Tag};
use std::hash::{BuildHasher, Hasher};

/// A source of random 64-bit values.
pub trait Random: Send {
    /// The next value.
    fn next_u64(&mut self) -> u64;
}

/// Random values from the standard library's per-process random SipHash
/// keys (seeded from the operating system) hashing a counter: fresh and
/// unguessable enough for tags, branches and Call-IDs, with no dependency.
#[derive(Debug, Default)]
pub struct OsRandom {
    keys: std::collections::hash_map::RandomState,
    counter: u64,
}

impl OsRandom {
    /// A generator with fresh keys.
    pub fn new() -> OsRandom {
        OsRandom::default()
    }
}

impl Random for OsRandom {
    fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        let mut h = self.keys.build_hasher();
        h.write_u64(self.counter);
        h.finish()
    }
}

/// A deterministic generator (SplitMix64) for tests and simulations.
#[derive(Debug, Clone)]
pub struct SeededRandom(u64);

impl SeededRandom {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom(seed)
    }
}

impl Random for SeededRandom {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Makers of the identifiers, on top of a [`Random`].
pub(crate) struct Ids(Box<dyn Random>);

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

impl Ids {
    pub(crate) fn new(random: Box<dyn Random>) -> Ids {
        Ids(random)
    }

    pub(crate) fn hex(&mut self) -> String {
        format!("{:016x}", self.0.next_u64())
    }

    pub(crate) fn tag(&mut self) -> Tag {
        Tag::from(self.hex())
    }

    pub(crate) fn branch(&mut self) -> Branch {
        Branch::from(format!("{BRANCH_MAGIC_COOKIE}{}", self.hex()))
    }

    pub(crate) fn call_id(&mut self) -> CallId {
        CallId::from(format!("{}{}", self.hex(), self.hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_reproducible_and_branches_carry_the_cookie() {
        let mut a = Ids::new(Box::new(SeededRandom::new(7)));
        let mut b = Ids::new(Box::new(SeededRandom::new(7)));
        assert_eq!(a.tag(), b.tag());
        let br = a.branch();
        assert_eq!(br, b.branch());
        assert!(br.is_rfc3261());
        assert_ne!(a.call_id(), a.call_id());
    }

    #[test]
    fn os_random_values_differ() {
        let mut r = OsRandom::new();
        assert_ne!(r.next_u64(), r.next_u64());
    }
}
