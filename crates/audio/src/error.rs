//! The crate's one error type.

/// What can go wrong in this crate: only caller misuse (a buffer too
/// small for the samples asked for). The codecs themselves cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The output buffer is shorter than the input (caller misuse).
    BufferTooSmall {
        /// Samples or codes the call needed room for.
        need: usize,
        /// Room in the buffer passed.
        have: usize,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BufferTooSmall { need, have } => {
                write!(f, "output buffer too small: need {need}, have {have}")
            }
        }
    }
}

impl std::error::Error for Error {}
