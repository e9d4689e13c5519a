use super::*;
use std::net::SocketAddr;

const OFFER: &str = "v=0\r\n\
o=carrier 2890844526 2890844526 IN IP4 198.51.100.5\r\n\
s=-\r\n\
c=IN IP4 198.51.100.5\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 18 8 0 101\r\n\
a=rtpmap:18 G729/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=rtcp:49171\r\n\
a=sendrecv\r\n\
m=video 51372 RTP/AVP 31\r\n\
a=rtpmap:31 H261/90000\r\n";

fn local() -> LocalMedia {
    LocalMedia::new("192.0.2.10".parse().unwrap(), 40000)
}

#[test]
fn parses_session_and_media_attributes() {
    let s = Session::parse(OFFER.as_bytes()).unwrap();
    assert_eq!(s.origin.session_id, 2890844526);
    assert_eq!(s.media.len(), 2);
    let m = &s.media[0];
    assert_eq!(m.payload_types(), vec![18, 8, 0, 101]);
    assert_eq!(m.rtpmap(101).unwrap().encoding, "telephone-event");
    assert_eq!(m.fmtp(101), Some("0-15"));
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(
        m.rtcp(),
        Some(Rtcp {
            port: 49171,
            address: None
        })
    );
    assert_eq!(s.direction(0), Direction::SendRecv);
}

#[test]
fn text_round_trips_exactly_for_canonical_input() {
    let s = Session::parse(OFFER.as_bytes()).unwrap();
    assert_eq!(s.to_text(), OFFER);
}

#[test]
fn answer_prefers_our_first_codec_and_keeps_telephone_event() {
    let offer = Session::parse(OFFER.as_bytes()).unwrap();
    let (ans, neg) = answer(&offer, &local()).unwrap();
    assert_eq!(neg.codec, Codec::Pcmu);
    assert_eq!(neg.payload_type, 0);
    assert_eq!(neg.telephone_event, Some(101));
    assert_eq!(
        neg.remote_rtp,
        Some("198.51.100.5:49170".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        neg.remote_rtcp,
        Some("198.51.100.5:49171".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        ans.to_text(),
        "v=0\r\n\
o=- 0 0 IN IP4 192.0.2.10\r\n\
s=callbridge\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
m=video 0 RTP/AVP 31\r\n"
    );
}

#[test]
fn answer_follows_a_pcma_preference() {
    let offer = Session::parse(OFFER.as_bytes()).unwrap();
    let mut l = local();
    l.codecs = vec![Codec::Pcma, Codec::Pcmu];
    let (_, neg) = answer(&offer, &l).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::Pcma, 8));
}

#[test]
fn offer_without_g711_is_refused_with_488() {
    let offer = Session::parse(
        b"v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
    )
    .unwrap();
    let err = answer(&offer, &local()).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(err.status(), crate::StatusCode::NOT_ACCEPTABLE_HERE);
}

#[test]
fn dynamic_payload_type_for_pcmu_is_used_as_offered() {
    let offer = Session::parse(
        b"v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 pcmu/8000\r\n",
    )
    .unwrap();
    let (_, neg) = answer(&offer, &local()).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.telephone_event),
        (Codec::Pcmu, 96, None)
    );
}

