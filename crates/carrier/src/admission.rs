//! What stands between a carrier's signed webhooks and the media streams
//! they announce, for one agent: the per-call stream tokens of each
//! carrier ([`StreamTokens`]), the used Vonage webhook JWT ids
//! ([`JtiCache`]), and the call statuses that arrive before their call's
//! stream has started ([`PendingStatuses`]).
//!
//! A plain value with `&mut self` methods; time and randomness are passed
//! in. The agent keeps one behind a mutex and its HTTP handlers call it
//! (the checks' order and their HTTP answers are the handlers' business,
//! documented there).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::core::StartInfo;
use crate::replay::JtiCache;
use crate::signature::{self, SignatureError, VonageCheck, VonageClaims};
use crate::stream_token::{Grant, StreamTokens, TokenError};
use crate::{Carrier, CarrierCallId};

/// Calls whose statuses are kept until their stream starts.
pub const MAX_PENDING_CALLS: usize = 256;
/// Statuses kept per call until its stream starts.
pub const MAX_PENDING_PER_CALL: usize = 8;

/// How a started stream proves which signed webhook announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamAuth {
    /// Signatures are off (tests, trusted networks): the stream's own
    /// `from`/`to` parameters name the parties.
    Unchecked,
    /// The call's token was redeemed before the upgrade (Vonage: `uuid` and
    /// `token` in the WebSocket URI) for this call, with these parties.
    Redeemed(CarrierCallId, Grant),
    /// The token comes back in the stream's start (Twilio: the `token`
    /// custom parameter).
    InStart,
}

/// Why a started stream is not admitted (its socket is closed with 1008).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamRefusal {
    /// The stream started for another call than the one whose token was
    /// redeemed at the upgrade.
    #[error("stream for {started} while {expected}'s token was redeemed")]
    OtherCall {
        /// The call the upgrade was for.
        expected: CarrierCallId,
        /// The call the stream started.
        started: CarrierCallId,
    },
    /// The token in the start was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// An agent's carrier admission state (see the module docs).
///
/// ```
/// use std::time::{Duration, Instant};
/// use callbridge_carrier::admission::Admission;
/// use callbridge_carrier::stream_token::{Grant, TokenError};
/// use callbridge_carrier::{Carrier, CarrierCallId};
///
/// let ttl = Duration::from_secs(30);
/// let mut a = Admission::new(ttl, ttl);
/// let call = CarrierCallId::new(Carrier::Twilio, "CA1").unwrap();
/// let now = Instant::now();
/// let grant = Grant { from: Some("+15550001".into()), to: None };
/// let token = a.issue(now, &call, grant.clone(), [7; 32]).unwrap();
/// assert_eq!(a.redeem(now, &call, &token), Ok(grant));
/// assert_eq!(a.redeem(now, &call, &token), Err(TokenError::Used));
/// ```
#[derive(Debug)]
pub struct Admission {
    twilio: StreamTokens,
    vonage: StreamTokens,
    jtis: JtiCache,
    pending: PendingStatuses,
}

impl Admission {
    /// Stream tokens that expire after `twilio_ttl` / `vonage_ttl` unused.
    pub fn new(twilio_ttl: Duration, vonage_ttl: Duration) -> Admission {
        Admission {
            twilio: StreamTokens::new(twilio_ttl),
            vonage: StreamTokens::new(vonage_ttl),
            jtis: JtiCache::default(),
            pending: PendingStatuses::default(),
        }
    }

    fn tokens(&mut self, c: Carrier) -> &mut StreamTokens {
        match c {
            Carrier::Vonage => &mut self.vonage,
            _ => &mut self.twilio,
        }
    }

    /// Issues the stream token of `call` (announced by a signed webhook
    /// naming `grant`'s parties), made of `random` (32 bytes from a
    /// CSPRNG). See [`StreamTokens::issue`].
    ///
    /// # Errors
    /// [`TokenError::Streamed`], [`TokenError::Full`].
    pub fn issue(
        &mut self,
        now: Instant,
        call: &CarrierCallId,
        grant: Grant,
        random: [u8; 32],
    ) -> Result<String, TokenError> {
        self.tokens(call.carrier()).issue(now, call, grant, random)
    }

    /// Redeems `token` for `call`: the parties its webhook named. See
    /// [`StreamTokens::redeem`].
    ///
    /// # Errors
    /// [`TokenError::Unknown`], [`TokenError::Used`],
    /// [`TokenError::Expired`], [`TokenError::Mismatch`].
    pub fn redeem(
        &mut self,
        now: Instant,
        call: &CarrierCallId,
        token: &str,
    ) -> Result<Grant, TokenError> {
        self.tokens(call.carrier()).redeem(now, call, token)
    }

