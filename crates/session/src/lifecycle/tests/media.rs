//! Media-driven rules: the RTP inactivity timer fed by media activity,
//! and the barge-in the call detects itself (sustained caller speech).

use super::*;
use crate::lifecycle::{Metric, TransferTarget};

const RTP: Duration = Duration::from_secs(30);

fn with_rtp_timer() -> Config {
    Config {
        rtp_inactivity: Some(RTP),
        no_speech: Duration::from_secs(3600),
        ..Config::default()
    }
}

/// An active inbound call with the RTP timer configured (greeting played).
fn active() -> Call {
    let mut call = Call::new(Direction::Inbound, with_rtp_timer());
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    call.model(ModelInput::Audio);
    call.model(ModelInput::TurnComplete);
    call.media(MediaInput::PlaybackDrained);
    call
}

#[test]
fn rtp_inactivity_is_armed_at_the_answer_not_before() {
    let mut call = Call::new(Direction::Inbound, with_rtp_timer());
    call.sip(SipInput::Invite);
    assert_eq!(call.m.timer(Timer::RtpInactivity), None, "ringing");
    let t_answer = call.now + Config::default().answer_wait;
    call.advance(Config::default().answer_wait);
    assert_eq!(call.m.phase(), Phase::Answered);
    assert_eq!(call.m.timer(Timer::RtpInactivity), Some(t_answer + RTP));
}

#[test]
fn media_pushes_the_rtp_timer_back_and_silence_ends_the_call() {
    let mut call = active();
    for _ in 0..10 {
        call.advance(20 * SEC);
        assert!(call.media(MediaInput::MediaArrived).is_empty());
    }
    assert_eq!(call.m.end_reason(), None);
    assert_eq!(call.m.phase(), Phase::Active, "media kept it alive");
    assert_eq!(call.m.timer(Timer::RtpInactivity), Some(call.now + RTP));
    call.media(MediaInput::CallerSpeech);
    let a = call.advance(RTP - Duration::from_millis(1));
    assert!(!a.contains(&Action::SendBye));
    let a = call.advance(Duration::from_millis(1));
    assert!(a.contains(&Action::SendBye));
    assert_eq!(call.m.end_reason(), Some(EndReason::RtpTimeout));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::RtpTimeout, EndOutcome::Failed, Some(200)))
    );
}

#[test]
fn the_rtp_timer_stops_on_hold_and_restarts_in_full_after() {
    let mut call = active();
    call.advance(25 * SEC);
    call.sip(SipInput::Hold);
    assert_eq!(call.m.timer(Timer::RtpInactivity), None);
    assert!(call.media(MediaInput::MediaArrived).is_empty());
    assert_eq!(
        call.m.timer(Timer::RtpInactivity),
        None,
        "held: not re-armed"
    );
    call.advance(10 * 60 * SEC);
    assert_eq!(call.m.phase(), Phase::OnHold);
    call.sip(SipInput::Resume);
    assert_eq!(call.m.timer(Timer::RtpInactivity), Some(call.now + RTP));
    call.advance(RTP);
    assert_eq!(call.m.end_reason(), Some(EndReason::RtpTimeout));
}

#[test]
fn a_held_transfer_stops_the_rtp_timer() {
    let mut call = active();
    let target = TransferTarget::new("2001").unwrap();
    call.model(ModelInput::TransferCall { target });
    assert!(call.m.timer(Timer::RtpInactivity).is_some());
    call.sip(SipInput::Hold);
    assert_eq!(call.m.timer(Timer::RtpInactivity), None);
    call.sip(SipInput::Resume);
    assert_eq!(call.m.timer(Timer::RtpInactivity), Some(call.now + RTP));
}

#[test]
fn no_rtp_timer_without_a_setting_and_none_while_ending() {
    let mut call = Call::active_inbound();
    assert_eq!(call.m.timer(Timer::RtpInactivity), None);
    call.media(MediaInput::MediaArrived);
    assert_eq!(call.m.timer(Timer::RtpInactivity), None);
    let mut call = active();
    call.cmd(Command::Hangup);
    call.media(MediaInput::MediaArrived);
    assert_eq!(call.m.timer(Timer::RtpInactivity), None);
}

#[test]
fn sustained_speech_over_a_reply_clears_it_and_tells_the_model() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    let a = call.media(MediaInput::SustainedSpeech);
    assert_eq!(
        a,
        vec![
            Action::ClearPlayback,
            Action::InterruptModel,
            Action::EmitMetric(Metric::BargeIn { local: true }),
        ]
    );
    // The model's own interruption that follows (nothing plays any more)
    // only clears: no second barge-in metric, so no second stored event.
    assert_eq!(
        call.model(ModelInput::Interrupted),
        vec![Action::ClearPlayback]
    );
}

#[test]
fn sustained_speech_with_nothing_playing_is_not_a_barge_in() {
    let mut call = Call::active_inbound();
    assert!(call.media(MediaInput::SustainedSpeech).is_empty());
    // Queued audio that still plays after the model's turn is complete.
    call.model(ModelInput::Audio);
    call.model(ModelInput::TurnComplete);
    assert!(
        call.media(MediaInput::SustainedSpeech)
            .contains(&Action::InterruptModel)
    );
}

#[test]
fn sustained_speech_while_held_or_ending_does_nothing() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.sip(SipInput::Hold);
    assert!(call.media(MediaInput::SustainedSpeech).is_empty());
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    call.model(ModelInput::EndCall);
    assert!(
        call.media(MediaInput::SustainedSpeech).is_empty(),
        "the farewell plays out"
    );
}

#[test]
fn a_local_barge_in_resets_the_no_speech_timer() {
    let mut call = Call::active_inbound();
    call.advance(10 * SEC);
    call.model(ModelInput::Audio);
    call.media(MediaInput::SustainedSpeech);
    assert_eq!(
        call.m.timer(Timer::NoSpeech),
        Some(call.now + Config::default().no_speech)
    );
}
