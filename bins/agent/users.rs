//! `agent user add|list|revoke|rotate`: API users in the store. `add` and
//! `rotate` print the bearer token, once, alone on stdout; only its hash
//! is stored. Exit status: 0 done, 1 the store refused (a name in use, no
//! such user, the store unreachable), 2 bad usage or configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use callbridge_crm_store::{ApiToken, Error as StoreError, PersonName, Role, Store, User, UserId};
use jiff::Timestamp;

use crate::cli::{ConfigArg, Expires, UserAdd, UserList, UserRef, UserRotate};
use crate::settings::Settings;

/// The longest token lifetime `--expires` accepts (about ten years).
const MAX_EXPIRES: Duration = Duration::from_secs(3650 * 86_400);

/// A failure, with its exit status.
struct Fail(i32, String);

fn usage(msg: String) -> Fail {
    Fail(2, msg)
}

/// The store of the configuration `file` (a new file gets the configured
/// mode).
fn open(file: &ConfigArg, env: &BTreeMap<String, String>) -> Result<Store, Fail> {
    let settings = Settings::load(&file.config, env).map_err(|e| usage(e.to_string()))?;
    settings.store_at().open().map_err(|e| {
        Fail(
            1,
            format!("cannot open the store {}: {e}", settings.store_url),
        )
    })
}

fn store_fail(what: &str, e: StoreError) -> Fail {
    match e {
        StoreError::InvalidInput { field, reason } => usage(format!("{field}: {reason}")),
        e => Fail(1, format!("{what}: {e}")),
    }
}

/// `--expires` as an instant after `now`.
fn expiry(e: &Expires, now: Timestamp) -> Result<Option<Timestamp>, Fail> {
    let Some(raw) = &e.expires else {
        return Ok(None);
    };
    let bad = || {
        usage(format!(
            "--expires = {raw:?}: expected a duration like 90d, 12h or 30m, above zero and at most 3650d"
        ))
    };
    let d = humantime_serde::re::humantime::parse_duration(raw.trim()).map_err(|_| bad())?;
    if d.is_zero() || d > MAX_EXPIRES {
        return Err(bad());
    }
    let span = jiff::SignedDuration::try_from(d).map_err(|_| bad())?;
    now.checked_add(span).map(Some).map_err(|_| bad())
}

/// The user named `r` (by id when it is all digits and such an id
/// exists, else by name).
fn find(store: &Store, r: &str) -> Result<User, Fail> {
    let not_found = || {
        Fail(
            1,
            format!("no user {r:?} (see `agent user list` for names and ids)"),
        )
    };
    if let Ok(id) = r.parse::<i64>() {
        match store.get_user(UserId(id)) {
            Ok(u) => return Ok(u),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(store_fail("cannot read the users", e)),
        }
    }
    store
        .find_user(r)
        .map_err(|e| store_fail("cannot read the users", e))?
        .ok_or_else(not_found)
}

/// Prints a failure and returns its status.
fn finish(r: Result<(), Fail>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(Fail(code, msg)) => {
            crate::report(&msg);
            code
        }
    }
}

/// Runs `user add`; returns the exit status.
pub fn add(args: &UserAdd, env: &BTreeMap<String, String>) -> i32 {
    finish((|| {
        let role: Role = args.role.trim().parse().map_err(|_| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            usage(format!(
                "--role = {:?}: expected one of {}",
                args.role,
                names.join(", ")
            ))
        })?;
        let raw = args.name.trim();
        let name = PersonName::new(raw)
            .and_then(|n| callbridge_crm_store::check_user_name(raw).map(|()| n))
            .map_err(|e| {
                usage(format!(
                    "NAME = {:?}: expected a user name ({e})",
                    args.name
                ))
            })?;
        let now = Timestamp::now();
        let expires = expiry(&args.expires, now)?;
        let mut store = open(&args.file, env)?;
        let token = ApiToken::generate().map_err(|e| Fail(1, e.to_string()))?;
        match store.create_user_expiring(&name, role, &token, expires, now) {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(Fail(
                    1,
                    format!(
                        "a user named {raw:?} exists already (`agent user rotate {raw}` gives it a new token)"
                    ),
                ));
            }
            Err(e) => return Err(store_fail("cannot create the user", e)),
        }
        println!("{}", token.expose());
        Ok(())
    })())
}

