//! An SRTP call's media core on a simulated clock: two cores with mirrored
//! keys hear each other; plain or forged packets are refused and counted.

use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use crate::g711::Law;
use crate::ids::{SeqNo, Ssrc};
use crate::latch::RejectReason;
use crate::srtp::{SrtpKey, SrtpKeys, SrtpSuite};

const A: &str = "127.0.0.1:4000";
const B: &str = "127.0.0.1:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn keys(suite: SrtpSuite, local: u8, remote: u8) -> SrtpKeys {
    SrtpKeys::new(
        SrtpKey::new(suite, &vec![local; suite.master_len()]).unwrap(),
        SrtpKey::new(suite, &vec![remote; suite.master_len()]).unwrap(),
    )
    .unwrap()
}

fn core(remote: &str, ssrc: u32, srtp: MediaSrtp, now: Instant) -> MediaCore {
    let mut c = MediaConfig::new(Law::MuLaw, Some(addr(remote)), Ssrc(ssrc), SeqNo(65530), 0);
    c.srtp = srtp;
    MediaCore::new(&c, now, true)
}

/// Runs one tick of `core` at `now`: what it sent.
fn tick(core: &mut MediaCore, now: Instant) -> Vec<(Transmit, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; TRANSMIT_BUFFER];
    while let Some(t) = core.handle_tick(now, &mut buf) {
        out.push((t, buf[..t.len].to_vec()));
    }
    out
}

fn heard(core: &mut MediaCore) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(e) = core.poll_event() {
        if let MediaEvent::Audio { pcm, .. } = e {
            frames.push(pcm);
        }
    }
    frames
}

#[test]
fn two_srtp_cores_hear_each_other_and_the_wire_is_not_g711() {
    for suite in SrtpSuite::ALL {
        let t0 = Instant::now();
        let mut alice = core(B, 1, MediaSrtp::Keys(keys(suite, 0xa, 0xb)), t0);
        let mut bob = core(A, 2, MediaSrtp::Keys(keys(suite, 0xb, 0xa)), t0);
        let tone: Frame = std::array::from_fn(|i| if i % 8 < 4 { 8000 } else { -8000 });
        let mut plain = [0u8; 160];
        Law::MuLaw.encode(&tone, &mut plain).unwrap();
        let mut loud = 0;
        for k in 1..=20u32 {
            alice.play(tone);
            let now = t0 + PTIME * k;
            for (t, bytes) in tick(&mut alice, now) {
                if t.socket == Socket::Rtp {
                    assert_eq!(bytes.len(), 12 + 160 + suite.rtp_overhead());
                    assert_ne!(&bytes[12..172], &plain[..], "{suite:?}: payload in clear");
                    bob.handle_datagram(now, &bytes, addr(A));
                }
            }
            tick(&mut bob, now);
            loud += heard(&mut bob)
                .iter()
                .filter(|f| f.iter().map(|&s| i64::from(s).abs()).sum::<i64>() > 160 * 4000)
                .count();
        }
        assert!(loud >= 10, "{suite:?}: bob heard {loud} loud frames");
        assert_eq!(bob.stats().rejected.get(RejectReason::SrtpAuth), 0);
        assert!(bob.stats().packets_in >= 19, "{suite:?}");
    }
}

#[test]
fn plain_and_forged_packets_are_refused_counted_and_reported_once() {
    let t0 = Instant::now();
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut alice = core(B, 1, MediaSrtp::Keys(keys(suite, 1, 2)), t0);
    let mut bob = core(A, 2, MediaSrtp::Keys(keys(suite, 2, 1)), t0);
    let mut plain = core(B, 3, MediaSrtp::Off, t0);
    let now = t0 + PTIME;
    let sealed = tick(&mut alice, now).remove(0).1;
    let clear = tick(&mut plain, now).remove(0).1;
    let mut forged = sealed.clone();
    forged[20] ^= 0x40;
    bob.handle_datagram(now, &clear, addr(A));
    bob.handle_datagram(now, &forged, addr(A));
    bob.handle_datagram(now, &sealed, addr(A));
    bob.handle_datagram(now, &sealed, addr(A)); // a replay
    assert_eq!(bob.stats().rejected.get(RejectReason::SrtpAuth), 3);
    assert_eq!(bob.stats().packets_in, 1);
    let rejected: Vec<_> = std::iter::from_fn(|| bob.poll_event())
        .filter(|e| matches!(e, MediaEvent::Rejected { .. }))
        .collect();
    assert_eq!(
        rejected,
        [MediaEvent::Rejected {
            from: addr(A),
            reason: RejectReason::SrtpAuth
        }]
    );
}

