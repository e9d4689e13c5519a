//! The agent's HTTP API wire types, shared by the `agent` (server) and the
//! `campaign` dialer (client) so the two cannot drift apart.
//!
//! Every error body is [`ErrorBody`]: `{"error": "message"}`. Times are RFC
//! 3339 strings in UTC with milliseconds (`2026-12-06T08:00:00.000Z`).
//! The agent describes all of this in OpenAPI 3.1 at `GET /openapi.json`.
//! Enumerations use the store's kebab-case names
//! (`SessionState::as_str`, `EndReason::as_str`, `Outcome::as_str`,
//! `Transport::as_str`).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /api/calls` | [`CallRequest`] | 202 [`CallAccepted`]; 400/401/403/409 (lead busy, or its claim no longer held)/503 (+ `Retry-After`) [`ErrorBody`] |
//! | `GET /api/calls/{id}` | | 200 [`CallStatus`]; 404 |
//! | `DELETE /api/calls/{id}` | | 202 [`CallStatus`] (hang-up requested); 409 (already ended, the body names its state); 404 |
//! | `GET /api/health` (no auth) | | 200 [`Health`] |
//! | `GET /api/sessions?state=&direction=&transport=&campaign_id=&since=&until=&number=&order=&limit=&cursor=` | | 200 [`SessionList`]; 400 |
//! | `GET /api/sessions/{id}` | | 200 [`SessionDetail`]; 404 |
//! | `DELETE /api/sessions/{id}` (admin) | | 204 (row, transcript, events and recording erased); 403; 404; 409 (live) |
//! | `GET /openapi.json` (no auth) | | 200 the OpenAPI 3.1 description |
//! | `GET /api/sessions/{id}/recording` | | 200/206 `audio/wav` (`Range: bytes=`); 404; 416 |
//!
//! Every endpoint but health takes `Authorization: Bearer cbt_...`: 401
//! without a valid token, 403 for a role that may not do this, 404 for a
//! session the user may not see (so ids do not leak).
//!
//! Fields are only added, never renamed or removed. `transport` (`sip`,
//! `twilio`, `vonage`, `unknown`: how the call's media came in), added
//! after the first release, is `#[serde(default)]`, so a client still
//! reads an older agent's answers (it is then `null`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /api/calls`: place one outbound call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The number to call, E.164 (`+4930123456`).
    pub to: String,
    /// The caller id to present, E.164; the agent's `outbound.from` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The campaign this call belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<i64>,
    /// The lead this call is for; a second live call for one lead is refused (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<i64>,
    /// The dialer's claim of `lead_id` this call belongs to (the store's
    /// `ClaimToken`, 32 hex digits; needs `lead_id`). The agent writes the
    /// call's session row, and so dials, only while the store still holds
    /// the lead claimed under this token, checked atomically with the
    /// insert; otherwise nothing is dialled and the answer is 409 ("the
    /// lead's claim is no longer held"). Without it the call is placed as
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<String>,
    /// Instructions (system prompt) replacing the agent's for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The greeting the model speaks first, replacing the agent's: the
    /// prompt that makes the model speak once the callee answers (like
    /// `model.greeting` in the agent's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// Facts for the model (name, account...), appended to its instructions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Answering-machine detection (issue 19): nothing the model says
    /// reaches the callee until the agent decides a person answered; a
    /// machine gets the agent's machine policy (`[amd] machine_policy`:
    /// hang up, or leave a voicemail). Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd: Option<bool>,
    /// The agent's routing profile for this call (issue 23; its prompt,
    /// greeting, voice, tools, transfer targets and AMD default); absent:
    /// the default profile. An unknown name, or a profile that takes no
    /// outbound calls, is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// SIP headers set on the outbound INVITE: names are `X-` tokens,
    /// values at most 256 bytes without control characters (400
    /// otherwise); at most 16.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The model provider this call is meant for (`gemini`, `openai`,
    /// `gpt-live`): an agent serves one provider and refuses (400) a call
    /// for another rather than silently using its own; an agent running
    /// the built-in `mock` accepts any. Absent: the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model voice for this call (the provider's voice name, such as
    /// `Puck` or `alloy`: 1 to 64 letters, digits, `-`, `_`, `.`),
    /// replacing the agent's `model.voice`. Absent: the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
}

/// The 202 answer to `POST /api/calls`: the session row exists in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallAccepted {
    /// The session id (UUID).
    pub id: String,
    /// Its state, `created`.
    pub state: String,
}

