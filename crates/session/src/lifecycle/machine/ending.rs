//! The ending half of [`CallMachine`]: entering [`State::Ending`] with its
//! one reason, emitting each cleanup step exactly once, and the few inputs
//! that still count while ending (peer BYE, a 2xx crossing our CANCEL, the
//! model's close, playback drained, the drain and cleanup bounds).

use std::time::Instant;

use tracing::{debug, warn};

use super::{CallMachine, Playback};
use crate::lifecycle::action::{Action, EndOutcome, Metric};
use crate::lifecycle::input::{MediaInput, ModelInput, SipInput};
use crate::lifecycle::state::{EndReason, Ending, SipStep, State};
use crate::lifecycle::timer::Timer;

impl CallMachine {
    /// Ends the call for `reason`, caused on our side (or by a timer): the
    /// SIP step follows from the state.
    pub(super) fn end_ours(
        &mut self,
        now: Instant,
        state: State,
        reason: EndReason,
        farewell: bool,
    ) -> State {
        let sip = match &state {
            State::Ending(_) | State::Closed { .. } => {
                debug!(
                    reason = reason.as_str(),
                    "already ending; first end reason stands"
                );
                return state;
            }
            State::Created => SipStep::Done,
            State::Ringing { .. } => {
                let (code, retry_after) = match reason {
                    EndReason::Cancelled => (487, None),
                    EndReason::Shutdown => (503, self.config.shutdown_retry_after),
                    EndReason::AgentHangup => (603, None),
                    _ => (500, None),
                };
                SipStep::Reject { code, retry_after }
            }
            State::Dialling { .. } => SipStep::Cancel,
            State::Answered { .. }
            | State::Active { .. }
            | State::OnHold { .. }
            | State::Transferring { .. } => SipStep::Bye,
        };
        let at = state.answered_at();
        self.end(now, at, reason, sip, farewell)
    }

    /// Enters [`State::Ending`] with its one reason; `farewell` waits for
    /// queued playback (if any) before the SIP step.
    pub(super) fn end(
        &mut self,
        now: Instant,
        answered_at: Option<Instant>,
        reason: EndReason,
        sip: SipStep,
        farewell: bool,
    ) -> State {
        debug!(reason = reason.as_str(), "call ending");
        self.timers.clear_all();
        let farewell = farewell && self.playback.busy();
        if farewell {
            self.timers
                .set(Timer::Drain, now + self.config.farewell_drain);
        }
        let ending = Ending {
            reason,
            answered_at,
            farewell,
            sip,
            stop_media: true,
        };
        self.advance_ending(now, ending)
    }

    /// Emits every cleanup step that is due now; closes the call when none
    /// is outstanding.
    pub(super) fn advance_ending(&mut self, now: Instant, mut e: Ending) -> State {
        if e.farewell && self.playback.busy() {
            return State::Ending(e);
        }
        e.farewell = false;
        self.timers.clear(Timer::Drain);
        match e.sip {
            SipStep::Bye => {
                if !self.peer_bye && !self.bye_sent {
                    self.bye_sent = true;
                    self.emit(Action::SendBye);
                }
                e.sip = SipStep::Done;
            }
            SipStep::Cancel => {
                self.emit(Action::SendCancel);
                e.sip = SipStep::AwaitInviteFinal;
            }
            SipStep::Reject { code, retry_after } => {
                self.final_status = Some(code);
                self.emit(Action::Reject { code, retry_after });
                e.sip = SipStep::Done;
            }
            SipStep::AwaitInviteFinal | SipStep::Done => {}
        }
        if self.model.close().emit {
            self.emit(Action::CloseModel);
        }
        if e.stop_media {
            e.stop_media = false;
            self.emit(Action::StopMedia);
        }
        if self.model.awaiting_close() || e.sip == SipStep::AwaitInviteFinal {
            if self.timers.get(Timer::Cleanup).is_none() {
                self.timers
                    .set(Timer::Cleanup, now + self.config.cleanup_join);
            }
            return State::Ending(e);
        }
        self.timers.clear_all();
        self.emit(Action::FinalizeRecording);
        let broke = matches!(
            e.reason,
            EndReason::ModelFailure
                | EndReason::RtpTimeout
                | EndReason::Error
                | EndReason::AckTimeout
        );
        // A caller who gives up before the answer (CANCEL) ended the call
        // normally: nothing failed on our side.
        let gave_up = e.reason == EndReason::Cancelled;
        let outcome = if (e.answered_at.is_none() && !gave_up) || broke {
            EndOutcome::Failed
        } else {
            EndOutcome::Ended
        };
        self.emit(Action::WriteStoreEnd {
            reason: e.reason,
            outcome,
            sip_status: self.final_status,
        });
        if let Some(at) = e.answered_at {
            self.metric(Metric::CallDuration(now.saturating_duration_since(at)));
        }
        self.emit(Action::Closed);
        State::Closed { reason: e.reason }
    }

