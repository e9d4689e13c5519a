//! The gate on synthetic calls, on simulated time: frames of silence,
//! tones and speech-like sound fed every 20 ms of a fake clock.

use std::path::PathBuf;

use super::*;
use crate::amd::VoicemailMessage;

const TICK: Duration = Duration::from_millis(20);

/// Frame `i` of a sine of `hz` at `dbfs`.
fn tone(hz: f32, dbfs: f32, i: usize) -> [i16; 160] {
    let amp = 32767.0 * 10f32.powf(dbfs / 20.0);
    std::array::from_fn(|n| {
        let t = (i * 160 + n) as f32 / 8000.0;
        (amp * (std::f32::consts::TAU * hz * t).sin()) as i16
    })
}

/// Frame `i` of speech-like sound: a pulse train at a gliding 150 Hz
/// through two formants, syllable-modulated (as `callbridge_amd`'s tests).
fn speech(i: usize) -> [i16; 160] {
    let amp = 32767.0 * 10f32.powf(-18.0 / 20.0);
    std::array::from_fn(|n| {
        let t = (i * 160 + n) as f32 / 8000.0;
        let pitch = 150.0 * (1.0 + 0.15 * (std::f32::consts::TAU * 1.3 * t).sin());
        let mut v = 0.0;
        for h in 1..=12 {
            let hf = pitch * h as f32;
            let formant = (-((hf - 700.0) / 300.0).powi(2)).exp()
                + 0.6 * (-((hf - 1800.0) / 400.0).powi(2)).exp()
                + 0.2;
            v += formant * (std::f32::consts::TAU * hf * t).sin() / h as f32;
        }
        let syllable = 0.55 + 0.45 * (std::f32::consts::TAU * 4.0 * t).sin();
        (amp * 0.5 * v * syllable).clamp(-32768.0, 32767.0) as i16
    })
}

#[derive(Clone, Copy)]
enum Seg {
    Silence(u64),
    Speech(u64),
    Tone(u64, f32),
}
use Seg::*;

/// A call on a fake clock: the gate, the time, the frames fed so far.
struct Sim {
    gate: AmdGate,
    t0: Instant,
    i: usize,
    out: Vec<(Duration, GateOut)>,
}

