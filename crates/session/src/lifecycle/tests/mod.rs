//! Tests of the lifecycle machine on simulated time: a [`Call`] harness that
//! feeds inputs, jumps the fake clock and records every action.

mod ending;
mod every_input;
mod inbound;
mod live;
mod many;
mod media;
mod outbound;
mod properties;
mod reply;

use std::time::{Duration, Instant};

use super::{
    Action, CallMachine, Command, Config, Direction, EndOutcome, EndReason, Input, MediaInput,
    ModelInput, Phase, SipInput, Timer,
};

/// One call under test: the machine, a fake clock and the action log.
struct Call {
    m: CallMachine,
    now: Instant,
    log: Vec<Action>,
}

impl Call {
    fn new(direction: Direction, config: Config) -> Self {
        let mut call = Call {
            m: CallMachine::new(direction, config),
            now: Instant::now(),
            log: Vec::new(),
        };
        call.drain();
        call
    }

    fn inbound() -> Self {
        Self::new(Direction::Inbound, Config::default())
    }

    fn outbound(config: Config) -> Self {
        Self::new(Direction::Outbound, config)
    }

    /// An inbound call that is answered and talking: the greeting was
    /// requested, played and finished.
    fn active_inbound() -> Self {
        let mut call = Self::greeting_inbound();
        call.model(ModelInput::Audio);
        call.model(ModelInput::TurnComplete);
        call.media(MediaInput::PlaybackDrained);
        call
    }

    /// An inbound call that is answered with the greeting requested and
    /// nothing heard from the model yet.
    fn greeting_inbound() -> Self {
        let mut call = Self::inbound();
        call.sip(SipInput::Invite);
        call.model(ModelInput::Ready);
        call.sip(SipInput::Ack);
        assert_eq!(call.m.phase(), Phase::Active);
        call
    }

    fn drain(&mut self) -> Vec<Action> {
        let new: Vec<Action> = std::iter::from_fn(|| self.m.poll_action()).collect();
        self.log.extend(new.iter().cloned());
        new
    }

    fn input(&mut self, input: Input) -> Vec<Action> {
        self.m.handle_input(self.now, input);
        self.drain()
    }

    fn sip(&mut self, i: SipInput) -> Vec<Action> {
        self.input(Input::Sip(i))
    }

    fn model(&mut self, i: ModelInput) -> Vec<Action> {
        self.input(Input::Model(i))
    }

    fn media(&mut self, i: MediaInput) -> Vec<Action> {
        self.input(Input::Media(i))
    }

    fn cmd(&mut self, c: Command) -> Vec<Action> {
        self.input(Input::Command(c))
    }

    /// Moves the clock forward and fires what expired.
    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.m.handle_timeout(self.now);
        self.drain()
    }

    /// Jumps to each next deadline until no timer is armed (bounded).
    fn run_timers(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..64 {
            let Some(at) = self.m.poll_timeout() else {
                break;
            };
            self.now = self.now.max(at);
            self.m.handle_timeout(self.now);
            out.extend(self.drain());
        }
        out
    }

    fn count(&self, action: &Action) -> usize {
        self.log.iter().filter(|a| *a == action).count()
    }

    fn store_end(&self) -> Option<(EndReason, EndOutcome, Option<u16>)> {
        self.log.iter().find_map(|a| match a {
            Action::WriteStoreEnd {
                reason,
                outcome,
                sip_status,
            } => Some((*reason, *outcome, *sip_status)),
            _ => None,
        })
    }

    /// Asserts the call closed with exactly one of each cleanup action.
    fn assert_closed_once(&self) {
        assert_eq!(self.m.phase(), Phase::Closed, "log: {:?}", self.log);
        assert_eq!(self.log.last(), Some(&Action::Closed));
        for a in [Action::StopMedia, Action::FinalizeRecording, Action::Closed] {
            assert_eq!(self.count(&a), 1, "{a:?} in {:?}", self.log);
        }
        assert_eq!(
            self.count(&Action::CloseModel),
            self.count(&Action::OpenModel)
        );
        let ends = self
            .log
            .iter()
            .filter(|a| matches!(a, Action::WriteStoreEnd { .. }))
            .count();
        assert_eq!(ends, 1);
        assert!(self.count(&Action::SendBye) <= 1);
        assert_eq!(self.m.poll_timeout(), None);
    }
}

fn pos(actions: &[Action], a: &Action) -> usize {
    actions
        .iter()
        .position(|x| x == a)
        .unwrap_or_else(|| panic!("{a:?} not in {actions:?}"))
}

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

#[test]
fn timer_accessor_reports_armed_deadlines() {
    let call = Call::active_inbound();
    assert!(call.m.timer(Timer::NoSpeech).is_some());
    assert!(call.m.timer(Timer::MaxDuration).is_some());
    assert_eq!(call.m.timer(Timer::AnswerWait), None);
}
