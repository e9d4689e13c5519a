//! `run --dry-run`: which leads the claim would hand out now, and why each
//! other lead is skipped (status, calling window, DNC, attempts, not due).
//! The same rules as `Store::claim_due_leads`, evaluated without claiming.

use std::io::Write;

use callbridge_crm_store::{Campaign, CampaignStatus, Lead, LeadFilter, LeadStatus, Store};
use jiff::Timestamp;

use crate::error::{CampaignError, Result};

/// Why a lead would not be dialled now; `None` when it would.
pub fn skip_reason(
    store: &Store,
    c: &Campaign,
    lead: &Lead,
    now: Timestamp,
) -> Result<Option<String>> {
    let s = &c.settings;
    if !matches!(lead.status, LeadStatus::Pending | LeadStatus::Retry) {
        return Ok(Some(format!("status {}", lead.status)));
    }
    if store.is_dnc(&lead.phone)? {
        return Ok(Some("on the do-not-call list".into()));
    }
    if lead.attempts >= s.retry.max_attempts {
        return Ok(Some(format!(
            "attempts used ({}/{})",
            lead.attempts, s.retry.max_attempts
        )));
    }
    if lead.next_attempt_at > now {
        return Ok(Some(format!("not due until {}", lead.next_attempt_at)));
    }
    let zone_name = lead.time_zone.as_deref().unwrap_or(&s.time_zone);
    let tz = jiff::tz::db()
        .get(zone_name)
        .or_else(|_| jiff::tz::db().get(&s.time_zone))
        .map_err(|_| CampaignError::Usage(format!("unknown time zone {zone_name}")))?;
    if !s.window.is_open(now, &tz) {
        let local = now.to_zoned(tz);
        return Ok(Some(format!(
            "outside the calling window in {zone_name} (local {})",
            local.strftime("%a %H:%M")
        )));
    }
    Ok(None)
}

/// Prints the dry run to `out`.
pub fn print(store: &Store, c: &Campaign, now: Timestamp, out: &mut impl Write) -> Result<()> {
    let io = |source| CampaignError::Io {
        path: "stdout".into(),
        source,
    };
    if c.status != CampaignStatus::Active {
        writeln!(
            out,
            "campaign {} is {}: nothing would be dialled",
            c.settings.name, c.status
        )
        .map_err(io)?;
    }
    let (mut due, mut skipped) = (Vec::new(), Vec::new());
    let mut after = None;
    loop {
        let page = store.list_leads(c.id, LeadFilter::default(), after, 1000)?;
        for lead in &page {
            match skip_reason(store, c, lead, now)? {
                None => due.push(lead.clone()),
                Some(why) => skipped.push((lead.clone(), why)),
            }
        }
        match page.last() {
            Some(l) if page.len() == 1000 => after = Some(l.id),
            _ => break,
        }
    }
    writeln!(
        out,
        "would dial {} now ({} at once, {}/min):",
        crate::report::leads(due.len()),
        c.settings.max_concurrent,
        c.settings.calls_per_minute
    )
    .map_err(io)?;
    for l in &due {
        writeln!(
            out,
            "  dial lead {} {} (attempt {})",
            l.id,
            l.phone,
            l.attempts + 1
        )
        .map_err(io)?;
    }
    writeln!(out, "skipped {}:", crate::report::leads(skipped.len())).map_err(io)?;
    for (l, why) in &skipped {
        writeln!(out, "  skip lead {} {}: {why}", l.id, l.phone).map_err(io)?;
    }
    Ok(())
}
