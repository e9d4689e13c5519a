//! The driver over TCP and TLS on loopback: calls between two drivers
//! (connection reuse, `sips:` with a certificate made here by rcgen and
//! verified against it as the configured CA), keep-alive pings, and
//! hostile peers (an endless header, a huge Content-Length, too many
//! connections) losing their own connection while others are served.

use bytes::Bytes;
use callbridge_sip::Uri;
use callbridge_sip::driver::tls::{CertFiles, TlsClient, Trust};
use callbridge_sip::driver::{Driver, DriverConfig, Handle, StreamConfig};
use callbridge_sip::filter::{Rejection, SourceFilter};
use callbridge_sip::header::NameAddr;
use callbridge_sip::random::os_rng;
use callbridge_sip::transaction::TimerConfig;
use callbridge_sip::transport::Transport;
use callbridge_sip::ua::{Config, EndReason, Event, Originate, Outcome};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const LOCAL: &str = "127.0.0.1:0";

/// A certificate for 127.0.0.1 and its key, written to a fresh directory.
fn cert(tag: &str) -> CertFiles {
    let dir = std::env::temp_dir().join(format!("siptls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let files = CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, ck.cert.pem()).unwrap();
    std::fs::write(&files.key, ck.signing_key.serialize_pem()).unwrap();
    files
}

struct Side {
    handle: Handle,
    events: mpsc::Receiver<Event>,
    udp: SocketAddr,
    tcp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
}

async fn start(streams: StreamConfig) -> Side {
    start_filtered(streams, SourceFilter::allow_all()).await
}

async fn start_filtered(streams: StreamConfig, filter: SourceFilter) -> Side {
    let bind: SocketAddr = LOCAL.parse().unwrap();
    let mut ua = Config::new(bind);
    ua.filter = filter;
    // T1 = 50 ms: Timer B gives up after 3.2 s.
    ua.timers = TimerConfig {
        t1: Duration::from_millis(50),
        ..TimerConfig::default()
    };
    let mut cfg = DriverConfig::new(bind, ua);
    cfg.streams = streams;
    let (driver, handle, events) = Driver::bind(cfg, os_rng()).await.unwrap();
    let (udp, tcp, tls) = (driver.local_addr(), driver.tcp_addr(), driver.tls_addr());
    tokio::spawn(driver.run(std::future::pending()));
    Side {
        handle,
        events,
        udp,
        tcp,
        tls,
    }
}

fn listening_tcp() -> StreamConfig {
    StreamConfig {
        tcp_bind: Some(LOCAL.parse().unwrap()),
        ..StreamConfig::default()
    }
}

fn originate(to: String, target: SocketAddr) -> Originate {
    Originate {
        to: Uri::parse(&Bytes::from(to)).unwrap(),
        from: NameAddr::new(Uri::parse(&Bytes::from_static(b"sip:alice@127.0.0.1")).unwrap()),
        target,
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        extra_headers: Vec::new(),
    }
}

/// A calls B at `to`; B answers; A hangs up. Returns B's view of the
/// transport.
async fn call(a: &mut Side, b: &mut Side, to: String, target: SocketAddr) -> Transport {
    let call = a.handle.originate(originate(to, target)).await.unwrap();
    let Some(Event::IncomingCall(inc)) = b.events.recv().await else {
        panic!("B got no call")
    };
    b.handle
        .answer(inc.call, Bytes::from_static(SDP.as_bytes()))
        .await
        .unwrap();
    let Some(Event::Answered { call: c, .. }) = a.events.recv().await else {
        panic!("A's call not answered")
    };
    assert_eq!(c, call);
    assert!(matches!(
        b.events.recv().await,
        Some(Event::Confirmed { .. })
    ));
    a.handle.hangup(call).await.unwrap();
    assert!(matches!(
        b.events.recv().await,
        Some(Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
    assert!(matches!(
        a.events.recv().await,
        Some(Event::Ended {
            reason: EndReason::LocalHangup,
            ..
        })
    ));
    inc.transport
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("done within 10 s")
}

#[tokio::test]
async fn two_calls_over_tcp_share_one_connection() {
    within(async {
        let mut a = start(StreamConfig::default()).await;
        let mut b = start(listening_tcp()).await;
        let b_tcp = b.tcp.unwrap();
        for _ in 0..2 {
            let to = format!("sip:bob@{b_tcp};transport=tcp");
            assert_eq!(call(&mut a, &mut b, to, b_tcp).await, Transport::Tcp);
        }
        let (open, stats) = a.handle.stream_stats().await.unwrap();
        assert_eq!((open, stats.dialed), (1, 1), "one connection, reused");
        let (open, stats) = b.handle.stream_stats().await.unwrap();
        assert_eq!((open, stats.accepted), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_sips_call_verifies_the_certificate_against_the_configured_ca() {
    within(async {
        let files = cert("call");
        let mut b = start(StreamConfig {
            tls_bind: Some((LOCAL.parse().unwrap(), files.clone())),
            ..StreamConfig::default()
        })
        .await;
        let b_tls = b.tls.unwrap();
        let mut a = start(StreamConfig {
            tls_client: TlsClient {
                trust: Trust::CaFile(files.cert.clone()),
                client_cert: None,
            },
            ..StreamConfig::default()
        })
        .await;
        let to = format!("sips:bob@{b_tls}");
        assert_eq!(call(&mut a, &mut b, to, b_tls).await, Transport::Tls);
        // The certificate is read again; a broken file leaves the old one.
        b.handle.reload_tls().await.unwrap();
        let broken = CertFiles {
            cert: PathBuf::from("/nonexistent/cert.pem"),
            ..files.clone()
        };
        assert!(callbridge_sip::driver::tls::server_config(&broken).is_err());
        let _ = std::fs::remove_dir_all(files.cert.parent().unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_certificate_the_client_does_not_trust_fails_the_call() {
    within(async {
        let files = cert("untrusted");
        let mut b = start(StreamConfig {
            tls_bind: Some((LOCAL.parse().unwrap(), files.clone())),
            ..StreamConfig::default()
        })
        .await;
        let b_tls = b.tls.unwrap();
        // A trusts another CA.
        let other = cert("other");
        let mut a = start(StreamConfig {
            tls_client: TlsClient {
                trust: Trust::CaFile(other.cert.clone()),
                client_cert: None,
            },
            ..StreamConfig::default()
        })
        .await;
        a.handle
            .originate(originate(format!("sips:bob@{b_tls}"), b_tls))
            .await
            .unwrap();
        assert!(matches!(
            a.events.recv().await,
            Some(Event::Failed {
                outcome: Outcome::Unreachable,
                ..
            })
        ));
        assert!(b.events.try_recv().is_err(), "B never saw the INVITE");
        for f in [files, other] {
            let _ = std::fs::remove_dir_all(f.cert.parent().unwrap());
        }
    })
    .await;
}

async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// An OPTIONS over a fresh TCP connection gets its 200 on that connection.
async fn options_answered(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let me = s.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:bob@{addr} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bK-o{}\r\n\
         From: <sip:probe@{me}>;tag=p\r\nTo: <sip:bob@{addr}>\r\nCall-ID: probe-{}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        me.port(),
        me.port()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got.starts_with(b"SIP/2.0 200 ")
}

#[tokio::test]
async fn a_keep_alive_ping_gets_a_pong() {
    within(async {
        let b = start(listening_tcp()).await;
        let mut s = TcpStream::connect(b.tcp.unwrap()).await.unwrap();
        s.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\r\n");
    })
    .await;
}

#[tokio::test]
async fn hostile_peers_lose_their_own_connection_only() {
    within(async {
        let b = start(listening_tcp()).await;
        let addr = b.tcp.unwrap();
        // A slow peer holding a connection open, mid-message.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"INVITE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n")
            .await
            .unwrap();
        // An endless header line.
        let mut endless = TcpStream::connect(addr).await.unwrap();
        endless
            .write_all(b"INVITE sip:bob@x SIP/2.0\r\nSubject: ")
            .await
            .unwrap();
        let _ = endless.write_all(&[b'a'; 16 * 1024]).await;
        assert!(closed_by_peer(&mut endless).await);
        // A huge Content-Length: closed before any body is sent.
        let mut huge = TcpStream::connect(addr).await.unwrap();
        huge.write_all(b"INVITE sip:bob@x SIP/2.0\r\nContent-Length: 100000000\r\n\r\n")
            .await
            .unwrap();
        assert!(closed_by_peer(&mut huge).await);
        // No Content-Length at all.
        let mut none = TcpStream::connect(addr).await.unwrap();
        none.write_all(b"OPTIONS sip:bob@x SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\n")
            .await
            .unwrap();
        assert!(closed_by_peer(&mut none).await);
        // Everyone else is served.
        assert!(options_answered(addr).await);
        drop(slow);
    })
    .await;
}

#[tokio::test]
async fn a_message_not_completed_in_time_closes_the_connection() {
    within(async {
        let b = start(StreamConfig {
            message_timeout: Duration::from_millis(300),
            ..listening_tcp()
        })
        .await;
        let mut s = TcpStream::connect(b.tcp.unwrap()).await.unwrap();
        s.write_all(b"INVITE sip:bob@x SIP/2.0\r\n").await.unwrap();
        // One byte at a time, each well within any idle timeout.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = s.write_all(b"X").await;
        }
        assert!(closed_by_peer(&mut s).await);
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_per_ip_limit_are_refused() {
    within(async {
        let b = start(StreamConfig {
            max_per_ip: 2,
            ..listening_tcp()
        })
        .await;
        let addr = b.tcp.unwrap();
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // A ping proves the connection is served.
            s.write_all(b"\r\n\r\n").await.unwrap();
            let mut pong = [0u8; 2];
            s.read_exact(&mut pong).await.unwrap();
            held.push(s);
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(b"\r\n\r\n").await;
        assert!(closed_by_peer(&mut third).await);
        let (open, stats) = b.handle.stream_stats().await.unwrap();
        assert_eq!((open, stats.accepted, stats.refused), (2, 2, 1));
        // A freed slot is usable again.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(options_answered(addr).await);
        let _ = b.udp;
    })
    .await;
}

#[tokio::test]
async fn a_connection_from_outside_the_allowlist_is_closed_at_once() {
    within(async {
        let only = SourceFilter::only(vec!["192.0.2.0/24".parse().unwrap()], Rejection::Forbidden);
        let b = start_filtered(listening_tcp(), only).await;
        let mut s = TcpStream::connect(b.tcp.unwrap()).await.unwrap();
        let _ = s.write_all(b"\r\n\r\n").await;
        assert!(closed_by_peer(&mut s).await);
        let (open, stats) = b.handle.stream_stats().await.unwrap();
        assert_eq!((open, stats.accepted, stats.refused), (0, 0, 1));
    })
    .await;
}

/// RFC 5626 section 4.4.1 on a connection the driver dialed: a double-CRLF
/// ping every `keepalive`; a pong keeps the connection; a ping left
/// unanswered for `keepalive_timeout` closes it.
#[tokio::test]
async fn a_dialed_connection_sends_keepalive_pings_and_closes_when_unanswered() {
    within(async {
        let a = start(StreamConfig {
            keepalive: Some(Duration::from_millis(300)),
            keepalive_timeout: Duration::from_millis(500),
            ..StreamConfig::default()
        })
        .await;
        let listener = tokio::net::TcpListener::bind(LOCAL).await.unwrap();
        let addr = listener.local_addr().unwrap();
        a.handle
            .originate(originate(format!("sip:bob@{addr};transport=tcp"), addr))
            .await
            .unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        // The INVITE first (read until its blank line; it has a body, so
        // the ping can only follow it).
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        // Read until two pings came, answering the first.
        let mut pings = 0;
        let mut tail = Vec::new();
        let started = tokio::time::Instant::now();
        while pings < 2 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed while pings were answered");
            tail.extend_from_slice(&buf[..n]);
            let found = tail.windows(4).filter(|w| *w == b"\r\n\r\n").count();
            if found > pings {
                pings = found;
                if pings == 1 {
                    conn.write_all(b"\r\n").await.unwrap();
                }
            }
        }
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "pings came faster than the period: {:?}",
            started.elapsed()
        );
        // The second is not answered: the driver closes the connection
        // after keepalive_timeout (500 ms), not before.
        let second = tokio::time::Instant::now();
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let waited = second.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
            "closed {waited:?} after the unanswered ping"
        );
    })
    .await;
}
