//! Users and API tokens. A token is `cbt_<id>_<secret>`: 8 random bytes of
//! public id and 32 random bytes of secret, hex-encoded. The store keeps
//! the id and the SHA-256 of the secret only; verification looks the user
//! up by the id (an index lookup) and compares the hashes in constant time
//! ([`hashes_match`], `subtle`), so neither the lookup nor the comparison
//! tells an attacker how much of a guess was right. Tokens never appear in
//! `Debug`, `Display`, logs or errors.
//!
//! Each user has one token at a time. A token may expire
//! ([`Store::create_user_expiring`], [`Store::rotate_token`]); rotating
//! replaces it (the old one fails at once); revoking
//! ([`Store::revoke_user`]) kills it and keeps the user row, so campaigns
//! and sessions keep their owner. The last use of a token is recorded by
//! [`Store::record_token_use`], which callers throttle (the agent writes at
//! most once a minute per token).
//!
//! User names are unique, non-empty, without control characters or
//! surrounding spaces, and not all digits (so `NAME|ID` on the command
//! line is never ambiguous); see [`check_user_name`].

use callbridge_redact::Secret;
use jiff::Timestamp;
use rand::CryptoRng;
use rusqlite::params;

use crate::db::{Optional, Row};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::model::{PersonName, Role, UserId};
use crate::random::os_rng;
use crate::store::Store;
use crate::stored::{ms, ts, ts_opt};

const PREFIX: &str = "cbt_";

/// An API token as handed to a user once. Only its hash is stored.
#[derive(Clone)]
pub struct ApiToken {
    id: String,
    secret: Secret<String>,
}

impl ApiToken {
    /// A fresh token from a generator seeded from the OS random source
    /// ([`Error::Entropy`] when that fails).
    pub fn generate() -> Result<Self> {
        Ok(Self::generate_with(&mut os_rng()?))
    }

    /// A fresh token from `rng`, which must be a cryptographically secure
    /// generator (the token is a secret; see the crate's
    /// [randomness](crate#randomness)). Tests pass a seeded one.
    pub fn generate_with<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 40];
        rng.fill_bytes(&mut b);
        Self::from_random_bytes(b)
    }

    /// A token from caller-supplied random bytes (8 id + 32 secret), for
    /// callers that inject randomness.
    pub fn from_random_bytes(b: [u8; 40]) -> Self {
        let (id, secret) = b.split_at(8);
        ApiToken {
            id: hex::encode(id),
            secret: Secret::new(hex::encode(secret)),
        }
    }

    /// Splits a presented token; `None` if it is not of our shape.
    fn parse(s: &str) -> Option<Self> {
        let (id, secret) = s.strip_prefix(PREFIX)?.split_once('_')?;
        let ok = |x: &str, n| x.len() == n && x.bytes().all(|c| c.is_ascii_hexdigit());
        (ok(id, 16) && ok(secret, 64)).then(|| ApiToken {
            id: id.to_ascii_lowercase(),
            secret: Secret::new(secret.to_ascii_lowercase()),
        })
    }

    /// The full token, to give to the user once. Never log it.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret.expose())
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.secret.expose().as_bytes()).to_vec()
    }

    /// The public half of the token, which identifies it.
    pub fn id(&self) -> TokenId {
        TokenId(Secret::new(self.id.clone()))
    }
}

/// Whether a stored token hash equals the hash of a presented secret, in
/// time that does not depend on where they differ (`subtle`). Slices of
/// different lengths never match (the length is not secret: every hash is
/// 32 bytes).
fn hashes_match(stored: &[u8], presented: &[u8]) -> bool {
    bool::from(stored.ct_eq(presented))
}

/// The public id of an API token (the `<id>` of `cbt_<id>_<secret>`): it
/// names the token, proves nothing, and is still kept out of logs
/// (`Debug` hides it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenId(Secret<String>);