#[test]
fn hold_and_resume_are_recognized_and_answered() {
    let held = OFFER.replace("a=sendrecv", "a=sendonly");
    let offer = Session::parse(held.as_bytes()).unwrap();
    assert_eq!(hold_state(&offer), HoldState::Held);
    let (ans, neg) = answer(&offer, &local()).unwrap();
    assert_eq!(neg.direction, Direction::RecvOnly);
    assert_eq!(ans.direction(0), Direction::RecvOnly);
    let inactive = Session::parse(OFFER.replace("a=sendrecv", "a=inactive").as_bytes()).unwrap();
    assert_eq!(hold_state(&inactive), HoldState::Held);
    let zero = Session::parse(
        OFFER
            .replace("c=IN IP4 198.51.100.5", "c=IN IP4 0.0.0.0")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(hold_state(&zero), HoldState::Held);
    assert_eq!(answer(&zero, &local()).unwrap().1.remote_rtp, None);
    let resumed = Session::parse(OFFER.as_bytes()).unwrap();
    assert_eq!(hold_state(&resumed), HoldState::Active);
}

#[test]
fn hold_state_reads_the_stream_the_answer_takes_not_a_disabled_one() {
    let offer = Session::parse(
        b"v=0\r\no=- 1 2 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\n\
          m=audio 0 RTP/AVP 0\r\na=inactive\r\n\
          m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n",
    )
    .unwrap();
    let (_, neg) = answer(&offer, &local()).unwrap();
    assert_eq!(neg.media_index, 1);
    assert_eq!(hold_state(&offer), HoldState::Active);
}

#[test]
fn offer_and_answer_agree_for_an_outbound_call() {
    let mut l = local();
    l.session_id = 77;
    l.session_version = 1;
    let offer = make_offer(&l, Direction::SendRecv);
    assert_eq!(
        offer.to_text(),
        "v=0\r\n\
o=- 77 1 IN IP4 192.0.2.10\r\n\
s=callbridge\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
    let mut peer = LocalMedia::new("198.51.100.9".parse().unwrap(), 30000);
    peer.codecs = vec![Codec::Pcma];
    let reparsed = Session::parse(&offer.to_bytes()).unwrap();
    let (ans, _) = answer(&reparsed, &peer).unwrap();
    let neg = process_answer(&offer, &Session::parse(&ans.to_bytes()).unwrap()).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.telephone_event),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!(
        neg.remote_rtp,
        Some("198.51.100.9:30000".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(neg.direction, Direction::SendRecv);
}

#[test]
fn answer_with_unoffered_codec_or_wrong_line_count_is_refused() {
    let offer = make_offer(&local(), Direction::SendRecv);
    let bad = Session::parse(
        b"v=0\r\no=- 1 1 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
    )
    .unwrap();
    assert_eq!(process_answer(&offer, &bad), Err(SdpError::NoCommonCodec));
    let two = Session::parse(OFFER.as_bytes()).unwrap();
    assert!(matches!(
        process_answer(&offer, &two),
        Err(SdpError::AnswerMismatch(_))
    ));
}

#[test]
fn malformed_sdp_is_a_syntax_error() {
    for bad in [
        "",
        "v=1\r\n",
        "v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nv=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nc=IN IP9 x\r\n",
        "v=0\r\nX=1\r\n",
    ] {
        assert!(
            Session::parse(bad.as_bytes()).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn out_of_order_lines_still_round_trip() {
    // Regression (cargo fuzz sdp): k= before i= at session level used to
    // come back in a different order after writing.
    let text = "v=0\no=- 1 2 IN IP6 2001:db8::1\ns= \nk=IN IP6 2001:;0 0\na=inact\nk=IN \nt=50 0\ni=inact\n\
m=audio 4000 RTP/AVP 0\nk=prompt\ni=title\n";
    let s = Session::parse(text.as_bytes()).unwrap();
    let again = Session::parse(s.to_text().as_bytes()).unwrap();
    assert_eq!(again, s);
}

#[test]
fn fuzz_crash_3b1fe7d5_parses_back_equal() {
    // The exact input from cargo fuzz (base64 in the commit message).
    let text = b"v=0\no=- 1 2 IN IP6 2001:db8::1\ns= \nk=IN IP6 2001:;0 0\na=inact\nk=IN \nt=50 0\ni=inact\nk=IN Vt\nk=I\x11S::96P CMU/8000/1\n";
    let s = Session::parse(text).unwrap();
    assert_eq!(Session::parse(s.to_text().as_bytes()).unwrap(), s);
}

#[test]
fn answering_again_grows_the_version_only_when_the_answer_changes() {
    let offer = Session::parse(OFFER.as_bytes()).unwrap();
    let mut l = local();
    let (first, _) = answer(&offer, &l).unwrap();
    let first = first.to_bytes();
    let (same, _) = answer_again(&offer, &mut l, Some(&first)).unwrap();
    assert_eq!(
        same.to_bytes(),
        first,
        "the same answer, the same o= version"
    );
    assert_eq!(l.session_version, 0);
    let hold = OFFER.replace("a=sendrecv", "a=sendonly");
    let hold = Session::parse(hold.as_bytes()).unwrap();
    let (changed, _) = answer_again(&hold, &mut l, Some(&first)).unwrap();
    assert_eq!(l.session_version, 1);
    assert_eq!(changed.origin.session_version, 1);
    assert!(changed.to_bytes() != first);
}
