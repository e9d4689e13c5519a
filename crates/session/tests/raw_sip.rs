//! Failure-table rows injected with hand-written SIP over a raw UDP socket:
//! a duplicate INVITE (same Call-ID, new branch) never makes a second
//! session, and a duplicate BYE (retransmitted, or a new one for the ended
//! dialog) never makes a second teardown or a second store end.

mod support;

use std::time::Duration;

use callbridge_crm_store::EndReason;
use support::*;
use tokio::net::UdpSocket;

struct Raw {
    sock: UdpSocket,
    agent: std::net::SocketAddr,
}

impl Raw {
    async fn send(&self, msg: String) {
        self.sock.send_to(msg.as_bytes(), self.agent).await.unwrap();
    }

    /// The next response whose Via carries `branch`, skipping 1xx unless
    /// `provisional`; `None` after `within`.
    async fn response(&self, branch: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (n, _) = tokio::time::timeout(left, self.sock.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 1") || !text.starts_with("SIP/2.0") {
                continue;
            }
            if text.contains(&format!("branch={branch}")) {
                return Some(text);
            }
        }
    }
}

fn status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn to_tag(resp: &str) -> String {
    let line = resp
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap();
    line.split("tag=").nth(1).unwrap().trim().to_owned()
}

fn request(
    method: &str,
    me: std::net::SocketAddr,
    agent: std::net::SocketAddr,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:agent@{agent}>;tag={t}"),
        None => format!("<sip:agent@{agent}>"),
    };
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} sip:agent@{agent} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@{me}>;tag=raw-from-1\r\n\
         To: {to}\r\n\
         Call-ID: raw-dup-call-1@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:caller@{me}>\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_invite_makes_one_session_and_duplicate_bye_one_teardown() {
    let r = rig(fast_script(), |_| {}).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let raw = Raw {
        sock,
        agent: r.manager.sip_addr(),
    };
    let agent = raw.agent;
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        rtp.local_addr().unwrap().port()
    );
    raw.send(request("INVITE", me, agent, "z9hG4bK-inv-1", 1, None, &sdp))
        .await;
    // The same INVITE again on a new branch (a fork or a loop).
    raw.send(request("INVITE", me, agent, "z9hG4bK-inv-2", 1, None, &sdp))
        .await;
    let second = raw
        .response("z9hG4bK-inv-2", Duration::from_secs(3))
        .await
        .expect("the second INVITE is answered");
    assert!(status(&second) >= 400, "second INVITE refused: {second}");
    let ok = raw
        .response("z9hG4bK-inv-1", Duration::from_secs(5))
        .await
        .expect("the first INVITE is answered");
    assert_eq!(status(&ok), 200);
    let tag = to_tag(&ok);
    raw.send(request(
        "ACK",
        me,
        agent,
        "z9hG4bK-ack-1",
        1,
        Some(&tag),
        "",
    ))
    .await;
    assert_eq!(r.manager.snapshot().calls.len(), 1, "one live session");

    let bye = request("BYE", me, agent, "z9hG4bK-bye-1", 2, Some(&tag), "");
    raw.send(bye.clone()).await;
    let first = raw.response("z9hG4bK-bye-1", Duration::from_secs(3)).await;
    assert_eq!(first.as_deref().map(status), Some(200));
    // A retransmission gets the cached 200; a new BYE for the ended dialog 481.
    raw.send(bye).await;
    let again = raw.response("z9hG4bK-bye-1", Duration::from_secs(3)).await;
    assert_eq!(again.as_deref().map(status), Some(200));
    raw.send(request(
        "BYE",
        me,
        agent,
        "z9hG4bK-bye-2",
        3,
        Some(&tag),
        "",
    ))
    .await;
    let late = raw.response("z9hG4bK-bye-2", Duration::from_secs(3)).await;
    assert_eq!(late.as_deref().map(status), Some(481));

    r.idle().await;
    let ids = r.all_ids();
    assert_eq!(ids.len(), 1, "one session for the Call-ID");
    let rec = r.record(ids[0]);
    assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
    assert_eq!(
        rec.session.sip_call_id.as_deref(),
        Some("raw-dup-call-1@127.0.0.1")
    );
    let ends: Vec<_> = rec
        .events
        .iter()
        .filter(|e| e.kind == callbridge_crm_store::EventKind::StateChanged)
        .filter(|e| e.detail.to_string().contains("ended"))
        .collect();
    assert!(ends.len() <= 1, "one store end: {ends:?}");
    let s = r.manager.snapshot();
    let teardowns: u64 = s.ended.iter().map(|(_, n)| *n).sum();
    assert_eq!(teardowns, 1, "one teardown");
    assert_eq!((s.call_tasks, s.media_sockets, s.model_sessions), (0, 0, 0));
    r.manager.shutdown().await;
}
