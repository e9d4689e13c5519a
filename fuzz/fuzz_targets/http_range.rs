//! Fuzz the recording endpoint's conditional and range decisions
//! (`callbridge_api::conditional`): `Range` (through the http-range-header
//! parser), `If-Range`, `If-Match` and `If-None-Match` as a client may send
//! them, against a file of any length and age. Never panic; a kept Range is
//! one range inside the file; a replaced one only stands for a suffix
//! longer than a non-empty file; the file's own tag names it.
//!
//! Input: 8 bytes of file length (little-endian), a byte of flags (bit 0:
//! the file has a modification time, bit 1: it is a second old, so its
//! validators are strong), then up to four header values separated by NUL:
//! Range, If-Range, If-Match, If-None-Match.
#![no_main]

use std::time::{Duration, SystemTime};

use callbridge_api::conditional::{EntityTag, Precondition, RangeDecision, decide, evaluate};
use http::{HeaderMap, HeaderValue, header};
use http_range_header::parse_range_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    let Some((&flags, rest)) = rest.split_first() else {
        return;
    };
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let now = if flags & 2 != 0 {
        modified + Duration::from_secs(5)
    } else {
        modified
    };
    let modified = (flags & 1 != 0).then_some(modified);
    let tag = EntityTag::of_file(len, modified, now);
    if let Some(t) = &tag {
        let own = t.header_value().expect("a file's tag is a header value");
        assert_eq!(
            t.if_range(&own),
            Some(flags & 2 != 0),
            "the tag names its file strongly once it is strong"
        );
    }

    let names = [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
    ];
    let mut headers = HeaderMap::new();
    for (name, value) in names.into_iter().zip(rest.split(|&b| b == 0)) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let had_if_match = headers.contains_key(header::IF_MATCH);
    let had_if_none_match = headers.contains_key(header::IF_NONE_MATCH);
    let pre = evaluate(&mut headers, tag.as_ref());
    if pre == Precondition::Failed {
        assert!(had_if_match, "412 without If-Match");
    }
    if pre == Precondition::NotModified {
        assert!(had_if_none_match, "304 without If-None-Match");
    }
    let decision = decide(&headers, len, modified, tag.as_ref(), now);
    let has_range = headers.contains_key(header::RANGE);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match decision {
        RangeDecision::Keep => {
            if let Some(r) = range {
                let ranges = parse_range_header(r).expect("a kept Range parses");
                assert_eq!(ranges.ranges.len(), 1, "a kept Range is one range");
                assert!(
                    ranges.validate(len).is_ok(),
                    "a kept Range lies inside the file"
                );
            }
        }
        RangeDecision::Replace(v) => {
            assert!(
                len > 0 && range.is_some(),
                "replaced {range:?} for length {len}"
            );
            let ranges = parse_range_header(v).expect("the replacement parses");
            assert!(ranges.validate(len).is_ok());
        }
        RangeDecision::Unsatisfiable => assert!(range.is_some(), "416 without a readable Range"),
        RangeDecision::Ignore => assert!(has_range, "nothing to ignore"),
    }
});
