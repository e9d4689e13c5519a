//! The core over TCP and TLS (RFC 3261 section 18), on the fake clock:
//! responses go back to the peer (the connection) the request came from,
//! Via and Contact name the transport, and nothing is retransmitted over a
//! reliable transport (section 17).

use super::tests::SDP;
use super::tests_raw::{Raw, request};
use super::*;
use crate::Method;
use crate::uri::Uri;

/// The source port of the peer's connection: not the port in its Via.
fn conn() -> Peer {
    Peer::new(Transport::Tcp, "127.0.0.1:40001".parse().unwrap())
}

fn tcp_request(method: &str, branch: &str, to_tag: Option<&str>, body: &str) -> String {
    request(method, branch, "c-tcp", to_tag, 1, "", body).replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK",
        "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK",
    )
}

fn sent(r: &mut Raw) -> Vec<(Transmit, Message)> {
    std::iter::from_fn(|| r.ua.poll_transmit())
        .map(|t| {
            let m = Message::parse(t.data.clone()).unwrap();
            (t, m)
        })
        .collect()
}

fn code(m: &Message) -> u16 {
    super::tests_raw::status(m)
}

fn uri(s: &str) -> Uri {
    Uri::parse(&Bytes::from(s.to_string())).unwrap()
}

fn originate(to: &str) -> Originate {
    Originate {
        to: uri(to),
        from: NameAddr::new(uri("sip:alice@127.0.0.1")),
        target: "127.0.0.1:5070".parse().unwrap(),
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        extra_headers: Vec::new(),
    }
}

fn tcp_config() -> Config {
    let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
    cfg.tcp_addr = Some("127.0.0.1:5072".parse().unwrap());
    cfg.tls_addr = Some("127.0.0.1:5073".parse().unwrap());
    cfg
}

#[test]
fn a_request_over_tcp_is_answered_on_its_connection_and_its_final_response_is_not_retransmitted() {
    let mut r = Raw::with(tcp_config());
    let invite = tcp_request("INVITE", "tcp1", None, SDP);
    r.ua.handle_message(r.now, conn(), Bytes::from(invite));
    let Some(Event::IncomingCall(inc)) = r.ua.poll_event() else {
        panic!("no call")
    };
    assert_eq!(inc.transport, Transport::Tcp);
    r.ua.reject(r.now, inc.call, StatusCode::BUSY_HERE).unwrap();
    let out = sent(&mut r);
    assert_eq!(
        out.iter().map(|(_, m)| code(m)).collect::<Vec<_>>(),
        [100, 486]
    );
    for (t, _) in &out {
        // Section 18.2.2: the connection's source, not the Via's port.
        assert_eq!(t.peer(), conn());
    }
    // No Timer G: nothing until Timer H gives up at 64*T1.
    assert!(r.advance(Duration::from_secs(31)).is_empty());
    assert_eq!(r.ua.transaction_count(), 1);
    // The ACK ends the transaction at once (Timer I is zero).
    let ack = tcp_request("ACK", "tcp1", Some("x"), "");
    r.ua.handle_message(r.now, conn(), Bytes::from(ack));
    r.advance(Duration::from_secs(31));
    assert_eq!(r.ua.transaction_count(), 0);
}

