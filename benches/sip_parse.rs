//! Parse a typical ~1 kB INVITE with SDP: callbridge-sip against rsip 0.4,
//! same bytes, same run. Throughput is in messages per second.
//!
//! `cargo bench -p callbridge --bench sip_parse`
//!
//! Two groups: `sip_parse_invite_1k` measures wall time as criterion does;
//! `sip_parse_invite_1k_cpu` measures the benchmark thread's CPU time, which
//! excludes time the thread spends descheduled on a loaded, shared machine.

use bytes::Bytes;
use callbridge_sip::Message;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;
use common::cpu_timed;

const INVITE: &str = "INVITE sip:+15551234567@gw.carrier.example.net:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.17:5060;branch=z9hG4bK-524287-1---7f3c2d1e0a9b8c7d;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:+15559876543@203.0.113.17:5060;transport=udp>\r\n\
To: <sip:+15551234567@gw.carrier.example.net>\r\n\
From: \"Front Desk\" <sip:+15559876543@pbx.example.com>;tag=4a2b9c1d\r\n\
Call-ID: 9f8e7d6c5b4a39281706f5e4d3c2b1a0@203.0.113.17\r\n\
CSeq: 102 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, timer\r\n\
User-Agent: ExamplePBX/18.4.1\r\n\
P-Asserted-Identity: \"Front Desk\" <sip:+15559876543@pbx.example.com>\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 362\r\n\
\r\n\
v=0\r\n\
o=ExamplePBX 1734012345 1734012345 IN IP4 203.0.113.17\r\n\
s=ExamplePBX call\r\n\
c=IN IP4 203.0.113.17\r\n\
t=0 0\r\n\
m=audio 17384 RTP/AVP 0 8 9 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=rtcp:17385\r\n\
a=sendrecv\r\n";

fn bench(c: &mut Criterion) {
    // A heap buffer with a shared reference count, as a UDP driver has.
    let bytes = Bytes::copy_from_slice(INVITE.as_bytes());
    // The fixture must be what it claims: about 1 kB, valid for both parsers.
    assert!(
        (900..1200).contains(&bytes.len()),
        "fixture is {} bytes",
        bytes.len()
    );
    if let Err(e) = Message::parse(bytes.clone()) {
        panic!("fixture does not parse: {e}");
    }
    assert!(rsip::SipMessage::try_from(&bytes[..]).is_ok());

    let mut g = c.benchmark_group("sip_parse_invite_1k");
    // The machine is shared; longer samples average out other load.
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    g.bench_function("callbridge_sip", |b| {
        b.iter(|| Message::parse(black_box(bytes.clone())).is_ok())
    });
    g.bench_function("rsip", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(&bytes[..])).is_ok())
    });
    // Parse plus the typed reads a UA does for every request.
    g.bench_function("callbridge_sip_with_typed_reads", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(bytes.clone())).ok()?;
            let h = m.headers();
            let branch = h.top_via().ok()?.branch()?;
            let tag = h.from_addr().ok()?.tag()?;
            Some((branch, tag, h.call_id().ok()?, h.cseq().ok()?.seq))
        })
    });
    g.bench_function("rsip_with_typed_reads", |b| {
        b.iter(|| {
            use rsip::prelude::*;
            let m = rsip::Request::try_from(black_box(&bytes[..])).ok()?;
            let branch = m.via_header().ok()?.typed().ok()?.branch().cloned()?;
            let tag = m.from_header().ok()?.typed().ok()?.tag().cloned()?;
            let call_id = m.call_id_header().ok()?.value().to_owned();
            let seq = m.cseq_header().ok()?.typed().ok()?.seq;
            Some((branch, tag, call_id, seq))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sip_parse_invite_1k_cpu");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("callbridge_sip", |b| {
        b.iter_custom(|iters| cpu_timed(iters, || Message::parse(black_box(bytes.clone())).is_ok()))
    });
    g.bench_function("rsip", |b| {
        b.iter_custom(|iters| {
            cpu_timed(iters, || {
                rsip::SipMessage::try_from(black_box(&bytes[..])).is_ok()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
