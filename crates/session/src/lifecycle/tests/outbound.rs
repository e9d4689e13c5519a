//! Outbound calls: dial, model open policy, who speaks first, failures,
//! ring timeout, CANCEL and the 2xx that crosses it.

use super::*;
use crate::lifecycle::{FirstSpeaker, OutboundModelOpen, StoreState};

fn config(open: OutboundModelOpen, first: FirstSpeaker) -> Config {
    Config {
        outbound_model_open: open,
        outbound_first_speaker: first,
        ..Config::default()
    }
}

#[test]
fn dial_sends_invite_and_opens_model_at_dial() {
    let mut call = Call::outbound(config(OutboundModelOpen::AtDial, FirstSpeaker::Agent));
    let a = call.cmd(Command::Dial);
    assert_eq!(
        a,
        vec![
            Action::WriteStoreState {
                state: StoreState::Ringing
            },
            Action::SendInvite,
            Action::OpenModel,
        ]
    );
    call.model(ModelInput::Ready);
    assert_eq!(call.m.phase(), Phase::Dialling);
    call.sip(SipInput::Provisional { code: 180 });
    let a = call.sip(SipInput::Answered);
    assert!(a.contains(&Action::StartGreeting));
    assert!(!a.contains(&Action::Answer), "outbound never sends 200");
    assert_eq!(call.m.phase(), Phase::Active);
}

#[test]
fn model_opened_at_answer_and_callee_speaks_first() {
    let mut call = Call::outbound(config(OutboundModelOpen::AtAnswer, FirstSpeaker::Callee));
    assert!(!call.cmd(Command::Dial).contains(&Action::OpenModel));
    let a = call.sip(SipInput::Answered);
    assert!(a.contains(&Action::OpenModel));
    assert_eq!(call.m.phase(), Phase::Answered);
    let a = call.model(ModelInput::Ready);
    assert!(!a.contains(&Action::StartGreeting));
    assert_eq!(call.m.phase(), Phase::Active);
    assert_eq!(call.count(&Action::OpenModel), 1);
}

#[test]
fn inbound_machine_ignores_dial_and_outbound_ignores_invite() {
    let mut inbound = Call::inbound();
    assert!(inbound.cmd(Command::Dial).is_empty());
    let mut outbound = Call::outbound(Config::default());
    assert!(outbound.sip(SipInput::Invite).is_empty());
    assert_eq!(outbound.m.phase(), Phase::Created);
}

#[test]
fn final_errors_map_to_typed_end_reasons() {
    for (code, reason) in [
        (486, EndReason::Busy),
        (600, EndReason::Busy),
        (480, EndReason::NoAnswer),
        (408, EndReason::NoAnswer),
        (503, EndReason::Rejected),
        (603, EndReason::Rejected),
        (404, EndReason::Rejected),
    ] {
        let mut call = Call::outbound(config(OutboundModelOpen::AtAnswer, FirstSpeaker::Agent));
        call.cmd(Command::Dial);
        call.sip(SipInput::Failed { code });
        assert_eq!(
            call.store_end(),
            Some((reason, EndOutcome::Failed, Some(code))),
            "{code}"
        );
        assert_eq!(call.count(&Action::SendCancel), 0);
        call.assert_closed_once();
    }
}

#[test]
fn ring_timeout_cancels_and_ends_no_answer() {
    let mut call = Call::outbound(config(OutboundModelOpen::AtAnswer, FirstSpeaker::Agent));
    call.cmd(Command::Dial);
    let a = call.advance(Config::default().ring_timeout);
    assert_eq!(a, vec![Action::SendCancel, Action::StopMedia]);
    // Waiting for the INVITE's 487 before closing.
    assert_eq!(call.m.phase(), Phase::Ending);
    call.sip(SipInput::Failed { code: 487 });
    assert_eq!(
        call.store_end(),
        Some((EndReason::NoAnswer, EndOutcome::Failed, Some(487)))
    );
    call.assert_closed_once();
}

#[test]
fn ok_crossing_cancel_is_ended_with_one_bye() {
    let mut call = Call::outbound(config(OutboundModelOpen::AtDial, FirstSpeaker::Agent));
    call.cmd(Command::Dial);
    call.cmd(Command::Hangup);
    let a = call.sip(SipInput::Answered);
    assert_eq!(a, vec![Action::SendBye]);
    assert!(
        call.sip(SipInput::Answered).is_empty(),
        "2xx retransmission"
    );
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(call.count(&Action::SendBye), 1);
    assert_eq!(call.count(&Action::StartGreeting), 0);
    assert_eq!(
        call.store_end(),
        Some((EndReason::AgentHangup, EndOutcome::Failed, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn cleanup_bound_ends_wait_for_final_response() {
    let mut call = Call::outbound(config(OutboundModelOpen::AtAnswer, FirstSpeaker::Agent));
    call.cmd(Command::Dial);
    call.cmd(Command::ShutdownNow);
    call.run_timers();
    assert_eq!(
        call.store_end(),
        Some((EndReason::Shutdown, EndOutcome::Failed, None))
    );
    call.assert_closed_once();
}

#[test]
fn model_failure_while_dialling_cancels() {
    let mut call = Call::outbound(config(OutboundModelOpen::AtDial, FirstSpeaker::Agent));
    call.cmd(Command::Dial);
    let a = call.model(ModelInput::Closed { clean: false });
    assert!(a.contains(&Action::SendCancel));
    assert!(a.contains(&Action::CloseModel));
    call.sip(SipInput::Failed { code: 487 });
    assert_eq!(call.store_end().map(|e| e.0), Some(EndReason::ModelFailure));
    call.assert_closed_once();
}

#[test]
fn answering_machine_detection_ends_the_call_with_its_own_reason() {
    use crate::lifecycle::AmdEnd;
    for (end, reason) in [
        (AmdEnd::Machine, EndReason::AnsweringMachine),
        (AmdEnd::VoicemailLeft, EndReason::VoicemailLeft),
        (AmdEnd::NoSpeech, EndReason::NoSpeechTimeout),
        (AmdEnd::Unreachable, EndReason::Unreachable),
    ] {
        let mut call = Call::outbound(config(OutboundModelOpen::AtDial, FirstSpeaker::Agent));
        call.cmd(Command::Dial);
        call.model(ModelInput::Ready);
        call.sip(SipInput::Answered);
        // The held greeting counts as queued playback: no farewell wait.
        call.model(ModelInput::Audio);
        let a = call.cmd(Command::AmdEnd(end));
        assert!(a.contains(&Action::SendBye), "{end:?}: {a:?}");
        call.model(ModelInput::Closed { clean: true });
        call.run_timers();
        assert_eq!(
            call.store_end(),
            Some((reason, EndOutcome::Ended, Some(200))),
            "{end:?}"
        );
        call.assert_closed_once();
        assert!(
            call.cmd(Command::AmdEnd(AmdEnd::Machine)).is_empty(),
            "a second end is ignored"
        );
    }
}
