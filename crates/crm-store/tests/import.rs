//! CSV lead import: validation, all-or-nothing, merging, DNC flagging.
mod common;

use callbridge_crm_store::*;
use common::{active_campaign, fresh, phone, t};

const GOOD: &str = "phone,name,time_zone,plan\n\
+1 555 000 0001,Ada,Europe/London,gold\n\
+15550000002,Bob,,silver\n\
+15550000001,,America/New_York,platinum\n";

fn good_file_imports_and_merges_duplicate_phones() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 1);
    let r = s
        .import_leads_csv(c, GOOD.as_bytes(), ImportMode::AllOrNothing, t(0))
        .unwrap();
    assert_eq!(
        (r.rows, r.inserted, r.merged, r.rejected_total),
        (3, 2, 1, 0)
    );
    let ls = s.list_leads(c, LeadFilter::default(), None, 10).unwrap();
    assert_eq!(ls.len(), 2);
    let ada = ls.iter().find(|l| l.phone == phone(1)).unwrap();
    assert_eq!(
        ada.name.as_ref().unwrap().as_str(),
        "Ada",
        "empty later name kept the first"
    );
    assert_eq!(
        ada.time_zone.as_deref(),
        Some("America/New_York"),
        "later zone wins"
    );
    assert_eq!(ada.fields["plan"], "platinum");
    assert_eq!(ada.status, LeadStatus::Pending);
}

fn one_bad_row_refuses_the_file_and_every_bad_row_is_reported() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 1);
    let csv = "phone,name,tz\n\
+15550000001,Ada,\n\
5550000002,Bob,\n\
+15550000003,Cy,Mars/Base\n\
,Dee,\n\
+15550000005,Eve,UTC\n";
    match s.import_leads_csv(c, csv.as_bytes(), ImportMode::AllOrNothing, t(0)) {
        Err(Error::ImportRejected { rows, total }) => {
            assert_eq!(total, 3);
            let got: Vec<_> = rows.iter().map(|r| (r.line, r.field)).collect();
            assert_eq!(got, vec![(3, "phone"), (4, "time_zone"), (5, "phone")]);
            assert_eq!(rows[0].reason, "must start with + (E.164)");
        }
        other => panic!("expected ImportRejected, got {other:?}"),
    }
    assert!(
        s.list_leads(c, LeadFilter::default(), None, 10)
            .unwrap()
            .is_empty()
    );

    let r = s
        .import_leads_csv(c, csv.as_bytes(), ImportMode::GoodRowsOnly, t(0))
        .unwrap();
    assert_eq!((r.inserted, r.rejected_total, r.rejected.len()), (2, 3, 3));
    assert_eq!(
        s.list_leads(c, LeadFilter::default(), None, 10)
            .unwrap()
            .len(),
        2
    );
}

fn reimport_merges_into_existing_leads_without_resetting_progress() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 5);
    s.import_leads_csv(c, GOOD.as_bytes(), ImportMode::AllOrNothing, t(0))
        .unwrap();
    let claimed = s.claim_due_leads(c, t(1), 5).unwrap();
    assert_eq!(claimed.len(), 2);
    let again = "phone,name,extra\n+15550000002,Robert,x\n+15550000009,New,\n";
    let r = s
        .import_leads_csv(c, again.as_bytes(), ImportMode::AllOrNothing, t(2))
        .unwrap();
    assert_eq!((r.inserted, r.merged), (1, 1));
    let bob = s
        .list_leads(c, LeadFilter::default(), None, 10)
        .unwrap()
        .into_iter()
        .find(|l| l.phone == phone(2))
        .unwrap();
    assert_eq!(bob.name.unwrap().as_str(), "Robert");
    assert_eq!(bob.status, LeadStatus::InProgress);
    assert_eq!(bob.attempts, 1);
    assert_eq!(
        (bob.fields["plan"].as_str(), bob.fields["extra"].as_str()),
        (Some("silver"), Some("x"))
    );
}

fn dnc_numbers_are_imported_flagged_do_not_call_and_never_claimed() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 5);
    s.add_dnc(&phone(2), "opt-out", t(0)).unwrap();
    let r = s
        .import_leads_csv(c, GOOD.as_bytes(), ImportMode::AllOrNothing, t(0))
        .unwrap();
    assert_eq!(r.do_not_call, 1);
    let got = s.claim_due_leads(c, t(1), 5).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lead.phone, phone(1));
}

fn missing_phone_column_and_malformed_records_are_reported() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 5);
    assert!(matches!(
        s.import_leads_csv(c, "name\nAda\n".as_bytes(), ImportMode::GoodRowsOnly, t(0)),
        Err(Error::InvalidInput {
            field: "header",
            ..
        })
    ));
    let csv = "phone,name\n+15550000001,Ada,extra\n+15550000002,Bob\n";
    let r = s
        .import_leads_csv(c, csv.as_bytes(), ImportMode::GoodRowsOnly, t(0))
        .unwrap();
    assert_eq!(r.inserted, 1);
    assert_eq!(r.rejected[0].line, 2);
    assert_eq!(r.rejected[0].reason, "malformed CSV record");
    assert!(matches!(
        s.import_leads_csv(
            CampaignId(77),
            GOOD.as_bytes(),
            ImportMode::AllOrNothing,
            t(0)
        ),
        Err(Error::NotFound { .. })
    ));
}

/// The same rows with CRLF line ends (browsers' text areas, spreadsheet
/// exports) are reported on the same lines.
fn crlf_files_report_the_same_line_numbers() {
    let (_d, mut s) = fresh();
    let c = active_campaign(&mut s, "c", 1);
    let csv = "phone,name,tz\r\n+15550000001,Ada,\r\n5550000002,Bob,\r\n,Dee,\r\n";
    match s.import_leads_csv(c, csv.as_bytes(), ImportMode::AllOrNothing, t(0)) {
        Err(Error::ImportRejected { rows, .. }) => {
            let got: Vec<_> = rows.iter().map(|r| r.line).collect();
            assert_eq!(got, vec![3, 4]);
        }
        other => panic!("expected ImportRejected, got {other:?}"),
    }
}

on_both_backends!(
    crlf_files_report_the_same_line_numbers,
    good_file_imports_and_merges_duplicate_phones,
    one_bad_row_refuses_the_file_and_every_bad_row_is_reported,
    reimport_merges_into_existing_leads_without_resetting_progress,
    dnc_numbers_are_imported_flagged_do_not_call_and_never_claimed,
    missing_phone_column_and_malformed_records_are_reported,
);
