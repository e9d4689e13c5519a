//! The SIP path under pressure (issue 14, items 5 and 6), with raw SIP over
//! loopback: an INVITE flood at the call limit is answered 503 while the
//! live call keeps its media; a flood of in-dialog requests is answered
//! and the call's end is recorded once (no SIP event of a live call is
//! dropped); a 200 OK that is never ACKed ends the session with its own
//! reason when the agent gives up, not after its BYE times out too.
//!
//! Like a real UAC, the flooding peers retransmit what was not answered
//! (the kernel may drop a burst); each test is bounded and stops itself.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use callbridge_crm_store::EndReason;
use support::raw::{RawPeer, pcmu_offer, status};
use support::*;
use tokio::net::UdpSocket;

/// No RTP or speech timeout during the floods: only SIP ends these calls.
fn patient(cfg: &mut callbridge_session::ManagerConfig) {
    cfg.machine.rtp_inactivity = Some(Duration::from_secs(120));
    cfg.machine.no_speech = Duration::from_secs(120);
}

fn offer(peer: &RawPeer) -> String {
    pcmu_offer(
        peer.rtp.local_addr().unwrap().port(),
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
}

/// The branch of a message's top Via.
fn branch(msg: &str) -> Option<String> {
    let via = msg
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("via:"))?;
    let b = via.split("branch=").nth(1)?;
    Some(b.split([';', ',', ' ']).next()?.trim().to_owned())
}

/// The ACK of a non-2xx final response to an INVITE (RFC 3261 section
/// 17.1.1.3: same branch, the response's To), so the agent stops
/// retransmitting it.
fn ack_for(resp: &str, agent: SocketAddr) -> Option<String> {
    let code = status(resp);
    let cseq = resp
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("cseq:"))?;
    if code < 300 || !cseq.trim_end().ends_with("INVITE") {
        return None;
    }
    let keep = |name: &str| {
        resp.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(name))
            .map(|l| format!("{l}\r\n"))
            .unwrap_or_default()
    };
    let seq = cseq.split_whitespace().nth(1)?;
    Some(format!(
        "ACK sip:agent@{agent} SIP/2.0\r\n{}{}{}{}CSeq: {seq} ACK\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        keep("via:"),
        keep("from:"),
        keep("to:"),
        keep("call-id:"),
    ))
}

/// Sends every `(branch, request)` from `sock` to `agent` and collects the
/// final status of each, retransmitting the unanswered every 500 ms (RFC
/// 3261 Timer A/E style) for at most `within`. Returns branch -> status.
async fn exchange(
    sock: &UdpSocket,
    agent: SocketAddr,
    requests: &[(String, String)],
    within: Duration,
) -> HashMap<String, u16> {
    let mut finals: HashMap<String, u16> = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = vec![0u8; 8192];
    loop {
        for (b, msg) in requests.iter().filter(|(b, _)| !finals.contains_key(b)) {
            sock.send_to(msg.as_bytes(), agent).await.unwrap();
            // Paced a little, as a flood through a kernel buffer is.
            if b.ends_with('0') {
                tokio::task::yield_now().await;
            }
        }
        let round = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            let left = round.saturating_duration_since(tokio::time::Instant::now());
            let Ok(Ok((n, _))) = tokio::time::timeout(left, sock.recv_from(&mut buf)).await else {
                break;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 1") || !text.starts_with("SIP/2.0") {
                continue;
            }
            if let Some(ack) = ack_for(&text, agent) {
                sock.send_to(ack.as_bytes(), agent).await.unwrap();
            }
            if let Some(b) = branch(&text) {
                finals.entry(b).or_insert(status(&text));
            }
        }
        if finals.len() >= requests.len() || tokio::time::Instant::now() >= deadline {
            return finals;
        }
    }
}

