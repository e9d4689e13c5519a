//! Streams paced by the process's media clock (a real-time thread), against
//! peer sockets on 127.0.0.1. The assertions are about what is sent and
//! reported, never about wall-clock speed; waits are bounded and generous.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use callbridge_rtp::clock::clock_threads;
use callbridge_rtp::g711::Law;
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaEvent, MediaStream, Pacing};
use callbridge_rtp::{RtpPacket, SeqNo, Ssrc};
use tokio::net::UdpSocket;

fn pool(base: u16, ports: u16) -> PortPool {
    PortPool::new(PortPoolConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        range: base..=base + ports - 1,
        rtcp: false,
    })
    .unwrap()
}

async fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
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
async fn the_media_clock_sends_queued_frames_then_silence_with_continuous_time() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(44000, 4);
    let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(7), SeqNo(65530), 500);
    assert_eq!(cfg.pacing, Pacing::MediaClock);
    let mut stream = MediaStream::open(&pool, cfg).unwrap();
    assert!(
        clock_threads() >= 1,
        "the clock runs while a stream is open"
    );
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
async fn many_streams_on_one_clock_each_get_every_tick() {
    const N: usize = 40;
    let pool = pool(44100, 2 * N as u16);
    let mut peers = Vec::new();
    let mut streams = Vec::new();
    for i in 0..N {
        let (p, a) = peer().await;
        let cfg = MediaConfig::new(Law::ALaw, Some(a), Ssrc(i as u32), SeqNo(0), 0);
        streams.push(MediaStream::open(&pool, cfg).unwrap());
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
    for s in streams {
        s.close().await;
    }
    assert_eq!(pool.available(), N);
}

#[tokio::test]
async fn clear_playback_takes_effect_before_the_next_tick() {
    let (peer, peer_addr) = peer().await;
    let pool = pool(44300, 4);
    let cfg = MediaConfig::new(Law::MuLaw, Some(peer_addr), Ssrc(9), SeqNo(0), 0);
    let stream = MediaStream::open(&pool, cfg).unwrap();
    // Wait for the first packet so the queue is filled mid-stream.
    recv_rtp(&peer).await;
    for _ in 0..100 {
        stream.play([1000; 160]).await.unwrap();
    }
    stream.clear_playback();
    // What was sent between `play` and `clear_playback` comes first; from
    // the clear on, only silence (of 100 frames queued).
    let mut voice_after_clear = 0;
    let mut seen_silence = false;
    for _ in 0..10 {
        let p = recv_rtp(&peer).await;
        if p.payload()[0] == 0xff {
            seen_silence = true;
        } else if seen_silence {
            voice_after_clear += 1;
        }
    }
    assert!(seen_silence);
    assert_eq!(voice_after_clear, 0);
    stream.close().await;
}
