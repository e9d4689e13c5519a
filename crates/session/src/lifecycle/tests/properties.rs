//! Property tests: random sequences of every input with random time
//! advances, random direction and policies. Whatever happens, once the call
//! is over (timers run to their deadlines; a never-started call is hung up)
//! the machine is closed, every resource opened was released exactly once,
//! the model was never opened twice, one store end was written with the
//! first end reason, and nothing followed `Closed`.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::lifecycle::{
    DtmfDigit, FirstSpeaker, Metric, ModelFailurePolicy, OutboundModelOpen, TransferTarget,
};

/// One step of a generated scenario.
#[derive(Debug, Clone)]
enum Op {
    Input(Input),
    /// Graceful shutdown with a deadline this far ahead.
    ShutdownIn(Duration),
    /// Move the clock and fire what expired.
    Advance(Duration),
}

fn input(i: Input) -> Op {
    Op::Input(i)
}

fn sip(i: SipInput) -> Op {
    input(Input::Sip(i))
}

fn model(i: ModelInput) -> Op {
    input(Input::Model(i))
}

fn media(i: MediaInput) -> Op {
    input(Input::Media(i))
}

/// Every input and time step, weighted so that calls mostly live a while:
/// causes that end a call are rare, progress and chatter are common.
fn op() -> impl Strategy<Value = Op> {
    let target = TransferTarget::new("sip:desk@example.invalid").unwrap();
    prop_oneof![
        // SIP progress and chatter.
        2 => Just(sip(SipInput::Invite)),
        1 => (100u16..200).prop_map(|code| sip(SipInput::Provisional { code })),
        4 => Just(sip(SipInput::Answered)),
        2 => Just(sip(SipInput::Ack)),
        3 => Just(sip(SipInput::Hold)),
        3 => Just(sip(SipInput::Resume)),
        2 => (0u8..16).prop_filter_map("dtmf", |e| DtmfDigit::from_event(e).map(|d| sip(SipInput::Dtmf(d)))),
        2 => Just(sip(SipInput::ReferAccepted)),
        2 => prop::option::of(400u16..700).prop_map(|code| sip(SipInput::ReferFailed { code })),
        // SIP endings.
        1 => prop::sample::select(vec![408u16, 480, 486, 487, 500, 503, 600, 603])
            .prop_map(|code| sip(SipInput::Failed { code })),
        1 => Just(sip(SipInput::AckTimeout)),
        1 => Just(sip(SipInput::SessionExpired)),
        1 => Just(sip(SipInput::Bye)),
        1 => Just(sip(SipInput::Cancel)),
        // Model.
        6 => Just(model(ModelInput::Ready)),
        6 => Just(model(ModelInput::Audio)),
        2 => Just(model(ModelInput::Interrupted)),
        2 => Just(model(ModelInput::SpeechStarted)),
        4 => Just(model(ModelInput::TurnComplete)),
        3 => Just(model(ModelInput::CallerTurnEnded)),
        1 => Just(model(ModelInput::Reconnecting)),
        2 => Just(model(ModelInput::TransferCall { target })),
        1 => Just(model(ModelInput::GoingAway)),
        1 => Just(model(ModelInput::Error { fatal: false })),
        1 => Just(model(ModelInput::EndCall)),
        1 => any::<bool>().prop_map(|clean| model(ModelInput::Closed { clean })),
        1 => Just(model(ModelInput::Error { fatal: true })),
        // Media.
        1 => Just(media(MediaInput::FirstCallerAudio)),
        4 => Just(media(MediaInput::CallerSpeech)),
        5 => Just(media(MediaInput::PlaybackDrained)),
        1 => Just(media(MediaInput::RtpTimeout)),
        4 => Just(media(MediaInput::MediaArrived)),
        2 => Just(media(MediaInput::SustainedSpeech)),
        // Commands.
        2 => Just(input(Input::Command(Command::Dial))),
        1 => Just(input(Input::Command(Command::Hangup))),
        1 => Just(input(Input::Command(Command::ShutdownNow))),
        1 => (0u64..40_000).prop_map(|ms| Op::ShutdownIn(Duration::from_millis(ms))),
        // Time.
        15 => (0u64..2_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        3 => (0u64..60_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
    ]
}

/// A scenario: usually the call is started first (INVITE or dial), then
/// random steps; sometimes the steps alone.
fn scenario(direction: Direction, len: usize) -> impl Strategy<Value = Vec<Op>> {
    let start = match direction {
        Direction::Inbound => sip(SipInput::Invite),
        Direction::Outbound => input(Input::Command(Command::Dial)),
    };
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(op(), 0..len),
    )
        .prop_map(move |(started, ops)| {
            let mut all = Vec::with_capacity(ops.len() + 1);
            if started {
                all.push(start.clone());
            }
            all.extend(ops);
            all
        })
}

fn config() -> impl Strategy<Value = Config> {
    let ms = |hi: u64| (0..hi).prop_map(Duration::from_millis);
    (
        (ms(4_000), ms(12_000), ms(40_000), ms(30_000)),
        (ms(300_000), ms(10_000), ms(20_000), ms(6_000)),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::of(ms(20_000)),
        prop::option::of(ms(30_000)),
    )
        .prop_map(
            |(
                (answer_wait, model_setup, ring_timeout, no_speech),
                (max_duration, farewell_drain, transfer_timeout, cleanup_join),
                (answer_then_end, at_dial, agent_first),
                model_reply_timeout,
                rtp_inactivity,
            )| Config {
                rtp_inactivity,
                answer_wait,
                model_setup,
                model_failure_before_answer: if answer_then_end {
                    ModelFailurePolicy::AnswerThenEnd
                } else {
                    ModelFailurePolicy::Reject503 {
                        retry_after: Some(Duration::from_secs(5)),
                    }
                },
                outbound_model_open: if at_dial {
                    OutboundModelOpen::AtDial
                } else {
                    OutboundModelOpen::AtAnswer
                },
                outbound_first_speaker: if agent_first {
                    FirstSpeaker::Agent
                } else {
                    FirstSpeaker::Callee
                },
                ring_timeout,
                no_speech,
                model_reply_timeout,
                max_duration,
                farewell_drain,
                transfer_timeout,
                cleanup_join,
                shutdown_retry_after: None,
            },
        )
}

/// Step-wise invariants, checked after every step.
#[derive(Default)]
struct Tracker {
    first_reason: Option<EndReason>,
    peer_bye_in_dialog: bool,
}

impl Tracker {
    fn check(&mut self, call: &Call, new: &[Action]) -> Result<(), TestCaseError> {
        if self.peer_bye_in_dialog {
            prop_assert!(!new.contains(&Action::SendBye), "BYE after the peer's BYE");
        }
        if let Some(reason) = call.m.end_reason() {
            let first = *self.first_reason.get_or_insert(reason);
            prop_assert_eq!(first, reason, "end reason changed");
        }
        if call.m.is_closed() {
            prop_assert_eq!(call.m.poll_timeout(), None);
        }
        // The model owes a reply only in a live conversation.
        if call.m.timer(Timer::ReplyWait).is_some() {
            prop_assert_eq!(call.m.phase(), Phase::Active);
        }
        // A reply timeout ends the call as a model failure (unless it was
        // already ending), with the apology first.
        if let Some(i) = new
            .iter()
            .position(|a| matches!(a, Action::EmitMetric(Metric::ModelReplyTimeout(_))))
        {
            prop_assert!(new[i..].contains(&Action::PlayFallback), "{:?}", new);
            prop_assert_eq!(call.m.end_reason(), Some(EndReason::ModelFailure));
        }
        Ok(())
    }
}

/// Runs a scenario, checking the step-wise invariants; returns the call.
fn run(direction: Direction, config: Config, ops: &[Op]) -> Result<Call, TestCaseError> {
    let mut call = Call::new(direction, config);
    let mut tracker = Tracker::default();
    for op in ops {
        let before = call.log.len();
        match op {
            Op::Input(input) => {
                let dialog = matches!(
                    call.m.phase(),
                    Phase::Answered
                        | Phase::Active
                        | Phase::OnHold
                        | Phase::Transferring
                        | Phase::Ending
                );
                if dialog && *input == Input::Sip(SipInput::Bye) {
                    tracker.peer_bye_in_dialog = true;
                }
                call.input(input.clone());
            }
            Op::ShutdownIn(d) => {
                let deadline = call.now + *d;
                call.cmd(Command::Shutdown { deadline });
            }
            Op::Advance(d) => {
                call.advance(*d);
            }
        }
        let new = call.log[before..].to_vec();
        tracker.check(&call, &new)?;
    }
    // The call is over: a never-started call is hung up; then only timers.
    if call.m.phase() == Phase::Created {
        call.cmd(Command::Hangup);
    }
    let before = call.log.len();
    call.run_timers();
    let new = call.log[before..].to_vec();
    tracker.check(&call, &new)?;
    Ok(call)
}

fn count(log: &[Action], f: impl Fn(&Action) -> bool) -> usize {
    log.iter().filter(|a| f(a)).count()
}

/// The whole-log invariants of a finished call.
fn check_log(call: &Call) -> Result<(), TestCaseError> {
    let log = &call.log;
    prop_assert_eq!(call.m.phase(), Phase::Closed, "not closed: {:?}", log);
    prop_assert_eq!(
        log.first(),
        Some(&Action::WriteStoreState {
            state: crate::lifecycle::StoreState::Created
        })
    );
    prop_assert_eq!(log.last(), Some(&Action::Closed));
    prop_assert_eq!(count(log, |a| *a == Action::Closed), 1);
    let opened = count(log, |a| *a == Action::OpenModel);
    prop_assert!(opened <= 1, "model opened {} times", opened);
    prop_assert_eq!(count(log, |a| *a == Action::CloseModel), opened);
    prop_assert_eq!(count(log, |a| *a == Action::StopMedia), 1);
    prop_assert_eq!(count(log, |a| *a == Action::FinalizeRecording), 1);
    prop_assert_eq!(count(log, |a| matches!(a, Action::WriteStoreEnd { .. })), 1);
    for once in [
        Action::SendBye,
        Action::SendCancel,
        Action::Answer,
        Action::StartGreeting,
        Action::SendInvite,
        Action::SendRinging,
    ] {
        prop_assert!(count(log, |a| *a == once) <= 1, "{:?} twice", once);
    }
    let rejects = count(log, |a| matches!(a, Action::Reject { .. }));
    prop_assert!(rejects + count(log, |a| *a == Action::Answer) <= 1);
    // The store end carries the machine's (first) end reason.
    let stored = log.iter().find_map(|a| match a {
        Action::WriteStoreEnd { reason, .. } => Some(*reason),
        _ => None,
    });
    prop_assert_eq!(stored, call.m.end_reason());
    // Nothing uses media after StopMedia, or the model after CloseModel.
    let uses_media = |a: &Action| {
        matches!(
            a,
            Action::ClearPlayback
                | Action::StartGreeting
                | Action::SendDtmfToModel { .. }
                | Action::PlayFallback
                | Action::PauseCallerAudio
                | Action::ResumeCallerAudio
                | Action::ReportPlayedToModel
        )
    };
    if let Some(stop) = log.iter().position(|a| *a == Action::StopMedia) {
        prop_assert!(
            !log[stop..].iter().any(uses_media),
            "media use after StopMedia"
        );
    }
    if let Some(close) = log.iter().position(|a| *a == Action::CloseModel) {
        prop_assert!(
            !log[close..].iter().any(|a| matches!(
                a,
                Action::StartGreeting
                    | Action::SendDtmfToModel { .. }
                    | Action::ReportPlayedToModel
            )),
            "model use after CloseModel"
        );
    }
    // The greeting only after the answer, and only with an open model.
    if let Some(greet) = log.iter().position(|a| *a == Action::StartGreeting) {
        let opened_at = log.iter().position(|a| *a == Action::OpenModel);
        prop_assert!(opened_at.is_some_and(|o| o < greet));
        let answered_at = log.iter().position(|a| {
            matches!(
                a,
                Action::WriteStoreState {
                    state: crate::lifecycle::StoreState::Answered
                }
            )
        });
        prop_assert!(answered_at.is_some_and(|ans| ans < greet));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_inbound_sequence_closes_cleanly(
        config in config(),
        ops in scenario(Direction::Inbound, 64),
    ) {
        let call = run(Direction::Inbound, config, &ops)?;
        check_log(&call)?;
    }

    #[test]
    fn any_outbound_sequence_closes_cleanly(
        config in config(),
        ops in scenario(Direction::Outbound, 64),
    ) {
        let call = run(Direction::Outbound, config, &ops)?;
        check_log(&call)?;
    }

    /// A started inbound call prefix (INVITE first) with random noise still
    /// closes on timers alone, without any hangup.
    #[test]
    fn started_call_closes_on_timers_alone(
        config in config(),
        ops in prop::collection::vec(op(), 0..32),
    ) {
        let mut all = vec![Op::Input(Input::Sip(SipInput::Invite))];
        all.extend(ops.into_iter().filter(|op| !matches!(
            op,
            Op::Input(Input::Command(_)) | Op::ShutdownIn(_)
        )));
        let call = run(Direction::Inbound, config, &all)?;
        check_log(&call)?;
    }
}
