//! The live half of [`CallMachine`]: starting a call (INVITE or dial),
//! answering, entering the conversation, barge-in, transfer fallback and
//! model failure handling.

use std::time::Instant;

use tracing::warn;

use super::{CallMachine, Playback};
use crate::lifecycle::action::{Action, Metric, StoreState};
use crate::lifecycle::config::{FirstSpeaker, ModelFailurePolicy, OutboundModelOpen};
use crate::lifecycle::input::TransferTarget;
use crate::lifecycle::state::{Direction, EndReason, SipStep, State};
use crate::lifecycle::timer::Timer;

impl CallMachine {
    /// Barge-in: empty the playback queue. If a reply was in progress it
    /// is one barge-in (one metric, one stored event): the model that
    /// noticed it itself is told what was played; when the call detected
    /// it (`local`), the model is told to stop, at that position. A
    /// barge-in with nothing playing (the model's `Interrupted` after a
    /// local one) only clears.
    pub(super) fn barge_in(&mut self, local: bool) {
        let was_playing = self.playback.busy();
        self.emit(Action::ClearPlayback);
        if was_playing {
            self.emit(if local {
                Action::InterruptModel
            } else {
                Action::ReportPlayedToModel
            });
            self.metric(Metric::BargeIn { local });
        }
        self.playback = Playback::default();
    }

    pub(super) fn model_failed(&mut self, now: Instant, state: State) -> State {
        warn!(phase = state.phase().as_str(), "model failed");
        match state {
            State::Ringing { since } => match self.config.model_failure_before_answer {
                ModelFailurePolicy::Reject503 { retry_after } => self.end(
                    now,
                    None,
                    EndReason::ModelFailure,
                    SipStep::Reject {
                        code: 503,
                        retry_after,
                    },
                    false,
                ),
                ModelFailurePolicy::AnswerThenEnd => {
                    self.emit_answer(now, since);
                    self.play_fallback();
                    self.end(now, Some(now), EndReason::ModelFailure, SipStep::Bye, true)
                }
            },
            state
            @ (State::Answered { .. } | State::Active { .. } | State::Transferring { .. }) => {
                self.play_fallback();
                self.end_ours(now, state, EndReason::ModelFailure, true)
            }
            state @ (State::Dialling { .. } | State::OnHold { .. }) => {
                self.end_ours(now, state, EndReason::ModelFailure, false)
            }
            state => Self::ignore(state, &"model failure"),
        }
    }

    pub(super) fn play_fallback(&mut self) {
        self.emit(Action::PlayFallback);
        self.playback.queued = true;
    }

    pub(super) fn start_inbound(&mut self, now: Instant) -> State {
        self.emit(Action::WriteStoreState {
            state: StoreState::Ringing,
        });
        self.emit(Action::SendRinging);
        self.open_model(now);
        self.timers
            .set(Timer::AnswerWait, now + self.config.answer_wait);
        State::Ringing { since: now }
    }

    pub(super) fn start_outbound(&mut self, now: Instant) -> State {
        self.emit(Action::WriteStoreState {
            state: StoreState::Ringing,
        });
        self.emit(Action::SendInvite);
        self.timers.set(Timer::Ring, now + self.config.ring_timeout);
        if self.config.outbound_model_open == OutboundModelOpen::AtDial {
            self.open_model(now);
        }
        State::Dialling { since: now }
    }

    /// Emits the answer's actions and arms the max-duration timer.
    pub(super) fn emit_answer(&mut self, now: Instant, since: Instant) {
        if self.direction == Direction::Inbound {
            self.emit(Action::Answer);
        }
        self.final_status = Some(200);
        self.timers.clear(Timer::AnswerWait);
        self.timers.clear(Timer::Ring);
        self.timers
            .set(Timer::MaxDuration, now + self.config.max_duration);
        self.arm_rtp_inactivity(now);
        self.emit(Action::WriteStoreState {
            state: StoreState::Answered,
        });
        self.metric(Metric::AnsweredAfter(now.saturating_duration_since(since)));
    }

    pub(super) fn answer_inbound(&mut self, now: Instant, since: Instant) -> State {
        self.emit_answer(now, since);
        if self.model.is_ready() {
            self.enter_active(now, now)
        } else {
            State::Answered { at: now }
        }
    }

    pub(super) fn outbound_answered(&mut self, now: Instant, since: Instant) -> State {
        self.emit_answer(now, since);
        self.open_model(now);
        if self.model.is_ready() {
            self.enter_active(now, now)
        } else {
            State::Answered { at: now }
        }
    }

    /// Answered and the model is ready: the conversation starts.
    pub(super) fn enter_active(&mut self, now: Instant, at: Instant) -> State {
        self.emit(Action::WriteStoreState {
            state: StoreState::Active,
        });
        let agent_first = self.direction == Direction::Inbound
            || self.config.outbound_first_speaker == FirstSpeaker::Agent;
        if agent_first {
            self.emit(Action::StartGreeting);
            self.expect_reply(now);
        }
        self.timers
            .set(Timer::NoSpeech, now + self.config.no_speech);
        State::Active { at }
    }

    /// The model owes a reply from `now`: (re)arms the reply timer, if
    /// one is configured.
    pub(super) fn expect_reply(&mut self, now: Instant) {
        if let Some(t) = self.config.model_reply_timeout {
            self.timers.set(Timer::ReplyWait, now + t);
        }
    }

    /// (Re)arms the RTP inactivity timer from `now`, if one is configured.
    pub(super) fn arm_rtp_inactivity(&mut self, now: Instant) {
        if let Some(d) = self.config.rtp_inactivity {
            self.timers.set(Timer::RtpInactivity, now + d);
        }
    }

    pub(super) fn reset_no_speech(&mut self, now: Instant) {
        self.timers
            .set(Timer::NoSpeech, now + self.config.no_speech);
    }

    pub(super) fn transfer_fallback(
        &mut self,
        now: Instant,
        at: Instant,
        target: TransferTarget,
        held: bool,
    ) -> State {
        self.timers.clear(Timer::Transfer);
        self.emit(Action::TransferFailed { target });
        self.metric(Metric::TransferFailed);
        if held {
            return State::OnHold {
                at,
                no_speech_left: self.config.no_speech,
            };
        }
        self.reset_no_speech(now);
        State::Active { at }
    }
}
