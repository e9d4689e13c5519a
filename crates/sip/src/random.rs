//! Injected randomness for the identifiers a user agent makes up: tags
//! (RFC 3261 section 19.3), branches (section 8.1.1.7), Call-IDs (section
//! 8.1.1.4) and digest client nonces (RFC 2617 section 3.2.2). The core
//! never draws randomness itself (STYLE rule 18): [`UserAgent::new`] and
//! [`Driver::bind`] take the generator, so tests pin every id.
//!
//! The generator is any [`rand::CryptoRng`]. A client nonce is a security
//! value, and a tag, branch or Call-ID that an off-path attacker could
//! predict would let it forge in-dialog requests (a BYE), so the bound asks
//! for a cryptographically secure generator, not just a fast one:
//! - production: [`os_rng`], rand's [`StdRng`] (ChaCha12, a CSPRNG) seeded
//!   from the operating system;
//! - tests and simulations: [`seeded_rng`], the same generator from a fixed
//!   seed, so a run is reproducible.
//!
//! ```
//! use callbridge_sip::random::seeded_rng;
//! use callbridge_sip::ua::{Config, UserAgent};
//! let ua = UserAgent::new(Config::new("127.0.0.1:5060".parse()?), seeded_rng(1));
//! # drop(ua);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`UserAgent::new`]: crate::ua::UserAgent::new
//! [`Driver::bind`]: crate::driver::Driver::bind

use crate::ids::{BRANCH_MAGIC_COOKIE, Branch, CallId, Tag};
use rand::SeedableRng as _;

pub use rand::CryptoRng;
pub use rand::rngs::StdRng;

/// The production generator: [`StdRng`] seeded from the operating system's
/// random source (through rand's thread-local generator).
///
/// # Panics
/// When the operating system has no random source at all (rand's
/// `ThreadRng` and `std`'s `HashMap` keys fail the same way); never after
/// it returns.
pub fn os_rng() -> StdRng {
    rand::make_rng()
}

/// A deterministic generator for tests and simulations: [`StdRng`] from
/// `seed`. The same seed gives the same identifiers within one version of
/// rand (rand does not promise `StdRng`'s stream across versions).
pub fn seeded_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Makers of the identifiers, on top of an injected generator.
pub(crate) struct Ids(Box<dyn CryptoRng + Send>);

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

impl Ids {
    pub(crate) fn new(rng: Box<dyn CryptoRng + Send>) -> Ids {
        Ids(rng)
    }

    /// 64 random bits as 16 lower-case hex digits.
    pub(crate) fn hex(&mut self) -> String {
        let mut b = [0u8; 8];
        self.0.fill_bytes(&mut b);
        hex::encode(b)
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
        let mut a = Ids::new(Box::new(seeded_rng(7)));
        let mut b = Ids::new(Box::new(seeded_rng(7)));
        assert_eq!(a.tag(), b.tag());
        let br = a.branch();
        assert_eq!(br, b.branch());
        assert!(br.is_rfc3261());
        assert_ne!(a.call_id(), a.call_id());
    }

    #[test]
    fn os_generators_differ_and_ids_are_sixteen_hex_digits() {
        let mut a = Ids::new(Box::new(os_rng()));
        let mut b = Ids::new(Box::new(os_rng()));
        let (x, y) = (a.hex(), b.hex());
        assert_ne!(x, y);
        assert_eq!(x.len(), 16);
        assert!(
            x.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a.hex(), x);
    }
}
