//! `GET /api/sessions/{id}/recording` (and HEAD): the call's WAV file,
//! streamed from disk by tower-http's [`ServeFile`]: `Last-Modified`,
//! conditional requests (`If-Modified-Since` gives 304,
//! `If-Unmodified-Since` 412) and single byte ranges (RFC 9110 section 14:
//! `bytes=a-b`, `bytes=a-`, `bytes=-n` give 206 with `Content-Range`).
//! An `ETag` and the entity-tag preconditions (`If-None-Match` gives 304,
//! `If-Match` 412, `If-Range` with a tag) are added here ([`etag`]):
//! `ServeFile` has none.
//!
//! Which `Range` header reaches [`ServeFile`] is decided here first
//! ([`decide`]), where tower-http's own answer is not RFC 9110's:
//!
//! | request | answer | RFC 9110 |
//! |---|---|---|
//! | a unit other than `bytes`, a malformed or invalid range (`bytes=5-2`) | the whole file, 200 | 14.2: MUST ignore an unknown unit; MAY ignore Range |
//! | several ranges | the whole file, 200 | 14.2: MAY ignore Range (no multipart responses here) |
//! | `If-Range` that is neither the file's strong entity tag nor its strong `Last-Modified` | the whole file, 200 | 13.1.5 |
//! | `bytes=-n` with `n` past the start of the file | the whole file as a 206 | 14.1.3: "the entire representation is used" |
//! | any range of an empty file, a first position at or past the end, `bytes=-0` | 416 with `Content-Range: bytes */len` | 14.1.1, 15.5.17 |
//!
//! The store lookups (the session must be visible to the caller, its
//! recording inside the recordings directory) come before any file is
//! opened; a missing file is 404, never 500.

use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use callbridge_crm_store::SessionId;
use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition, parse_range_header};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;
use tracing::warn;

mod etag;

use etag::{EntityTag, Precondition};

use super::auth::{Caller, SessionPath, visible_session};
use super::error::ApiError;
use super::state::Ctx;

/// Whether `file` lies inside `dir` (both resolved on disk).
async fn inside(file: &FsPath, dir: &FsPath) -> bool {
    match (
        tokio::fs::canonicalize(file).await,
        tokio::fs::canonicalize(dir).await,
    ) {
        (Ok(f), Ok(d)) => f.starts_with(d),
        _ => false,
    }
}

/// What to do with a request's `Range` header (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeDecision {
    /// Hand the request to [`ServeFile`] as it is (no Range, or one it
    /// answers right).
    Keep,
    /// Drop the Range header: the whole file, 200.
    Ignore,
    /// Replace the Range header with this one (a suffix longer than the
    /// file: all of it).
    Replace(&'static str),
    /// 416.
    Unsatisfiable,
}

