//! `GET /api/sessions/{id}/recording` (and HEAD): the call's WAV file,
//! streamed from disk by tower-http's [`ServeFile`]: `Last-Modified`,
//! conditional requests (`If-Modified-Since` gives 304,
//! `If-Unmodified-Since` 412) and single byte ranges (RFC 9110 section 14:
//! `bytes=a-b`, `bytes=a-`, `bytes=-n` give 206 with `Content-Range`).
//! An `ETag` and the entity-tag preconditions (`If-None-Match` gives 304,
//! `If-Match` 412, `If-Range` with a tag) are added here ([`EntityTag`],
//! [`evaluate`]): `ServeFile` has none.
//!
//! Which `Range` header reaches [`ServeFile`] is decided first, where
//! tower-http's own answer is not RFC 9110's ([`decide`], in
//! `callbridge_api::conditional`, with the table of those cases and the
//! `http_range` fuzz target).
//!
//! The store lookups (the session must be visible to the caller, its
//! recording inside the recordings directory) come before any file is
//! opened; a missing file is 404, never 500.

use std::path::{Path as FsPath, PathBuf};
use std::time::SystemTime;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use callbridge_crm_store::SessionId;
use tower::ServiceExt as _;
use tower_http::services::ServeFile;
use tracing::warn;

use callbridge_api::conditional::{EntityTag, Precondition, RangeDecision, decide, evaluate};

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
    match evaluate(req.headers_mut(), tag.as_ref()) {
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
