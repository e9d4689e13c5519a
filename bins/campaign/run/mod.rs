//! `campaign run`: the cron entry point.
//!
//! 1. Takes the campaign's lock; a run already holding it means this one
//!    prints one line and exits 0. On SQLite an OS lock on a file beside
//!    the database (`lock`); on PostgreSQL, where dialers run on several
//!    machines, the store's advisory lock of the campaign
//!    (`Store::try_lock_campaign`), held by the run's store connection.
//! 2. Reconciles what a killed run left (`reconcile`).
//! 3. Claims due leads one at a time, just before dialling, so at most
//!    `concurrency` calls are live and at most `rate` calls start per
//!    minute; each claimed lead runs as a task (`call`) that places the
//!    call, follows it and records the outcome.
//! 4. Stops claiming when nothing is due (window closed, all done), when
//!    the campaign is paused, at `--max-duration`, on SIGTERM/SIGINT, or
//!    when the agent stayed unavailable for `--agent-wait`; calls in
//!    progress always finish. A second signal exits at once (the next run
//!    reconciles).
//!
//! Exit status: 0 when everything went through or there was nothing to
//! do, 1 for errors (agent down too long, token refused, store errors), 2
//! for bad usage.

mod agents;
mod call;
mod dry_run;
mod lock;
mod progress;
mod reconcile;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::{CampaignStatus, ClaimedLead, Entity, Lead, LeadStatus, Role, StoreAt};
use jiff::Timestamp;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::admin;
use crate::cli::RunArgs;
use crate::db::Db;
use crate::error::{CampaignError, Result};
use agents::Agents;
use call::{CallEnd, Ctx};
use callbridge_api::AgentClient;
use progress::Progress;

/// Longest pause between two tries while the agent is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `campaign run` (see the module docs).
pub fn main(at: &StoreAt, args: &RunArgs) -> Result<()> {
    let mut store = at.open()?;
    let c = admin::find(&store, &args.name)?;
    if args.dry_run {
        return dry_run::print(&store, &c, Timestamp::now(), &mut std::io::stdout().lock());
    }
    let token = std::env::var(&args.token_env).map_err(|_| {
        CampaignError::Usage(format!(
            "the API token: environment variable {} is not set (see --token-env)",
            args.token_env
        ))
    })?;
    // The agent checks the same: a non-admin token dials only campaigns
    // its user owns. Said here, before anything is claimed.
    let user = store.verify_token(&token, Timestamp::now()).map_err(|e| match e {
        callbridge_crm_store::Error::Unauthorized => CampaignError::Usage(format!(
            "the token in {} is not known to the store, or expired or revoked (create one with `agent user add NAME --role agent-operator`, or `agent user rotate NAME`)",
            args.token_env
        )),
        e => e.into(),
    })?;
    match user.role {
        Role::Admin => {}
        Role::AgentOperator if c.settings.owner == Some(user.id) => {}
        Role::AgentOperator => {
            return Err(CampaignError::Usage(format!(
                "campaign {} is not owned by {}, the user of the token in {}: \
                 `campaign update {} --owner {}`, or use an admin token",
                c.settings.name,
                user.name.as_str(),
                args.token_env,
                c.settings.name,
                user.name.as_str()
            )));
        }
        _ => {
            return Err(CampaignError::Usage(format!(
                "the token in {} belongs to a {} user; dialling needs agent-operator or admin",
                args.token_env, user.role
            )));
        }
    }
    let agents = Agents::new(
        args.agent
            .iter()
            .map(|url| AgentClient::with_roots(url, token.clone(), args.tls_roots))
            .collect::<std::result::Result<_, _>>()?,
    );
    let _lock = match at.sqlite_path() {
        Some(db_path) => {
            let lock_dir = match &args.lock_dir {
                Some(d) => d.clone(),
                None => db_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            };
            match lock::try_lock(&lock_dir, c.id.0)? {
                lock::Lock::Held(f) => Some(f),
                lock::Lock::Busy(p) => {
                    println!(
                        "campaign {}: another run holds {}; leaving it to that run",
                        c.settings.name,
                        p.display()
                    );
                    return Ok(());
                }
            }
        }
        // Held by `store`'s connection, which the run keeps to its end.
        None if store.try_lock_campaign(c.id)? => None,
        None => {
            println!(
                "campaign {}: another run holds the campaign's lock in the store; \
                 leaving it to that run",
                c.settings.name
            );
            return Ok(());
        }
    };
    let out = Progress::new();
    let rec = reconcile::reconcile(&mut store, c.id, Timestamp::now())?;
    for l in &rec.released {
        out.line(&format!(
            "lead {} {}: a killed run claimed it but never dialled; released",
            l.id, l.phone
        ));
    }
    for (l, s, o) in &rec.recorded {
        out.line(&format!(
            "lead {} {}: call {s} of a killed run ended {o}; recorded",
            l.id, l.phone
        ));
    }
    if rec.foreign > 0 {
        out.line(&format!(
            "campaign {}: {} leads are claimed by another running process; left alone",
            c.settings.name, rec.foreign
        ));
    }
    // The status as of now (pause/resume may have changed it).
    let c = admin::find(&store, &args.name)?;
    if c.status != CampaignStatus::Active && rec.adopted.is_empty() {
        tracing::info!(campaign = %c.settings.name, status = %c.status, "not active: nothing to do");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CampaignError::Failed(format!("tokio runtime: {e}")))?;
    let ctx = Ctx {
        db: Db::new(store),
        agents,
        campaign: Arc::new(c),
        poll: args.poll,
        agent_wait: args.agent_wait,
        from: args.from.clone(),
        amd: args.amd,
        retry_voicemail_left: args.retry_after_voicemail_left,
    };
    let reconciled = rec.released.len() + rec.recorded.len();
    rt.block_on(Runner::new(ctx, args, out, reconciled).run(rec.adopted))
}