    /// The parties of a started stream, once `auth` shows that a signed
    /// webhook announced its call (the caller id is the webhook's, never
    /// the stream's own, unless signatures are off).
    ///
    /// # Errors
    /// [`StreamRefusal::OtherCall`], [`StreamRefusal::Token`].
    pub fn admit_stream(
        &mut self,
        now: Instant,
        start: &StartInfo,
        auth: StreamAuth,
    ) -> Result<Grant, StreamRefusal> {
        match auth {
            StreamAuth::Unchecked => Ok(Grant {
                from: start.parameter("from").map(str::to_owned),
                to: start.parameter("to").map(str::to_owned),
            }),
            StreamAuth::Redeemed(expected, grant) => {
                if expected == start.call {
                    Ok(grant)
                } else {
                    Err(StreamRefusal::OtherCall {
                        expected,
                        started: start.call.clone(),
                    })
                }
            }
            StreamAuth::InStart => {
                let token = start.parameter("token").unwrap_or("");
                Ok(self.redeem(now, &start.call, token)?)
            }
        }
    }

    /// Verifies a Vonage signed webhook and holds its JWT to a single use
    /// ([`signature::verify_vonage_once`] with this agent's cache).
    ///
    /// # Errors
    /// Every [`SignatureError`].
    pub fn verify_vonage(
        &mut self,
        secret: &[u8],
        authorization: Option<&str>,
        check: &VonageCheck<'_>,
    ) -> Result<VonageClaims, SignatureError> {
        signature::verify_vonage_once(secret, authorization, check, &mut self.jtis)
    }

    /// Keeps a status of `call` (one whose stream has not started) for its
    /// admission. Bounded: see [`PendingStatuses`].
    pub fn remember_status(&mut self, call: &CarrierCallId, status: serde_json::Value) {
        self.pending.remember(call, status);
    }

    /// The statuses kept for `call`, in arrival order; forgets them.
    pub fn take_statuses(&mut self, call: &CarrierCallId) -> Vec<serde_json::Value> {
        self.pending.take(call)
    }
}

/// Call statuses that came before their call's stream (a Vonage event
/// webhook is often faster than the WebSocket), kept for its admission:
/// at most [`MAX_PENDING_PER_CALL`] per call, for at most
/// [`MAX_PENDING_CALLS`] calls (the oldest call is forgotten first).
#[derive(Debug, Default)]
pub struct PendingStatuses {
    order: VecDeque<CarrierCallId>,
    statuses: HashMap<CarrierCallId, Vec<serde_json::Value>>,
}

impl PendingStatuses {
    /// Keeps `status` for `call` (dropped beyond the bounds).
    pub fn remember(&mut self, call: &CarrierCallId, status: serde_json::Value) {
        if !self.statuses.contains_key(call) {
            if self.order.len() >= MAX_PENDING_CALLS
                && let Some(old) = self.order.pop_front()
            {
                self.statuses.remove(&old);
            }
            self.order.push_back(call.clone());
        }
        let list = self.statuses.entry(call.clone()).or_default();
        if list.len() < MAX_PENDING_PER_CALL {
            list.push(status);
        }
    }

    /// The statuses kept for `call`, in arrival order; forgets them.
    pub fn take(&mut self, call: &CarrierCallId) -> Vec<serde_json::Value> {
        self.order.retain(|k| k != call);
        self.statuses.remove(call).unwrap_or_default()
    }

    /// Calls with statuses kept.
    pub fn len(&self) -> usize {
        self.statuses.len()
    }

    /// Whether no status is kept.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{Signed, VONAGE_FRESH_S, VONAGE_MAX_AGE_S, payload_hash, sign_hs256};

    fn id(c: Carrier, s: &str) -> CarrierCallId {
        CarrierCallId::new(c, s).unwrap()
    }

    #[test]
    fn tokens_are_kept_per_carrier_with_their_own_lifetime() {
        let mut a = Admission::new(Duration::from_secs(10), Duration::from_secs(60));
        let t0 = Instant::now();
        let tw = id(Carrier::Twilio, "CA1");
        let vn = id(Carrier::Vonage, "u-1");
        let t = a.issue(t0, &tw, Grant::default(), [1; 32]).unwrap();
        let v = a.issue(t0, &vn, Grant::default(), [2; 32]).unwrap();
        let later = t0 + Duration::from_secs(30);
        assert_eq!(a.redeem(later, &tw, &t), Err(TokenError::Expired));
        assert_eq!(a.redeem(later, &vn, &v), Ok(Grant::default()));
        // A spent call id gets no second token (a replayed webhook).
        assert_eq!(
            a.issue(later, &vn, Grant::default(), [3; 32]),
            Err(TokenError::Streamed)
        );
    }

    #[test]
    fn a_token_of_one_call_does_not_admit_another() {
        let mut a = Admission::new(Duration::from_secs(30), Duration::from_secs(30));
        let now = Instant::now();
        let one = id(Carrier::Vonage, "u-1");
        let two = id(Carrier::Vonage, "u-2");
        let t1 = a.issue(now, &one, Grant::default(), [1; 32]).unwrap();
        a.issue(now, &two, Grant::default(), [2; 32]).unwrap();
        assert_eq!(a.redeem(now, &two, &t1), Err(TokenError::Mismatch));
        assert!(a.redeem(now, &one, &t1).is_ok());
    }