#[test]
fn a_source_the_latch_refuses_costs_no_authentication_and_is_counted_under_the_latch() {
    let t0 = Instant::now();
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut alice = core(B, 1, MediaSrtp::Keys(keys(suite, 1, 2)), t0);
    let mut bob = core(A, 2, MediaSrtp::Keys(keys(suite, 2, 1)), t0);
    let now = t0 + PTIME;
    let mut sealed = tick(&mut alice, now).into_iter().map(|(_, b)| b);
    bob.handle_datagram(now, &sealed.next().unwrap(), addr(A));
    assert_eq!(bob.stats().packets_in, 1, "the peer is heard");
    // Another source sprays forged SRTP (new SSRCs each time): refused by
    // the latch before any authentication, so it is not counted as an
    // SRTP failure (the old order authenticated first: srtp_auth = 50).
    let attacker = addr("127.0.0.9:7000");
    for ssrc in 0..50u32 {
        let mut forged = [0u8; 12 + 160 + 10];
        forged[0] = 0x80;
        forged[8..12].copy_from_slice(&ssrc.to_be_bytes());
        bob.handle_datagram(now, &forged, attacker);
    }
    assert_eq!(bob.stats().rejected.get(RejectReason::NotPeer), 50);
    assert_eq!(bob.stats().rejected.get(RejectReason::SrtpAuth), 0);
    // A forged SRTCP report is counted as an SRTP failure.
    bob.handle_rtcp(
        now,
        &[
            0x81, 0xcb, 0, 1, 0, 0, 0, 9, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        addr(A),
    );
    assert_eq!(bob.stats().rejected.get(RejectReason::SrtpAuth), 1);
}

#[test]
fn an_offer_awaiting_its_answer_sends_nothing_until_the_keys_come() {
    let t0 = Instant::now();
    let suite = SrtpSuite::AeadAes128Gcm;
    let mut alice = core(B, 1, MediaSrtp::Awaiting, t0);
    assert!(tick(&mut alice, t0 + PTIME).is_empty());
    alice.handle_datagram(t0 + PTIME, &[0x80; 40], addr(B));
    assert_eq!(alice.stats().rejected.get(RejectReason::SrtpAuth), 1);
    alice.set_srtp(&keys(suite, 1, 2));
    let sent = tick(&mut alice, t0 + PTIME * 2);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.len(), 12 + 160 + 16);
    let mut bob = core(A, 2, MediaSrtp::Keys(keys(suite, 2, 1)), t0);
    bob.handle_datagram(t0 + PTIME * 2, &sent[0].1, addr(A));
    let from_bob = tick(&mut bob, t0 + PTIME * 2).remove(0).1;
    alice.handle_datagram(t0 + PTIME * 2, &from_bob, addr(B));
    assert_eq!(alice.stats().packets_in, 1);
    // The same keys again keep the session: its replay window still knows
    // Bob's packet (a rebuilt session would take the replay), and its
    // sequence goes on.
    alice.set_srtp(&keys(suite, 1, 2));
    alice.handle_datagram(t0 + PTIME * 3, &from_bob, addr(B));
    assert_eq!(alice.stats().packets_in, 1, "the replay is refused");
    assert_eq!(alice.stats().rejected.get(RejectReason::SrtpAuth), 2);
    let next = tick(&mut alice, t0 + PTIME * 3);
    bob.handle_datagram(t0 + PTIME * 3, &next[0].1, addr(A));
    assert_eq!(bob.stats().packets_in, 2);
}

#[test]
fn srtcp_reports_are_protected_and_read_back() {
    let t0 = Instant::now();
    let suite = SrtpSuite::AesCm128HmacSha1_32;
    let mut alice = core(B, 1, MediaSrtp::Keys(keys(suite, 1, 2)), t0);
    let mut bob = core(A, 2, MediaSrtp::Keys(keys(suite, 2, 1)), t0);
    alice.close();
    let bye = tick(&mut alice, t0 + PTIME);
    let (t, bytes) = &bye[0];
    assert_eq!(t.socket, Socket::Rtcp);
    // The SRTCP index's E bit says encrypted: the trailer is E || index
    // (4 bytes) then the 80-bit tag (SRTCP's tag is 80 bits for the _32
    // suite too, RFC 4568 section 6.2).
    assert!(bytes.len() > 8 + 4 + 10);
    assert_ne!(bytes[bytes.len() - 10 - 4] & 0x80, 0, "E bit");
    bob.handle_rtcp(t0 + PTIME, bytes, addr(A));
    assert!(std::iter::from_fn(|| bob.poll_event()).any(|e| e == MediaEvent::RtcpBye));
    // The same BYE in clear is not believed.
    let mut plain = core(B, 3, MediaSrtp::Off, t0);
    plain.close();
    let clear = tick(&mut plain, t0 + PTIME).remove(0).1;
    let mut carol = core(A, 2, MediaSrtp::Keys(keys(suite, 2, 1)), t0);
    carol.handle_rtcp(t0 + PTIME, &clear, addr(A));
    assert!(!std::iter::from_fn(|| carol.poll_event()).any(|e| e == MediaEvent::RtcpBye));
}
