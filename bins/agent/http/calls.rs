//! `POST /api/calls` (place an outbound call), `GET /api/calls/{id}` (its
//! state and outcome) and `DELETE /api/calls/{id}` (hang up). Wire types
//! are `callbridge_api::{CallRequest, CallAccepted, CallStatus}`.
//!
//! A request is checked in this order: role (403), body (415/413/400),
//! numbers (E.164 via `PhoneNumber`, 400), sizes (400), routing (501 when
//! no outbound target is configured), campaign and lead (400 when missing,
//! and the same 400 for a campaign the user does not own or a lead of one);
//! then `Manager::originate` (409 lead
//! busy, 503 + `Retry-After` at capacity, shutting down or when the row
//! cannot be written). `originate` returns once the session row (owner =
//! the caller) is in the store, so the 202 comes after it.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbridge_api::{CallAccepted, CallRequest, CallStatus};
use callbridge_crm_store::outcome_of;
use callbridge_crm_store::{
    CampaignId, ClaimToken, Error as StoreError, LeadId, PhoneNumber, Session, Store,
};
use callbridge_llm_bridge::Greeting;
use callbridge_session::{ManagerError, OriginateRequest};
use callbridge_sip::transport::Transport;
use tracing::info;

use super::auth::{Caller, SessionPath, owns_campaign, visible_session};
use super::error::{ApiError, Json};
use super::pool::store_error;
use super::sessions::{live_ids, ts};
use super::state::Ctx;

/// Longest `prompt`, bytes.
pub const MAX_PROMPT: usize = 32 * 1024;
/// Longest `greeting`, bytes.
pub const MAX_GREETING: usize = 4 * 1024;
/// Most `metadata` entries.
pub const MAX_METADATA: usize = 32;
/// Longest metadata key, bytes.
pub const MAX_METADATA_KEY: usize = 64;
/// Longest metadata value, bytes.
pub const MAX_METADATA_VALUE: usize = 1024;
/// Most `headers` entries.
pub const MAX_HEADERS: usize = 16;
/// `Retry-After` (seconds) of a 503 from `POST /api/calls`.
pub const RETRY_AFTER_S: u64 = 5;

/// A validated call request, before the store checks.
#[derive(Debug)]
struct Dial {
    to: PhoneNumber,
    from: PhoneNumber,
    campaign: Option<CampaignId>,
    lead: Option<LeadId>,
    claim: Option<ClaimToken>,
    /// The campaign's routing profile, once the campaign is read.
    campaign_profile: Option<String>,
}

fn phone(field: &str, v: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(v).map_err(|e| {
        let why = match e {
            StoreError::InvalidInput { reason, .. } => reason,
            _ => "not a phone number",
        };
        ApiError::BadRequest(format!("{field}: not an E.164 number ({why})"))
    })
}

/// Longest `voice`, characters.
pub const MAX_VOICE: usize = 64;

/// `provider` and `voice` against the agent's provider (400 naming the
/// field): a call for another provider is refused, not served by this
/// one's model; the built-in mock serves any.
fn check_model(req: &CallRequest, agent_provider: &str) -> Result<(), ApiError> {
    if let Some(p) = req.provider.as_deref().map(str::trim)
        && agent_provider != "mock"
        && p != agent_provider
    {
        let shown: String = p.chars().take(32).collect();
        return Err(ApiError::BadRequest(format!(
            "provider: this agent serves {agent_provider}, not {shown:?}; send the call to an agent of that provider"
        )));
    }
    if let Some(v) = &req.voice {
        let ok = (1..=MAX_VOICE).contains(&v.chars().count())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "voice: 1 to {MAX_VOICE} letters, digits, '-', '_' or '.' (a voice name of the provider)"
            )));
        }
    }
    Ok(())
}

