//! `GET /api/sessions/{id}/recording`: the call's WAV file, streamed from
//! disk, with single byte ranges (RFC 9110 section 14: `Range: bytes=a-b`,
//! `bytes=a-`, `bytes=-n` give 206 with `Content-Range`; a range that
//! starts past the end gives 416 with `Content-Range: bytes */len`).
//! Multiple ranges, other units, malformed values and any request with
//! `If-Range` (we keep no validators) are answered with the whole file
//! (200), which section 14.2 allows. The range decision is the pure
//! `range::resolve`; the handler only does I/O.

use std::io::SeekFrom;
use std::path::{Path as FsPath, PathBuf};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use tracing::warn;

use super::Ctx;
use super::auth::{Caller, SessionPath, visible_session};
use super::error::ApiError;
use super::range::{RangeAnswer, resolve};

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

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `GET /api/sessions/{id}/recording` (and HEAD).
pub async fn get(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    SessionPath(id): SessionPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = ctx
        .pool
        .run(move |s| visible_session(s, &caller, id))
        .await?;
    let no_recording = || ApiError::NotFound(format!("session {id} has no recording"));
    let path: PathBuf = session.recording_path.ok_or_else(no_recording)?;
    if let Some(dir) = &ctx.state.recordings_dir
        && !inside(&path, dir).await
    {
        warn!(session = %id, "recording path missing or outside the recordings directory");
        return Err(no_recording());
    }
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            warn!(session = %id, error = %e, "recording cannot be opened");
            return Err(no_recording());
        }
    };
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let range = if headers.contains_key(header::IF_RANGE) {
        None
    } else {
        header_str(&headers, header::RANGE)
    };
    let (status, start, count) = match resolve(range, len) {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len }),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let body = Body::from_stream(ReaderStream::new(file.take(count)));
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.wav\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {}-{}/{len}", start, start + count - 1);
        if let Ok(v) = HeaderValue::from_str(&cr) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(res)
}
