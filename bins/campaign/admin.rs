//! The management commands: create, update, list, show (with the funnel),
//! import, dnc, pause and resume. Synchronous: each is a few store calls.

use std::collections::BTreeMap;
use std::time::Duration;

use callbridge_crm_store::outcome_of;
use callbridge_crm_store::{
    CallingWindow, Campaign, CampaignSettings, CampaignStatus, ImportMode, PhoneNumber,
    SessionFilter, Store, UserId,
};
use jiff::Timestamp;

use crate::cli::{CreateArgs, DncCmd, SettingsArgs, UpdateArgs};
use crate::error::{CampaignError, Result};
use crate::parse::{days_text, hhmm};

/// The campaign called `name`, or a usage error naming it.
pub fn find(store: &Store, name: &str) -> Result<Campaign> {
    store.find_campaign(name)?.ok_or_else(|| {
        CampaignError::Usage(format!("no campaign named `{name}` (see `campaign list`)"))
    })
}

fn read_file(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CampaignError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The user called `name` (names are unique).
fn user_named(store: &Store, name: &str) -> Result<UserId> {
    match store.find_user(name)? {
        Some(u) => Ok(u.id),
        None => Err(CampaignError::Usage(format!(
            "--owner `{name}`: no such user (create it with `agent user add {name} --role agent-operator`)"
        ))),
    }
}

/// Applies the given options onto `s`.
fn apply(store: &Store, s: &mut CampaignSettings, a: &SettingsArgs) -> Result<()> {
    if let Some(o) = &a.owner {
        s.owner = Some(user_named(store, o)?);
    }
    if let Some(p) = &a.prompt_file {
        s.system_prompt = read_file(p)?;
    }
    if let Some(g) = &a.greeting {
        s.greeting = g.clone();
    }
    if a.window.is_some() || a.days.is_some() {
        let (start, end) = a
            .window
            .unwrap_or((s.window.start_minute(), s.window.end_minute()));
        s.window = CallingWindow::new(start, end, a.days.unwrap_or(s.window.days()))
            .map_err(|e| CampaignError::Usage(format!("--window: {e}")))?;
    }
    if let Some(tz) = &a.tz {
        if jiff::tz::db().get(tz).is_err() {
            return Err(CampaignError::Usage(format!(
                "--tz `{tz}`: not an IANA time zone (like Europe/Berlin)"
            )));
        }
        s.time_zone = tz.clone();
    }
    if let Some(n) = a.max_attempts {
        s.retry.max_attempts = n;
    }
    if let Some(n) = a.concurrency {
        s.max_concurrent = n;
    }
    if let Some(n) = a.rate {
        s.calls_per_minute = n;
    }
    let delays = [
        (a.retry_busy, &mut s.retry.busy),
        (a.retry_no_answer, &mut s.retry.no_answer),
        (a.retry_failed, &mut s.retry.failed),
        (a.retry_voicemail, &mut s.retry.voicemail),
    ];
    for (new, slot) in delays {
        if let Some(d) = new {
            *slot = d;
        }
    }
    if let Some(p) = &a.provider {
        s.model_provider = p.clone();
    }
    if let Some(v) = &a.voice {
        s.voice = Some(v.clone());
    }
    if let Some(p) = &a.profile {
        s.profile = (!p.is_empty()).then(|| p.clone());
    }
    Ok(())
}

/// `campaign create`.
pub fn create(store: &mut Store, a: &CreateArgs, now: Timestamp) -> Result<()> {
    if a.settings.prompt_file.is_none() && a.settings.profile.is_none() {
        return Err(CampaignError::Usage(
            "create: --prompt-file or --profile is required (the model's instructions for this campaign)".into(),
        ));
    }
    let mut s = CampaignSettings::new(&a.name, "gemini");
    apply(store, &mut s, &a.settings)?;
    let id = store.create_campaign(&s, now)?;
    let status = if a.paused {
        CampaignStatus::Paused
    } else {
        CampaignStatus::Active
    };
    store.set_campaign_status(id, status, now)?;
    println!("campaign {} created ({status}, id {id})", a.name);
    Ok(())
}

/// `campaign update`.
pub fn update(store: &mut Store, a: &UpdateArgs, now: Timestamp) -> Result<()> {
    let c = find(store, &a.name)?;
    let mut s = c.settings.clone();
    apply(store, &mut s, &a.settings)?;
    if let Some(n) = &a.rename {
        s.name = n.clone();
    }
    store.update_campaign(c.id, &s, now)?;
    println!("campaign {} updated", s.name);
    Ok(())
}

/// `campaign pause` / `resume`.
pub fn set_status(
    store: &mut Store,
    name: &str,
    status: CampaignStatus,
    now: Timestamp,
) -> Result<()> {
    let c = find(store, name)?;
    store.set_campaign_status(c.id, status, now)?;
    println!("campaign {name} {status}");
    Ok(())
}

/// `campaign list`.
pub fn list(store: &Store) -> Result<()> {
    println!(
        "{:<6} {:<24} {:<8} {:>6} {:>8} leads",
        "id", "name", "status", "conc", "rate/min"
    );
    for c in store.list_campaigns()? {
        let leads: u64 = store.lead_counts(c.id)?.iter().map(|(_, n)| n).sum();
        println!(
            "{:<6} {:<24} {:<8} {:>6} {:>8} {leads}",
            c.id.to_string(),
            c.settings.name,
            c.status.as_str(),
            c.settings.max_concurrent,
            c.settings.calls_per_minute
        );
    }
    Ok(())
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The funnel of a campaign's calls.
#[derive(Debug, Default)]
pub struct Funnel {
    /// Calls by outcome (`live` for calls not ended).
    pub by_outcome: BTreeMap<String, u64>,
    /// Calls made.
    pub calls: u64,
    /// Calls answered.
    pub answered: u64,
    /// Total answered talk time.
    pub talk: Duration,
}

/// Counts a campaign's calls (every session of the campaign, in pages).
pub fn funnel(store: &Store, c: &Campaign) -> Result<Funnel> {
    let mut f = Funnel::default();
    let filter = SessionFilter {
        campaign: Some(c.id),
        ..SessionFilter::default()
    };
    let mut cursor = None;
    loop {
        let page = store.list_sessions(&filter, callbridge_crm_store::MAX_PAGE, cursor)?;
        for s in &page.items {
            f.calls += 1;
            let o = outcome_of(s.state, s.end_reason, s.sip_status).map_or("live", |o| o.as_str());
            *f.by_outcome.entry(o.to_owned()).or_default() += 1;
            if s.answered_at.is_some() {
                f.answered += 1;
                f.talk += s.duration.unwrap_or_default();
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(f)
}

/// `campaign show`.
pub fn show(store: &Store, name: &str) -> Result<()> {
    let c = find(store, name)?;
    let s = &c.settings;
    println!("campaign {} (id {}), {}", s.name, c.id, c.status);
    if let Some(o) = s.owner {
        let name = store.get_user(o).map(|u| u.name.as_str().to_owned());
        println!("  owner       {}", name.unwrap_or_else(|_| o.to_string()));
    }
    println!(
        "  window      {}-{} {} ({} for leads without a zone)",
        hhmm(s.window.start_minute()),
        hhmm(s.window.end_minute()),
        days_text(s.window.days()),
        s.time_zone
    );
    println!(
        "  dialling    {} at once, {}/min, {} attempts",
        s.max_concurrent, s.calls_per_minute, s.retry.max_attempts
    );
    println!(
        "  retry after busy {}, no answer {}, failed {}, voicemail {}",
        human(s.retry.busy),
        human(s.retry.no_answer),
        human(s.retry.failed),
        human(s.retry.voicemail)
    );
    println!(
        "  model       {}{}",
        s.model_provider,
        s.voice
            .as_deref()
            .map(|v| format!(" voice {v}"))
            .unwrap_or_default()
    );
    println!(
        "  prompt      {} bytes; greeting: {}",
        s.system_prompt.len(),
        s.greeting
    );
    println!("leads by status:");
    for (status, n) in store.lead_counts(c.id)? {
        println!("  {:<12} {n}", status.as_str());
    }
    let f = funnel(store, &c)?;
    println!("calls by outcome ({} calls):", f.calls);
    for (o, n) in &f.by_outcome {
        println!("  {o:<12} {n}");
    }
    if f.calls > 0 {
        println!(
            "answer rate {:.1}% ({} of {})",
            f.answered as f64 * 100.0 / f.calls as f64,
            f.answered,
            f.calls
        );
    }
    if f.answered > 0 {
        let avg = f.talk / u32::try_from(f.answered).unwrap_or(u32::MAX);
        println!(
            "average duration {:.1} s (answered calls)",
            avg.as_secs_f64()
        );
    }
    Ok(())
}

/// `campaign import`.
pub fn import(store: &mut Store, name: &str, file: &std::path::Path, now: Timestamp) -> Result<()> {
    let c = find(store, name)?;
    let f = std::fs::File::open(file).map_err(|source| CampaignError::Io {
        path: file.display().to_string(),
        source,
    })?;
    match store.import_leads_csv(
        c.id,
        std::io::BufReader::new(f),
        ImportMode::AllOrNothing,
        now,
    ) {
        Ok(r) => {
            println!(
                "{}: {} rows, {} new leads, {} merged, {} on the DNC list (stored do-not-call)",
                file.display(),
                r.rows,
                r.inserted,
                r.merged,
                r.do_not_call
            );
            Ok(())
        }
        Err(callbridge_crm_store::Error::ImportRejected { rows, total, .. }) => {
            for e in &rows {
                eprintln!("{}:{}: {}: {}", file.display(), e.line, e.field, e.reason);
            }
            Err(CampaignError::Usage(format!(
                "{}: {total} bad rows; nothing imported",
                file.display(),
            )))
        }
        Err(e) => Err(e.into()),
    }
}

fn number(s: &str) -> Result<PhoneNumber> {
    PhoneNumber::parse(s).map_err(|e| CampaignError::Usage(format!("number: {e}")))
}

/// `campaign dnc ...`.
pub fn dnc(store: &mut Store, cmd: &DncCmd, now: Timestamp) -> Result<()> {
    match cmd {
        DncCmd::Add { number: n, reason } => {
            let p = number(n)?;
            let marked = store.add_dnc(&p, reason, now)?;
            println!("{p} on the do-not-call list ({marked} leads marked do-not-call)");
        }
        DncCmd::Remove { number: n } => {
            let p = number(n)?;
            store.remove_dnc(&p)?;
            println!("{p} off the do-not-call list (its leads stay do-not-call)");
        }
        DncCmd::List { show_numbers } => {
            let mut after: Option<PhoneNumber> = None;
            loop {
                let page = store.list_dnc(after.as_ref(), 1000)?;
                for e in &page {
                    // `Display` masks the number, as in the run lines.
                    let phone = if *show_numbers {
                        e.phone.as_str().to_owned()
                    } else {
                        e.phone.to_string()
                    };
                    println!("{phone}\t{}\t{}", e.added_at, e.reason);
                }
                match page.last() {
                    Some(last) if page.len() == 1000 => after = Some(last.phone.clone()),
                    _ => break,
                }
            }
        }
    }
    Ok(())
}
