//! End-to-end: answering-machine detection on outbound calls (issue 19).
//! `POST /api/calls` with `"amd": true` toward a sipp UAS whose SDP answer
//! names the test's own UDP socket: the test plays the callee's audio
//! from it (the committed corpus clips of `crates/amd/corpus`, mu-law) and
//! records every packet the agent sends to the callee, so it can say what
//! reached the wire before the verdict.
//!
//! - A person ("Hello?"): verdict `human`, the model's reply plays; no
//!   loud audio before the verdict.
//! - A voicemail greeting ending in a 1 kHz beep: verdict `machine`, then
//!   `machine_end_beep`; the voicemail (a WAV file) plays after the beep
//!   and the call ends `voicemail-left` (dialer outcome `completed`); no
//!   loud audio before the greeting's end.

mod support_agent;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_api::{CallAccepted, CallStatus};
use callbridge_crm_store::EventKind;
use callbridge_rtp::g711::Law;
use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};
use serde_json::{Value, json};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

/// Louder than this (RMS, 16-bit) is speech, not comfort silence.
const LOUD: f64 = 300.0;

/// One packet the agent sent to the callee: when (from the agent's first
/// packet, about the answer) and its RMS.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Duration,
    rms: f64,
}

/// The callee's media socket: once the agent's first packet shows where
/// the agent's media is, it plays `clip` (mu-law bytes, 20 ms a packet)
/// then silence, from the SDP address (so no latching is involved), and
/// records what the agent sends.
struct Callee {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sent>>>,
}

