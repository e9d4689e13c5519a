//! Per-call media stream tokens: what binds a carrier's media WebSocket to
//! the signed webhook that announced its call.
//!
//! The answer to a signed webhook (Twilio's TwiML, Vonage's NCCO) carries
//! a random token issued for that call's id (Twilio `CallSid`, Vonage
//! `uuid`) together with the caller and callee the webhook named. The
//! stream must present it (Twilio in its `start`'s custom parameters,
//! Vonage in the WebSocket URI, checked before the upgrade) for the same
//! call id:
//!
//! - a token is single-use: redeeming it spends the call id;
//! - a token expires [`DEFAULT_TTL`] after it was issued if it was not
//!   used (a carrier connects within a second or two);
//! - a spent call id gets no new token for [`SPENT_TTL`], so the replay
//!   of a webhook (Twilio's signatures carry no timestamp) cannot start
//!   the call again; while the call is live the session registry refuses
//!   a second stream as well;
//! - re-announcing a call whose token is pending returns the same token
//!   (a carrier retrying the webhook), never a second one;
//! - the caller and callee come from the webhook, through the token, not
//!   from the stream's own (unsigned) metadata.
//!
//! Bounded: at most [`MAX_PENDING`] unused tokens (a new call is refused
//! when they are all live: the carrier retries) and [`MAX_SPENT`] spent
//! call ids (the oldest is forgotten first: that reopens only the replay
//! of a call finished hours ago). A wrong token does not consume the
//! right one, so knowing a call id is not enough to spoil its stream.
//!
//! Sans-IO: the time and the token's random bytes are passed in.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use subtle::ConstantTimeEq;

use super::CarrierCallId;

/// How long an issued token may wait for its first use.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// How long a spent call id is refused a new token.
pub const SPENT_TTL: Duration = Duration::from_secs(6 * 60 * 60);
/// Most unused tokens at once.
pub const MAX_PENDING: usize = 1024;
/// Most spent call ids remembered.
pub const MAX_SPENT: usize = 65_536;
/// Longest token looked at (ours are 43 characters).
pub const MAX_TOKEN: usize = 128;

/// Why a token was not issued or not accepted.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// No token was issued for this call.
    #[error("no stream token issued for this call")]
    Unknown,
    /// The token is not the one issued for this call.
    #[error("wrong stream token")]
    Mismatch,
    /// The token was not used within its lifetime.
    #[error("stream token expired")]
    Expired,
    /// The token was used already.
    #[error("stream token already used")]
    Used,
    /// The call has streamed (or its token expired) already: no new token.
    #[error("the call has had its stream already")]
    Streamed,
    /// Too many unused tokens; try again later.
    #[error("too many pending stream tokens")]
    Full,
}

impl TokenError {
    /// The HTTP status for a refusal: 403 for a bad token, 409 for a call
    /// already streamed, 503 when full.
    pub fn status(self) -> u16 {
        match self {
            TokenError::Streamed => 409,
            TokenError::Full => 503,
            _ => 403,
        }
    }
}

/// What the signed webhook said about the call, handed back when its
/// token is redeemed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The calling party.
    pub from: Option<String>,
    /// The called party.
    pub to: Option<String>,
}

#[derive(Debug)]
struct Pending {
    token: String,
    expires: Instant,
    grant: Grant,
}

/// The issued tokens (see the module docs).
#[derive(Debug)]
pub struct StreamTokens {
    ttl: Duration,
    pending: HashMap<String, Pending>,
    spent: HashMap<String, Instant>,
    spent_order: VecDeque<(String, Instant)>,
}

impl Default for StreamTokens {
    fn default() -> Self {
        StreamTokens::new(DEFAULT_TTL)
    }
}

impl StreamTokens {
    /// Tokens that expire `ttl` after they are issued.
    pub fn new(ttl: Duration) -> StreamTokens {
        StreamTokens {
            ttl,
            pending: HashMap::new(),
            spent: HashMap::new(),
            spent_order: VecDeque::new(),
        }
    }

