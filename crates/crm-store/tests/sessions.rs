//! Call sessions through the public API: lifecycle, batches, listing.
mod common;

use callbridge_crm_store::*;
use common::{fresh, t};

fn session_goes_forward_and_records_answer_end_and_duration() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    let mut new = NewSession::outbound(id, t(0));
    new.from = Some(Party::new("+15550001111").unwrap());
    new.sip_call_id = Some("abc@host".into());
    s.create_session(&new).unwrap();
    s.set_state(id, SessionState::Ringing, t(1)).unwrap();
    s.set_state(id, SessionState::Answered, t(5)).unwrap();
    s.set_state(id, SessionState::Active, t(6)).unwrap();
    let mut f = Finish::ended(EndReason::AgentHangup, t(65));
    f.sip_status = Some(200);
    assert_eq!(s.finish_session(id, &f).unwrap(), FinishResult::Finished);
    let rec = s.load_session(id).unwrap();
    let ses = &rec.session;
    assert_eq!(ses.state, SessionState::Ended);
    assert_eq!(ses.end_reason, Some(EndReason::AgentHangup));
    assert_eq!(ses.answered_at, Some(t(5)));
    assert_eq!(ses.ended_at, Some(t(65)));
    assert_eq!(ses.duration, Some(std::time::Duration::from_secs(60)));
    assert_eq!(ses.sip_status, Some(200));
    assert_eq!(ses.from.as_ref().unwrap().as_str(), "+15550001111");
    // created + 3 transitions + finish, each logged once.
    let kinds: Vec<_> = rec.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::StateChanged; 5]);
    // The first event is the creation, not a created -> created self-loop.
    assert_eq!(rec.events[0].detail["from"], serde_json::Value::Null);
    assert_eq!(rec.events[0].detail["to"], "created");
    assert_eq!(rec.events[1].detail["from"], "created");
    assert_eq!(rec.events[1].detail["to"], "ringing");
    assert_eq!(rec.events[4].detail["reason"], "agent-hangup");
}

fn finishing_twice_keeps_the_first_end() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    s.finish_session(id, &Finish::ended(EndReason::CallerHangup, t(10)))
        .unwrap();
    let again = s
        .finish_session(id, &Finish::failed(EndReason::Error, t(20)))
        .unwrap();
    assert_eq!(
        again,
        FinishResult::AlreadyFinished {
            state: SessionState::Ended,
            reason: Some(EndReason::CallerHangup)
        }
    );
    let ses = s.get_session(id).unwrap();
    assert_eq!(ses.ended_at, Some(t(10)));
    assert_eq!(ses.duration, None, "never answered");
}

fn no_state_change_after_end_and_no_going_back() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    s.set_state(id, SessionState::Active, t(1)).unwrap();
    assert!(matches!(
        s.set_state(id, SessionState::Ringing, t(2)),
        Err(Error::InvalidTransition { .. })
    ));
    s.finish_session(id, &Finish::ended(EndReason::CallerHangup, t(3)))
        .unwrap();
    assert!(matches!(
        s.set_state(id, SessionState::Active, t(4)),
        Err(Error::InvalidTransition {
            from: SessionState::Ended,
            ..
        })
    ));
    assert!(matches!(
        s.set_state(id, SessionState::Ended, t(4)),
        Err(Error::InvalidInput { field: "state", .. })
    ));
}

fn duplicate_session_id_is_a_conflict_and_unknown_id_not_found() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    assert!(matches!(
        s.create_session(&NewSession::inbound(id, t(0))),
        Err(Error::Conflict { .. })
    ));
    let other = SessionId::new_v4();
    assert!(matches!(
        s.set_state(other, SessionState::Active, t(1)),
        Err(Error::NotFound {
            entity: Entity::Session,
            ..
        })
    ));
    assert!(matches!(
        s.append_turns(other, &[NewTurn::new(0, Speaker::Agent, "x", 0)]),
        Err(Error::NotFound { .. })
    ));
}

