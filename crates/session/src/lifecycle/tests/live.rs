//! A running conversation: barge-in, DTMF, no-speech, hold, transfer,
//! RTP timeout, max duration, model drop, graceful shutdown.

use super::*;
use crate::lifecycle::{DtmfDigit, Metric, TransferTarget};

#[test]
fn barge_in_clears_playback_and_reports_played() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::Audio);
    let a = call.model(ModelInput::Interrupted);
    assert_eq!(
        a,
        vec![
            Action::ClearPlayback,
            Action::ReportPlayedToModel,
            Action::EmitMetric(Metric::BargeIn { local: false }),
        ]
    );
    // Speech-started with nothing playing still clears, but reports nothing.
    let a = call.model(ModelInput::SpeechStarted);
    assert_eq!(a, vec![Action::ClearPlayback]);
}

#[test]
fn dtmf_goes_to_model_as_digit() {
    let mut call = Call::active_inbound();
    let digit = DtmfDigit::new('5').unwrap();
    assert_eq!(
        call.sip(SipInput::Dtmf(digit)),
        vec![Action::SendDtmfToModel { digit }]
    );
}

#[test]
fn no_speech_timer_resets_on_caller_speech() {
    let mut call = Call::active_inbound();
    let no_speech = Config::default().no_speech;
    call.advance(no_speech - SEC);
    call.media(MediaInput::CallerSpeech);
    assert!(call.advance(2 * SEC).is_empty(), "timer was not reset");
    call.model(ModelInput::Interrupted);
    assert!(
        call.advance(no_speech - SEC)
            .iter()
            .all(|a| *a != Action::SendBye)
    );
    assert_eq!(call.m.phase(), Phase::Active);
    let a = call.advance(SEC);
    assert!(a.contains(&Action::SendBye));
    assert_eq!(call.m.end_reason(), Some(EndReason::NoSpeechTimeout));
}

#[test]
fn hold_pauses_no_speech_timer() {
    let mut call = Call::active_inbound();
    let no_speech = Config::default().no_speech;
    call.advance(5 * SEC);
    assert_eq!(call.sip(SipInput::Hold), vec![Action::PauseCallerAudio]);
    assert_eq!(call.m.timer(Timer::NoSpeech), None);
    // Far longer than the no-speech bound, on hold: nothing happens.
    assert!(call.advance(10 * no_speech).is_empty());
    assert_eq!(call.m.phase(), Phase::OnHold);
    assert_eq!(call.sip(SipInput::Resume), vec![Action::ResumeCallerAudio]);
    // The remaining 10 s carry over, not a fresh 15 s and not zero.
    assert_eq!(
        call.m.timer(Timer::NoSpeech),
        Some(call.now + (no_speech - 5 * SEC))
    );
    assert!(call.advance(no_speech - 6 * SEC).is_empty());
    assert!(call.advance(SEC).contains(&Action::SendBye));
}

