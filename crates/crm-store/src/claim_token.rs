//! [`ClaimToken`]: the random token that ties the call placed for a lead to
//! the claim it was placed for (see `claims.rs` for why it exists).

use rand::CryptoRng;

use crate::error::{Error, Result};
use crate::random::os_rng;

/// Random bytes in a [`ClaimToken`].
const TOKEN_BYTES: usize = 16;

/// Identifies one claim of one lead (see `claims.rs`): 32 lowercase hex
/// digits from a cryptographically secure generator, new for every claim,
/// so a claim that was released and claimed again (even for the same attempt number, even
/// by the same process) has a different token. `Debug` shows only its
/// first 8 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token from a generator seeded from the OS random source;
    /// [`Error::Entropy`] when that fails. [`Store::claim_due_leads`] draws
    /// from the store's generator instead.
    ///
    /// [`Store::claim_due_leads`]: crate::Store::claim_due_leads
    pub fn generate() -> Result<Self> {
        Ok(Self::generate_with(&mut os_rng()?))
    }

    /// A fresh token from `rng`, a cryptographically secure generator (see
    /// the crate's [randomness](crate#randomness); tests pass a seeded one).
    pub fn generate_with<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; TOKEN_BYTES];
        rng.fill_bytes(&mut b);
        ClaimToken(hex::encode(b))
    }

    /// A token received from elsewhere (the agent's HTTP API):
    /// [`Error::InvalidInput`] unless it is 32 hex digits.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() != 2 * TOKEN_BYTES || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput {
                field: "claim_token",
                reason: "not 32 hex digits",
            });
        }
        Ok(ClaimToken(s.to_ascii_lowercase()))
    }

    /// The token as stored and sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClaimToken({}..)", self.0.get(..8).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn claim_tokens_parse_only_as_32_hex_digits_and_debug_shows_a_prefix() {
        let t = ClaimToken::generate().unwrap();
        assert_eq!(t.as_str().len(), 32);
        assert_eq!(ClaimToken::parse(t.as_str()).unwrap(), t);
        assert_eq!(
            ClaimToken::parse(&t.as_str().to_ascii_uppercase()).unwrap(),
            t
        );
        for bad in ["", "abc", &"g".repeat(32), &"a".repeat(33)] {
            assert!(ClaimToken::parse(bad).is_err(), "{bad}");
        }
        let shown = format!("{t:?}");
        assert!(shown.contains(&t.as_str()[..8]) && !shown.contains(t.as_str()));
    }

    #[test]
    fn seeded_generators_repeat_their_tokens_and_each_claim_is_new() {
        let mut a = rand::rngs::StdRng::seed_from_u64(5);
        let mut b = rand::rngs::StdRng::seed_from_u64(5);
        let first = ClaimToken::generate_with(&mut a);
        assert_eq!(first, ClaimToken::generate_with(&mut b));
        assert_ne!(first, ClaimToken::generate_with(&mut a));
        assert_ne!(
            ClaimToken::generate().unwrap(),
            ClaimToken::generate().unwrap()
        );
    }
}
