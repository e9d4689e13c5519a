//! Who speaks first on an outbound call: with a greeting (the request's
//! `greeting`, as `POST /api/calls` passes it, or the profile's) the model
//! greets the callee as soon as the call is answered; without one the
//! callee speaks first and the agent stays quiet until then.

mod support;

use std::time::Duration;

use callbridge_llm_bridge::Greeting;
use callbridge_rtp::stream::MediaStream;
use callbridge_sip::ua::Event;
use support::*;

/// Places an outbound call to a test callee that answers it; returns the
/// callee's media (sending nothing: a callee who says nothing yet).
async fn answered_outbound(
    r: &Rig,
    callee: &mut Caller,
    greeting: Option<Greeting>,
) -> (MediaStream, callbridge_sip::ua::CallRef) {
    let addr = callee.sip_addr().await;
    let mut req = callbridge_session::OriginateRequest::new(
        format!("sip:+15550002224@{addr}"),
        "sip:agent@127.0.0.1",
        addr,
    );
    req.greeting = greeting;
    r.manager.originate(req).await.unwrap();
    let inc = loop {
        match callee.next(Duration::from_secs(20)).await {
            Some(Event::IncomingCall(inc)) => break inc,
            Some(_) => {}
            None => panic!("no INVITE reached the callee"),
        }
    };
    let media = callee.answer_offer(&inc, 11).await;
    (media, inc.call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_with_a_greeting_greets_the_callee_on_answer() {
    let r = rig(fast_script(), |_| {}).await;
    let mut callee = Caller::new().await;
    let greeting = Greeting::OnRequest {
        prompt: "Greet the callee.".into(),
    };
    let (mut media, call) = answered_outbound(&r, &mut callee, Some(greeting)).await;
    // The callee says nothing: what it hears is the model's greeting.
    let heard = hear(&mut media, 300.0, Duration::from_secs(5)).await;
    assert!(heard.is_some(), "the agent did not greet the callee");
    callee.sip.hangup(call).await.unwrap();
    media.close().await;
    r.idle().await;
    r.manager.shutdown().await;
    callee.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_without_a_greeting_waits_for_the_callee() {
    let r = rig(fast_script(), |_| {}).await;
    let mut callee = Caller::new().await;
    let (mut media, call) = answered_outbound(&r, &mut callee, None).await;
    // The same wait as above, and nothing loud: callee-first.
    let heard = hear(&mut media, 300.0, Duration::from_secs(5)).await;
    assert_eq!(heard, None, "the agent spoke before the callee");
    callee.sip.hangup(call).await.unwrap();
    media.close().await;
    r.idle().await;
    r.manager.shutdown().await;
    callee.stop().await;
}