/// Counts RTP packets reaching `rtp` within `within`.
async fn rtp_packets(rtp: &UdpSocket, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = vec![0u8; 2048];
    let mut n = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(
        deadline.saturating_duration_since(tokio::time::Instant::now()),
        rtp.recv_from(&mut buf),
    )
    .await
    {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_flood_at_max_calls_1_is_answered_503_and_the_live_call_keeps_its_media() {
    const FLOOD: usize = 1000;
    let r = rig(fast_script(), |cfg| {
        patient(cfg);
        cfg.max_calls = 1;
    })
    .await;
    let agent = r.manager.sip_addr();
    let mut live = RawPeer::new(agent, "raw-live@127.0.0.1").await;
    live.invite(&offer(&live))
        .await
        .expect("the first call is answered");
    assert!(
        rtp_packets(&live.rtp, Duration::from_millis(500)).await > 0,
        "the live call has media before the flood"
    );

    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = flood.local_addr().unwrap();
    let invites: Vec<(String, String)> = (0..FLOOD)
        .map(|i| {
            let b = format!("z9hG4bK-flood-{i}");
            let sdp = pcmu_offer(40_000, "0", "a=rtpmap:0 PCMU/8000\r\n");
            let msg = format!(
                "INVITE sip:agent@{agent} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\n\
                 From: <sip:flood@{me}>;tag=f{i}\r\nTo: <sip:agent@{agent}>\r\n\
                 Call-ID: flood-{i}@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
                 Contact: <sip:flood@{me}>\r\nContent-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            );
            (b, msg)
        })
        .collect();
    let (finals, media) = tokio::join!(
        exchange(&flood, agent, &invites, Duration::from_secs(60)),
        rtp_packets(&live.rtp, Duration::from_secs(2)),
    );
    assert_eq!(finals.len(), FLOOD, "every INVITE is answered");
    let not_503: Vec<_> = finals.values().filter(|s| **s != 503).collect();
    assert!(not_503.is_empty(), "every INVITE gets 503: {not_503:?}");
    assert!(media > 0, "the live call keeps its media during the flood");
    assert_eq!(r.manager.snapshot().calls.len(), 1);
    assert!(
        rtp_packets(&live.rtp, Duration::from_millis(500)).await > 0,
        "the live call keeps its media after the flood"
    );

    // The live call ends; the agent takes a new call.
    let bye = live.request("BYE", "z9hG4bK-live-bye", "", "", "");
    let answered = exchange(
        &live.sock,
        agent,
        &[("z9hG4bK-live-bye".into(), bye)],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answered.get("z9hG4bK-live-bye"), Some(&200));
    r.idle().await;
    let mut next = RawPeer::new(agent, "raw-after-flood@127.0.0.1").await;
    next.invite(&offer(&next))
        .await
        .expect("a new INVITE is answered once the call has ended");
    let bye = next.request("BYE", "z9hG4bK-next-bye", "", "", "");
    next.send(&bye).await;
    assert_eq!(
        next.response("z9hG4bK-next-bye", Duration::from_secs(5))
            .await
            .as_deref()
            .map(status),
        Some(200)
    );
    r.idle().await;
    let rows = r.all_ids();
    assert_eq!(rows.len(), 2, "no session for any flooding INVITE");
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dialog_flood_is_answered_and_the_end_is_recorded_once() {
    const INFOS: usize = 400;
    let r = rig(fast_script(), patient).await;
    let agent = r.manager.sip_addr();
    let mut peer = RawPeer::new(agent, "raw-in-dialog-flood@127.0.0.1").await;
    peer.invite(&offer(&peer))
        .await
        .expect("the call is answered");
    let id = r.manager.snapshot().calls[0].id;
    // A burst of DTMF INFOs with the BYE right behind it: the BYE must
    // end the call although the call's mailbox is full of digits.
    let mut requests: Vec<(String, String)> = (0..INFOS)
        .map(|i| {
            let b = format!("z9hG4bK-info-{i}");
            let msg = peer.request(
                "INFO",
                &b,
                "",
                "application/dtmf-relay",
                "Signal=5\r\nDuration=100\r\n",
            );
            (b, msg)
        })
        .collect();
    let bye = peer.request("BYE", "z9hG4bK-flood-bye", "", "", "");
    requests.push(("z9hG4bK-flood-bye".into(), bye));
    let finals = exchange(&peer.sock, agent, &requests, Duration::from_secs(30)).await;
    assert_eq!(finals.len(), requests.len(), "every request is answered");
    assert_eq!(finals.get("z9hG4bK-flood-bye"), Some(&200));
    // An INFO first seen after the BYE gets 481; every other one 200.
    let odd: Vec<_> = finals
        .values()
        .filter(|s| !matches!(**s, 200 | 481))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");

    r.idle().await;
    let rec = r.record(id);
    assert_eq!(
        rec.session.end_reason,
        Some(EndReason::CallerHangup),
        "the BYE ended the call"
    );
    let s = r.manager.snapshot();
    assert!(s.calls.is_empty());
    let ended: u64 = s.ended.iter().map(|(_, n)| *n).sum();
    assert_eq!(ended, 1, "one end recorded: {:?}", s.ended);
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_200_ends_the_session_ack_timeout_when_the_agent_gives_up() {
    // T1 250 ms: the agent gives up on the ACK at 64*T1 = 16 s, and its
    // BYE, which the peer never answers, would time out 16 s after that.
    let t1 = Duration::from_millis(250);
    let r = rig(fast_script(), |cfg| {
        patient(cfg);
        cfg.sip.timers.t1 = t1;
        cfg.sip.timers.t2 = t1 * 8;
        cfg.sip.timers.t4 = t1 * 10;
        cfg.sip.timers.d = t1 * 64;
    })
    .await;
    let agent = r.manager.sip_addr();
    let mut peer = RawPeer::new(agent, "raw-no-ack@127.0.0.1").await;
    let invite = peer.request(
        "INVITE",
        "z9hG4bK-no-ack",
        "",
        "application/sdp",
        &offer(&peer),
    );
    peer.send(&invite).await;
    let ok = peer
        .response("z9hG4bK-no-ack", Duration::from_secs(10))
        .await
        .expect("the INVITE is answered");
    assert_eq!(status(&ok), 200);
    let id = r.manager.snapshot().calls[0].id;
    // No ACK. The agent gives up at Timer H and sends BYE.
    let bye = peer
        .request_in("BYE", t1 * 64 + Duration::from_secs(15))
        .await
        .expect("the agent sends BYE when it gives up on the ACK");
    drop(bye);
    // The session ends now, not when that BYE times out (another 16 s).
    let deadline = tokio::time::Instant::now() + t1 * 64 - Duration::from_secs(4);
    while !r.manager.snapshot().calls.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session is still live after the agent gave up on the ACK"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.idle().await;
    let rec = r.record(id);
    assert_eq!(rec.session.end_reason, Some(EndReason::AckTimeout));
    let s = r.manager.snapshot();
    let ended: u64 = s.ended.iter().map(|(_, n)| *n).sum();
    assert_eq!(ended, 1, "{:?}", s.ended);
    r.manager.shutdown().await;
}
