//! End-to-end: the real `agent` with its database on a small tmpfs of its
//! own, which the tests fill up mid-run (issue 15, "row before answer,
//! writes never dropped"):
//!
//! - a full store: the INVITE gets 503 with Retry-After, `POST /api/calls`
//!   503 with a JSON error, Twilio `<Reject>` and Vonage an empty NCCO;
//!   health and metrics say why; once the disk is freed the next call is
//!   answered;
//! - the disk fills mid-call: the caller's turns and the end land in the
//!   store once it is freed (they waited in the journal);
//! - SIGKILL while the journal holds writes: the restarted agent replays
//!   it, so every journaled turn is in the store and the call has an end.
//!
//! Mounting a tmpfs needs root (CI runs as root); without it each test
//! skips and says why. Loopback only.

mod support_agent;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callbridge_crm_store::{EndReason, SessionState, Speaker, Store};
use callbridge_llm_mock::gemini::GeminiScript;
use callbridge_test_support::tmpfs::Tmpfs;
use serde_json::json;
use support_agent::media::MockModel;
use support_agent::raw_sip::{RawCall, header, status};
use support_agent::{Agent, Model, Opts};

/// The store on the tmpfs, the spool on `spool`, recordings elsewhere.
fn opts(fs: &Tmpfs, spool: &Path, rec: &Path, model: Model) -> Opts {
    Opts {
        model,
        outbound_target: Some("127.0.0.1:9".parse().unwrap()),
        env: vec![
            (
                "CALLBRIDGE_STORE_DATABASE".into(),
                fs.path().join("crm.db").display().to_string(),
            ),
            (
                "CALLBRIDGE_STORE_SPOOL_DIR".into(),
                spool.display().to_string(),
            ),
            (
                "CALLBRIDGE_STORE_RECORDINGS_DIR".into(),
                rec.display().to_string(),
            ),
        ],
        ..Opts::default()
    }
}

fn start(o: Opts, db: &Path) -> Agent {
    let mut agent = Agent::start(o);
    agent.db = db.to_path_buf();
    agent
}

fn sdp(rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no=raw 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port()
    )
}

/// Sends an INVITE and returns the final answer.
fn invite(call: &mut RawCall) -> String {
    let local = call.sock.local_addr().unwrap();
    let body = sdp(call.rtp.local_addr().unwrap());
    let (msg, branch) = call.request_text("INVITE", local, &body);
    call.sock.send_to(msg.as_bytes(), call.agent).unwrap();
    RawCall::response_on(&call.sock, &branch, Duration::from_secs(10), false)
        .expect("a final answer to the INVITE")
}

/// ACKs a 200 and returns the agent's RTP address from its SDP.
fn ack(call: &mut RawCall, ok: &str) -> SocketAddr {
    call.to_tag = header(ok, "To")
        .unwrap()
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .map(str::to_string);
    let local = call.sock.local_addr().unwrap();
    let (ack, _) = call.request_text("ACK", local, "");
    call.sock.send_to(ack.as_bytes(), call.agent).unwrap();
    let body = ok.split("\r\n\r\n").nth(1).unwrap();
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .trim();
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .unwrap();
    format!("{ip}:{port}").parse().unwrap()
}

/// Speaks into the call from the caller's RTP socket: 600 ms of a loud
/// tone, then 900 ms of silence (the mock model's VAD ends a turn after
/// 400 ms), over and over, until stopped.
struct Talker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Talker {
    fn start(sock: UdpSocket, to: SocketAddr) -> Talker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seq: u16 = 1;
            let mut ts: u32 = 0;
            let start = Instant::now();
            let mut n: u64 = 0;
            while !flag.load(Ordering::Relaxed) {
                let in_cycle = n % 75; // 1.5 s of 20 ms frames
                let pcm: Vec<i16> = (0..160)
                    .map(|i| {
                        if in_cycle < 30 {
                            let t = f64::from(ts + i) / 8000.0;
                            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
                        } else {
                            0
                        }
                    })
                    .collect();
                let mut pkt = vec![0x80, 0];
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&ts.to_be_bytes());
                pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                let mut payload = [0u8; 160];
                callbridge_rtp::g711::ulaw_encode(&pcm, &mut payload);
                pkt.extend_from_slice(&payload);
                let _ = sock.send_to(&pkt, to);
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                n += 1;
                let next = start + Duration::from_millis(20 * n);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        });
        Talker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for `f` (bounded), polling every 100 ms.
fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A call answered by `agent`, its caller speaking, once the first caller
/// turn is in the store at `db`.
fn answered_and_talking(agent: &Agent, db: &Path) -> (RawCall, Talker) {
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let answer = invite(&mut call);
    assert_eq!(status(&answer), Some(200), "{answer}");
    let rtp_to = ack(&mut call, &answer);
    let speaker = Talker::start(call.rtp.try_clone().unwrap(), rtp_to);
    wait_until(
        "a first caller turn in the store",
        Duration::from_secs(20),
        || (!caller_turns(db).is_empty()).then_some(()),
    );
    (call, speaker)
}

/// The caller turns stored for the only session, by text.
fn caller_turns(db: &Path) -> Vec<String> {
    let store = Store::open(db).unwrap();
    let page = store.list_sessions(&Default::default(), 10, None).unwrap();
    let Some(s) = page.items.first() else {
        return Vec::new();
    };
    store
        .load_session(s.id)
        .unwrap()
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| t.text.as_str().to_owned())
        .collect()
}

/// The caller turns a journal holds.
fn journaled_caller_turns(journal: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for t in v["turns"].as_array().into_iter().flatten() {
            if t["speaker"] == "caller" {
                out.push(t["text"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    out
}

#[test]
fn a_full_store_refuses_new_calls_with_503_and_retry_after_until_the_disk_is_freed() {
    let Some(fs) = Tmpfs::mount("3m", "this durability test") else {
        return;
    };
    let side = tempfile::tempdir().unwrap();
    let db = fs.path().join("crm.db");
    let mut o = opts(&fs, &side.path().join("spool"), side.path(), Model::Mock);
    for carrier in ["TWILIO", "VONAGE"] {
        for (k, v) in [
            ("ENABLED", "true"),
            ("PUBLIC_URL", "http://127.0.0.1:1"),
            ("VERIFY_SIGNATURES", "false"),
        ] {
            o.env
                .push((format!("CALLBRIDGE_CARRIER_{carrier}_{k}"), v.into()));
        }
    }
    let agent = start(o, &db);
    let filler = fs.fill();

    // The INVITE: refused, not answered, and told when to come back.
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let answer = invite(&mut call);
    assert_eq!(status(&answer), Some(503), "{answer}");
    assert!(
        header(&answer, "Retry-After").is_some_and(|v| v.parse::<u32>().is_ok_and(|s| s > 0)),
        "503 without Retry-After: {answer}"
    );
    // The API: 503 with a JSON error, nothing dialled.
    let r = agent.request("POST", "/api/calls", Some(&json!({"to": "+15550100777"})));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["error"].is_object() || r.json()["error"].is_string(),
        "{}",
        r.text()
    );
    // Carrier calls are refused the carrier's way: Twilio gets a <Reject>
    // first verb (never answered), Vonage an empty NCCO.
    let r = agent.request("GET", "/carrier/twilio/voice?CallSid=CAdurability1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("<Reject reason=\"busy\"/>") && !r.text().contains("<Connect"),
        "{}",
        r.text()
    );
    let r = agent.request(
        "GET",
        "/carrier/vonage/answer?uuid=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!([]));
    // Loud: health and metrics say why.
    let h = agent.health();
    assert_eq!(h["store_ok"], false, "{h}");
    let m = agent.metrics();
    assert_eq!(m.value("callbridge_store_healthy"), Some(0.0));
    assert!(
        m.value_with("callbridge_calls_refused_total", &[("reason", "store")]) >= 4.0,
        "refusals not counted"
    );
    assert!(m.value_with("callbridge_store_write_failures_total", &[("op", "create")]) >= 2.0);

    // Disk freed: the next call is answered and has its row.
    std::fs::remove_file(filler).unwrap();
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let answer = invite(&mut call);
    assert_eq!(status(&answer), Some(200), "{answer}");
    ack(&mut call, &answer);
    let bye = call.bye_from(&call.sock.try_clone().unwrap(), Duration::from_secs(5));
    assert_eq!(bye.as_deref().and_then(status), Some(200));
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    assert_eq!(sessions.len(), 1, "the refused calls left no rows");
    assert_eq!(sessions[0].end_reason, Some(EndReason::CallerHangup));
    wait_until("the store healthy again", Duration::from_secs(15), || {
        (agent.health()["store_ok"] == true).then_some(())
    });
}

#[test]
fn turns_and_the_end_of_a_call_whose_disk_filled_mid_call_land_once_it_is_freed() {
    let Some(fs) = Tmpfs::mount("4m", "this durability test") else {
        return;
    };
    let side = tempfile::tempdir().unwrap();
    let spool = side.path().join("spool");
    let db = fs.path().join("crm.db");
    let mock = MockModel::start(GeminiScript::default());
    let agent = start(
        opts(
            &fs,
            &spool,
            side.path(),
            Model::Gemini {
                endpoint: mock.url(),
            },
        ),
        &db,
    );
    let (mut call, speaker) = answered_and_talking(&agent, &db);

    let filler = fs.fill();
    let before = mock.stats().caller_turns;
    wait_until("two more caller turns", Duration::from_secs(20), || {
        (mock.stats().caller_turns >= before + 2).then_some(())
    });
    drop(speaker);
    // Let the last turn end (VAD silence) before hanging up.
    std::thread::sleep(Duration::from_millis(1500));
    let spoken = mock.stats().caller_turns;
    let bye = call.bye_from(&call.sock.try_clone().unwrap(), Duration::from_secs(5));
    assert_eq!(bye.as_deref().and_then(status), Some(200));
    let journal = spool.join("store-journal.jsonl");
    wait_until("the end journaled", Duration::from_secs(15), || {
        std::fs::read_to_string(&journal)
            .is_ok_and(|j| j.contains("\"op\":\"finish\""))
            .then_some(())
    });
    let m = agent.metrics();
    assert!(m.value("callbridge_store_journal_backlog").unwrap_or(0.0) >= 1.0);

    std::fs::remove_file(filler).unwrap();
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(30));
    assert_eq!(sessions[0].state, SessionState::Ended, "{:?}", sessions[0]);
    assert_eq!(sessions[0].end_reason, Some(EndReason::CallerHangup));
    let stored = caller_turns(&db);
    let want: Vec<String> = (1..=spoken).map(|n| format!("caller turn {n}")).collect();
    assert_eq!(stored, want, "every caller turn the model heard is stored");
    wait_until("the journal removed", Duration::from_secs(10), || {
        (!journal.exists()).then_some(())
    });
}

#[test]
fn a_journal_left_by_a_sigkilled_agent_is_replayed_by_the_next_start() {
    let Some(fs) = Tmpfs::mount("4m", "this durability test") else {
        return;
    };
    let side = tempfile::tempdir().unwrap();
    let spool = side.path().join("spool");
    let db = fs.path().join("crm.db");
    let mock = MockModel::start(GeminiScript::default());
    let o = opts(
        &fs,
        &spool,
        side.path(),
        Model::Gemini {
            endpoint: mock.url(),
        },
    );
    let agent = start(o.clone(), &db);
    let (_call, speaker) = answered_and_talking(&agent, &db);
    let filler = fs.fill();
    let stored_before = caller_turns(&db);
    let journal = spool.join("store-journal.jsonl");
    let journaled = wait_until(
        "caller turns in the journal",
        Duration::from_secs(20),
        || {
            let j = journaled_caller_turns(&journal);
            (j.len() >= 2).then_some(j)
        },
    );
    // SIGKILL mid-call, the journal holding what the store could not take.
    let killed = Command::new("kill")
        .args(["-KILL", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(speaker);
    drop(agent);
    // Read again after the kill: a batch may have landed just before it.
    let again = journaled_caller_turns(&journal);
    let journaled = if again.len() > journaled.len() {
        again
    } else {
        journaled
    };
    std::fs::remove_file(filler).unwrap();

    let agent = start(o, &db);
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].state,
        SessionState::Interrupted,
        "{:?}",
        sessions[0]
    );
    assert!(sessions[0].end_reason.is_some(), "{:?}", sessions[0]);
    let stored = caller_turns(&db);
    for t in stored_before.iter().chain(&journaled) {
        assert!(stored.contains(t), "{t:?} lost: stored {stored:?}");
    }
    assert!(!journal.exists(), "the replayed journal is removed");
}
