//! The data types of call sessions: what the agent writes at call start
//! ([`NewSession`]), updates ([`SessionUpdate`], [`Finish`]), turns and
//! events to append, what a read returns ([`Session`], [`SessionRecord`]),
//! and the list filter and keyset cursor.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use crate::claim_token::ClaimToken;
use crate::error::{Error, Result};
use crate::model::{
    AmdVerdict, CampaignId, Direction, EndReason, EventKind, LeadId, MachineEnd, Party, Sensitive,
    SessionId, SessionState, Speaker, Transport, UserId,
};

/// A session to create at call start.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The id the agent uses everywhere for this call.
    pub id: SessionId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// How the call's media comes in; [`Transport::Sip`] unless set.
    pub transport: Transport,
    /// The campaign, for campaign calls.
    pub campaign: Option<CampaignId>,
    /// The lead, for campaign calls.
    pub lead: Option<LeadId>,
    /// The claim of `lead` this call is placed for: when set, the row is
    /// written only while the lead is still claimed under this token
    /// ([`Error::ClaimNotHeld`] otherwise; see `Store::claim_due_leads`).
    pub claim: Option<ClaimToken>,
    /// The user the call belongs to.
    pub owner: Option<UserId>,
    /// The calling party.
    pub from: Option<Party>,
    /// The called party.
    pub to: Option<Party>,
    /// The SIP Call-ID, once known.
    pub sip_call_id: Option<String>,
    /// Initial state: `created` or `ringing` (never terminal).
    pub state: SessionState,
    /// Model provider (`gemini`, `openai`...).
    pub model_provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// When the call started.
    pub created_at: Timestamp,
    /// The call's recording file, when it is being recorded: linked with
    /// the row, so a process killed mid-call leaves it linked.
    pub recording: Option<PathBuf>,
    /// The routing profile the call took (issue 23).
    pub profile: Option<String>,
    /// The SIP headers kept from the INVITE (`sip.keep_headers`) or set
    /// on it (`POST /api/calls` `headers`), by name (at most
    /// [`MAX_SIP_HEADERS`](crate::MAX_SIP_HEADERS)).
    pub sip_headers: Vec<(String, String)>,
}

impl NewSession {
    fn with(id: SessionId, direction: Direction, now: Timestamp) -> Self {
        NewSession {
            id,
            direction,
            transport: Transport::Sip,
            campaign: None,
            lead: None,
            claim: None,
            owner: None,
            from: None,
            to: None,
            sip_call_id: None,
            state: SessionState::Created,
            model_provider: None,
            model: None,
            created_at: now,
            recording: None,
            profile: None,
            sip_headers: Vec::new(),
        }
    }
    /// An inbound SIP session in state `created`, other fields empty.
    pub fn inbound(id: SessionId, now: Timestamp) -> Self {
        Self::with(id, Direction::Inbound, now)
    }
    /// An outbound SIP session in state `created`, other fields empty.
    pub fn outbound(id: SessionId, now: Timestamp) -> Self {
        Self::with(id, Direction::Outbound, now)
    }
}

/// Token and audio usage reported by the model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Audio streamed, in milliseconds.
    pub audio_ms: Option<u64>,
    /// The tokens by modality, when the provider reported them split
    /// (schema v14; `None` where it did not, and for rows before v14).
    pub split: Option<TokenSplit>,
    /// Input tokens of the post-call summary (its own text API and
    /// model, not in `input_tokens`; schema v14).
    pub summary_input_tokens: Option<u64>,
    /// Output tokens of the post-call summary (schema v14).
    pub summary_output_tokens: Option<u64>,
}

/// Tokens by modality, input and output, as the provider split them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenSplit {
    /// Input audio tokens.
    pub input_audio: u64,
    /// Input text tokens.
    pub input_text: u64,
    /// Output audio tokens.
    pub output_audio: u64,
    /// Output text tokens.
    pub output_text: u64,
}

/// Fields set on a live or ended session; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct SessionUpdate {
    /// The SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Recording file path and size in bytes.
    pub recording: Option<(PathBuf, u64)>,
    /// Call summary.
    pub summary: Option<Sensitive>,
    /// Model usage.
    pub usage: Option<Usage>,
    // --- issue 19 (amd) ---
    /// The answering-machine detection's first verdict and when it was
    /// given (from the answer).
    pub amd_verdict: Option<(AmdVerdict, Duration)>,
    /// How the machine's greeting ended.
    pub amd_machine_end: Option<MachineEnd>,
    // --- end issue 19 (amd) ---
}

