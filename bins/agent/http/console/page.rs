//! What every console page shares: the frame around it ([`Chrome`]: who
//! is signed in, the CSRF token of the forms), rendering a template into a
//! response with the page headers, and the HTML error pages
//! ([`PageError`]) that stand in for the API's JSON errors.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbridge_crm_store::Role;
use callbridge_crm_store::jiff::{Timestamp, tz::TimeZone};

use super::super::auth::Caller;
use super::super::error::ApiError;
use super::table::Signed;

/// The frame of a signed-in page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The user's name.
    pub user: String,
    /// `admin`, `agent-operator` or `viewer`.
    pub role: &'static str,
    /// Whether the user may place and hang up calls and change campaigns.
    pub operator: bool,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// Which navigation entry is current.
    pub section: &'static str,
}

impl Chrome {
    /// The frame for `caller` in section `section`.
    pub fn new(caller: &Caller, signed: &Signed, section: &'static str) -> Chrome {
        Chrome {
            user: caller.0.name.as_str().to_owned(),
            role: caller.0.role.as_str(),
            operator: matches!(caller.0.role, Role::Admin | Role::AgentOperator),
            csrf: signed.csrf.clone(),
            section,
        }
    }
}

/// Renders `t` as a `status` page: HTML, never cached (the pages show
/// call data).
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = (status, html).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => ApiError::internal(format!("console template: {e}")).into_response(),
    }
}

/// A 200 page.
pub fn ok(t: &impl Template) -> Response {
    render(StatusCode::OK, t)
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Option<Chrome>,
    title: &'a str,
    message: String,
}

/// An error shown as a page: the API error's status and message (a 500's
/// cause is logged, never shown).
#[derive(Debug)]
pub struct PageError {
    /// The error.
    pub error: ApiError,
    /// The frame, when the user is signed in.
    pub chrome: Option<Chrome>,
}

impl PageError {
    /// `error` inside `chrome`'s frame.
    pub fn new(error: ApiError, chrome: &Chrome) -> PageError {
        PageError {
            error,
            chrome: Some(chrome.clone()),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError {
            error,
            chrome: None,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::BAD_REQUEST => "Cannot do that",
            StatusCode::SERVICE_UNAVAILABLE => "Busy",
            _ => "Something went wrong",
        };
        render(
            status,
            &ErrorPage {
                chrome: self.chrome,
                title,
                message: self.error.to_string(),
            },
        )
    }
}

/// A time for people: UTC, to the second.
pub fn when(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A duration in milliseconds as `m:ss` (or `h:mm:ss`).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_as_minutes_and_seconds() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(61_999), "1:01");
        assert_eq!(clock(3_600_000 + 62_000), "1:01:02");
    }
}
