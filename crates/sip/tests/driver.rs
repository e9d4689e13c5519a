//! Two tokio drivers calling each other over loopback, IPv4 and IPv6: the
//! whole stack (socket, run loop, channels, core) with real datagrams.
//! Bounded to 10 s per test.

use bytes::Bytes;
use callbridge_sip::Uri;
use callbridge_sip::driver::{Driver, DriverConfig, DriverError};
use callbridge_sip::header::NameAddr;
use callbridge_sip::random::os_rng;
use callbridge_sip::ua::{Config, EndReason, Event, Originate, UaError};
use std::net::SocketAddr;
use std::time::Duration;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

async fn call_between_two_drivers(bind: &str) {
    let bind: SocketAddr = bind.parse().unwrap();
    let cfg = |_| DriverConfig::new(bind, Config::new(bind));
    let (a, a_handle, mut a_events) = match Driver::bind(cfg(()), os_rng()).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("skipping: cannot bind {bind}: {e}");
            return;
        }
    };
    let (b, b_handle, mut b_events) = Driver::bind(cfg(()), os_rng()).await.unwrap();
    let (a_addr, b_addr) = (a.local_addr(), b.local_addr());
    let a_run = tokio::spawn(a.run(std::future::pending()));
    let b_run = tokio::spawn(b.run(std::future::pending()));
    let host = |a: SocketAddr| match a {
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
        SocketAddr::V4(v4) => v4.to_string(),
    };
    let o = Originate {
        to: Uri::parse(&Bytes::from(format!("sip:bob@{}", host(b_addr)))).unwrap(),
        from: NameAddr::new(
            Uri::parse(&Bytes::from(format!("sip:alice@{}", host(a_addr)))).unwrap(),
        ),
        target: b_addr,
        offer: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        extra_headers: Vec::new(),
    };
    let test = async {
        let call = a_handle.originate(o).await.unwrap();
        let Some(Event::IncomingCall(inc)) = b_events.recv().await else {
            panic!("B got no call")
        };
        assert_eq!(inc.source, a_addr);
        b_handle.ring(inc.call).await.unwrap();
        b_handle
            .answer(inc.call, Bytes::from_static(SDP.as_bytes()))
            .await
            .unwrap();
        assert!(matches!(
            a_events.recv().await,
            Some(Event::Progress { .. })
        ));
        let Some(Event::Answered {
            call: c, answer, ..
        }) = a_events.recv().await
        else {
            panic!("A's call not answered")
        };
        assert_eq!((c, &answer[..]), (call, SDP.as_bytes()));
        assert!(matches!(
            b_events.recv().await,
            Some(Event::Confirmed { .. })
        ));
        a_handle.hangup(call).await.unwrap();
        assert!(matches!(
            b_events.recv().await,
            Some(Event::Ended {
                reason: EndReason::RemoteBye,
                ..
            })
        ));
        assert!(matches!(
            a_events.recv().await,
            Some(Event::Ended {
                reason: EndReason::LocalHangup,
                ..
            })
        ));
        assert_eq!(
            a_handle.hangup(call).await,
            Err(DriverError::Ua(UaError::UnknownCall))
        );
        // Graceful shutdown: no calls left, so both drivers stop at once.
        a_handle.shutdown().await.unwrap();
        b_handle.shutdown().await.unwrap();
        let a_stats = a_run.await.unwrap().unwrap();
        let b_stats = b_run.await.unwrap().unwrap();
        assert_eq!((a_stats.outbound_calls, b_stats.inbound_calls), (1, 1));
    };
    tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("call completes within 10 s");
}

#[tokio::test]
async fn two_drivers_call_each_other_over_ipv4_loopback() {
    call_between_two_drivers("127.0.0.1:0").await;
}

#[tokio::test]
async fn two_drivers_call_each_other_over_ipv6_loopback() {
    call_between_two_drivers("[::1]:0").await;
}

/// An INVITE from `peer` with its own Call-ID and branch.
fn raw_invite(n: usize, peer: SocketAddr, agent: SocketAddr) -> String {
    format!(
        "INVITE sip:bob@{agent} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {peer};branch=z9hG4bK-flood-{n};rport\r\n\
         From: <sip:alice@{peer}>;tag=f{n}\r\nTo: <sip:bob@{agent}>\r\n\
         Call-ID: flood-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{peer}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// The issue-14 deadlock, as the session manager's router met it: one task
/// reads the events and, for each, awaits a command (a 503 reject). Before
/// the fix the driver awaited room in the full event channel and so never
/// answered the command: both waited on each other forever.
#[tokio::test]
async fn invite_flood_with_a_full_event_channel_never_deadlocks_the_driver() {
    const INVITES: usize = 12;
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = DriverConfig::new(bind, Config::new(bind));
    cfg.event_capacity = 2;
    let (driver, handle, mut events) = Driver::bind(cfg, os_rng()).await.unwrap();
    let agent = driver.local_addr();
    let run = tokio::spawn(driver.run(std::future::pending()));
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    let test = async {
        for n in 0..INVITES {
            peer.send_to(raw_invite(n, me, agent).as_bytes(), agent)
                .await
                .unwrap();
        }
        // Nobody reads the events yet. Three 100 Trying mean the driver
        // handled more INVITEs than the channel holds.
        let mut buf = vec![0u8; 8192];
        let mut trying = 0;
        while trying < 3 {
            let (n, _) = peer.recv_from(&mut buf).await.unwrap();
            if buf[..n].starts_with(b"SIP/2.0 100") {
                trying += 1;
            }
        }
        // A command is answered although the channel is full.
        let live = handle.transaction_count().await.unwrap();
        assert!(live >= 3, "{live} transactions");
        // The router's pattern: read an event, await a command for it.
        for _ in 0..INVITES {
            let Some(Event::IncomingCall(inc)) = events.recv().await else {
                panic!("expected an incoming call")
            };
            handle
                .reject(inc.call, callbridge_sip::StatusCode::SERVICE_UNAVAILABLE)
                .await
                .unwrap();
        }
        let mut refused = 0;
        while refused < INVITES {
            let (n, _) = peer.recv_from(&mut buf).await.unwrap();
            if buf[..n].starts_with(b"SIP/2.0 503") {
                refused += 1;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("the driver answers commands while the application lags (no deadlock)");
    handle.shutdown().await.unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the driver stops")
        .unwrap()
        .unwrap();
    assert_eq!(stats.inbound_calls, INVITES as u64);
}
