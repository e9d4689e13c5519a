//! The media core on a simulated clock: a peer writes datagrams, the test
//! advances time to each deadline and looks at what the core sends and
//! reports. These are the behaviours the tokio driver's tests checked
//! through sockets, now without any.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::g711::Law;
use crate::ids::{SeqNo, Ssrc};
use crate::jitter::Playout;
use crate::latch::{LatchPolicy, LatchRules, RejectReason};
use crate::rtp::RtpHeader;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cfg(remote: Option<SocketAddr>) -> MediaConfig {
    let mut c = MediaConfig::new(Law::MuLaw, remote, Ssrc(0xabc), SeqNo(65534), 1000);
    c.inactivity = Duration::from_secs(2);
    c
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

/// A core on a simulated clock, with what it sent and reported.
struct Sim {
    core: MediaCore,
    now: Instant,
    sent: Vec<(Transmit, Vec<u8>)>,
    events: Vec<MediaEvent>,
}

impl Sim {
    fn new(c: &MediaConfig, rtcp: bool) -> Sim {
        let now = Instant::now();
        Sim {
            core: MediaCore::new(c, now, rtcp),
            now,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Advances to the next deadline and runs it (one tick).
    fn tick(&mut self) {
        self.now = self.core.poll_timeout().unwrap().max(self.now);
        self.run();
    }

    /// Runs whatever is due now.
    fn run(&mut self) {
        let mut buf = [0u8; TRANSMIT_BUFFER];
        while let Some(t) = self.core.handle_tick(self.now, &mut buf) {
            self.sent.push((t, buf[..t.len].to_vec()));
        }
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
    }

    fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            self.tick();
        }
    }

    fn rtp_sent(&self) -> Vec<(SocketAddr, RtpPacket)> {
        self.sent
            .iter()
            .filter(|(t, _)| t.socket == Socket::Rtp)
            .map(|(t, b)| {
                (
                    t.destination,
                    RtpPacket::parse(Bytes::from(b.clone())).unwrap(),
                )
            })
            .collect()
    }

    fn take_events(&mut self) -> Vec<MediaEvent> {
        std::mem::take(&mut self.events)
    }

    fn recv(&mut self, data: &[u8], from: SocketAddr) {
        self.core.handle_datagram(self.now, data, from);
    }
}

fn audio_levels(events: &[MediaEvent]) -> Vec<(Playout, i16)> {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Audio { pcm, playout, .. } => Some((*playout, pcm[0])),
            _ => None,
        })
        .collect()
}

#[test]
fn paced_sender_sends_silence_then_marked_talkspurt_with_continuous_time() {
    let peer = addr("127.0.0.1:4000");
    let mut s = Sim::new(&cfg(Some(peer)), false);
    let t0 = s.now;
    s.ticks(3);
    assert!(s.core.play([1000; 160]));
    assert!(s.core.play([1000; 160]));
    s.ticks(4);
    let got = s.rtp_sent();
    assert_eq!(got.len(), 7);
    for (i, (to, p)) in got.iter().enumerate() {
        assert_eq!(*to, peer);
        assert_eq!(p.ssrc(), Ssrc(0xabc));
        assert_eq!(p.seq(), SeqNo(65534u16.wrapping_add(i as u16)));
        assert_eq!(p.timestamp(), 1000 + 160 * i as u32);
        assert_eq!(p.payload().len(), 160);
    }
    let kinds: Vec<(bool, u8)> = got
        .iter()
        .map(|(_, p)| (p.marker(), p.payload()[0]))
        .collect();
    assert!(kinds[..3].iter().all(|k| *k == (false, 0xff)));
    assert_eq!(kinds[3], (true, 0xce));
    assert_eq!(kinds[4], (false, 0xce));
    assert!(kinds[5..].iter().all(|k| *k == (false, 0xff)));
    // One tick per 20 ms of simulated time, on absolute deadlines.
    assert_eq!(s.now - t0, PTIME * 7);
    // The tick events carry what was sent, for the recorder.
    let sent_voice = s
        .take_events()
        .iter()
        .filter(|e| matches!(e, MediaEvent::Audio { sent, .. } if *sent == [1000; 160]))
        .count();
    assert_eq!(sent_voice, 2);
}

#[test]
fn nothing_happens_before_a_deadline_and_extra_calls_are_harmless() {
    let mut s = Sim::new(&cfg(Some(addr("127.0.0.1:4000"))), false);
    s.now += PTIME - Duration::from_millis(1);
    s.run();
    s.run();
    assert!(s.sent.is_empty() && s.events.is_empty());
    s.tick();
    s.run();
    assert_eq!(s.sent.len(), 1);
    assert_eq!(audio_levels(&s.events).len(), 1);
}

