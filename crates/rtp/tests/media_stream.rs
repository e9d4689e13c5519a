//! The media stream on an engine against a peer socket on 127.0.0.1, on a
//! simulated clock that runs ahead only while the test takes the events
//! ([`SimClock::running`]): the test and the engine move in lockstep, one
//! tick per audio event taken, so the 20 ms ticks run in simulated time.
//! The engine's real-time pacing is tested in `media_engine.rs`; the same
//! behaviours without sockets in the media core's unit tests.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_rtp::clock::SimClock;
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::jitter::Playout;
use callbridge_rtp::latch::{LatchPolicy, LatchRules, RejectReason};
use callbridge_rtp::stream::{MediaConfig, MediaEvent, MediaStats, MediaStream};
use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};
use tokio::net::UdpSocket;

use support::{peer, pool};

fn cfg(remote: Option<SocketAddr>) -> MediaConfig {
    let mut c = MediaConfig::new(Law::MuLaw, remote, Ssrc(0xabc), SeqNo(65534), 1000);
    c.inactivity = Duration::from_secs(2);
    c
}

/// An engine on a simulated clock in lockstep with the test.
fn engine() -> MediaEngine {
    MediaEngine::new(
        EngineConfig::default(),
        Arc::new(SimClock::running(Instant::now())),
    )
    .unwrap()
}

/// Takes the next tick's audio event, then the packet that tick sent.
async fn tick_and_recv(s: &mut MediaStream, peer: &UdpSocket) -> (MediaEvent, RtpPacket) {
    let ev = next_matching(s, |e| matches!(e, MediaEvent::Audio { .. })).await;
    (ev, recv_rtp(peer).await)
}

async fn recv_rtp(s: &UdpSocket) -> RtpPacket {
    let mut buf = vec![0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    RtpPacket::parse(Bytes::from(buf)).unwrap()
}

fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let h = RtpHeader {
        marker,
        payload_type: PayloadType::new(pt).unwrap(),
        seq: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(77),
    };
    let mut out = vec![0u8; RtpHeader::encoded_len(payload.len())];
    h.write_to(payload, &mut out).unwrap();
    out
}

async fn next_matching(s: &mut MediaStream, f: impl Fn(&MediaEvent) -> bool) -> MediaEvent {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), s.recv())
            .await
            .unwrap()
            .unwrap();
        if f(&ev) {
            return ev;
        }
    }
}

/// The counters once `ok` holds for them, read at each event taken (each
/// read asks the engine for the next tick's counters); at most 100 ticks.
async fn stats_when(s: &mut MediaStream, ok: impl Fn(&MediaStats) -> bool) -> MediaStats {
    for _ in 0..100 {
        let st = s.stats();
        if ok(&st) {
            return st;
        }
        tokio::time::timeout(Duration::from_secs(60), s.recv())
            .await
            .unwrap()
            .unwrap();
    }
    panic!("counters not reached in 100 ticks: {:?}", s.stats());
}

