//! Base64 as the providers send it: decoded in either alphabet. A leaf
//! module (the Gemini and GPT-Live codecs both use it).
//!
//! proto3 JSON parsers accept standard and URL-safe base64, padded or
//! not, and Google's own SDK types serialise `bytes` as URL-safe; the
//! OpenAI docs name no alphabet. Decoding both costs one retry on the
//! rare URL-safe payload. Encoding stays standard padded base64.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);

/// Decodes base64 in the standard or the URL-safe alphabet, padded or not.
pub(crate) fn decode_any(s: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let s = s.as_ref();
    STANDARD_ANY
        .decode(s)
        .ok()
        .or_else(|| URL_SAFE_ANY.decode(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_padded_or_not() {
        for s in ["+/8=", "+/8", "-_8=", "-_8"] {
            assert_eq!(decode_any(s), Some(vec![0xfb, 0xff]), "{s}");
        }
        assert_eq!(decode_any(""), Some(vec![]));
        assert_eq!(decode_any("+_8="), None, "mixed alphabets");
        assert_eq!(decode_any("!!"), None);
    }
}
