//! End-to-end: SRTP with SDES keys (RFC 4568) on the real `agent` binary,
//! with a raw SIP caller over UDP that speaks SRTP through
//! `callbridge_rtp::srtp` (issue 20). Under `rtp.srtp = "require"`: an
//! `RTP/SAVP` call carries audio both ways, forged packets are counted as
//! `srtp_auth` (and dropped), and neither key ever appears in the
//! agent's log (at `trace`); a plaintext offer gets 488. Under the default
//! `off`: an `RTP/SAVP`-only offer gets 488. Everything on loopback.

mod support_agent;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use callbridge_crm_store::EndReason;
use callbridge_rtp::srtp::{MAX_SRTP_PACKET, SrtpKey, SrtpKeys, SrtpSession, SrtpSuite};
use callbridge_sip::sdp::{CryptoSuite, Session};
use support_agent::checks::wav_channel_rms;
use support_agent::raw_sip::{RawCall, header, status};
use support_agent::{Agent, Opts};

/// Our master key and salt (30 bytes): easy to find in a log.
const OUR_KEY: [u8; 30] = *b"callbridge-e2e-srtp-key-000001";

fn agent(policy: &str, level: &'static str) -> Agent {
    Agent::start(Opts {
        env: vec![("CALLBRIDGE_RTP_SRTP".into(), policy.into())],
        log_level: level,
        ..Opts::default()
    })
}

fn offer(rtp: SocketAddr, protocol: &str) -> String {
    format!(
        "v=0\r\no=raw 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} {protocol} 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31\r\na=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port(),
        key = STANDARD.encode(OUR_KEY),
    )
}

/// INVITE with `sdp`; the final response.
fn invite(call: &mut RawCall, sdp: &str) -> String {
    let local = call.sock.local_addr().unwrap();
    let (msg, branch) = call.request_text("INVITE", local, sdp);
    call.sock.send_to(msg.as_bytes(), call.agent).unwrap();
    RawCall::response_on(&call.sock, &branch, Duration::from_secs(10), false)
        .expect("a final answer to the INVITE")
}

