//! Session timers (RFC 4028): the `Session-Expires` and `Min-SE` headers,
//! the negotiation of one dialog's interval and refresher, and the timer
//! itself as a sans-IO value ([`SessionTimer`]) that the user-agent core
//! keeps per call.
//!
//! ```text
//!            2xx with Session-Expires (interval I, refresher R)
//!                               |
//!               +---------------+----------------+
//!               | R is us                        | R is the peer
//!               v                                v
//!   at I/2: Due::Refresh                at I - min(32 s, I/3): Due::Expire
//!   (re-INVITE, or UPDATE when           (section 10: BYE, the call ends
//!    the peer allows it)                  "session expired")
//!   at I without a 2xx: Due::Expire
//!               |                                |
//!               +------ any 2xx to a refresh ----+--> start again
//! ```
//!
//! | timer | armed at | fires |
//! |---|---|---|
//! | refresh (we refresh) | each 2xx | interval / 2 later (section 7.4 / 9) |
//! | expiry (we refresh) | each 2xx | interval later: our refreshes failed |
//! | expiry (peer refreshes) | each 2xx | interval - min(32 s, interval / 3) later (section 10) |
//!
//! Knowingly not done: the 422 retry of our own INVITE with the peer's
//! `Min-SE` (our default interval, 1800 s, is far above any usual
//! `Min-SE`), and a session timer with a peer that supports none and asks
//! for none (section 9 allows the UAS to run one alone; we do not).
//!
//! ```
//! use callbridge_sip::session_timer::{Due, Role, SessionTimer};
//! use std::time::{Duration, Instant};
//! let t0 = Instant::now();
//! let mut timer = SessionTimer::new(t0, Duration::from_secs(90), Role::Peer);
//! // The peer must refresh before 90 - min(32, 30) = 60 s.
//! assert_eq!(timer.poll(t0 + Duration::from_secs(59)), None);
//! assert_eq!(timer.poll(t0 + Duration::from_secs(60)), Some(Due::Expire));
//! ```

use crate::error::Error;
use crate::header::{HeaderName, Headers};
use crate::params::Params;
use crate::parse::lex;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// The `timer` option tag (RFC 4028 section 3).
pub const OPTION_TAG: &str = "timer";

/// The smallest `Min-SE` RFC 4028 allows (section 4): 90 seconds.
pub const RFC_MIN_SE: Duration = Duration::from_secs(90);

/// Our session-timer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSettings {
    /// The interval we ask for (outbound INVITEs) and the most we accept
    /// (inbound ones: a larger request is brought down to it). Default 1800 s.
    pub session_expires: Duration,
    /// The smallest interval we accept: a smaller `Session-Expires` gets
    /// 422 with this `Min-SE`. Default 90 s (RFC 4028's floor; a smaller
    /// value is only for tests).
    pub min_se: Duration,
}

impl Default for TimerSettings {
    fn default() -> TimerSettings {
        TimerSettings {
            session_expires: Duration::from_secs(1800),
            min_se: RFC_MIN_SE,
        }
    }
}

/// The `refresher` parameter: which side of the request's transaction
/// refreshes (RFC 4028 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC of the transaction.
    Uac,
    /// The UAS of the transaction.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: `delta-seconds [;refresher=uac|uas]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The interval in seconds.
    pub delta: u32,
    /// Who refreshes, when said.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parse one header value; `None` when it does not follow the grammar.
    pub fn parse(value: &Bytes) -> Option<SessionExpires> {
        let (delta, params) = delta_and_params(value)?;
        let refresher = match params.get("refresher") {
            None => None,
            Some(Some(v)) if v.eq_ignore_ascii_case(b"uac") => Some(Refresher::Uac),
            Some(Some(v)) if v.eq_ignore_ascii_case(b"uas") => Some(Refresher::Uas),
            Some(_) => return None,
        };
        Some(SessionExpires { delta, refresher })
    }

    /// The header value, e.g. `1800;refresher=uac`.
    pub fn to_value(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.delta, r.as_str()),
            None => self.delta.to_string(),
        }
    }
}