    // ---- inputs while ending: only cleanup progress counts ----

    pub(super) fn ending_sip(&mut self, now: Instant, mut e: Ending, input: SipInput) -> State {
        match input {
            SipInput::Bye => {
                self.peer_bye = true;
                if e.sip == SipStep::Bye {
                    e.sip = SipStep::Done;
                }
                e.farewell = false;
                self.advance_ending(now, e)
            }
            SipInput::Answered if e.sip == SipStep::AwaitInviteFinal => {
                debug!("2xx crossed our CANCEL: ending the dialog with BYE");
                self.final_status = Some(200);
                e.sip = SipStep::Bye;
                self.advance_ending(now, e)
            }
            SipInput::Failed { code } if e.sip == SipStep::AwaitInviteFinal => {
                self.final_status = Some(code);
                e.sip = SipStep::Done;
                self.advance_ending(now, e)
            }
            input => Self::ignore_ending(e, &input),
        }
    }

    pub(super) fn ending_model(&mut self, now: Instant, mut e: Ending, input: ModelInput) -> State {
        match input {
            ModelInput::Closed { clean } => {
                debug!(clean, "model session closed");
                self.model.on_closed();
                self.advance_ending(now, e)
            }
            ModelInput::TurnComplete => self.advance_ending(now, e),
            ModelInput::Interrupted | ModelInput::SpeechStarted if e.farewell => {
                self.emit(Action::ClearPlayback);
                self.metric(Metric::BargeIn { local: false });
                self.playback = Playback::default();
                e.farewell = false;
                self.advance_ending(now, e)
            }
            input => Self::ignore_ending(e, &input),
        }
    }

    pub(super) fn ending_media(&mut self, now: Instant, e: Ending, input: MediaInput) -> State {
        match input {
            MediaInput::PlaybackDrained => self.advance_ending(now, e),
            input => Self::ignore_ending(e, &input),
        }
    }

    pub(super) fn ending_timer(&mut self, now: Instant, mut e: Ending, timer: Timer) -> State {
        match timer {
            Timer::Drain => {
                debug!("farewell drain bound reached");
                e.farewell = false;
                self.advance_ending(now, e)
            }
            Timer::Cleanup => {
                warn!(
                    model = self.model.awaiting_close(),
                    invite = e.sip == SipStep::AwaitInviteFinal,
                    "cleanup bound reached; not waiting any longer"
                );
                self.model.give_up_waiting();
                if e.sip == SipStep::AwaitInviteFinal {
                    e.sip = SipStep::Done;
                }
                self.advance_ending(now, e)
            }
            timer => Self::ignore_ending(e, &timer),
        }
    }

    pub(super) fn ignore_ending(e: Ending, input: &dyn std::fmt::Debug) -> State {
        debug!(
            reason = e.reason.as_str(),
            input = %crate::log_name::Variant(input),
            "call already ending; the first end reason stands"
        );
        State::Ending(e)
    }
}