/// Decides what to do with `headers`' Range for a file of `len` bytes
/// last modified at `modified` with entity tag `tag`, as of `now`.
fn decide(
    headers: &HeaderMap,
    len: u64,
    modified: Option<SystemTime>,
    tag: Option<&EntityTag>,
    now: SystemTime,
) -> RangeDecision {
    let Some(range) = headers.get(header::RANGE) else {
        return RangeDecision::Keep;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && !if_range_matches(if_range, modified, tag, now)
    {
        return RangeDecision::Ignore;
    }
    let Ok(ranges) = range.to_str().map(parse_range_header) else {
        return RangeDecision::Ignore;
    };
    let ranges = match ranges {
        Ok(r) => r,
        // A zero suffix is well formed and never satisfiable.
        Err(RangeUnsatisfiableError::ZeroSuffix) => return RangeDecision::Unsatisfiable,
        Err(_) => return RangeDecision::Ignore,
    };
    let [one] = ranges.ranges.as_slice() else {
        return RangeDecision::Ignore;
    };
    if let (StartPosition::Index(first), EndPosition::Index(last)) = (one.start, one.end)
        && last < first
    {
        // An invalid range-spec (section 14.1.1): the header is ignored.
        return RangeDecision::Ignore;
    }
    if len == 0 {
        return RangeDecision::Unsatisfiable;
    }
    if matches!(one.start, StartPosition::FromLast(n) if n > len) {
        return RangeDecision::Replace("bytes=0-");
    }
    match ranges.validate(len) {
        Ok(_) => RangeDecision::Keep,
        Err(_) => RangeDecision::Unsatisfiable,
    }
}

/// Whether an `If-Range` value names the file as it is: its entity tag
/// (strong comparison), or its `Last-Modified` date and that date a strong
/// validator (at least one second old, RFC 9110 section 8.8.2.2).
fn if_range_matches(
    value: &HeaderValue,
    modified: Option<SystemTime>,
    tag: Option<&EntityTag>,
    now: SystemTime,
) -> bool {
    if let Some(matches) = tag.and_then(|t| t.if_range(value)) {
        return matches;
    }
    let Some(modified) = modified else {
        return false;
    };
    let strong = now
        .duration_since(modified)
        .is_ok_and(|age| age >= Duration::from_secs(1));
    strong
        && value
            .to_str()
            .is_ok_and(|v| v.trim() == httpdate::fmt_http_date(modified))
}

/// The recording file of session `id` and its metadata, if `caller` may
/// see the session and the file is a file inside the recordings directory
/// (404 otherwise; the console's waveform reads the same file).
///
/// Several agents (docs/SCALING.md) share one recordings directory (NFS
/// or the like), each writing `<session id>.wav` into it: the path the
/// store holds is where the recording agent wrote it, and where another
/// node mounts the share may differ. So when that path is not a file
/// here, the file of the same name in this agent's recordings directory
/// is served.
pub async fn locate(
    ctx: &Ctx,
    caller: Caller,
    id: SessionId,
) -> Result<(PathBuf, std::fs::Metadata), ApiError> {
    let session = ctx
        .pool
        .run(move |s| visible_session(s, &caller, id))
        .await?;
    let no_recording = || ApiError::NotFound(format!("session {id} has no recording"));
    let stored: PathBuf = session.recording_path.ok_or_else(no_recording)?;
    let shared = match (&ctx.state.recordings_dir, stored.file_name()) {
        (Some(dir), Some(name)) if dir.join(name) != stored => Some(dir.join(name)),
        _ => None,
    };
    let mut why = None;
    for path in std::iter::once(stored).chain(shared) {
        if let Some(dir) = &ctx.state.recordings_dir
            && !inside(&path, dir).await
        {
            why.get_or_insert("recording path missing or outside the recordings directory");
            continue;
        }
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => return Ok((path, m)),
            Ok(_) => why = Some("recording path is not a file"),
            Err(_) => why = Some("recording cannot be opened"),
        }
    }
    warn!(session = %id, why = why.unwrap_or("no path"), "recording not served");
    Err(no_recording())
}

/// `GET /api/sessions/{id}/recording` (and HEAD).
#[utoipa::path(get, path = "/api/sessions/{id}/recording", tag = "sessions",
    description = "The call's recording (WAV); `Range: bytes=` and `If-None-Match`/`If-Match` are honoured; HEAD answers the headers.",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The whole recording", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "audio/wav", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such session or no recording", body = callbridge_api::ErrorBody),
        (status = 412, description = "If-Match does not name the recording", body = callbridge_api::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = callbridge_api::ErrorBody)))]
