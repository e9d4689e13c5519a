//! End-to-end: issue 20's offer/answer and session-timer SIP on the real
//! `agent` binary, from a raw SIP caller on loopback. An INVITE without SDP
//! gets a 200 with the agent's offer (PCMU, PCMA, telephone-event) and the
//! call carries audio both ways once the ACK brings the answer; an ACK
//! without an answer ends the call with BYE; a re-INVITE without SDP gets
//! the current SDP unchanged; UPDATE is answered; and a session timer the
//! caller does not refresh ends the call with the agent's BYE (a 3 s
//! interval, accepted through the test-only `sip.min_se_floor`). The
//! delayed offer and the offerless re-INVITE are played by sipp too
//! (`uac_delayed_offer.xml`).

mod support_agent;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callbridge_crm_store::{EndReason, EventKind, SessionState};
use support_agent::checks::wav_channel_rms;
use support_agent::media::{RtpTap, drain_rms, pcmu_packet};
use support_agent::raw_sip::{RawCall, header, status};
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

/// The caller's payload: mu-law 0xe7 (a level of 260: below barge-in).
const CALLER_BYTE: u8 = 0xe7;
const CALLER_SSRC: u32 = 0x0de1_a7ed;

/// Our SDP at `call.rtp`, PCMU and telephone-event: an answer to the
/// agent's offer (same single m-line).
fn caller_sdp(call: &RawCall) -> String {
    let me = call.rtp.local_addr().unwrap();
    format!(
        "v=0\r\no=raw 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = me.ip(),
        port = me.port()
    )
}

/// Sends `text` (a request made by `call.request_text`) with `extra`
/// header lines and returns the final answer to its `branch`.
fn send(call: &RawCall, text: &str, branch: &str, extra: &str) -> String {
    let text = text.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
        1,
    );
    call.sock.send_to(text.as_bytes(), call.agent).unwrap();
    RawCall::response_on(&call.sock, branch, Duration::from_secs(20), false)
        .unwrap_or_else(|| panic!("no final answer to {}", text.lines().next().unwrap_or("")))
}

/// An INVITE without a body; returns the agent's 200 (its offer) and sets
/// the dialog's To tag.
fn offerless_invite(call: &mut RawCall, extra: &str) -> String {
    let local = call.sock.local_addr().unwrap();
    let (invite, branch) = call.request_text("INVITE", local, "");
    let ok = send(call, &invite, &branch, extra);
    call.to_tag = header(&ok, "To")
        .and_then(|to| to.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .map(str::to_string);
    ok
}

/// The SDP body of a message.
fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The agent's RTP address from its SDP.
fn agent_media(agent: &Agent, msg: &str) -> SocketAddr {
    let port: u16 = body(msg)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port: {msg}"));
    SocketAddr::new(agent.sip.ip(), port)
}

/// ACK for CSeq `seq` carrying `answer`.
fn ack(call: &mut RawCall, seq: u32, answer: &str) {
    let local = call.sock.local_addr().unwrap();
    let (ack, _) = call.request_text("ACK", local, answer);
    let ack = ack.replacen("CSeq: 1 ACK", &format!("CSeq: {seq} ACK"), 1);
    call.sock.send_to(ack.as_bytes(), call.agent).unwrap();
}

/// Speaks for `d` to `to` from `call.rtp`; returns the RMS of each packet
/// the agent sent back meanwhile.
fn talk(call: &RawCall, to: SocketAddr, d: Duration) -> Vec<f64> {
    let media = &call.rtp;
    media.set_nonblocking(true).unwrap();
    let mut heard = Vec::new();
    let start = Instant::now();
    let mut seq = 0u16;
    while start.elapsed() < d {
        let _ = media.send_to(&pcmu_packet(seq, CALLER_SSRC, CALLER_BYTE), to);
        seq = seq.wrapping_add(1);
        drain_rms(media, &mut heard);
        std::thread::sleep(Duration::from_millis(20));
    }
    drain_rms(media, &mut heard);
    heard
}

fn bye(call: &mut RawCall) {
    let from = call.sock.try_clone().unwrap();
    let answer = call.bye_from(&from, Duration::from_secs(10));
    assert_eq!(
        answer.as_deref().and_then(status),
        Some(200),
        "BYE: {answer:?}"
    );
}

/// Waits for a request `method` from the agent on the call's socket and
/// answers it 200; returns it.
fn answer_request(call: &RawCall, method: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 65_536];
    call.sock.set_nonblocking(false).unwrap();
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        call.sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok((n, from)) = call.sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !msg.starts_with(method) {
            continue;
        }
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for line in msg.split("\r\n").filter(|l| {
                l.split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            }) {
                ok.push_str(line);
                ok.push_str("\r\n");
            }
        }
        ok.push_str("Content-Length: 0\r\n\r\n");
        call.sock.send_to(ok.as_bytes(), from).unwrap();
        return Some(msg);
    }
}

