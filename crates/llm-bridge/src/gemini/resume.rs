//! When to move a Gemini Live session to a new connection (sans-IO).
//!
//! Owns: [`Resumption`], the small state machine behind transparent session
//! resumption (protocols.md §1.5-1.6). It keeps the latest non-empty
//! resumption handle, whether the server currently calls the session
//! resumable, and whether the model is generating; after a `goAway` it says
//! when the switch is due: as soon as the model's turn is over and the
//! server has confirmed a resumable point, or at the latest at half the
//! time the server left (5 s when it did not say). No clock is read here:
//! every input carries `now`.

use std::time::{Duration, Instant};

use crate::event::CloseReason;

/// Longest wait for the end of the model's turn after a `goAway`.
pub(crate) const MAX_SWITCH_WAIT: Duration = Duration::from_secs(5);

/// Unexpected drops resumed in a row without a model turn completing in
/// between; one more ends the session (a server that drops every new
/// connection is not retried forever).
pub(crate) const MAX_DROPS_WITHOUT_PROGRESS: u32 = 3;

/// Resumption bookkeeping of one session.
#[derive(Debug, Default)]
pub(crate) struct Resumption {
    handle: Option<String>,
    resumable: bool,
    generating: bool,
    /// Set by a `goAway`: the latest moment to switch.
    deadline: Option<Instant>,
    /// Drops since the last completed model turn.
    drops: u32,
}

impl Resumption {
    /// Model audio arrived: a reply is being generated.
    pub(crate) fn on_model_audio(&mut self) {
        self.generating = true;
    }

    /// The model's turn is over.
    pub(crate) fn on_turn_complete(&mut self) {
        self.generating = false;
        self.drops = 0;
    }

    /// A `sessionResumptionUpdate`. Returns the handle to report when it is
    /// new (empty handles are never kept).
    pub(crate) fn on_update(&mut self, handle: Option<String>, resumable: bool) -> Option<String> {
        self.resumable = resumable;
        let h = handle.filter(|h| !h.is_empty())?;
        if self.handle.as_deref() == Some(h.as_str()) {
            return None;
        }
        self.handle = Some(h.clone());
        Some(h)
    }

    /// A `goAway` at `now`; a second one does not move the deadline.
    pub(crate) fn on_go_away(&mut self, now: Instant, time_left: Option<Duration>) {
        if self.deadline.is_none() {
            let wait = time_left.map_or(MAX_SWITCH_WAIT, |t| (t / 2).min(MAX_SWITCH_WAIT));
            self.deadline = Some(now + wait);
        }
    }

    /// Whether a switch is pending (input must be held back).
    pub(crate) fn is_pending(&self) -> bool {
        self.deadline.is_some()
    }

    /// The latest moment to switch, while one is pending.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether to switch now.
    pub(crate) fn switch_due(&self, now: Instant) -> bool {
        match self.deadline {
            None => false,
            Some(d) => (!self.generating && self.resumable) || now >= d,
        }
    }

    /// The handle to resume with.
    pub(crate) fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    /// Whether the model is generating a reply (audio came, no turn end yet).
    pub(crate) fn is_generating(&self) -> bool {
        self.generating
    }

    /// Whether a connection that ended this way, with no `goAway` pending,
    /// is worth resuming: it dropped (1006, no close frame) or the server
    /// closed it for a transient reason of its own (1001 going away, 1011
    /// internal error, 1012 restart, 1013 try again later, 1014 bad
    /// gateway; RFC 6455 §7.4.1 and the IANA registry), a handle is
    /// known, and fewer than [`MAX_DROPS_WITHOUT_PROGRESS`] drops were
    /// resumed since the model last completed a turn. A normal close (1000), our own fault (1007, 1008) or a
    /// protocol error end the session.
    pub(crate) fn resumes_after(&self, reason: &CloseReason) -> bool {
        let transient = match reason {
            CloseReason::ConnectionLost => true,
            CloseReason::ServerClosed { code, .. } => {
                matches!(code, 1001 | 1006 | 1011 | 1012 | 1013 | 1014)
            }
            _ => false,
        };
        transient && self.handle.is_some() && self.drops < MAX_DROPS_WITHOUT_PROGRESS
    }

    /// The connection dropped: returns whether it cut a reply short (the
    /// reply is over either way; the resumed session starts between turns).
    pub(crate) fn on_dropped(&mut self) -> bool {
        self.drops = self.drops.saturating_add(1);
        std::mem::take(&mut self.generating)
    }

    /// The new connection is set up: nothing pending, and nothing known
    /// about the new connection's resumability yet.
    pub(crate) fn on_switched(&mut self) {
        self.deadline = None;
        self.generating = false;
        self.resumable = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn nothing_is_due_without_go_away() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        r.on_update(Some("h1".into()), true);
        assert!(!r.is_pending());
        assert!(!r.switch_due(at(t0, 60_000)));
    }

