//! The reply timer (`ReplyWait`, issue 10 "the model stalls"): armed when
//! the model owes a reply (the caller's turn ended, or the greeting was
//! requested), pushed back while the caller keeps talking, settled by any
//! sign of an answer, disarmed on hold and while the model reconnects;
//! when it fires the call ends as a model failure with the apology first.

use super::*;
use crate::lifecycle::Metric;

const REPLY: Duration = Duration::from_secs(8);

fn config(reply: Option<Duration>) -> Config {
    Config {
        model_reply_timeout: reply,
        ..Config::default()
    }
}

#[test]
fn default_reply_timeout_is_a_few_seconds() {
    assert_eq!(Config::default().model_reply_timeout, Some(REPLY));
}

#[test]
fn a_turn_left_unanswered_ends_with_the_apology_then_bye_as_model_failure() {
    let mut call = Call::active_inbound();
    assert_eq!(call.m.timer(Timer::ReplyWait), None, "nothing owed yet");
    assert!(call.model(ModelInput::CallerTurnEnded).is_empty());
    assert_eq!(call.m.timer(Timer::ReplyWait), Some(call.now + REPLY));
    assert!(call.advance(REPLY - MS).is_empty());
    let a = call.advance(MS);
    assert_eq!(
        &a[..2],
        &[
            Action::EmitMetric(Metric::ModelReplyTimeout(REPLY)),
            Action::PlayFallback,
        ],
        "{a:?}"
    );
    assert_eq!(call.m.end_reason(), Some(EndReason::ModelFailure));
    assert!(
        !a.contains(&Action::SendBye),
        "the apology plays first: {a:?}"
    );
    let a = call.media(MediaInput::PlaybackDrained);
    assert!(pos(&a, &Action::SendBye) < pos(&a, &Action::CloseModel));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::ModelFailure, EndOutcome::Failed, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn any_answer_settles_the_reply_owed() {
    for answer in [
        ModelInput::Audio,
        ModelInput::TurnComplete,
        ModelInput::EndCall,
        ModelInput::Interrupted,
        ModelInput::SpeechStarted,
        ModelInput::Reconnecting,
    ] {
        let mut call = Call::active_inbound();
        call.model(ModelInput::CallerTurnEnded);
        call.advance(REPLY / 2);
        call.model(answer.clone());
        assert_eq!(call.m.timer(Timer::ReplyWait), None, "{answer:?}");
        call.advance(REPLY);
        assert_ne!(
            call.m.end_reason(),
            Some(EndReason::ModelFailure),
            "{answer:?}"
        );
    }
}

#[test]
fn caller_speech_pushes_the_reply_timer_back_but_does_not_arm_it() {
    let mut call = Call::active_inbound();
    call.media(MediaInput::CallerSpeech);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
    call.model(ModelInput::CallerTurnEnded);
    call.advance(REPLY - SEC);
    call.media(MediaInput::CallerSpeech);
    assert_eq!(call.m.timer(Timer::ReplyWait), Some(call.now + REPLY));
    assert!(call.advance(REPLY - MS).is_empty());
    assert_eq!(call.m.phase(), Phase::Active);
    call.advance(MS);
    assert_eq!(call.m.end_reason(), Some(EndReason::ModelFailure));
}

#[test]
fn a_turn_end_reported_while_a_reply_plays_owes_nothing() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::CallerTurnEnded);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
}

#[test]
fn hold_disarms_the_reply_timer() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::CallerTurnEnded);
    call.sip(SipInput::Hold);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
    call.advance(2 * REPLY);
    call.sip(SipInput::Resume);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
    assert_eq!(call.m.phase(), Phase::Active);
}

#[test]
fn the_greeting_is_owed_too() {
    let mut call = Call::greeting_inbound();
    assert!(call.log.contains(&Action::StartGreeting));
    assert_eq!(call.m.timer(Timer::ReplyWait), Some(call.now + REPLY));
    call.advance(REPLY);
    assert_eq!(call.m.end_reason(), Some(EndReason::ModelFailure));
    assert!(call.log.contains(&Action::PlayFallback));
}

#[test]
fn no_reply_timeout_configured_waits_for_the_model_indefinitely() {
    let mut call = Call::new(Direction::Inbound, config(None));
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    call.model(ModelInput::CallerTurnEnded);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
    call.advance(Config::default().no_speech - SEC);
    assert_eq!(call.m.phase(), Phase::Active);
}

#[test]
fn a_reply_timeout_in_other_phases_is_never_armed() {
    // Before the answer the model setup bound applies, not this one.
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    call.model(ModelInput::CallerTurnEnded);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
    // While ending, nothing is owed.
    let mut call = Call::active_inbound();
    call.cmd(Command::Hangup);
    call.model(ModelInput::CallerTurnEnded);
    assert_eq!(call.m.timer(Timer::ReplyWait), None);
}