#[test]
fn an_invite_without_sdp_gets_our_offer_and_carries_audio_both_ways_after_the_acks_answer() {
    let agent = Agent::start(Opts::default());
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let ok = offerless_invite(&mut call, "");
    assert_eq!(status(&ok), Some(200), "{ok}");
    let offer = body(&ok);
    assert!(
        offer.contains("m=audio ") && offer.contains(" RTP/AVP 0 8 101"),
        "the 200 carries our offer with PCMU, PCMA and telephone-event: {offer}"
    );
    assert!(
        header(&ok, "Allow").is_some_and(|a| a.contains("UPDATE")),
        "{ok}"
    );
    let to = agent_media(&agent, &ok);
    let answer = caller_sdp(&call);
    ack(&mut call, 1, &answer);
    // Silent for a second: what arrives went to the address of the ACK's
    // answer (nothing was latched).
    let mut before = Vec::new();
    call.rtp.set_nonblocking(true).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        drain_rms(&call.rtp, &mut before);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        before.len() >= 25,
        "the agent sent {} packets to the answer's address before the caller spoke",
        before.len()
    );
    let heard = talk(&call, to, Duration::from_secs(3));
    let voiced = heard.iter().filter(|r| **r > 300.0).count();
    println!("caller received {} packets, {voiced} voiced", heard.len());
    assert!(
        heard.len() >= 100,
        "the agent's stream reached the caller: {}",
        heard.len()
    );
    assert!(
        voiced >= 10,
        "the greeting reached the caller: {voiced} voiced packets"
    );
    bye(&mut call);
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = &sessions[0];
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    let (caller_rms, agent_rms) = wav_channel_rms(&s.recording_path.clone().unwrap());
    println!("recording RMS: caller {caller_rms:.0}, agent {agent_rms:.0}");
    assert!(
        caller_rms > 50.0,
        "the agent heard the caller: {caller_rms}"
    );
    assert!(agent_rms > 50.0, "the agent spoke: {agent_rms}");
}

#[test]
fn an_ack_without_an_answer_ends_the_call_with_bye_and_a_reason() {
    let agent = Agent::start(Opts::default());
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let ok = offerless_invite(&mut call, "");
    assert_eq!(status(&ok), Some(200), "{ok}");
    ack(&mut call, 1, "");
    let bye = answer_request(&call, "BYE", Duration::from_secs(10));
    assert!(bye.is_some(), "the agent sent BYE after the ACK");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = &sessions[0];
    assert_eq!(s.end_reason, Some(EndReason::AckTimeout), "{s:?}");
    let rec = agent.store().load_session(s.id).unwrap();
    assert!(
        rec.events
            .iter()
            .any(|e| e.kind == EventKind::Sip && e.detail.get("bad_answer_in_ack").is_some()),
        "{:?}",
        rec.events
    );
}