#[test]
fn rtp_timeout_ignored_on_hold_ends_active_call() {
    let mut call = Call::active_inbound();
    call.sip(SipInput::Hold);
    assert!(call.media(MediaInput::RtpTimeout).is_empty());
    call.sip(SipInput::Resume);
    let a = call.media(MediaInput::RtpTimeout);
    assert!(a.contains(&Action::SendBye));
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::RtpTimeout, EndOutcome::Failed, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn max_duration_keeps_running_on_hold() {
    let mut call = Call::active_inbound();
    call.sip(SipInput::Hold);
    let a = call.advance(Config::default().max_duration);
    assert!(a.contains(&Action::SendBye));
    assert_eq!(call.m.end_reason(), Some(EndReason::MaxDuration));
}

#[test]
fn transfer_accepted_ends_transferred_with_one_bye() {
    let mut call = Call::active_inbound();
    let target = TransferTarget::new("sip:sales@example.invalid").unwrap();
    let a = call.model(ModelInput::TransferCall {
        target: target.clone(),
    });
    assert_eq!(
        a,
        vec![Action::Refer {
            target: target.clone()
        }]
    );
    assert_eq!(call.m.phase(), Phase::Transferring);
    let a = call.sip(SipInput::ReferAccepted);
    assert!(a.contains(&Action::SendBye));
    call.sip(SipInput::Bye);
    call.model(ModelInput::Closed { clean: true });
    assert_eq!(
        call.store_end(),
        Some((EndReason::Transferred, EndOutcome::Ended, Some(200)))
    );
    call.assert_closed_once();
}

#[test]
fn transfer_failure_keeps_the_call() {
    let mut call = Call::active_inbound();
    let target = TransferTarget::new("2001").unwrap();
    call.model(ModelInput::TransferCall {
        target: target.clone(),
    });
    let a = call.sip(SipInput::ReferFailed { code: Some(403) });
    assert_eq!(
        a,
        vec![
            Action::TransferFailed { target },
            Action::EmitMetric(Metric::TransferFailed)
        ]
    );
    assert_eq!(call.m.phase(), Phase::Active);
    assert!(call.m.timer(Timer::NoSpeech).is_some());
}

#[test]
fn transfer_timeout_keeps_the_call() {
    let mut call = Call::active_inbound();
    let target = TransferTarget::new("2001").unwrap();
    call.model(ModelInput::TransferCall {
        target: target.clone(),
    });
    assert_eq!(call.m.timer(Timer::NoSpeech), None);
    let a = call.advance(Config::default().transfer_timeout);
    assert!(a.contains(&Action::TransferFailed { target }));
    assert_eq!(call.m.phase(), Phase::Active);
    // A late acceptance after the fallback does not end the call.
    assert!(call.sip(SipInput::ReferAccepted).is_empty());
}

#[test]
fn model_drop_mid_call_plays_fallback_then_byes() {
    let mut call = Call::active_inbound();
    let a = call.model(ModelInput::Closed { clean: false });
    assert_eq!(a[0], Action::PlayFallback);
    assert!(!a.contains(&Action::SendBye));
    let a = call.media(MediaInput::PlaybackDrained);
    assert_eq!(
        a,
        vec![
            Action::SendBye,
            Action::CloseModel,
            Action::StopMedia,
            Action::FinalizeRecording,
            Action::WriteStoreEnd {
                reason: EndReason::ModelFailure,
                outcome: EndOutcome::Failed,
                sip_status: Some(200)
            },
            Action::EmitMetric(Metric::CallDuration(std::time::Duration::ZERO)),
            Action::Closed,
        ]
    );
    call.assert_closed_once();
}

#[test]
fn model_going_away_and_soft_errors_do_not_end_the_call() {
    let mut call = Call::active_inbound();
    call.model(ModelInput::GoingAway);
    call.model(ModelInput::Error { fatal: false });
    assert_eq!(call.m.phase(), Phase::Active);
}

#[test]
fn graceful_shutdown_lets_answered_call_run_until_deadline() {
    let mut call = Call::active_inbound();
    let deadline = call.now + 30 * SEC;
    assert!(call.cmd(Command::Shutdown { deadline }).is_empty());
    // A later, longer deadline does not extend the first.
    call.cmd(Command::Shutdown {
        deadline: deadline + 60 * SEC,
    });
    for step in [10 * SEC, 10 * SEC, 9 * SEC] {
        call.media(MediaInput::CallerSpeech);
        assert!(call.advance(step).is_empty());
    }
    call.media(MediaInput::CallerSpeech);
    let a = call.advance(SEC);
    assert!(a.contains(&Action::SendBye));
    assert_eq!(call.m.end_reason(), Some(EndReason::Shutdown));
}

#[test]
fn graceful_shutdown_rejects_ringing_call_with_503() {
    let mut call = Call::inbound();
    call.sip(SipInput::Invite);
    let deadline = call.now + 30 * SEC;
    let a = call.cmd(Command::Shutdown { deadline });
    assert!(a.contains(&Action::Reject {
        code: 503,
        retry_after: Config::default().shutdown_retry_after
    }));
    assert_eq!(call.m.end_reason(), Some(EndReason::Shutdown));
}

#[test]
fn no_speech_counts_from_end_of_agent_speech() {
    let mut call = Call::active_inbound();
    let no_speech = Config::default().no_speech;
    // A reply longer than the no-speech bound does not end the call.
    call.model(ModelInput::Audio);
    assert!(call.advance(no_speech + 5 * SEC).is_empty());
    call.model(ModelInput::TurnComplete);
    call.media(MediaInput::PlaybackDrained);
    assert!(call.advance(no_speech - MS).is_empty());
    assert!(call.advance(MS).contains(&Action::SendBye));
    assert_eq!(call.m.end_reason(), Some(EndReason::NoSpeechTimeout));
}

#[test]
fn no_speech_timer_never_spins_while_reply_plays() {
    let config = Config {
        no_speech: std::time::Duration::ZERO,
        ..Config::default()
    };
    let mut call = Call::new(Direction::Inbound, config);
    call.sip(SipInput::Invite);
    call.model(ModelInput::Ready);
    call.model(ModelInput::Audio);
    call.advance(MS);
    // Fired once while busy and left disarmed: the next deadline is in the
    // future, so a driver sleeping until it cannot spin.
    assert_eq!(call.m.timer(Timer::NoSpeech), None);
    assert!(call.m.poll_timeout().is_some_and(|d| d > call.now));
    call.model(ModelInput::TurnComplete);
    call.media(MediaInput::PlaybackDrained);
    assert!(call.advance(MS).contains(&Action::SendBye));
}

#[test]
fn hold_during_transfer_pauses_audio_and_failure_returns_on_hold() {
    let mut call = Call::active_inbound();
    let target = TransferTarget::new("2001").unwrap();
    call.model(ModelInput::TransferCall {
        target: target.clone(),
    });
    assert_eq!(call.sip(SipInput::Hold), vec![Action::PauseCallerAudio]);
    assert!(
        call.media(MediaInput::RtpTimeout).is_empty(),
        "held: no RTP expected"
    );
    call.sip(SipInput::ReferFailed { code: Some(486) });
    assert_eq!(call.m.phase(), Phase::OnHold);
    assert_eq!(call.m.timer(Timer::NoSpeech), None);
    assert_eq!(call.sip(SipInput::Resume), vec![Action::ResumeCallerAudio]);
    assert_eq!(call.m.phase(), Phase::Active);
    assert_eq!(
        call.m.timer(Timer::NoSpeech),
        Some(call.now + Config::default().no_speech)
    );
}
