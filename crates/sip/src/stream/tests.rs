use super::*;

const OPTIONS: &[u8] =
    b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";

fn framer() -> StreamFramer {
    StreamFramer::new(Limits::default())
}

/// Every frame the framer yields for `chunks` pushed one by one, and the
/// error if the stream broke.
fn frames(f: &mut StreamFramer, chunks: &[&[u8]]) -> (Vec<Frame>, Option<StreamError>) {
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = f.push(c) {
            return (out, Some(e));
        }
        loop {
            match f.poll() {
                Ok(Some(fr)) => out.push(fr),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn msg(b: &[u8]) -> Frame {
    Frame::Message(Bytes::copy_from_slice(b))
}

#[test]
fn two_pipelined_messages_split_by_content_length() {
    let invite = b"INVITE sip:a@b SIP/2.0\r\nl: 5\r\nVia: SIP/2.0/TCP h\r\n\r\nv=0\r\n";
    let mut all = invite.to_vec();
    all.extend_from_slice(OPTIONS);
    let (got, err) = frames(&mut framer(), &[&all]);
    assert_eq!(err, None);
    assert_eq!(got, vec![msg(invite), msg(OPTIONS)]);
}

#[test]
fn double_crlf_is_a_ping_and_single_crlf_is_ignored() {
    let mut f = framer();
    let (got, err) = frames(&mut f, &[b"\r\n\r\n", b"\r\n", OPTIONS, b"\r\n\r\n\r\n"]);
    assert_eq!(err, None);
    assert_eq!(got, vec![Frame::Ping, msg(OPTIONS), Frame::Ping]);
    // The trailing single CRLF waits (it could begin another ping).
    assert_eq!(f.buffered(), 2);
}

#[test]
fn a_message_waits_for_its_whole_body() {
    let mut f = framer();
    let (got, _) = frames(
        &mut f,
        &[b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:  4 \r\n\r\nab"],
    );
    assert!(got.is_empty());
    let (got, _) = frames(&mut f, &[b"cdEXTRA"]);
    assert_eq!(
        got,
        vec![msg(
            b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:  4 \r\n\r\nabcd"
        )]
    );
    assert_eq!(f.buffered(), 5);
}

#[test]
fn missing_content_length_breaks_the_stream_for_good() {
    let mut f = framer();
    let (_, err) = frames(&mut f, &[b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"]);
    assert_eq!(err, Some(StreamError::MissingContentLength));
    assert_eq!(f.push(OPTIONS), Err(StreamError::MissingContentLength));
    assert_eq!(f.poll(), Err(StreamError::MissingContentLength));
    assert_eq!(f.buffered(), 0);
}

#[test]
fn malformed_and_conflicting_content_lengths_are_errors() {
    let (_, err) = frames(
        &mut framer(),
        &[b"X sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n"],
    );
    assert_eq!(err, Some(StreamError::BadContentLength));
    let (_, err) = frames(
        &mut framer(),
        &[b"X sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n"],
    );
    assert_eq!(err, Some(StreamError::ConflictingContentLength));
    let (got, err) = frames(
        &mut framer(),
        &[b"X sip:a SIP/2.0\r\nl: 0\r\nContent-Length: 00\r\n\r\n"],
    );
    assert_eq!((got.len(), err), (1, None));
}

#[test]
fn a_huge_content_length_is_refused_before_the_body_arrives() {
    let (_, err) = frames(
        &mut framer(),
        &[b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n"],
    );
    assert!(matches!(
        err,
        Some(StreamError::MessageTooLarge { limit: 65_535, .. })
    ));
    let (_, err) = frames(
        &mut framer(),
        &[b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 65500\r\n\r\n"],
    );
    assert!(matches!(err, Some(StreamError::MessageTooLarge { len, .. }) if len > 65_535));
}

#[test]
fn an_endless_header_line_is_cut_at_the_line_limit() {
    let mut f = framer();
    let (_, err) = frames(&mut f, &[b"INVITE sip:a@b SIP/2.0\r\nSubject: "]);
    assert_eq!(err, None);
    let chunk = vec![b'a'; 1024];
    let mut err = None;
    for _ in 0..16 {
        if let Err(e) = f.push(&chunk).and_then(|()| f.poll().map(|_| ())) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(StreamError::LineTooLong { limit: 8_192 }));
}

#[test]
fn an_endless_header_section_is_cut_at_the_message_limit() {
    let mut f = framer();
    f.push(b"INVITE sip:a@b SIP/2.0\r\n").unwrap();
    let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut err = None;
    for _ in 0..2_000 {
        if let Err(e) = f.push(line).and_then(|()| f.poll().map(|_| ())) {
            err = Some(e);
            break;
        }
    }
    assert!(matches!(
        err,
        Some(StreamError::MessageTooLarge { limit: 65_535, .. })
    ));
    assert!(f.buffered() == 0);
}

#[test]
fn pushing_without_draining_is_bounded() {
    let mut f = framer();
    let big = vec![b'\r'; 70_000];
    f.push(&big).unwrap();
    assert_eq!(
        f.push(&big),
        Err(StreamError::BufferFull { limit: 131_070 })
    );
}

#[test]
fn the_limits_are_those_of_the_datagram_parser() {
    let limits = Limits {
        max_message_len: 100,
        ..Limits::default()
    };
    let mut f = StreamFramer::new(limits);
    let (got, err) = frames(
        &mut f,
        &[b"INVITE sip:a@b SIP/2.0\r\nl: 60\r\n\r\n", &[b'x'; 60]],
    );
    assert_eq!((got.len(), err), (1, None), "33 + 60 bytes fit in 100");
    let (_, err) = frames(
        &mut StreamFramer::new(limits),
        &[b"INVITE sip:a@b SIP/2.0\r\nl: 70\r\n\r\n"],
    );
    assert_eq!(
        err,
        Some(StreamError::MessageTooLarge {
            len: 103,
            limit: 100
        })
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// One item on the wire: a message with a body of `n` bytes (the
    /// Content-Length spelled in one of its forms), a ping or a pong.
    #[derive(Debug, Clone)]
    enum Item {
        Message { body: Vec<u8>, compact: bool },
        Ping,
        Pong,
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            4 => (proptest::collection::vec(any::<u8>(), 0..200), any::<bool>())
                .prop_map(|(body, compact)| Item::Message { body, compact }),
            1 => Just(Item::Ping),
            1 => Just(Item::Pong),
        ]
    }

    fn wire(items: &[Item]) -> (Vec<u8>, Vec<Frame>) {
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        let mut after_pong = false;
        for it in items {
            match it {
                Item::Message { body, compact } => {
                    let name = if *compact { "l" } else { "content-LENGTH" };
                    let mut m = format!(
                        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n{name} : {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    m.extend_from_slice(body);
                    bytes.extend_from_slice(&m);
                    want.push(Frame::Message(Bytes::from(m)));
                    after_pong = false;
                }
                // A ping right after a pong would read as pong+ping
                // differently; keep them apart with a message, as a real
                // peer's would be.
                Item::Ping if !after_pong => {
                    bytes.extend_from_slice(b"\r\n\r\n");
                    want.push(Frame::Ping);
                }
                Item::Pong if !after_pong => {
                    bytes.extend_from_slice(b"\r\n");
                    after_pong = true;
                }
                _ => {}
            }
        }
        (bytes, want)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// However the stream is cut into reads, the same frames come out.
        #[test]
        fn arbitrary_split_points_give_the_same_frames(
            items in proptest::collection::vec(item(), 0..12),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
        ) {
            let (bytes, want) = wire(&items);
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            let (got, err) = frames(&mut framer(), &chunks);
            prop_assert_eq!(err, None);
            prop_assert_eq!(got, want);
        }

        /// Arbitrary bytes never panic, and never yield a frame larger
        /// than the limit or hold more than the capacity.
        #[test]
        fn arbitrary_bytes_stay_within_the_limits(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
        ) {
            let limits = Limits { max_message_len: 256, max_line_len: 64, ..Limits::default() };
            let mut f = StreamFramer::new(limits);
            for c in &chunks {
                if f.push(c).is_err() {
                    break;
                }
                while let Ok(Some(fr)) = f.poll() {
                    if let Frame::Message(m) = fr {
                        prop_assert!(m.len() <= 256);
                    }
                }
                prop_assert!(f.buffered() <= f.capacity());
            }
        }
    }
}
