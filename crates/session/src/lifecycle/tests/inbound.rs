//! Inbound calls up to the answer: pre-warm, answer-wait, model failure
//! policies, CANCEL, duplicates.

use std::time::Duration;

use super::*;
use crate::lifecycle::{ModelFailurePolicy, StoreState};

#[test]
fn first_action_writes_created_row_before_anything_else() {
    let mut m = CallMachine::new(Direction::Inbound, Config::default());
    assert_eq!(
        m.poll_action(),
        Some(Action::WriteStoreState {
            state: StoreState::Created
        })
    );
    assert_eq!(m.poll_action(), None);
    assert_eq!(m.phase(), Phase::Created);
}

#[test]
fn invite_rings_and_opens_model_before_answer() {
    let mut call = Call::inbound();
    let a = call.sip(SipInput::Invite);
    assert_eq!(
        a,
        vec![
            Action::WriteStoreState {
                state: StoreState::Ringing
            },
            Action::SendRinging,
            Action::OpenModel,
        ]
    );
    assert_eq!(call.m.phase(), Phase::Ringing);
    assert!(call.m.timer(Timer::AnswerWait).is_some());
    assert!(call.m.timer(Timer::ModelSetup).is_some());
}

#[test]
fn model_ready_answers_then_greets() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    call.now += 300 * MS;
    let a = call.model(ModelInput::Ready);
    let answer = pos(&a, &Action::Answer);
    let greet = pos(&a, &Action::StartGreeting);
    assert!(answer < greet);
    assert!(a.contains(&Action::EmitMetric(
        crate::lifecycle::Metric::AnsweredAfter(300 * MS)
    )));
    assert!(a.contains(&Action::WriteStoreState {
        state: StoreState::Active
    }));
    assert_eq!(call.m.phase(), Phase::Active);
    assert_eq!(call.m.timer(Timer::AnswerWait), None);
}

#[test]
fn answer_wait_answers_without_model_then_greets_when_ready() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    let a = call.advance(Config::default().answer_wait);
    assert!(a.contains(&Action::Answer));
    assert!(!a.contains(&Action::StartGreeting));
    assert_eq!(call.m.phase(), Phase::Answered);
    let a = call.model(ModelInput::Ready);
    assert!(a.contains(&Action::StartGreeting));
    assert!(!a.contains(&Action::Answer));
    assert_eq!(call.m.phase(), Phase::Active);
    assert_eq!(call.count(&Action::Answer), 1);
}

#[test]
fn model_failure_before_answer_rejects_503_with_retry_after() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    let a = call.model(ModelInput::Closed { clean: false });
    assert!(a.contains(&Action::Reject {
        code: 503,
        retry_after: Some(Duration::from_secs(30))
    }));
    assert!(!a.contains(&Action::Answer));
    assert!(!a.contains(&Action::SendBye));
    assert_eq!(
        call.store_end(),
        Some((EndReason::ModelFailure, EndOutcome::Failed, Some(503)))
    );
    call.assert_closed_once();
}

#[test]
fn model_failure_before_answer_can_answer_then_end_politely() {
    let config = Config {
        model_failure_before_answer: ModelFailurePolicy::AnswerThenEnd,
        ..Config::default()
    };
    let mut call = Call::new(Direction::Inbound, config);
    call.sip(SipInput::Invite);
    let a = call.model(ModelInput::Error { fatal: true });
    assert!(pos(&a, &Action::Answer) < pos(&a, &Action::PlayFallback));
    assert!(
        !a.contains(&Action::SendBye),
        "BYE before the fallback played"
    );
    let a = call.media(MediaInput::PlaybackDrained);
    assert!(pos(&a, &Action::SendBye) < pos(&a, &Action::StopMedia));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::ModelFailure, EndOutcome::Failed, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn model_setup_timeout_is_model_failure() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    call.advance(Config::default().answer_wait);
    assert_eq!(call.m.phase(), Phase::Answered);
    let a = call.advance(Config::default().model_setup);
    // Answered already: the fallback plays before the BYE.
    assert_eq!(a, vec![Action::PlayFallback]);
    assert_eq!(call.m.end_reason(), Some(EndReason::ModelFailure));
    let a = call.media(MediaInput::PlaybackDrained);
    assert!(pos(&a, &Action::SendBye) < pos(&a, &Action::CloseModel));
    call.run_timers();
    call.assert_closed_once();
}

#[test]
fn cancel_while_ringing_ends_cancelled() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    let a = call.sip(SipInput::Cancel);
    assert!(a.contains(&Action::Reject {
        code: 487,
        retry_after: None
    }));
    assert!(a.contains(&Action::CloseModel));
    // A late model ready must not answer a cancelled call.
    call.model(ModelInput::Ready);
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(call.count(&Action::Answer), 0);
    assert_eq!(call.count(&Action::SendBye), 0);
    assert_eq!(
        call.store_end(),
        Some((EndReason::Cancelled, EndOutcome::Ended, Some(487)))
    );
    call.assert_closed_once();
}

#[test]
fn second_open_model_impossible() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    call.model(ModelInput::GoingAway);
    call.model(ModelInput::Ready);
    assert_eq!(call.count(&Action::OpenModel), 1);
    assert_eq!(call.count(&Action::Answer), 1);
    assert_eq!(call.count(&Action::StartGreeting), 1);
}

#[test]
fn hangup_while_ringing_declines_with_603() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    let a = call.cmd(Command::Hangup);
    assert!(a.contains(&Action::Reject {
        code: 603,
        retry_after: None
    }));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(call.m.end_reason(), Some(EndReason::AgentHangup));
    call.assert_closed_once();
}

#[test]
fn hangup_before_start_closes_without_signalling() {
    let mut call = Call::inbound();
    let a = call.cmd(Command::Hangup);
    assert_eq!(
        a,
        vec![
            Action::StopMedia,
            Action::FinalizeRecording,
            Action::WriteStoreEnd {
                reason: EndReason::AgentHangup,
                outcome: EndOutcome::Failed,
                sip_status: None
            },
            Action::Closed,
        ]
    );
    call.assert_closed_once();
    assert!(call.sip(SipInput::Invite).is_empty());
}

#[test]
fn session_expiry_ends_an_answered_call_failed_with_bye() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    let a = call.sip(SipInput::SessionExpired);
    assert!(a.contains(&Action::SendBye));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::Error, EndOutcome::Failed, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn ack_timeout_ends_with_bye_and_its_own_reason() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    let a = call.sip(SipInput::AckTimeout);
    assert!(a.contains(&Action::SendBye));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::AckTimeout, EndOutcome::Failed, Some(200)))
    );
    call.assert_closed_once();
}
