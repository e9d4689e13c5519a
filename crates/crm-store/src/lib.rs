//! The callbridge CRM store: users, campaigns, leads, call sessions,
//! transcripts, call events and recordings, in one SQLite file or in a
//! PostgreSQL database shared by several agents and dialers
//! ([`Store::open_url`], [`StoreUrl`]; docs/SCALING.md).
//!
//! The API is typed and synchronous: no SQL leaves this crate. Open a
//! [`Store`] per thread (async callers: a dedicated thread or
//! `spawn_blocking`); the agent and the campaign dialer may use the same
//! store from different processes (on PostgreSQL, machines) at the same
//! time. Each store writes for a node ([`NodeId`], [`OpenOptions::node`]):
//! sessions and claims record it, and crash recovery touches only its own
//! node's rows.
//!
//! - Sessions ([`Store::create_session`], [`Store::set_state`],
//!   [`Store::append_turns`], [`Store::append_events`],
//!   [`Store::finish_session`], [`Store::list_sessions`],
//!   [`Store::load_session`]).
//! - Campaigns and leads ([`Store::create_campaign`], [`Store::add_leads`],
//!   [`Store::claim_due_leads`], [`Store::record_attempt`],
//!   [`Store::release_lead`], [`Store::import_leads_csv`]); each claim's
//!   [`ClaimToken`] ties the call placed for it to the claim, so a lead is
//!   never dialled twice for one attempt.
//! - Users and API tokens ([`Store::create_user`], [`Store::verify_token`],
//!   [`Store::rotate_token`], [`Store::revoke_user`]),
//!   the do-not-call list ([`Store::add_dnc`], [`Store::is_dnc`]).
//! - Crash recovery ([`Store::recover`], [`Store::reconcile_with`]),
//!   sequenced, idempotent session writes for the agent's journal replay
//!   ([`Store::apply_write`]) and the operator's tools
//!   ([`Store::open_read_only`], [`Store::integrity_problems`],
//!   [`Store::audit_recordings`], [`Store::backup_to`]). Opening a file
//!   that cannot be used fails with [`Error::Unusable`], naming the cause
//!   ([`FileFault`]).
//!
//! ```
//! use callbridge_crm_store::*;
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = Store::open(dir.path().join("crm.sqlite")).unwrap();
//! let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
//! let id = SessionId::new_v4();
//! store.create_session(&NewSession::inbound(id, now)).unwrap();
//! store.set_state(id, SessionState::Active, now).unwrap();
//! store.append_turns(id, &[NewTurn::new(0, Speaker::Caller, "hello", 0)]).unwrap();
//! store.finish_session(id, &Finish::ended(EndReason::CallerHangup, now)).unwrap();
//! let rec = store.load_session(id).unwrap();
//! assert_eq!(rec.session.state, SessionState::Ended);
//! assert_eq!(rec.turns.len(), 1);
//! ```
//!
//! A campaign dialer's loop: claim, call, record the outcome.
//!
//! ```
//! use callbridge_crm_store::*;
//! let mut store = Store::open(":memory:").unwrap();
//! let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
//! let mut settings = CampaignSettings::new("spring", "gemini");
//! settings.max_concurrent = 2;
//! let c = store.create_campaign(&settings, now).unwrap();
//! store.set_campaign_status(c, CampaignStatus::Active, now).unwrap();
//! let csv = "phone,name\n+14155550100,Ada\n+14155550101,Bob\n";
//! store.import_leads_csv(c, csv.as_bytes(), ImportMode::AllOrNothing, now).unwrap();
//! store.recover(now).unwrap(); // on start: release what a dead dialer left
//! for claimed in store.claim_due_leads(c, now, 10).unwrap() {
//!     let id = SessionId::new_v4();
//!     let mut s = NewSession::outbound(id, now);
//!     s.campaign = Some(c);
//!     s.lead = Some(claimed.lead.id);
//!     s.claim = Some(claimed.claim.clone()); // written only while the claim is held
//!     store.create_session(&s).unwrap();
//!     // ... dial claimed.lead.phone.as_str(), run the call ...
//!     store.finish_session(id, &Finish::failed(EndReason::Busy, now)).unwrap();
//!     let next = store.record_attempt(claimed.lead.id, Outcome::Busy, Some(id), now).unwrap();
//!     assert_eq!(next.status, LeadStatus::Retry);
//! }
//! ```
//!
//! # Randomness
//!
//! API tokens ([`ApiToken`]) are secrets and claim tokens ([`ClaimToken`])
//! must be unguessable, so both come from a cryptographically secure
//! generator ([`rand::CryptoRng`]): by default rand's `StdRng` (ChaCha12)
//! seeded from the operating system ([`Error::Entropy`] when it has no
//! random source). The source is injected where tests need to pin it:
//! [`Store::set_rng`] for the claim tokens [`Store::claim_due_leads`]
//! hands out, [`ApiToken::generate_with`] and [`ClaimToken::generate_with`].
//!
//! ```
//! use callbridge_crm_store::ApiToken;
//! use rand::SeedableRng;
//! let a = ApiToken::generate_with(&mut rand::rngs::StdRng::seed_from_u64(1));
//! let b = ApiToken::generate_with(&mut rand::rngs::StdRng::seed_from_u64(1));
//! assert_eq!(a.expose(), b.expose());
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod campaign_lock;
mod campaigns;
mod claim_token;
mod claims;
mod db;
mod diagnose;
mod dialing;
mod dnc;
mod erasure;
mod error;
mod funnel;
mod group;
pub mod import;
mod leads;
mod maintenance;
mod model;
mod node;
mod outbox;
mod outcome;
mod policy;
mod random;
mod recordings;
mod recovery;
pub mod schema;
mod session_types;
mod sessions;
mod store;
mod stored;
mod url;
mod users;
mod validate;
mod writes;

