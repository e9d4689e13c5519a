//! A minimal SIP user agent client for one call (RFC 3261 sections 8, 12,
//! 13, 15, 17.1 over UDP): builds INVITE, ACK, CANCEL and BYE as text and
//! reads what comes back with callbridge-sip's parser.
//!
//! It is deliberately raw (no transaction layer) so the load tool can
//! misbehave on purpose: vanish without BYE, send BYE twice, CANCEL while
//! ringing. Retransmission is done by the caller of these functions
//! ([`crate::call`]), with RFC 3261 Timer A/E doubling from T1.

use std::net::SocketAddr;

use bytes::Bytes;
use callbridge_sip::{Message, Method};

/// The caller's side of one dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Our SIP socket.
    pub me: SocketAddr,
    /// The agent's SIP address.
    pub agent: SocketAddr,
    /// Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub from_tag: String,
    /// The agent's To tag, once a response carried one.
    pub to_tag: Option<String>,
    /// The INVITE's branch (CANCEL and the non-2xx ACK reuse it).
    pub invite_branch: String,
    /// The calling number.
    pub from_user: String,
    next_cseq: u32,
    branches: u32,
}

/// What a datagram from the agent was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A response.
    Response {
        /// Status code.
        status: u16,
        /// CSeq number.
        cseq: u32,
        /// CSeq method.
        method: Method,
        /// To tag.
        to_tag: Option<String>,
        /// Body (the SDP answer of a 200 to INVITE).
        body: Bytes,
    },
    /// A request of the agent's (BYE when it hangs up).
    Request {
        /// Method.
        method: Method,
        /// The 200 OK (or other) answer to send back, prebuilt.
        reply_ok: String,
    },
    /// Not a SIP message we could parse.
    Garbage,
}

impl Dialog {
    /// A new dialog for call `index` of run `run`.
    pub fn new(me: SocketAddr, agent: SocketAddr, run: u64, index: u64) -> Dialog {
        Dialog {
            me,
            agent,
            call_id: format!("load-{run:x}-{index}@127.0.0.1"),
            from_tag: format!("lf{run:x}{index}"),
            to_tag: None,
            invite_branch: format!("z9hG4bK-load-{run:x}-{index}-0"),
            from_user: format!("+1555{:07}", index % 10_000_000),
            next_cseq: 1,
            branches: 0,
        }
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("{}-{}", self.invite_branch, self.branches)
    }

