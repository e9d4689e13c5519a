//! Sign-in, sign-out and the gate in front of every other console page.
//!
//! Signing in exchanges an API token (checked by the API's own
//! [`authenticate`]) for a random cookie naming a row of the server-side
//! [`Table`]. The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, has a
//! `Max-Age` of the absolute session lifetime, and is `Secure` when the
//! request came over TLS (a reverse proxy's `X-Forwarded-Proto: https`;
//! the agent itself speaks plain HTTP on the admin listener).
//!
//! [`require_session`] runs before every signed-in route: no cookie, an
//! unknown or expired one, or a token the store no longer accepts answer a
//! redirect to the sign-in page (and clear the cookie). On a POST it then
//! checks the session's CSRF token, from the form's `csrf` field or an
//! `X-CSRF-Token` header (403 page otherwise), and a foreign `Origin`
//! (403). It puts the same [`Caller`] the API's bearer auth would into the
//! request, so every handler applies the API's role and visibility rules.

use std::time::Instant;

use askama::Template;
use axum::body::{Body, to_bytes};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::super::auth::{Caller, authenticate};
use super::super::error::{ApiError, MAX_BODY};
use super::super::state::Ctx;
use super::page::{PageError, render};
use super::table::{ABSOLUTE, Signed};

/// The cookie's name.
pub const COOKIE: &str = "cb_console";

/// The request header a script may send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The cookie value `COOKIE` of a request, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether the request reached us over TLS (through a proxy).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for session `id` (`None`: clears the cookie).
pub fn set_cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let (value, age) = match id {
        Some(id) => (id, ABSOLUTE.as_secs()),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("cb_console=; Max-Age=0"))
}

/// The sign-in page, with its cookie cleared.
fn to_sign_in(headers: &HeaderMap) -> Response {
    let mut res = Redirect::to("/sign-in").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(None, over_tls(headers)));
    res
}

/// Whether an `Origin` header, when present, names this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| o.split_once("://"));
    matches!((origin, host), (Some((_, o)), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The value of field `name` in a form body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn forbidden(why: &str) -> Response {
    PageError::from(ApiError::Forbidden(why.into())).into_response()
}

/// Middleware: signed-in pages only (see the module doc).
pub async fn require_session(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let Some(id) = cookie(headers) else {
        return to_sign_in(headers);
    };
    let Some(entry) = ctx.state.console.touch(&id, Instant::now()) else {
        return to_sign_in(headers);
    };
    let caller = match authenticate(&ctx, entry.token.clone()).await {
        Ok(c) => c,
        Err(ApiError::Unauthorized { .. }) => {
            ctx.state.console.remove(&id);
            return to_sign_in(req.headers());
        }
        Err(e) => return PageError::from(e).into_response(),
    };
    let mut req = if req.method() == Method::POST {
        if !same_origin(req.headers()) {
            return forbidden("this form was sent from another site");
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
            return PageError::from(ApiError::TooLarge(MAX_BODY)).into_response();
        };
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| form_field(&bytes, "csrf"))
            .unwrap_or_default();
        if !entry.csrf_matches(&presented) {
            return forbidden(
                "the form has expired or was not sent from this console; reload the page and try again",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(Signed {
        csrf: entry.csrf,
        id,
    });
    next.run(req).await
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Option<super::page::Chrome>,
    error: Option<&'static str>,
}

/// `?expired=1` and such on the sign-in page.
#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

/// `GET /sign-in`.
pub async fn sign_in_page(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    q: Query<SignInQuery>,
) -> Response {
    if cookie(&headers).is_some_and(|id| ctx.state.console.touch(&id, Instant::now()).is_some()) {
        return Redirect::to("/calls").into_response();
    }
    let error = q.signed_out.as_ref().map(|_| "You are signed out.");
    render(
        StatusCode::OK,
        &SignInPage {
            chrome: None,
            error,
        },
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
}

/// `POST /sign-in`: a valid API token starts a session (303 to the call
/// list); anything else shows the form again (401).
pub async fn sign_in(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden("this form was sent from another site");
    }
    let token = form
        .map(|Form(f)| f.token.trim().to_owned())
        .unwrap_or_default();
    let again = |error| {
        render(
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                chrome: None,
                error: Some(error),
            },
        )
    };
    if token.is_empty() || token.len() > 256 {
        return again("Enter an API token.");
    }
    match authenticate(&ctx, token.clone()).await {
        Ok(Caller(user)) => {
            let id = ctx.state.console.insert(token, Instant::now());
            tracing::info!(user = user.id.0, "console sign-in");
            let mut res = Redirect::to("/calls").into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(Some(&id), over_tls(&headers)),
            );
            res
        }
        Err(ApiError::Unauthorized { .. }) => {
            again("That token is not valid (unknown, expired or revoked).")
        }
        Err(e) => PageError::from(e).into_response(),
    }
}

/// `POST /sign-out` (behind the gate, so CSRF-checked): ends the session.
pub async fn sign_out(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    ctx.state.console.remove(&signed.id);
    let mut res = Redirect::to("/sign-in?signed_out=1").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(None, over_tls(&headers)));
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn h(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let m = h(&[(header::COOKIE, "a=1; cb_console=abc ; b=2")]);
        assert_eq!(cookie(&m).as_deref(), Some("abc"));
        assert_eq!(cookie(&h(&[(header::COOKIE, "cb_consolex=1")])), None);
        assert_eq!(cookie(&h(&[(header::COOKIE, "cb_console=")])), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_over_tls() {
        let c = set_cookie(Some("abc"), false);
        let c = c.to_str().unwrap();
        assert!(
            c.starts_with("cb_console=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age="),
            "{c}"
        );
        assert!(!c.contains("Secure"));
        assert!(
            set_cookie(Some("abc"), true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(
            set_cookie(None, false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        assert!(over_tls(&h(&[(
            HeaderName::from_static("x-forwarded-proto"),
            "https"
        )])));
        assert!(!over_tls(&HeaderMap::new()));
    }

    use axum::http::HeaderName;

    #[test]
    fn a_foreign_origin_is_refused() {
        assert!(same_origin(&h(&[(header::HOST, "127.0.0.1:8080")])));
        assert!(same_origin(&h(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&h(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "https://evil.example")
        ])));
        assert!(!same_origin(&h(&[(
            header::ORIGIN,
            "http://127.0.0.1:8080"
        )])));
    }
}