    /// The lifetime of an unused token.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Unused tokens held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Issues the token of `call` at `now`, made of `random` (32 bytes
    /// from a CSPRNG), remembering `grant`; a call whose token is pending
    /// gets that token again.
    ///
    /// # Errors
    /// [`TokenError::Streamed`] for a spent call id, [`TokenError::Full`]
    /// with [`MAX_PENDING`] live tokens.
    pub fn issue(
        &mut self,
        now: Instant,
        call: &CarrierCallId,
        grant: Grant,
        random: [u8; 32],
    ) -> Result<String, TokenError> {
        self.purge_spent(now);
        let key = call.key();
        if self.spent.contains_key(&key) {
            return Err(TokenError::Streamed);
        }
        if let Some(p) = self.pending.get(&key) {
            if p.expires > now {
                return Ok(p.token.clone());
            }
            self.pending.remove(&key);
            self.mark_spent(key, now);
            return Err(TokenError::Streamed);
        }
        if self.pending.len() >= MAX_PENDING {
            self.purge_pending(now);
            if self.pending.len() >= MAX_PENDING {
                return Err(TokenError::Full);
            }
        }
        let token = B64URL.encode(random);
        self.pending.insert(
            key,
            Pending {
                token: token.clone(),
                expires: now + self.ttl,
                grant,
            },
        );
        Ok(token)
    }

    /// Redeems `token` for `call` at `now`: the webhook's [`Grant`]; the
    /// call id is spent.
    ///
    /// # Errors
    /// [`TokenError::Unknown`], [`TokenError::Used`],
    /// [`TokenError::Expired`] (the call id is spent too),
    /// [`TokenError::Mismatch`] (the right token stays usable).
    pub fn redeem(
        &mut self,
        now: Instant,
        call: &CarrierCallId,
        token: &str,
    ) -> Result<Grant, TokenError> {
        self.purge_spent(now);
        let key = call.key();
        let Some(p) = self.pending.get(&key) else {
            return Err(if self.spent.contains_key(&key) {
                TokenError::Used
            } else {
                TokenError::Unknown
            });
        };
        if p.expires <= now {
            self.pending.remove(&key);
            self.mark_spent(key, now);
            return Err(TokenError::Expired);
        }
        let token = token.as_bytes();
        if token.len() > MAX_TOKEN || !bool::from(token.ct_eq(p.token.as_bytes())) {
            return Err(TokenError::Mismatch);
        }
        let grant = self
            .pending
            .remove(&key)
            .map(|p| p.grant)
            .unwrap_or_default();
        self.mark_spent(key, now);
        Ok(grant)
    }

