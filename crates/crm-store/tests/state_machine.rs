//! Property test: any sequence of state changes and finishes applied to a
//! stored session agrees with the state machine model (forward only,
//! nothing after a terminal state, the first end wins), and each accepted
//! change is logged exactly once.
mod common;

use callbridge_crm_store::*;
use common::t;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Set(SessionState),
    Finish(SessionState, EndReason),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::sample::select(SessionState::ALL.to_vec()).prop_map(Op::Set),
        (
            prop::sample::select(vec![SessionState::Ended, SessionState::Failed]),
            prop::sample::select(EndReason::ALL.to_vec())
        )
            .prop_map(|(s, r)| Op::Finish(s, r)),
    ]
}

#[test]
fn an_in_memory_store_opens_and_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Store>();
    let mut s = Store::open(":memory:").unwrap();
    s.create_session(&NewSession::inbound(SessionId::new_v4(), t(0)))
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn stored_session_follows_the_state_machine(ops in prop::collection::vec(op(), 0..12)) {
        let mut s = Store::open(":memory:").unwrap();
        let id = SessionId::new_v4();
        s.create_session(&NewSession::inbound(id, t(0))).unwrap();
        let mut state = SessionState::Created;
        let mut first_end: Option<EndReason> = None;
        let mut logged = 1;
        for (i, op) in ops.into_iter().enumerate() {
            let now = t(i as i64 + 1);
            match op {
                Op::Set(to) => {
                    let r = s.set_state(id, to, now);
                    if to.is_terminal() {
                        let is_invalid_input = matches!(r, Err(Error::InvalidInput { .. }));
                        prop_assert!(is_invalid_input);
                    } else if state.can_transition_to(to) {
                        prop_assert!(r.is_ok());
                        state = to;
                        logged += 1;
                    } else {
                        let is_invalid = matches!(r, Err(Error::InvalidTransition { .. }));
                        prop_assert!(is_invalid);
                    }
                }
                Op::Finish(to, reason) => {
                    let r = s.finish_session(id, &Finish { state: to, reason, sip_status: None, at: now }).unwrap();
                    if state.is_terminal() {
                        prop_assert_eq!(r, FinishResult::AlreadyFinished { state, reason: first_end });
                    } else {
                        prop_assert_eq!(r, FinishResult::Finished);
                        state = to;
                        first_end = Some(reason);
                        logged += 1;
                    }
                }
            }
        }
        let rec = s.load_session(id).unwrap();
        prop_assert_eq!(rec.session.state, state);
        prop_assert_eq!(rec.session.end_reason, first_end);
        prop_assert_eq!(rec.events.len(), logged);
    }
}
