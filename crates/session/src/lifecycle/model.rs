//! The call's one model session slot. Opening is possible exactly once per
//! call by construction: `OpenModel` can only be produced by spending the
//! slot's [`OpenToken`], which is not `Clone`, is created in one place
//! ([`ModelSlot::new`]) and is consumed by [`ModelSlot::open`].

use std::mem;
use std::time::{Duration, Instant};

use super::action::Action;

/// The single permission to open the model. Private field: only this module
/// creates one, once per [`ModelSlot`].
#[derive(Debug)]
pub(crate) struct OpenToken(());

impl OpenToken {
    fn spend(self) -> Action {
        Action::OpenModel
    }
}

/// Where the call's model session is in its life.
#[derive(Debug)]
pub(crate) enum ModelSlot {
    /// Not opened; holds the one permission to open.
    Unopened(OpenToken),
    /// `OpenModel` emitted, `CloseModel` not yet.
    Open {
        /// When `OpenModel` was emitted.
        since: Instant,
        /// Whether the model reported ready.
        ready: bool,
        /// Whether the session already reported `Closed` by itself.
        gone: bool,
    },
    /// `CloseModel` emitted; waiting for the session's `Closed`.
    Closing,
    /// `CloseModel` emitted and the session is closed (or the wait was
    /// abandoned at the cleanup bound).
    Released,
    /// The call ended without ever opening the model; the token is gone.
    NeverOpened,
}

/// What [`ModelSlot::close`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseStep {
    /// Emit `CloseModel`.
    pub(crate) emit: bool,
    /// Wait for the session's `Closed` before finishing.
    pub(crate) wait: bool,
}

impl ModelSlot {
    /// A fresh slot holding the call's only [`OpenToken`].
    pub(crate) fn new() -> Self {
        ModelSlot::Unopened(OpenToken(()))
    }

    /// Spends the token: `Some(OpenModel)` the first time, `None` ever after.
    pub(crate) fn open(&mut self, now: Instant) -> Option<Action> {
        match mem::replace(self, ModelSlot::NeverOpened) {
            ModelSlot::Unopened(token) => {
                *self = ModelSlot::Open {
                    since: now,
                    ready: false,
                    gone: false,
                };
                Some(token.spend())
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Whether `OpenModel` was emitted.
    pub(crate) fn is_opened(&self) -> bool {
        !matches!(self, ModelSlot::Unopened(_) | ModelSlot::NeverOpened)
    }

    /// Whether the model is open, ready and not gone.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(
            self,
            ModelSlot::Open {
                ready: true,
                gone: false,
                ..
            }
        )
    }

    /// Whether the model is open but not ready yet.
    pub(crate) fn is_opening(&self) -> bool {
        matches!(
            self,
            ModelSlot::Open {
                ready: false,
                gone: false,
                ..
            }
        )
    }

    /// Records the ready event; the setup latency the first time.
    pub(crate) fn on_ready(&mut self, now: Instant) -> Option<Duration> {
        match self {
            ModelSlot::Open {
                since,
                ready: ready @ false,
                gone: false,
            } => {
                *ready = true;
                Some(now.saturating_duration_since(*since))
            }
            _ => None,
        }
    }

    /// Records the session's `Closed` event.
    pub(crate) fn on_closed(&mut self) {
        match self {
            ModelSlot::Open { gone, .. } => *gone = true,
            ModelSlot::Closing => *self = ModelSlot::Released,
            ModelSlot::Unopened(_) | ModelSlot::Released | ModelSlot::NeverOpened => {}
        }
    }

    /// Starts closing: `CloseModel` once if it was opened, and whether to
    /// wait for the session's `Closed`. An unopened slot loses its token.
    pub(crate) fn close(&mut self) -> CloseStep {
        let (next, step) = match mem::replace(self, ModelSlot::NeverOpened) {
            ModelSlot::Unopened(_) | ModelSlot::NeverOpened => (
                ModelSlot::NeverOpened,
                CloseStep {
                    emit: false,
                    wait: false,
                },
            ),
            ModelSlot::Open { gone: true, .. } => (
                ModelSlot::Released,
                CloseStep {
                    emit: true,
                    wait: false,
                },
            ),
            ModelSlot::Open { gone: false, .. } => (
                ModelSlot::Closing,
                CloseStep {
                    emit: true,
                    wait: true,
                },
            ),
            ModelSlot::Closing => (
                ModelSlot::Closing,
                CloseStep {
                    emit: false,
                    wait: true,
                },
            ),
            ModelSlot::Released => (
                ModelSlot::Released,
                CloseStep {
                    emit: false,
                    wait: false,
                },
            ),
        };
        *self = next;
        step
    }

    /// Whether `CloseModel` was emitted and `Closed` has not come yet.
    pub(crate) fn awaiting_close(&self) -> bool {
        matches!(self, ModelSlot::Closing)
    }

    /// Stops waiting for `Closed` (the cleanup bound passed).
    pub(crate) fn give_up_waiting(&mut self) {
        if let ModelSlot::Closing = self {
            *self = ModelSlot::Released;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_yields_open_model_exactly_once() {
        let t0 = Instant::now();
        let mut slot = ModelSlot::new();
        assert_eq!(slot.open(t0), Some(Action::OpenModel));
        assert_eq!(slot.open(t0), None);
        slot.close();
        assert_eq!(slot.open(t0), None);
    }

    #[test]
    fn closing_an_unopened_slot_forfeits_the_token() {
        let t0 = Instant::now();
        let mut slot = ModelSlot::new();
        assert_eq!(
            slot.close(),
            CloseStep {
                emit: false,
                wait: false
            }
        );
        assert_eq!(slot.open(t0), None);
    }

    #[test]
    fn close_is_emitted_once_and_waits_only_for_a_live_session() {
        let t0 = Instant::now();
        let mut slot = ModelSlot::new();
        slot.open(t0);
        assert_eq!(
            slot.close(),
            CloseStep {
                emit: true,
                wait: true
            }
        );
        assert_eq!(
            slot.close(),
            CloseStep {
                emit: false,
                wait: true
            }
        );
        slot.on_closed();
        assert!(!slot.awaiting_close());
        assert!(!slot.close().emit);

        let mut gone = ModelSlot::new();
        gone.open(t0);
        gone.on_closed();
        assert_eq!(
            gone.close(),
            CloseStep {
                emit: true,
                wait: false
            }
        );
    }
}