    /// Moves expired pending tokens to the spent ids.
    fn purge_pending(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.pending.remove(&k);
            self.mark_spent(k, now);
        }
    }

    fn purge_spent(&mut self, now: Instant) {
        while let Some((_, until)) = self.spent_order.front() {
            if *until > now {
                break;
            }
            if let Some((k, until)) = self.spent_order.pop_front()
                && self.spent.get(&k) == Some(&until)
            {
                self.spent.remove(&k);
            }
        }
    }

    fn mark_spent(&mut self, key: String, now: Instant) {
        while self.spent.len() >= MAX_SPENT {
            let Some((k, until)) = self.spent_order.pop_front() else {
                break;
            };
            if self.spent.get(&k) == Some(&until) {
                self.spent.remove(&k);
            }
        }
        let until = now + SPENT_TTL;
        self.spent.insert(key.clone(), until);
        self.spent_order.push_back((key, until));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Carrier;
    use super::*;

    fn call(id: &str) -> CarrierCallId {
        CarrierCallId::new(Carrier::Twilio, id).unwrap()
    }

    fn grant() -> Grant {
        Grant {
            from: Some("+15550001111".into()),
            to: Some("+15550002222".into()),
        }
    }

    #[test]
    fn a_token_opens_one_stream_for_its_call_and_hands_back_the_webhook_parties() {
        let t0 = Instant::now();
        let mut t = StreamTokens::default();
        let tok = t.issue(t0, &call("CA1"), grant(), [7; 32]).unwrap();
        assert_eq!(tok.len(), 43);
        assert_eq!(
            t.redeem(t0, &call("CA2"), &tok),
            Err(TokenError::Unknown),
            "bound to its call id"
        );
        assert_eq!(
            t.redeem(t0 + Duration::from_secs(1), &call("CA1"), &tok),
            Ok(grant())
        );
    }

    #[test]
    fn a_media_token_used_twice_is_refused() {
        let t0 = Instant::now();
        let mut t = StreamTokens::default();
        let tok = t.issue(t0, &call("CA1"), grant(), [1; 32]).unwrap();
        t.redeem(t0, &call("CA1"), &tok).unwrap();
        assert_eq!(t.redeem(t0, &call("CA1"), &tok), Err(TokenError::Used));
        // ... also hours later, and the webhook's replay gets no new token.
        let later = t0 + Duration::from_secs(3 * 3600);
        assert_eq!(t.redeem(later, &call("CA1"), &tok), Err(TokenError::Used));
        assert_eq!(
            t.issue(later, &call("CA1"), grant(), [2; 32]),
            Err(TokenError::Streamed)
        );
        // Past SPENT_TTL the id is forgotten.
        assert!(
            t.issue(t0 + SPENT_TTL, &call("CA1"), grant(), [2; 32])
                .is_ok()
        );
    }

    #[test]
    fn a_token_used_after_30_s_is_refused() {
        let t0 = Instant::now();
        let mut t = StreamTokens::default();
        let tok = t.issue(t0, &call("CA1"), grant(), [1; 32]).unwrap();
        let late = t0 + DEFAULT_TTL;
        assert_eq!(t.redeem(late, &call("CA1"), &tok), Err(TokenError::Expired));
        assert_eq!(t.redeem(late, &call("CA1"), &tok), Err(TokenError::Used));
        assert_eq!(
            t.issue(late, &call("CA1"), grant(), [3; 32]),
            Err(TokenError::Streamed),
            "an expired call id gets no second token"
        );
        let tok = t.issue(t0, &call("CA2"), grant(), [4; 32]).unwrap();
        assert!(
            t.redeem(
                t0 + DEFAULT_TTL - Duration::from_millis(1),
                &call("CA2"),
                &tok
            )
            .is_ok()
        );
    }

    #[test]
    fn a_wrong_token_does_not_spoil_the_right_one() {
        let t0 = Instant::now();
        let mut t = StreamTokens::default();
        let tok = t.issue(t0, &call("CA1"), grant(), [9; 32]).unwrap();
        assert_eq!(
            t.redeem(t0, &call("CA1"), "nope"),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            t.redeem(t0, &call("CA1"), &"A".repeat(MAX_TOKEN + 1)),
            Err(TokenError::Mismatch)
        );
        assert!(t.redeem(t0, &call("CA1"), &tok).is_ok());
    }

    #[test]
    fn a_retried_webhook_gets_the_same_token_and_the_first_parties() {
        let t0 = Instant::now();
        let mut t = StreamTokens::default();
        let a = t.issue(t0, &call("CA1"), grant(), [1; 32]).unwrap();
        let b = t
            .issue(
                t0 + Duration::from_secs(2),
                &call("CA1"),
                Grant::default(),
                [2; 32],
            )
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(t.redeem(t0, &call("CA1"), &a), Ok(grant()));
    }

    #[test]
    fn pending_tokens_are_bounded_and_refused_not_evicted() {
        let t0 = Instant::now();
        let mut t = StreamTokens::default();
        let first = t.issue(t0, &call("C0"), grant(), [0; 32]).unwrap();
        for i in 1..MAX_PENDING {
            t.issue(t0, &call(&format!("C{i}")), grant(), [1; 32])
                .unwrap();
        }
        assert_eq!(
            t.issue(t0, &call("Cx"), grant(), [1; 32]),
            Err(TokenError::Full)
        );
        assert_eq!(t.pending(), MAX_PENDING);
        assert!(t.redeem(t0, &call("C0"), &first).is_ok(), "nothing evicted");
        t.issue(t0, &call("Cy"), grant(), [1; 32]).unwrap();
        // Once the others expire there is room again.
        assert!(
            t.issue(t0 + DEFAULT_TTL, &call("Cx"), grant(), [1; 32])
                .is_ok()
        );
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn spent_ids_are_bounded() {
        let t0 = Instant::now();
        let mut t = StreamTokens::new(Duration::from_secs(30));
        for i in 0..(MAX_SPENT + 10) {
            t.mark_spent(format!("twilio:C{i}"), t0);
        }
        assert_eq!(t.spent.len(), MAX_SPENT);
        assert!(
            !t.spent.contains_key("twilio:C0"),
            "the oldest is forgotten"
        );
        assert!(t.spent.contains_key(&format!("twilio:C{}", MAX_SPENT + 9)));
    }
}
