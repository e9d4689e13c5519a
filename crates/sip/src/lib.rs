//! SIP for callbridge: messages, SDP offer/answer, transactions and dialogs as a sans-IO core, digest auth, stream framing, and a thin tokio driver for UDP, TCP and TLS.
//!
//! The message layer (RFC 3261 sections 7, 19, 20, 25):
//! - [`Message::parse`] parses one UDP datagram into a [`Request`] or
//!   [`Response`] whose header values are views of the datagram's buffer;
//!   typed headers are decoded on demand by the accessors of [`Headers`].
//! - Invalid input is a [`ParseError`]: its [`Disposition`] says whether to
//!   answer (400/505 with a reason phrase, built by
//!   [`ParseError::response`]) or to drop and count it.
//! - [`Request::builder`], [`Request::make_response`] and [`Encode`]
//!   build and serialize messages to exact bytes.
//! - Identifiers are newtypes: [`CallId`], [`Branch`], [`Tag`].
//!
//! Transports (RFC 3261 section 18): the core tags every message and every
//! destination with a [`transport::Transport`] (UDP, TCP, TLS); a byte
//! stream is cut into messages by [`stream::StreamFramer`].
//!
//! SDP offer/answer for G.711 audio is in [`sdp`] (RFC 4566, RFC 3264),
//! with SDES keys for SRTP (RFC 4568: `a=crypto`, `RTP/SAVP`, the
//! `SrtpPolicy`); digest authentication computations are in [`digest`]
//! (RFC 2617, 7616, 8760); locating a server by DNS (RFC 3263: NAPTR, SRV,
//! A/AAAA, the order to try targets in) is the sans-IO [`locate`], not
//! yet used by the driver.
//!
//! # Features
//! - `driver` (default): the tokio driver in `driver` (UDP, and TCP and
//!   TLS with tokio-rustls), which owns the
//!   socket and the clock. Without it the crate is the sans-IO core alone
//!   and does not depend on tokio, so the compiler enforces the boundary:
//!   `cargo check -p callbridge-sip --no-default-features`.
//!
//! Randomness (tags, branches, Call-IDs, client nonces) is injected: see
//! [`random`].
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod auth;
pub mod dialog;
pub mod digest;
#[cfg(feature = "driver")]
pub mod driver;
mod encode;
mod error;
pub mod filter;
pub mod header;
mod ids;
pub mod locate;
mod message;
mod method;
mod params;
mod parse;
pub mod random;
pub mod sdp;
pub mod session_timer;
mod status;
pub mod stream;
pub mod transaction;
pub mod transport;
pub mod ua;
mod uri;

pub use encode::Encode;
pub use error::{Disposition, Error};
pub use header::{AuthValue, CSeq, Header, HeaderName, Headers, MediaType, NameAddr, Reason, Via};
pub use ids::{BRANCH_MAGIC_COOKIE, Branch, CallId, Tag};
pub use message::{Message, Request, RequestBuilder, Response, ResponseBuilder};
pub use method::Method;
pub use params::Params;
pub use parse::{Limits, ParseError};
pub use status::StatusCode;
pub use uri::{Host, OtherUri, SipUri, TelUri, Uri};
