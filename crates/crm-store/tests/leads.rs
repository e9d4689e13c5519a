//! Campaigns, leads, claims, attempts, users and the DNC list.
mod common;

use std::collections::HashSet;
use std::time::Duration;

use callbridge_crm_store::*;
use common::{active_campaign, fresh, leads, phone, t};

fn campaign_crud_round_trips_every_setting() {
    let (_d, mut s) = fresh();
    let mut cs = CampaignSettings::new("spring", "openai");
    cs.voice = Some("alloy".into());
    cs.window = CallingWindow::new(9 * 60, 18 * 60, Weekdays::MON_FRI).unwrap();
    cs.time_zone = "Europe/Berlin".into();
    cs.retry.max_attempts = 5;
    cs.retry.voicemail = Duration::from_secs(7200);
    cs.max_concurrent = 4;
    cs.calls_per_minute = 30;
    let id = s.create_campaign(&cs, t(0)).unwrap();
    let c = s.get_campaign(id).unwrap();
    assert_eq!(c.settings, cs);
    assert_eq!(c.status, CampaignStatus::Draft);
    assert!(matches!(
        s.create_campaign(&cs, t(0)),
        Err(Error::Conflict { .. })
    ));
    // Every setting column is written by the update, each to its own field.
    cs.greeting = "Hello!".into();
    cs.window = CallingWindow::new(8 * 60, 20 * 60, Weekdays::MON_FRI).unwrap();
    cs.time_zone = "America/New_York".into();
    cs.retry.max_attempts = 2;
    cs.retry.busy = Duration::from_secs(600);
    cs.retry.voicemail = Duration::from_secs(3600);
    cs.max_concurrent = 9;
    cs.calls_per_minute = 12;
    s.update_campaign(id, &cs, t(5)).unwrap();
    let c = s.find_campaign("spring").unwrap().unwrap();
    assert_eq!(c.settings, cs);
    assert_eq!(c.updated_at, t(5));
    cs.time_zone = "Nowhere/Land".into();
    assert!(matches!(
        s.update_campaign(id, &cs, t(6)),
        Err(Error::InvalidInput {
            field: "time_zone",
            ..
        })
    ));
    s.delete_campaign(id).unwrap();
    assert!(matches!(s.get_campaign(id), Err(Error::NotFound { .. })));
}

fn claim_hands_out_due_leads_once_and_respects_max_concurrent() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 3);
    s.add_leads(c, &leads(10), t(0)).unwrap();
    let first = s.claim_due_leads(c, t(1), 10).unwrap();
    assert_eq!(first.len(), 3, "max_concurrent caps the claim");
    assert!(
        first
            .iter()
            .all(|l| l.lead.status == LeadStatus::InProgress && l.lead.attempts == 1)
    );
    assert!(s.claim_due_leads(c, t(1), 10).unwrap().is_empty());
    s.record_attempt(first[0].lead.id, Outcome::Completed, None, t(2))
        .unwrap();
    let second = s.claim_due_leads(c, t(2), 10).unwrap();
    assert_eq!(second.len(), 1);
    let ids: HashSet<_> = first.iter().chain(&second).map(|l| l.lead.id).collect();
    assert_eq!(ids.len(), 4);
}

