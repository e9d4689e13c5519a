//! [`CallMachine`]: the sans-IO lifecycle of one call. Inputs go in with
//! `now`; actions and the next deadline come out. Each handler takes the
//! current [`State`] by value and returns the next one.

use std::collections::VecDeque;
use std::mem;
use std::time::Instant;

use tracing::{debug, warn};

use super::action::{Action, Metric, StoreState};
use super::config::Config;
use super::input::{Command, FailureOutcome, Input, MediaInput, ModelInput, SipInput};
use super::model::ModelSlot;

mod ending;
mod transitions;
use super::state::{Direction, EndReason, Phase, SipStep, State};
use super::timer::{Timer, TimerTable};

/// What the machine knows of the playback queue, from `Audio`,
/// `TurnComplete`, `PlaybackDrained` and barge-in.
#[derive(Debug, Clone, Copy, Default)]
struct Playback {
    /// Audio was queued and the queue has not reported empty since.
    queued: bool,
    /// The model is in a reply (audio arrived, no turn complete since).
    speaking: bool,
}

impl Playback {
    fn busy(self) -> bool {
        self.queued || self.speaking
    }
}

/// The lifecycle of one call as a pure state machine.
///
/// Build one per call with [`CallMachine::new`], then run the driver loop:
/// feed every event with [`handle_input`](Self::handle_input), drain
/// [`poll_action`](Self::poll_action) until `None` and execute each action in
/// order, sleep until [`poll_timeout`](Self::poll_timeout) or the next event,
/// and call [`handle_timeout`](Self::handle_timeout) when the deadline
/// passes. After [`Action::Closed`] the machine emits nothing more.
///
/// The session task's loop, in outline (the machine itself never awaits):
///
/// ```text
/// let mut call = CallMachine::new(Direction::Inbound, config);
/// call.handle_input(now(), Input::Sip(SipInput::Invite));
/// loop {
///     while let Some(action) = call.poll_action() {
///         if action == Action::Closed { join tasks; remove registry entry; return }
///         execute(action)            // send 180/200/BYE, open model, write store, ...
///     }
///     let deadline = call.poll_timeout();
///     select! {
///         ev = sip_mailbox.recv()   => call.handle_input(now(), Input::Sip(map(ev))),
///         ev = model_events.recv()  => call.handle_input(now(), Input::Model(map(ev))),
///         ev = media_events.recv()  => call.handle_input(now(), Input::Media(map(ev))),
///         cmd = operator.recv()     => call.handle_input(now(), Input::Command(cmd)),
///         _ = sleep_until(deadline) => call.handle_timeout(now()),
///     }
/// }
/// ```
///
/// Every model `Audio` chunk, `TurnComplete` and every playback-queue
/// `PlaybackDrained` must be fed: the machine tracks whether playback is
/// busy from them (the farewell wait and the no-speech timer depend on it).
///
/// ```
/// use std::time::{Duration, Instant};
/// use callbridge_session::lifecycle::{
///     Action, CallMachine, Config, Direction, Input, ModelInput, SipInput,
/// };
///
/// let t0 = Instant::now();
/// let mut call = CallMachine::new(Direction::Inbound, Config::default());
/// call.handle_input(t0, Input::Sip(SipInput::Invite));
/// call.handle_input(t0 + Duration::from_millis(300), Input::Model(ModelInput::Ready));
/// let actions: Vec<Action> = std::iter::from_fn(|| call.poll_action()).collect();
/// assert!(actions.contains(&Action::Answer));
/// assert!(actions.contains(&Action::StartGreeting));
/// ```
#[derive(Debug)]
pub struct CallMachine {
    config: Config,
    direction: Direction,
    state: State,
    timers: TimerTable,
    model: ModelSlot,
    playback: Playback,
    /// The INVITE's final status, sent or received.
    final_status: Option<u16>,
    /// The peer ended the dialog with BYE: no BYE may be sent.
    peer_bye: bool,
    /// A BYE was emitted: no second one may be.
    bye_sent: bool,
    outbox: VecDeque<Action>,
    closed_emitted: bool,
}

