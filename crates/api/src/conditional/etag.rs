//! The recording's entity tag and the entity-tag preconditions (RFC 9110
//! sections 8.8.3 and 13.1.1–13.1.2, evaluated in the order of section
//! 13.2.2). tower-http's `ServeFile` sends `Last-Modified` and answers the
//! date preconditions, but sends no `ETag`; the agent adds one, and
//! decides `If-Match` and `If-None-Match` with [`evaluate`] before the
//! request reaches it.
//!
//! The tag is the file's length and modification time in nanoseconds,
//! `"<len hex>-<mtime ns hex>"`: a recording that is rewritten changes
//! one of them. It is strong once the file is a second old and weak
//! (`W/"..."`) before, because file times advance in kernel ticks, not
//! nanoseconds, and a recording still being written may change twice
//! within one tick.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};

/// An entity tag: its opaque value (with the quotes) and whether it is weak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    /// The quoted value, `"..."`.
    opaque: String,
    weak: bool,
}

impl EntityTag {
    /// The tag of a file of `len` bytes last modified at `modified`, as of
    /// `now`; `None` without a usable modification time.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use callbridge_api::conditional::EntityTag;
    ///
    /// let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    /// let old = EntityTag::of_file(16, Some(modified), modified + Duration::from_secs(2));
    /// assert_eq!(old.unwrap().header_value().unwrap(), "\"10-3b9aca00\"");
    /// // Within its own second the tag is weak.
    /// let young = EntityTag::of_file(16, Some(modified), modified).unwrap();
    /// assert_eq!(young.header_value().unwrap(), "W/\"10-3b9aca00\"");
    /// ```
    pub fn of_file(len: u64, modified: Option<SystemTime>, now: SystemTime) -> Option<Self> {
        let modified = modified?;
        let ns = modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        let weak = !now
            .duration_since(modified)
            .is_ok_and(|age| age >= Duration::from_secs(1));
        Some(EntityTag {
            opaque: format!("\"{len:x}-{ns:x}\""),
            weak,
        })
    }

    /// The `ETag` header value (`None` only if the value is not a valid
    /// header value, which a tag made by [`of_file`](Self::of_file) always is).
    pub fn header_value(&self) -> Option<HeaderValue> {
        let v = if self.weak {
            format!("W/{}", self.opaque)
        } else {
            self.opaque.clone()
        };
        HeaderValue::from_str(&v).ok()
    }

    /// Strong comparison (section 8.8.3.2): both strong, same value.
    fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: same value.
    fn weak_eq(&self, other: &EntityTag) -> bool {
        self.opaque == other.opaque
    }

    /// Whether an `If-Range` value that is an entity tag names this one
    /// (strong comparison; `None` when the value is not an entity tag but
    /// a date).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use callbridge_api::conditional::EntityTag;
    /// use http::HeaderValue;
    ///
    /// let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    /// let tag = EntityTag::of_file(16, Some(modified), modified + Duration::from_secs(2)).unwrap();
    /// assert_eq!(tag.if_range(&tag.header_value().unwrap()), Some(true));
    /// assert_eq!(tag.if_range(&HeaderValue::from_static("\"other\"")), Some(false));
    /// assert_eq!(tag.if_range(&HeaderValue::from_static("Thu, 01 Jan 1970 00:00:01 GMT")), None);
    /// ```
    pub fn if_range(&self, value: &HeaderValue) -> Option<bool> {
        let v = value.to_str().ok()?.trim();
        if !(v.starts_with('"') || v.starts_with("W/")) {
            return None;
        }
        Some(match parse_list(v) {
            Some(List::Tags(tags)) => matches!(tags.as_slice(), [t] if t.strong_eq(self)),
            _ => false,
        })
    }
}

/// An `If-Match` / `If-None-Match` field value.
#[derive(Debug, PartialEq, Eq)]
enum List {
    /// `*`.
    Any,
    /// One or more entity tags.
    Tags(Vec<EntityTag>),
}

/// Parses `#entity-tag` or `*`; `None` when malformed (the precondition is
/// then not met for `If-Match` and ignored for `If-None-Match`).
fn parse_list(v: &str) -> Option<List> {
    let v = v.trim();
    if v == "*" {
        return Some(List::Any);
    }
    let mut tags = Vec::new();
    let mut rest = v;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let body = r.strip_prefix('"')?;
        let end = body.find('"')?;
        let value = &body[..end];
        // etagc: %x21 / %x23-7E / obs-text (no DQUOTE, no controls).
        if value.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return None;
        }
        tags.push(EntityTag {
            opaque: format!("\"{value}\""),
            weak,
        });
        rest = &body[end + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return None;
        }
    }
    (!tags.is_empty()).then_some(List::Tags(tags))
}

/// What the entity-tag preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on to the date preconditions and the Range.
    Proceed,
    /// 304 (a GET or HEAD whose `If-None-Match` matched).
    NotModified,
    /// 412 (`If-Match` did not match).
    Failed,
}

