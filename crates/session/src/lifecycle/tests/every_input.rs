//! Every input in every phase: accepted without a panic, and the call still
//! closes with one teardown afterwards.

use super::*;
use crate::lifecycle::{DtmfDigit, OutboundModelOpen, TransferTarget};

fn outbound_at_answer() -> Call {
    Call::outbound(Config {
        outbound_model_open: OutboundModelOpen::AtAnswer,
        ..Config::default()
    })
}

fn target() -> TransferTarget {
    TransferTarget::new("2001").unwrap()
}

const PHASES: [&str; 13] = [
    "created-inbound",
    "created-outbound",
    "ringing",
    "dialling",
    "answered-inbound",
    "answered-outbound",
    "active",
    "on-hold",
    "transferring",
    "ending-farewell",
    "ending-await-model",
    "ending-await-final",
    "closed",
];

/// A call brought into the named phase (or kind of ending).
fn build(phase: &str) -> Call {
    let mut c = match phase {
        "created-outbound" | "dialling" => Call::outbound(Config::default()),
        "answered-outbound" | "ending-await-final" => outbound_at_answer(),
        "created-inbound" | "ringing" | "answered-inbound" => Call::inbound(),
        _ => Call::active_inbound(),
    };
    match phase {
        "ringing" => {
            c.sip(SipInput::Invite);
        }
        "dialling" => {
            c.cmd(Command::Dial);
        }
        "answered-inbound" => {
            c.sip(SipInput::Invite);
            c.advance(Config::default().answer_wait);
        }
        "answered-outbound" => {
            c.cmd(Command::Dial);
            c.sip(SipInput::Answered);
        }
        "on-hold" => {
            c.sip(SipInput::Hold);
        }
        "transferring" => {
            c.model(ModelInput::TransferCall { target: target() });
        }
        "ending-farewell" => {
            c.model(ModelInput::Audio);
            c.model(ModelInput::EndCall);
        }
        "ending-await-model" => {
            c.cmd(Command::Hangup);
        }
        "ending-await-final" => {
            c.cmd(Command::Dial);
            c.cmd(Command::Hangup);
        }
        "closed" => {
            c.sip(SipInput::Bye);
            c.model(ModelInput::Closed { clean: true });
        }
        _ => {}
    }
    c
}

fn all_inputs(call: &Call) -> Vec<Input> {
    let digit = DtmfDigit::new('#').unwrap();
    let mut v: Vec<Input> = [
        SipInput::Invite,
        SipInput::Provisional { code: 183 },
        SipInput::Answered,
        SipInput::Failed { code: 486 },
        SipInput::Failed { code: 487 },
        SipInput::Ack,
        SipInput::AckTimeout,
        SipInput::SessionExpired,
        SipInput::Bye,
        SipInput::Cancel,
        SipInput::Hold,
        SipInput::Resume,
        SipInput::Dtmf(digit),
        SipInput::ReferAccepted,
        SipInput::ReferFailed { code: None },
    ]
    .into_iter()
    .map(Input::Sip)
    .collect();
    v.extend(
        [
            ModelInput::Ready,
            ModelInput::Audio,
            ModelInput::Interrupted,
            ModelInput::SpeechStarted,
            ModelInput::TurnComplete,
            ModelInput::EndCall,
            ModelInput::TransferCall { target: target() },
            ModelInput::GoingAway,
            ModelInput::CallerTurnEnded,
            ModelInput::Reconnecting,
            ModelInput::Closed { clean: true },
            ModelInput::Closed { clean: false },
            ModelInput::Error { fatal: false },
            ModelInput::Error { fatal: true },
        ]
        .into_iter()
        .map(Input::Model),
    );
    v.extend(
        [
            MediaInput::FirstCallerAudio,
            MediaInput::CallerSpeech,
            MediaInput::PlaybackDrained,
            MediaInput::RtpTimeout,
            MediaInput::MediaArrived,
            MediaInput::SustainedSpeech,
        ]
        .into_iter()
        .map(Input::Media),
    );
    v.extend(
        [
            Command::Dial,
            Command::Hangup,
            Command::Shutdown {
                deadline: call.now + 10 * SEC,
            },
            Command::Shutdown { deadline: call.now },
            Command::ShutdownNow,
        ]
        .into_iter()
        .map(Input::Command),
    );
    v
}

#[test]
fn every_input_in_every_phase_is_accepted_and_the_call_still_closes_once() {
    let mut combos = 0;
    for phase in PHASES {
        let inputs = all_inputs(&build(phase));
        for input in inputs {
            let mut call = build(phase);
            call.input(input.clone());
            if call.m.phase() == Phase::Created {
                call.cmd(Command::Hangup);
            }
            call.run_timers();
            assert!(
                call.m.is_closed(),
                "{phase} + {input:?} did not close: {:?}",
                call.log
            );
            call.assert_closed_once();
            combos += 1;
        }
    }
    assert_eq!(combos, PHASES.len() * 40);
}

#[test]
fn phase_builders_reach_their_phases() {
    let expect = [
        Phase::Created,
        Phase::Created,
        Phase::Ringing,
        Phase::Dialling,
        Phase::Answered,
        Phase::Answered,
        Phase::Active,
        Phase::OnHold,
        Phase::Transferring,
        Phase::Ending,
        Phase::Ending,
        Phase::Ending,
        Phase::Closed,
    ];
    for (phase, want) in PHASES.iter().zip(expect) {
        assert_eq!(build(phase).m.phase(), want, "{phase}");
    }
}