    fn started(c: Carrier, call: &str, params: &[(&str, &str)]) -> StartInfo {
        StartInfo {
            call: id(c, call),
            account: None,
            stream_sid: None,
            parameters: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_twilio_stream_is_admitted_once_by_the_token_in_its_start() {
        let mut a = Admission::new(Duration::from_secs(30), Duration::from_secs(30));
        let now = Instant::now();
        let grant = Grant {
            from: Some("+15550001".into()),
            to: Some("+15550002".into()),
        };
        let token = a
            .issue(now, &id(Carrier::Twilio, "CA1"), grant.clone(), [9; 32])
            .unwrap();
        // The stream's own `from` is ignored: the webhook's parties count.
        let start = started(
            Carrier::Twilio,
            "CA1",
            &[("token", &token), ("from", "+19990000")],
        );
        assert_eq!(a.admit_stream(now, &start, StreamAuth::InStart), Ok(grant));
        // The replay of the same stream is refused.
        assert_eq!(
            a.admit_stream(now, &start, StreamAuth::InStart),
            Err(StreamRefusal::Token(TokenError::Used))
        );
        // A start without a token, or with a made-up one, is refused.
        let t2 = a
            .issue(now, &id(Carrier::Twilio, "CA2"), Grant::default(), [8; 32])
            .unwrap();
        let bare = started(Carrier::Twilio, "CA2", &[]);
        assert_eq!(
            a.admit_stream(now, &bare, StreamAuth::InStart),
            Err(StreamRefusal::Token(TokenError::Mismatch))
        );
        let good = started(Carrier::Twilio, "CA2", &[("token", &t2)]);
        assert!(a.admit_stream(now, &good, StreamAuth::InStart).is_ok());
    }

    #[test]
    fn a_vonage_stream_must_start_the_call_its_upgrade_redeemed() {
        let mut a = Admission::new(Duration::from_secs(30), Duration::from_secs(30));
        let now = Instant::now();
        let grant = Grant {
            from: Some("447700900001".into()),
            to: None,
        };
        let auth = || StreamAuth::Redeemed(id(Carrier::Vonage, "u-1"), grant.clone());
        let other = started(Carrier::Vonage, "u-2", &[]);
        assert!(matches!(
            a.admit_stream(now, &other, auth()),
            Err(StreamRefusal::OtherCall { .. })
        ));
        let same = started(Carrier::Vonage, "u-1", &[("from", "evil")]);
        assert_eq!(a.admit_stream(now, &same, auth()), Ok(grant.clone()));
        // Signatures off: the stream's parameters are all there is.
        assert_eq!(
            a.admit_stream(now, &same, StreamAuth::Unchecked),
            Ok(Grant {
                from: Some("evil".into()),
                to: None
            })
        );
    }

    #[test]
    fn replayed_vonage_webhook_is_refused_by_the_shared_jti_cache() {
        let mut a = Admission::new(Duration::from_secs(30), Duration::from_secs(30));
        let secret = b"vonage-secret";
        let body = br#"{"status":"ringing","uuid":"u-1"}"#;
        let iat = 1_800_000_000;
        let jwt = sign_hs256(
            secret,
            &serde_json::json!({"iat": iat, "jti": "j-1", "payload_hash": payload_hash(body)}),
        );
        let auth = format!("Bearer {jwt}");
        let check = VonageCheck {
            signed: Signed::Body(body),
            now_unix: iat + 1,
            max_age_s: Some(VONAGE_MAX_AGE_S),
            fresh_s: VONAGE_FRESH_S,
            application_id: None,
        };
        assert!(a.verify_vonage(secret, Some(&auth), &check).is_ok());
        assert_eq!(
            a.verify_vonage(secret, Some(&auth), &check),
            Err(SignatureError::Replayed)
        );
    }

    #[test]
    fn pending_statuses_are_bounded_per_call_and_in_calls() {
        let mut a = Admission::new(Duration::from_secs(30), Duration::from_secs(30));
        let call = id(Carrier::Vonage, "u-1");
        for i in 0..(MAX_PENDING_PER_CALL + 3) {
            a.remember_status(&call, serde_json::json!(i));
        }
        let got = a.take_statuses(&call);
        assert_eq!(got.len(), MAX_PENDING_PER_CALL);
        assert_eq!(got[0], serde_json::json!(0), "in arrival order");
        assert!(a.take_statuses(&call).is_empty(), "taken once");

        let mut p = PendingStatuses::default();
        for i in 0..(MAX_PENDING_CALLS + 1) {
            p.remember(
                &id(Carrier::Vonage, &format!("u-{i}")),
                serde_json::json!(i),
            );
        }
        assert_eq!(p.len(), MAX_PENDING_CALLS);
        assert!(
            p.take(&id(Carrier::Vonage, "u-0")).is_empty(),
            "the oldest call is forgotten first"
        );
        assert_eq!(
            p.take(&id(Carrier::Vonage, "u-1")),
            vec![serde_json::json!(1)]
        );
        assert_eq!(p.len(), MAX_PENDING_CALLS - 1);
    }
}
