//! A hand-written SIP peer over a raw UDP socket, for what our own UA
//! will not do (accept a REFER, send INFO DTMF, offer odd codecs), with a
//! tiny RTP sender that plays the reply clip as caller speech.

use std::net::SocketAddr;
use std::time::Duration;

use callbridge_llm_mock::clips;
use callbridge_rtp::g711::Law;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

pub struct RawPeer {
    pub sock: UdpSocket,
    pub me: SocketAddr,
    pub agent: SocketAddr,
    pub rtp: UdpSocket,
    pub call_id: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
}

pub fn status(msg: &str) -> u16 {
    msg.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of the first header `name` (case-insensitive), trimmed.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    msg.lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim())
}

pub fn pcmu_offer(port: u16, pts: &str, maps: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pts}\r\n{maps}"
    )
}

impl RawPeer {
    pub async fn new(agent: SocketAddr, call_id: &str) -> RawPeer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let me = sock.local_addr().unwrap();
        RawPeer {
            sock,
            me,
            agent,
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            call_id: call_id.to_owned(),
            to_tag: None,
            cseq: 0,
        }
    }

    pub async fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), self.agent).await.unwrap();
    }

    /// A request of ours in the dialog (or the INVITE when no To tag yet).
    pub fn request(
        &mut self,
        method: &str,
        branch: &str,
        extra: &str,
        ctype: &str,
        body: &str,
    ) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        let (me, agent) = (self.me, self.agent);
        let to = match &self.to_tag {
            Some(t) => format!("<sip:agent@{agent}>;tag={t}"),
            None => format!("<sip:agent@{agent}>"),
        };
        let ctype = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        format!(
            "{method} sip:agent@{agent} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:caller@{me}>;tag=raw-from-1\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: {} {method}\r\n\
             Contact: <sip:caller@{me}>\r\n\
             {extra}{ctype}Content-Length: {}\r\n\r\n{body}",
            self.call_id,
            self.cseq,
            body.len()
        )
    }

    /// The next message matching `want` within `within` (others are
    /// skipped).
    pub async fn next(&self, within: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (n, _) = tokio::time::timeout(left, self.sock.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if want(&text) {
                return Some(text);
            }
        }
    }

    /// The final response whose Via carries `branch`.
    pub async fn response(&self, branch: &str, within: Duration) -> Option<String> {
        let b = format!("branch={branch}");
        self.next(within, |t| {
            t.starts_with("SIP/2.0") && !t.starts_with("SIP/2.0 1") && t.contains(&b)
        })
        .await
    }

    /// The next request with `method`.
    pub async fn request_in(&self, method: &str, within: Duration) -> Option<String> {
        let m = format!("{method} ");
        self.next(within, |t| t.starts_with(&m)).await
    }

    /// Answers a request of the agent's with `code`.
    pub async fn reply(&self, req: &str, code: u16, reason: &str) {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for l in req.lines() {
            let lower = l.to_ascii_lowercase();
            if ["via:", "from:", "to:", "call-id:", "cseq:"]
                .iter()
                .any(|h| lower.starts_with(h))
            {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        self.send(&out).await;
    }

    /// Sends INVITE with `offer`; on 200 sends ACK, records the To tag and
    /// returns the answer's RTP port. `Err(status)` for a final error.
    pub async fn invite(&mut self, offer: &str) -> Result<u16, u16> {
        let inv = self.request("INVITE", "z9hG4bK-raw-inv", "", "application/sdp", offer);
        self.send(&inv).await;
        let resp = self
            .response("z9hG4bK-raw-inv", Duration::from_secs(5))
            .await
            .ok_or(0u16)?;
        let code = status(&resp);
        if code != 200 {
            return Err(code);
        }
        let to = header(&resp, "to").unwrap();
        self.to_tag = Some(to.split("tag=").nth(1).unwrap().trim().to_owned());
        let ack = self.request("ACK", "z9hG4bK-raw-ack", "", "", "");
        self.send(&ack).await;
        let port = resp
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        Ok(port)
    }

    /// Plays the reply clip (8 kHz, PCMU) to `port` as caller speech, then
    /// 2 s of silence, paced at 20 ms.
    pub fn speak(&self, port: u16) -> JoinHandle<()> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = SocketAddr::new(self.agent.ip(), port);
        tokio::spawn(async move {
            let sock = UdpSocket::from_std({
                sock.set_nonblocking(true).unwrap();
                sock
            })
            .unwrap();
            let mut pcm = clips::reply().samples_at(8000);
            pcm.extend(std::iter::repeat_n(0i16, 16_000));
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for (i, chunk) in pcm.chunks(160).enumerate() {
                tick.tick().await;
                let mut pkt = vec![0x80, 0x00];
                pkt.extend_from_slice(&(i as u16).to_be_bytes());
                pkt.extend_from_slice(&((i as u32) * 160).to_be_bytes());
                pkt.extend_from_slice(&0x5eed_u32.to_be_bytes());
                let mut payload = [0u8; 160];
                Law::MuLaw
                    .encode(chunk, &mut payload[..chunk.len()])
                    .unwrap();
                pkt.extend_from_slice(&payload[..chunk.len()]);
                let _ = sock.send_to(&pkt, dest).await;
            }
        })
    }
}