#[test]
fn a_late_driver_gets_every_missed_tick_up_to_the_cap_then_restarts() {
    let mut s = Sim::new(&cfg(Some(addr("127.0.0.1:4000"))), false);
    // Three periods late: the missed ticks go out back to back.
    s.now += PTIME * 3;
    s.run();
    assert_eq!(s.sent.len(), 3);
    // One second late: MAX_CATCH_UP ticks, the rest skipped.
    s.now += Duration::from_secs(1);
    s.run();
    assert_eq!(s.sent.len(), 3 + MAX_CATCH_UP as usize);
    assert!(s.core.skipped_ticks() >= 40);
    assert_eq!(s.core.poll_timeout(), Some(s.now + PTIME));
    // Sequence numbers stay continuous: nothing was lost, only not sent.
    let got = s.rtp_sent();
    for w in got.windows(2) {
        assert_eq!(w[1].1.seq(), w[0].1.seq().next());
    }
}

#[test]
fn latches_to_sender_decodes_audio_and_reports_dtmf_once() {
    let peer = addr("127.0.0.1:5000");
    // No SDP address: nothing is sent until the peer's first packet.
    let mut s = Sim::new(&cfg(None), false);
    s.ticks(2);
    assert!(s.sent.is_empty());
    for i in 0..6u16 {
        s.recv(
            &rtp(0, 100 + i, 160 * u32::from(i), i == 0, &[0x80; 160]),
            peer,
        );
    }
    s.ticks(6);
    let ev = s.take_events();
    assert!(ev.contains(&MediaEvent::Latched(peer)));
    let heard: Vec<_> = audio_levels(&ev)
        .into_iter()
        .filter(|(p, _)| matches!(p, Playout::Audio { .. }))
        .collect();
    assert!(!heard.is_empty());
    assert!(heard.iter().all(|(_, v)| *v == 32124));
    // Symmetric RTP: our packets now go to the peer's source address.
    assert!(!s.rtp_sent().is_empty());
    assert!(s.rtp_sent().iter().all(|(to, _)| *to == peer));
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
        s.recv(&rtp(101, 200 + k as u16, 5000, k == 0, &payload), peer);
    }
    s.ticks(50);
    let digits: Vec<_> = s
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf(d) => Some((d.key, d.duration)),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec![(Some('7'), 480)], "reported exactly once");
}

#[test]
fn source_outside_allowlist_is_ignored_and_reported_once() {
    let mut c = cfg(None);
    c.latch = LatchRules::new(
        LatchPolicy::AllowedPeers,
        None,
        vec!["10.0.0.0/8".parse().unwrap()],
    );
    let mut s = Sim::new(&c, false);
    let peer = addr("127.0.0.1:5000");
    for i in 0..5u16 {
        s.recv(&rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]), peer);
    }
    s.ticks(20);
    let ev = s.take_events();
    let rejected: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, MediaEvent::Rejected { .. }))
        .collect();
    assert_eq!(
        rejected,
        vec![&MediaEvent::Rejected {
            from: peer,
            reason: RejectReason::OutsideAllowedPeers
        }]
    );
    assert!(!ev.iter().any(|e| matches!(e, MediaEvent::Latched(_))));
    assert!(
        audio_levels(&ev)
            .iter()
            .all(|(p, _)| *p == Playout::Buffering)
    );
    let st = s.core.stats();
    assert_eq!(st.rejected.get(RejectReason::OutsideAllowedPeers), 5);
    assert_eq!(st.packets_in, 0);
    assert!(s.sent.is_empty());
}

#[test]
fn inactivity_is_reported_once_after_the_configured_time() {
    let mut s = Sim::new(&cfg(None), false);
    let t0 = s.now;
    let mut at = None;
    for _ in 0..400 {
        s.tick();
        for e in s.take_events() {
            if let MediaEvent::Inactive { silent_for } = e {
                assert!(at.is_none(), "inactivity reported twice");
                at = Some((s.now - t0, silent_for));
            }
        }
    }
    let (when, silent_for) = at.unwrap();
    assert_eq!(when, Duration::from_secs(2));
    assert_eq!(silent_for, Duration::from_secs(2));
    // RTP resumes, then stops again: reported again.
    s.recv(&rtp(0, 1, 0, false, &[0xff; 160]), addr("127.0.0.1:5000"));
    s.ticks(101);
    assert!(
        s.take_events()
            .iter()
            .any(|e| matches!(e, MediaEvent::Inactive { .. }))
    );
}

