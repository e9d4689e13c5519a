//! The call task's side of the event bus (`crate::events`): what it
//! publishes, in the order it happens.

use crate::events::CallEvent;

use super::Call;

/// Outbox rows a call keeps while the store writer's queue is full.
const MAX_PENDING_OUTBOX: usize = 1024;

impl Call {
    /// Publishes one of the call's events (never waits), and keeps its
    /// webhook outbox rows (for its profile's receivers, or the global
    /// ones) for the next store flush.
    pub(super) fn publish(&mut self, event: CallEvent) {
        let e = self.events.publish(event);
        if let Some(w) = self
            .profile
            .event_receivers(self.shared.cfg.webhooks.as_ref())
            && self.pending_outbox.len() < MAX_PENDING_OUTBOX
        {
            self.pending_outbox.extend(w.rows(&e));
        }
    }

    /// Publishes the transcript turns closed since the last call.
    pub(super) fn publish_turns(&mut self) {
        for t in self.transcript.take_fresh() {
            self.publish(CallEvent::TranscriptTurn {
                caller: t.speaker == callbridge_crm_store::Speaker::Caller,
                text: t.text.into_inner(),
                turn: t.seq,
                start_ms: t.start_ms,
                end_ms: t.end_ms,
            });
        }
    }
}
