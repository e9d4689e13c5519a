//! One claimed lead's attempt: place the call through the agent, follow it
//! until it ends, record the outcome on the lead.
//!
//! The lead is claimed (in progress, attempt counted, a fresh claim token)
//! before the POST, and the agent writes the session row with the lead id
//! before it answers 202, so the store says whether this attempt's call
//! exists: a run killed anywhere here is reconciled by the next one
//! (`reconcile`). When the agent cannot take the call (503, unreachable)
//! the claim is released, which gives the attempt back.
//!
//! "No row yet" is final because the POST carries the claim's token
//! (`CallRequest::claim_token`): the agent's row insert succeeds only while
//! the lead is still claimed under that token, in the same SQLite
//! transaction as the insert, and a release succeeds only while the
//! attempt has no row. So a POST still in flight when its claim is
//! released (this run after an unanswered POST, or the next run after a
//! SIGKILL) can no longer become a call: the agent answers 409 and dials
//! nothing, and a lead is never dialled twice for one attempt. A 409 (lead
//! busy, or claim no longer held) is settled like an unanswered POST: the
//! store decides.

use std::sync::Arc;
use std::time::Duration;

use callbridge_api::CallRequest;
use callbridge_crm_store::outcome_of;
use callbridge_crm_store::{
    AttemptResult, Campaign, ClaimToken, ClaimedLead, Error as StoreError, Lead, LeadId, Outcome,
    SessionId,
};
use jiff::Timestamp;
use tokio::time::Instant;

use super::agents::Agents;
use crate::db::Db;
use crate::error::CampaignError;
use callbridge_api::{AgentClient, PostError};

/// What an attempt's task needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The store.
    pub db: Db,
    /// The agents (`--agent`).
    pub agents: Agents,
    /// The campaign.
    pub campaign: Arc<Campaign>,
    /// How often to ask for a live call's status.
    pub poll: Duration,
    /// How long the agent may be unreachable while following a call.
    pub agent_wait: Duration,
    /// Caller id to present.
    pub from: Option<String>,
    /// Answering-machine detection on each call (`--amd`).
    pub amd: bool,
    /// A voicemail left is a `voicemail` outcome, not done
    /// (`--retry-after-voicemail-left`).
    pub retry_voicemail_left: bool,
}

/// The outcome recorded on the lead: the store's, except that a voicemail
/// left is redialled like a machine when the run says so.
fn lead_outcome(ctx: &Ctx, store: Outcome, end_reason: Option<&str>) -> Outcome {
    voicemail_left_as(ctx.retry_voicemail_left, store, end_reason)
}

/// [`lead_outcome`] given `--retry-after-voicemail-left`.
fn voicemail_left_as(retry: bool, store: Outcome, end_reason: Option<&str>) -> Outcome {
    match (store, end_reason) {
        (Outcome::Completed, Some("voicemail-left")) if retry => Outcome::Voicemail,
        (o, _) => o,
    }
}

/// How an attempt ended, for the run's accounting.
#[derive(Debug)]
pub enum CallEnd {
    /// The call ended and its outcome is recorded on the lead.
    Recorded {
        /// The lead.
        lead: Lead,
        /// The call's session.
        session: SessionId,
        /// The outcome.
        outcome: Outcome,
        /// The lead's new status.
        result: AttemptResult,
        /// Answered talk time.
        duration: Option<Duration>,
    },
    /// The agent could not take the call; the claim was given back
    /// (attempt not counted).
    Released {
        /// The lead.
        lead: Lead,
        /// The agent's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// Why.
        why: String,
    },
    /// The agent refused this lead's call (4xx); recorded as a failed attempt.
    Refused {
        /// The lead.
        lead: Lead,
        /// Why.
        why: String,
    },
    /// The agent cannot be used at all (token refused, no call API at the
    /// address); the claim was given back and the run stops.
    Fatal {
        /// Why.
        why: String,
    },
    /// The agent stopped answering while the call was live; the lead stays
    /// in progress for the next run to reconcile from the store.
    Abandoned {
        /// The lead.
        lead: Lead,
        /// Why.
        why: String,
    },
    /// The store failed; the lead is left as it was.
    Store {
        /// The lead.
        lead: Lead,
        /// The error.
        why: String,
    },
}