    fn request(
        &self,
        method: &str,
        branch: &str,
        cseq: u32,
        with_tag: bool,
        content: Option<&str>,
    ) -> String {
        let (me, agent) = (self.me, self.agent);
        let to = match (&self.to_tag, with_tag) {
            (Some(t), true) => format!("<sip:agent@{agent}>;tag={t}"),
            _ => format!("<sip:agent@{agent}>"),
        };
        let body = content.unwrap_or("");
        let ctype = if content.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        format!(
            "{method} sip:agent@{agent} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag={ftag}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:{user}@{me}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            user = self.from_user,
            ftag = self.from_tag,
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// The INVITE carrying `sdp`.
    pub fn invite(&mut self, sdp: &str) -> String {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let branch = self.invite_branch.clone();
        self.request("INVITE", &branch, cseq, false, Some(sdp))
    }

    /// ACK for a 2xx (a new transaction, RFC 3261 section 13.2.2.4).
    pub fn ack_2xx(&mut self) -> String {
        let branch = self.branch();
        self.request("ACK", &branch, 1, true, None)
    }

    /// ACK for a non-2xx final response (same branch as the INVITE,
    /// section 17.1.1.3).
    pub fn ack_error(&self) -> String {
        self.request("ACK", &self.invite_branch, 1, true, None)
    }

    /// CANCEL of the INVITE (section 9.1: same branch, CSeq number, no tag).
    pub fn cancel(&self) -> String {
        self.request("CANCEL", &self.invite_branch, 1, false, None)
    }

    /// A BYE with a fresh CSeq and branch.
    pub fn bye(&mut self) -> String {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let branch = self.branch();
        self.request("BYE", &branch, cseq, true, None)
    }
}

/// The SDP offer: PCMU and telephone-event from `port` on loopback.
pub fn offer(port: u16, session: u64) -> String {
    format!(
        "v=0\r\no=load {session} 1 IN IP4 127.0.0.1\r\ns=load\r\nc=IN IP4 127.0.0.1\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The agent's RTP address from an SDP answer (connection address and
/// first audio port).
pub fn answer_addr(body: &[u8]) -> Option<SocketAddr> {
    let sdp = callbridge_sip::sdp::Session::parse(body).ok()?;
    let media = sdp.media.iter().find(|m| m.kind == "audio")?;
    let ip = sdp.connection_for(0)?.address.ip()?;
    Some(SocketAddr::new(ip, media.port))
}

/// Classifies one datagram from the agent.
pub fn classify(datagram: &[u8]) -> Incoming {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(datagram)) else {
        return Incoming::Garbage;
    };
    match msg {
        Message::Response(r) => {
            let Ok(cseq) = r.headers().cseq() else {
                return Incoming::Garbage;
            };
            let to_tag = r
                .headers()
                .to_addr()
                .ok()
                .and_then(|a| a.tag())
                .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned());
            Incoming::Response {
                status: r.status().as_u16(),
                cseq: cseq.seq,
                method: cseq.method,
                to_tag,
                body: r.body().clone(),
            }
        }
        Message::Request(req) => {
            let text = String::from_utf8_lossy(datagram);
            Incoming::Request {
                method: req.method().clone(),
                reply_ok: reply(&text, 200, "OK"),
            }
        }
    }
}

/// A response to a request of the agent's that copies its dialog headers.
fn reply(req: &str, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    let head = req.split("\r\n\r\n").next().unwrap_or("");
    for line in head.lines() {
        let lower = line.to_ascii_lowercase();
        let copy = [
            "via:", "v:", "from:", "f:", "to:", "t:", "call-id:", "i:", "cseq:",
        ]
        .iter()
        .any(|h| lower.starts_with(h));
        if copy {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog::new(
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:5060".parse().unwrap(),
            0xab,
            7,
        )
    }

    #[test]
    fn requests_parse_with_the_sip_crate_and_keep_dialog_ids() {
        let mut d = dialog();
        let inv = d.invite(&offer(4000, 1));
        let Message::Request(r) = Message::parse(Bytes::from(inv)).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(*r.method(), Method::Invite);
        assert_eq!(r.headers().cseq().unwrap().seq, 1);
        assert_eq!(
            answer_addr(r.body()),
            Some("127.0.0.1:4000".parse().unwrap())
        );
        d.to_tag = Some("agent-tag".into());
        let bye = d.bye();
        let Message::Request(b) = Message::parse(Bytes::from(bye)).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(b.headers().cseq().unwrap().seq, 2);
        let tag = b.headers().to_addr().unwrap().tag().unwrap();
        assert_eq!(tag.as_bytes(), b"agent-tag");
        let branch = b.headers().top_via().unwrap().branch().unwrap();
        assert_ne!(branch.as_bytes(), d.invite_branch.as_bytes());
        // CANCEL reuses the INVITE's branch and has no To tag.
        let Message::Request(c) = Message::parse(Bytes::from(d.cancel())).unwrap() else {
            panic!("not a request");
        };
        let branch = c.headers().top_via().unwrap().branch().unwrap();
        assert_eq!(branch.as_bytes(), d.invite_branch.as_bytes());
        assert!(c.headers().to_addr().unwrap().tag().is_none());
    }

    #[test]
    fn a_bye_from_the_agent_gets_a_200_with_its_headers() {
        let bye = "BYE sip:x@127.0.0.1:5000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
                   From: <sip:agent@127.0.0.1>;tag=a\r\nTo: <sip:x@127.0.0.1>;tag=b\r\n\
                   Call-ID: c1\r\nCSeq: 9 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let Incoming::Request { method, reply_ok } = classify(bye.as_bytes()) else {
            panic!("not classified as a request");
        };
        assert_eq!(method, Method::Bye);
        let Incoming::Response { status, cseq, .. } = classify(reply_ok.as_bytes()) else {
            panic!("reply does not parse");
        };
        assert_eq!((status, cseq), (200, 9));
    }

    proptest::proptest! {
        #[test]
        fn classify_and_answer_addr_never_panic(
            d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let _ = classify(&d);
            let _ = answer_addr(&d);
        }
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert_eq!(classify(b"\x00\x01hello"), Incoming::Garbage);
    }
}