#[tokio::test]
async fn paced_sender_sends_silence_then_marked_talkspurt_with_continuous_time() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(42000, 20, true);
    let engine = engine();
    let mut stream = MediaStream::open(&engine, &pool, cfg(Some(peer_addr))).unwrap();
    let mut got = Vec::new();
    let mut events = Vec::new();
    for _ in 0..3 {
        let (ev, p) = tick_and_recv(&mut stream, &peer).await;
        events.push(ev);
        got.push(p);
    }
    stream.play([1000; 160]).await.unwrap();
    stream.play([1000; 160]).await.unwrap();
    for _ in 0..4 {
        let (ev, p) = tick_and_recv(&mut stream, &peer).await;
        events.push(ev);
        got.push(p);
    }
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.ssrc(), Ssrc(0xabc));
        assert_eq!(p.seq(), SeqNo(65534u16.wrapping_add(i as u16)));
        assert_eq!(p.timestamp(), 1000 + 160 * i as u32);
        assert_eq!(p.payload().len(), 160);
    }
    let kinds: Vec<(bool, u8)> = got.iter().map(|p| (p.marker(), p.payload()[0])).collect();
    // Silence (0xff) until the frames are queued, then one marked voice
    // packet, one unmarked, then silence again.
    let first_voice = kinds.iter().position(|k| k.1 != 0xff).unwrap();
    assert!(first_voice >= 3);
    assert_eq!(kinds[first_voice], (true, 0xce));
    assert_eq!(kinds[first_voice + 1], (false, 0xce));
    assert!(kinds[first_voice + 2..].iter().all(|k| *k == (false, 0xff)));
    // The tick events carry what was sent, for the recorder.
    let mut sent_voice = 0;
    for ev in events {
        if let MediaEvent::Audio { sent, .. } = ev
            && sent == [1000; 160]
        {
            sent_voice += 1;
        }
    }
    assert_eq!(sent_voice, 2);
    stream.close().await;
}

#[tokio::test]
async fn latches_to_sender_decodes_audio_and_reports_dtmf_once() {
    let (peer, _) = peer().await;
    let pool = pool(42100, 20, true);
    let engine = engine();
    // No SDP address: nothing is sent until the peer's first packet.
    let mut stream = MediaStream::open(&engine, &pool, cfg(None)).unwrap();
    let to = stream.local_addr();
    for i in 0..6u16 {
        peer.send_to(
            &rtp(0, 100 + i, 160 * u32::from(i), i == 0, &[0x80; 160]),
            to,
        )
        .await
        .unwrap();
    }
    let ev = next_matching(&mut stream, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(ev, MediaEvent::Latched(peer.local_addr().unwrap()));
    let ev = next_matching(&mut stream, |e| {
        matches!(
            e,
            MediaEvent::Audio {
                playout: Playout::Audio { .. },
                ..
            }
        )
    })
    .await;
    let MediaEvent::Audio { pcm, .. } = ev else {
        unreachable!()
    };
    assert!(pcm.iter().all(|&v| v == 32124));
    // Symmetric RTP: our packets now go to the peer's source address.
    assert_eq!(recv_rtp(&peer).await.ssrc(), Ssrc(0xabc));
    // Digit 7: two updates and three end packets.
    for (k, (end, dur)) in [
        (false, 160u16),
        (false, 320),
        (true, 480),
        (true, 480),
        (true, 480),
    ]
    .iter()
    .enumerate()
    {
        let d = dur.to_be_bytes();
        let payload = [7, if *end { 0x8a } else { 0x0a }, d[0], d[1]];
        peer.send_to(&rtp(101, 200 + k as u16, 5000, k == 0, &payload), to)
            .await
            .unwrap();
    }
    let ev = next_matching(&mut stream, |e| matches!(e, MediaEvent::Dtmf(_))).await;
    let MediaEvent::Dtmf(d) = ev else {
        unreachable!()
    };
    assert_eq!((d.key, d.duration), (Some('7'), 480));
    // No second report for the repeated end packets.
    let more = tokio::time::timeout(
        Duration::from_secs(1),
        next_matching(&mut stream, |e| matches!(e, MediaEvent::Dtmf(_))),
    )
    .await;
    assert!(more.is_err(), "digit reported twice");
    stream.close().await;
}

#[tokio::test]
async fn source_outside_allowlist_is_ignored() {
    let (peer, _) = peer().await;
    let pool = pool(42200, 20, true);
    let engine = engine();
    let mut c = cfg(None);
    c.latch = LatchRules::new(
        LatchPolicy::AllowedPeers,
        None,
        vec!["10.0.0.0/8".parse().unwrap()],
    );
    let mut stream = MediaStream::open(&engine, &pool, c).unwrap();
    for i in 0..5u16 {
        peer.send_to(
            &rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]),
            stream.local_addr(),
        )
        .await
        .unwrap();
    }
    // Audio events keep coming (buffering silence), but never a latch;
    // the first rejection is reported once.
    let mut reported = 0;
    for _ in 0..21 {
        let ev = stream.recv().await.unwrap();
        if let MediaEvent::Rejected { reason, .. } = ev {
            assert_eq!(reason, RejectReason::OutsideAllowedPeers);
            reported += 1;
            continue;
        }
        assert!(
            matches!(
                ev,
                MediaEvent::Audio {
                    playout: Playout::Buffering,
                    ..
                }
            ),
            "{ev:?}"
        );
    }
    assert_eq!(reported, 1, "the rejection is reported once");
    let s = stats_when(&mut stream, |s| {
        s.rejected.get(RejectReason::OutsideAllowedPeers) >= 5
    })
    .await;
    assert_eq!(s.rejected.get(RejectReason::OutsideAllowedPeers), 5);
    assert_eq!(s.packets_in, 0);
    stream.close().await;
}