fn request(ctx: &Ctx, lead: &Lead, claim: &ClaimToken) -> CallRequest {
    let s = &ctx.campaign.settings;
    let mut metadata = std::collections::BTreeMap::new();
    if let Some(n) = &lead.name {
        metadata.insert("name".to_owned(), n.as_str().to_owned());
    }
    for (k, v) in &lead.fields {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        metadata.insert(k.clone(), v);
    }
    CallRequest {
        to: lead.phone.as_str().to_owned(),
        from: ctx.from.clone(),
        campaign_id: Some(ctx.campaign.id.0),
        lead_id: Some(lead.id.0),
        claim_token: Some(claim.as_str().to_owned()),
        prompt: (!s.system_prompt.is_empty()).then(|| s.system_prompt.clone()),
        greeting: (!s.greeting.is_empty()).then(|| s.greeting.clone()),
        metadata,
        amd: ctx.amd.then_some(true),
        profile: s.profile.clone(),
        headers: std::collections::BTreeMap::new(),
        // The campaign's model settings go with each call; the agent
        // refuses a provider it does not serve.
        provider: Some(s.model_provider.clone()).filter(|p| !p.is_empty()),
        voice: s.voice.clone().filter(|v| !v.is_empty()),
    }
}

/// Gives the claim back; a store failure becomes [`CallEnd::Store`].
async fn release(ctx: &Ctx, lead: Lead, then: CallEnd) -> CallEnd {
    let id = lead.id;
    match ctx
        .db
        .call(move |s| s.release_lead(id, Timestamp::now()))
        .await
    {
        Ok(()) => then,
        Err(e) => CallEnd::Store {
            lead,
            why: format!("releasing the claim: {e}"),
        },
    }
}

/// Records `outcome` for the attempt whose session is `session`.
async fn record(ctx: &Ctx, lead: Lead, session: SessionId, outcome: Outcome) -> CallEnd {
    let id = lead.id;
    let done = ctx
        .db
        .call(move |s| {
            let r = s.record_attempt(id, outcome, Some(session), Timestamp::now())?;
            let d = s.get_session(session)?.duration;
            Ok((r, d))
        })
        .await;
    match done {
        Ok((result, duration)) => CallEnd::Recorded {
            lead,
            session,
            outcome,
            result,
            duration,
        },
        Err(e) => CallEnd::Store {
            lead,
            why: format!("recording the outcome: {e}"),
        },
    }
}

/// What the store says about this attempt's call.
enum InStore {
    /// No session for this attempt.
    None,
    /// A session, still live (its writer still running).
    Live(SessionId),
    /// A session that ended (or whose writer died): its outcome.
    Ended(SessionId, Outcome),
}

async fn in_store(ctx: &Ctx, lead: LeadId) -> Result<InStore, String> {
    let a = ctx
        .db
        .call(move |s| s.attempt_session(lead))
        .await
        .map_err(|e| e.to_string())?;
    Ok(match a {
        None => InStore::None,
        Some(a) => {
            let s = &a.session;
            match outcome_of(s.state, s.end_reason, s.sip_status) {
                Some(o) => {
                    InStore::Ended(s.id, lead_outcome(ctx, o, s.end_reason.map(|r| r.as_str())))
                }
                None if a.writer.as_ref().is_some_and(|w| !w.is_alive()) => {
                    InStore::Ended(s.id, Outcome::Failed)
                }
                None => InStore::Live(s.id),
            }
        }
    })
}

/// Places the call for a claimed lead and follows it to its end.
pub async fn attempt(ctx: Ctx, claimed: ClaimedLead) -> CallEnd {
    let lead = claimed.lead;
    match ctx
        .agents
        .place(&request(&ctx, &lead, &claimed.claim))
        .await
    {
        Ok((agent, acc)) => match acc.id.parse::<SessionId>() {
            Ok(id) => follow(ctx, lead, id, Some(agent)).await,
            Err(_) => {
                let why = format!(
                    "the agent answered a session id that is not a UUID: {}",
                    acc.id
                );
                settle_unknown(ctx, lead, why).await
            }
        },
        Err(PostError::Unavailable {
            retry_after, why, ..
        }) => {
            release(
                &ctx,
                lead.clone(),
                CallEnd::Released {
                    lead,
                    retry_after,
                    why,
                },
            )
            .await
        }
        Err(PostError::NotSent(why)) => {
            let then = CallEnd::Released {
                lead: lead.clone(),
                retry_after: None,
                why: format!("agent unreachable: {why}"),
            };
            release(&ctx, lead, then).await
        }
        Err(PostError::Ambiguous(why)) => settle_unknown(ctx, lead, why).await,
        Err(PostError::Conflict(why)) => settle_unknown(ctx, lead, why).await,
        Err(PostError::Auth(why)) => {
            let why = format!("the agent refused the token ({why}); check --token-env");
            release(&ctx, lead, CallEnd::Fatal { why }).await
        }
        Err(PostError::NoApi(why)) => {
            let why = format!("no call API at {why}; is --agent the agent's HTTP address?");
            release(&ctx, lead, CallEnd::Fatal { why }).await
        }
        Err(PostError::Rejected(why)) => {
            let id = lead.id;
            match ctx
                .db
                .call(move |s| s.record_attempt(id, Outcome::Failed, None, Timestamp::now()))
                .await
            {
                Ok(_) => CallEnd::Refused { lead, why },
                Err(e) => CallEnd::Store {
                    lead,
                    why: format!("recording a refused call: {e}"),
                },
            }
        }
    }
}