#[test]
fn a_reinvite_without_sdp_gets_the_current_sdp_and_update_is_answered() {
    let agent = Agent::start(Opts::default());
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let rtp = call.rtp.local_addr().unwrap();
    let (invite, branch) = {
        let local = call.sock.local_addr().unwrap();
        let sdp = caller_sdp(&call);
        call.request_text("INVITE", local, &sdp)
    };
    let ok = send(&call, &invite, &branch, "");
    assert_eq!(status(&ok), Some(200), "{ok}");
    call.to_tag = header(&ok, "To")
        .and_then(|to| to.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .map(str::to_string);
    ack(&mut call, 1, "");
    let to = agent_media(&agent, &ok);
    // UPDATE without SDP (CSeq 2): a plain 200.
    let local = call.sock.local_addr().unwrap();
    let (update, branch) = call.request_text("UPDATE", local, "");
    let up = send(&call, &update, &branch, "");
    assert_eq!(status(&up), Some(200), "{up}");
    // re-INVITE without SDP (CSeq 10; the UPDATE took 2): the same SDP as the answer, same
    // o= version; the ACK answers it.
    let (reinvite, branch) = call.request_text("INVITE", local, "");
    let reinvite = reinvite.replacen("CSeq: 2 INVITE", "CSeq: 10 INVITE", 1);
    let re = send(&call, &reinvite, &branch, "");
    assert_eq!(status(&re), Some(200), "{re}");
    assert_eq!(body(&re), body(&ok), "the current SDP, unchanged");
    let answer = caller_sdp(&call);
    ack(&mut call, 10, &answer);
    let heard = talk(&call, to, Duration::from_secs(2));
    assert!(
        heard.len() >= 50,
        "audio goes on after the refresh: {} packets to {rtp}",
        heard.len()
    );
    bye(&mut call);
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    assert_eq!(
        sessions[0].end_reason,
        Some(EndReason::CallerHangup),
        "{:?}",
        sessions[0]
    );
}

#[test]
fn a_session_timer_the_caller_does_not_refresh_ends_the_call_with_bye() {
    let mut opts = Opts::default();
    for (k, v) in [
        ("CALLBRIDGE_SIP_MIN_SE_FLOOR", "1s"),
        ("CALLBRIDGE_SIP_MIN_SE", "2s"),
        ("CALLBRIDGE_SIP_SESSION_EXPIRES", "30s"),
    ] {
        opts.env.push((k.to_string(), v.to_string()));
    }
    let agent = Agent::start(opts);
    // Too short: 422 with our Min-SE.
    let mut short = RawCall::new("127.0.0.1", agent.sip);
    let sdp = caller_sdp(&short);
    let local = short.sock.local_addr().unwrap();
    let (invite, branch) = short.request_text("INVITE", local, &sdp);
    let r = send(
        &short,
        &invite,
        &branch,
        "Supported: timer\r\nSession-Expires: 1\r\n",
    );
    assert_eq!(status(&r), Some(422), "{r}");
    assert_eq!(header(&r, "Min-SE"), Some("2"), "{r}");

    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let sdp = caller_sdp(&call);
    let local = call.sock.local_addr().unwrap();
    let (invite, branch) = call.request_text("INVITE", local, &sdp);
    let asked = Instant::now();
    let ok = send(
        &call,
        &invite,
        &branch,
        "Supported: timer\r\nSession-Expires: 3\r\n",
    );
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert_eq!(
        header(&ok, "Session-Expires"),
        Some("3;refresher=uac"),
        "{ok}"
    );
    assert_eq!(header(&ok, "Require"), Some("timer"), "{ok}");
    call.to_tag = header(&ok, "To")
        .and_then(|to| to.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .map(str::to_string);
    ack(&mut call, 1, "");
    // We never refresh: BYE at 3 - min(32, 1) = 2 s after the 200.
    let bye = answer_request(&call, "BYE", Duration::from_secs(10));
    let after = asked.elapsed();
    assert!(
        bye.is_some(),
        "the agent ended the expired session with BYE"
    );
    println!("BYE {after:?} after the INVITE");
    assert!(
        after >= Duration::from_millis(1900),
        "not before the expiry: {after:?}"
    );
    // The 422 made no session; the expired call is the one.
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = &sessions[0];
    assert_eq!(s.end_reason, Some(EndReason::Error), "{s:?}");
    let rec = agent.store().load_session(s.id).unwrap();
    assert!(
        rec.events
            .iter()
            .any(|e| e.kind == EventKind::Sip && e.detail.get("session_expired").is_some()),
        "{:?}",
        rec.events
    );
}

#[test]
fn sipp_delayed_offer_and_offerless_reinvite_carry_audio_after_the_acks_answer() {
    let agent = Agent::start(Opts::default());
    let tap = RtpTap::start(Duration::from_secs(20));
    let run = Sipp::uac("uac_delayed_offer.xml", agent.sip)
        .key("tap", tap.port.to_string())
        .pause_ms(2000)
        .within(Duration::from_secs(30))
        .run();
    run.assert_ok("delayed offer, offerless re-INVITE");
    let heard = tap.finish();
    // The agent sent to the address of the ACK's answer (the tap), and it
    // was the greeting, until sipp's own RTP latched it.
    let voiced = heard.iter().filter(|h| h.rms > 300.0).count();
    println!("tap: {} packets, {voiced} voiced", heard.len());
    assert!(
        heard.len() >= 100,
        "the answer's address got {} packets",
        heard.len()
    );
    assert!(voiced >= 25, "only {voiced} voiced packets: no greeting");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    assert_eq!(s.state, SessionState::Ended, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    let (caller, agent_side) = wav_channel_rms(&s.recording_path.clone().unwrap());
    println!("recording rms: caller {caller:.0}, agent {agent_side:.0}");
    assert!(caller > 100.0, "the agent heard sipp's speech: {caller:.0}");
    assert!(agent_side > 100.0, "the agent spoke: {agent_side:.0}");
}