// --- issue 19 (amd) ---
/// The answering-machine detection's result on a session (outbound calls
/// with detection on; schema v12). The events keep the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdResult {
    /// The first verdict.
    pub verdict: AmdVerdict,
    /// When it was given, from the answer.
    pub decided: Duration,
    /// How the machine's greeting ended (after [`AmdVerdict::Machine`],
    /// once it has).
    pub machine_end: Option<MachineEnd>,
}
// --- end issue 19 (amd) ---

/// How a session ends.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    /// `ended` or `failed`.
    pub state: SessionState,
    /// Why.
    pub reason: EndReason,
    /// The SIP final status code, if one was sent or received.
    pub sip_status: Option<u16>,
    /// When.
    pub at: Timestamp,
}

impl Finish {
    /// A normal end (`ended`) for `reason`.
    pub fn ended(reason: EndReason, at: Timestamp) -> Self {
        Finish {
            state: SessionState::Ended,
            reason,
            sip_status: None,
            at,
        }
    }
    /// A failed call (`failed`) for `reason`.
    pub fn failed(reason: EndReason, at: Timestamp) -> Self {
        Finish {
            state: SessionState::Failed,
            reason,
            sip_status: None,
            at,
        }
    }
}

/// What [`Store::finish_session`](crate::Store::finish_session) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishResult {
    /// This call ended the session.
    Finished,
    /// The session had already ended; the first end is kept.
    AlreadyFinished {
        /// The stored terminal state.
        state: SessionState,
        /// The stored end reason.
        reason: Option<EndReason>,
    },
}

/// A stored call session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Inbound, outbound or unknown.
    pub direction: Direction,
    /// SIP, a carrier's WebSocket, or unknown.
    pub transport: Transport,
    /// Campaign, if any.
    pub campaign: Option<CampaignId>,
    /// Lead, if any.
    pub lead: Option<LeadId>,
    /// Owner, if any.
    pub owner: Option<UserId>,
    /// Calling party.
    pub from: Option<Party>,
    /// Called party.
    pub to: Option<Party>,
    /// SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// Current state.
    pub state: SessionState,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// SIP final status code.
    pub sip_status: Option<u16>,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// When the call started.
    pub created_at: Timestamp,
    /// When it was answered.
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Talk time: from answer to end (`None` if never answered).
    pub duration: Option<Duration>,
    /// Recording file.
    pub recording_path: Option<PathBuf>,
    /// Recording size in bytes.
    pub recording_bytes: Option<u64>,
    /// Summary.
    pub summary: Option<Sensitive>,
    /// Model usage.
    pub usage: Usage,
    /// The node (agent machine) that handled the call; `None` for rows
    /// written before nodes were recorded, or rebuilt from an orphan
    /// recording.
    pub node: Option<crate::NodeId>,
    /// The routing profile the call took; `None` for rows written before
    /// profiles (issue 23).
    pub profile: Option<String>,
    /// The SIP headers kept on the call.
    pub sip_headers: Vec<(String, String)>,
    /// The answering-machine detection's verdict (issue 19); `None` when
    /// the call ran none, has none yet, or was written before schema v12
    /// (its events still hold it).
    pub amd: Option<AmdResult>,
}

/// A transcript turn to append.
#[derive(Debug, Clone)]
pub struct NewTurn {
    /// Sequence number, unique within the session.
    pub seq: u32,
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said.
    pub text: Sensitive,
    /// Start, milliseconds from the call start.
    pub start_ms: u64,
    /// End, milliseconds from the call start.
    pub end_ms: Option<u64>,
}

impl NewTurn {
    /// A turn with no end offset.
    pub fn new(seq: u32, speaker: Speaker, text: impl Into<String>, start_ms: u64) -> Self {
        NewTurn {
            seq,
            speaker,
            text: Sensitive::new(text),
            start_ms,
            end_ms: None,
        }
    }
}

/// A stored transcript turn (same fields as [`NewTurn`]).
pub type Turn = NewTurn;