/// The POST's fate is unknown (no answer, 409): the store decides. A
/// session for this attempt is followed (or recorded); none means no call,
/// so the claim goes back. The release also revokes the claim token, so
/// the POST cannot become a call afterwards; it is refused if the row
/// landed in between, and then that row decides.
async fn settle_unknown(ctx: Ctx, lead: Lead, why: String) -> CallEnd {
    // The agent writes the row before it answers; give a slow answer a
    // moment to land before concluding there is none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..2 {
        match in_store(&ctx, lead.id).await {
            Ok(InStore::Live(id)) => return follow(ctx, lead, id, None).await,
            Ok(InStore::Ended(id, o)) => return record(&ctx, lead, id, o).await,
            Ok(InStore::None) => {}
            Err(e) => return CallEnd::Store { lead, why: e },
        }
        let id = lead.id;
        match ctx
            .db
            .call(move |s| s.release_lead(id, Timestamp::now()))
            .await
        {
            Ok(()) => {
                return CallEnd::Released {
                    lead,
                    retry_after: None,
                    why,
                };
            }
            // The call's row landed after the read: settle from it.
            Err(CampaignError::Store(StoreError::Conflict { .. })) => {}
            Err(e) => {
                return CallEnd::Store {
                    lead,
                    why: format!("releasing the claim: {e}"),
                };
            }
        }
    }
    CallEnd::Store {
        lead,
        why: "the lead is no longer in progress as this run claimed it".to_owned(),
    }
}

/// Follows a placed call with `GET /api/calls/{id}` until it ends, then
/// records its outcome. `agent` placed the call (when known); the others
/// are asked when it does not know the call. When no agent answers, the
/// store's row decides; after `agent_wait` without either, the lead is
/// left in progress for the next run.
pub async fn follow(ctx: Ctx, lead: Lead, id: SessionId, agent: Option<AgentClient>) -> CallEnd {
    let key = id.to_string();
    let mut trouble_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(ctx.poll).await;
        let problem = match ctx.agents.status(agent.as_ref(), &key).await {
            Ok(Some(st)) if !st.live => match st.outcome.as_deref().map(str::parse::<Outcome>) {
                Some(Ok(o)) => {
                    let o = lead_outcome(&ctx, o, st.end_reason.as_deref());
                    return record(&ctx, lead, id, o).await;
                }
                _ => "the agent reports the call ended without an outcome".to_owned(),
            },
            Ok(Some(_)) => {
                trouble_since = None;
                continue;
            }
            Ok(None) => "no agent knows the call (404)".to_owned(),
            Err(e) => e,
        };
        match in_store(&ctx, lead.id).await {
            Ok(InStore::Ended(sid, o)) if sid == id => return record(&ctx, lead, id, o).await,
            Ok(_) => {}
            Err(e) => return CallEnd::Store { lead, why: e },
        }
        let since = *trouble_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= ctx.agent_wait {
            return CallEnd::Abandoned {
                lead,
                why: format!("call {key}: {problem}"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voicemail_left_is_done_unless_the_run_retries_it() {
        let left = Some("voicemail-left");
        assert_eq!(
            voicemail_left_as(false, Outcome::Completed, left),
            Outcome::Completed
        );
        assert_eq!(
            voicemail_left_as(true, Outcome::Completed, left),
            Outcome::Voicemail
        );
        // A machine hung up on is the store's `voicemail` either way; other
        // ends keep the store's outcome.
        for retry in [false, true] {
            assert_eq!(
                voicemail_left_as(retry, Outcome::Voicemail, Some("answering-machine")),
                Outcome::Voicemail
            );
            assert_eq!(
                voicemail_left_as(retry, Outcome::Completed, Some("caller-hangup")),
                Outcome::Completed
            );
        }
    }
}