/// How the agent's unavailability is handled: exponential pauses (or its
/// `Retry-After`), given up after `--agent-wait`.
#[derive(Debug, Default)]
struct Backoff {
    until: Option<Instant>,
    since: Option<Instant>,
    step: Duration,
    last: String,
}

impl Backoff {
    fn failed(&mut self, retry_after: Option<Duration>, why: String) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.step = (self.step * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
        self.until = Some(now + retry_after.unwrap_or(self.step).min(MAX_BACKOFF));
        self.last = why;
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    fn gave_up(&self, wait: Duration) -> bool {
        self.since.is_some_and(|s| s.elapsed() >= wait)
    }
}

/// The run's counters.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    by_outcome: BTreeMap<&'static str, u64>,
    released: u64,
    refused: u64,
    abandoned: u64,
    store_errors: u64,
    fatal: Option<String>,
    gave_up: Option<String>,
}

struct Runner {
    ctx: Ctx,
    out: Progress,
    period: Duration,
    concurrency: usize,
    deadline: Option<Instant>,
    agent_wait: Duration,
    reconciled: usize,
    tally: Tally,
    backoff: Backoff,
    started: Instant,
}

fn line_for(end: &CallEnd) -> String {
    match end {
        CallEnd::Recorded {
            lead,
            session,
            outcome,
            result,
            duration,
        } => {
            let talk = duration
                .map(|d| format!(" after {:.1} s", d.as_secs_f64()))
                .unwrap_or_default();
            let next = match result.status {
                LeadStatus::Retry => format!("retry at {}", result.next_attempt_at),
                s => s.to_string(),
            };
            format!(
                "lead {} {}: {outcome}{talk} -> {next} (attempt {}, call {session})",
                lead.id, lead.phone, result.attempts
            )
        }
        CallEnd::Released { lead, why, .. } => {
            format!(
                "lead {} {}: not placed ({why}); released",
                lead.id, lead.phone
            )
        }
        CallEnd::Refused { lead, why } => format!(
            "lead {} {}: the agent refused the call ({why}); recorded as failed",
            lead.id, lead.phone
        ),
        CallEnd::Fatal { why } => format!("stopping: {why}"),
        CallEnd::Abandoned { lead, why } => format!(
            "lead {} {}: lost track of the call ({why}); left for the next run",
            lead.id, lead.phone
        ),
        CallEnd::Store { lead, why } => {
            format!("lead {} {}: store error: {why}", lead.id, lead.phone)
        }
    }
}

