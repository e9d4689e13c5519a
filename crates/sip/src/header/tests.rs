use super::*;

fn headers() -> Headers {
    let mut h = Headers::new();
    h.push(
        HeaderName::Via,
        Bytes::from_static(b"SIP/2.0/UDP a;branch=z9hG4bK1"),
    );
    h.push(HeaderName::from_bytes(b"X-A"), Bytes::from_static(b"1"));
    h.push(
        HeaderName::Via,
        Bytes::from_static(b"SIP/2.0/UDP b;branch=z9hG4bK2"),
    );
    h.push(HeaderName::from_bytes(b"x-a"), Bytes::from_static(b"2"));
    h
}

#[test]
fn set_keeps_the_first_position_and_drops_the_rest() {
    let mut h = headers();
    h.set(HeaderName::from_bytes(b"X-A"), Bytes::from_static(b"3"));
    let names: Vec<_> = h.iter().map(|x| x.name().as_str().to_owned()).collect();
    assert_eq!(names, ["Via", "X-A", "Via"]);
    assert_eq!(
        h.get(&HeaderName::from_bytes(b"x-a")),
        Some(&Bytes::from_static(b"3"))
    );
}

#[test]
fn push_front_goes_before_existing_lines_of_the_name() {
    let mut h = headers();
    h.push_front(
        HeaderName::Via,
        Bytes::from_static(b"SIP/2.0/UDP top;branch=z9hG4bK0"),
    );
    assert_eq!(
        h.top_via().unwrap().branch(),
        Some(crate::Branch::from("z9hG4bK0"))
    );
    assert_eq!(h.vias().count(), 3);
    assert_eq!(h.remove(&HeaderName::Via), 3);
    assert_eq!(h.len(), 2);
}

#[test]
fn values_split_list_headers_only() {
    let mut h = Headers::new();
    h.push(HeaderName::Allow, Bytes::from_static(b"INVITE, BYE"));
    h.push(
        HeaderName::WwwAuthenticate,
        Bytes::from_static(b"Digest realm=\"a\", nonce=\"b\""),
    );
    assert_eq!(h.values(&HeaderName::Allow).count(), 2);
    assert_eq!(h.values(&HeaderName::WwwAuthenticate).count(), 1);
}

#[test]
fn check_reports_missing_mandatory_headers() {
    assert_eq!(Headers::new().validate(), Err(Error::MissingHeader("Via")));
    let mut h = Headers::new();
    h.push(
        HeaderName::Via,
        Bytes::from_static(b"SIP/2.0/UDP a;branch=z9hG4bK1"),
    );
    h.push(HeaderName::From, Bytes::from_static(b"<sip:a@b>;tag=1"));
    h.push(HeaderName::To, Bytes::from_static(b"<sip:a@b>"));
    h.push(HeaderName::CallId, Bytes::from_static(b"c"));
    assert_eq!(h.validate(), Err(Error::MissingHeader("CSeq")));
    h.push(HeaderName::CSeq, Bytes::from_static(b"1 BYE"));
    assert_eq!(h.validate(), Ok(()));
}