/// `delta-seconds *(SEMI generic-param)`, the grammar of both headers.
fn delta_and_params(value: &Bytes) -> Option<(u32, Params)> {
    let split = value.iter().position(|&c| c == b';').unwrap_or(value.len());
    let delta = lex::decimal(lex::trim(&value[..split]), u64::from(u32::MAX))?;
    let params = Params::from_raw(value.slice(split..));
    // decimal() bounded the value by u32::MAX.
    Some((delta as u32, params))
}

/// The `Session-Expires` of a message: `Ok(None)` when absent, an error
/// when present but malformed (or repeated).
pub fn session_expires(h: &Headers) -> Result<Option<SessionExpires>, Error> {
    let bad = |reason| Error::Header {
        header: "Session-Expires",
        reason,
    };
    let mut all = h.get_all(&HeaderName::SessionExpires);
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(bad("repeated"));
    }
    SessionExpires::parse(v)
        .map(Some)
        .ok_or(bad("not delta-seconds with a refresher of uac or uas"))
}

/// The `Min-SE` of a message in seconds (`None` when absent or malformed:
/// RFC 4028 section 5 then takes 90 s).
pub fn min_se(h: &Headers) -> Option<u32> {
    h.get(&HeaderName::MinSe)
        .and_then(delta_and_params)
        .map(|(d, _)| d)
}

/// Whether the message says it supports session timers (`Supported` or
/// `Require` lists `timer`).
pub fn supports_timer(h: &Headers) -> bool {
    let has = |tags: Vec<Bytes>| {
        tags.iter()
            .any(|t| t.eq_ignore_ascii_case(OPTION_TAG.as_bytes()))
    };
    has(h.supported().unwrap_or_default()) || has(h.require().unwrap_or_default())
}

/// Which side refreshes, as seen from this user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We send the refreshes.
    Us,
    /// The peer does; we only watch for them.
    Peer,
}

/// What the UAS of a session-refreshing request (an INVITE, re-INVITE or
/// UPDATE) does about the session timer (RFC 4028 section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasDecision {
    /// No session timer for this dialog.
    None,
    /// Refuse with 422 and this `Min-SE` in seconds: the interval asked for
    /// is below our minimum.
    TooSmall {
        /// Our `Min-SE`.
        min_se: u32,
    },
    /// Run the timer: answer with `Session-Expires: header` and, when
    /// `require`, `Require: timer`.
    Run {
        /// The value of our 2xx's `Session-Expires`.
        header: SessionExpires,
        /// Whether the 2xx carries `Require: timer` (the peer supports it).
        require: bool,
        /// Who refreshes.
        role: Role,
    },
}

/// Decide as the UAS of `request` (RFC 4028 section 9): a `Session-Expires`
/// below our `min_se` is refused (422); a peer that supports the timer gets
/// one with the interval it asked for, brought down to our
/// `session_expires` when longer (never below its `Min-SE` or ours), refreshed by the
/// side it named, else by itself (the UAC); a request with
/// `Session-Expires` from a peer that does not support it (a proxy asked)
/// gets us as refresher.
pub fn decide_uas(settings: &TimerSettings, request: &Headers) -> UasDecision {
    let ours_min = secs(settings.min_se);
    let Ok(asked) = session_expires(request) else {
        return UasDecision::None;
    };
    let supported = supports_timer(request);
    if asked.is_none() && !supported {
        return UasDecision::None;
    }
    if let Some(se) = asked
        && se.delta < ours_min
    {
        return UasDecision::TooSmall { min_se: ours_min };
    }
    // We may bring a long interval down to ours, never below the Min-SE
    // of the request (90 s when absent) or ours; a short one we keep.
    let floor = min_se(request).unwrap_or(90).max(ours_min);
    let ours = secs(settings.session_expires);
    let delta = match asked {
        Some(se) if se.delta <= ours => se.delta,
        _ => ours.max(floor),
    };
    let refresher = match (supported, asked.and_then(|se| se.refresher)) {
        (false, _) => Refresher::Uas,
        (true, Some(r)) => r,
        (true, None) => Refresher::Uac,
    };
    UasDecision::Run {
        header: SessionExpires {
            delta,
            refresher: Some(refresher),
        },
        require: supported,
        role: match refresher {
            Refresher::Uac => Role::Peer,
            Refresher::Uas => Role::Us,
        },
    }
}