fn a_turn_batch_with_a_duplicate_sequence_writes_nothing() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    s.append_turns(
        id,
        &[
            NewTurn::new(0, Speaker::Agent, "Hello", 0),
            NewTurn::new(1, Speaker::Caller, "Hi", 900),
        ],
    )
    .unwrap();
    let bad = [
        NewTurn::new(2, Speaker::Agent, "new", 2000),
        NewTurn::new(1, Speaker::Caller, "dup", 2500),
    ];
    assert!(matches!(
        s.append_turns(id, &bad),
        Err(Error::Conflict {
            entity: Entity::Turn,
            ..
        })
    ));
    let rec = s.load_session(id).unwrap();
    assert_eq!(rec.turns.len(), 2, "the failed batch left nothing behind");
    assert_eq!(rec.turns[1].text.as_str(), "Hi");
    assert!(!format!("{:?}", rec.turns[1]).contains("Hi\""));
}

fn events_batch_keeps_order_and_json_detail() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    s.create_session(&NewSession::inbound(id, t(0))).unwrap();
    let evs = [
        NewEvent {
            at: t(1),
            kind: EventKind::Dtmf,
            detail: serde_json::json!({"digit": "5"}),
        },
        NewEvent {
            at: t(2),
            kind: EventKind::ToolCall,
            detail: serde_json::json!({"name": "end_call"}),
        },
    ];
    s.append_events(id, &evs).unwrap();
    let rec = s.load_session(id).unwrap();
    let tail: Vec<_> = rec
        .events
        .iter()
        .skip(1)
        .map(|e| (e.kind, e.detail.clone()))
        .collect();
    assert_eq!(
        tail[0],
        (EventKind::Dtmf, serde_json::json!({"digit": "5"}))
    );
    assert_eq!(tail[1].0, EventKind::ToolCall);
}

