//! Media for callbridge: RTP/RTCP packets, G.711, resampling, jitter buffer, RFC 4733 DTMF, the per-call media socket and the call recorder.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
