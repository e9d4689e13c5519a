//! A minimal hand-written SIP UAC over UDP for the cases sipp cannot play:
//! sending a request for an existing dialog from a second source address
//! (127.0.0.2), which needs the dialog's tags. Bounded waits only.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The status code of a response (`SIP/2.0 200 OK` -> 200).
pub fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The value of the first header `name` (case-insensitive).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One UAC dialog from a socket on 127.0.0.1.
pub struct RawCall {
    pub sock: UdpSocket,
    pub agent: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    /// A socket that stands in for the caller's RTP port (never read).
    pub rtp: UdpSocket,
    cseq: u32,
}

impl RawCall {
    /// A caller bound to `local_ip:0`.
    pub fn new(local_ip: &str, agent: SocketAddr) -> RawCall {
        let sock = UdpSocket::bind((local_ip, 0)).unwrap();
        let rtp = UdpSocket::bind((local_ip, 0)).unwrap();
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = std::process::id();
        let t = NEXT.fetch_add(1, Ordering::Relaxed);
        RawCall {
            call_id: format!(
                "e2e-raw-{n}-{}-{t}@127.0.0.1",
                sock.local_addr().unwrap().port()
            ),
            from_tag: format!("rawtag{}", sock.local_addr().unwrap().port()),
            sock,
            agent,
            to_tag: None,
            rtp,
            cseq: 1,
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A request in this dialog, sent from `from` (this call's own socket
    /// unless given), with a fresh branch; returns the branch.
    pub fn request_text(&mut self, method: &str, via: SocketAddr, body: &str) -> (String, String) {
        if method != "ACK" && method != "CANCEL" {
            self.cseq += u32::from(method != "INVITE");
        }
        let branch = format!("z9hG4bK-raw-{method}-{}-{}", self.cseq, via.port());
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        let cseq = if method == "ACK" { 1 } else { self.cseq };
        let msg = format!(
            "{method} sip:+15550100123@{agent} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch={branch};rport\r\n\
             From: <sip:+15550100999@{local}>;tag={ftag}\r\n\
             To: <sip:+15550100123@{agent}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n\
             Max-Forwards: 70\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            agent = self.agent,
            local = self.local(),
            ftag = self.from_tag,
            cid = self.call_id,
            len = body.len(),
        );
        (msg, branch)
    }

    /// Receives the next response on `sock` whose Via carries `branch`,
    /// skipping provisional ones unless `provisional`; `None` after `within`.
    pub fn response_on(
        sock: &UdpSocket,
        branch: &str,
        within: Duration,
        provisional: bool,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                if Instant::now() >= deadline {
                    return None;
                }
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Some(code) = status(&msg) else { continue };
            if !header(&msg, "Via").is_some_and(|v| v.contains(branch)) {
                continue;
            }
            if code >= 200 || provisional {
                return Some(msg);
            }
        }
    }

    /// INVITE (PCMU offer), wait for the 200 (up to `within`), ACK it.
    /// Panics on any other final answer.
    pub fn invite_and_ack(&mut self, within: Duration) {
        let rtp = self.rtp.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=raw 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
            ip = rtp.ip(),
            port = rtp.port()
        );
        let local = self.local();
        let (msg, branch) = self.request_text("INVITE", local, &sdp);
        self.sock.send_to(msg.as_bytes(), self.agent).unwrap();
        let ok = Self::response_on(&self.sock, &branch, within, false)
            .expect("a final answer to the INVITE");
        assert_eq!(status(&ok), Some(200), "INVITE answered: {ok}");
        let to = header(&ok, "To").unwrap();
        self.to_tag = to
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(str::to_string);
        assert!(self.to_tag.is_some(), "200 without a To tag: {ok}");
        let (ack, _) = self.request_text("ACK", local, "");
        self.sock.send_to(ack.as_bytes(), self.agent).unwrap();
    }

    /// Sends an in-dialog BYE from `from` (a socket on any address) and
    /// returns its final answer, or `None` if none came within `within`.
    pub fn bye_from(&mut self, from: &UdpSocket, within: Duration) -> Option<String> {
        let via = from.local_addr().unwrap();
        let (msg, branch) = self.request_text("BYE", via, "");
        from.send_to(msg.as_bytes(), self.agent).unwrap();
        Self::response_on(from, &branch, within, false)
    }
}