/// An audit event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// What kind.
    pub kind: EventKind,
    /// Details as JSON (keep personal data out).
    pub detail: serde_json::Value,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Row id (increasing in insertion order).
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// What kind.
    pub kind: EventKind,
    /// Details.
    pub detail: serde_json::Value,
}

/// One session with its transcript (by sequence) and events (by insertion).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The session row.
    pub session: Session,
    /// Its transcript.
    pub turns: Vec<Turn>,
    /// Its events.
    pub events: Vec<Event>,
}

/// Which sessions to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// State.
    pub state: Option<SessionState>,
    /// Direction.
    pub direction: Option<Direction>,
    /// Media transport.
    pub transport: Option<Transport>,
    /// Campaign.
    pub campaign: Option<CampaignId>,
    /// Owner.
    pub owner: Option<UserId>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// End reason.
    pub end_reason: Option<EndReason>,
    /// Either party is exactly this (the caller or the callee, as stored).
    pub number: Option<String>,
    /// The answering-machine detection's first verdict (issue 19).
    pub amd: Option<AmdVerdict>,
    /// The order of the listing (and of its pages).
    pub order: SessionOrder,
}

/// The order a session listing runs in, across pages (keyset paging: each
/// order has its own cursor).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SessionOrder {
    /// Newest first (by creation time).
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Longest first (by duration; calls without one, still live or never
    /// answered, last).
    Longest,
}

impl SessionOrder {
    /// Every order, in the order a user picks from.
    pub const ALL: [SessionOrder; 3] = [Self::Newest, Self::Oldest, Self::Longest];

    /// The name used in URLs and the API (`newest`, `oldest`, `longest`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Oldest => "oldest",
            Self::Longest => "longest",
        }
    }

    /// The cursor's prefix: none for newest first, so cursors made before
    /// orders existed still parse.
    fn prefix(self) -> &'static str {
        match self {
            Self::Newest => "",
            Self::Oldest => "o",
            Self::Longest => "l",
        }
    }
}

impl std::str::FromStr for SessionOrder {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or(Error::InvalidInput {
                field: "order",
                reason: "expected newest, oldest or longest",
            })
    }
}

/// Where the next page starts (keyset paging in one [`SessionOrder`]). Its
/// `Display` form can travel in a URL and be parsed back; a cursor only
/// continues a listing in the order that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) order: SessionOrder,
    /// The sort key of the last row: creation time (ms) or duration (ms,
    /// -1 for none).
    pub(crate) key: i64,
    pub(crate) id: SessionId,
}

impl Cursor {
    /// The cursor that continues a listing in `order` after `s` (for a
    /// caller that merges several listings, as the API does for a
    /// non-admin user).
    pub fn after(order: SessionOrder, s: &Session) -> Cursor {
        Cursor {
            order,
            key: order.key(s),
            id: s.id,
        }
    }
}

impl SessionOrder {
    /// `s`'s sort key in this order (creation ms, or duration ms with -1
    /// for none).
    fn key(self, s: &Session) -> i64 {
        match self {
            Self::Newest | Self::Oldest => s.created_at.as_millisecond(),
            Self::Longest => s
                .duration
                .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// How `a` and `b` compare in this order (`Less`: `a` comes first),
    /// ties broken by id as the store does.
    pub fn compare(self, a: &Session, b: &Session) -> std::cmp::Ordering {
        let asc = (self.key(a), a.id).cmp(&(self.key(b), b.id));
        match self {
            Self::Oldest => asc,
            Self::Newest | Self::Longest => asc.reverse(),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}_{}", self.order.prefix(), self.key, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput {
            field: "cursor",
            reason: "malformed",
        };
        let (order, rest) = match s.as_bytes().first() {
            Some(b'o') => (SessionOrder::Oldest, &s[1..]),
            Some(b'l') => (SessionOrder::Longest, &s[1..]),
            _ => (SessionOrder::Newest, s),
        };
        let (a, b) = rest.split_once('_').ok_or_else(bad)?;
        Ok(Cursor {
            order,
            key: a.parse().map_err(|_| bad())?,
            id: b.parse()?,
        })
    }
}

/// One page of sessions, in the filter's order.
#[derive(Debug, Clone)]
pub struct SessionPage {
    /// The sessions.
    pub items: Vec<Session>,
    /// Pass to the next call for the following page; `None` at the end.
    pub next: Option<Cursor>,
}
