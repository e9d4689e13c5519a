//! The model connection as the call sees it, without IO: whether the
//! session is opening, connected, being resumed on a new connection, or
//! over; whether caller audio goes to it; the transfer the model asked
//! for; and what the call has to tell it (playback positions, a barge-in),
//! drained by the driver with [`ModelLink::poll_send`].
//!
//! A barge-in is told to the model whatever the state: while the session
//! is resuming, its own queue holds or drops it (a reply in flight is lost
//! with the old connection anyway); the call does not wait for it to
//! stop playing.

use std::collections::VecDeque;
use std::time::Duration;

use callbridge_llm_bridge::{ModelEvent, ToolCallId};

/// Where the model session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Not opened yet.
    Idle,
    /// `RealtimeModel::open` is running.
    Opening,
    /// Open and connected.
    Connected,
    /// The connection dropped; the session is resuming on a new one.
    Resuming,
    /// The session failed to open, or ended.
    Over,
}

impl LinkState {
    /// The state's name, for logs and events.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Opening => "opening",
            LinkState::Connected => "connected",
            LinkState::Resuming => "resuming",
            LinkState::Over => "over",
        }
    }
}

/// Something the call tells the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToModel {
    /// How much of the reply playing now the caller has heard.
    Progress(Duration),
    /// The caller barged in, `played` into the reply: stop and cut it.
    Interrupt(Duration),
}

/// The model link of one call (see the module docs).
#[derive(Debug)]
pub(crate) struct ModelLink {
    state: LinkState,
    /// How the session said it closed (its own `Closed` event).
    closed_clean: Option<bool>,
    /// Caller audio is held back (the call is on hold).
    paused: bool,
    /// The `transfer_call` awaiting its outcome.
    transfer: Option<ToolCallId>,
    outbox: VecDeque<ToModel>,
}

impl ModelLink {
    /// A link to a model not opened yet.
    pub(crate) fn new() -> ModelLink {
        ModelLink {
            state: LinkState::Idle,
            closed_clean: None,
            paused: false,
            transfer: None,
            outbox: VecDeque::with_capacity(4),
        }
    }

    /// The state.
    pub(crate) fn state(&self) -> LinkState {
        self.state
    }

    /// Opening started.
    pub(crate) fn opening(&mut self) {
        self.state = LinkState::Opening;
    }

    /// Opening finished: connected, or failed.
    pub(crate) fn opened(&mut self, ok: bool) {
        self.state = if ok {
            LinkState::Connected
        } else {
            LinkState::Over
        };
    }

    /// The session's next event, before it is handled.
    pub(crate) fn on_event(&mut self, ev: &ModelEvent) {
        match ev {
            ModelEvent::Reconnecting { .. } => self.state = LinkState::Resuming,
            ModelEvent::Resumed => self.state = LinkState::Connected,
            ModelEvent::Closed { clean, .. } => {
                self.state = LinkState::Over;
                self.closed_clean = Some(*clean);
            }
            _ => {}
        }
    }

    /// The event stream ended without a `Closed` event.
    pub(crate) fn events_ended(&mut self) {
        self.state = LinkState::Over;
    }

    /// Whether the session's events are still read (until it is over).
    pub(crate) fn reads_events(&self) -> bool {
        self.state != LinkState::Over
    }

    /// The session was closed by the call: how cleanly, preferring what
    /// the session itself reported.
    pub(crate) fn closed(&mut self, handshake_clean: bool) -> bool {
        self.state = LinkState::Over;
        self.closed_clean.unwrap_or(handshake_clean)
    }

    /// Hold: caller audio stops going to the model.
    pub(crate) fn pause_audio(&mut self) {
        self.paused = true;
    }

    /// Un-hold.
    pub(crate) fn resume_audio(&mut self) {
        self.paused = false;
    }

    /// Whether caller audio goes to the model now; `talking`: the call is
    /// in its conversation (not ringing, not ending). A resuming session
    /// still takes it (it holds a bounded amount for the new connection).
    pub(crate) fn takes_audio(&self, talking: bool) -> bool {
        talking && !self.paused && matches!(self.state, LinkState::Connected | LinkState::Resuming)
    }

