//! The callbridge agent's HTTP API: the wire types the `agent` serves and
//! the `campaign` dialer reads (one definition, so the two cannot drift
//! apart), and, behind the `client` feature, the typed client the dialer
//! places and follows calls with.
//!
//! The types are plain serde structs; their field names are the JSON
//! names on the wire (see [`wire`] for the endpoint table and the
//! compatibility rule: fields are only added, never renamed or removed).
//!
//! ```
//! use callbridge_api::{CallRequest, ErrorBody};
//!
//! let req: CallRequest = serde_json::from_str(r#"{"to": "+4930123456"}"#).unwrap();
//! assert_eq!(req.to, "+4930123456");
//! let body = serde_json::to_string(&ErrorBody { error: "busy".into() }).unwrap();
//! assert_eq!(body, r#"{"error":"busy"}"#);
//! ```
//!
//! # Features
//!
//! - `client` (off by default): [`AgentClient`], an HTTP client (reqwest on
//!   rustls with the aws-lc-rs provider, trusting the system store or the
//!   bundled roots: [`TlsRoots`], from `callbridge-tls`) for
//!   `POST /api/calls` and `GET /api/calls/{id}`. The agent, which only
//!   serves the types, goes without it.
//! - `conditional` (off by default): [`conditional`], the entity tag and
//!   the conditional and range decisions for a file the agent serves (the
//!   call recording), for servers built on `http` types.
#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "conditional")]
pub mod conditional;
pub mod wire;

#[cfg(feature = "client")]
pub use callbridge_tls::{TlsError, TlsRoots};
#[cfg(feature = "client")]
pub use client::{AgentClient, ClientError, MAX_BODY, PostError, REQUEST_TIMEOUT, error_chain};
pub use wire::{
    CallAccepted, CallRequest, CallStatus, ErrorBody, EventView, Health, LiveSessions, ModelHealth,
    Readiness, SessionDetail, SessionList, SessionView, TurnView,
};
