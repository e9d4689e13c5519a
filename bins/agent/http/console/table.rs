//! The console's server-side sign-in sessions: a bounded table from a
//! random cookie value to the API token it was exchanged for, its CSRF
//! token and its two deadlines (idle and absolute).
//!
//! Sans-IO: every call takes `now`, so tests move time by hand. The API
//! token stays here, in memory, and never goes back to the browser; each
//! request verifies it with the store again (`Store::verify_token`), so a
//! revoked or expired token ends the console session at its next request
//! exactly as it ends API access.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng as _;
use subtle::ConstantTimeEq as _;

/// Most sign-in sessions kept; signing in beyond it drops the one unused
/// longest.
pub const MAX_SESSIONS: usize = 1024;
/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session is over this long after sign-in, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);

/// What the gate found: the session's CSRF token (for the forms of the
/// page) and its cookie value.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The CSRF token.
    pub csrf: String,
    /// The cookie value (to end the session).
    pub id: String,
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The API token presented at sign-in (never sent to the browser).
    pub token: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Entry {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) >= IDLE
            || now.saturating_duration_since(self.created) >= ABSOLUTE
    }
}

/// The table; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct Table {
    entries: Mutex<HashMap<String, Entry>>,
}

/// 32 random bytes from the OS-seeded generator, as 64 hex digits.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Table {
    /// Starts a session for `token`; returns the cookie value.
    pub fn insert(&self, token: String, now: Instant) -> String {
        let id = random_hex();
        let entry = Entry {
            token,
            csrf: random_hex(),
            created: now,
            last_seen: now,
        };
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| !e.expired(now));
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), entry);
        id
    }

    /// The live session of cookie value `id` (its idle deadline moved on);
    /// `None` when unknown or over (an expired one is dropped).
    pub fn touch(&self, id: &str, now: Instant) -> Option<Entry> {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let e = map.get_mut(id)?;
        if e.expired(now) {
            map.remove(id);
            return None;
        }
        e.last_seen = now;
        Some(e.clone())
    }

    /// Ends the session of cookie value `id`.
    pub fn remove(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Moves every session `by` into the past (tests of expiry through
    /// the router).
    #[cfg(test)]
    pub fn age(&self, by: Duration) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for e in map.values_mut() {
            if let (Some(c), Some(l)) = (e.created.checked_sub(by), e.last_seen.checked_sub(by)) {
                e.created = c;
                e.last_seen = l;
            }
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_session_lives_until_idle_or_absolute_deadline() {
        let t = Table::default();
        let t0 = Instant::now();
        let id = t.insert("cbt_x".into(), t0);
        assert_eq!(id.len(), 64);
        assert_eq!(t.touch(&id, t0 + IDLE / 2).unwrap().token, "cbt_x");
        // Used at IDLE/2, so still alive just before IDLE/2 + IDLE.
        assert!(
            t.touch(&id, t0 + IDLE / 2 + IDLE - Duration::from_secs(1))
                .is_some()
        );
        assert!(t.touch(&id, t0 + IDLE * 3).is_none());
        assert_eq!(t.len(), 0, "an expired session is dropped");

        let id = t.insert("cbt_y".into(), t0);
        let mut now = t0;
        while now < t0 + ABSOLUTE - IDLE {
            now += IDLE / 2;
            assert!(t.touch(&id, now).is_some());
        }
        assert!(t.touch(&id, t0 + ABSOLUTE).is_none(), "absolute deadline");
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_longest_unused() {
        let t = Table::default();
        let t0 = Instant::now();
        let first = t.insert("a".into(), t0);
        let second = t.insert("b".into(), t0 + Duration::from_secs(1));
        for i in 2..MAX_SESSIONS {
            t.insert(i.to_string(), t0 + Duration::from_secs(2));
        }
        assert!(t.touch(&first, t0 + Duration::from_secs(3)).is_some());
        t.insert("new".into(), t0 + Duration::from_secs(4));
        assert_eq!(t.len(), MAX_SESSIONS);
        assert!(t.touch(&first, t0 + Duration::from_secs(5)).is_some());
        assert!(t.touch(&second, t0 + Duration::from_secs(5)).is_none());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_must_match_exactly() {
        let t = Table::default();
        let now = Instant::now();
        let a = t.touch(&t.insert("a".into(), now), now).unwrap();
        let b = t.touch(&t.insert("b".into(), now), now).unwrap();
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf.clone()));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_matches(&a.csrf[..10]));
    }
}
