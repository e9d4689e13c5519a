//! Header field names: the ones this stack knows, with their compact forms
//! (RFC 3261 section 7.3.3 and 20, RFC 3265, RFC 3515, RFC 3841, RFC 4028),
//! and any other name kept verbatim.

use bytes::Bytes;
use std::fmt;
use std::hash::{Hash, Hasher};

macro_rules! names {
    ($($variant:ident => $canon:literal, $lower:literal $(, $compact:literal)? ;)*) => {
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
                HeaderName::known(name).unwrap_or_else(|| HeaderName::Other(Bytes::copy_from_slice(name)))
            }

            /// The known header `name` denotes, if any.
            pub(crate) fn known(name: &[u8]) -> Option<HeaderName> {
                if name.len() == 1 {
                    return match name[0].to_ascii_lowercase() {
                        $($(x if x == $compact => Some(HeaderName::$variant),)?)*
                        _ => None,
                    };
                }
                let mut lower = [0u8; 24];
                let folded = lower.get_mut(..name.len())?;
                for (d, s) in folded.iter_mut().zip(name) {
                    *d = s.to_ascii_lowercase();
                }
                // Dispatch on the first letter, then compare the rest; the
                // table below lists every name of the macro invocation.
                let (first, rest) = folded.split_first()?;
                let found = match first {
                    b'a' => match rest { b"ccept" => Some(HeaderName::Accept), b"ccept-contact" => Some(HeaderName::AcceptContact), b"ccept-encoding" => Some(HeaderName::AcceptEncoding), b"ccept-language" => Some(HeaderName::AcceptLanguage), b"lert-info" => Some(HeaderName::AlertInfo), b"llow" => Some(HeaderName::Allow), b"llow-events" => Some(HeaderName::AllowEvents), b"uthentication-info" => Some(HeaderName::AuthenticationInfo), b"uthorization" => Some(HeaderName::Authorization), _ => None },
                    b'c' => match rest { b"all-id" => Some(HeaderName::CallId), b"all-info" => Some(HeaderName::CallInfo), b"ontact" => Some(HeaderName::Contact), b"ontent-disposition" => Some(HeaderName::ContentDisposition), b"ontent-encoding" => Some(HeaderName::ContentEncoding), b"ontent-language" => Some(HeaderName::ContentLanguage), b"ontent-length" => Some(HeaderName::ContentLength), b"ontent-type" => Some(HeaderName::ContentType), b"seq" => Some(HeaderName::CSeq), _ => None },
                    b'd' => match rest { b"ate" => Some(HeaderName::Date), _ => None },
                    b'e' => match rest { b"rror-info" => Some(HeaderName::ErrorInfo), b"vent" => Some(HeaderName::Event), b"xpires" => Some(HeaderName::Expires), _ => None },
                    b'f' => match rest { b"rom" => Some(HeaderName::From), _ => None },
                    b'i' => match rest { b"n-reply-to" => Some(HeaderName::InReplyTo), _ => None },
                    b'm' => match rest { b"ax-forwards" => Some(HeaderName::MaxForwards), b"ime-version" => Some(HeaderName::MimeVersion), b"in-expires" => Some(HeaderName::MinExpires), b"in-se" => Some(HeaderName::MinSe), _ => None },
                    b'o' => match rest { b"rganization" => Some(HeaderName::Organization), _ => None },
                    b'p' => match rest { b"riority" => Some(HeaderName::Priority), b"roxy-authenticate" => Some(HeaderName::ProxyAuthenticate), b"roxy-authorization" => Some(HeaderName::ProxyAuthorization), b"roxy-require" => Some(HeaderName::ProxyRequire), _ => None },
                    b'r' => match rest { b"ack" => Some(HeaderName::RAck), b"eason" => Some(HeaderName::Reason), b"ecord-route" => Some(HeaderName::RecordRoute), b"efer-to" => Some(HeaderName::ReferTo), b"eferred-by" => Some(HeaderName::ReferredBy), b"eply-to" => Some(HeaderName::ReplyTo), b"equire" => Some(HeaderName::Require), b"etry-after" => Some(HeaderName::RetryAfter), b"oute" => Some(HeaderName::Route), b"seq" => Some(HeaderName::RSeq), _ => None },
                    b's' => match rest { b"erver" => Some(HeaderName::Server), b"ession-expires" => Some(HeaderName::SessionExpires), b"ubject" => Some(HeaderName::Subject), b"ubscription-state" => Some(HeaderName::SubscriptionState), b"upported" => Some(HeaderName::Supported), _ => None },
                    b't' => match rest { b"imestamp" => Some(HeaderName::Timestamp), b"o" => Some(HeaderName::To), _ => None },
                    b'u' => match rest { b"nsupported" => Some(HeaderName::Unsupported), b"ser-agent" => Some(HeaderName::UserAgent), _ => None },
                    b'v' => match rest { b"ia" => Some(HeaderName::Via), _ => None },
                    b'w' => match rest { b"arning" => Some(HeaderName::Warning), b"ww-authenticate" => Some(HeaderName::WwwAuthenticate), _ => None },
                    _ => None,
                };
                found
            }

            /// Every known name in lower case, for the test that keeps the
            /// lookup table of `known` complete.
            #[cfg(test)]
            const ALL_LOWER: &'static [&'static [u8]] = &[$($lower),*];

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
    Accept => "Accept", b"accept";
    AcceptContact => "Accept-Contact", b"accept-contact", b'a';
    AcceptEncoding => "Accept-Encoding", b"accept-encoding";
    AcceptLanguage => "Accept-Language", b"accept-language";
    AlertInfo => "Alert-Info", b"alert-info";
    Allow => "Allow", b"allow";
    AllowEvents => "Allow-Events", b"allow-events", b'u';
    AuthenticationInfo => "Authentication-Info", b"authentication-info";
    Authorization => "Authorization", b"authorization";
    CallId => "Call-ID", b"call-id", b'i';
    CallInfo => "Call-Info", b"call-info";
    Contact => "Contact", b"contact", b'm';
    ContentDisposition => "Content-Disposition", b"content-disposition";
    ContentEncoding => "Content-Encoding", b"content-encoding", b'e';
    ContentLanguage => "Content-Language", b"content-language";
    ContentLength => "Content-Length", b"content-length", b'l';
    ContentType => "Content-Type", b"content-type", b'c';
    CSeq => "CSeq", b"cseq";
    Date => "Date", b"date";
    ErrorInfo => "Error-Info", b"error-info";
    Event => "Event", b"event", b'o';
    Expires => "Expires", b"expires";
    From => "From", b"from", b'f';
    InReplyTo => "In-Reply-To", b"in-reply-to";
    MaxForwards => "Max-Forwards", b"max-forwards";
    MimeVersion => "MIME-Version", b"mime-version";
    MinExpires => "Min-Expires", b"min-expires";
    MinSe => "Min-SE", b"min-se";
    Organization => "Organization", b"organization";
    Priority => "Priority", b"priority";
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    ProxyRequire => "Proxy-Require", b"proxy-require";
    RAck => "RAck", b"rack";
    Reason => "Reason", b"reason";
    RecordRoute => "Record-Route", b"record-route";
    ReferTo => "Refer-To", b"refer-to", b'r';
    ReferredBy => "Referred-By", b"referred-by", b'b';
    ReplyTo => "Reply-To", b"reply-to";
    Require => "Require", b"require";
    RetryAfter => "Retry-After", b"retry-after";
    Route => "Route", b"route";
    RSeq => "RSeq", b"rseq";
    Server => "Server", b"server";
    SessionExpires => "Session-Expires", b"session-expires", b'x';
    Subject => "Subject", b"subject", b's';
    SubscriptionState => "Subscription-State", b"subscription-state";
    Supported => "Supported", b"supported", b'k';
    Timestamp => "Timestamp", b"timestamp";
    To => "To", b"to", b't';
    Unsupported => "Unsupported", b"unsupported";
    UserAgent => "User-Agent", b"user-agent";
    Via => "Via", b"via", b'v';
    Warning => "Warning", b"warning";
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
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
    fn every_known_name_is_found_by_the_lookup_table() {
        for lower in HeaderName::ALL_LOWER {
            let n = HeaderName::known(lower)
                .unwrap_or_else(|| panic!("{:?} missing", String::from_utf8_lossy(lower)));
            assert_eq!(n.as_str().to_ascii_lowercase().as_bytes(), *lower);
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