#[test]
fn rtcp_bye_from_peer_is_reported_and_ours_is_sent_on_close() {
    let peer = addr("127.0.0.1:4000");
    let mut s = Sim::new(&cfg(Some(peer)), true);
    s.core
        .handle_rtcp(s.now, &[0x81, 203, 0, 1, 0, 0, 0, 77], peer);
    s.tick();
    assert!(s.take_events().contains(&MediaEvent::RtcpBye));
    s.core.close();
    s.run();
    let (t, bytes) = s.sent.last().unwrap();
    assert_eq!(t.socket, Socket::Rtcp);
    assert_eq!(t.destination, addr("127.0.0.1:4001"));
    let c = RtcpCompound::parse(bytes).unwrap();
    assert_eq!(c.bye_ssrcs().collect::<Vec<_>>(), vec![Ssrc(0xabc)]);
    assert!(s.core.is_closed());
    assert_eq!(s.core.poll_timeout(), None);
    // Closed: nothing more, however long we wait.
    let n = s.sent.len();
    s.now += Duration::from_secs(1);
    s.run();
    assert_eq!(s.sent.len(), n);
}

#[test]
fn rtcp_reports_go_out_every_five_seconds_after_the_tick() {
    let peer = addr("127.0.0.1:4000");
    let mut s = Sim::new(&cfg(Some(peer)), true);
    s.ticks(751);
    let rtcp: Vec<_> = s
        .sent
        .iter()
        .filter(|(t, _)| t.socket == Socket::Rtcp)
        .collect();
    assert_eq!(rtcp.len(), 3, "at 5, 10 and 15 s");
    for (_, b) in rtcp {
        let c = RtcpCompound::parse(b).unwrap();
        assert_eq!(c.bye_ssrcs().count(), 0);
    }
    assert_eq!(s.rtp_sent().len(), 751);
}

#[test]
fn clear_playback_drops_queued_frames() {
    let mut s = Sim::new(&cfg(Some(addr("127.0.0.1:4000"))), false);
    s.ticks(1);
    let mut queued = 0;
    while s.core.play([1000; 160]) {
        queued += 1;
    }
    assert_eq!(
        queued,
        MediaConfig::new(Law::MuLaw, None, Ssrc(0), SeqNo(0), 0).playback_capacity
    );
    s.ticks(2);
    s.core.clear_playback();
    assert_eq!(s.core.queued(), 0);
    s.ticks(20);
    let voice = s
        .rtp_sent()
        .iter()
        .filter(|(_, p)| p.payload()[0] != 0xff)
        .count();
    assert_eq!(voice, 2, "only the two frames played before the clear");
}

#[test]
fn send_dtmf_emits_rfc4733_packets_in_place_of_audio() {
    let mut s = Sim::new(&cfg(Some(addr("127.0.0.1:4000"))), false);
    s.tick();
    s.core.start_dtmf(11, 480);
    s.ticks(8);
    let got = s.rtp_sent();
    let events: Vec<_> = got
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.payload_type().get() == 101)
        .collect();
    assert_eq!(events.len(), 2 + 3, "two updates and three end packets");
    assert!(events[0].marker() && events[1..].iter().all(|p| !p.marker()));
    let ts = events[0].timestamp();
    assert!(events.iter().all(|p| p.timestamp() == ts));
    let parsed: Vec<_> = events
        .iter()
        .map(|p| TelephoneEvent::parse(p.payload()).unwrap())
        .collect();
    assert!(parsed.iter().all(|e| e.event == 11));
    assert_eq!(parsed.iter().filter(|e| e.end).count(), 3);
    assert_eq!(parsed.last().unwrap().duration, 480);
    // Sequence numbers stay continuous across the event.
    for w in got.windows(2) {
        assert_eq!(w[1].1.seq(), w[0].1.seq().next());
    }
}

#[test]
fn stats_report_the_jitter_buffer_depth_as_audio_time() {
    let mut s = Sim::new(&cfg(None), false);
    assert_eq!(s.core.stats().jitter_depth, Duration::ZERO);
    let peer = addr("127.0.0.1:5000");
    for i in 0..6u16 {
        s.recv(&rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]), peer);
    }
    s.tick();
    s.tick();
    let d = s.core.stats().jitter_depth;
    assert!(
        d >= Duration::from_millis(20)
            && d <= Duration::from_millis(120)
            && d.as_millis().is_multiple_of(20),
        "six 20 ms packets, one or two played: {d:?}"
    );
    s.ticks(20);
    assert_eq!(s.core.stats().jitter_depth, Duration::ZERO);
}

