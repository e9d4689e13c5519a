//! The call's timers as a table: one documented [`Timer`] enum and one
//! `Option<Instant>` slot per timer (quinn-proto's `connection/timer.rs`
//! shape). Nothing here reads a clock: deadlines are computed from the `now`
//! passed with each input.

use std::time::Instant;

/// Every timer a call can arm. See the timer table in the
/// [module docs](crate::lifecycle) for when each is armed, paused, cleared and
/// what happens when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Inbound pre-warm: answer even though the model is not ready yet.
    AnswerWait,
    /// The model must report ready within this bound after `OpenModel`.
    ModelSetup,
    /// Outbound: nobody answered the INVITE in time (CANCEL, `NoAnswer`).
    Ring,
    /// No caller speech for this long: polite end (`NoSpeechTimeout`).
    NoSpeech,
    /// The model owes a reply (the caller's turn ended, or the greeting was
    /// requested) and sent nothing for this long: model failure.
    ReplyWait,
    /// No caller media arrived for this long since the answer, the last
    /// packet or the end of a hold: `RtpTimeout`.
    RtpInactivity,
    /// The call has lasted its maximum duration since the answer.
    MaxDuration,
    /// Bound on waiting for the farewell (queued playback) to finish.
    Drain,
    /// Bound on waiting for the REFER outcome.
    Transfer,
    /// Bound on waiting for cleanup acknowledgements (the model's close, the
    /// INVITE's final response after a CANCEL).
    Cleanup,
    /// Graceful shutdown: the drain deadline for an answered call.
    ShutdownDrain,
}

impl Timer {
    /// Every timer, in the order [`CallMachine::handle_timeout`] fires
    /// expired ones.
    ///
    /// [`CallMachine::handle_timeout`]: crate::lifecycle::CallMachine::handle_timeout
    pub const ALL: [Timer; 11] = [
        Timer::AnswerWait,
        Timer::ModelSetup,
        Timer::Ring,
        Timer::NoSpeech,
        Timer::ReplyWait,
        Timer::RtpInactivity,
        Timer::MaxDuration,
        Timer::Drain,
        Timer::Transfer,
        Timer::Cleanup,
        Timer::ShutdownDrain,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// One deadline slot per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    slots: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms (or re-arms) `timer` at `at`.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[timer.index()] = Some(at);
    }

    /// Disarms `timer`; harmless when it is not armed.
    pub(crate) fn clear(&mut self, timer: Timer) {
        self.slots[timer.index()] = None;
    }

    /// Disarms every timer.
    pub(crate) fn clear_all(&mut self) {
        self.slots = [None; Timer::ALL.len()];
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots[timer.index()]
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// Whether `timer` is armed and its deadline is at or before `now`.
    pub(crate) fn expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_earliest_armed_deadline() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::MaxDuration, t0 + Duration::from_secs(60));
        table.set(Timer::NoSpeech, t0 + Duration::from_secs(15));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(15)));
        table.clear(Timer::NoSpeech);
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(60)));
        assert!(!table.expired(Timer::MaxDuration, t0));
        assert!(table.expired(Timer::MaxDuration, t0 + Duration::from_secs(60)));
        table.clear_all();
        assert_eq!(table.next(), None);
    }

    #[test]
    fn all_lists_each_timer_at_its_index() {
        for (i, t) in Timer::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
