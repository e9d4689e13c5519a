//! Many calls side by side, interleaved step by step: every one closes and
//! releases what it opened; nothing is shared between machines.

use super::*;

#[test]
fn ten_thousand_interleaved_calls_each_release_everything_once() {
    const CALLS: usize = 10_000;
    let mut calls: Vec<Call> = (0..CALLS).map(|_| Call::inbound()).collect();
    let ends = [
        Input::Sip(SipInput::Bye),
        Input::Command(Command::Hangup),
        Input::Media(MediaInput::RtpTimeout),
        Input::Model(ModelInput::EndCall),
    ];
    let steps = |i: usize| {
        [
            Input::Sip(SipInput::Invite),
            Input::Model(ModelInput::Ready),
            Input::Model(ModelInput::Audio),
            Input::Media(MediaInput::CallerSpeech),
            ends[i % ends.len()].clone(),
            Input::Media(MediaInput::PlaybackDrained),
            Input::Model(ModelInput::Closed { clean: true }),
        ]
    };
    // Step k of every call before step k + 1 of any.
    for k in 0..7 {
        for (i, call) in calls.iter_mut().enumerate() {
            call.input(steps(i)[k].clone());
        }
    }
    let mut bye_sent = 0;
    for call in &calls {
        call.assert_closed_once();
        assert_eq!(call.count(&Action::OpenModel), 1);
        bye_sent += call.count(&Action::SendBye);
    }
    // Every call but the peer-BYE quarter sent exactly one BYE.
    assert_eq!(bye_sent, CALLS - CALLS / ends.len());
}