impl CallMachine {
    /// A machine for one call in [`Phase::Created`]. Its first action is
    /// `WriteStoreState { Created }`, so the store row exists before anything
    /// is signalled or any audio flows. Start it with
    /// [`SipInput::Invite`] (inbound) or [`Command::Dial`] (outbound).
    pub fn new(direction: Direction, config: Config) -> Self {
        let mut outbox = VecDeque::with_capacity(16);
        outbox.push_back(Action::WriteStoreState {
            state: StoreState::Created,
        });
        CallMachine {
            config,
            direction,
            state: State::Created,
            timers: TimerTable::default(),
            model: ModelSlot::new(),
            playback: Playback::default(),
            final_status: None,
            peer_bye: false,
            bye_sent: false,
            outbox,
            closed_emitted: false,
        }
    }

    /// Which side placed the call.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// The end reason, once the call is ending or closed.
    pub fn end_reason(&self) -> Option<EndReason> {
        match &self.state {
            State::Ending(e) => Some(e.reason),
            State::Closed { reason } => Some(*reason),
            _ => None,
        }
    }

    /// Whether [`Action::Closed`] has been emitted.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// The deadline of one timer, if armed.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        self.timers.get(timer)
    }

    /// The next action to execute, in order; `None` when drained.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.outbox.pop_front()
    }

    /// The earliest armed deadline; `None` when no timer is armed (always
    /// `None` once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Feeds one input. Never panics; inputs that mean nothing in the current
    /// state are ignored with a debug log.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if let State::Closed { .. } = self.state {
            debug!(
                input = %crate::log_name::Variant(&input),
                "input after the call closed ignored"
            );
            return;
        }
        let state = mem::replace(&mut self.state, State::Created);
        self.state = match input {
            Input::Sip(i) => self.on_sip(now, state, i),
            Input::Model(i) => self.on_model(now, state, i),
            Input::Media(i) => self.on_media(now, state, i),
            Input::Command(c) => self.on_command(now, state, c),
        };
    }

    /// Fires every timer whose deadline is at or before `now`, in
    /// [`Timer::ALL`] order. Calling it early, late or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.timers.expired(timer, now) {
                self.timers.clear(timer);
                let state = mem::replace(&mut self.state, State::Created);
                self.state = self.on_timer(now, state, timer);
            }
        }
    }

    fn emit(&mut self, action: Action) {
        debug_assert!(!self.closed_emitted, "action after Closed: {action:?}");
        if self.closed_emitted {
            warn!(
                action = %crate::log_name::Variant(&action),
                "action after Closed dropped"
            );
            return;
        }
        if action == Action::Closed {
            self.closed_emitted = true;
        }
        self.outbox.push_back(action);
    }

    fn metric(&mut self, metric: Metric) {
        self.emit(Action::EmitMetric(metric));
    }

    fn ignore(state: State, input: &dyn std::fmt::Debug) -> State {
        debug!(
            phase = state.phase().as_str(),
            input = %crate::log_name::Variant(input),
            "input ignored in this phase"
        );
        state
    }

    fn open_model(&mut self, now: Instant) {
        if let Some(open) = self.model.open(now) {
            self.emit(open);
            self.timers
                .set(Timer::ModelSetup, now + self.config.model_setup);
        }
    }

    // ---- SIP ----

    fn on_sip(&mut self, now: Instant, state: State, input: SipInput) -> State {
        match (state, input) {
            (State::Created, SipInput::Invite) if self.direction == Direction::Inbound => {
                self.start_inbound(now)
            }
            (State::Dialling { since }, SipInput::Provisional { code }) => {
                debug!(code, "provisional response");
                State::Dialling { since }
            }
            (State::Dialling { since }, SipInput::Answered) => self.outbound_answered(now, since),
            (State::Dialling { .. }, SipInput::Failed { code }) => {
                self.final_status = Some(code);
                let reason = match FailureOutcome::from_status(code) {
                    FailureOutcome::Busy => EndReason::Busy,
                    FailureOutcome::NoAnswer => EndReason::NoAnswer,
                    FailureOutcome::Unavailable | FailureOutcome::Rejected => EndReason::Rejected,
                };
                self.end(now, None, reason, SipStep::Done, false)
            }
            (state @ State::Ringing { .. }, SipInput::Cancel) => {
                self.end_ours(now, state, EndReason::Cancelled, false)
            }
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                SipInput::Bye,
            ) => {
                self.peer_bye = true;
                let at = state.answered_at();
                self.end(now, at, EndReason::CallerHangup, SipStep::Done, false)
            }
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                SipInput::Ack,
            ) => {
                debug!("ACK received");
                state
            }
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                SipInput::AckTimeout,
            ) if self.direction == Direction::Inbound => {
                self.end_ours(now, state, EndReason::AckTimeout, false)
            }
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                SipInput::SessionExpired,
            ) => self.end_ours(now, state, EndReason::Error, false),
            (State::Active { at }, SipInput::Hold) => {
                self.emit(Action::PauseCallerAudio);
                let no_speech_left = self
                    .timers
                    .get(Timer::NoSpeech)
                    .map_or(self.config.no_speech, |d| d.saturating_duration_since(now));
                self.timers.clear(Timer::NoSpeech);
                self.timers.clear(Timer::ReplyWait);
                self.timers.clear(Timer::RtpInactivity);
                State::OnHold { at, no_speech_left }
            }
            (State::OnHold { at, no_speech_left }, SipInput::Resume) => {
                self.emit(Action::ResumeCallerAudio);
                self.timers.set(Timer::NoSpeech, now + no_speech_left);
                self.arm_rtp_inactivity(now);
                State::Active { at }
            }
            (State::Active { at }, SipInput::Dtmf(digit)) => {
                self.emit(Action::SendDtmfToModel { digit });
                self.reset_no_speech(now);
                State::Active { at }
            }
            (state @ State::Transferring { .. }, SipInput::ReferAccepted) => {
                self.end_ours(now, state, EndReason::Transferred, false)
            }
            (State::Transferring { at, target, held }, SipInput::ReferFailed { code }) => {
                debug!(code, "REFER failed");
                self.transfer_fallback(now, at, target, held)
            }
            (
                State::Transferring {
                    at,
                    target,
                    held: false,
                },
                SipInput::Hold,
            ) => {
                self.emit(Action::PauseCallerAudio);
                self.timers.clear(Timer::RtpInactivity);
                State::Transferring {
                    at,
                    target,
                    held: true,
                }
            }
            (
                State::Transferring {
                    at,
                    target,
                    held: true,
                },
                SipInput::Resume,
            ) => {
                self.emit(Action::ResumeCallerAudio);
                self.arm_rtp_inactivity(now);
                State::Transferring {
                    at,
                    target,
                    held: false,
                }
            }
            (State::Ending(e), input) => self.ending_sip(now, e, input),
            (state, input) => Self::ignore(state, &input),
        }
    }

    // ---- model ----

    fn on_model(&mut self, now: Instant, state: State, input: ModelInput) -> State {
        match input {
            ModelInput::Audio => {
                // The model replied: it owes nothing any more.
                self.timers.clear(Timer::ReplyWait);
                self.playback.queued = true;
                self.playback.speaking = true;
                return state;
            }
            ModelInput::Reconnecting => {
                self.timers.clear(Timer::ReplyWait);
                return state;
            }
            // Any sign of the model answering, or of the caller talking
            // over it, settles what it owed.
            ModelInput::TurnComplete
            | ModelInput::EndCall
            | ModelInput::TransferCall { .. }
            | ModelInput::Interrupted
            | ModelInput::SpeechStarted => self.timers.clear(Timer::ReplyWait),
            _ => {}
        }
        match input {
            // A model that finished its turn, closed or broke sends no
            // more audio: only what is queued may still play.
            ModelInput::TurnComplete
            | ModelInput::Closed { .. }
            | ModelInput::Error { fatal: true } => self.playback.speaking = false,
            ModelInput::GoingAway => {
                self.metric(Metric::ModelGoingAway);
                return state;
            }
            ModelInput::Error { fatal: false } => {
                self.metric(Metric::ModelError);
                return state;
            }
            _ => {}
        }
        match (state, input) {
            (State::Ending(e), input) => self.ending_model(now, e, input),
            (State::Active { at }, ModelInput::CallerTurnEnded) => {
                self.reset_no_speech(now);
                if !self.playback.speaking {
                    self.expect_reply(now);
                }
                State::Active { at }
            }
            (State::Active { at }, ModelInput::TurnComplete) if !self.playback.busy() => {
                self.reset_no_speech(now);
                State::Active { at }
            }
            (state, ModelInput::TurnComplete) => state,
            (state, ModelInput::Ready) if self.model.is_opening() => {
                self.timers.clear(Timer::ModelSetup);
                if let Some(after) = self.model.on_ready(now) {
                    self.metric(Metric::ModelReadyAfter(after));
                }
                match state {
                    State::Ringing { since } => self.answer_inbound(now, since),
                    State::Answered { at } => self.enter_active(now, at),
                    other => other,
                }
            }
            (state, ModelInput::Closed { clean }) if self.model.is_opened() => {
                debug!(clean, "model session closed by itself");
                self.model.on_closed();
                self.model_failed(now, state)
            }
            (state, ModelInput::Error { fatal: true }) if self.model.is_opened() => {
                self.model_failed(now, state)
            }
            (
                state @ (State::Active { .. } | State::OnHold { .. } | State::Transferring { .. }),
                ModelInput::Interrupted | ModelInput::SpeechStarted,
            ) => {
                self.barge_in(false);
                if let State::Active { .. } = state {
                    self.reset_no_speech(now);
                }
                state
            }
            (state @ (State::Active { .. } | State::OnHold { .. }), ModelInput::EndCall) => {
                let farewell = matches!(state, State::Active { .. });
                self.end_ours(now, state, EndReason::AgentHangup, farewell)
            }
            (State::Active { at }, ModelInput::TransferCall { target }) => {
                self.emit(Action::Refer {
                    target: target.clone(),
                });
                self.timers.clear(Timer::NoSpeech);
                self.timers
                    .set(Timer::Transfer, now + self.config.transfer_timeout);
                State::Transferring {
                    at,
                    target,
                    held: false,
                }
            }
            (
                state
                @ (State::Answered { .. } | State::OnHold { .. } | State::Transferring { .. }),
                ModelInput::TransferCall { target },
            ) => {
                debug!(
                    phase = state.phase().as_str(),
                    "transfer_call refused in this phase"
                );
                self.emit(Action::TransferFailed { target });
                state
            }
            (state, input) => Self::ignore(state, &input),
        }
    }

    // ---- media ----

    fn on_media(&mut self, now: Instant, state: State, input: MediaInput) -> State {
        match input {
            MediaInput::PlaybackDrained => self.playback.queued = false,
            // Each second in which packets arrived (at its end): only the
            // armed timer moves (it is armed from the answer, and not
            // while held or ending).
            MediaInput::MediaArrived => {
                if self.timers.get(Timer::RtpInactivity).is_some() {
                    self.arm_rtp_inactivity(now);
                }
                return state;
            }
            _ => {}
        }
        match (state, input) {
            (State::Ending(e), input) => self.ending_media(now, e, input),
            (state, MediaInput::FirstCallerAudio) => {
                debug!(phase = state.phase().as_str(), "first caller audio");
                state
            }
            (State::Active { at }, MediaInput::CallerSpeech) => {
                self.reset_no_speech(now);
                // The caller is still talking: the model may wait for them.
                if self.timers.get(Timer::ReplyWait).is_some() {
                    self.expect_reply(now);
                }
                State::Active { at }
            }
            (State::Active { at }, MediaInput::PlaybackDrained) => {
                // The caller's silence counts from the end of our speech.
                self.reset_no_speech(now);
                State::Active { at }
            }
            (state, MediaInput::PlaybackDrained) => state,
            (
                state @ (State::Active { .. } | State::Transferring { held: false, .. }),
                MediaInput::SustainedSpeech,
            ) if self.playback.busy() => {
                self.barge_in(true);
                if let State::Active { .. } = state {
                    self.reset_no_speech(now);
                }
                state
            }
            (state @ State::Transferring { held: true, .. }, MediaInput::RtpTimeout) => {
                Self::ignore(state, &input)
            }
            (
                state
                @ (State::Answered { .. } | State::Active { .. } | State::Transferring { .. }),
                MediaInput::RtpTimeout,
            ) => self.end_ours(now, state, EndReason::RtpTimeout, false),
            (state, input) => Self::ignore(state, &input),
        }
    }

    // ---- commands ----

    fn on_command(&mut self, now: Instant, state: State, command: Command) -> State {
        match (state, command) {
            (State::Created, Command::Dial) if self.direction == Direction::Outbound => {
                self.start_outbound(now)
            }
            (State::Ending(e), Command::ShutdownNow) => {
                let mut e = e;
                e.farewell = false;
                self.advance_ending(now, e)
            }
            (state @ (State::Ending(_) | State::Closed { .. }), command) => {
                Self::ignore(state, &command)
            }
            (state, Command::Hangup) => self.end_ours(now, state, EndReason::AgentHangup, false),
            (state, Command::AmdEnd(end)) => self.end_ours(now, state, EndReason::from(end), false),
            (state, Command::ShutdownNow) => self.end_ours(now, state, EndReason::Shutdown, false),
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                Command::Shutdown { deadline },
            ) if deadline > now => {
                let at = self
                    .timers
                    .get(Timer::ShutdownDrain)
                    .map_or(deadline, |d| d.min(deadline));
                self.timers.set(Timer::ShutdownDrain, at);
                state
            }
            (state, Command::Shutdown { .. }) => {
                self.end_ours(now, state, EndReason::Shutdown, false)
            }
            (state, command @ Command::Dial) => Self::ignore(state, &command),
        }
    }

    // ---- timers ----

    fn on_timer(&mut self, now: Instant, state: State, timer: Timer) -> State {
        match (state, timer) {
            (State::Ringing { since }, Timer::AnswerWait) => self.answer_inbound(now, since),
            (state, Timer::ModelSetup) if self.model.is_opening() => {
                warn!("model not ready within the setup bound");
                self.model_failed(now, state)
            }
            (state @ State::Dialling { .. }, Timer::Ring) => {
                self.end_ours(now, state, EndReason::NoAnswer, false)
            }
            (State::Active { at }, Timer::NoSpeech) if self.playback.busy() => {
                // The caller is listening to a long reply, not silent: the
                // timer stays disarmed until our playback ends.
                State::Active { at }
            }
            (state @ State::Active { .. }, Timer::NoSpeech) => {
                self.end_ours(now, state, EndReason::NoSpeechTimeout, true)
            }
            (state @ State::Active { .. }, Timer::ReplyWait) => {
                let waited = self.config.model_reply_timeout.unwrap_or_default();
                warn!(
                    waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    "the model owed a reply and sent nothing"
                );
                self.metric(Metric::ModelReplyTimeout(waited));
                self.model_failed(now, state)
            }
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                Timer::MaxDuration,
            ) => self.end_ours(now, state, EndReason::MaxDuration, false),
            (
                state
                @ (State::Answered { .. } | State::Active { .. } | State::Transferring { .. }),
                Timer::RtpInactivity,
            ) => {
                tracing::info!("no RTP from the peer since the answer or its last packet");
                self.end_ours(now, state, EndReason::RtpTimeout, false)
            }
            (
                state @ (State::Answered { .. }
                | State::Active { .. }
                | State::OnHold { .. }
                | State::Transferring { .. }),
                Timer::ShutdownDrain,
            ) => self.end_ours(now, state, EndReason::Shutdown, false),
            (State::Transferring { at, target, held }, Timer::Transfer) => {
                debug!("REFER outcome not received in time");
                self.transfer_fallback(now, at, target, held)
            }
            (State::Ending(e), timer) => self.ending_timer(now, e, timer),
            (state, timer) => Self::ignore(state, &timer),
        }
    }
}