impl Runner {
    fn new(ctx: Ctx, args: &RunArgs, out: Progress, reconciled: usize) -> Self {
        let s = &ctx.campaign.settings;
        Runner {
            period: Duration::from_secs(60) / s.calls_per_minute.max(1),
            concurrency: usize::try_from(s.max_concurrent)
                .unwrap_or(usize::MAX)
                .max(1),
            deadline: args.max_duration.map(|d| Instant::now() + d),
            agent_wait: args.agent_wait,
            ctx,
            out,
            reconciled,
            tally: Tally::default(),
            backoff: Backoff::default(),
            started: Instant::now(),
        }
    }

    fn name(&self) -> &str {
        &self.ctx.campaign.settings.name
    }

    async fn remaining(&self) -> u64 {
        let id = self.ctx.campaign.id;
        self.ctx
            .db
            .call(move |s| s.lead_counts(id))
            .await
            .map(|v| {
                v.iter()
                    .filter(|(s, _)| matches!(s, LeadStatus::Pending | LeadStatus::Retry))
                    .map(|(_, n)| n)
                    .sum()
            })
            .unwrap_or(0)
    }

    fn account(&mut self, end: &CallEnd) {
        let t = &mut self.tally;
        match end {
            CallEnd::Recorded { outcome, .. } => {
                t.calls += 1;
                *t.by_outcome.entry(outcome.as_str()).or_default() += 1;
                self.backoff.succeeded();
            }
            CallEnd::Released {
                retry_after, why, ..
            } => {
                t.released += 1;
                self.backoff.failed(*retry_after, why.clone());
            }
            CallEnd::Refused { .. } => t.refused += 1,
            CallEnd::Fatal { why } => t.fatal = Some(why.clone()),
            CallEnd::Abandoned { .. } => t.abandoned += 1,
            CallEnd::Store { .. } => t.store_errors += 1,
        }
    }

    /// Whether new leads may be claimed; records why not once it stops.
    fn may_claim(&mut self) -> bool {
        if self.tally.fatal.is_some() || self.tally.gave_up.is_some() {
            return false;
        }
        if self.backoff.gave_up(self.agent_wait) {
            self.tally.gave_up = Some(format!(
                "{} was unavailable for {} s (last: {}); its leads were released without using an attempt",
                self.ctx.agents.describe(),
                self.agent_wait.as_secs(),
                self.backoff.last
            ));
            return false;
        }
        self.deadline.is_none_or(|d| Instant::now() < d)
    }

