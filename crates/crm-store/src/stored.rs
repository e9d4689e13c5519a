//! How values are stored: timestamps as milliseconds since the epoch and
//! counts as SQLite's `i64`. A leaf module every part of the store uses.

use jiff::Timestamp;

use crate::error::{Error, Result};

/// Milliseconds since the epoch, as stored.
pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// Decodes a stored millisecond timestamp.
pub(crate) fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|_| Error::Corrupt { what: "timestamp" })
}

/// Decodes an optional stored timestamp.
pub(crate) fn ts_opt(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(ts).transpose()
}

/// Converts a count to `i64` for SQLite, refusing absurd values.
pub(crate) fn to_i64(v: u64, field: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput {
        field,
        reason: "too large",
    })
}

/// Converts a stored non-negative integer back.
pub(crate) fn to_u64(v: i64, what: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt { what })
}