impl TokenId {
    /// The stored form (16 hex digits).
    pub fn as_str(&self) -> &str {
        self.0.expose()
    }
}

/// The longest user name, in bytes.
pub const MAX_USER_NAME: usize = 128;

/// Checks a new user name: not empty, no leading or trailing white space,
/// no control characters, at most [`MAX_USER_NAME`] bytes, not all digits
/// (a name like `42` would read as a user id).
///
/// # Errors
/// [`Error::InvalidInput`] naming what is wrong.
pub fn check_user_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidInput {
            field: "user name",
            reason,
        })
    };
    if name.trim().is_empty() {
        return bad("empty");
    }
    if name.trim() != name {
        return bad("leading or trailing white space");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters");
    }
    if name.len() > MAX_USER_NAME {
        return bad("longer than 128 bytes");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return bad("only digits (it would read as a user id)");
    }
    Ok(())
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({PREFIX}{}_<redacted>)", self.id)
    }
}

/// What a user's token is good for at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// It authenticates.
    Active,
    /// Its expiry time has passed.
    Expired,
    /// The user was revoked.
    Revoked,
}

impl TokenState {
    /// `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

/// A stored user and the state of their token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its name (unique).
    pub name: PersonName,
    /// Its role.
    pub role: Role,
    /// Created.
    pub created_at: Timestamp,
    /// The public id of the current token.
    pub token_id: TokenId,
    /// When the current token was issued (created or rotated).
    pub token_issued_at: Timestamp,
    /// When the current token stops working; `None`: never.
    pub token_expires_at: Option<Timestamp>,
    /// The last recorded use of the current token (recorded at most about
    /// once a minute, so up to a minute old); `None`: not used yet.
    pub token_last_used_at: Option<Timestamp>,
    /// When the user was revoked; `None`: not revoked.
    pub revoked_at: Option<Timestamp>,
}

