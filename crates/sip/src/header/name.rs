//! Header field names: the ones this stack knows, with their compact forms
//! (RFC 3261 section 7.3.3 and 20, RFC 3265, RFC 3515, RFC 3841, RFC 4028),
//! and any other name kept verbatim.

use bytes::Bytes;
use std::fmt;
use std::hash::{Hash, Hasher};

macro_rules! names {
    ($($variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names compare by variant; unknown
        /// names compare case-insensitively.
        #[derive(Clone)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// Any other header, its name as written.
            Other(Bytes),
        }

        impl HeaderName {
            /// Look a name up case-insensitively, accepting compact forms.
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                if name.len() == 1 {
                    match name[0].to_ascii_lowercase() {
                        $($(x if x == $compact => return HeaderName::$variant,)?)*
                        _ => {}
                    }
                }
                $(
                    if name.eq_ignore_ascii_case($canon.as_bytes()) {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(Bytes::copy_from_slice(name))
            }

            /// The canonical (long) name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(HeaderName::$variant => $canon,)*
                    // Names come from `token` bytes, which are ASCII.
                    HeaderName::Other(b) => std::str::from_utf8(b).unwrap_or("X-Invalid"),
                }
            }

            /// The compact form, if the name has one.
            pub fn compact(&self) -> Option<char> {
                match self {
                    $($(HeaderName::$variant => Some($compact as char),)?)*
                    _ => None,
                }
            }
        }
    };
}

names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", b'a';
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", b'u';
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", b'i';
    CallInfo => "Call-Info";
    Contact => "Contact", b'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", b'e';
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", b'o';
    Expires => "Expires";
    From => "From", b'f';
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    Organization => "Organization";
    Priority => "Priority";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    ReplyTo => "Reply-To";
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", b'x';
    Subject => "Subject", b's';
    SubscriptionState => "Subscription-State";
    Supported => "Supported", b'k';
    Timestamp => "Timestamp";
    To => "To", b't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", b'v';
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl HeaderName {
    /// Whether the header's grammar is a comma-separated list that may be
    /// split into several values (RFC 3261 section 7.3.1). Authentication
    /// headers, Date, User-Agent, Server and unknown headers are not split.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Accept
                | HeaderName::AcceptContact
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AlertInfo
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::CallInfo
                | HeaderName::Contact
                | HeaderName::ContentEncoding
                | HeaderName::ContentLanguage
                | HeaderName::ErrorInfo
                | HeaderName::InReplyTo
                | HeaderName::ProxyRequire
                | HeaderName::Reason
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::Route
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Via
                | HeaderName::Warning
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            HeaderName::Other(b) => {
                for c in b.iter() {
                    state.write_u8(c.to_ascii_lowercase());
                }
            }
            _ => std::mem::discriminant(self).hash(state),
        }
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for HeaderName {
    fn from(s: &'static str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_long_forms_are_the_same_header() {
        for (c, long) in [
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("a", HeaderName::AcceptContact),
            ("V", HeaderName::Via),
        ] {
            assert_eq!(HeaderName::from_bytes(c.as_bytes()), long, "{c}");
        }
    }

    #[test]
    fn names_are_case_insensitive_and_unknown_names_are_kept() {
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        let n = HeaderName::from_bytes(b"X-Custom");
        assert_eq!(n.as_str(), "X-Custom");
        assert_eq!(n, HeaderName::from_bytes(b"x-custom"));
    }
}
