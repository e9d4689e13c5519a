//! The parameters of a carrier webhook: an `application/x-www-form-urlencoded`
//! body (Twilio's POST parameters) or query (Twilio's GET, Vonage's GET
//! answer), decoded per the WHATWG URL standard's
//! `application/x-www-form-urlencoded` parser (`+` is a space, `%XX` a
//! byte, invalid UTF-8 replaced), in their order, bounded.
//!
//! The decoded pairs are what Twilio's signature is computed over and
//! what Vonage's `payload_hash` of a GET covers
//! ([`super::signature::query_payload`]), so they are kept exactly as
//! sent: repeated names stay, nothing is trimmed.

/// Most parameters accepted in one webhook (a Twilio voice webhook has
/// about 30).
pub const MAX_PARAMS: usize = 128;

/// Why a webhook's parameters were refused (400).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// More than [`MAX_PARAMS`] parameters.
    #[error("too many webhook parameters (more than {MAX_PARAMS})")]
    TooManyParams,
}

/// The name/value pairs of a form body or query, in order.
///
/// ```
/// use callbridge_carrier::webhook::form_pairs;
/// let p = form_pairs(b"CallSid=CA1&From=%2B1555&To=+1+2&flag").unwrap();
/// assert_eq!(p[1], ("From".to_owned(), "+1555".to_owned()));
/// assert_eq!(p[2].1, " 1 2");
/// assert_eq!(p[3], ("flag".to_owned(), String::new()));
/// ```
///
/// # Errors
/// [`WebhookError::TooManyParams`].
pub fn form_pairs(input: &[u8]) -> Result<Vec<(String, String)>, WebhookError> {
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(input) {
        if out.len() >= MAX_PARAMS {
            return Err(WebhookError::TooManyParams);
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The value of the first parameter named `name`.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn twilio_form_bodies_decode_as_twilio_signs_them() {
        let p = form_pairs(b"CallSid=CA0e2e&From=%2B15550001111&To=%2B15550002222&Caller=a+b%26c")
            .unwrap();
        assert_eq!(param(&p, "From"), Some("+15550001111"));
        assert_eq!(param(&p, "Caller"), Some("a b&c"));
        assert_eq!(param(&p, "Missing"), None);
        assert_eq!(form_pairs(b"").unwrap(), vec![]);
        // Invalid UTF-8 and broken escapes never fail.
        let p = form_pairs(b"a=%ff%zz&=x&&b").unwrap();
        assert_eq!(p[0], ("a".to_owned(), "\u{fffd}%zz".to_owned()));
        assert_eq!(p[1], (String::new(), "x".to_owned()));
    }

    #[test]
    fn parameters_are_bounded() {
        let many = vec!["k=v"; MAX_PARAMS].join("&");
        assert_eq!(form_pairs(many.as_bytes()).unwrap().len(), MAX_PARAMS);
        let more = format!("{many}&x=1");
        assert_eq!(
            form_pairs(more.as_bytes()),
            Err(WebhookError::TooManyParams)
        );
    }

    proptest! {
        #[test]
        fn encoded_pairs_decode_to_themselves(
            pairs in proptest::collection::vec((".{0,8}", ".{0,8}"), 0..10),
        ) {
            let text = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter())
                .finish();
            prop_assert_eq!(form_pairs(text.as_bytes()).unwrap(), pairs);
        }
    }
}