    async fn claim(&mut self) -> Result<Option<ClaimedLead>> {
        let id = self.ctx.campaign.id;
        match self
            .ctx
            .db
            .call(move |s| s.claim_due_leads(id, Timestamp::now(), 1))
            .await
        {
            Ok(mut v) => Ok(v.pop()),
            Err(CampaignError::Store(callbridge_crm_store::Error::Conflict {
                entity: Entity::Campaign,
                ..
            })) => {
                self.out
                    .line(&format!("campaign {}: paused; no new calls", self.name()));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn run(mut self, adopted: Vec<(Lead, callbridge_crm_store::SessionId)>) -> Result<()> {
        let mut tasks: JoinSet<CallEnd> = JoinSet::new();
        for (lead, session) in adopted {
            self.out.line(&format!(
                "lead {} {}: following call {session} of a killed run",
                lead.id, lead.phone
            ));
            tasks.spawn(call::follow(self.ctx.clone(), lead, session, None));
        }
        let (sig_tx, mut sig_rx) = tokio::sync::mpsc::channel::<&'static str>(4);
        tokio::spawn(signals(sig_tx));
        let mut claiming = true;
        // Nothing was due at the last claim: try again only after a call ends.
        let mut idle = false;
        let mut next_dial = Instant::now();
        let mut stopped_by_signal = false;
        let mut fatal: Option<CampaignError> = None;
        loop {
            if claiming && !self.may_claim() {
                claiming = false;
            }
            if tasks.is_empty() && (!claiming || idle) {
                break;
            }
            let wake = match self.backoff.until {
                Some(b) if b > next_dial => b,
                _ => next_dial,
            };
            // Wake at the deadline too, so a run past it stops at once.
            let wake = self.deadline.map_or(wake, |d| wake.min(d));
            let can_dial = claiming && !idle && tasks.len() < self.concurrency;
            tokio::select! {
                Some(sig) = sig_rx.recv() => {
                    if stopped_by_signal {
                        self.out.line(&format!("{sig} again: exiting now; the next run reconciles the live calls"));
                        self.out.finish();
                        std::process::exit(130);
                    }
                    stopped_by_signal = true;
                    claiming = false;
                    self.out.line(&format!("{sig}: no new calls; waiting for {} live calls (again to exit now)", tasks.len()));
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    idle = false;
                    match done {
                        Ok(end) => {
                            self.account(&end);
                            self.out.line(&line_for(&end));
                        }
                        Err(e) => {
                            self.tally.store_errors += 1;
                            self.out.line(&format!("a call task failed: {e}"));
                        }
                    }
                    let remaining = self.remaining().await;
                    self.out.update(tasks.len(), self.tally.calls, remaining);
                }
                () = tokio::time::sleep_until(wake), if can_dial => {
                    // The deadline or the agent wait may have passed while asleep.
                    if !self.may_claim() {
                        claiming = false;
                        continue;
                    }
                    match self.claim().await {
                        Ok(Some(lead)) => {
                            next_dial = Instant::now() + self.period;
                            tasks.spawn(call::attempt(self.ctx.clone(), lead));
                            let remaining = self.remaining().await;
                            self.out.update(tasks.len(), self.tally.calls, remaining);
                        }
                        Ok(None) => idle = true,
                        Err(e) => {
                            self.out.line(&format!("claiming leads: {e}"));
                            fatal = Some(e);
                            claiming = false;
                        }
                    }
                }
            }
        }
        self.out.finish();
        self.summary();
        if let Some(e) = fatal {
            return Err(e);
        }
        if let Some(why) = self.tally.fatal.take() {
            return Err(CampaignError::Failed(format!(
                "campaign {}: {why}",
                self.name()
            )));
        }
        if let Some(why) = self.tally.gave_up.take() {
            return Err(CampaignError::Failed(format!(
                "campaign {}: {why}",
                self.name()
            )));
        }
        let t = &self.tally;
        let errors = t.refused + t.abandoned + t.store_errors;
        if errors > 0 {
            return Err(CampaignError::Failed(format!(
                "campaign {}: {errors} calls went wrong (see above)",
                self.name()
            )));
        }
        Ok(())
    }

    fn summary(&self) {
        let t = &self.tally;
        let touched = t.calls + t.released + t.refused + t.abandoned + t.store_errors;
        if touched == 0 && self.reconciled == 0 && t.fatal.is_none() && t.gave_up.is_none() {
            // Nothing to do: quiet, so cron sends no mail.
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let outcomes: Vec<String> = t
            .by_outcome
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        let mut s = format!(
            "campaign {}: {} calls in {secs:.1} s ({:.1}/min)",
            self.name(),
            t.calls,
            if secs > 0.0 {
                t.calls as f64 * 60.0 / secs
            } else {
                0.0
            }
        );
        if !outcomes.is_empty() {
            s.push_str(&format!(": {}", outcomes.join(", ")));
        }
        for (n, what) in [
            (t.released, "not placed (agent unavailable; released)"),
            (t.refused, "refused by the agent"),
            (t.abandoned, "lost track of"),
            (t.store_errors, "store errors"),
        ] {
            if n > 0 {
                s.push_str(&format!("; {n} {what}"));
            }
        }
        if self.reconciled > 0 {
            s.push_str(&format!(
                "; {} reconciled from a killed run",
                self.reconciled
            ));
        }
        self.out.line(&s);
    }
}

/// Forwards SIGTERM and SIGINT (each time) to the run loop.
async fn signals(tx: tokio::sync::mpsc::Sender<&'static str>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals");
        return;
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if tx.send(name).await.is_err() {
            return;
        }
    }
}
