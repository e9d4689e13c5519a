//! The answer to OPTIONS as a dispatcher's readiness probe (module
//! `probe`): 200 exactly while a new INVITE would be taken, 503 with
//! Retry-After otherwise, and always 200 inside a dialog.

use super::tests_raw::{Raw, answered_call, request, status, statuses};
use super::*;
use crate::message::Message;

fn probe(r: &mut Raw, branch: &str) -> Message {
    r.send(&request(
        "OPTIONS",
        branch,
        &format!("p-{branch}"),
        None,
        1,
        "",
        "",
    ));
    let mut out = r.out();
    assert_eq!(out.len(), 1, "one answer per OPTIONS");
    out.remove(0).1
}

fn code(m: &Message) -> u16 {
    status(m)
}

#[test]
fn options_is_200_without_retry_after_when_ready() {
    let mut r = Raw::new();
    assert!(r.ua.is_ready());
    let m = probe(&mut r, "o1");
    assert_eq!(code(&m), 200);
    assert!(m.headers().get(&HeaderName::RetryAfter).is_none());
    assert_eq!(m.headers().get(&HeaderName::Allow).unwrap(), ALLOW);
}

#[test]
fn options_is_503_with_retry_after_while_the_application_is_not_ready_and_200_again_after() {
    let mut r = Raw::new();
    r.ua.set_ready(false);
    let m = probe(&mut r, "o1");
    assert_eq!(code(&m), 503);
    assert_eq!(m.headers().get(&HeaderName::RetryAfter).unwrap(), "30");
    assert_eq!(m.headers().get(&HeaderName::Allow).unwrap(), ALLOW);
    r.ua.set_ready(true);
    assert_eq!(code(&probe(&mut r, "o2")), 200);
    assert!(r.events.is_empty());
}

#[test]
fn options_is_503_while_draining_but_200_inside_a_live_dialog() {
    let mut r = Raw::new();
    let (_, tag) = answered_call(&mut r, true);
    r.ua.shutdown();
    assert_eq!(code(&probe(&mut r, "o1")), 503);
    r.send(&request("OPTIONS", "ka", "c1", Some(&tag), 2, "", ""));
    assert_eq!(statuses(&r.out()), vec![200]);
}

#[test]
fn options_is_503_with_every_call_slot_taken() {
    let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
    cfg.max_calls = 1;
    let mut r = Raw::with(cfg);
    assert_eq!(code(&probe(&mut r, "o1")), 200);
    let _ = answered_call(&mut r, true);
    assert!(!r.ua.is_ready());
    assert_eq!(code(&probe(&mut r, "o2")), 503);
}

#[test]
fn options_is_200_only_when_ready_not_draining_and_not_full() {
    for ready in [true, false] {
        for draining in [true, false] {
            for full in [true, false] {
                let mut cfg = Config::new("127.0.0.1:5062".parse().unwrap());
                cfg.max_calls = 1;
                let mut r = Raw::with(cfg);
                if full {
                    let _ = answered_call(&mut r, true);
                }
                r.ua.set_ready(ready);
                if draining {
                    r.ua.shutdown();
                }
                let want = if ready && !draining && !full {
                    200
                } else {
                    503
                };
                assert_eq!(
                    code(&probe(&mut r, "o")),
                    want,
                    "ready {ready} draining {draining} full {full}"
                );
            }
        }
    }
}