#[test]
fn a_flood_between_two_ticks_is_bounded_and_counted() {
    let mut s = Sim::new(&cfg(None), false);
    let peer = addr("127.0.0.1:5000");
    for i in 0..100u16 {
        s.recv(&rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]), peer);
    }
    let st = s.core.stats();
    assert_eq!(st.inbound_dropped, 100 - INBOUND_CAPACITY as u64);
    assert_eq!(st.packets_in, INBOUND_CAPACITY as u64);
    // The next tick takes datagrams again.
    s.tick();
    s.recv(&rtp(0, 200, 0, false, &[0x80; 160]), peer);
    assert_eq!(s.core.stats().packets_in, INBOUND_CAPACITY as u64 + 1);
}

#[test]
fn unpolled_audio_events_are_dropped_and_counted_but_others_are_kept() {
    let mut s = Sim::new(&cfg(None), false);
    let mut buf = [0u8; TRANSMIT_BUFFER];
    for _ in 0..40 {
        s.now = s.core.poll_timeout().unwrap();
        while s.core.handle_tick(s.now, &mut buf).is_some() {}
    }
    s.core
        .handle_rtcp(s.now, &[0x81, 203, 0, 1, 0, 0, 0, 77], addr("127.0.0.1:1"));
    let mut n = 0;
    let mut bye = false;
    while let Some(e) = s.core.poll_event() {
        n += 1;
        bye |= e == MediaEvent::RtcpBye;
    }
    assert_eq!(n, EVENT_QUEUE);
    assert!(bye, "the BYE displaced an audio event");
    assert_eq!(s.core.stats().events_dropped, 40 + 1 - EVENT_QUEUE as u64);
}

/// Issue 14's attack on one call: a source on the signalling IP sends
/// first. Before the answer it is rejected and gets nothing; after it, it
/// latches until the SDP peer's first packet, then gets nothing more and
/// none of its audio is played once the caller is heard.
#[test]
fn attacker_on_the_signalling_ip_sending_first_gets_only_the_ticks_before_the_caller() {
    let caller = addr("127.0.0.1:6000");
    let attacker = addr("127.0.0.1:6666");
    let mut c = cfg(Some(caller));
    c.latch = LatchRules::new(
        LatchPolicy::SignallingIp,
        Some(caller.ip()),
        vec!["127.0.0.1/32".parse().unwrap()],
    );
    c.latch_open = false;
    let mut s = Sim::new(&c, false);
    // 0x80 decodes to 32124 (the attacker), 0x8f to 16764 (the caller).
    let (loud, caller_level) = (32124, 16764);
    for i in 0..5u16 {
        s.recv(
            &rtp(0, i, 160 * u32::from(i), false, &[0x80; 160]),
            attacker,
        );
    }
    s.ticks(10);
    assert!(
        !audio_levels(&s.take_events())
            .iter()
            .any(|(_, v)| *v == loud)
    );
    let to = |s: &Sim, a: SocketAddr| s.rtp_sent().iter().filter(|(d, _)| *d == a).count();
    assert_eq!(
        to(&s, attacker),
        0,
        "nothing for the attacker before the answer"
    );
    assert_eq!(to(&s, caller), 10, "the SDP peer is served from the start");
    assert_eq!(s.core.stats().rejected.get(RejectReason::BeforeAnswer), 5);

    s.core.answered(s.now);
    s.recv(&rtp(0, 5, 800, false, &[0x80; 160]), attacker);
    s.tick();
    assert!(s.take_events().contains(&MediaEvent::Latched(attacker)));
    s.ticks(3);
    let attacker_got = to(&s, attacker);
    assert_eq!(
        attacker_got, 4,
        "the ticks between its latch and the caller's packet"
    );
    s.recv(&rtp(0, 900, 9000, true, &[0x8f; 160]), caller);
    s.tick();
    assert!(s.take_events().contains(&MediaEvent::Latched(caller)));
    // The caller keeps talking, the attacker keeps spraying.
    for i in 1..=20u16 {
        s.recv(
            &rtp(0, 900 + i, 9000 + 160 * u32::from(i), false, &[0x8f; 160]),
            caller,
        );
        s.recv(
            &rtp(0, 5 + i, 800 + 160 * u32::from(i), false, &[0x80; 160]),
            attacker,
        );
        s.tick();
    }
    let played = audio_levels(&s.take_events());
    assert!(
        !played.iter().any(|(_, v)| *v == loud),
        "the attacker's audio was played after the caller was heard"
    );
    assert!(
        played.iter().any(|(_, v)| *v == caller_level),
        "the caller was not heard"
    );
    assert_eq!(
        to(&s, attacker),
        attacker_got,
        "nothing more for the attacker"
    );
    assert_eq!(s.core.stats().rejected.get(RejectReason::NotPeer), 20);
}