/// Checks numbers and sizes (400 naming the field).
fn validate(req: &CallRequest, default_from: &str) -> Result<Dial, ApiError> {
    let to = phone("to", &req.to)?;
    let from = phone("from", req.from.as_deref().unwrap_or(default_from))?;
    let too_long =
        |field: &str, max: usize| ApiError::BadRequest(format!("{field}: longer than {max} bytes"));
    if req.prompt.as_ref().is_some_and(|p| p.len() > MAX_PROMPT) {
        return Err(too_long("prompt", MAX_PROMPT));
    }
    if req
        .greeting
        .as_ref()
        .is_some_and(|g| g.len() > MAX_GREETING)
    {
        return Err(too_long("greeting", MAX_GREETING));
    }
    if req.metadata.len() > MAX_METADATA {
        return Err(ApiError::BadRequest(format!(
            "metadata: more than {MAX_METADATA} entries"
        )));
    }
    for (k, v) in &req.metadata {
        if k.is_empty() || k.len() > MAX_METADATA_KEY {
            return Err(ApiError::BadRequest(format!(
                "metadata: keys must be 1 to {MAX_METADATA_KEY} bytes"
            )));
        }
        if v.len() > MAX_METADATA_VALUE {
            return Err(too_long("metadata value", MAX_METADATA_VALUE));
        }
    }
    if req.headers.len() > MAX_HEADERS {
        return Err(ApiError::BadRequest(format!(
            "headers: more than {MAX_HEADERS} entries"
        )));
    }
    for (k, v) in &req.headers {
        if !callbridge_session::profile::is_x_header(k) {
            return Err(ApiError::BadRequest(format!(
                "headers: {k:?} is not an X- header name (X- then letters, digits or -._!%*+`'~, at most 64 bytes)"
            )));
        }
        if !callbridge_session::profile::is_header_value(v) {
            return Err(ApiError::BadRequest(format!(
                "headers: the value of {k} must be at most {} bytes without control characters",
                callbridge_session::profile::MAX_HEADER_VALUE
            )));
        }
    }
    if let Some(p) = &req.profile
        && (p.is_empty() || p.len() > 64)
    {
        return Err(ApiError::BadRequest(
            "profile: a profile name (1 to 64 characters)".into(),
        ));
    }
    let positive = |field: &str, v: Option<i64>| match v {
        Some(n) if n <= 0 => Err(ApiError::BadRequest(format!("{field}: must be positive"))),
        _ => Ok(v),
    };
    let lead = positive("lead_id", req.lead_id)?.map(LeadId);
    let claim = match req.claim_token.as_deref() {
        None => None,
        Some(_) if lead.is_none() => {
            return Err(ApiError::BadRequest(
                "claim_token: needs the lead_id it was claimed for".into(),
            ));
        }
        Some(t) => Some(ClaimToken::parse(t).map_err(|_| {
            ApiError::BadRequest("claim_token: not a claim token (32 hex digits)".into())
        })?),
    };
    Ok(Dial {
        to,
        from,
        campaign: positive("campaign_id", req.campaign_id)?.map(CampaignId),
        lead,
        claim,
        campaign_profile: None,
    })
}

/// The store checks: the campaign and lead exist and agree (the lead's
/// campaign is used when none is given). For a non-admin, a campaign they
/// do not own, and a lead of such a campaign, are answered exactly like
/// ones that do not exist (400), as the session routes answer 404 for
/// sessions the caller may not see: ids of other owners do not leak.
fn check_refs(store: &Store, caller: &Caller, d: &mut Dial) -> Result<(), ApiError> {
    let visible = |c: CampaignId| -> Result<bool, ApiError> {
        Ok(caller.is_admin() || owns_campaign(store, &caller.0, c)?)
    };
    if let Some(l) = d.lead {
        let missing = || ApiError::BadRequest(format!("lead_id: lead {l} does not exist"));
        let lead = match store.get_lead(l) {
            Ok(lead) => lead,
            Err(StoreError::NotFound { .. }) => return Err(missing()),
            Err(e) => return Err(store_error(e)),
        };
        if !visible(lead.campaign)? {
            return Err(missing());
        }
        match d.campaign {
            Some(c) if c != lead.campaign => {
                return Err(ApiError::BadRequest(format!(
                    "lead_id: lead {l} belongs to campaign {}, not {c}",
                    lead.campaign
                )));
            }
            _ => d.campaign = Some(lead.campaign),
        }
    }
    if let Some(c) = d.campaign {
        let missing = || ApiError::BadRequest(format!("campaign_id: campaign {c} does not exist"));
        match store.get_campaign(c) {
            Ok(campaign) => d.campaign_profile = campaign.settings.profile,
            Err(StoreError::NotFound { .. }) => return Err(missing()),
            Err(e) => return Err(store_error(e)),
        }
        if !visible(c)? {
            return Err(missing());
        }
    }
    Ok(())
}

