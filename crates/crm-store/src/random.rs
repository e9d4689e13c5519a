//! The store's randomness. API tokens ([`ApiToken`](crate::ApiToken)) are
//! secrets and claim tokens ([`ClaimToken`](crate::ClaimToken)) must be
//! unguessable, so both are drawn from a cryptographically secure generator
//! ([`rand::CryptoRng`]). By default that is rand's `StdRng` (ChaCha12, a
//! CSPRNG) seeded from the operating system when first needed
//! ([`Error::Entropy`] when the OS has no random source). Tests inject a
//! seeded generator ([`Store::set_rng`](crate::Store::set_rng),
//! [`ApiToken::generate_with`](crate::ApiToken::generate_with),
//! [`ClaimToken::generate_with`](crate::ClaimToken::generate_with)) to pin
//! every token.

use rand::rngs::{StdRng, SysRng};
use rand::{CryptoRng, SeedableRng as _};

use crate::error::{Error, Result};

/// A generator seeded from the operating system's random source.
pub(crate) fn os_rng() -> Result<StdRng> {
    StdRng::try_from_rng(&mut SysRng).map_err(|_| Error::Entropy)
}

/// The generator a [`Store`](crate::Store) draws claim tokens from: the one
/// injected, or one seeded from the OS on first use.
#[derive(Default)]
pub(crate) struct StoreRng(Option<Box<dyn CryptoRng + Send>>);

impl StoreRng {
    pub(crate) fn set(&mut self, rng: Box<dyn CryptoRng + Send>) {
        self.0 = Some(rng);
    }

    /// The generator, seeding one from the OS the first time.
    pub(crate) fn get(&mut self) -> Result<&mut (dyn CryptoRng + Send + 'static)> {
        if self.0.is_none() {
            self.0 = Some(Box::new(os_rng()?));
        }
        self.0.as_deref_mut().ok_or(Error::Entropy)
    }
}

impl std::fmt::Debug for StoreRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StoreRng(seeded)"
        } else {
            "StoreRng(unseeded)"
        })
    }
}