impl User {
    /// The state of the user's token at `now`.
    pub fn token_state(&self, now: Timestamp) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.token_expires_at.is_some_and(|e| e <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// The columns [`user_from_row`] reads, in order.
const USER_COLS: &str = "id, name, role, created_at, token_id, token_issued_at, \
    token_expires_at, token_last_used_at, revoked_at";

fn user_from_row(r: &Row<'_>) -> Result<User> {
    let created_at = ts(r.get(3)?)?;
    Ok(User {
        id: UserId(r.get(0)?),
        name: PersonName::from_db(r.get(1)?),
        role: Role::from_db(&r.get::<String>(2)?)?,
        created_at,
        token_id: TokenId(Secret::new(r.get(4)?)),
        token_issued_at: ts_opt(r.get(5)?)?.unwrap_or(created_at),
        token_expires_at: ts_opt(r.get(6)?)?,
        token_last_used_at: ts_opt(r.get(7)?)?,
        revoked_at: ts_opt(r.get(8)?)?,
    })
}

fn not_found(id: UserId) -> Error {
    Error::NotFound {
        entity: Entity::User,
        id: id.to_string(),
    }
}

/// Refuses an expiry that is not after `now`.
fn check_expiry(expires_at: Option<Timestamp>, now: Timestamp) -> Result<()> {
    match expires_at {
        Some(e) if e <= now => Err(Error::InvalidInput {
            field: "token expiry",
            reason: "not in the future",
        }),
        _ => Ok(()),
    }
}

impl Store {
    /// Creates a user whose API token is `token` (stored as a hash) and
    /// never expires. See [`Store::create_user_expiring`].
    pub fn create_user(
        &mut self,
        name: &PersonName,
        role: Role,
        token: &ApiToken,
        now: Timestamp,
    ) -> Result<UserId> {
        self.create_user_expiring(name, role, token, None, now)
    }

    /// Creates a user whose API token is `token` (stored as a hash), valid
    /// until `expires_at` (`None`: until rotated or revoked).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name [`check_user_name`] refuses or an
    /// expiry not after `now`; [`Error::Conflict`] when a user has that
    /// name already.
    pub fn create_user_expiring(
        &mut self,
        name: &PersonName,
        role: Role,
        token: &ApiToken,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<UserId> {
        check_user_name(name.as_str())?;
        check_expiry(expires_at, now)?;
        let tx = self.write_tx()?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
            params![name.as_str()],
            |r| r.get(0),
        )?;
        if taken {
            return Err(Error::Conflict {
                entity: Entity::User,
                reason: "a user with that name exists",
            });
        }
        let id = UserId(
            tx.query_row(
                "INSERT INTO users (name, role, token_id, token_hash, created_at, \
                     token_issued_at, token_expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) RETURNING id",
                params![
                    name.as_str(),
                    role.as_str(),
                    token.id,
                    token.hash(),
                    ms(now),
                    expires_at.map(ms),
                ],
                |r| r.get(0),
            )
            .map_err(conflict_on_constraint(
                Entity::User,
                "token id already used",
            ))?,
        );
        tx.commit()?;
        Ok(id)
    }

    /// The user a presented token belongs to at `now`, or
    /// [`Error::Unauthorized`] when the token is malformed, unknown, wrong,
    /// expired or revoked (one answer for all, so a caller learns nothing).
    pub fn verify_token(&self, presented: &str, now: Timestamp) -> Result<User> {
        let Some(t) = ApiToken::parse(presented) else {
            return Err(Error::Unauthorized);
        };
        let found = self
            .conn
            .query_row(
                &format!("SELECT {USER_COLS}, token_hash FROM users WHERE token_id = ?1"),
                params![t.id],
                |r| Ok::<_, Error>((r.get::<Vec<u8>>(9)?, user_from_row(r)?)),
            )
            .optional()?;
        let Some((stored, user)) = found else {
            return Err(Error::Unauthorized);
        };
        if !hashes_match(&stored, &t.hash()) {
            return Err(Error::Unauthorized);
        }
        match user.token_state(now) {
            TokenState::Active => Ok(user),
            TokenState::Expired | TokenState::Revoked => Err(Error::Unauthorized),
        }
    }

    /// Replaces a user's token with `token`, valid until `expires_at`
    /// (`None`: no expiry); the old one stops working at once. A revoked
    /// user is active again with the new token; the last use is cleared.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for an expiry not after
    /// `now`.
    pub fn rotate_token(
        &mut self,
        id: UserId,
        token: &ApiToken,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()> {
        check_expiry(expires_at, now)?;
        let tx = self.write_tx()?;
        let n = tx
            .execute(
                "UPDATE users SET token_id = ?2, token_hash = ?3, token_issued_at = ?4, \
                     token_expires_at = ?5, token_last_used_at = NULL, revoked_at = NULL \
                 WHERE id = ?1",
                params![id.0, token.id, token.hash(), ms(now), expires_at.map(ms)],
            )
            .map_err(conflict_on_constraint(
                Entity::User,
                "token id already used",
            ))?;
        if n == 0 {
            return Err(not_found(id));
        }
        tx.commit()?;
        Ok(())
    }

    /// Revokes a user: their token stops working at once; the user row
    /// stays (campaigns and sessions keep their owner; [`Store::rotate_token`]
    /// re-enables it with a new token). Returns `false` when the user was
    /// revoked already (the first revocation time stays).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn revoke_user(&mut self, id: UserId, now: Timestamp) -> Result<bool> {
        let tx = self.write_tx()?;
        let revoked_at: Option<Option<i64>> = tx
            .query_row(
                "SELECT revoked_at FROM users WHERE id = ?1",
                params![id.0],
                |r| r.get(0),
            )
            .optional()?;
        match revoked_at {
            None => Err(not_found(id)),
            Some(Some(_)) => Ok(false),
            Some(None) => {
                tx.execute(
                    "UPDATE users SET revoked_at = ?2 WHERE id = ?1",
                    params![id.0, ms(now)],
                )?;
                tx.commit()?;
                Ok(true)
            }
        }
    }

    /// Records that the token `token` was used at `at` (kept only if later
    /// than the recorded use). A token that was rotated away or deleted is
    /// ignored: returns whether a row changed. Callers throttle this; it is
    /// one small write.
    pub fn record_token_use(&mut self, token: &TokenId, at: Timestamp) -> Result<bool> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE users SET token_last_used_at = ?2 WHERE token_id = ?1 \
                 AND (token_last_used_at IS NULL OR token_last_used_at < ?2)",
            params![token.as_str(), ms(at)],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Changes a user's role.
    pub fn set_role(&mut self, id: UserId, role: Role) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute(
            "UPDATE users SET role = ?2 WHERE id = ?1",
            params![id.0, role.as_str()],
        )? == 0
        {
            return Err(not_found(id));
        }
        tx.commit()?;
        Ok(())
    }

    /// One user.
    pub fn get_user(&self, id: UserId) -> Result<User> {
        self.conn
            .query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                params![id.0],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| not_found(id))
    }

