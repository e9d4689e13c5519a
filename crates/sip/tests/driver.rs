//! Two tokio drivers calling each other over loopback, IPv4 and IPv6: the
//! whole stack (socket, run loop, channels, core) with real datagrams.
//! Bounded to 10 s per test.

use bytes::Bytes;
use callbridge_sip::Uri;
use callbridge_sip::driver::{Driver, DriverConfig, DriverError};
use callbridge_sip::header::NameAddr;
use callbridge_sip::random::OsRandom;
use callbridge_sip::ua::{Config, EndReason, Event, Originate, UaError};
use std::net::SocketAddr;
use std::time::Duration;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

async fn call_between_two_drivers(bind: &str) {
    let bind: SocketAddr = bind.parse().unwrap();
    let cfg = |_| DriverConfig::new(bind, Config::new(bind));
    let (a, a_handle, mut a_events) = match Driver::bind(cfg(()), OsRandom::new()).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("skipping: cannot bind {bind}: {e}");
            return;
        }
    };
    let (b, b_handle, mut b_events) = Driver::bind(cfg(()), OsRandom::new()).await.unwrap();
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
