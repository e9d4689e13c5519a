//! Bearer-token auth (RFC 6750) against the store's users, roles, and who
//! may see which session.
//!
//! [`require_token`] runs before every protected handler: it reads
//! `Authorization: Bearer cbt_...`, verifies it with `Store::verify_token`
//! (an index lookup by the token's public id, then a constant-time
//! comparison of hashes; expired and revoked tokens fail the same way)
//! and puts the [`Caller`] into the request's extensions (401 with
//! `WWW-Authenticate` when missing, unknown, expired or revoked). The
//! token's last use is noted for the side writer (`token_use`). Handlers then check the
//! role ([`Caller::require_operator`], 403) and visibility
//! ([`visible_session`]): an admin sees every session; anyone else only the
//! sessions of campaigns they own and the calls assigned to them
//! (`session.owner`). A session the caller may not see is answered exactly
//! like one that does not exist (404), so ids do not leak.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use callbridge_crm_store::{
    CampaignId, Error as StoreError, Role, Session, SessionId, SessionRecord, Store, User,
};

use super::error::ApiError;
use super::pool::store_error;
use super::state::Ctx;

/// The longest `Authorization` value looked at; ours are 89 bytes.
const MAX_TOKEN: usize = 256;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<User>);

impl Caller {
    /// Whether the caller sees everything.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }

    /// 403 unless the caller may place and hang up calls (agent-operator
    /// or admin).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.0.role {
            Role::Admin | Role::AgentOperator => Ok(()),
            Role::Viewer => Err(ApiError::Forbidden(
                "this needs the agent-operator or admin role".into(),
            )),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; 401 when it is
/// missing or not a bearer credential.
fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = ApiError::Unauthorized { presented: false };
    let v = headers.get(header::AUTHORIZATION).ok_or(missing)?;
    let invalid = || ApiError::Unauthorized { presented: true };
    if v.len() > MAX_TOKEN {
        return Err(invalid());
    }
    let s = v.to_str().map_err(|_| invalid())?;
    let (scheme, token) = s.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized { presented: false });
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid());
    }
    Ok(token.to_owned())
}

/// Middleware: authenticates the request or answers 401.
pub async fn require_token(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    let token = match bearer(req.headers()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match authenticate(&ctx, token).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Verifies an API token with the store (401 when unknown, expired or
/// revoked) and notes its use: the one check behind the API's bearer
/// tokens and the console's sign-in sessions.
pub async fn authenticate(ctx: &Ctx, token: String) -> Result<Caller, ApiError> {
    let now = jiff::Timestamp::now();
    let user = ctx
        .pool
        .run(move |s| {
            s.verify_token(&token, now).map_err(|e| match e {
                StoreError::Unauthorized => ApiError::Unauthorized { presented: true },
                other => store_error(other),
            })
        })
        .await?;
    ctx.token_use
        .note(&user.token_id, tokio::time::Instant::now(), now);
    Ok(Caller(Arc::new(user)))
}

/// Whether `user` owns campaign `c` (a campaign that is gone is owned by
/// nobody).
pub fn owns_campaign(store: &Store, user: &User, c: CampaignId) -> Result<bool, ApiError> {
    match store.get_campaign(c) {
        Ok(c) => Ok(c.settings.owner == Some(user.id)),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(store_error(e)),
    }
}

/// Whether `caller` may see `s`.
fn may_see(store: &Store, caller: &Caller, s: &Session) -> Result<bool, ApiError> {
    if caller.is_admin() || s.owner == Some(caller.0.id) {
        return Ok(true);
    }
    match s.campaign {
        Some(c) => owns_campaign(store, &caller.0, c),
        None => Ok(false),
    }
}

/// The session `id` if it exists and `caller` may see it; otherwise the
/// same 404 either way.
pub fn visible_session(store: &Store, caller: &Caller, id: SessionId) -> Result<Session, ApiError> {
    visible(store, caller, id, Store::get_session, |s| s)
}

/// [`visible_session`] with the transcript and events.
pub fn visible_record(
    store: &Store,
    caller: &Caller,
    id: SessionId,
) -> Result<SessionRecord, ApiError> {
    visible(store, caller, id, Store::load_session, |r| &r.session)
}

/// Loads `id` with `load`, then answers the same 404 whether it does not
/// exist or `caller` may not see it.
fn visible<T>(
    store: &Store,
    caller: &Caller,
    id: SessionId,
    load: impl FnOnce(&Store, SessionId) -> Result<T, StoreError>,
    session: impl Fn(&T) -> &Session,
) -> Result<T, ApiError> {
    let found = match load(store, id) {
        Ok(found) => found,
        Err(StoreError::NotFound { .. }) => return Err(ApiError::no_session(&id.to_string())),
        Err(e) => return Err(store_error(e)),
    };
    if may_see(store, caller, session(&found))? {
        Ok(found)
    } else {
        Err(ApiError::no_session(&id.to_string()))
    }
}

/// Parses a session id from the path; anything that is not a UUID is a
/// session that does not exist (404).
pub fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(64).collect();
        ApiError::no_session(&shown)
    })
}

/// The `{id}` of a session route. Anything that is not a UUID, even a
/// segment that does not decode, is a session that does not exist (404).
#[derive(Debug, Clone, Copy)]
pub struct SessionPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(raw)) => session_id(&raw).map(SessionPath),
            Err(_) => Err(ApiError::NotFound(
                "session does not exist (the id is not a UUID)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn bearer_takes_the_token_after_the_scheme_in_any_case() {
        assert_eq!(bearer(&h("Bearer cbt_x")).unwrap(), "cbt_x");
        assert_eq!(bearer(&h("bearer  cbt_y ")).unwrap(), "cbt_y");
    }

    #[test]
    fn bearer_refuses_missing_other_schemes_empty_and_oversized() {
        assert!(matches!(
            bearer(&HeaderMap::new()),
            Err(ApiError::Unauthorized { presented: false })
        ));
        assert!(matches!(
            bearer(&h("Basic dXNlcjpwdw==")),
            Err(ApiError::Unauthorized { presented: false })
        ));
        assert!(matches!(
            bearer(&h("Bearer ")),
            Err(ApiError::Unauthorized { presented: true })
        ));
        assert!(matches!(
            bearer(&h(&format!("Bearer {}", "a".repeat(MAX_TOKEN)))),
            Err(ApiError::Unauthorized { presented: true })
        ));
    }

    #[test]
    fn a_path_that_is_not_a_uuid_is_a_missing_session() {
        let e = session_id("not-a-uuid").unwrap_err();
        assert_eq!(e.to_string(), "session not-a-uuid does not exist");
        assert!(session_id("6f1c1f7e-58a3-4a47-9f53-2b1b2e6f7a10").is_ok());
    }
}