/// `GET /api/calls/{id}`: a call's state and, once it ended, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallStatus {
    /// The session id (UUID).
    pub id: String,
    /// The store's session state (`created`, `ringing`, `answered`, `active`,
    /// `ended`, `failed`, `interrupted`).
    pub state: String,
    /// Whether the call is still live in the agent.
    pub live: bool,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// How the call's media came in: `sip`, `twilio`, `vonage` or
    /// `unknown` (the store's transport). Always set by this agent; `None`
    /// only in an answer from an agent older than the field.
    #[serde(default)]
    pub transport: Option<String>,
    /// The campaign, if any.
    pub campaign_id: Option<i64>,
    /// The lead, if any.
    pub lead_id: Option<i64>,
    /// Why it ended (the store's end reason), once terminal.
    pub end_reason: Option<String>,
    /// The final SIP status of a failed outbound call (486, 480...).
    pub sip_status: Option<u16>,
    /// The dialer's view of the result once terminal (the store's
    /// `outcome_of`).
    pub outcome: Option<String>,
    /// When the session row was created.
    pub created_at: String,
    /// When it was answered.
    pub answered_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Answered duration in milliseconds.
    pub duration_ms: Option<u64>,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// `GET /api/health` (no auth): the agent's state for monitoring, counts
/// only (the live session ids are behind auth, [`LiveSessions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` while the agent admits calls and the store answers; `draining`
    /// once a shutdown stopped admission; `degraded` when the store failed
    /// its check.
    pub status: String,
    /// The agent's version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Live calls.
    pub active_sessions: usize,
    /// Whether new calls are admitted (false while shutting down).
    pub admitting: bool,
    /// The model provider as last seen.
    pub model: ModelHealth,
    /// Whether the store answered a trivial query just now.
    pub store_ok: bool,
}

/// `GET /api/live` (any role): the live calls the caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiveSessions {
    /// Their session ids (UUIDs).
    pub active_ids: Vec<String>,
}

/// `GET /readyz` (no auth): whether the agent takes new calls (200) or not
/// (503), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// Every condition below holds.
    pub ready: bool,
    /// Calls are admitted (false while draining for a shutdown).
    pub admitting: bool,
    /// Every call slot (`calls.max_concurrent`) is taken.
    pub at_capacity: bool,
    /// The store accepts writes.
    pub store_writable: bool,
}

/// The model provider's reachability in [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelHealth {
    /// `gemini`, `openai` or `mock`.
    pub provider: String,
    /// Whether the provider answered when last checked; `null` when the
    /// agent has no check result.
    pub reachable: Option<bool>,
    /// When it was last checked (RFC 3339), if ever.
    pub last_checked: Option<String>,
}

