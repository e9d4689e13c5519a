//! Streams on a media engine running on the system clock, against peer
//! sockets on 127.0.0.1; and the engine on a simulated clock moved by the
//! test. The assertions are about what is sent and reported, never about
//! wall-clock speed; waits are bounded and generous.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_rtp::clock::{MAX_CATCH_UP, SimClock, SystemClock};
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::stream::{MediaConfig, MediaEvent, MediaStream, PTIME};
use callbridge_rtp::{RtpPacket, SeqNo, Ssrc};
use tokio::net::UdpSocket;

use support::{peer, pool};

fn engine(threads: usize) -> MediaEngine {
    let cfg = EngineConfig {
        threads,
        ..EngineConfig::default()
    };
    MediaEngine::new(cfg, Arc::new(SystemClock)).unwrap()
}

async fn recv_rtp(s: &UdpSocket) -> RtpPacket {
    let mut buf = vec![0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(10), s.recv(&mut buf))
        .await
        .expect("a packet within 10 s")
        .unwrap();
    buf.truncate(n);
    RtpPacket::parse(Bytes::from(buf)).unwrap()
}

#[tokio::test]
async fn the_engine_sends_queued_frames_then_silence_with_continuous_time() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(44000, 4, false);
    let engine = engine(1);
    let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(7), SeqNo(65530), 500);
    let mut stream = MediaStream::open(&engine, &pool, cfg).unwrap();
    for _ in 0..4 {
        assert!(stream.try_play([1000; 160]));
    }
    let mut got = Vec::new();
    for _ in 0..12 {
        got.push(recv_rtp(&peer).await);
    }
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.ssrc(), Ssrc(7));
        assert_eq!(p.seq(), SeqNo(65530u16.wrapping_add(i as u16)));
        assert_eq!(p.timestamp(), 500 + 160 * i as u32);
    }
    // The four frames went out first (marked talkspurt), silence after.
    let kinds: Vec<(bool, u8)> = got.iter().map(|p| (p.marker(), p.payload()[0])).collect();
    assert_eq!(kinds[0], (true, 0xce));
    assert!(kinds[1..4].iter().all(|k| *k == (false, 0xce)));
    assert!(kinds[4..].iter().all(|k| *k == (false, 0xff)));
    // One audio event per tick, carrying what was sent, in order.
    let mut sent = Vec::new();
    while sent.len() < 12 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.recv())
            .await
            .expect("a tick event within 10 s")
            .expect("stream open");
        if let MediaEvent::Audio { sent: s, .. } = ev {
            sent.push(s[0]);
        }
    }
    assert_eq!(sent[..5], [1000, 1000, 1000, 1000, 0]);
    assert_eq!(stream.stats().send_errors, 0);
    stream.close().await;
}

#[tokio::test]
async fn many_streams_on_two_engine_threads_each_get_every_tick() {
    const N: usize = 40;
    // Twice the even ports the streams need: the peers' ephemeral ports
    // (and other processes) may hold some of the range.
    let pool = pool(44100, 4 * N as u16, false);
    let engine = engine(2);
    let mut peers = Vec::new();
    let mut streams = Vec::new();
    for i in 0..N {
        let (p, a) = peer().await;
        let cfg = MediaConfig::new(Law::ALaw, Some(a), Ssrc(i as u32), SeqNo(0), 0);
        streams.push(MediaStream::open(&engine, &pool, cfg).unwrap());
        peers.push(p);
    }
    for (i, p) in peers.iter().enumerate() {
        let mut prev = None;
        for _ in 0..10 {
            let pkt = recv_rtp(p).await;
            assert_eq!(pkt.ssrc(), Ssrc(i as u32));
            if let Some(prev) = prev {
                assert_eq!(pkt.seq(), SeqNo::next(prev), "stream {i} skipped a packet");
            }
            prev = Some(pkt.seq());
        }
    }
    assert_eq!(engine.calls(), N);
    for s in streams {
        s.close().await;
    }
    assert_eq!(pool.available(), 2 * N, "every port back in the pool");
    // The calls were spread over both threads; both let go of theirs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.calls() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.calls(), 0);
    assert!(engine.counters().ticks >= 10 * N as u64);
}