impl Sim {
    fn new(policy: MachinePolicy) -> Sim {
        let s = AmdSettings {
            policy,
            ..AmdSettings::default()
        };
        Sim {
            gate: AmdGate::new(&s).unwrap(),
            t0: Instant::now(),
            i: 0,
            out: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        TICK * u32::try_from(self.i).unwrap()
    }

    fn drain(&mut self) {
        while let Some(o) = self.gate.poll() {
            self.out.push((self.now(), o));
        }
    }

    fn play(&mut self, segs: &[Seg]) {
        for seg in segs {
            let (ms, f): (u64, Box<dyn Fn(usize) -> [i16; 160]>) = match *seg {
                Silence(ms) => (ms, Box::new(|_| [0; 160])),
                Speech(ms) => (ms, Box::new(speech)),
                Tone(ms, hz) => (ms, Box::new(move |i| tone(hz, -12.0, i))),
            };
            for _ in 0..ms / 20 {
                let frame = f(self.i);
                self.i += 1;
                self.gate.on_frame(self.t0 + self.now(), &frame);
                self.drain();
            }
        }
    }

    /// The outputs without the verdicts' details.
    fn kinds(&self) -> Vec<String> {
        self.out
            .iter()
            .map(|(_, o)| match o {
                GateOut::Verdict(r) => format!("{}:{}", r.verdict, r.stage.as_str()),
                GateOut::Release => "release".into(),
                GateOut::Discard => "discard".into(),
                GateOut::LeaveVoicemail => "leave".into(),
                GateOut::End(e) => format!("end:{e:?}"),
            })
            .collect()
    }

    fn when(&self, kind: &str) -> Duration {
        let k = self.kinds();
        let i = k.iter().position(|x| x == kind).unwrap();
        self.out[i].0
    }
}

fn voicemail_prompt() -> MachinePolicy {
    MachinePolicy::Voicemail(VoicemailMessage::Prompt("leave it".into()))
}

#[test]
fn a_hello_releases_the_held_greeting_600ms_after_the_hello_ends() {
    let mut s = Sim::new(MachinePolicy::Hangup);
    assert!(s.gate.holds() && s.gate.mutes_barge_in());
    s.play(&[Silence(400), Speech(600), Silence(2000)]);
    assert_eq!(s.kinds(), ["human:acoustic", "release"]);
    // A word or two: `human_quick_silence` after it.
    let at = s.when("release");
    assert!(
        at >= Duration::from_millis(1500) && at <= Duration::from_millis(1700),
        "{at:?}"
    );
    assert!(!s.gate.holds() && !s.gate.mutes_barge_in() && !s.gate.listening());
}

#[test]
fn a_long_greeting_is_a_machine_and_hangup_ends_the_call_at_once() {
    let mut s = Sim::new(MachinePolicy::Hangup);
    s.play(&[Silence(300), Speech(4000), Silence(1000)]);
    assert_eq!(
        s.kinds(),
        ["machine:acoustic", "discard", "end:Machine"],
        "the greeting is dropped, the call ends"
    );
    assert!(s.when("end:Machine") <= Duration::from_millis(2900));
}

#[test]
fn a_voicemail_waits_for_the_beep_then_the_message_plays_to_its_end() {
    let mut s = Sim::new(voicemail_prompt());
    s.play(&[Silence(300), Speech(4000)]);
    assert_eq!(s.kinds(), ["machine:acoustic", "discard"]);
    assert!(s.gate.drops() && s.gate.mutes_barge_in());
    s.play(&[Silence(300), Tone(400, 1000.0), Silence(1500)]);
    assert_eq!(
        s.kinds()[2..],
        ["machine_end_beep:acoustic".to_owned(), "leave".into()]
    );
    let beep_end = Duration::from_millis(300 + 4000 + 300 + 400);
    let leave = s.when("leave");
    assert!(
        leave >= beep_end + Duration::from_millis(1000)
            && leave <= beep_end + Duration::from_millis(1100),
        "{leave:?}"
    );
    assert!(!s.gate.holds() && !s.gate.drops(), "the message plays");
    // A turn complete before any audio of the message is an older reply's.
    s.gate.on_model_turn_complete(false);
    s.gate.on_playback_drained();
    assert!(s.gate.poll().is_none());
    s.gate.on_model_audio();
    s.gate.on_model_turn_complete(true);
    assert!(s.gate.poll().is_none(), "still playing");
    s.gate.on_playback_drained();
    assert_eq!(s.gate.poll(), Some(GateOut::End(AmdEnd::VoicemailLeft)));
}

#[test]
fn a_voicemail_file_ends_when_its_playback_drains() {
    let mut s = Sim::new(MachinePolicy::Voicemail(VoicemailMessage::File(
        PathBuf::from("vm.wav"),
    )));
    s.play(&[Silence(300), Speech(4000), Silence(2500)]);
    assert_eq!(
        s.kinds(),
        [
            "machine:acoustic",
            "discard",
            "machine_end_silence:acoustic",
            "leave"
        ]
    );
    assert!(
        s.gate.drops(),
        "the model's replies do not follow the recording"
    );
    s.gate.on_playback_drained();
    assert_eq!(s.gate.poll(), Some(GateOut::End(AmdEnd::VoicemailLeft)));
}

#[test]
fn silence_is_no_speech_and_a_sit_is_unreachable() {
    let mut s = Sim::new(MachinePolicy::Hangup);
    s.play(&[Silence(6000)]);
    assert_eq!(s.kinds(), ["no_speech:acoustic", "discard", "end:NoSpeech"]);
    assert_eq!(s.when("end:NoSpeech"), Duration::from_millis(4500));

    let mut s = Sim::new(MachinePolicy::Hangup);
    s.play(&[
        Silence(200),
        Tone(380, 985.2),
        Tone(380, 1428.5),
        Tone(380, 1776.7),
        Silence(1000),
    ]);
    assert_eq!(
        s.kinds(),
        ["unreachable:acoustic", "discard", "end:Unreachable"]
    );
}

#[test]
fn words_decide_before_the_acoustics() {
    // A short first turn: a person, released at once.
    let mut s = Sim::new(MachinePolicy::Hangup);
    s.play(&[Silence(300), Speech(500)]);
    s.gate.on_transcript("Hello?", true);
    s.drain();
    assert_eq!(s.kinds(), ["human:words", "release"]);
    s.play(&[Silence(2000)]);
    assert_eq!(s.kinds().len(), 2, "stage A says nothing more");

    // A machine phrase: the greeting is dropped, and stage A waits for
    // its end (here: its silence) before the message.
    let mut s = Sim::new(voicemail_prompt());
    s.play(&[Silence(300), Speech(1000)]);
    s.gate.on_transcript("Please leave a message", false);
    s.drain();
    assert_eq!(s.kinds(), ["machine:words", "discard"]);
    let Some((_, GateOut::Verdict(r))) = s.out.first() else {
        panic!()
    };
    assert_eq!(r.phrase.as_deref(), Some("leave a message"));
    assert_eq!(r.words, 4);
    s.play(&[Silence(2500)]);
    assert_eq!(
        s.kinds()[2..],
        ["machine_end_silence:acoustic".to_owned(), "leave".into()]
    );
}

#[test]
fn unknown_is_a_person_unless_configured_otherwise() {
    // A greeting too long for a person, too short for a machine, then
    // silence: undecided, `unknown` once `undecided_silence` passed.
    let segs = [Silence(300), Speech(2000), Silence(3000)];
    let mut s = Sim::new(MachinePolicy::Hangup);
    s.play(&segs);
    assert_eq!(s.kinds(), ["unknown:acoustic", "release"]);

    let settings = AmdSettings {
        unknown_is_human: false,
        ..AmdSettings::default()
    };
    let mut s = Sim::new(MachinePolicy::Hangup);
    s.gate = AmdGate::new(&settings).unwrap();
    s.play(&segs);
    assert_eq!(s.kinds(), ["unknown:acoustic", "discard", "end:Machine"]);
}

#[test]
fn frames_after_the_verdict_change_nothing() {
    let mut s = Sim::new(MachinePolicy::Hangup);
    s.play(&[Silence(400), Speech(600), Silence(1200)]);
    let n = s.out.len();
    s.play(&[Speech(5000), Tone(400, 1000.0), Silence(3000)]);
    s.gate
        .on_transcript("please leave a message after the tone", true);
    assert_eq!(s.out.len(), n);
    assert!(s.gate.poll().is_none());
}
