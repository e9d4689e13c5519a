//! Response status codes (RFC 3261 section 21).

use std::fmt;

/// A response status code, always in 100..=699.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

macro_rules! codes {
    ($($name:ident = $code:literal, $reason:literal;)*) => {
        impl StatusCode {
            $(
                #[doc = concat!("`", stringify!($code), " ", $reason, "`")]
                pub const $name: StatusCode = StatusCode($code);
            )*

            /// The default reason phrase of RFC 3261 section 21 (or a
            /// class-wide phrase for codes it does not list).
            pub fn canonical_reason(self) -> &'static str {
                match self.0 {
                    $($code => $reason,)*
                    100..=199 => "Provisional",
                    200..=299 => "Success",
                    300..=399 => "Redirection",
                    400..=499 => "Client Error",
                    500..=599 => "Server Error",
                    _ => "Global Failure",
                }
            }
        }
    };
}

codes! {
    TRYING = 100, "Trying";
    RINGING = 180, "Ringing";
    CALL_IS_BEING_FORWARDED = 181, "Call Is Being Forwarded";
    QUEUED = 182, "Queued";
    SESSION_PROGRESS = 183, "Session Progress";
    OK = 200, "OK";
    ACCEPTED = 202, "Accepted";
    MOVED_TEMPORARILY = 302, "Moved Temporarily";
    BAD_REQUEST = 400, "Bad Request";
    UNAUTHORIZED = 401, "Unauthorized";
    FORBIDDEN = 403, "Forbidden";
    NOT_FOUND = 404, "Not Found";
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed";
    PROXY_AUTHENTICATION_REQUIRED = 407, "Proxy Authentication Required";
    REQUEST_TIMEOUT = 408, "Request Timeout";
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type";
    UNSUPPORTED_URI_SCHEME = 416, "Unsupported URI Scheme";
    BAD_EXTENSION = 420, "Bad Extension";
    SESSION_INTERVAL_TOO_SMALL = 422, "Session Interval Too Small";
    INTERVAL_TOO_BRIEF = 423, "Interval Too Brief";
    TEMPORARILY_UNAVAILABLE = 480, "Temporarily Unavailable";
    CALL_OR_TRANSACTION_DOES_NOT_EXIST = 481, "Call/Transaction Does Not Exist";
    LOOP_DETECTED = 482, "Loop Detected";
    TOO_MANY_HOPS = 483, "Too Many Hops";
    BUSY_HERE = 486, "Busy Here";
    REQUEST_TERMINATED = 487, "Request Terminated";
    NOT_ACCEPTABLE_HERE = 488, "Not Acceptable Here";
    BAD_EVENT = 489, "Bad Event";
    REQUEST_PENDING = 491, "Request Pending";
    SERVER_INTERNAL_ERROR = 500, "Server Internal Error";
    NOT_IMPLEMENTED = 501, "Not Implemented";
    SERVICE_UNAVAILABLE = 503, "Service Unavailable";
    SERVER_TIMEOUT = 504, "Server Time-out";
    VERSION_NOT_SUPPORTED = 505, "Version Not Supported";
    MESSAGE_TOO_LARGE = 513, "Message Too Large";
    BUSY_EVERYWHERE = 600, "Busy Everywhere";
    DECLINE = 603, "Decline";
    DOES_NOT_EXIST_ANYWHERE = 604, "Does Not Exist Anywhere";
    NOT_ACCEPTABLE = 606, "Not Acceptable";
}

impl StatusCode {
    /// A status code from its number; `None` outside 100..=699.
    pub fn new(code: u16) -> Option<StatusCode> {
        (100..=699).contains(&code).then_some(StatusCode(code))
    }

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// 200..=699: ends a transaction.
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_outside_100_to_699_are_rejected() {
        assert!(StatusCode::new(99).is_none());
        assert!(StatusCode::new(700).is_none());
        assert_eq!(StatusCode::new(486), Some(StatusCode::BUSY_HERE));
    }

    #[test]
    fn unlisted_codes_get_a_class_reason() {
        assert_eq!(
            StatusCode::new(499).map(StatusCode::canonical_reason),
            Some("Client Error")
        );
        assert_eq!(StatusCode::RINGING.canonical_reason(), "Ringing");
    }
}
