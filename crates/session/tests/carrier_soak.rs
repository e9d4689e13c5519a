//! 100 sequential carrier calls (alternating Twilio and Vonage) through
//! one manager: each is greeted and hung up by the caller; afterwards no
//! call is live, every gauge is back to zero, the mock saw one model
//! session per call, and every call has a complete row (direction,
//! transport, carrier call id, end reason). Alone in its own test binary.

mod carrier_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use callbridge_carrier::{Carrier, RecordingHangup};
use callbridge_crm_store::{Direction as StoreDirection, EndReason, SessionState};
use callbridge_session::CarrierCall;
use callbridge_session::carrier;
use carrier_support::FakeCarrier;
use support::*;

const CALLS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sequential_carrier_calls_leave_gauges_at_zero_and_rows_complete() {
    let r = rig(fast_script(), |_| {}).await;
    let hangup = RecordingHangup::default();
    let t0 = std::time::Instant::now();
    let mut ids = Vec::with_capacity(CALLS);
    for n in 0..CALLS {
        let kind = if n % 2 == 0 {
            Carrier::Twilio
        } else {
            Carrier::Vonage
        };
        let call_id = format!("CA{n:04}");
        let (mut fake, mut socket) = match kind {
            Carrier::Vonage => FakeCarrier::vonage(&call_id).await,
            _ => FakeCarrier::twilio(&call_id).await,
        };
        let (core, start) = carrier::accept(kind, &mut socket, Duration::from_secs(2))
            .await
            .unwrap();
        let id = r
            .manager
            .admit_carrier(CarrierCall {
                core,
                start,
                socket,
                hangup: Arc::new(hangup.clone()),
                from: Some("+15550001111".into()),
                to: Some("+15550002222".into()),
            })
            .await
            .unwrap();
        assert!(
            fake.hear(300.0, Duration::from_secs(15)).await.is_some(),
            "call {n}: greeting heard"
        );
        fake.hang_up().await;
        ids.push((id, kind, call_id));
        r.idle().await;
    }
    eprintln!("{CALLS} sequential carrier calls in {:?}", t0.elapsed());
    let snap = r.manager.snapshot();
    assert!(snap.calls.is_empty());
    assert_eq!(
        (snap.call_tasks, snap.media_sockets, snap.model_sessions),
        (0, 0, 0)
    );
    assert_eq!(
        r.mock.stats().setups,
        CALLS as u64,
        "one model session per call"
    );
    assert!(hangup.calls().is_empty());
    for (id, kind, call_id) in ids {
        let rec = r.record(id);
        assert_eq!(rec.session.direction, StoreDirection::Inbound);
        assert_eq!(
            rec.session.transport.as_str(),
            kind.as_str(),
            "carrier stored"
        );
        assert_eq!(rec.session.state, SessionState::Ended);
        assert_eq!(rec.session.end_reason, Some(EndReason::CallerHangup));
        assert_eq!(
            rec.session.sip_call_id.as_deref(),
            Some(format!("{kind}:{call_id}").as_str())
        );
    }
    r.manager.shutdown().await;
}