pub async fn get(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    SessionPath(id): SessionPath,
    mut req: Request,
) -> Result<Response, ApiError> {
    let (path, meta) = locate(&ctx, caller, id).await?;
    let len = meta.len();
    let (modified, now) = (meta.modified().ok(), SystemTime::now());
    let tag = EntityTag::of_file(len, modified, now);
    let etag = tag.as_ref().and_then(EntityTag::header_value);
    match etag::evaluate(req.headers_mut(), tag.as_ref()) {
        Precondition::Proceed => {}
        Precondition::Failed => {
            return Err(ApiError::PreconditionFailed(
                "If-Match does not name the recording as it is".into(),
            ));
        }
        Precondition::NotModified => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            if let Some(v) = etag {
                res.headers_mut().insert(header::ETAG, v);
            }
            return Ok(res);
        }
    }
    match decide(req.headers(), len, modified, tag.as_ref(), now) {
        RangeDecision::Keep => {}
        RangeDecision::Ignore => {
            req.headers_mut().remove(header::RANGE);
        }
        RangeDecision::Replace(v) => {
            req.headers_mut()
                .insert(header::RANGE, HeaderValue::from_static(v));
        }
        RangeDecision::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len }),
    }
    let res = match ServeFile::new(&path).oneshot(req).await {
        Ok(res) => res,
        Err(e) => {
            warn!(session = %id, error = %e, "recording cannot be read");
            return Err(ApiError::internal(e));
        }
    };
    match res.status() {
        StatusCode::NOT_FOUND => {
            return Err(ApiError::NotFound(format!("session {id} has no recording")));
        }
        StatusCode::RANGE_NOT_SATISFIABLE => return Err(ApiError::RangeNotSatisfiable { len }),
        _ => {}
    }
    let mut res = res.map(Body::new);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    if let Some(v) = etag {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.wav\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use RangeDecision::{Ignore, Keep, Replace, Unsatisfiable};

    fn with(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        h
    }

    fn d(range: &str, len: u64) -> RangeDecision {
        decide(&with(range), len, None, None, SystemTime::now())
    }

    #[test]
    fn single_byte_ranges_from_rfc_9110_go_to_serve_file() {
        for r in [
            "bytes=0-499",
            "bytes=500-999",
            "bytes=-500",
            "bytes=9500-",
            "bytes=0-0",
            "bytes=-1",
            // An end past the file is clamped (by the parser).
            "bytes=9000-20000",
        ] {
            assert_eq!(d(r, 10_000), Keep, "{r}");
        }
        assert_eq!(
            decide(&HeaderMap::new(), 10, None, None, SystemTime::now()),
            Keep
        );
    }

    #[test]
    fn a_suffix_longer_than_the_file_is_all_of_it() {
        assert_eq!(d("bytes=-100", 10), Replace("bytes=0-"));
        assert_eq!(d("bytes=-10", 10), Keep);
    }

    #[test]
    fn starts_at_or_past_the_end_empty_files_and_zero_suffixes_are_unsatisfiable() {
        assert_eq!(d("bytes=10-", 10), Unsatisfiable);
        assert_eq!(d("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(d("bytes=-0", 10), Unsatisfiable);
        assert_eq!(d("bytes=0-", 0), Unsatisfiable);
        assert_eq!(d("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn malformed_multiple_and_foreign_units_are_ignored() {
        for r in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes 0-1",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=0-99999999999999999999999",
        ] {
            assert_eq!(d(r, 10), Ignore, "{r}");
        }
    }

    #[test]
    fn if_range_keeps_the_range_only_for_the_files_strong_validators() {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(modified);
        let mut h = with("bytes=0-1");
        h.insert(header::IF_RANGE, HeaderValue::from_str(&date).unwrap());
        let later = modified + Duration::from_secs(60);
        let tag = EntityTag::of_file(10, Some(modified), later);
        let tag = tag.as_ref();
        assert_eq!(decide(&h, 10, Some(modified), tag, later), Keep);
        assert_eq!(
            decide(&h, 10, Some(modified), None, modified),
            Ignore,
            "a date within its own second is weak"
        );
        assert_eq!(decide(&h, 10, None, None, later), Ignore);
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"x\""));
        assert_eq!(
            decide(&h, 10, Some(modified), tag, later),
            Ignore,
            "another entity tag"
        );
        h.insert(header::IF_RANGE, tag.unwrap().header_value().unwrap());
        assert_eq!(
            decide(&h, 10, Some(modified), tag, later),
            Keep,
            "the file's own entity tag"
        );
    }

    /// The seeds of the retired `http_range` fuzz target (file length,
    /// header), answered as the hand-written parser answered them.
    #[test]
    fn the_old_fuzz_seeds_are_decided_as_before() {
        assert_eq!(d("bytes=0-499", 10_000), Keep);
        assert_eq!(d("bytes=0-1,5-6", 10), Ignore);
        assert_eq!(d("bytes=-500", 10_000), Keep);
        assert_eq!(d("bytes=10-", 10), Unsatisfiable);
    }

    proptest! {
        #[test]
        fn any_header_text_is_decided_without_panicking(s in "[ -~]{0,40}", len in 0u64..1000) {
            if let Ok(v) = HeaderValue::from_str(&s) {
                let mut h = HeaderMap::new();
                h.insert(header::RANGE, v);
                let _ = decide(&h, len, None, None, SystemTime::now());
            }
        }
    }
}