fn manager_error(e: ManagerError, admitting: bool) -> ApiError {
    match e {
        ManagerError::LeadBusy => ApiError::Conflict("a call for this lead is already live".into()),
        ManagerError::ClaimNotHeld => ApiError::Conflict(
            "the lead's claim is no longer held (released or claimed again); nothing was dialled"
                .into(),
        ),
        ManagerError::Unavailable if !admitting => ApiError::Unavailable {
            message: "the agent is shutting down".into(),
            retry_after: Some(RETRY_AFTER_S),
        },
        ManagerError::Unavailable => ApiError::Unavailable {
            message: "the agent is at its call limit".into(),
            retry_after: Some(RETRY_AFTER_S),
        },
        ManagerError::Overloaded => ApiError::Unavailable {
            message: "the agent is overloaded: its media engine cannot take another call on time"
                .into(),
            retry_after: Some(RETRY_AFTER_S),
        },
        ManagerError::Media(callbridge_rtp::Error::OutOfFileDescriptors) => ApiError::Unavailable {
            message: "the agent is out of file descriptors".into(),
            retry_after: Some(RETRY_AFTER_S),
        },
        ManagerError::Media(_) => ApiError::Unavailable {
            message: "no media port is free".into(),
            retry_after: Some(RETRY_AFTER_S),
        },
        ManagerError::BadUri => ApiError::BadRequest("the number does not make a SIP URI".into()),
        ManagerError::UnknownProfile => ApiError::BadRequest(
            "profile: no routing profile of this name takes outbound calls (GET /api/profiles)"
                .into(),
        ),
        ManagerError::Store => ApiError::Unavailable {
            message: "the call could not be written to the store; nothing was dialled".into(),
            retry_after: Some(RETRY_AFTER_S),
        },
        other => ApiError::internal(other),
    }
}

