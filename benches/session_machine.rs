//! Lifecycle state machine throughput: inputs per second over a full typical
//! inbound call (INVITE, pre-warm, answer, 20 conversational turns with
//! caller speech and model audio, a barge-in, a DTMF key, end_call with a
//! farewell, model close), draining every action after every input as the
//! session manager does.
//!
//! Run: `cargo bench -p callbridge --bench session_machine`

use std::hint::black_box;
use std::time::{Duration, Instant};

use callbridge_session::lifecycle::{
    Action, CallMachine, Config, Direction, DtmfDigit, Input, MediaInput, ModelInput, SipInput,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The inputs of one typical call, each with its offset from the INVITE.
fn typical_call() -> Vec<(Duration, Input)> {
    let mut t = Duration::ZERO;
    let mut inputs = Vec::new();
    let mut at = |step_ms: u64, input: Input| {
        t += Duration::from_millis(step_ms);
        inputs.push((t, input));
    };
    at(0, Input::Sip(SipInput::Invite));
    at(250, Input::Model(ModelInput::Ready));
    at(30, Input::Sip(SipInput::Ack));
    at(20, Input::Media(MediaInput::FirstCallerAudio));
    for turn in 0..20 {
        // The model speaks (10 audio chunks), finishes, playback drains.
        for _ in 0..10 {
            at(100, Input::Model(ModelInput::Audio));
        }
        at(10, Input::Model(ModelInput::TurnComplete));
        at(500, Input::Media(MediaInput::PlaybackDrained));
        // The caller answers (voice activity reported five times).
        for _ in 0..5 {
            at(200, Input::Media(MediaInput::CallerSpeech));
        }
        if turn == 7 {
            at(50, Input::Model(ModelInput::Audio));
            at(50, Input::Model(ModelInput::Interrupted));
        }
        if turn == 12 {
            let digit = DtmfDigit::new('3').unwrap_or_else(|| unreachable!());
            at(300, Input::Sip(SipInput::Dtmf(digit)));
        }
    }
    for _ in 0..5 {
        at(100, Input::Model(ModelInput::Audio));
    }
    at(10, Input::Model(ModelInput::EndCall));
    at(10, Input::Model(ModelInput::TurnComplete));
    at(800, Input::Media(MediaInput::PlaybackDrained));
    at(40, Input::Model(ModelInput::Closed { clean: true }));
    inputs
}

/// Runs one call; returns the number of actions (so nothing is optimized
/// away) after checking that it closed.
fn run_call(t0: Instant, inputs: &[(Duration, Input)]) -> usize {
    let mut call = CallMachine::new(Direction::Inbound, Config::default());
    let mut actions = 0;
    for (offset, input) in inputs {
        let now = t0 + *offset;
        call.handle_input(now, input.clone());
        if call.poll_timeout().is_some_and(|d| d <= now) {
            call.handle_timeout(now);
        }
        while let Some(action) = call.poll_action() {
            actions += 1;
            black_box(&action);
            if action == Action::Closed {
                return actions;
            }
        }
    }
    panic!("typical call did not close");
}

fn bench(c: &mut Criterion) {
    let inputs = typical_call();
    let t0 = Instant::now();
    let mut group = c.benchmark_group("session_machine");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("typical_inbound_call", |b| {
        b.iter(|| run_call(t0, black_box(&inputs)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
