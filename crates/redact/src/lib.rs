//! Wrappers that keep secrets and personal data out of logs, `Debug` output
//! and error messages (STYLE rule 17). Two kinds, because they must print
//! differently:
//!
//! - [`Secret`]: API keys, tokens, passwords. Prints `<redacted>`, nothing
//!   of the value (not even its length).
//! - [`Masked`]: phone numbers and other party identifiers. Prints the value
//!   with every character but the last two replaced by `*`, so an operator
//!   can still tell two calls apart. [`mask`] and [`masked`] apply the same
//!   rule keeping a chosen number of leading characters too (a country
//!   code), for types that own their formatting.
//!
//! This crate depends on nothing, so every callbridge crate can use it
//! without learning about another.
//!
//! ```
//! use callbridge_redact::{Masked, Secret};
//! let key = Secret::new(String::from("sk-live-123"));
//! assert_eq!(format!("{key:?}"), "<redacted>");
//! assert_eq!(key.expose(), "sk-live-123");
//! let caller = Masked::new("+15551234567");
//! assert_eq!(format!("{caller:?}"), "**********67");
//! ```
#![deny(missing_docs)]

use std::fmt;

/// How many trailing characters [`Masked`] keeps.
pub const KEPT_TAIL: usize = 2;

/// A secret: `Debug` and `Display` print `<redacted>`.
///
/// ```
/// let token = callbridge_redact::Secret::new("tok_123");
/// assert_eq!(token.to_string(), "<redacted>");
/// assert_eq!(*token.expose(), "tok_123");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret, for the one place that puts it on the wire or compares
    /// it. Never log what this returns.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A phone number or party identifier: `Debug` and `Display` print it
/// masked, keeping only its last [`KEPT_TAIL`] characters.
///
/// ```
/// let n = callbridge_redact::Masked::new(String::from("+442079460021"));
/// assert_eq!(n.to_string(), "***********21");
/// assert_eq!(n.expose(), "+442079460021");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Masked<T>(T);

impl<T: AsRef<str>> Masked<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Masked(value)
    }

    /// The unmasked value (for dialling, storing, comparing).
    pub fn expose(&self) -> &str {
        self.0.as_ref()
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsRef<str>> fmt::Debug for Masked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask(f, self.0.as_ref(), 0, KEPT_TAIL)
    }
}

impl<T: AsRef<str>> fmt::Display for Masked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask(f, self.0.as_ref(), 0, KEPT_TAIL)
    }
}

/// Writes `s` with every character but its first `keep_head` and last
/// `keep_tail` replaced by `*`; a value no longer than `keep_head +
/// keep_tail` characters is all `*`, so a short value is never shown whole.
///
/// ```
/// use std::fmt::Write;
/// let mut out = String::new();
/// callbridge_redact::mask(&mut out, "+14155550100", 3, 2).unwrap();
/// assert_eq!(out, "+14*******00");
/// ```
pub fn mask(f: &mut impl fmt::Write, s: &str, keep_head: usize, keep_tail: usize) -> fmt::Result {
    let n = s.chars().count();
    if n <= keep_head + keep_tail {
        for _ in 0..n {
            f.write_char('*')?;
        }
        return Ok(());
    }
    for (i, c) in s.chars().enumerate() {
        f.write_char(if i < keep_head || i >= n - keep_tail {
            c
        } else {
            '*'
        })?;
    }
    Ok(())
}

/// [`mask`] into a new string.
///
/// ```
/// assert_eq!(callbridge_redact::masked("+19005550123", 4, 2), "+190******23");
/// assert_eq!(callbridge_redact::masked("123456", 4, 2), "******");
/// ```
pub fn masked(s: &str, keep_head: usize, keep_tail: usize) -> String {
    let mut out = String::with_capacity(s.len());
    // Writing to a String cannot fail.
    let _ = mask(&mut out, s, keep_head, keep_tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_nothing_of_the_value_not_even_its_length() {
        for v in ["", "a", "sk-0123456789abcdef"] {
            let s = Secret::new(v);
            assert_eq!(format!("{s:?}"), "<redacted>");
            assert_eq!(format!("{s}"), "<redacted>");
            assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
        }
    }

    #[test]
    fn masking_keeps_only_the_asked_ends_and_hides_short_values_whole() {
        assert_eq!(masked("+442079460021", 3, 2), "+44********21");
        assert_eq!(masked("+15551234567", 0, 2), "**********67");
        assert_eq!(masked("12", 0, 2), "**");
        assert_eq!(masked("", 3, 2), "");
        assert_eq!(masked("ab€de€", 1, 1), "a****€");
        assert_eq!(Masked::new("+15551234567").to_string(), "**********67");
        assert_eq!(format!("{:?}", Masked::new("5")), "*");
    }
}
