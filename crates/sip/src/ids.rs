//! Identifier newtypes: [`CallId`], [`Branch`] and [`Tag`] (RFC 3261 sections
//! 8.1.1.4, 8.1.1.7 and 19.3). Each wraps the bytes of the header it came from.

use bytes::Bytes;
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Bytes);

        impl $name {
            /// Wrap bytes (not validated; use values produced by the parser or
            /// by a generator of token characters).
            pub fn new(value: impl Into<Bytes>) -> Self {
                Self(value.into())
            }

            /// The identifier's bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The identifier as a cheap clone of its buffer.
            pub fn to_bytes(&self) -> Bytes {
                self.0.clone()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), String::from_utf8_lossy(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&String::from_utf8_lossy(&self.0))
            }
        }

        impl From<&'static str> for $name {
            fn from(s: &'static str) -> Self {
                Self(Bytes::from_static(s.as_bytes()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Bytes::from(s))
            }
        }
    };
}

id_newtype!(
    /// The Call-ID of a dialog or registration (RFC 3261 section 8.1.1.4).
    CallId
);
id_newtype!(
    /// A Via `branch` parameter, the transaction identifier (RFC 3261
    /// section 8.1.1.7).
    Branch
);
id_newtype!(
    /// A From or To `tag` parameter (RFC 3261 section 19.3).
    Tag
);

/// The magic cookie that starts every RFC 3261 branch.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

impl Branch {
    /// Whether the branch starts with the RFC 3261 magic cookie `z9hG4bK`
    /// (RFC 3261 section 8.1.1.7); RFC 2543 peers send other branches.
    pub fn is_rfc3261(&self) -> bool {
        self.0.starts_with(BRANCH_MAGIC_COOKIE.as_bytes())
    }
}