/// Evaluates `If-Match` and `If-None-Match` against the file's `tag`
/// (section 13.2.2, steps 1 and 3), removing from `headers` the date
/// preconditions they override (`If-Unmodified-Since` when `If-Match` is
/// present, `If-Modified-Since` when `If-None-Match` is).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use callbridge_api::conditional::{EntityTag, Precondition, evaluate};
/// use http::{HeaderMap, HeaderValue, header};
///
/// let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
/// let tag = EntityTag::of_file(16, Some(modified), modified + Duration::from_secs(2)).unwrap();
/// let mut h = HeaderMap::new();
/// h.insert(header::IF_NONE_MATCH, tag.header_value().unwrap());
/// assert_eq!(evaluate(&mut h, Some(&tag)), Precondition::NotModified);
/// h.clear();
/// h.insert(header::IF_MATCH, HeaderValue::from_static("\"stale\""));
/// assert_eq!(evaluate(&mut h, Some(&tag)), Precondition::Failed);
/// ```
pub fn evaluate(headers: &mut HeaderMap, tag: Option<&EntityTag>) -> Precondition {
    if let Some(v) = headers.get(header::IF_MATCH) {
        let met = match v.to_str().ok().and_then(parse_list) {
            Some(List::Any) => true,
            Some(List::Tags(tags)) => tag.is_some_and(|t| tags.iter().any(|x| x.strong_eq(t))),
            None => false,
        };
        if !met {
            return Precondition::Failed;
        }
        headers.remove(header::IF_UNMODIFIED_SINCE);
    }
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        let matched = match v.to_str().ok().and_then(parse_list) {
            Some(List::Any) => true,
            Some(List::Tags(tags)) => tag.is_some_and(|t| tags.iter().any(|x| x.weak_eq(t))),
            None => false,
        };
        if matched {
            return Precondition::NotModified;
        }
        headers.remove(header::IF_MODIFIED_SINCE);
    }
    Precondition::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000;

    fn file_tag(age_s: u64) -> EntityTag {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
        EntityTag::of_file(100, Some(modified), modified + Duration::from_secs(age_s)).unwrap()
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn tag_text(t: &EntityTag) -> String {
        t.header_value().unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn the_tag_is_length_and_mtime_and_strong_after_a_second() {
        let strong = file_tag(5);
        assert_eq!(
            tag_text(&strong),
            format!("\"64-{:x}\"", u128::from(T0) * 1_000_000_000)
        );
        assert_eq!(tag_text(&file_tag(0)), format!("W/{}", tag_text(&strong)));
        assert!(EntityTag::of_file(1, None, SystemTime::now()).is_none());
    }

    #[test]
    fn if_none_match_gives_304_by_weak_comparison_and_overrides_if_modified_since() {
        let t = file_tag(5);
        let text = tag_text(&t);
        for v in [
            text.clone(),
            format!("W/{text}"),
            format!("\"x\", {text}"),
            "*".into(),
        ] {
            let mut h = headers(&[(header::IF_NONE_MATCH, &v)]);
            assert_eq!(evaluate(&mut h, Some(&t)), Precondition::NotModified, "{v}");
        }
        let mut h = headers(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert_eq!(evaluate(&mut h, Some(&t)), Precondition::Proceed);
        assert!(
            h.get(header::IF_MODIFIED_SINCE).is_none(),
            "13.1.3: ignored"
        );
    }

    #[test]
    fn if_match_needs_a_strong_match() {
        let t = file_tag(5);
        let text = tag_text(&t);
        let mut h = headers(&[
            (header::IF_MATCH, &text),
            (header::IF_UNMODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:19 GMT"),
        ]);
        assert_eq!(evaluate(&mut h, Some(&t)), Precondition::Proceed);
        assert!(
            h.get(header::IF_UNMODIFIED_SINCE).is_none(),
            "13.1.4: ignored"
        );
        for v in [format!("W/{text}"), "\"other\"".into(), "garbage".into()] {
            let mut h = headers(&[(header::IF_MATCH, &v)]);
            assert_eq!(evaluate(&mut h, Some(&t)), Precondition::Failed, "{v}");
        }
        let young = file_tag(0);
        let mut h = headers(&[(header::IF_MATCH, &tag_text(&young)[2..])]);
        assert_eq!(
            evaluate(&mut h, Some(&young)),
            Precondition::Failed,
            "a weak tag never matches strongly"
        );
        let mut h = headers(&[(header::IF_MATCH, "*")]);
        assert_eq!(evaluate(&mut h, Some(&t)), Precondition::Proceed);
    }

    #[test]
    fn if_range_with_a_tag_compares_strongly_and_leaves_dates_to_the_caller() {
        let t = file_tag(5);
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(t.if_range(&t.header_value().unwrap()), Some(true));
        assert_eq!(t.if_range(&v("\"other\"")), Some(false));
        assert_eq!(t.if_range(&v(&format!("W/{}", tag_text(&t)))), Some(false));
        assert_eq!(t.if_range(&v("Tue, 14 Nov 2023 22:13:20 GMT")), None);
    }

    #[test]
    fn tag_lists_parse_as_rfc_9110_writes_them() {
        assert_eq!(parse_list(" * "), Some(List::Any));
        let l = parse_list("\"a\", W/\"b\",\"c,d\"").unwrap();
        let List::Tags(t) = l else { panic!() };
        assert_eq!(t.len(), 3);
        assert!(t[1].weak && t[2].opaque == "\"c,d\"");
        for bad in ["", "a", "\"a", "\"a\"b", "W/a", "\"a b\""] {
            assert_eq!(parse_list(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_header_text_is_evaluated_without_panicking(s in "[ -~]{0,40}") {
            if let Ok(v) = HeaderValue::from_str(&s) {
                let t = file_tag(5);
                let mut h = HeaderMap::new();
                h.insert(header::IF_MATCH, v.clone());
                h.insert(header::IF_NONE_MATCH, v.clone());
                let _ = evaluate(&mut h, Some(&t));
                let _ = t.if_range(&v);
            }
        }
    }
}
