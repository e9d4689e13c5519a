//! Turning outside text into the store's vocabulary: the fallible
//! constructors and parsers of the types in `model.rs` (phone numbers, party
//! strings, names, session ids and the stored names of every enum). They
//! live apart from the type definitions because they return the crate's
//! [`Error`], whose variants name some of those types: `model` stays a leaf
//! and `error` depends on it, never the other way round.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::model::{
    AmdVerdict, CampaignStatus, Direction, EndReason, EventKind, LeadStatus, MachineEnd, Outcome,
    Party, PersonName, PhoneNumber, Role, SessionId, SessionState, Speaker, Transport,
};

impl FromStr for SessionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        uuid::Uuid::parse_str(s)
            .map(SessionId::from_uuid)
            .map_err(|_| Error::InvalidInput {
                field: "session_id",
                reason: "not a UUID",
            })
    }
}

impl PhoneNumber {
    /// Parses a number, accepting and removing the visual separators people
    /// type (spaces, `-`, `.`, `(`, `)`); the result must be E.164.
    ///
    /// ```
    /// use callbridge_crm_store::PhoneNumber;
    /// let p = PhoneNumber::parse("+1 (415) 555-0100").unwrap();
    /// assert_eq!(p.as_str(), "+14155550100");
    /// assert_eq!(p.to_string(), "+14*******00");
    /// assert!(PhoneNumber::parse("4155550100").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidInput {
            field: "phone",
            reason,
        };
        let s = s.trim();
        let rest = s
            .strip_prefix('+')
            .ok_or(bad("must start with + (E.164)"))?;
        let mut out = String::with_capacity(16);
        out.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => out.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(bad("only digits may follow +")),
            }
        }
        let digits = out.len() - 1;
        if !(7..=15).contains(&digits) {
            return Err(bad("E.164 numbers have 7 to 15 digits"));
        }
        if out.as_bytes()[1] == b'0' {
            return Err(bad("country code cannot start with 0"));
        }
        Ok(PhoneNumber::from_db(out))
    }
}

impl Party {
    /// Wraps a party string, refusing an over-long one.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if s.len() > Self::MAX_LEN {
            return Err(Error::InvalidInput {
                field: "party",
                reason: "longer than 256 bytes",
            });
        }
        Ok(Party::from_db(s))
    }
}

impl PersonName {
    /// Wraps a name, refusing an over-long one.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if s.len() > Self::MAX_LEN {
            return Err(Error::InvalidInput {
                field: "name",
                reason: "longer than 512 bytes",
            });
        }
        Ok(PersonName::from_db(s))
    }
}

/// `from_db` (a stored name, else [`Error::Corrupt`]) and `FromStr` (a
/// caller's name, else [`Error::InvalidInput`]) for each stored enum.
macro_rules! decode_text {
    ($($name:ident),+ $(,)?) => {$(
        impl $name {
            /// Decodes a stored name.
            pub(crate) fn from_db(s: &str) -> Result<Self> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or(Error::Corrupt { what: $name::FIELD })
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::from_db(s).map_err(|_| Error::InvalidInput {
                    field: $name::FIELD,
                    reason: "unknown value",
                })
            }
        }
    )+};
}

decode_text!(
    Direction,
    Transport,
    SessionState,
    Speaker,
    Role,
    LeadStatus,
    CampaignStatus,
    EndReason,
    Outcome,
    EventKind,
    AmdVerdict,
    MachineEnd,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_rejects_letters_short_long_and_leading_zero() {
        for bad in [
            "+1abc5550100",
            "+123456",
            "+1234567890123456",
            "+0123456789",
            "",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enums_round_trip_through_their_stored_names() {
        for s in SessionState::ALL {
            assert_eq!(s.as_str().parse::<SessionState>().unwrap(), *s);
        }
        for s in LeadStatus::ALL {
            assert_eq!(s.as_str().parse::<LeadStatus>().unwrap(), *s);
        }
        for s in EndReason::ALL {
            assert_eq!(s.as_str().parse::<EndReason>().unwrap(), *s);
        }
        for s in Transport::ALL {
            assert_eq!(s.as_str().parse::<Transport>().unwrap(), *s);
            assert_eq!(s.to_string(), s.as_str());
        }
        assert!("bogus".parse::<Role>().is_err());
    }

    proptest::proptest! {
        /// Parsing accepts exactly the stored names: whatever parses
        /// displays back to the same string, and nothing else parses (no
        /// case folding, trimming or carrier-prefixed call ids).
        #[test]
        fn transport_parses_exactly_its_stored_names(
            s in "(sip|twilio|vonage|unknown|SIP|Twilio| sip|sip |twilio:CA1|vonage:|)[a-z:]{0,2}"
        ) {
            match s.parse::<Transport>() {
                Ok(t) => proptest::prop_assert_eq!(t.to_string(), s),
                Err(e) => {
                    proptest::prop_assert!(Transport::ALL.iter().all(|t| t.as_str() != s));
                    let is_input_error = matches!(
                        e,
                        Error::InvalidInput { field: "transport", .. }
                    );
                    proptest::prop_assert!(is_input_error);
                }
            }
        }
    }
}