impl Callee {
    fn start(clip: Vec<u8>, limit: Duration) -> Callee {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            let mut sent = Vec::new();
            let mut first: Option<(Instant, SocketAddr)> = None;
            let mut next_send = Instant::now();
            let mut seq: u16 = 0;
            let mut buf = [0u8; 2048];
            let mut pcm = [0i16; 2048];
            while Instant::now() < deadline && !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(&buf[..n]))
                    && p.payload_type() == PayloadType::PCMU
                {
                    let (t0, _) = *first.get_or_insert_with(|| (Instant::now(), from));
                    let len = p.payload().len().min(pcm.len());
                    let rms = if Law::MuLaw.decode(p.payload(), &mut pcm).is_ok() {
                        let e: f64 = pcm[..len]
                            .iter()
                            .map(|&s| f64::from(s) * f64::from(s))
                            .sum();
                        (e / len.max(1) as f64).sqrt()
                    } else {
                        0.0
                    };
                    sent.push(Sent {
                        at: t0.elapsed(),
                        rms,
                    });
                }
                let Some((t0, agent)) = first else { continue };
                if Instant::now() < next_send {
                    continue;
                }
                let i = usize::from(seq) * 160;
                let mut payload = [0xFFu8; 160];
                if let Some(chunk) = clip.get(i..) {
                    let k = chunk.len().min(160);
                    payload[..k].copy_from_slice(&chunk[..k]);
                }
                let h = RtpHeader {
                    marker: seq == 0,
                    payload_type: PayloadType::PCMU,
                    seq: SeqNo(seq),
                    timestamp: u32::from(seq).wrapping_mul(160),
                    ssrc: Ssrc(0x00A3_D001),
                };
                let mut out = vec![0u8; RtpHeader::encoded_len(160)];
                h.write_to(&payload, &mut out).unwrap();
                let _ = sock.send_to(&out, agent);
                seq = seq.wrapping_add(1);
                next_send = t0 + Duration::from_millis(20) * u32::from(seq);
            }
            sent
        });
        Callee {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn corpus(file: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/amd/corpus")
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn call_status(agent: &Agent, id: &str) -> CallStatus {
    let r = agent.request("GET", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 200, "GET /api/calls/{id}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("CallStatus: {e}: {}", r.text()))
}

/// Places the call with detection on; its session id.
fn place(agent: &Agent) -> String {
    let r = agent.request(
        "POST",
        "/api/calls",
        Some(&json!({"to": "+15550100777", "amd": true})),
    );
    assert_eq!(r.status, 202, "POST /api/calls: {}", r.text());
    let accepted: CallAccepted = serde_json::from_slice(&r.body).unwrap();
    accepted.id
}

/// The session's detection events (`{"amd": verdict, ...}`), in order.
fn amd_events(agent: &Agent, id: &str) -> Vec<Value> {
    let rec = agent.store().load_session(id.parse().unwrap()).unwrap();
    rec.events
        .into_iter()
        .filter(|e| e.kind == EventKind::Note && e.detail.get("amd").is_some())
        .map(|e| e.detail)
        .collect()
}

/// The session row's detection columns (`amd`, `amd_decided_ms`,
/// `amd_machine_end`) as `GET /api/sessions/{id}` shows them.
fn amd_columns(agent: &Agent, id: &str) -> (Value, Value, Value) {
    let r = agent.request("GET", &format!("/api/sessions/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let s = &v["session"];
    (
        s["amd"].clone(),
        s["amd_decided_ms"].clone(),
        s["amd_machine_end"].clone(),
    )
}

fn decided(ev: &Value) -> Duration {
    Duration::from_millis(ev["decided_ms"].as_u64().expect("decided_ms"))
}

fn first_loud(sent: &[Sent]) -> Option<Duration> {
    sent.iter().find(|s| s.rms > LOUD).map(|s| s.at)
}

#[test]
fn a_person_hears_nothing_before_the_human_verdict_then_the_reply() {
    let callee = Callee::start(corpus("human/h000.ul"), Duration::from_secs(30));
    let uas = Sipp::uas("uas_answer_tapped.xml")
        .key("tap", callee.port.to_string())
        .within(Duration::from_secs(40));
    let sipp = uas.spawn();
    let agent = Agent::start(Opts {
        outbound_target: Some(uas.addr()),
        ..Opts::default()
    });
    let id = place(&agent);
    // The verdict, then the model's reply to the "Hello?".
    let human = agent.wait_for("the human verdict", Duration::from_secs(15), || {
        amd_events(&agent, &id).into_iter().next()
    });
    assert_eq!(human["amd"], "human", "{human}");
    std::thread::sleep(Duration::from_secs(4));
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE: {}", r.text());
    sipp.finish().assert_ok("UAS answers, gets our BYE");
    let sent = callee.finish();
    let at = decided(&human);
    let loud = first_loud(&sent);
    println!(
        "human: verdict {} by {} at {at:?}; {} packets to the callee, first loud at {loud:?}",
        human["amd"],
        human["stage"],
        sent.len()
    );
    assert!(at <= Duration::from_secs(3), "human verdict late: {at:?}");
    // Nothing loud before the verdict (the agent's first packet is within
    // a tick of the answer, the detector's start: 100 ms of slack).
    let loud = loud.expect("the reply reached the callee");
    assert!(
        loud + Duration::from_millis(100) >= at,
        "loud audio at {loud:?}, before the verdict at {at:?}"
    );
    let voiced = sent.iter().filter(|s| s.rms > LOUD).count();
    assert!(
        voiced >= 25,
        "only {voiced} loud packets: the reply did not play"
    );
    let st = agent.wait_for("the call to end", Duration::from_secs(10), || {
        let st = call_status(&agent, &id);
        (!st.live && st.ended_at.is_some()).then_some(st)
    });
    assert_eq!(st.end_reason.as_deref(), Some("agent-hangup"), "{st:?}");
    assert_eq!(
        amd_columns(&agent, &id),
        (
            Value::from("human"),
            human["decided_ms"].clone(),
            Value::Null
        ),
        "the session row keeps the verdict"
    );
    let m = agent.metrics();
    assert_eq!(
        m.value_with("callbridge_amd_verdicts_total", &[("verdict", "human")]),
        1.0
    );
    assert_eq!(m.value("callbridge_amd_decision_seconds_count"), Some(1.0));
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn a_voicemail_gets_the_message_after_the_beep_and_ends_voicemail_left() {
    // m000: "Hi, you've reached John Smith. ... leave a message after the
    // tone.", a 1 kHz beep at 6,517 ms for 200 ms.
    let callee = Callee::start(corpus("machine/m000.ul"), Duration::from_secs(40));
    let uas = Sipp::uas("uas_answer_tapped.xml")
        .key("tap", callee.port.to_string())
        .within(Duration::from_secs(50));
    let sipp = uas.spawn();
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/session/assets/fallback-apology-8k.wav");
    let agent = Agent::start(Opts {
        outbound_target: Some(uas.addr()),
        env: vec![
            ("CALLBRIDGE_AMD_MACHINE_POLICY".into(), "voicemail".into()),
            (
                "CALLBRIDGE_AMD_VOICEMAIL_FILE".into(),
                clip.display().to_string(),
            ),
            // The mock model transcribes every caller turn as "caller
            // turn N" (three words, a person's count): stage B must not
            // take the greeting's first sentence for a person.
            ("CALLBRIDGE_AMD_HUMAN_MAX_WORDS".into(), "1".into()),
        ],
        ..Opts::default()
    });
    let id = place(&agent);
    sipp.finish().assert_ok("UAS answers, gets our BYE");
    let st = agent.wait_for("the call to end", Duration::from_secs(20), || {
        let st = call_status(&agent, &id);
        (!st.live && st.ended_at.is_some()).then_some(st)
    });
    let sent = callee.finish();
    let events = amd_events(&agent, &id);
    println!("voicemail: {st:?}\nevents: {events:#?}");
    assert_eq!(st.end_reason.as_deref(), Some("voicemail-left"), "{st:?}");
    assert_eq!(st.outcome.as_deref(), Some("completed"), "{st:?}");
    let verdicts: Vec<&str> = events.iter().filter_map(|e| e["amd"].as_str()).collect();
    assert_eq!(verdicts, ["machine", "machine_end_beep"], "{events:#?}");
    let beep = &events[1]["beep"];
    assert!(
        (beep["hz"].as_f64().unwrap_or(0.0) - 1000.0).abs() < 40.0,
        "{beep}"
    );
    let end = decided(&events[1]);
    assert!(end >= Duration::from_millis(6517 + 200 + 1000), "{end:?}");
    assert_eq!(
        amd_columns(&agent, &id),
        (
            Value::from("machine"),
            events[0]["decided_ms"].clone(),
            Value::from("beep")
        ),
        "the session row keeps the verdict and the greeting's end"
    );
    let r = agent.request("GET", "/api/sessions?amd=machine", None);
    assert!(r.text().contains(&id), "{}", r.text());
    let r = agent.request("GET", "/api/sessions?amd=human", None);
    assert!(!r.text().contains(&id), "{}", r.text());
    let loud = first_loud(&sent).expect("the voicemail reached the callee");
    println!("greeting ended at {end:?}; first loud packet at {loud:?}");
    assert!(
        loud + Duration::from_millis(100) >= end,
        "loud audio at {loud:?}, before the greeting ended at {end:?}"
    );
    let voiced = sent.iter().filter(|s| s.rms > LOUD).count();
    assert!(
        voiced >= 100,
        "only {voiced} loud packets: the message did not play"
    );
    let m = agent.metrics();
    for v in ["machine", "machine_end_beep"] {
        assert_eq!(
            m.value_with("callbridge_amd_verdicts_total", &[("verdict", v)]),
            1.0,
            "{v}"
        );
    }
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn a_machine_is_hung_up_on_when_the_policy_is_hangup_and_its_outcome_is_voicemail() {
    let callee = Callee::start(corpus("machine/m000.ul"), Duration::from_secs(30));
    let uas = Sipp::uas("uas_answer_tapped.xml")
        .key("tap", callee.port.to_string())
        .within(Duration::from_secs(40));
    let sipp = uas.spawn();
    let agent = Agent::start(Opts {
        outbound_target: Some(uas.addr()),
        env: vec![("CALLBRIDGE_AMD_HUMAN_MAX_WORDS".into(), "1".into())],
        ..Opts::default()
    });
    let id = place(&agent);
    sipp.finish().assert_ok("UAS answers, gets our BYE");
    let st = agent.wait_for("the call to end", Duration::from_secs(20), || {
        let st = call_status(&agent, &id);
        (!st.live && st.ended_at.is_some()).then_some(st)
    });
    let sent = callee.finish();
    let events = amd_events(&agent, &id);
    println!("machine, hangup: {st:?}\nevents: {events:#?}");
    assert_eq!(
        st.end_reason.as_deref(),
        Some("answering-machine"),
        "{st:?}"
    );
    assert_eq!(st.outcome.as_deref(), Some("voicemail"), "{st:?}");
    let verdicts: Vec<&str> = events.iter().filter_map(|e| e["amd"].as_str()).collect();
    assert_eq!(verdicts, ["machine"], "{events:#?}");
    assert_eq!(
        amd_columns(&agent, &id),
        (
            Value::from("machine"),
            events[0]["decided_ms"].clone(),
            Value::Null
        )
    );
    let loud = sent.iter().filter(|s| s.rms > LOUD).count();
    assert_eq!(loud, 0, "the machine heard the model: {loud} loud packets");
    agent.wait_idle(Duration::from_secs(10));
}