#[tokio::test]
async fn inactivity_is_reported_once_after_the_configured_time() {
    let pool = pool(42300, 20, true);
    let engine = engine();
    // Read before the open: the engine may take a tick between the open
    // and a read after it.
    let start = engine.clock().now();
    let mut stream = MediaStream::open(&engine, &pool, cfg(None)).unwrap();
    let ev = next_matching(&mut stream, |e| matches!(e, MediaEvent::Inactive { .. })).await;
    let MediaEvent::Inactive { silent_for } = ev else {
        unreachable!()
    };
    assert!(silent_for >= Duration::from_secs(2) && silent_for < Duration::from_millis(2100));
    assert!(engine.clock().now() - start >= Duration::from_secs(2));
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        next_matching(&mut stream, |e| matches!(e, MediaEvent::Inactive { .. })),
    )
    .await;
    assert!(again.is_err(), "inactivity reported twice");
    stream.close().await;
}

#[tokio::test]
async fn rtcp_bye_from_peer_is_reported_and_ours_is_sent_on_close() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(42400, 20, true);
    let engine = engine();
    let mut stream = MediaStream::open(&engine, &pool, cfg(Some(peer_addr))).unwrap();
    let rtcp_addr = SocketAddr::new(stream.local_addr().ip(), stream.local_addr().port() + 1);
    peer.send_to(&[0x81, 203, 0, 1, 0, 0, 0, 77], rtcp_addr)
        .await
        .unwrap();
    next_matching(&mut stream, |e| *e == MediaEvent::RtcpBye).await;
    // Our RTCP goes to the peer's port + 1.
    let rtcp_peer = UdpSocket::bind(SocketAddr::new(peer_addr.ip(), peer_addr.port() + 1)).await;
    stream.close().await;
    if let Ok(rtcp_peer) = rtcp_peer {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(1), rtcp_peer.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let c = callbridge_rtp::rtcp::RtcpCompound::parse(&buf[..n]).unwrap();
        assert_eq!(c.bye_ssrcs().collect::<Vec<_>>(), vec![Ssrc(0xabc)]);
    }
}

#[tokio::test]
async fn clear_playback_drops_queued_frames() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(42500, 20, true);
    let engine = engine();
    let mut stream = MediaStream::open(&engine, &pool, cfg(Some(peer_addr))).unwrap();
    for _ in 0..20 {
        stream.play([1000; 160]).await.unwrap();
    }
    stream.clear_playback();
    // After at most a couple of ticks, only silence is sent.
    let mut voice = 0;
    for _ in 0..20 {
        if tick_and_recv(&mut stream, &peer).await.1.payload()[0] != 0xff {
            voice += 1;
        }
    }
    assert!(voice <= 2, "{voice} voice packets after clear");
    stream.close().await;
}

