//! `GET /api/sessions/{id}/recording`: the call's WAV file, streamed from
//! disk, with single byte ranges (RFC 9110 section 14: `Range: bytes=a-b`,
//! `bytes=a-`, `bytes=-n` give 206 with `Content-Range`; a range that
//! starts past the end gives 416 with `Content-Range: bytes */len`).
//! Multiple ranges, other units, malformed values and any request with
//! `If-Range` (we keep no validators) are answered with the whole file
//! (200), which section 14.2 allows. The range decision is the pure
//! [`resolve`]; the handler only does I/O.

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

/// What to send for a `Range` header over a file of some length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416.
    Unsatisfiable,
}

/// Decides how to answer `range` (the `Range` header's value, if any) for
/// a file of `len` bytes.
pub fn resolve(range: Option<&str>, len: u64) -> RangeAnswer {
    let Some(range) = range else {
        return RangeAnswer::Full;
    };
    let Some((unit, set)) = range.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => {
            if !digits(last) {
                return RangeAnswer::Full;
            }
            let n = last.parse::<u64>().unwrap_or(u64::MAX);
            if n == 0 || len == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial {
                start: len - n.min(len),
                end: len - 1,
            }
        }
        // bytes=a- or bytes=a-b.
        (false, open) => {
            if !digits(first) || !(open || digits(last)) {
                return RangeAnswer::Full;
            }
            // A first position too large for u64 is past any end.
            let Ok(start) = first.parse::<u64>() else {
                return RangeAnswer::Unsatisfiable;
            };
            let end = if open {
                u64::MAX
            } else {
                last.parse::<u64>().unwrap_or(u64::MAX)
            };
            if end < start {
                // Invalid range-spec: ignore the header.
                return RangeAnswer::Full;
            }
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial {
                start,
                end: end.min(len - 1),
            }
        }
        (true, true) => RangeAnswer::Full,
    }
}

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
    if let Some(dir) = &ctx.state.recordings_dir {
        if !inside(&path, dir).await {
            warn!(session = %id, "recording path missing or outside the recordings directory");
            return Err(no_recording());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use RangeAnswer::{Full, Partial, Unsatisfiable};

    #[test]
    fn ranges_from_rfc_9110_examples() {
        let len = 10_000;
        assert_eq!(
            resolve(Some("bytes=0-499"), len),
            Partial { start: 0, end: 499 }
        );
        assert_eq!(
            resolve(Some("bytes=500-999"), len),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            resolve(Some("bytes=-500"), len),
            Partial {
                start: 9500,
                end: 9999
            }
        );
        assert_eq!(
            resolve(Some("bytes=9500-"), len),
            Partial {
                start: 9500,
                end: 9999
            }
        );
        assert_eq!(
            resolve(Some("bytes=0-0"), len),
            Partial { start: 0, end: 0 }
        );
        assert_eq!(
            resolve(Some("bytes=-1"), len),
            Partial {
                start: 9999,
                end: 9999
            }
        );
    }

    #[test]
    fn ends_past_the_file_are_clamped_and_suffixes_longer_than_it_give_all() {
        assert_eq!(
            resolve(Some("bytes=5-100"), 10),
            Partial { start: 5, end: 9 }
        );
        assert_eq!(
            resolve(Some("bytes=-100"), 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            resolve(Some("bytes=0-99999999999999999999999"), 10),
            Partial { start: 0, end: 9 }
        );
    }

    #[test]
    fn starts_at_or_past_the_end_and_empty_suffixes_are_unsatisfiable() {
        assert_eq!(resolve(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(
            resolve(Some("bytes=99999999999999999999999-"), 10),
            Unsatisfiable
        );
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
        ] {
            assert_eq!(resolve(Some(r), 10), Full, "{r}");
        }
        assert_eq!(resolve(None, 10), Full);
        assert_eq!(
            resolve(Some(" Bytes = 1 - 2 "), 10),
            Partial { start: 1, end: 2 }
        );
    }

    proptest! {
        #[test]
        fn a_partial_answer_always_lies_inside_the_file(
            len in 0u64..100_000,
            a in proptest::option::of(0u64..200_000),
            b in proptest::option::of(0u64..200_000),
        ) {
            let spec = format!(
                "bytes={}-{}",
                a.map(|v| v.to_string()).unwrap_or_default(),
                b.map(|v| v.to_string()).unwrap_or_default()
            );
            if let Partial { start, end } = resolve(Some(&spec), len) {
                prop_assert!(start <= end);
                prop_assert!(end < len);
            }
        }

        #[test]
        fn any_header_text_is_answered_without_panicking(s in ".{0,40}", len in 0u64..1000) {
            let _ = resolve(Some(&s), len);
        }
    }
}
