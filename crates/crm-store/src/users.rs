//! Users and API tokens. A token is `cbt_<id>_<secret>`: 8 random bytes of
//! public id and 32 random bytes of secret, hex-encoded. The store keeps
//! the id and the SHA-256 of the secret only; verification looks the user
//! up by the id and compares the hashes in constant time. Tokens never
//! appear in `Debug`, `Display`, logs or errors.

use jiff::Timestamp;
use rusqlite::{Row, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::model::{PersonName, Role, UserId};
use crate::store::{Store, ms, ts};

const PREFIX: &str = "cbt_";

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// An API token as handed to a user once. Only its hash is stored.
#[derive(Clone)]
pub struct ApiToken {
    id: String,
    secret: String,
}

impl ApiToken {
    /// A fresh token from the OS random source.
    pub fn generate() -> Result<Self> {
        let mut b = [0u8; 40];
        getrandom::fill(&mut b).map_err(|_| Error::Entropy)?;
        Ok(Self::from_random_bytes(b))
    }

    /// A token from caller-supplied random bytes (8 id + 32 secret), for
    /// callers that inject randomness.
    pub fn from_random_bytes(b: [u8; 40]) -> Self {
        let (id, secret) = b.split_at(8);
        ApiToken {
            id: hex(id),
            secret: hex(secret),
        }
    }

    /// Splits a presented token; `None` if it is not of our shape.
    fn parse(s: &str) -> Option<Self> {
        let (id, secret) = s.strip_prefix(PREFIX)?.split_once('_')?;
        let ok = |x: &str, n| x.len() == n && x.bytes().all(|c| c.is_ascii_hexdigit());
        (ok(id, 16) && ok(secret, 64)).then(|| ApiToken {
            id: id.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }

    /// The full token, to give to the user once. Never log it.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.secret.as_bytes()).to_vec()
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({PREFIX}{}_<redacted>)", self.id)
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its name.
    pub name: PersonName,
    /// Its role.
    pub role: Role,
    /// Created.
    pub created_at: Timestamp,
}

fn user_from_row(r: &Row<'_>) -> Result<User> {
    Ok(User {
        id: UserId(r.get(0)?),
        name: PersonName::from_db(r.get(1)?),
        role: Role::from_db(&r.get::<_, String>(2)?)?,
        created_at: ts(r.get(3)?)?,
    })
}

impl Store {
    /// Creates a user whose API token is `token` (stored as a hash).
    pub fn create_user(
        &mut self,
        name: &PersonName,
        role: Role,
        token: &ApiToken,
        now: Timestamp,
    ) -> Result<UserId> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO users (name, role, token_id, token_hash, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                name.as_str(),
                role.as_str(),
                token.id,
                token.hash(),
                ms(now)
            ],
        )
        .map_err(conflict_on_constraint(
            Entity::User,
            "token id already used",
        ))?;
        let id = UserId(tx.last_insert_rowid());
        tx.commit()?;
        Ok(id)
    }

    /// The user a presented token belongs to, or [`Error::Unauthorized`].
    pub fn verify_token(&self, presented: &str) -> Result<User> {
        let Some(t) = ApiToken::parse(presented) else {
            return Err(Error::Unauthorized);
        };
        let mut st = self.conn.prepare_cached(
            "SELECT id, name, role, created_at, token_hash FROM users WHERE token_id = ?1",
        )?;
        let mut rows = st.query([&t.id])?;
        let Some(r) = rows.next()? else {
            return Err(Error::Unauthorized);
        };
        let stored: Vec<u8> = r.get(4)?;
        if bool::from(stored.as_slice().ct_eq(t.hash().as_slice())) {
            user_from_row(r)
        } else {
            Err(Error::Unauthorized)
        }
    }

    /// Replaces a user's token; the old one stops working at once.
    pub fn rotate_token(&mut self, id: UserId, token: &ApiToken) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx
            .execute(
                "UPDATE users SET token_id = ?2, token_hash = ?3 WHERE id = ?1",
                params![id.0, token.id, token.hash()],
            )
            .map_err(conflict_on_constraint(
                Entity::User,
                "token id already used",
            ))?;
        if n == 0 {
            return Err(Error::NotFound {
                entity: Entity::User,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Changes a user's role.
    pub fn set_role(&mut self, id: UserId, role: Role) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute(
            "UPDATE users SET role = ?2 WHERE id = ?1",
            params![id.0, role.as_str()],
        )? == 0
        {
            return Err(Error::NotFound {
                entity: Entity::User,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// One user.
    pub fn get_user(&self, id: UserId) -> Result<User> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, role, created_at FROM users WHERE id = ?1")?;
        let mut rows = st.query([id.0])?;
        match rows.next()? {
            Some(r) => user_from_row(r),
            None => Err(Error::NotFound {
                entity: Entity::User,
                id: id.to_string(),
            }),
        }
    }

    /// Every user, by id.
    pub fn list_users(&self) -> Result<Vec<User>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, role, created_at FROM users ORDER BY id")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(user_from_row(r)?);
        }
        Ok(out)
    }

    /// Deletes a user; their campaigns and sessions stay, without owner.
    pub fn delete_user(&mut self, id: UserId) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute("DELETE FROM users WHERE id = ?1", [id.0])? == 0 {
            return Err(Error::NotFound {
                entity: Entity::User,
                id: id.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }
}
