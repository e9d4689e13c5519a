//! Fuzz the user-agent core: the input is a sequence of datagrams separated
//! by NUL bytes, fed to one `UserAgent` from three sources with time passing
//! between them; every incoming call is answered, every third one hung up,
//! every confirmed one transferred (REFER), so NOTIFYs reach a live
//! `refer` subscription; re-INVITE and UPDATE offers are answered, and the
//! session timers are seconds long so refreshes and expiries happen.
//! The core must never panic and must keep its tables within their bounds.
#![no_main]

use bytes::Bytes;
use callbridge_sip::random::seeded_rng;
use callbridge_sip::Uri;
use callbridge_sip::session_timer::TimerSettings;
use callbridge_sip::ua::{Config, Event, UserAgent};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::new("127.0.0.1:5060".parse().unwrap());
    cfg.max_transactions = 16;
    cfg.max_calls = 4;
    cfg.session_timer = TimerSettings {
        session_expires: Duration::from_secs(4),
        min_se: Duration::from_secs(2),
    };
    let mut ua = UserAgent::new(cfg, seeded_rng(1));
    let mut now = Instant::now();
    for (i, chunk) in data.split(|&b| b == 0).take(64).enumerate() {
        let src = SocketAddr::from(([127, 0, 0, 1], 5070 + (i % 3) as u16));
        ua.handle_datagram(now, src, Bytes::copy_from_slice(chunk));
        while let Some(e) = ua.poll_event() {
            if let Event::IncomingCall(c) = e {
                let _ = ua.ring(now, c.call);
                let _ = ua.answer(now, c.call, Bytes::from_static(b"v=0\r\n"));
                if c.call.0 % 3 == 0 {
                    let _ = ua.hangup(now, c.call);
                }
            } else if let Event::Reinvite { call, .. } = e {
                let _ = ua.answer(now, call, Bytes::from_static(b"v=0\r\n"));
            } else if let Event::Confirmed { call } = e {
                let target = Uri::parse(&Bytes::from_static(b"sip:t@127.0.0.1:5080"));
                if let Ok(target) = target {
                    let _ = ua.refer(now, call, target);
                }
            }
        }
        while ua.poll_transmit().is_some() {}
        now += Duration::from_millis(700 * (chunk.len() as u64 % 8));
        ua.handle_timeout(now);
        assert!(ua.call_count() <= 4);
    }
});
