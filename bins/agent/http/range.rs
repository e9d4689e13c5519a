//! Single byte ranges of HTTP (RFC 9110 section 14), as the agent serves
//! recordings: [`resolve`] decides, from a `Range` header's value and a
//! file's length, whether to send the whole file (200), one part (206) or
//! nothing (416). It never fails: what it does not serve (other units,
//! several ranges, malformed values) gets the whole file, which section
//! 14.2 allows ("a server MAY ignore the Range header field").
//!
//! ```
//! use callbridge::range::{RangeAnswer, resolve};
//! assert_eq!(resolve(Some("bytes=-500"), 10_000), RangeAnswer::Partial { start: 9500, end: 9999 });
//! assert_eq!(resolve(Some("bytes=10000-"), 10_000), RangeAnswer::Unsatisfiable);
//! assert_eq!(resolve(Some("bytes=0-1,5-6"), 10_000), RangeAnswer::Full);
//! ```

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
/// a file of `len` bytes: `bytes=a-b`, `bytes=a-` and `bytes=-n` (section
/// 14.1.2); a last position past the end is clamped, a first position at
/// or past it (or a zero suffix, or an empty file) is unsatisfiable.
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