/// What the UAC of a session-refreshing request learns from its 2xx
/// (RFC 4028 section 7.2): the interval and who refreshes, or `None` when
/// the 2xx carries no `Session-Expires` (no session timer). A 2xx without
/// `refresher` leaves it to us.
pub fn decide_uac(response: &Headers) -> Option<(Duration, Role)> {
    let se = session_expires(response).ok()??;
    let role = match se.refresher {
        Some(Refresher::Uas) => Role::Peer,
        Some(Refresher::Uac) | None => Role::Us,
    };
    Some((Duration::from_secs(u64::from(se.delta)), role))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// What a [`SessionTimer`] asks for when polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a refresh now (we are the refresher); asked once per interval.
    Refresh,
    /// The session expired: send BYE and end the call (section 10).
    Expire,
}

/// One dialog's session timer: the interval, who refreshes, and when it
/// was last refreshed. Sans-IO: the time is passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    role: Role,
    refreshed_at: Instant,
    refresh_asked: bool,
    expired: bool,
}

impl SessionTimer {
    /// A timer started by a 2xx at `now`.
    pub fn new(now: Instant, interval: Duration, role: Role) -> SessionTimer {
        SessionTimer {
            interval,
            role,
            refreshed_at: now,
            refresh_asked: false,
            expired: false,
        }
    }

    /// A 2xx to a session refresh at `now` (either side's): start again,
    /// with the interval and refresher it carried.
    pub fn refreshed(&mut self, now: Instant, interval: Duration, role: Role) {
        *self = SessionTimer::new(now, interval, role);
    }

    /// The negotiated interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Who refreshes.
    pub fn role(&self) -> Role {
        self.role
    }

    /// When we send our refresh (`None` when the peer refreshes).
    pub fn refresh_at(&self) -> Option<Instant> {
        match self.role {
            Role::Us => Some(self.refreshed_at + self.interval / 2),
            Role::Peer => None,
        }
    }

    /// When the session expires without a refresh: the interval for our
    /// own refreshes, the interval less min(32 s, interval / 3) for the
    /// peer's (RFC 4028 section 10).
    pub fn expires_at(&self) -> Instant {
        match self.role {
            Role::Us => self.refreshed_at + self.interval,
            Role::Peer => {
                let margin = Duration::from_secs(32).min(self.interval / 3);
                self.refreshed_at + (self.interval - margin)
            }
        }
    }

    /// The next instant [`poll`](Self::poll) has something to say (`None`
    /// once expired).
    pub fn deadline(&self) -> Option<Instant> {
        if self.expired {
            return None;
        }
        match self.refresh_at() {
            Some(r) if !self.refresh_asked => Some(r),
            _ => Some(self.expires_at()),
        }
    }

