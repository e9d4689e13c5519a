//! The agent's HTTP API wire types, shared by the `agent` (server) and the
//! `campaign` dialer (client) so the two cannot drift apart.
//!
//! Every error body is [`ErrorBody`]: `{"error": "message"}`. Times are RFC
//! 3339 strings in UTC. Enumerations use the store's kebab-case names
//! (`SessionState::as_str`, `EndReason::as_str`, `Outcome::as_str`).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /api/calls` | [`CallRequest`] | 202 [`CallAccepted`]; 400/401/403/409 (lead busy)/503 (+ `Retry-After`) [`ErrorBody`] |
//! | `GET /api/calls/{id}` | | 200 [`CallStatus`]; 404 |
//! | `DELETE /api/calls/{id}` | | 202 [`CallStatus`] (hang-up requested); 404 |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /api/calls`: place one outbound call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Instructions (system prompt) replacing the agent's for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The greeting the model speaks first, replacing the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// Facts for the model (name, account...), appended to its instructions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// The 202 answer to `POST /api/calls`: the session row exists in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAccepted {
    /// The session id (UUID).
    pub id: String,
    /// Its state, `created`.
    pub state: String,
}

/// `GET /api/calls/{id}`: a call's state and, once it ended, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The campaign, if any.
    pub campaign_id: Option<i64>,
    /// The lead, if any.
    pub lead_id: Option<i64>,
    /// Why it ended (the store's end reason), once terminal.
    pub end_reason: Option<String>,
    /// The final SIP status of a failed outbound call (486, 480...).
    pub sip_status: Option<u16>,
    /// The dialer's view of the result once terminal ([`outcome_of`]).
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
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// The dialer's outcome of a terminal session: how the store's state, end
/// reason and SIP status map onto a lead attempt. `None` while not terminal.
///
/// ```
/// use callbridge::api::outcome_of;
/// use callbridge_crm_store::{EndReason, Outcome, SessionState};
/// assert_eq!(
///     outcome_of(SessionState::Ended, Some(EndReason::CallerHangup), None),
///     Some(Outcome::Completed)
/// );
/// assert_eq!(
///     outcome_of(SessionState::Failed, Some(EndReason::Busy), Some(486)),
///     Some(Outcome::Busy)
/// );
/// assert_eq!(outcome_of(SessionState::Active, None, None), None);
/// ```
pub fn outcome_of(
    state: callbridge_crm_store::SessionState,
    reason: Option<callbridge_crm_store::EndReason>,
    sip_status: Option<u16>,
) -> Option<callbridge_crm_store::Outcome> {
    use callbridge_crm_store::{EndReason as R, Outcome as O, SessionState as S};
    match state {
        S::Ended => Some(match reason {
            // Answered calls the model could not serve count as failed
            // attempts, so the lead is tried again.
            Some(R::ModelFailure | R::Error | R::RtpTimeout) => O::Failed,
            _ => O::Completed,
        }),
        S::Failed => Some(match (reason, sip_status) {
            (Some(R::Busy), _) | (_, Some(486 | 600)) => O::Busy,
            (Some(R::NoAnswer | R::Cancelled), _) | (_, Some(408 | 480 | 487)) => O::NoAnswer,
            _ => O::Failed,
        }),
        S::Interrupted => Some(O::Failed),
        S::Created | S::Ringing | S::Answered | S::Active => None,
    }
}