/// `GET /api/sessions`: one page of sessions, newest first unless `order`
/// says `oldest` or `longest` (the cursor continues in that order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    /// The sessions on this page.
    pub sessions: Vec<SessionView>,
    /// Pass as `cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One session row as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    /// The session id (UUID).
    pub id: String,
    /// `inbound`, `outbound` or `unknown`.
    pub direction: String,
    /// How the call's media came in: `sip`, `twilio`, `vonage` or
    /// `unknown` (filter with `transport=`). Always set by this agent;
    /// `None` only in an answer from an agent older than the field.
    #[serde(default)]
    pub transport: Option<String>,
    /// The store's session state.
    pub state: String,
    /// Whether the call is live in this agent now.
    pub live: bool,
    /// Why it ended, once terminal.
    pub end_reason: Option<String>,
    /// The final SIP status, if any.
    pub sip_status: Option<u16>,
    /// The campaign, if any.
    pub campaign_id: Option<i64>,
    /// The lead, if any.
    pub lead_id: Option<i64>,
    /// The user the call belongs to, if any.
    pub owner_id: Option<i64>,
    /// The calling party (E.164 or SIP user part).
    pub from: Option<String>,
    /// The called party.
    pub to: Option<String>,
    /// The SIP Call-ID; for a carrier call `<carrier>:<call id>`
    /// (`twilio:CA...`, `vonage:<uuid>`).
    pub sip_call_id: Option<String>,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// When the call started.
    pub created_at: String,
    /// When it was answered.
    pub answered_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Answered duration in milliseconds.
    pub duration_ms: Option<u64>,
    /// The recording's size in bytes, when there is one (fetch it from
    /// `GET /api/sessions/{id}/recording`).
    pub recording_bytes: Option<u64>,
    /// The post-call summary.
    pub summary: Option<String>,
    /// Model input tokens: the realtime model's, or for GPT-Live (which
    /// bills audio time) those of the text model it delegated to.
    pub input_tokens: Option<u64>,
    /// Model output tokens (see `input_tokens`).
    pub output_tokens: Option<u64>,
    /// Audio streamed to the model, in milliseconds.
    pub audio_ms: Option<u64>,
    /// Of `input_tokens`, the audio ones, when the provider reported
    /// the audio/text split for every response of the call (Gemini,
    /// OpenAI Realtime); `null` where it did not (GPT-Live, the mock
    /// when it reports none) and for calls stored before the split.
    #[serde(default)]
    pub input_audio_tokens: Option<u64>,
    /// Of `input_tokens`, the text ones (see `input_audio_tokens`).
    #[serde(default)]
    pub input_text_tokens: Option<u64>,
    /// Of `output_tokens`, the audio ones (see `input_audio_tokens`).
    #[serde(default)]
    pub output_audio_tokens: Option<u64>,
    /// Of `output_tokens`, the text ones (see `input_audio_tokens`).
    #[serde(default)]
    pub output_text_tokens: Option<u64>,
    /// Input tokens of the post-call summary: its own text API and
    /// model, not counted in `input_tokens`; `null` without a summary or
    /// where the API reported no usage.
    #[serde(default)]
    pub summary_input_tokens: Option<u64>,
    /// Output tokens of the post-call summary (see
    /// `summary_input_tokens`).
    #[serde(default)]
    pub summary_output_tokens: Option<u64>,
    /// The routing profile the call took (issue 23); absent for calls
    /// from before profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The SIP headers kept from the INVITE (`sip.keep_headers`) or set
    /// on it (`POST /api/calls` `headers`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sip_headers: BTreeMap<String, String>,
    // --- issue 19 (amd) ---
    /// The answering-machine detection's first verdict: `human`,
    /// `machine`, `no_speech`, `unreachable` or `unknown` (filter with
    /// `amd=`). Absent when the call ran no detection or has no verdict
    /// yet (and for calls stored before the column: their events hold
    /// it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd: Option<String>,
    /// When the verdict was given, in milliseconds from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd_decided_ms: Option<u64>,
    /// How a machine's greeting ended: `beep`, `silence` or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd_machine_end: Option<String>,
    // --- end issue 19 (amd) ---
}

/// `GET /api/sessions/{id}`: the session, its transcript and its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionDetail {
    /// The session row.
    pub session: SessionView,
    /// Transcript turns by sequence number.
    pub transcript: Vec<TurnView>,
    /// Call events in the order they were written.
    pub events: Vec<EventView>,
}

/// One transcript turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnView {
    /// Sequence number within the session.
    pub seq: u32,
    /// `caller` or `agent`.
    pub speaker: String,
    /// What was said.
    pub text: String,
    /// Start, milliseconds from the call start.
    pub start_ms: u64,
    /// End, milliseconds from the call start.
    pub end_ms: Option<u64>,
}

/// One call event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// When it happened (RFC 3339).
    pub at: String,
    /// The store's event kind.
    pub kind: String,
    /// Details (JSON, no personal data).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GET /api/calls/{id}` answer as an agent before `transport`
    /// wrote it.
    const OLD_CALL_STATUS: &str = r#"{"id":"6c1f8d2e-8a52-4b1e-9d0c-2f3b4a5c6d7e",
        "state":"ended","live":false,"direction":"inbound","campaign_id":null,
        "lead_id":null,"end_reason":"caller-hangup","sip_status":null,
        "outcome":"completed","created_at":"2026-11-22T08:00:00Z",
        "answered_at":"2026-11-22T08:00:01Z","ended_at":"2026-11-22T08:01:00Z",
        "duration_ms":59000}"#;

    #[test]
    fn an_older_agents_call_status_without_transport_still_parses() {
        let s: CallStatus = serde_json::from_str(OLD_CALL_STATUS).unwrap();
        assert_eq!(s.transport, None);
        assert_eq!(s.direction, "inbound");
    }

    #[test]
    fn transport_goes_on_the_wire_and_back() {
        let mut s: CallStatus = serde_json::from_str(OLD_CALL_STATUS).unwrap();
        s.transport = Some("twilio".into());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["transport"], "twilio");
        assert_eq!(serde_json::from_value::<CallStatus>(v).unwrap(), s);
    }
}