/// `POST /api/calls`. The numbers become `sip:+NUMBER@domain` (the
/// outbound domain, else the target's address; `sips:` over TLS,
/// `;transport=tcp` over TCP); `prompt` replaces the
/// instructions; `greeting` becomes the prompt that makes the model speak
/// first once the callee answers (`Greeting::OnRequest`; without it the
/// configured greeting applies); `metadata` goes to the model as context.
#[utoipa::path(post, path = "/api/calls", tag = "calls",
    description = "Place one outbound call (roles agent-operator and admin).",
    request_body = CallRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The session row exists; the call is being placed", body = CallAccepted),
        (status = 400, description = "A field is invalid (named in the message)", body = callbridge_api::ErrorBody),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "The role may not place calls", body = callbridge_api::ErrorBody),
        (status = 409, description = "The lead is busy, or its claim is no longer held", body = callbridge_api::ErrorBody),
        (status = 413, description = "Body too large", body = callbridge_api::ErrorBody),
        (status = 415, description = "Not application/json", body = callbridge_api::ErrorBody),
        (status = 501, description = "No outbound target configured", body = callbridge_api::ErrorBody),
        (status = 503, description = "At capacity or shutting down (Retry-After)", body = callbridge_api::ErrorBody)))]
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<CallRequest>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_operator()?;
    let Json(req) = body?;
    let out = &ctx.state.outbound;
    let mut dial = validate(&req, &out.from)?;
    check_model(&req, &ctx.state.provider)?;
    let Some(target) = out.target.clone() else {
        return Err(ApiError::NotConfigured(
            "outbound calls are not configured (outbound.target)".into(),
        ));
    };
    let checker = caller.clone();
    dial = ctx
        .pool
        .run(move |s| check_refs(s, &checker, &mut dial).map(|()| dial))
        .await?;
    let domain = out.domain.clone().unwrap_or_else(|| target.to_string());
    let (scheme, param) = match out.transport {
        Transport::Udp => ("sip", ""),
        Transport::Tcp => ("sip", ";transport=tcp"),
        Transport::Tls => ("sips", ""),
    };
    let mut o = OriginateRequest::new(
        format!("{scheme}:{}@{domain}{param}", dial.to.as_str()),
        format!("sip:{}@{domain}", dial.from.as_str()),
        target,
    );
    o.campaign = dial.campaign;
    o.lead = dial.lead;
    o.claim = dial.claim;
    o.owner = Some(caller.0.id);
    o.instructions = req.prompt;
    o.greeting = req.greeting.map(|prompt| Greeting::OnRequest { prompt });
    o.metadata = req.metadata.into_iter().collect();
    // The request's profile, else its campaign's (issue 23).
    o.profile = req.profile.or(dial.campaign_profile.take());
    o.amd = req.amd;
    o.headers = req.headers.into_iter().collect();
    o.voice = req.voice;
    let manager = &ctx.state.manager;
    let id = match manager.originate(o).await {
        Ok(id) => id,
        Err(e) => return Err(manager_error(e, manager.snapshot().admitting)),
    };
    info!(session = %id, user = caller.0.id.0, to = %dial.to, "outbound call requested");
    let mut res = (
        StatusCode::ACCEPTED,
        Json(CallAccepted {
            id: id.to_string(),
            state: "created".into(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/calls/{id}")) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// The API view of a call.
pub fn status(s: &Session, live: bool) -> CallStatus {
    CallStatus {
        id: s.id.to_string(),
        state: s.state.as_str().into(),
        live,
        direction: s.direction.as_str().into(),
        transport: Some(s.transport.as_str().into()),
        campaign_id: s.campaign.map(|c| c.0),
        lead_id: s.lead.map(|l| l.0),
        end_reason: s.end_reason.map(|r| r.as_str().into()),
        sip_status: s.sip_status,
        outcome: outcome_of(s.state, s.end_reason, s.sip_status).map(|o| o.as_str().into()),
        created_at: ts(s.created_at),
        answered_at: s.answered_at.map(ts),
        ended_at: s.ended_at.map(ts),
        duration_ms: s
            .duration
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// `GET /api/calls/{id}`.
#[utoipa::path(get, path = "/api/calls/{id}", tag = "calls",
    description = "A call's state and, once it ended, its outcome.",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The call", body = CallStatus),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, or not visible to the caller", body = callbridge_api::ErrorBody)))]
pub async fn get(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    SessionPath(id): SessionPath,
) -> Result<Json<CallStatus>, ApiError> {
    let s = ctx
        .pool
        .run(move |st| visible_session(st, &caller, id))
        .await?;
    Ok(Json(status(&s, live_ids(&ctx).contains(&id))))
}

/// `DELETE /api/calls/{id}`: asks the call to hang up (`agent-hangup`);
/// 202 with its status; 409 naming its state when it had already ended.
#[utoipa::path(delete, path = "/api/calls/{id}", tag = "calls",
    description = "Ask a live call to hang up (roles agent-operator and admin).",
    params(("id" = String, Path, description = "The session id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Hang-up requested", body = CallStatus),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "The role may not hang up calls", body = callbridge_api::ErrorBody),
        (status = 404, description = "No such call, or not visible to the caller", body = callbridge_api::ErrorBody),
        (status = 409, description = "The call has already ended (the message names its state)", body = callbridge_api::ErrorBody)))]
