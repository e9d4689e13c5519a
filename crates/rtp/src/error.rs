//! The crate's error types: [`ParseError`] for bytes that came from the
//! network or a file (whose fault: the peer's), [`Error`] for everything else
//! (local resources, configuration, caller misuse).

/// A packet (RTP, RTCP or RFC 4733 payload) that does not parse.
///
/// Every variant is the peer's fault; the right reaction is to drop the
/// datagram and count it, never to panic or to tear the call down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than the fixed part of the structure needs.
    #[error("{what}: {len} bytes, need at least {need}")]
    TooShort {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The version field is not 2 (RFC 3550 section 5.1).
    #[error("{what}: version {version}, expected 2")]
    BadVersion {
        /// The structure being parsed.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// The padding count is zero or runs into the header.
    #[error("{what}: bad padding count {count}")]
    BadPadding {
        /// The structure being parsed.
        what: &'static str,
        /// The padding count from the last byte.
        count: u8,
    },
    /// A length field points past the end of the buffer or is inconsistent.
    #[error("{what}: length field says {claimed} bytes, {available} available")]
    BadLength {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes the length field claims.
        claimed: usize,
        /// Bytes actually available.
        available: usize,
    },
    /// A field holds a value the RFC forbids.
    #[error("{what}: invalid value")]
    Invalid {
        /// The field and structure at fault.
        what: &'static str,
    },
}

/// Errors of the media layer that are not parse errors: local resources,
/// configuration and caller misuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller passed a buffer or value that breaks the documented contract.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
    },
    /// An output buffer is too small for what must be written.
    #[error("buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The sample-rate pair is not one the resampler supports.
    #[error("unsupported sample rate conversion {from} Hz -> {to} Hz")]
    UnsupportedRate {
        /// Input rate in Hz.
        from: u32,
        /// Output rate in Hz.
        to: u32,
    },
    /// Every port of the configured RTP range is in use.
    #[error("no free RTP port in the configured range")]
    PortsExhausted,
    /// A socket could not be opened because the process (EMFILE) or the
    /// system (ENFILE) has no file descriptor left: not a port shortage.
    #[error("out of file descriptors (the open-file limit is reached)")]
    OutOfFileDescriptors,
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation that failed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The WAV writer or reader failed.
    #[error("wav {what}: {detail}")]
    Wav {
        /// The operation that failed.
        what: &'static str,
        /// The library's message (no personal data: file names are not included).
        detail: String,
    },
}
impl From<callbridge_audio::Error> for Error {
    fn from(e: callbridge_audio::Error) -> Error {
        match e {
            callbridge_audio::Error::BufferTooSmall { need, have } => {
                Error::BufferTooSmall { need, have }
            }
            _ => Error::InvalidArgument {
                what: "audio conversion",
            },
        }
    }
}

impl Error {
    /// True when the operating system said the disk (or the user's quota)
    /// is full: `ENOSPC` or `EDQUOT`.
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
    }

    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { what, source }
    }

    pub(crate) fn wav(what: &'static str) -> impl FnOnce(hound::Error) -> Error {
        move |e| match e {
            hound::Error::IoError(source) => Error::Io { what, source },
            other => Error::Wav {
                what,
                detail: other.to_string(),
            },
        }
    }
}
