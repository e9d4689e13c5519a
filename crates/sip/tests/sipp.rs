//! Interop with a real peer: sipp (Debian package sip-tester) against the
//! tokio driver over 127.0.0.1. The scenarios live in `tests/sipp/`. Every
//! sipp run is bounded (`-m 1`, `-timeout`, and a kill after 30 s). A
//! missing sipp fails the test: install sip-tester (`scripts/test` does).

use bytes::Bytes;
use callbridge_sip::Uri;
use callbridge_sip::driver::{Driver, DriverConfig, Handle};
use callbridge_sip::header::NameAddr;
use callbridge_sip::random::os_rng;
use callbridge_sip::ua::{Config, EndReason, Event, Originate, Stats};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ANSWER_SDP: &str = "v=0\r\no=callbridge 1 1 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n";

fn sipp() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("sipp"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "sipp not found on PATH: install the Debian package sip-tester \
             (apt-get install sip-tester; scripts/test installs it)"
        ),
    }
}

fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A UDP port free at the time of asking.
fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    /// Ring and answer every call.
    Answer,
    /// Ring only.
    Ring,
    /// Hang up outbound calls once answered.
    HangupOnAnswer,
    /// Answer every call and blind-transfer it once confirmed.
    Transfer,
}

struct Running {
    addr: SocketAddr,
    handle: Handle,
    app: JoinHandle<Vec<Event>>,
    driver: JoinHandle<std::io::Result<Stats>>,
    stop: oneshot::Sender<()>,
}

async fn start(mode: App) -> Running {
    let cfg = DriverConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Config::new("127.0.0.1:0".parse().unwrap()),
    );
    let (driver, handle, mut events) = Driver::bind(cfg, os_rng()).await.unwrap();
    let addr = driver.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = tokio::spawn(driver.run(async {
        let _ = stopped.await;
    }));
    let h = handle.clone();
    let app = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(e) = events.recv().await {
            match &e {
                Event::IncomingCall(c) if mode != App::HangupOnAnswer => {
                    h.ring(c.call).await.unwrap();
                    if matches!(mode, App::Answer | App::Transfer) {
                        h.answer(c.call, Bytes::from_static(ANSWER_SDP.as_bytes()))
                            .await
                            .unwrap();
                    }
                }
                Event::Answered { call, .. } if mode == App::HangupOnAnswer => {
                    h.hangup(*call).await.unwrap();
                }
                Event::Confirmed { call } if mode == App::Transfer => {
                    let target = Uri::parse(&Bytes::from_static(b"sip:carol@127.0.0.1:5099"));
                    h.refer(*call, target.unwrap()).await.unwrap();
                }
                _ => {}
            }
            seen.push(e);
        }
        seen
    });
    Running {
        addr,
        handle,
        app,
        driver,
        stop,
    }
}

impl Running {
    async fn finish(self) -> (Vec<Event>, Stats) {
        let _ = self.stop.send(());
        let stats = tokio::time::timeout(Duration::from_secs(10), self.driver)
            .await
            .expect("driver stops after shutdown")
            .unwrap()
            .unwrap();
        drop(self.handle);
        let events = tokio::time::timeout(Duration::from_secs(5), self.app)
            .await
            .expect("app loop ends with the driver")
            .unwrap();
        (events, stats)
    }
}

/// Run sipp with `args`, at most 30 s; panics with its output on failure.
async fn run_sipp(args: &[String]) {
    let mut cmd = tokio::process::Command::new(sipp());
    cmd.args(args)
        .args(["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn sipp");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("sipp finished within 30 s")
        .expect("sipp ran");
    assert!(
        out.status.success(),
        "sipp {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uac_args(name: &str, target: SocketAddr) -> Vec<String> {
    vec![
        "-sf".into(),
        scenario(name),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        free_port().to_string(),
        target.to_string(),
    ]
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn incoming(e: &Event) -> bool {
    matches!(e, Event::IncomingCall(_))
}

#[tokio::test]
async fn sipp_uac_call_is_answered_and_ended_by_bye() {
    let r = start(App::Answer).await;
    run_sipp(&uac_args("uac_call.xml", r.addr)).await;
    let (events, stats) = r.finish().await;
    assert_eq!(count(&events, incoming), 1, "{events:?}");
    assert_eq!(count(&events, |e| matches!(e, Event::Confirmed { .. })), 1);
    assert!(matches!(
        events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
    assert_eq!(stats.inbound_calls, 1);
}

#[tokio::test]
async fn sipp_uas_answers_an_outbound_invite_and_takes_our_bye() {
    let r = start(App::HangupOnAnswer).await;
    let port = free_port();
    let sipp_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario("uas_answer.xml"),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    let sipp = tokio::spawn(async move { run_sipp(&args).await });
    // sipp may bind after our first INVITE: Timer A retransmits it.
    let o = Originate {
        to: Uri::parse(&Bytes::from(format!("sip:service@{sipp_addr}"))).unwrap(),
        from: NameAddr::new(Uri::parse(&Bytes::from(format!("sip:agent@{}", r.addr))).unwrap()),
        target: sipp_addr,
        offer: Bytes::from_static(ANSWER_SDP.as_bytes()),
        credentials: None,
        extra_headers: Vec::new(),
    };
    let call = r.handle.originate(o).await.unwrap();
    sipp.await.unwrap();
    // sipp exits once it sent the 200 for our BYE; the driver takes that
    // datagram before it can drain, so the end is reported.
    let (events, _) = r.finish().await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Answered { call: c, .. } if *c == call)),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Ended {
            reason: EndReason::LocalHangup,
            ..
        })
    ));
}

#[tokio::test]
async fn sipp_retransmitted_invite_makes_one_call_and_a_second_bye_gets_481() {
    let r = start(App::Answer).await;
    run_sipp(&uac_args("uac_retransmit_invite_bye_twice.xml", r.addr)).await;
    let (events, stats) = r.finish().await;
    assert_eq!(count(&events, incoming), 1, "{events:?}");
    assert_eq!(
        count(&events, |e| matches!(e, Event::Ended { .. })),
        1,
        "one teardown"
    );
    assert_eq!(stats.inbound_calls, 1);
    assert!(stats.retransmissions_absorbed >= 1, "{stats:?}");
}

#[tokio::test]
async fn sipp_cancel_before_answer_gets_487() {
    let r = start(App::Ring).await;
    run_sipp(&uac_args("uac_cancel.xml", r.addr)).await;
    let (events, _) = r.finish().await;
    assert_eq!(count(&events, incoming), 1);
    assert!(matches!(
        events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteCancel,
            ..
        })
    ));
}

#[tokio::test]
async fn sipp_accepts_our_refer_202_and_notifies_200_so_the_transfer_is_accepted_once() {
    let r = start(App::Transfer).await;
    run_sipp(&uac_args("uac_refer_notify.xml", r.addr)).await;
    let (events, _) = r.finish().await;
    let transfers: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TransferAccepted { .. } | Event::TransferFailed { .. }
            )
        })
        .collect();
    assert!(
        matches!(transfers[..], [Event::TransferAccepted { .. }]),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
}