fn update_sets_recording_summary_and_usage_and_keeps_the_rest() {
    let (_d, mut s) = fresh();
    let id = SessionId::new_v4();
    let mut n = NewSession::inbound(id, t(0));
    n.model = Some("gemini-live".into());
    s.create_session(&n).unwrap();
    s.update_session(
        id,
        &SessionUpdate {
            recording: Some(("/rec/a.wav".into(), 1234)),
            summary: Some(Sensitive::new("asked about billing")),
            usage: Some(Usage {
                input_tokens: Some(10),
                output_tokens: Some(20),
                audio_ms: None,
                split: Some(TokenSplit {
                    input_audio: 7,
                    input_text: 3,
                    output_audio: 15,
                    output_text: 5,
                }),
                ..Usage::default()
            }),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    let ses = s.get_session(id).unwrap();
    assert_eq!(ses.model.as_deref(), Some("gemini-live"));
    assert_eq!(
        ses.recording_path.as_deref(),
        Some(std::path::Path::new("/rec/a.wav"))
    );
    assert_eq!(ses.recording_bytes, Some(1234));
    assert_eq!(ses.usage.output_tokens, Some(20));
    assert_eq!(
        ses.usage.split,
        Some(TokenSplit {
            input_audio: 7,
            input_text: 3,
            output_audio: 15,
            output_text: 5,
        })
    );
    assert!(!format!("{ses:?}").contains("billing"));
    // A later report without a split (a provider that gives none) keeps
    // the stored one; a session never given one has none.
    s.update_session(
        id,
        &SessionUpdate {
            usage: Some(Usage {
                input_tokens: Some(11),
                ..Usage::default()
            }),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    let ses = s.get_session(id).unwrap();
    assert_eq!(ses.usage.input_tokens, Some(11));
    assert_eq!(ses.usage.split.map(|t| t.output_audio), Some(15));
    let other = SessionId::new_v4();
    s.create_session(&NewSession::inbound(other, t(1))).unwrap();
    s.update_session(
        other,
        &SessionUpdate {
            usage: Some(Usage {
                input_tokens: Some(4),
                output_tokens: Some(2),
                ..Usage::default()
            }),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    assert_eq!(s.get_session(other).unwrap().usage.split, None);
    // The summary's tokens come later, on their own, and leave the
    // call's alone.
    s.update_session(
        id,
        &SessionUpdate {
            usage: Some(Usage {
                summary_input_tokens: Some(412),
                summary_output_tokens: Some(38),
                ..Usage::default()
            }),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    let u = s.get_session(id).unwrap().usage;
    assert_eq!(
        (
            u.input_tokens,
            u.summary_input_tokens,
            u.summary_output_tokens
        ),
        (Some(11), Some(412), Some(38))
    );
    assert_eq!(u.split.map(|t| t.input_audio), Some(7));
}

fn list_filters_and_pages_newest_first_without_gaps_or_repeats() {
    let (_d, mut s) = fresh();
    let c = common::active_campaign(&mut s, "c", 5);
    let mut ids = Vec::new();
    for i in 0..25 {
        let id = SessionId::new_v4();
        let mut n = if i % 2 == 0 {
            NewSession::inbound(id, t(i / 3))
        } else {
            NewSession::outbound(id, t(i / 3))
        };
        if i % 5 == 0 {
            n.campaign = Some(c);
        }
        s.create_session(&n).unwrap();
        if i % 3 == 0 {
            s.finish_session(id, &Finish::ended(EndReason::CallerHangup, t(100)))
                .unwrap();
        }
        ids.push(id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_sessions(&SessionFilter::default(), 4, cursor)
            .unwrap();
        seen.extend(page.items.iter().map(|x| (x.created_at, x.id)));
        match page.next {
            Some(c) => cursor = Some(c.to_string().parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted);

    let f = SessionFilter {
        direction: Some(Direction::Inbound),
        state: Some(SessionState::Ended),
        ..Default::default()
    };
    let got = s.list_sessions(&f, 100, None).unwrap().items;
    assert_eq!(
        got.len(),
        (0..25).filter(|i| i % 2 == 0 && i % 3 == 0).count()
    );
    let f = SessionFilter {
        campaign: Some(c),
        since: Some(t(2)),
        until: Some(t(7)),
        ..Default::default()
    };
    let got = s.list_sessions(&f, 100, None).unwrap().items;
    let want = (0..25i64)
        .filter(|i| i % 5 == 0 && (2..7).contains(&(i / 3)))
        .count();
    assert_eq!(got.len(), want);
}

/// Pages every session in `order`, `per` at a time, through the cursor's
/// text form (as a URL carries it).
fn all_pages(s: &Store, order: SessionOrder, per: u32) -> Vec<Session> {
    let f = SessionFilter {
        order,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list_sessions(&f, per, cursor).unwrap();
        seen.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c.to_string().parse().unwrap()),
            None => return seen,
        }
    }
}

fn every_order_pages_the_whole_table_in_that_order() {
    let (_d, mut s) = fresh();
    // 23 sessions, several sharing a start time and a duration (ties go by
    // id), some never answered (no duration). The expected orders are
    // computed from what was written, not from what the store returns.
    let mut made = Vec::new();
    for i in 0..23i64 {
        let id = SessionId::new_v4();
        s.create_session(&NewSession::inbound(id, t(i / 4)))
            .unwrap();
        let mut duration = -1;
        if i % 4 != 3 {
            s.set_state(id, SessionState::Answered, t(i / 4)).unwrap();
            let end = t(i / 4 + 10 * (i % 3));
            s.finish_session(id, &Finish::ended(EndReason::CallerHangup, end))
                .unwrap();
            duration = 10_000 * (i % 3);
        }
        made.push((t(i / 4), duration, id));
    }
    let ids = |v: &[Session]| v.iter().map(|x| x.id).collect::<Vec<_>>();

    let mut want = made.clone();
    want.sort_by_key(|m| std::cmp::Reverse((m.0, m.2)));
    let newest: Vec<_> = want.iter().map(|m| m.2).collect();
    assert_eq!(ids(&all_pages(&s, SessionOrder::Newest, 4)), newest);

    let oldest: Vec<_> = newest.iter().rev().copied().collect();
    assert_eq!(ids(&all_pages(&s, SessionOrder::Oldest, 5)), oldest);

    want.sort_by_key(|m| std::cmp::Reverse((m.1, m.2)));
    let longest: Vec<_> = want.iter().map(|m| m.2).collect();
    let got = all_pages(&s, SessionOrder::Longest, 3);
    assert_eq!(ids(&got), longest);
    assert_eq!(got[22].duration, None, "unanswered calls last");

    // A cursor continues only the order that made it.
    let f = SessionFilter {
        order: SessionOrder::Oldest,
        ..Default::default()
    };
    let next = s.list_sessions(&f, 2, None).unwrap().next.unwrap();
    assert!(next.to_string().starts_with('o'));
    let err = s
        .list_sessions(&SessionFilter::default(), 2, Some(next))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "cursor",
                ..
            }
        ),
        "{err}"
    );
    assert!("x1_2".parse::<Cursor>().is_err());
    assert!("l".parse::<Cursor>().is_err());
    assert_eq!(
        "longest".parse::<SessionOrder>().unwrap(),
        SessionOrder::Longest
    );
    assert!("state".parse::<SessionOrder>().is_err());
}

fn transport_is_stored_read_back_and_filters_the_list() {
    let (_d, mut s) = fresh();
    let mut want = Vec::new();
    for (i, transport) in [
        Transport::Sip,
        Transport::Twilio,
        Transport::Vonage,
        Transport::Twilio,
    ]
    .into_iter()
    .enumerate()
    {
        let id = SessionId::new_v4();
        let mut n = NewSession::inbound(id, t(i as i64));
        n.transport = transport;
        s.create_session(&n).unwrap();
        want.push((id, transport));
    }
    let plain = SessionId::new_v4();
    s.create_session(&NewSession::outbound(plain, t(9)))
        .unwrap();
    want.push((plain, Transport::Sip));
    for (id, transport) in &want {
        assert_eq!(s.get_session(*id).unwrap().transport, *transport);
        assert_eq!(s.load_session(*id).unwrap().session.transport, *transport);
    }
    for transport in Transport::ALL {
        let f = SessionFilter {
            transport: Some(*transport),
            ..Default::default()
        };
        let mut got: Vec<SessionId> = s
            .list_sessions(&f, 100, None)
            .unwrap()
            .items
            .into_iter()
            .map(|x| {
                assert_eq!(x.transport, *transport);
                x.id
            })
            .collect();
        let mut expected: Vec<SessionId> = want
            .iter()
            .filter(|(_, t)| t == transport)
            .map(|(id, _)| *id)
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{transport}");
    }
    let f = SessionFilter {
        transport: Some(Transport::Sip),
        direction: Some(Direction::Inbound),
        ..Default::default()
    };
    assert_eq!(
        s.list_sessions(&f, 100, None).unwrap().items.len(),
        1,
        "filters combine"
    );
}

fn the_list_filters_by_end_reason_and_by_either_party() {
    let (_d, mut s) = fresh();
    let mut hung_up = Vec::new();
    for i in 0..6i64 {
        let id = SessionId::new_v4();
        let mut n = NewSession::inbound(id, t(i));
        n.from = Some(Party::new(format!("+1555000000{i}")).unwrap());
        n.to = Some(Party::new("+15559990000").unwrap());
        s.create_session(&n).unwrap();
        let reason = if i % 2 == 0 {
            hung_up.push(id);
            EndReason::CallerHangup
        } else {
            EndReason::AgentHangup
        };
        s.finish_session(id, &Finish::ended(reason, t(10))).unwrap();
    }
    let f = SessionFilter {
        end_reason: Some(EndReason::CallerHangup),
        ..Default::default()
    };
    let mut got: Vec<_> = s
        .list_sessions(&f, 100, None)
        .unwrap()
        .items
        .iter()
        .map(|x| x.id)
        .collect();
    got.sort();
    hung_up.sort();
    assert_eq!(got, hung_up);
    let by = |n: &str| {
        let f = SessionFilter {
            number: Some(n.into()),
            ..Default::default()
        };
        s.list_sessions(&f, 100, None).unwrap().items.len()
    };
    assert_eq!(by("+15550000003"), 1, "the caller");
    assert_eq!(by("+15559990000"), 6, "the callee");
    assert_eq!(by("+1555"), 0, "whole numbers only");
}

/// Issue 19: the detection's verdict, its time and the machine's end are
/// columns of the session row (schema v12), set by updates (the first
/// verdict, then the end of a machine's greeting), read back and listed
/// with `amd`.
fn the_amd_verdict_is_stored_read_back_and_filters_the_list() {
    let (_d, mut s) = fresh();
    let mut ids = Vec::new();
    for i in 0..4i64 {
        let id = SessionId::new_v4();
        s.create_session(&NewSession::outbound(id, t(i))).unwrap();
        ids.push(id);
    }
    let verdict = |v, ms| SessionUpdate {
        amd_verdict: Some((v, std::time::Duration::from_millis(ms))),
        ..SessionUpdate::default()
    };
    s.update_session(ids[0], &verdict(AmdVerdict::Human, 1180))
        .unwrap();
    s.update_session(ids[1], &verdict(AmdVerdict::Machine, 2660))
        .unwrap();
    s.update_session(ids[2], &verdict(AmdVerdict::Machine, 3020))
        .unwrap();
    assert_eq!(
        s.get_session(ids[1]).unwrap().amd,
        Some(AmdResult {
            verdict: AmdVerdict::Machine,
            decided: std::time::Duration::from_millis(2660),
            machine_end: None,
        })
    );
    s.update_session(
        ids[1],
        &SessionUpdate {
            amd_machine_end: Some(MachineEnd::Beep),
            summary: Some(Sensitive::new("left a message")),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    let got = s.get_session(ids[1]).unwrap().amd.unwrap();
    assert_eq!(got.verdict, AmdVerdict::Machine, "kept by a later update");
    assert_eq!(got.decided, std::time::Duration::from_millis(2660));
    assert_eq!(got.machine_end, Some(MachineEnd::Beep));
    assert_eq!(s.get_session(ids[3]).unwrap().amd, None, "no detection");
    let listed = |v: Option<AmdVerdict>| {
        let f = SessionFilter {
            amd: v,
            ..Default::default()
        };
        let mut got: Vec<_> = s
            .list_sessions(&f, 100, None)
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();
        got.sort();
        got
    };
    let mut machines = vec![ids[1], ids[2]];
    machines.sort();
    assert_eq!(listed(Some(AmdVerdict::Machine)), machines);
    assert_eq!(listed(Some(AmdVerdict::Human)), vec![ids[0]]);
    assert!(listed(Some(AmdVerdict::NoSpeech)).is_empty());
    assert_eq!(listed(None).len(), 4);
    let machine = s
        .list_sessions(
            &SessionFilter {
                amd: Some(AmdVerdict::Machine),
                ..Default::default()
            },
            1,
            None,
        )
        .unwrap();
    assert_eq!(machine.items.len(), 1);
    let rest = s
        .list_sessions(
            &SessionFilter {
                amd: Some(AmdVerdict::Machine),
                ..Default::default()
            },
            1,
            machine.next,
        )
        .unwrap();
    assert_eq!(rest.items.len(), 1, "pages within the filter");
    assert_ne!(rest.items[0].id, machine.items[0].id);
}

on_both_backends!(
    the_amd_verdict_is_stored_read_back_and_filters_the_list,
    session_goes_forward_and_records_answer_end_and_duration,
    finishing_twice_keeps_the_first_end,
    no_state_change_after_end_and_no_going_back,
    duplicate_session_id_is_a_conflict_and_unknown_id_not_found,
    a_turn_batch_with_a_duplicate_sequence_writes_nothing,
    events_batch_keeps_order_and_json_detail,
    update_sets_recording_summary_and_usage_and_keeps_the_rest,
    list_filters_and_pages_newest_first_without_gaps_or_repeats,
    every_order_pages_the_whole_table_in_that_order,
    transport_is_stored_read_back_and_filters_the_list,
    the_list_filters_by_end_reason_and_by_either_party,
);
