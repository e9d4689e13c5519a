//! The crate's one error type.

/// What can go wrong in this crate: only caller misuse (a buffer too
/// small for the samples asked for, a rate pair the resampler does not
/// convert). The codecs and filters themselves cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The output buffer is shorter than the call's output (caller misuse).
    BufferTooSmall {
        /// Samples or codes the call needed room for.
        need: usize,
        /// Room in the buffer passed.
        have: usize,
    },
    /// The resampler does not convert between these rates (caller misuse).
    UnsupportedRate {
        /// Input rate, Hz.
        from: u32,
        /// Output rate, Hz.
        to: u32,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BufferTooSmall { need, have } => {
                write!(f, "output buffer too small: need {need}, have {have}")
            }
            Error::UnsupportedRate { from, to } => {
                write!(f, "no resampler from {from} Hz to {to} Hz")
            }
        }
    }
}

impl std::error::Error for Error {}
