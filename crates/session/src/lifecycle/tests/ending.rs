//! Ending a call: one reason, one teardown, the farewell, the bounds.

use super::*;
use crate::lifecycle::Metric;

#[test]
fn peer_bye_sends_no_bye_and_records_caller_hangup() {
    let mut call = Call::active_inbound();
    let a = call.sip(SipInput::Bye);
    assert_eq!(a, vec![Action::CloseModel, Action::StopMedia]);
    let a = call.model(ModelInput::Closed { clean: true });
    assert!(pos(&a, &Action::FinalizeRecording) < pos(&a, &Action::Closed));
    assert_eq!(call.count(&Action::SendBye), 0);
    assert_eq!(
        call.store_end(),
        Some((EndReason::CallerHangup, EndOutcome::Ended, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn duplicate_bye_yields_one_teardown() {
    let mut call = Call::active_inbound();
    call.sip(SipInput::Bye);
    assert!(call.sip(SipInput::Bye).is_empty());
    call.model(ModelInput::Closed { clean: true });
    assert!(call.sip(SipInput::Bye).is_empty());
    assert_eq!(call.count(&Action::SendBye), 0);
    call.assert_closed_once();
}

#[test]
fn end_call_waits_for_farewell_then_bye() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    let a = call.model(ModelInput::EndCall);
    assert!(a.is_empty(), "nothing before the farewell played: {a:?}");
    assert_eq!(call.m.phase(), Phase::Ending);
    assert!(call.m.timer(Timer::Drain).is_some());
    // More farewell audio, then the model's turn ends: still playing.
    call.model(ModelInput::Audio);
    assert!(call.model(ModelInput::TurnComplete).is_empty());
    let a = call.media(MediaInput::PlaybackDrained);
    assert_eq!(
        a,
        vec![Action::SendBye, Action::CloseModel, Action::StopMedia]
    );
    assert_eq!(call.m.timer(Timer::Drain), None);
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::AgentHangup, EndOutcome::Ended, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn end_call_waits_for_model_turn_even_when_queue_drained() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    // The queue ran dry between chunks but the model is still speaking.
    assert!(call.media(MediaInput::PlaybackDrained).is_empty());
    assert!(
        call.model(ModelInput::TurnComplete)
            .contains(&Action::SendBye)
    );
}

#[test]
fn drain_timer_bounds_farewell() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    let drain = Config::default().farewell_drain;
    assert!(call.advance(drain - MS).is_empty());
    let a = call.advance(MS);
    assert!(a.contains(&Action::SendBye));
    call.model(ModelInput::Closed { clean: true });
    call.assert_closed_once();
}

#[test]
fn end_call_with_nothing_playing_hangs_up_at_once() {
    let mut call = Call::active_inbound();
    let a = call.model(ModelInput::EndCall);
    assert_eq!(a[0], Action::SendBye);
}

#[test]
fn bye_during_farewell_keeps_first_reason_and_sends_no_bye() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    let a = call.sip(SipInput::Bye);
    assert!(!a.contains(&Action::SendBye));
    assert!(a.contains(&Action::CloseModel));
    call.media(MediaInput::PlaybackDrained);
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(call.count(&Action::SendBye), 0);
    assert_eq!(call.store_end().map(|e| e.0), Some(EndReason::AgentHangup));
    call.assert_closed_once();
}

#[test]
fn first_end_reason_wins() {
    let mut call = Call::active_inbound();
    call.media(MediaInput::RtpTimeout);
    call.cmd(Command::Hangup);
    call.cmd(Command::ShutdownNow);
    call.model(ModelInput::EndCall);
    call.model(ModelInput::Error { fatal: true });
    call.sip(SipInput::Bye);
    call.advance(Config::default().max_duration);
    call.model(ModelInput::Closed { clean: false });
    assert_eq!(call.m.end_reason(), Some(EndReason::RtpTimeout));
    assert_eq!(call.store_end().map(|e| e.0), Some(EndReason::RtpTimeout));
    assert_eq!(call.count(&Action::SendBye), 1);
    call.assert_closed_once();
}

#[test]
fn cleanup_bound_closes_when_model_never_confirms() {
    let mut call = Call::active_inbound();
    call.cmd(Command::Hangup);
    assert_eq!(call.m.phase(), Phase::Ending);
    let bound = Config::default().cleanup_join;
    assert!(call.advance(bound - MS).is_empty());
    let a = call.advance(MS);
    assert_eq!(a.last(), Some(&Action::Closed));
    call.assert_closed_once();
}

#[test]
fn shutdown_now_skips_farewell() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    let a = call.cmd(Command::ShutdownNow);
    assert!(a.contains(&Action::SendBye));
    assert_eq!(call.m.end_reason(), Some(EndReason::AgentHangup));
}

#[test]
fn barge_in_during_farewell_ends_it() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    let a = call.model(ModelInput::Interrupted);
    assert!(pos(&a, &Action::ClearPlayback) < pos(&a, &Action::SendBye));
    assert!(a.contains(&Action::EmitMetric(Metric::BargeIn { local: false })));
}

#[test]
fn no_action_after_closed() {
    let mut call = Call::active_inbound();
    call.sip(SipInput::Bye);
    call.model(ModelInput::Closed { clean: true });
    assert!(call.m.is_closed());
    let digit = crate::lifecycle::DtmfDigit::new('1').unwrap();
    let target = crate::lifecycle::TransferTarget::new("1").unwrap();
    let inputs = [
        Input::Sip(SipInput::Invite),
        Input::Sip(SipInput::Answered),
        Input::Sip(SipInput::Bye),
        Input::Sip(SipInput::Dtmf(digit)),
        Input::Model(ModelInput::Ready),
        Input::Model(ModelInput::GoingAway),
        Input::Model(ModelInput::Error { fatal: false }),
        Input::Model(ModelInput::TransferCall { target }),
        Input::Media(MediaInput::PlaybackDrained),
        Input::Command(Command::Hangup),
        Input::Command(Command::ShutdownNow),
    ];
    for input in inputs {
        assert!(call.input(input).is_empty());
    }
    assert!(call.advance(Config::default().max_duration).is_empty());
    assert_eq!(call.m.poll_timeout(), None);
}

#[test]
fn model_close_during_farewell_stops_waiting_for_its_turn() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    call.media(MediaInput::PlaybackDrained);
    // No TurnComplete: the model closes instead. Nothing more can come.
    let a = call.model(ModelInput::Closed { clean: true });
    assert_eq!(a[0], Action::SendBye);
    call.assert_closed_once();
}