/// What a driver may do to a core, in any order.
#[derive(Debug, Clone)]
enum Op {
    Datagram {
        from: u8,
        seq: u16,
        bytes: Vec<u8>,
        valid: bool,
    },
    Advance(u16),
    Play(u8),
    Clear,
    Dtmf(u8),
    Answered,
    SetRemote(Option<u8>),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<bool>()
        )
            .prop_map(|(from, seq, bytes, valid)| Op::Datagram {
                from,
                seq,
                bytes,
                valid
            }),
        (0u16..2_000).prop_map(Op::Advance),
        (0u8..40).prop_map(Op::Play),
        Just(Op::Clear),
        (0u8..16).prop_map(Op::Dtmf),
        Just(Op::Answered),
        proptest::option::of(any::<u8>()).prop_map(Op::SetRemote),
        Just(Op::Close),
    ]
}

proptest! {
    /// Whatever the peer sends and whenever the driver wakes: every wake-up
    /// drains (handle_tick returns None within a bounded number of calls),
    /// at most MAX_CATCH_UP ticks go out per wake-up, sent RTP sequence
    /// numbers never go back or repeat, events stay bounded, and once closed
    /// nothing but the BYE goes out.
    #[test]
    fn any_driver_schedule_keeps_the_core_bounded_and_continuous(
        ops in proptest::collection::vec(op(), 1..120),
        rtcp in any::<bool>(),
    ) {
        let mut c = cfg(Some(addr("127.0.0.1:4000")));
        c.latch = LatchRules::new(LatchPolicy::SignallingIp, Some("127.0.0.1".parse().unwrap()), vec![]);
        c.latch_open = false;
        let t0 = Instant::now();
        let mut core = MediaCore::new(&c, t0, rtcp);
        let mut now = t0;
        let mut last_seq: Option<SeqNo> = None;
        let mut closed = false;
        let mut buf = [0u8; TRANSMIT_BUFFER];
        for op in ops {
            match op {
                Op::Datagram { from, seq, bytes, valid } => {
                    let src = SocketAddr::new("127.0.0.1".parse().unwrap(), 5000 + u16::from(from % 4));
                    let data = if valid { rtp(0, seq, u32::from(seq) * 160, false, &bytes) } else { bytes };
                    core.handle_datagram(now, &data, src);
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    let mut rtp_sent = 0;
                    let mut calls = 0;
                    while let Some(t) = core.handle_tick(now, &mut buf) {
                        calls += 1;
                        prop_assert!(calls <= 2 * MAX_CATCH_UP + 2, "handle_tick does not drain");
                        prop_assert!(t.len <= TRANSMIT_BUFFER);
                        if t.socket == Socket::Rtp {
                            prop_assert!(!closed, "RTP after close");
                            rtp_sent += 1;
                            let p = RtpPacket::parse(&buf[..t.len]).unwrap();
                            // Ticks without a peer send nothing but still
                            // advance the sequence: never back, never twice.
                            if let Some(l) = last_seq {
                                let ahead = p.seq().0.wrapping_sub(l.0);
                                prop_assert!((1..10_000).contains(&ahead), "seq {l:?} then {:?}", p.seq());
                            }
                            last_seq = Some(p.seq());
                        }
                    }
                    prop_assert!(rtp_sent <= MAX_CATCH_UP);
                    let mut events = 0;
                    while core.poll_event().is_some() {
                        events += 1;
                    }
                    prop_assert!(events <= EVENT_QUEUE);
                    if let Some(d) = core.poll_timeout() {
                        prop_assert!(d + WAKE_TOLERANCE > now, "a deadline left due");
                    }
                }
                Op::Play(n) => {
                    for _ in 0..n {
                        let _ = core.play([100; 160]);
                    }
                    prop_assert!(core.queued() <= c.playback_capacity);
                }
                Op::Clear => core.clear_playback(),
                Op::Dtmf(e) => core.start_dtmf(e, 480),
                Op::Answered => core.answered(now),
                Op::SetRemote(r) => core.set_remote(r.map(|p| SocketAddr::new("127.0.0.1".parse().unwrap(), 4000 + u16::from(p % 3)))),
                Op::Close => {
                    core.close();
                    closed = true;
                }
            }
        }
    }
}