#[tokio::test]
async fn send_dtmf_emits_rfc4733_packets_in_place_of_audio() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(42600, 20, true);
    let engine = engine();
    let mut stream = MediaStream::open(&engine, &pool, cfg(Some(peer_addr))).unwrap();
    tick_and_recv(&mut stream, &peer).await;
    stream.send_dtmf('#', Duration::from_millis(60));
    let mut events = Vec::new();
    let mut audio_after = 0;
    while audio_after < 2 {
        let (_, p) = tick_and_recv(&mut stream, &peer).await;
        if p.payload_type().get() == 101 {
            events.push(p);
        } else if !events.is_empty() {
            audio_after += 1;
        }
    }
    assert_eq!(events.len(), 2 + 3, "two updates and three end packets");
    assert!(events[0].marker() && events[1..].iter().all(|p| !p.marker()));
    let ts = events[0].timestamp();
    assert!(events.iter().all(|p| p.timestamp() == ts));
    let parsed: Vec<_> = events
        .iter()
        .map(|p| callbridge_rtp::dtmf::TelephoneEvent::parse(p.payload()).unwrap())
        .collect();
    assert!(parsed.iter().all(|e| e.event == 11));
    assert_eq!(parsed.iter().filter(|e| e.end).count(), 3);
    assert_eq!(parsed.last().unwrap().duration, 480);
    // Sequence numbers stay continuous across the event.
    for w in events.windows(2) {
        assert_eq!(w[1].seq(), w[0].seq().next());
    }
    stream.close().await;
}

#[tokio::test]
async fn stats_report_the_jitter_buffer_depth_as_audio_time() {
    let (peer, _) = peer().await;
    let pool = pool(43400, 20, true);
    let engine = engine();
    let mut stream = MediaStream::open(&engine, &pool, cfg(None)).unwrap();
    assert_eq!(stream.stats().jitter_depth, Duration::ZERO);
    for i in 0..6u16 {
        peer.send_to(
            &rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]),
            stream.local_addr(),
        )
        .await
        .unwrap();
    }
    next_matching(&mut stream, |e| {
        matches!(
            e,
            MediaEvent::Audio {
                playout: Playout::Audio { .. },
                ..
            }
        )
    })
    .await;
    let d = stats_when(&mut stream, |s| s.jitter.received >= 6)
        .await
        .jitter_depth;
    assert!(
        d >= Duration::from_millis(20)
            && d <= Duration::from_millis(120)
            && d.as_millis().is_multiple_of(20),
        "six 20 ms packets, one or two played: {d:?}"
    );
    // Everything played: nothing left buffered.
    for _ in 0..20 {
        stream.recv().await.unwrap();
    }
    let s = stats_when(&mut stream, |s| s.jitter_depth == Duration::ZERO).await;
    assert_eq!(s.jitter.received, 6);
    stream.close().await;
}

/// Packets waiting on `s` now (drained), read from the socket itself
/// (`recv` with `MSG_DONTWAIT`). Not tokio's `try_recv`: it answers from
/// the readiness tokio's I/O driver last saw, and the driver runs only
/// when the test's task waits; a test whose awaits were all ready at once
/// counted 0 with packets queued (the attacker test, once in 15 runs of
/// this file).
fn drain(s: &UdpSocket) -> usize {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 1500];
    let mut n = 0;
    while nix::sys::socket::recv(
        s.as_raw_fd(),
        &mut buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .is_ok()
    {
        n += 1;
    }
    n
}

/// Waits `n` ticks; returns whether any played frame carried `level`.
async fn ticks(stream: &mut MediaStream, n: usize, level: i16) -> bool {
    let mut seen = false;
    for _ in 0..n {
        let ev = next_matching(stream, |e| matches!(e, MediaEvent::Audio { .. })).await;
        if let MediaEvent::Audio { pcm, .. } = ev {
            seen |= pcm.contains(&level);
        }
    }
    seen
}