pub async fn hangup(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    path: Result<SessionPath, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_operator()?;
    let SessionPath(id) = path?;
    let s = ctx
        .pool
        .run(move |st| visible_session(st, &caller, id))
        .await?;
    match ctx.state.manager.hangup(id).await {
        Ok(()) => info!(session = %id, "hang-up requested"),
        Err(ManagerError::UnknownSession) if s.state.is_terminal() => {
            return Err(ApiError::Conflict(format!(
                "the call has already ended (state {}{})",
                s.state.as_str(),
                s.end_reason
                    .map(|r| format!(", end reason {}", r.as_str()))
                    .unwrap_or_default()
            )));
        }
        // Not live here and not yet ended in the store: it is ending.
        Err(ManagerError::UnknownSession) => {}
        Err(e) => return Err(ApiError::internal(e)),
    }
    let live = live_ids(&ctx).contains(&id);
    Ok((StatusCode::ACCEPTED, Json(status(&s, live))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(to: &str) -> CallRequest {
        CallRequest {
            to: to.into(),
            ..CallRequest::default()
        }
    }

    #[test]
    fn numbers_must_be_e164_and_separators_are_dropped() {
        let d = validate(&req("+1 (415) 555-0100"), "+15550100000").unwrap();
        assert_eq!(d.to.as_str(), "+14155550100");
        assert_eq!(d.from.as_str(), "+15550100000");
        for bad in ["4155550100", "+0123456789", "+1", "+1415555x100", ""] {
            let e = validate(&req(bad), "+15550100000").unwrap_err();
            assert!(
                e.to_string().starts_with("to: not an E.164 number"),
                "{bad}: {e}"
            );
        }
        let mut r = req("+14155550100");
        r.from = Some("0800 123".into());
        assert!(
            validate(&r, "+15550100000")
                .unwrap_err()
                .to_string()
                .starts_with("from:")
        );
    }

    #[test]
    fn provider_must_be_the_agents_and_voice_a_plain_name() {
        let mut r = req("+14155550100");
        r.provider = Some("openai".into());
        let e = check_model(&r, "gemini").unwrap_err().to_string();
        assert!(e.starts_with("provider: this agent serves gemini"), "{e}");
        assert!(check_model(&r, "openai").is_ok());
        assert!(check_model(&r, "mock").is_ok(), "the mock serves any");
        r.provider = None;
        for good in ["Puck", "alloy", "en-US-Neural2.C"] {
            r.voice = Some(good.into());
            assert!(check_model(&r, "gemini").is_ok(), "{good}");
        }
        for bad in ["", "a b", "x\n", &"v".repeat(MAX_VOICE + 1)] {
            r.voice = Some(bad.to_owned());
            let e = check_model(&r, "gemini").unwrap_err().to_string();
            assert!(e.starts_with("voice:"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let mut r = req("+14155550100");
        r.prompt = Some("x".repeat(MAX_PROMPT + 1));
        assert!(
            validate(&r, "+15550100000")
                .unwrap_err()
                .to_string()
                .starts_with("prompt")
        );
        let mut r = req("+14155550100");
        r.greeting = Some("x".repeat(MAX_GREETING + 1));
        assert!(validate(&r, "+15550100000").is_err());
        let mut r = req("+14155550100");
        r.metadata = (0..=MAX_METADATA)
            .map(|i| (i.to_string(), "v".into()))
            .collect();
        assert!(validate(&r, "+15550100000").is_err());
        let mut r = req("+14155550100");
        r.metadata
            .insert("k".into(), "v".repeat(MAX_METADATA_VALUE + 1));
        assert!(validate(&r, "+15550100000").is_err());
        let mut r = req("+14155550100");
        r.metadata.insert(String::new(), "v".into());
        assert!(validate(&r, "+15550100000").is_err());
        let mut r = req("+14155550100");
        r.campaign_id = Some(0);
        assert!(validate(&r, "+15550100000").is_err());
    }

    #[test]
    fn a_claim_token_must_be_32_hex_digits_and_come_with_its_lead() {
        let token = ClaimToken::generate().unwrap();
        let mut r = req("+14155550100");
        r.claim_token = Some(token.as_str().into());
        let e = validate(&r, "+15550100000").unwrap_err().to_string();
        assert!(e.contains("needs the lead_id"), "{e}");
        r.lead_id = Some(7);
        assert_eq!(validate(&r, "+15550100000").unwrap().claim, Some(token));
        r.claim_token = Some("not-a-token".into());
        let e = validate(&r, "+15550100000").unwrap_err().to_string();
        assert!(e.starts_with("claim_token"), "{e}");
    }
}