#[test]
fn an_answered_tcp_call_puts_a_tcp_contact_in_its_200() {
    let mut r = Raw::with(tcp_config());
    r.ua.handle_message(
        r.now,
        conn(),
        Bytes::from(tcp_request("INVITE", "tcp2", None, SDP)),
    );
    let Some(Event::IncomingCall(inc)) = r.ua.poll_event() else {
        panic!("no call")
    };
    r.ua.answer(r.now, inc.call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    let out = sent(&mut r);
    let (t, ok) = out.last().unwrap();
    assert_eq!((code(ok), t.peer()), (200, conn()));
    let contact = ok.headers().contacts().unwrap();
    assert_eq!(
        contact[0].uri().to_string(),
        "sip:127.0.0.1:5072;transport=tcp"
    );
}

#[test]
fn an_invite_to_a_tcp_uri_goes_over_tcp_with_tcp_via_and_contact_and_only_timer_b() {
    let mut r = Raw::with(tcp_config());
    let call =
        r.ua.originate(r.now, originate("sip:bob@127.0.0.1:5070;transport=tcp"))
            .unwrap();
    let out = sent(&mut r);
    assert_eq!(out.len(), 1);
    let (t, Message::Request(invite)) = &out[0] else {
        panic!("not a request")
    };
    assert_eq!(t.transport, Transport::Tcp);
    let via = invite.headers().top_via().unwrap();
    assert_eq!(&via.transport()[..], b"TCP");
    assert_eq!(via.port(), Some(5072));
    let contact = invite.headers().contacts().unwrap();
    assert_eq!(
        contact[0].uri().to_string(),
        "sip:127.0.0.1:5072;transport=tcp"
    );
    // No Timer A: not a single retransmission, then Timer B at 64*T1.
    assert!(r.advance(Duration::from_millis(31_999)).is_empty());
    assert!(r.events.is_empty());
    r.advance(Duration::from_secs(32));
    assert!(matches!(
        r.events.as_slice(),
        [Event::Failed { call: c, outcome: Outcome::Unreachable }] if *c == call
    ));
}

#[test]
fn the_same_invite_over_udp_is_retransmitted_on_timer_a() {
    let mut r = Raw::with(tcp_config());
    r.ua.originate(r.now, originate("sip:bob@127.0.0.1:5070"))
        .unwrap();
    let out = sent(&mut r);
    assert_eq!(out[0].0.transport, Transport::Udp);
    // T1 doubling until Timer B: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(r.advance(Duration::from_millis(31_999)).len(), 6);
}

#[test]
fn a_sips_uri_goes_over_tls_with_a_sips_contact() {
    let mut r = Raw::with(tcp_config());
    r.ua.originate(r.now, originate("sips:bob@127.0.0.1:5071"))
        .unwrap();
    let out = sent(&mut r);
    let (t, Message::Request(invite)) = &out[0] else {
        panic!("not a request")
    };
    assert_eq!(t.transport, Transport::Tls);
    let via = invite.headers().top_via().unwrap();
    assert_eq!(
        (&via.transport()[..], via.port()),
        (&b"TLS"[..], Some(5073))
    );
    let contact = invite.headers().contacts().unwrap();
    assert_eq!(contact[0].uri().to_string(), "sips:127.0.0.1:5073");
}

#[test]
fn a_transport_we_lack_is_refused() {
    let mut r = Raw::with(tcp_config());
    assert_eq!(
        r.ua.originate(r.now, originate("sip:bob@127.0.0.1;transport=sctp"))
            .err(),
        Some(UaError::UnsupportedTransport)
    );
}

#[test]
fn an_in_dialog_bye_goes_back_over_the_calls_connection() {
    let mut r = Raw::with(tcp_config());
    r.ua.handle_message(
        r.now,
        conn(),
        Bytes::from(tcp_request("INVITE", "tcp3", None, SDP)),
    );
    let Some(Event::IncomingCall(inc)) = r.ua.poll_event() else {
        panic!("no call")
    };
    r.ua.answer(r.now, inc.call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    let tag = inc.dialog.local_tag.to_string();
    r.ua.handle_message(
        r.now,
        conn(),
        Bytes::from(tcp_request("ACK", "tcp3a", Some(&tag), "")),
    );
    sent(&mut r);
    r.ua.hangup(r.now, inc.call).unwrap();
    let out = sent(&mut r);
    let (t, Message::Request(bye)) = &out[0] else {
        panic!("not a request")
    };
    assert_eq!((bye.method(), t.peer()), (&Method::Bye, conn()));
    assert_eq!(&bye.headers().top_via().unwrap().transport()[..], b"TCP");
}

#[test]
fn a_request_over_1300_bytes_moves_from_udp_to_tcp_and_its_cancel_follows() {
    let mut cfg = tcp_config();
    cfg.udp_max_request = Some(1300);
    let mut r = Raw::with(cfg);
    let mut big = originate("sip:bob@127.0.0.1:5070");
    big.offer = Bytes::from(format!(
        "{SDP}{}",
        "a=x-pad:0123456789abcdef\r\n".repeat(50)
    ));
    let call = r.ua.originate(r.now, big).unwrap();
    let out = sent(&mut r);
    let (t, Message::Request(invite)) = &out[0] else {
        panic!("not a request")
    };
    assert!(t.data.len() > 1300);
    assert_eq!(
        t.peer(),
        Peer::new(Transport::Tcp, "127.0.0.1:5070".parse().unwrap())
    );
    assert_eq!(&invite.headers().top_via().unwrap().transport()[..], b"TCP");
    // A provisional, then our hang-up: the CANCEL (small) follows the
    // INVITE onto TCP, with the same Via.
    let ringing = format!(
        "SIP/2.0 180 Ringing\r\nVia: {}\r\nFrom: {}\r\nTo: <sip:bob@127.0.0.1:5070>;tag=b\r\n\
         Call-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(invite.headers().get(&crate::HeaderName::Via).unwrap()),
        String::from_utf8_lossy(invite.headers().get(&crate::HeaderName::From).unwrap()),
        invite.headers().call_id().unwrap(),
    );
    r.ua.handle_message(r.now, t.peer(), Bytes::from(ringing));
    r.ua.hangup(r.now, call).unwrap();
    let out = sent(&mut r);
    let (t, Message::Request(cancel)) = &out[0] else {
        panic!("not a request")
    };
    assert_eq!(cancel.method(), &Method::Cancel);
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(&cancel.headers().top_via().unwrap().transport()[..], b"TCP");
}

#[test]
fn without_the_switch_a_large_request_stays_on_udp() {
    let mut r = Raw::with(tcp_config());
    let mut big = originate("sip:bob@127.0.0.1:5070");
    big.offer = Bytes::from(format!(
        "{SDP}{}",
        "a=x-pad:0123456789abcdef\r\n".repeat(50)
    ));
    r.ua.originate(r.now, big).unwrap();
    assert_eq!(sent(&mut r)[0].0.transport, Transport::Udp);
}

/// The Contact of our 180 and 200 to an INVITE over TLS whose
/// Request-URI starts with `scheme`.
fn tls_answer_contacts(scheme: &str) -> Vec<String> {
    let mut r = Raw::with(tcp_config());
    let tls = Peer::new(Transport::Tls, "127.0.0.1:40002".parse().unwrap());
    let invite = request("INVITE", "tls1", "c-tls", None, 1, "", SDP)
        .replace(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK",
            "Via: SIP/2.0/TLS 127.0.0.1:5070;branch=z9hG4bK",
        )
        .replacen("INVITE sip:", &format!("INVITE {scheme}:"), 1);
    r.ua.handle_message(r.now, tls, Bytes::from(invite));
    let Some(Event::IncomingCall(inc)) = r.ua.poll_event() else {
        panic!("no call")
    };
    r.ua.ring(r.now, inc.call).unwrap();
    r.ua.answer(r.now, inc.call, Bytes::from_static(SDP.as_bytes()))
        .unwrap();
    sent(&mut r)
        .iter()
        .filter(|(t, m)| t.peer() == tls && matches!(code(m), 180 | 200))
        .map(|(_, m)| m.headers().contacts().unwrap()[0].uri().to_string())
        .collect()
}

#[test]
fn a_tls_call_to_a_sip_uri_gets_a_sip_contact_with_transport_tls() {
    // RFC 5630 section 3.1.3: the Contact's scheme follows the
    // Request-URI's; a `sips:` one would oblige the caller to `sips:`
    // (baresip 1.0 then cannot send its ACK).
    assert_eq!(
        tls_answer_contacts("sip"),
        ["sip:127.0.0.1:5073;transport=tls"; 2]
    );
    assert_eq!(tls_answer_contacts("sips"), ["sips:127.0.0.1:5073"; 2]);
}