/// Fails if the engine ignores `Control::Clear`: after the voice tick the
/// core itself still holds `MAX_CATCH_UP - 1` voice frames (the shared
/// queue's are gone with `clear_playback`), so the next packet would be
/// voice.
#[tokio::test]
async fn clear_playback_drops_the_frames_the_core_holds_before_the_next_tick() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(44300, 4, false);
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = MediaEngine::new(EngineConfig::default(), clock.clone()).unwrap();
    let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(9), SeqNo(0), 0);
    let stream = MediaStream::open(&engine, &pool, cfg).unwrap();
    // First tick: nothing queued, silence.
    clock.advance(PTIME);
    assert_eq!(recv_rtp(&peer).await.payload()[0], 0xff);
    // A full playback queue; the next tick moves frames into the core and
    // sends the first.
    let mut queued = 0;
    while stream.try_play([1000; 160]) {
        queued += 1;
    }
    assert!(queued > MAX_CATCH_UP as usize, "{queued} frames queued");
    clock.advance(PTIME);
    assert_eq!(recv_rtp(&peer).await.payload()[0], 0xce);
    // Barge-in, then the next periods: silence only.
    stream.clear_playback();
    for _ in 0..3 {
        clock.advance(PTIME);
        assert_eq!(recv_rtp(&peer).await.payload()[0], 0xff);
    }
    stream.close().await;
}

#[tokio::test]
async fn on_a_simulated_clock_one_advance_of_a_period_sends_exactly_one_packet() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(44400, 4, false);
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = MediaEngine::new(EngineConfig::default(), clock.clone()).unwrap();
    let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(3), SeqNo(10), 0);
    let mut stream = MediaStream::open(&engine, &pool, cfg).unwrap();
    for k in 0..5u16 {
        clock.advance(PTIME);
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.recv())
            .await
            .expect("a tick event within 10 s")
            .expect("stream open");
        assert!(matches!(ev, MediaEvent::Audio { .. }));
        assert_eq!(recv_rtp(&peer).await.seq(), SeqNo(10 + k));
    }
    // Time stands still: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut buf = [0u8; 1500];
    assert!(
        peer.try_recv(&mut buf).is_err(),
        "a packet without time passing"
    );
    // Three periods at once: the engine catches up all three.
    clock.advance(PTIME * 3);
    for k in 5..8u16 {
        assert_eq!(recv_rtp(&peer).await.seq(), SeqNo(10 + k));
    }
    stream.close().await;
    assert_eq!(pool.available(), 2);
}

#[tokio::test]
async fn dropping_the_engine_closes_its_calls_and_joins_its_threads() {
    let (_peer, peer_addr) = peer().await;
    let pool = pool(44500, 8, false);
    let engine = engine(2);
    let mut streams = Vec::new();
    for i in 0..3 {
        let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(i), SeqNo(0), 0);
        streams.push(MediaStream::open(&engine, &pool, cfg).unwrap());
    }
    drop(engine);
    // Joined: every call let go of its sockets and port.
    assert_eq!(pool.available(), 4);
    for mut s in streams {
        while s.recv().await.is_some() {}
        assert!(!s.try_play([0; 160]), "a released stream takes no frames");
    }
}

/// A close is taken at once, also when no call is due: the engine reads
/// the calls' close flags in the pass after one was set, not only when
/// their ticks come (time stands still here).
#[tokio::test]
async fn on_a_simulated_clock_a_close_is_taken_without_time_passing() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(44600, 4, false);
    let clock = Arc::new(SimClock::new(Instant::now()));
    let engine = MediaEngine::new(EngineConfig::default(), clock.clone()).unwrap();
    let open = |ssrc| {
        let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(ssrc), SeqNo(0), 0);
        MediaStream::open(&engine, &pool, cfg).unwrap()
    };
    let (first, mut second) = (open(1), open(2));
    assert_eq!(pool.available(), 0);
    tokio::time::timeout(Duration::from_secs(10), first.close())
        .await
        .expect("released within 10 s without the clock moving");
    assert_eq!(pool.available(), 1);
    // The other call keeps its schedule: one packet per period.
    clock.advance(PTIME);
    let ev = tokio::time::timeout(Duration::from_secs(10), second.recv())
        .await
        .expect("a tick event within 10 s")
        .expect("stream open");
    assert!(matches!(ev, MediaEvent::Audio { .. }));
    assert_eq!(recv_rtp(&peer).await.ssrc(), Ssrc(2));
    second.close().await;
    assert_eq!(pool.available(), 2);
}