/// Issue 14's attack on one stream: a source on the signalling IP sends
/// first. Before the answer it is rejected and gets nothing; after it, it
/// latches until the SDP peer's first packet, then gets nothing more and
/// none of its audio is played once the caller is heard.
#[tokio::test]
async fn attacker_on_the_signalling_ip_sending_first_gets_only_the_ticks_before_the_caller() {
    let (caller, caller_addr) = peer().await;
    let (attacker, attacker_addr) = peer().await;
    let pool = pool(42300, 20, true);
    let engine = engine();
    let mut c = cfg(Some(caller_addr));
    c.latch = LatchRules::new(
        LatchPolicy::SignallingIp,
        Some(caller_addr.ip()),
        vec!["127.0.0.1/32".parse().unwrap()],
    );
    c.latch_open = false;
    let mut stream = MediaStream::open(&engine, &pool, c).unwrap();
    let to = stream.local_addr();
    // 0x80 decodes to 32124 (the attacker), 0x8f to 16764 (the caller).
    let (loud, caller_level) = (32124, 16764);
    for i in 0..5u16 {
        attacker
            .send_to(&rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]), to)
            .await
            .unwrap();
    }
    assert!(!ticks(&mut stream, 10, loud).await);
    assert_eq!(
        drain(&attacker),
        0,
        "nothing for the attacker before the answer"
    );
    assert!(drain(&caller) >= 9, "the SDP peer is served from the start");
    let s = stats_when(&mut stream, |s| {
        s.rejected.get(RejectReason::BeforeAnswer) >= 5
    })
    .await;
    assert_eq!(s.rejected.get(RejectReason::BeforeAnswer), 5);

    stream.answered();
    attacker
        .send_to(&rtp(0, 5, 800, false, &[0x80; 160]), to)
        .await
        .unwrap();
    let ev = next_matching(&mut stream, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(ev, MediaEvent::Latched(attacker_addr));
    ticks(&mut stream, 3, loud).await;
    caller
        .send_to(&rtp(0, 900, 9000, true, &[0x8f; 160]), to)
        .await
        .unwrap();
    let ev = next_matching(&mut stream, |e| matches!(e, MediaEvent::Latched(_))).await;
    assert_eq!(ev, MediaEvent::Latched(caller_addr));
    let got = drain(&attacker);
    println!("the attacker got {got} packets between its latch and the caller's packet");
    assert!(
        (1..=4).contains(&got),
        "at most the 3 ticks waited plus the one the caller's packet may miss: {got}"
    );
    drain(&caller);
    // The caller keeps talking, the attacker keeps spraying.
    let mut played_attacker = false;
    let mut played_caller = false;
    for i in 1..=20u16 {
        caller
            .send_to(
                &rtp(0, 900 + i, 9000 + 160 * u32::from(i), false, &[0x8f; 160]),
                to,
            )
            .await
            .unwrap();
        attacker
            .send_to(
                &rtp(0, 5 + i, 800 + 160 * u32::from(i), false, &[0x80; 160]),
                to,
            )
            .await
            .unwrap();
        let ev = next_matching(&mut stream, |e| matches!(e, MediaEvent::Audio { .. })).await;
        if let MediaEvent::Audio { pcm, .. } = ev {
            played_attacker |= pcm.contains(&loud);
            played_caller |= pcm.contains(&caller_level);
        }
    }
    // One more tick: the engine may have ticked before the last pair
    // arrived (it runs one tick ahead of the events taken).
    next_matching(&mut stream, |e| matches!(e, MediaEvent::Audio { .. })).await;
    assert!(
        !played_attacker,
        "the attacker's audio was played after the caller was heard"
    );
    assert!(played_caller, "the caller was not heard");
    assert_eq!(
        drain(&attacker),
        0,
        "the attacker got packets after the caller was heard"
    );
    assert!(drain(&caller) >= 19);
    let s = stats_when(&mut stream, |s| s.rejected.get(RejectReason::NotPeer) >= 20).await;
    assert_eq!(s.rejected.get(RejectReason::NotPeer), 20);
    stream.close().await;
}
