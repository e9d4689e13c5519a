//! Single use of Vonage signed-webhook JWTs: a bounded cache of the `jti`
//! (RFC 7519 section 4.1.7, "JWT ID") of every token accepted, kept for
//! the token's lifetime, so that the exact replay of a webhook, or its
//! token presented on another webhook, is refused.
//!
//! A Vonage signed webhook carries no `exp`; the agent accepts a token
//! while its `iat` is within `max_age` of now, on either side (clock skew).
//! A token issued at `iat` is therefore acceptable until `iat + max_age`,
//! and its `jti` is remembered exactly that long: after that the `iat`
//! check refuses it anyway.
//!
//! Only tokens whose signature verified reach the cache, so only the
//! carrier (or whoever holds the signature secret) can fill it. When it is
//! full of live entries, a new token is refused ([`ReplayError::Full`],
//! answered 503 so the carrier retries) rather than an entry evicted:
//! evicting would reopen a replay window, and the cap, sized for far more
//! webhooks per lifetime than one agent receives, is only reached under a
//! flood.
//!
//! Sans-IO: the time (Unix seconds) is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Longest `jti` accepted (Vonage's are UUIDs, 36 characters).
pub const MAX_JTI: usize = 128;

/// Default cap on remembered `jti`s: 65,536 webhooks per token lifetime
/// (about 218 per second over five minutes), a few MB at most.
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

/// Why a token's `jti` was not accepted.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The token has no `jti`, or one longer than [`MAX_JTI`].
    #[error("token has no usable jti")]
    NoJti,
    /// This `jti` was accepted before, and its token has not expired.
    #[error("token already used")]
    Replayed,
    /// The cache is full of live entries; try again later.
    #[error("replay cache full")]
    Full,
}

/// The `jti`s of accepted tokens until they expire (see the module docs).
#[derive(Debug)]
pub struct JtiCache {
    max: usize,
    seen: HashMap<Box<str>, i64>,
    by_expiry: BinaryHeap<Reverse<(i64, Box<str>)>>,
}

impl Default for JtiCache {
    fn default() -> Self {
        JtiCache::new(DEFAULT_MAX_ENTRIES)
    }
}

impl JtiCache {
    /// A cache holding at most `max` live entries.
    pub fn new(max: usize) -> JtiCache {
        JtiCache {
            max,
            seen: HashMap::new(),
            by_expiry: BinaryHeap::new(),
        }
    }

    /// Entries remembered (expired ones may linger until the next
    /// [`JtiCache::use_once`]).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drops the entries whose tokens expired at or before `now`.
    fn purge(&mut self, now: i64) {
        while let Some(Reverse((exp, _))) = self.by_expiry.peek() {
            if *exp > now {
                break;
            }
            if let Some(Reverse((_, jti))) = self.by_expiry.pop() {
                self.seen.remove(&jti);
            }
        }
    }

    /// Records the use of the token `jti` (whose signature verified) at
    /// `now`; the token stays unusable until `expires` (Unix seconds).
    ///
    /// # Errors
    /// [`ReplayError::NoJti`] for an empty or oversized `jti`,
    /// [`ReplayError::Replayed`] when it was used before and has not
    /// expired, [`ReplayError::Full`] when [`JtiCache::new`]'s cap of live
    /// entries is reached.
    pub fn use_once(&mut self, now: i64, jti: &str, expires: i64) -> Result<(), ReplayError> {
        if jti.is_empty() || jti.len() > MAX_JTI {
            return Err(ReplayError::NoJti);
        }
        self.purge(now);
        if self.seen.contains_key(jti) {
            return Err(ReplayError::Replayed);
        }
        if expires <= now {
            // Already past its lifetime: nothing to remember (the caller's
            // freshness check refuses such a token before it gets here).
            return Ok(());
        }
        if self.seen.len() >= self.max {
            return Err(ReplayError::Full);
        }
        let jti: Box<str> = jti.into();
        self.seen.insert(jti.clone(), expires);
        self.by_expiry.push(Reverse((expires, jti)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_replay_within_the_lifetime_is_refused() {
        let mut c = JtiCache::new(8);
        assert_eq!(c.use_once(1000, "a", 1300), Ok(()));
        assert_eq!(c.use_once(1001, "a", 1300), Err(ReplayError::Replayed));
        assert_eq!(c.use_once(1299, "a", 1300), Err(ReplayError::Replayed));
        assert_eq!(c.use_once(1001, "b", 1300), Ok(()));
    }

    #[test]
    fn entries_expire_with_their_token_on_a_simulated_clock() {
        let mut c = JtiCache::new(8);
        c.use_once(1000, "a", 1300).unwrap();
        c.use_once(1000, "b", 1100).unwrap();
        assert_eq!(c.len(), 2);
        c.use_once(1100, "c", 1400).unwrap();
        assert_eq!(c.len(), 2, "b expired at 1100 and is gone");
        // At its expiry the token itself is stale: forgetting it is safe.
        assert_eq!(c.use_once(1300, "a", 1600), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_and_does_not_evict() {
        let mut c = JtiCache::new(2);
        c.use_once(0, "a", 300).unwrap();
        c.use_once(0, "b", 300).unwrap();
        assert_eq!(c.use_once(1, "c", 301), Err(ReplayError::Full));
        assert_eq!(
            c.use_once(2, "a", 300),
            Err(ReplayError::Replayed),
            "a kept"
        );
        assert_eq!(
            c.use_once(300, "c", 600),
            Ok(()),
            "room once a and b expire"
        );
    }

    #[test]
    fn a_jti_must_be_present_and_bounded() {
        let mut c = JtiCache::new(2);
        assert_eq!(c.use_once(0, "", 300), Err(ReplayError::NoJti));
        let long = "x".repeat(MAX_JTI + 1);
        assert_eq!(c.use_once(0, &long, 300), Err(ReplayError::NoJti));
        assert!(c.is_empty());
    }

    proptest! {
        #[test]
        fn no_live_jti_is_accepted_twice_and_the_cap_holds(
            ops in proptest::collection::vec((0u8..12, 0i64..40, 1i64..60), 0..200),
        ) {
            let mut c = JtiCache::new(5);
            let mut now = 0i64;
            let mut live: HashMap<String, i64> = HashMap::new();
            for (id, step, ttl) in ops {
                now += step;
                let jti = format!("j{id}");
                let r = c.use_once(now, &jti, now + ttl);
                let was_live = live.get(&jti).is_some_and(|&e| e > now);
                if was_live {
                    prop_assert_eq!(r, Err(ReplayError::Replayed));
                } else if r.is_ok() {
                    live.insert(jti, now + ttl);
                }
                prop_assert!(c.len() <= 5);
            }
        }
    }
}