fn ack(call: &mut RawCall, ok: &str) {
    call.to_tag = header(ok, "To")
        .and_then(|t| t.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .map(str::to_string);
    let local = call.sock.local_addr().unwrap();
    let (ack, _) = call.request_text("ACK", local, "");
    call.sock.send_to(ack.as_bytes(), call.agent).unwrap();
}

fn rtp_packet(seq: u16, payload: &[u8; 160]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x5eed_u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

#[test]
fn an_srtp_call_carries_audio_both_ways_and_keys_never_appear_in_the_logs() {
    let agent = agent("require", "trace");
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let rtp = call.rtp.try_clone().unwrap();
    let ok = invite(&mut call, &offer(rtp.local_addr().unwrap(), "RTP/SAVP"));
    assert_eq!(status(&ok), Some(200), "{ok}");
    let body = &ok[ok.find("\r\n\r\n").unwrap() + 4..];
    let answer = Session::parse(body.as_bytes()).unwrap();
    let m = &answer.media[0];
    assert_eq!(m.protocol, "RTP/SAVP", "{body}");
    let lines = m.crypto();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(
        (lines[0].tag, lines[0].suite),
        (7, CryptoSuite::AesCm128HmacSha1_80)
    );
    let their_key = lines[0].key.as_bytes().to_vec();
    assert_ne!(their_key, OUR_KEY);
    let media: SocketAddr = SocketAddr::new(
        answer.connection_for(0).unwrap().address.ip().unwrap(),
        m.port,
    );
    ack(&mut call, &ok);

    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let keys = SrtpKeys::new(
        SrtpKey::new(suite, &OUR_KEY).unwrap(),
        SrtpKey::new(suite, &their_key).unwrap(),
    )
    .unwrap();
    let mut srtp = SrtpSession::new(&keys).unwrap();
    // Quiet while the agent's greeting comes back (speech over it would
    // barge in), then a loud tone toward the agent.
    let law = callbridge_audio::g711::Law::MuLaw;
    let mut heard = Vec::new();
    rtp.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let start = Instant::now();
    let mut seq = 1000u16;
    let mut buf = [0u8; MAX_SRTP_PACKET];
    while start.elapsed() < Duration::from_secs(5) {
        let amplitude = if start.elapsed() < Duration::from_secs(3) {
            20.0
        } else {
            8000.0
        };
        let pcm: [i16; 160] = std::array::from_fn(|i| {
            let t = f64::from(u32::from(seq) * 160 + i as u32) / 8000.0;
            (amplitude * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        });
        let mut payload = [0u8; 160];
        law.encode(&pcm, &mut payload).unwrap();
        let p = rtp_packet(seq, &payload);
        buf[..p.len()].copy_from_slice(&p);
        let n = srtp.protect_rtp(&mut buf, p.len()).unwrap();
        rtp.send_to(&buf[..n], media).unwrap();
        seq = seq.wrapping_add(1);
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            let mut rx = [0u8; MAX_SRTP_PACKET];
            let Ok((n, _)) = rtp.recv_from(&mut rx) else {
                continue;
            };
            let mut clear = [0u8; MAX_SRTP_PACKET];
            match srtp.unprotect_rtp(&rx[..n], &mut clear) {
                Ok(m) if m >= 172 => {
                    let mut pcm = [0i16; 160];
                    law.decode(&clear[12..172], &mut pcm).unwrap();
                    heard.push(rms(&pcm));
                }
                Ok(_) => {}
                Err(e) => panic!("the agent's packet did not authenticate: {e}"),
            }
        }
    }
    // Forged packets (no valid tag): each one counted as an SRTP
    // authentication failure. (Every packet of the agent authenticated
    // above, so none went out in plaintext.)
    for k in 0..5u16 {
        let mut forged = rtp_packet(seq.wrapping_add(k), &[0x11; 160]);
        forged.extend_from_slice(&[0; 10]);
        rtp.send_to(&forged, media).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let voiced = heard.iter().filter(|&&r| r > 300.0).count();
    assert!(
        voiced >= 25,
        "only {voiced} voiced SRTP packets from the agent"
    );
    let bye_sock = call.sock.try_clone().unwrap();
    let bye = call
        .bye_from(&bye_sock, Duration::from_secs(5))
        .expect("BYE answered");
    assert_eq!(status(&bye), Some(200), "{bye}");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let s = &sessions[0];
    assert_eq!(s.end_reason, Some(EndReason::CallerHangup), "{s:?}");
    let (caller, _) = wav_channel_rms(&s.recording_path.clone().expect("a recording"));
    assert!(caller > 300.0, "the agent heard nothing (rms {caller:.0})");
    // The call's counters reach the registry when it ends.
    let failed = agent.metrics().value_with(
        "callbridge_rtp_rejected_packets_total",
        &[("reason", "srtp_auth")],
    );
    assert_eq!(
        failed, 5.0,
        "the five forged packets, and only they, are counted"
    );
    // Neither key, in any of the forms it could be printed in.
    let log = agent.stderr();
    assert!(
        log.contains("SRTP") || log.contains("srtp"),
        "the log says nothing of SRTP"
    );
    for key in [&OUR_KEY[..], &their_key[..]] {
        for form in [
            STANDARD.encode(key),
            hex(key),
            format!("{key:?}"),
            String::from_utf8_lossy(&key[..16]).into_owned(),
        ] {
            assert!(!log.contains(&form), "a key is in the log: {form}");
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_plaintext_offer_gets_488_when_srtp_is_required() {
    let agent = agent("require", "info");
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let rtp = call.rtp.local_addr().unwrap();
    let answer = invite(&mut call, &offer(rtp, "RTP/AVP"));
    assert_eq!(status(&answer), Some(488), "{answer}");
    assert_eq!(agent.health()["active_sessions"], 0);
}

#[test]
fn an_srtp_only_offer_gets_488_when_srtp_is_off() {
    let agent = agent("off", "info");
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let rtp = call.rtp.local_addr().unwrap();
    let answer = invite(&mut call, &offer(rtp, "RTP/SAVP"));
    assert_eq!(status(&answer), Some(488), "{answer}");
    // And a plain offer is answered plain.
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let ok = invite(&mut call, &offer(rtp, "RTP/AVP"));
    assert_eq!(status(&ok), Some(200), "{ok}");
    assert!(ok.contains("RTP/AVP") && !ok.contains("a=crypto"), "{ok}");
    ack(&mut call, &ok);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bye = call.bye_from(&s, Duration::from_secs(5));
    assert!(bye.is_some());
}