    /// The model asked for a transfer: its tool call awaits the outcome.
    pub(crate) fn transfer_requested(&mut self, id: ToolCallId) {
        self.transfer = Some(id);
    }

    /// The pending transfer's tool call, taken to answer it.
    pub(crate) fn take_transfer(&mut self) -> Option<ToolCallId> {
        self.transfer.take()
    }

    /// Tells the model where the reply playing now stands.
    pub(crate) fn progress(&mut self, played: Duration) {
        self.outbox.push_back(ToModel::Progress(played));
    }

    /// Tells the model the caller barged in, `played` into its reply.
    pub(crate) fn interrupt(&mut self, played: Duration) {
        self.outbox.push_back(ToModel::Interrupt(played));
    }

    /// The next thing to tell the model, in order. Nothing is kept for a
    /// session that is over.
    pub(crate) fn poll_send(&mut self) -> Option<ToModel> {
        if self.state == LinkState::Over {
            self.outbox.clear();
        }
        self.outbox.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_llm_bridge::CloseReason;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_state_follows_opening_resumption_and_close() {
        let mut l = ModelLink::new();
        assert_eq!(l.state(), LinkState::Idle);
        l.opening();
        assert_eq!(l.state(), LinkState::Opening);
        l.opened(true);
        assert_eq!(l.state(), LinkState::Connected);
        l.on_event(&ModelEvent::Reconnecting {
            reason: CloseReason::ConnectionLost,
        });
        assert_eq!(l.state(), LinkState::Resuming);
        l.on_event(&ModelEvent::Resumed);
        assert_eq!(l.state(), LinkState::Connected);
        assert!(l.reads_events());
        l.on_event(&ModelEvent::Closed {
            reason: CloseReason::ConnectionLost,
            clean: false,
        });
        assert_eq!(l.state(), LinkState::Over);
        assert!(!l.reads_events());
        assert!(!l.closed(true), "the session's own report wins");
    }

    #[test]
    fn a_failed_open_is_over_and_a_clean_close_is_taken_from_the_handshake() {
        let mut l = ModelLink::new();
        l.opening();
        l.opened(false);
        assert_eq!(l.state(), LinkState::Over);
        let mut l = ModelLink::new();
        l.opened(true);
        assert!(l.closed(true));
    }

    #[test]
    fn caller_audio_goes_only_to_a_live_session_in_conversation_and_not_on_hold() {
        let mut l = ModelLink::new();
        assert!(!l.takes_audio(true), "not open");
        l.opened(true);
        assert!(l.takes_audio(true));
        assert!(!l.takes_audio(false), "not in conversation");
        l.pause_audio();
        assert!(!l.takes_audio(true));
        l.resume_audio();
        l.on_event(&ModelEvent::Reconnecting {
            reason: CloseReason::ConnectionLost,
        });
        assert!(l.takes_audio(true), "a resuming session holds it");
        l.events_ended();
        assert!(!l.takes_audio(true));
        assert!(!l.reads_events(), "a stream that ended is not read again");
        assert_eq!(l.state().as_str(), "over");
    }

    #[test]
    fn a_barge_in_is_told_even_while_resuming_in_order() {
        let mut l = ModelLink::new();
        l.opened(true);
        l.on_event(&ModelEvent::Reconnecting {
            reason: CloseReason::ConnectionLost,
        });
        l.progress(ms(200));
        l.interrupt(ms(260));
        assert_eq!(l.poll_send(), Some(ToModel::Progress(ms(200))));
        assert_eq!(l.poll_send(), Some(ToModel::Interrupt(ms(260))));
        assert_eq!(l.poll_send(), None);
    }

    #[test]
    fn nothing_is_sent_to_a_session_that_is_over() {
        let mut l = ModelLink::new();
        l.opened(true);
        l.interrupt(ms(1));
        l.events_ended();
        assert_eq!(l.poll_send(), None);
    }

    #[test]
    fn the_transfer_id_is_taken_once() {
        let mut l = ModelLink::new();
        l.transfer_requested(ToolCallId("t1".into()));
        assert_eq!(l.take_transfer(), Some(ToolCallId("t1".into())));
        assert_eq!(l.take_transfer(), None);
    }
}