pub use callbridge_files::Access as FileAccess;
pub use campaign_lock::CAMPAIGN_LOCK_CLASS;
pub use campaigns::{Campaign, CampaignSettings};
pub use claim_token::ClaimToken;
pub use claims::{AttemptSession, Claim, MAX_CLAIMS_LISTED};
pub use dnc::DncEntry;
pub use erasure::{DeletedSession, EXPIRE_BATCH, Expired, NumberData, Retention};
pub use error::{DbError, Entity, Error, FileFault, Result, RowError};
pub use group::{GroupError, GroupOp};
pub use import::{ImportMode, ImportReport};
pub use jiff;
pub use leads::{
    AttemptResult, ClaimedLead, Lead, LeadFilter, LeadUpdate, MAX_CLAIM, MAX_FIELDS_JSON, NewLead,
};
pub use maintenance::{BackupReport, MAX_PROBLEMS};
pub use model::{
    AmdVerdict, CampaignId, CampaignStatus, Direction, EndReason, EventKind, LeadId, LeadStatus,
    MachineEnd, Outcome, Party, PersonName, PhoneNumber, Role, Sensitive, SessionId, SessionState,
    Speaker, Transport, UserId,
};
pub use node::{MAX_NODE_ID, NodeId};
pub use outbox::{
    DeliveryStatus, MAX_OUTBOX_CLAIM, MAX_OUTBOX_ERROR, MAX_OUTBOX_FIELD, MAX_OUTBOX_PAYLOAD,
    NewOutbox, OutboxId, OutboxRow,
};
pub use outcome::outcome_of;
pub use policy::{CallingWindow, MAX_RETRY_DELAY, RetryPolicy, Weekdays};
pub use recordings::{
    MAX_DEPTH, MAX_FILES, OrphanRecording, RECORDING_EXTENSIONS, ReconcileReport, RecordingFacts,
};
pub use recovery::RecoveryReport;
pub use session_types::AmdResult;
pub use session_types::{
    Cursor, Event, Finish, FinishResult, NewEvent, NewSession, NewTurn, Session, SessionFilter,
    SessionOrder, SessionPage, SessionRecord, SessionUpdate, TokenSplit, Turn, Usage,
};
pub use sessions::{MAX_BATCH, MAX_PAGE, MAX_SIP_HEADER_LEN, MAX_SIP_HEADERS, MAX_TEXT};
pub use store::{Backend, OpenOptions, Store, WriterId};
pub use url::{PASSWORD_ENV, StoreAt, StoreUrl, mask_password};
pub use users::{ApiToken, MAX_USER_NAME, TokenId, TokenState, User, check_user_name};
pub use writes::{Applied, SessionWrite};