    /// What is due at `now`: each `Refresh` once per interval, `Expire`
    /// once; `None` before the deadline (an early or repeated call is
    /// harmless).
    pub fn poll(&mut self, now: Instant) -> Option<Due> {
        if self.expired {
            return None;
        }
        if now >= self.expires_at() {
            self.expired = true;
            return Some(Due::Expire);
        }
        match self.refresh_at() {
            Some(r) if !self.refresh_asked && now >= r => {
                self.refresh_asked = true;
                Some(Due::Refresh)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(lines: &[(HeaderName, &'static str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in lines {
            h.push(n.clone(), Bytes::from_static(v.as_bytes()));
        }
        h
    }

    #[test]
    fn session_expires_values_parse_with_their_refresher() {
        let p = |s: &'static str| SessionExpires::parse(&Bytes::from_static(s.as_bytes()));
        assert_eq!(
            p("1800;refresher=uac"),
            Some(SessionExpires {
                delta: 1800,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(p(" 90 ").map(|s| s.refresher), Some(None));
        assert_eq!(
            p("90;refresher=UAS").and_then(|s| s.refresher),
            Some(Refresher::Uas)
        );
        assert_eq!(p("90;refresher=proxy"), None);
        assert_eq!(p("abc"), None);
        assert_eq!(p(""), None);
        assert_eq!(
            SessionExpires {
                delta: 120,
                refresher: Some(Refresher::Uas)
            }
            .to_value(),
            "120;refresher=uas"
        );
    }

    #[test]
    fn an_interval_below_our_min_se_gets_422() {
        let h = headers(&[
            (HeaderName::SessionExpires, "60"),
            (HeaderName::Supported, "timer"),
        ]);
        assert_eq!(
            decide_uas(&TimerSettings::default(), &h),
            UasDecision::TooSmall { min_se: 90 }
        );
    }

    #[test]
    fn a_supporting_caller_refreshes_unless_it_names_us() {
        let s = TimerSettings::default();
        let h = headers(&[
            (HeaderName::SessionExpires, "600"),
            (HeaderName::Supported, "100rel, timer"),
        ]);
        assert_eq!(
            decide_uas(&s, &h),
            UasDecision::Run {
                header: SessionExpires {
                    delta: 600,
                    refresher: Some(Refresher::Uac)
                },
                require: true,
                role: Role::Peer
            }
        );
        let h = headers(&[
            (HeaderName::SessionExpires, "600;refresher=uas"),
            (HeaderName::Supported, "timer"),
        ]);
        assert!(matches!(
            decide_uas(&s, &h),
            UasDecision::Run { role: Role::Us, .. }
        ));
    }

    #[test]
    fn a_long_interval_comes_down_to_ours_but_never_below_the_peers_min_se() {
        let s = TimerSettings {
            session_expires: Duration::from_secs(300),
            min_se: Duration::from_secs(90),
        };
        let h = headers(&[
            (HeaderName::SessionExpires, "7200"),
            (HeaderName::Supported, "timer"),
        ]);
        assert!(matches!(
            decide_uas(&s, &h),
            UasDecision::Run { header, .. } if header.delta == 300
        ));
        let h = headers(&[
            (HeaderName::SessionExpires, "7200"),
            (HeaderName::MinSe, "600"),
            (HeaderName::Supported, "timer"),
        ]);
        assert!(matches!(
            decide_uas(&s, &h),
            UasDecision::Run { header, .. } if header.delta == 600
        ));
    }

    #[test]
    fn a_short_interval_above_our_min_se_is_kept_without_a_min_se_header() {
        let s = TimerSettings {
            session_expires: Duration::from_secs(30),
            min_se: Duration::from_secs(2),
        };
        let h = headers(&[
            (HeaderName::SessionExpires, "3"),
            (HeaderName::Supported, "timer"),
        ]);
        assert!(matches!(
            decide_uas(&s, &h),
            UasDecision::Run { header, .. } if header.delta == 3
        ));
    }

    #[test]
    fn no_timer_without_support_or_request_and_we_refresh_for_a_proxy() {
        let s = TimerSettings::default();
        assert_eq!(decide_uas(&s, &Headers::new()), UasDecision::None);
        // Supported alone: we insert our interval, the caller refreshes.
        let h = headers(&[(HeaderName::Supported, "timer")]);
        assert!(matches!(
            decide_uas(&s, &h),
            UasDecision::Run { header, role: Role::Peer, require: true } if header.delta == 1800
        ));
        // A proxy asked, the caller knows nothing of timers: we refresh, no Require.
        let h = headers(&[(HeaderName::SessionExpires, "1800")]);
        assert!(matches!(
            decide_uas(&s, &h),
            UasDecision::Run {
                role: Role::Us,
                require: false,
                ..
            }
        ));
    }

    #[test]
    fn the_uac_learns_role_and_interval_from_the_2xx() {
        let h = headers(&[(HeaderName::SessionExpires, "900;refresher=uas")]);
        assert_eq!(decide_uac(&h), Some((Duration::from_secs(900), Role::Peer)));
        let h = headers(&[(HeaderName::SessionExpires, "900")]);
        assert_eq!(decide_uac(&h), Some((Duration::from_secs(900), Role::Us)));
        assert_eq!(decide_uac(&Headers::new()), None);
    }

    #[test]
    fn min_se_is_read_with_parameters() {
        let h = headers(&[(HeaderName::MinSe, "120;x=1")]);
        assert_eq!(min_se(&h), Some(120));
        assert_eq!(min_se(&Headers::new()), None);
    }

    #[test]
    fn we_refresh_at_half_the_interval_and_expire_at_the_interval() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, Duration::from_secs(100), Role::Us);
        assert_eq!(t.deadline(), Some(t0 + Duration::from_secs(50)));
        assert_eq!(t.poll(t0 + Duration::from_secs(49)), None);
        assert_eq!(t.poll(t0 + Duration::from_secs(50)), Some(Due::Refresh));
        assert_eq!(t.poll(t0 + Duration::from_secs(51)), None, "asked once");
        assert_eq!(t.deadline(), Some(t0 + Duration::from_secs(100)));
        assert_eq!(t.poll(t0 + Duration::from_secs(100)), Some(Due::Expire));
        assert_eq!(t.poll(t0 + Duration::from_secs(200)), None, "expired once");
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn the_peers_refresh_is_due_a_margin_before_the_interval() {
        let t0 = Instant::now();
        // 1800 s: min(32, 600) = 32 s early.
        let t = SessionTimer::new(t0, Duration::from_secs(1800), Role::Peer);
        assert_eq!(t.expires_at(), t0 + Duration::from_secs(1768));
        assert_eq!(t.refresh_at(), None);
        // 3 s (a test interval): min(32, 1) = 1 s early.
        let mut t = SessionTimer::new(t0, Duration::from_secs(3), Role::Peer);
        assert_eq!(t.poll(t0 + Duration::from_millis(1999)), None);
        t.refreshed(
            t0 + Duration::from_millis(1999),
            Duration::from_secs(3),
            Role::Peer,
        );
        assert_eq!(
            t.poll(t0 + Duration::from_secs(3)),
            None,
            "refreshed in time"
        );
        assert_eq!(t.poll(t0 + Duration::from_millis(3999)), Some(Due::Expire));
    }

    proptest! {
        /// Whatever the interval, the role and the times of the polls and
        /// refreshes: `Expire` comes exactly once, exactly when a poll is
        /// at or after `expires_at` of the last refresh; `Refresh` only to
        /// the refresher, at most once per refresh, never after the
        /// expiry; and the deadline is never later than what is due.
        #[test]
        fn timer_reports_each_due_once_and_on_time(
            interval in 3u64..4000,
            us in any::<bool>(),
            steps in proptest::collection::vec((0u64..3000, any::<bool>()), 1..40),
        ) {
            let role = if us { Role::Us } else { Role::Peer };
            let interval = Duration::from_secs(interval);
            let t0 = Instant::now();
            let mut t = SessionTimer::new(t0, interval, role);
            let mut now = t0;
            let mut expired = false;
            let mut refreshes_since = 0;
            for (dt, refresh) in steps {
                now += Duration::from_secs(dt);
                if refresh && !expired {
                    t.refreshed(now, interval, role);
                    refreshes_since = 0;
                    continue;
                }
                let deadline = t.deadline();
                let expires_at = t.expires_at();
                match t.poll(now) {
                    Some(Due::Expire) => {
                        prop_assert!(!expired);
                        prop_assert!(now >= expires_at);
                        prop_assert!(deadline.is_some_and(|d| d <= now));
                        expired = true;
                    }
                    Some(Due::Refresh) => {
                        prop_assert_eq!(role, Role::Us);
                        prop_assert!(!expired);
                        prop_assert!(now < expires_at);
                        prop_assert!(deadline.is_some_and(|d| d <= now));
                        refreshes_since += 1;
                        prop_assert_eq!(refreshes_since, 1);
                    }
                    None => {
                        prop_assert!(expired || now < expires_at);
                    }
                }
                if let Some(r) = t.refresh_at() {
                    prop_assert!(r < t.expires_at());
                }
            }
        }
    }
}