    /// The user called exactly `name`, if any.
    pub fn find_user(&self, name: &str) -> Result<Option<User>> {
        self.conn
            .query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE name = ?1"),
                params![name],
                user_from_row,
            )
            .optional()
    }

    /// Every user, by id.
    pub fn list_users(&self) -> Result<Vec<User>> {
        self.conn.query_map(
            &format!("SELECT {USER_COLS} FROM users ORDER BY id"),
            &[],
            user_from_row,
        )
    }

    /// Deletes a user; their campaigns and sessions stay, without owner.
    pub fn delete_user(&mut self, id: UserId) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute("DELETE FROM users WHERE id = ?1", params![id.0])? == 0 {
            return Err(not_found(id));
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_only_when_every_byte_is_equal() {
        let a = ApiToken::from_random_bytes([7; 40]).hash();
        assert!(hashes_match(&a, &a.clone()));
        // Same length, differing in the first byte, the last byte, one bit.
        for (i, bit) in [(0, 0xff), (31, 0x01), (16, 0x80)] {
            let mut b = a.clone();
            b[i] ^= bit;
            assert_eq!(b.len(), a.len());
            assert!(!hashes_match(&a, &b), "byte {i}");
        }
        let other = ApiToken::from_random_bytes([8; 40]).hash();
        assert!(!hashes_match(&a, &other));
        assert!(!hashes_match(&a, &a[..31]));
        assert!(!hashes_match(&a, &[]));
    }

    #[test]
    fn the_token_comparison_is_subtle_constant_time_not_eq() {
        // Guards against a refactor to `==` (which stops at the first
        // differing byte): the comparison must stay subtle's `ct_eq`.
        let src = include_str!("users.rs");
        let start = src.find("fn hashes_match(").unwrap();
        let body = &src[start..start + src[start..].find("\n}\n").unwrap()];
        assert!(body.contains(".ct_eq("), "{body}");
        assert!(!body.contains("==") && !body.contains(".eq("), "{body}");
        let verify = &src[src.find("pub fn verify_token(").unwrap()..];
        let verify = &verify[..verify.find("\n    }\n").unwrap()];
        assert!(verify.contains("hashes_match("), "{verify}");
    }

    #[test]
    fn user_names_must_be_non_empty_plain_and_not_numbers() {
        for ok in ["ann", "Ann Operator", "ops@example.com", "a1", "Zoë"] {
            assert!(check_user_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            " ann",
            "ann ",
            "a\tb",
            "a\nb",
            "42",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(check_user_name(bad), Err(Error::InvalidInput { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn token_id_debug_is_redacted() {
        let t = ApiToken::from_random_bytes([0xab; 40]);
        assert_eq!(format!("{:?}", t.id()), "TokenId(<redacted>)");
        assert_eq!(t.id().as_str(), "abababababababab");
    }
}