fn when(t: Option<Timestamp>, none: &str) -> String {
    t.map_or_else(
        || none.to_owned(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// Runs `user list`; returns the exit status.
pub fn list(args: &UserList, env: &BTreeMap<String, String>) -> i32 {
    finish((|| {
        let store = open(&args.file, env)?;
        let users = store
            .list_users()
            .map_err(|e| store_fail("cannot read the users", e))?;
        let now = Timestamp::now();
        if args.json {
            for u in &users {
                let line = serde_json::json!({
                    "id": u.id.0,
                    "name": u.name.as_str(),
                    "role": u.role.as_str(),
                    "token": u.token_state(now).as_str(),
                    "created_at": u.created_at.to_string(),
                    "token_issued_at": u.token_issued_at.to_string(),
                    "token_expires_at": u.token_expires_at.map(|t| t.to_string()),
                    "token_last_used_at": u.token_last_used_at.map(|t| t.to_string()),
                    "revoked_at": u.revoked_at.map(|t| t.to_string()),
                });
                println!("{line}");
            }
            return Ok(());
        }
        println!(
            "{:>4}  {:<20} {:<15} {:<8} {:<20} {:<20} last used",
            "id", "name", "role", "token", "issued", "expires"
        );
        for u in &users {
            println!(
                "{:>4}  {:<20} {:<15} {:<8} {:<20} {:<20} {}",
                u.id.0,
                u.name.as_str().replace(|c: char| c.is_control(), " "),
                u.role.as_str(),
                u.token_state(now).as_str(),
                when(Some(u.token_issued_at), ""),
                when(u.token_expires_at, "never"),
                when(u.token_last_used_at, "never"),
            );
        }
        Ok(())
    })())
}

/// Runs `user revoke`; returns the exit status.
pub fn revoke(args: &UserRef, env: &BTreeMap<String, String>) -> i32 {
    finish((|| {
        let mut store = open(&args.file, env)?;
        let u = find(&store, &args.user)?;
        let fresh = store
            .revoke_user(u.id, Timestamp::now())
            .map_err(|e| store_fail("cannot revoke the user", e))?;
        if fresh {
            println!("user {} revoked: its token no longer works", u.id.0);
        } else {
            println!(
                "user {} was revoked already ({})",
                u.id.0,
                when(u.revoked_at, "")
            );
        }
        Ok(())
    })())
}

/// Runs `user rotate`; returns the exit status.
pub fn rotate(args: &UserRotate, env: &BTreeMap<String, String>) -> i32 {
    finish((|| {
        let now = Timestamp::now();
        let expires = expiry(&args.expires, now)?;
        let mut store = open(&args.user.file, env)?;
        let u = find(&store, &args.user.user)?;
        let token = ApiToken::generate().map_err(|e| Fail(1, e.to_string()))?;
        store
            .rotate_token(u.id, &token, expires, now)
            .map_err(|e| store_fail("cannot rotate the token", e))?;
        println!("{}", token.expose());
        Ok(())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(s: &str) -> Result<Option<Timestamp>, i32> {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        expiry(
            &Expires {
                expires: Some(s.into()),
            },
            now,
        )
        .map(|t| t.map(|t| Timestamp::from_second(t.as_second() - now.as_second()).unwrap()))
        .map_err(|Fail(code, _)| code)
    }

    #[test]
    fn expires_takes_durations_up_to_ten_years() {
        let secs = |s| Ok(Some(Timestamp::from_second(s).unwrap()));
        assert_eq!(exp("90d"), secs(90 * 86_400));
        assert_eq!(exp("12h"), secs(12 * 3600));
        assert_eq!(exp("3650d"), secs(3650 * 86_400));
        for bad in ["0s", "3651d", "soon", "-5d", ""] {
            assert_eq!(exp(bad), Err(2), "{bad:?}");
        }
    }
}