fn claim_skips_dnc_not_yet_due_and_out_of_window_leads() {
    let (_d, mut s) = fresh();
    let mut cs = CampaignSettings::new("w", "gemini");
    cs.window = CallingWindow::new(9 * 60, 17 * 60, Weekdays::ALL).unwrap();
    cs.time_zone = "Europe/Paris".into();
    cs.max_concurrent = 100;
    let c = s.create_campaign(&cs, t(0)).unwrap();
    assert!(matches!(
        s.claim_due_leads(c, t(0), 5),
        Err(Error::Conflict {
            reason: "campaign is not active",
            ..
        })
    ));
    s.set_campaign_status(c, CampaignStatus::Active, t(0))
        .unwrap();
    let mut ls = leads(4);
    ls[1].time_zone = Some("America/Los_Angeles".into()); // 04:00 there at t(0)
    ls[2].time_zone = Some("Asia/Tokyo".into()); // 21:00 there
    let ids = s.add_leads(c, &ls, t(0)).unwrap();
    s.add_dnc(&phone(3), "complaint", t(0)).unwrap();
    // 12:00 UTC = 13:00 Paris: only lead 0 (campaign zone) is open.
    let got = s.claim_due_leads(c, t(0), 5).unwrap();
    assert_eq!(
        got.iter().map(|l| l.lead.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(got[0].time_zone, "Europe/Paris");
    assert_eq!(s.get_lead(ids[3]).unwrap().status, LeadStatus::DoNotCall);
    // A retry is not due before its time.
    let r = s
        .record_attempt(ids[0], Outcome::Busy, None, t(10))
        .unwrap();
    assert_eq!(r.status, LeadStatus::Retry);
    assert_eq!(r.next_attempt_at, t(10 + 600));
    assert!(s.claim_due_leads(c, t(600), 5).unwrap().is_empty());
    assert_eq!(s.claim_due_leads(c, t(610), 5).unwrap().len(), 1);
    // 17:01 UTC = 09:01 in Los Angeles (UTC-8); Paris (18:01) is closed.
    let la = s.claim_due_leads(c, t(5 * 3600 + 60), 5).unwrap();
    assert_eq!(
        la.iter().map(|l| l.lead.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
}

fn attempts_run_out_into_failed_and_dnc_outcome_lists_the_number() {
    let (_d, mut s) = fresh();
    let mut cs = CampaignSettings::new("r", "gemini");
    cs.retry = RetryPolicy {
        max_attempts: 2,
        busy: Duration::ZERO,
        no_answer: Duration::ZERO,
        failed: Duration::ZERO,
        voicemail: Duration::ZERO,
    };
    cs.max_concurrent = 10;
    let c = s.create_campaign(&cs, t(0)).unwrap();
    s.set_campaign_status(c, CampaignStatus::Active, t(0))
        .unwrap();
    let mut ids = s.add_leads(c, &leads(1), t(0)).unwrap();
    for (i, expect) in [(1, LeadStatus::Retry), (2, LeadStatus::Failed)] {
        let got = s.claim_due_leads(c, t(i), 1).unwrap();
        assert_eq!(got[0].lead.id, ids[0]);
        let r = s
            .record_attempt(ids[0], Outcome::NoAnswer, None, t(i))
            .unwrap();
        assert_eq!((r.status, r.attempts), (expect, i as u32));
    }
    assert!(matches!(
        s.record_attempt(ids[0], Outcome::NoAnswer, None, t(3)),
        Err(Error::Conflict {
            entity: Entity::Lead,
            ..
        })
    ));
    ids.extend(s.add_leads(c, &[NewLead::new(phone(1))], t(3)).unwrap());
    let got = s.claim_due_leads(c, t(4), 1).unwrap();
    let sid = SessionId::new_v4();
    s.create_session(&NewSession::outbound(sid, t(4))).unwrap();
    s.record_attempt(got[0].lead.id, Outcome::DoNotCall, Some(sid), t(5))
        .unwrap();
    let l = s.get_lead(ids[1]).unwrap();
    assert_eq!(l.status, LeadStatus::DoNotCall);
    assert_eq!(l.last_session, Some(sid));
    assert!(s.is_dnc(&phone(1)).unwrap());
}

fn released_lead_is_due_again_with_its_attempt_uncounted() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 1);
    let ids = s.add_leads(c, &leads(1), t(0)).unwrap();
    s.claim_due_leads(c, t(1), 1).unwrap();
    s.release_lead(ids[0], t(2)).unwrap();
    let l = s.get_lead(ids[0]).unwrap();
    assert_eq!((l.status, l.attempts), (LeadStatus::Pending, 0));
    assert!(matches!(
        s.release_lead(ids[0], t(2)),
        Err(Error::Conflict { .. })
    ));
}

fn lead_crud_and_duplicate_phone_conflict() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 1);
    let mut l = NewLead::new(phone(1));
    l.name = Some(PersonName::new("Grace").unwrap());
    l.fields.insert("plan".into(), "gold".into());
    let id = s.add_leads(c, std::slice::from_ref(&l), t(0)).unwrap()[0];
    assert!(matches!(
        s.add_leads(c, &[l], t(0)),
        Err(Error::Conflict { .. })
    ));
    s.update_lead(
        id,
        &LeadUpdate {
            time_zone: Some("Europe/London".into()),
            ..Default::default()
        },
        t(1),
    )
    .unwrap();
    let got = s.get_lead(id).unwrap();
    assert_eq!(got.name.as_ref().unwrap().as_str(), "Grace");
    assert_eq!(got.time_zone.as_deref(), Some("Europe/London"));
    assert_eq!(got.fields["plan"], "gold");
    assert!(!format!("{got:?}").contains("Grace"));
    assert!(
        !format!("{got:?}").contains("gold"),
        "field values stay out of Debug"
    );
    assert_eq!(
        s.list_leads(c, LeadFilter::default(), None, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.lead_counts(c).unwrap(), vec![(LeadStatus::Pending, 1)]);
    s.delete_lead(id).unwrap();
    assert!(matches!(s.get_lead(id), Err(Error::NotFound { .. })));
}

fn token_verifies_only_exactly_and_rotation_revokes_the_old_one() {
    let (_d, mut s) = fresh();
    let tok = ApiToken::from_random_bytes([7; 40]);
    let name = PersonName::new("Ops").unwrap();
    let id = s
        .create_user(&name, Role::AgentOperator, &tok, t(0))
        .unwrap();
    let u = s.verify_token(&tok.expose(), t(1)).unwrap();
    assert_eq!((u.id, u.role), (id, Role::AgentOperator));
    let mut wrong = tok.expose();
    wrong.pop();
    wrong.push('0');
    assert!(matches!(
        s.verify_token(&wrong, t(1)),
        Err(Error::Unauthorized)
    ));
    assert!(matches!(
        s.verify_token("garbage", t(1)),
        Err(Error::Unauthorized)
    ));
    assert!(!format!("{tok:?}").contains(&tok.expose()[21..]));
    let new = ApiToken::generate().unwrap();
    s.rotate_token(id, &new, None, t(2)).unwrap();
    assert!(matches!(
        s.verify_token(&tok.expose(), t(1)),
        Err(Error::Unauthorized)
    ));
    assert_eq!(s.verify_token(&new.expose(), t(3)).unwrap().id, id);
    s.set_role(id, Role::Viewer).unwrap();
    assert_eq!(s.get_user(id).unwrap().role, Role::Viewer);
    assert_eq!(s.list_users().unwrap().len(), 1);
    s.delete_user(id).unwrap();
    assert!(matches!(
        s.verify_token(&new.expose(), t(3)),
        Err(Error::Unauthorized)
    ));
}

fn dnc_add_is_idempotent_and_remove_list_check_work() {
    let (_d, mut s) = fresh();
    s.add_dnc(&phone(1), "first", t(0)).unwrap();
    s.add_dnc(&phone(1), "second", t(1)).unwrap();
    s.add_dnc(&phone(2), "x", t(1)).unwrap();
    let e = s.get_dnc(&phone(1)).unwrap().unwrap();
    assert_eq!((e.reason.as_str(), e.added_at), ("first", t(0)));
    assert_eq!(s.list_dnc(None, 10).unwrap().len(), 2);
    assert_eq!(s.list_dnc(Some(&phone(1)), 10).unwrap()[0].phone, phone(2));
    s.remove_dnc(&phone(1)).unwrap();
    assert!(!s.is_dnc(&phone(1)).unwrap());
    assert!(matches!(
        s.remove_dnc(&phone(1)),
        Err(Error::NotFound { .. })
    ));
}

fn outside_the_window_nothing_is_claimed_and_inside_it_is() {
    let (_d, mut s) = fresh();
    let mut cs = CampaignSettings::new("w", "gemini");
    cs.window = CallingWindow::new(9 * 60, 17 * 60, Weekdays::ALL).unwrap();
    cs.max_concurrent = 10;
    let c = s.create_campaign(&cs, t(0)).unwrap();
    s.set_campaign_status(c, CampaignStatus::Active, t(0))
        .unwrap();
    let mut ls = leads(3);
    ls[2].time_zone = Some("Asia/Kolkata".into());
    s.add_leads(c, &ls, t(0)).unwrap();
    // 20:00 UTC: closed in UTC, 01:30 in Kolkata: closed.
    assert!(s.claim_due_leads(c, t(8 * 3600), 10).unwrap().is_empty());
    // 04:00 UTC next day: UTC closed, 09:30 in Kolkata: open.
    let got = s.claim_due_leads(c, t(16 * 3600), 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].time_zone, "Asia/Kolkata");
    // 10:00 UTC: the two UTC leads.
    assert_eq!(s.claim_due_leads(c, t(22 * 3600), 10).unwrap().len(), 2);
}

on_both_backends!(
    campaign_crud_round_trips_every_setting,
    claim_hands_out_due_leads_once_and_respects_max_concurrent,
    claim_skips_dnc_not_yet_due_and_out_of_window_leads,
    attempts_run_out_into_failed_and_dnc_outcome_lists_the_number,
    released_lead_is_due_again_with_its_attempt_uncounted,
    lead_crud_and_duplicate_phone_conflict,
    token_verifies_only_exactly_and_rotation_revokes_the_old_one,
    dnc_add_is_idempotent_and_remove_list_check_work,
    outside_the_window_nothing_is_claimed_and_inside_it_is,
);
