//! The console: the CRM in the browser, served by the agent at `/` on the
//! admin listener.
//!
//! **Stack, and why.** Pages are rendered on the server with askama
//! templates (`templates/`, compiled into the binary and checked when it
//! is built: a misspelt field is a compile error, and every value is HTML
//! escaped unless a template says otherwise). The browser side is one
//! small hand-written script (`assets/console.js`: seeking the player from
//! the transcript, the live transcript over Server-Sent Events, reading a
//! chosen CSV file into the import form) and one stylesheet. Every page
//! works without the script except the live updates. No framework, no
//! htmx: the few dynamic parts are ~100 lines a Rust developer can read,
//! there is no Node toolchain to keep, nothing from a CDN, and both assets
//! are embedded with `include_str!`.
//!
//! **Same data as the API.** Sign-in exchanges an API token for a cookie
//! session ([`gate`]); every page then runs as the same [`Caller`] the
//! bearer auth would make, through the API's own store queries and checks
//! (`sessions::list_visible`, `auth::visible_record`,
//! `Caller::require_operator`, `recording::get`): a user sees exactly what
//! the API would show them.
//!
//! **Headers.** Every console answer gets a Content-Security-Policy
//! without inline script or style (`default-src 'none'`, scripts, styles,
//! images, media and event streams from this origin only, no framing,
//! forms to this origin), `X-Frame-Options: DENY`, `nosniff` and
//! `Referrer-Policy: same-origin`; pages with data are `no-store`.
//!
//! | route | who | module |
//! |---|---|---|
//! | `GET /`, `GET /sign-in`, `POST /sign-in`, `POST /sign-out` | anyone / signed in | [`gate`] |
//! | `GET /calls`, `GET /calls/{id}` (+ `/recording`, `/waveform.svg`) | any role | [`calls`], [`detail`] |
//! | `GET /live`, `GET /calls/{id}/events` (SSE), `POST /calls/{id}/hangup`, `GET /health` | any role; hang-up operators and admins | [`live`] |
//! | `GET /campaigns`, `GET /campaigns/{id}`, `POST /campaigns/{id}/...`, `GET/POST /dnc` | owners and admins; changes operators and admins | [`campaigns`] |

mod calls;
mod campaigns;
mod detail;
pub mod gate;
mod live;
mod page;
pub mod table;
mod waveform;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::state::Ctx;

/// The stylesheet.
const CSS: &str = include_str!("assets/console.css");
/// The script (an ES module).
const JS: &str = include_str!("assets/console.js");

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Whether `path` is a console form target (their bodies may be larger
/// than other routes'; see `limits::body_limit`).
pub fn is_form(path: &str) -> bool {
    path == "/sign-in"
        || path == "/sign-out"
        || path.starts_with("/calls/")
        || path.starts_with("/campaigns/")
        || path.starts_with("/dnc")
}

/// The console's routes (signed-in ones behind [`gate::require_session`]).
pub fn routes(ctx: &Ctx) -> Router<Ctx> {
    let signed = Router::new()
        .route("/sign-out", post(gate::sign_out))
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(detail::page))
        .route("/calls/{id}/recording", get(super::recording::get))
        .route("/calls/{id}/waveform.svg", get(detail::waveform))
        .route("/calls/{id}/events", get(live::events))
        .route("/calls/{id}/hangup", post(live::hangup))
        .route("/live", get(live::page))
        .route("/health", get(live::health))
        .route("/campaigns", get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::page))
        .route("/campaigns/{id}/import", post(campaigns::import))
        .route("/campaigns/{id}/status", post(campaigns::set_status))
        .route("/dnc", get(campaigns::dnc).post(campaigns::dnc_change))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            gate::require_session,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/calls") }))
        .route("/sign-in", get(gate::sign_in_page).post(gate::sign_in))
        .route(
            "/assets/console.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .merge(signed)
        .layer(axum::middleware::map_response(headers))
}

/// An embedded asset (cached for an hour; no data in it).
fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    res
}

/// The security headers of every console answer (see the module doc).
async fn headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
