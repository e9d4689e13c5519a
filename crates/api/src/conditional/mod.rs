//! Conditional and range requests for a file the agent serves (the call
//! recording, `GET /api/sessions/{id}/recording`): which `Range` header
//! reaches tower-http's `ServeFile` ([`decide`]), and the entity tag and
//! entity-tag preconditions it lacks ([`EntityTag`], [`evaluate`]).
//!
//! The header values are untrusted input: every function here takes any
//! bytes a client sends and answers without panicking (property tests
//! below; the `http_range` fuzz target in `fuzz/`). The byte ranges
//! themselves are parsed by the `http-range-header` crate (tower-http's
//! own parser); what is decided here is where `ServeFile`'s answer is not
//! RFC 9110's:
//!
//! | request | answer | RFC 9110 |
//! |---|---|---|
//! | a unit other than `bytes`, a malformed or invalid range (`bytes=5-2`) | the whole file, 200 | 14.2: MUST ignore an unknown unit; MAY ignore Range |
//! | several ranges | the whole file, 200 | 14.2: MAY ignore Range (no multipart responses here) |
//! | `If-Range` that is neither the file's strong entity tag nor its strong `Last-Modified` | the whole file, 200 | 13.1.5 |
//! | `bytes=-n` with `n` past the start of the file | the whole file as a 206 | 14.1.3: "the entire representation is used" |
//! | any range of an empty file, a first position at or past the end, `bytes=-0` | 416 with `Content-Range: bytes */len` | 14.1.1, 15.5.17 |

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};
use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition, parse_range_header};

mod etag;

pub use etag::{EntityTag, Precondition, evaluate};

/// What to do with a request's `Range` header (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// Hand the request to `ServeFile` as it is (no Range, or one it
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
///
/// ```
/// use std::time::SystemTime;
/// use callbridge_api::conditional::{RangeDecision, decide};
/// use http::{HeaderMap, HeaderValue, header};
///
/// let range = |v: &'static str| {
///     let mut h = HeaderMap::new();
///     h.insert(header::RANGE, HeaderValue::from_static(v));
///     decide(&h, 1000, None, None, SystemTime::now())
/// };
/// assert_eq!(range("bytes=0-499"), RangeDecision::Keep);
/// assert_eq!(range("bytes=0-1,5-6"), RangeDecision::Ignore);
/// assert_eq!(range("bytes=-5000"), RangeDecision::Replace("bytes=0-"));
/// assert_eq!(range("bytes=1000-"), RangeDecision::Unsatisfiable);
/// ```
#[must_use]
pub fn decide(
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
