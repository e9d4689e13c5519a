//! Guards of the UAS against requests that must go no further: hop
//! exhaustion (Max-Forwards 0, RFC 3261 sections 8.1.1.6 and 16.3), and
//! the end of a call whose 2xx is never ACKed, reported once.

use super::tests::SDP;
use super::tests_raw::{Raw, request, statuses};
use super::*;

#[test]
fn an_invite_with_max_forwards_0_gets_483_and_never_becomes_a_call() {
    let mut r = Raw::new();
    let invite = request("INVITE", "mf0", "c-mf0", None, 1, "", SDP)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    r.send(&invite);
    assert_eq!(statuses(&r.out()), vec![483]);
    assert!(r.events.is_empty(), "{:?}", r.events);
    assert_eq!(r.ua.call_count(), 0);
    // One hop left is still fine.
    let invite = request("INVITE", "mf1", "c-mf1", None, 1, "", SDP)
        .replace("Max-Forwards: 70", "Max-Forwards: 1");
    r.send(&invite);
    assert!(matches!(r.events.first(), Some(Event::IncomingCall(_))));
}

#[test]
fn options_with_max_forwards_0_is_still_answered_200() {
    let mut r = Raw::new();
    let options = request("OPTIONS", "opt0", "c-opt0", None, 1, "", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    r.send(&options);
    assert_eq!(statuses(&r.out()), vec![200]);
}