    #[test]
    fn go_away_between_turns_switches_at_once_with_the_latest_handle() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        assert_eq!(r.on_update(Some("h1".into()), true), Some("h1".into()));
        assert_eq!(
            r.on_update(Some("h1".into()), true),
            None,
            "same handle reported once"
        );
        assert_eq!(r.on_update(Some("h2".into()), true), Some("h2".into()));
        r.on_go_away(t0, Some(Duration::from_secs(50)));
        assert!(r.switch_due(t0));
        assert_eq!(r.handle(), Some("h2"));
    }

    #[test]
    fn go_away_during_a_reply_waits_for_turn_end_and_a_resumable_update() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        r.on_update(Some("h1".into()), true);
        r.on_model_audio();
        r.on_update(Some(String::new()), false);
        r.on_go_away(t0, Some(Duration::from_secs(2)));
        assert!(!r.switch_due(at(t0, 10)));
        r.on_turn_complete();
        assert!(!r.switch_due(at(t0, 20)), "not resumable yet");
        r.on_update(Some("h2".into()), true);
        assert!(r.switch_due(at(t0, 30)));
        assert_eq!(r.handle(), Some("h2"), "empty handles are never kept");
    }

    #[test]
    fn deadline_is_half_the_time_left_capped_at_five_seconds() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        r.on_model_audio();
        r.on_go_away(t0, Some(Duration::from_millis(200)));
        assert_eq!(r.deadline(), Some(at(t0, 100)));
        assert!(!r.switch_due(at(t0, 99)));
        assert!(r.switch_due(at(t0, 100)));
        r.on_go_away(at(t0, 50), Some(Duration::from_secs(1)));
        assert_eq!(
            r.deadline(),
            Some(at(t0, 100)),
            "a second goAway keeps the deadline"
        );

        let mut r = Resumption::default();
        r.on_go_away(t0, Some(Duration::from_secs(60)));
        assert_eq!(r.deadline(), Some(at(t0, 5_000)));
        let mut r = Resumption::default();
        r.on_go_away(t0, None);
        assert_eq!(r.deadline(), Some(at(t0, 5_000)));
    }

    #[test]
    fn only_transient_ends_with_a_known_handle_are_resumed() {
        let lost = CloseReason::ConnectionLost;
        let closed = |code| CloseReason::ServerClosed {
            code,
            reason: String::new(),
        };
        let mut r = Resumption::default();
        assert!(!r.resumes_after(&lost), "no handle yet");
        r.on_update(Some(String::new()), false);
        assert!(!r.resumes_after(&lost), "empty handles do not count");
        r.on_update(Some("h1".into()), true);
        assert!(r.resumes_after(&lost));
        for code in [1001, 1006, 1011, 1012, 1013, 1014] {
            assert!(r.resumes_after(&closed(code)), "{code}");
        }
        for code in [1000, 1005, 1007, 1008, 4000] {
            assert!(!r.resumes_after(&closed(code)), "{code}");
        }
        assert!(!r.resumes_after(&CloseReason::ProtocolError("x")));
        assert!(!r.resumes_after(&CloseReason::ClientClosed));
    }

    #[test]
    fn drops_in_a_row_without_a_completed_turn_stop_being_resumed() {
        let mut r = Resumption::default();
        r.on_update(Some("h1".into()), true);
        for _ in 0..MAX_DROPS_WITHOUT_PROGRESS {
            assert!(r.resumes_after(&CloseReason::ConnectionLost));
            r.on_dropped();
            r.on_switched();
        }
        assert!(!r.resumes_after(&CloseReason::ConnectionLost));
        r.on_turn_complete();
        assert!(
            r.resumes_after(&CloseReason::ConnectionLost),
            "progress resets it"
        );
    }

    #[test]
    fn a_drop_reports_and_ends_the_reply_in_progress() {
        let mut r = Resumption::default();
        assert!(!r.on_dropped());
        r.on_model_audio();
        assert!(r.is_generating());
        assert!(r.on_dropped(), "the drop cut a reply");
        assert!(!r.is_generating());
        assert!(!r.on_dropped());
    }

    #[test]
    fn after_the_switch_nothing_is_pending_until_the_next_go_away() {
        let t0 = Instant::now();
        let mut r = Resumption::default();
        r.on_update(Some("h1".into()), true);
        r.on_go_away(t0, None);
        r.on_switched();
        assert!(!r.is_pending());
        assert!(!r.switch_due(at(t0, 10_000)));
        assert_eq!(r.handle(), Some("h1"));
    }
}
