//! Lead import from CSV.
//!
//! The file has a header row. The `phone` column (also accepted: `number`,
//! `phone_number`) is required and must be E.164 (separators are removed,
//! see [`PhoneNumber::parse`]); `name` and `time_zone` (also `timezone`,
//! `tz`, an IANA name) are optional; every other non-empty column goes into
//! the lead's JSON fields as a string. Header names are matched without
//! regard to case.
//!
//! Every row is validated before anything is written; every bad row is
//! reported with its line number and reason. In [`ImportMode::AllOrNothing`]
//! one bad row refuses the whole file ([`Error::ImportRejected`]); in
//! [`ImportMode::GoodRowsOnly`] the good rows are imported and the bad ones
//! reported. The write is one transaction either way.
//!
//! Duplicates are merged, never doubled: rows with the same number in the
//! file, and a row whose number is already a lead of the campaign, become
//! one lead (later non-empty name and time zone win; fields are merged,
//! later keys win; status and attempts are kept).
//!
//! DNC decision: numbers on the do-not-call list are imported but flagged
//! `do-not-call` (counted in [`ImportReport::do_not_call`]), so the operator
//! sees them in the campaign and in reports, and the dialer never claims
//! them.

use std::collections::HashMap;
use std::io::Read;

use jiff::Timestamp;
use rusqlite::params;

use crate::db::{Dialect, Optional};

pub use crate::error::RowError;
use crate::error::{Entity, Error, Result};
use crate::leads::{NewLead, fields_json, insert_lead, is_dnc_in};
use crate::model::{CampaignId, PersonName, PhoneNumber};
use crate::policy::zone;
use crate::store::Store;
use crate::stored::ms;

/// Most bad rows listed in a report or error (the total is always given).
pub const MAX_REPORTED_ROWS: usize = 1_000;
/// Most data rows accepted in one file.
pub const MAX_ROWS: usize = 1_000_000;

/// What to do when some rows are bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Import nothing unless every row is good.
    #[default]
    AllOrNothing,
    /// Import the good rows and report the bad ones.
    GoodRowsOnly,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: usize,
    /// New leads.
    pub inserted: usize,
    /// Rows merged into an existing lead (in the file or the campaign).
    pub merged: usize,
    /// New leads stored as `do-not-call` because their number is on the DNC list.
    pub do_not_call: usize,
    /// Bad rows (at most [`MAX_REPORTED_ROWS`]).
    pub rejected: Vec<RowError>,
    /// How many rows were bad.
    pub rejected_total: usize,
}

enum Col {
    Phone,
    Name,
    Tz,
    Field(String),
}

fn column(h: &str) -> Col {
    match h.trim().to_ascii_lowercase().as_str() {
        "phone" | "number" | "phone_number" => Col::Phone,
        "name" => Col::Name,
        "time_zone" | "timezone" | "tz" => Col::Tz,
        _ => Col::Field(h.trim().to_owned()),
    }
}

fn reason_of(e: Error) -> &'static str {
    match e {
        Error::InvalidInput { reason, .. } => reason,
        _ => "invalid",
    }
}

/// Validates one record into a lead.
fn parse_row(cols: &[Col], rec: &csv::StringRecord) -> std::result::Result<NewLead, RowError> {
    let line = rec.position().map_or(0, csv::Position::line);
    let err = |field, reason| RowError {
        line,
        field,
        reason,
    };
    let mut phone = None;
    let mut lead = NewLead::new(PhoneNumber::from_db(String::new()));
    for (col, v) in cols.iter().zip(rec.iter()) {
        let v = v.trim();
        match col {
            Col::Phone => {
                phone = Some(PhoneNumber::parse(v).map_err(|e| err("phone", reason_of(e)))?)
            }
            Col::Name if !v.is_empty() => {
                lead.name = Some(PersonName::new(v).map_err(|e| err("name", reason_of(e)))?)
            }
            Col::Tz if !v.is_empty() => {
                zone(v).map_err(|e| err("time_zone", reason_of(e)))?;
                lead.time_zone = Some(v.to_owned());
            }
            Col::Field(k) if !v.is_empty() => {
                lead.fields
                    .insert(k.clone(), serde_json::Value::String(v.to_owned()));
            }
            _ => {}
        }
    }
    lead.phone = phone.ok_or(err("phone", "missing"))?;
    fields_json(&lead.fields).map_err(|e| err("fields", reason_of(e)))?;
    Ok(lead)
}

/// Merges `later` into `earlier` (later non-empty values win).
fn merge(earlier: &mut NewLead, later: NewLead) {
    if later.name.is_some() {
        earlier.name = later.name;
    }
    if later.time_zone.is_some() {
        earlier.time_zone = later.time_zone;
    }
    earlier.fields.extend(later.fields);
}

/// Reads `inner` with every CRLF turned into LF. The csv crate numbers the
/// records of a CRLF file one line short (a record ends at the `\r`, and
/// the line count moves at the `\n` that starts the next one), and a
/// rejected row's line number is how the operator finds it: CRLF is what
/// browsers' text areas and spreadsheet exports send. A `\r` that ends one
/// read is held back until the next shows whether a `\n` follows; exact
/// for reads of two bytes or more (csv's own buffered reader asks for
/// 8 KiB).
struct LfLines<R> {
    inner: R,
    held_cr: bool,
}

impl<R: Read> LfLines<R> {
    fn new(inner: R) -> Self {
        LfLines {
            inner,
            held_cr: false,
        }
    }
}

impl<R: Read> Read for LfLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if buf.len() < 2 {
                return self.inner.read(buf);
            }
            let start = usize::from(self.held_cr);
            if self.held_cr {
                buf[0] = b'\r';
            }
            let n = self.inner.read(&mut buf[start..])?;
            self.held_cr = false;
            if n == 0 {
                return Ok(start);
            }
            let len = start + n;
            let mut w = 0;
            for i in 0..len {
                let b = buf[i];
                if b == b'\r' {
                    match buf.get(i + 1).filter(|_| i + 1 < len) {
                        Some(b'\n') => continue,
                        None => {
                            self.held_cr = true;
                            continue;
                        }
                        Some(_) => {}
                    }
                }
                buf[w] = b;
                w += 1;
            }
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

impl Store {
    /// Imports leads into a campaign from CSV (see the module docs).
    pub fn import_leads_csv<R: Read>(
        &mut self,
        campaign: CampaignId,
        input: R,
        mode: ImportMode,
        now: Timestamp,
    ) -> Result<ImportReport> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(LfLines::new(input));
        let headers = rdr.headers().map_err(|_| Error::InvalidInput {
            field: "header",
            reason: "unreadable CSV header row",
        })?;
        let cols: Vec<Col> = headers.iter().map(column).collect();
        if !cols.iter().any(|c| matches!(c, Col::Phone)) {
            return Err(Error::InvalidInput {
                field: "header",
                reason: "no phone column",
            });
        }
        let mut report = ImportReport::default();
        let mut good: Vec<NewLead> = Vec::new();
        let mut by_phone: HashMap<String, usize> = HashMap::new();
        let reject = |report: &mut ImportReport, e: RowError| {
            report.rejected_total += 1;
            if report.rejected.len() < MAX_REPORTED_ROWS {
                report.rejected.push(e);
            }
        };
        let mut rec = csv::StringRecord::new();
        loop {
            let line = rdr.position().line();
            match rdr.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    report.rows += 1;
                    let line = e.position().map_or(line, csv::Position::line);
                    let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                    reject(
                        &mut report,
                        RowError {
                            line,
                            field: "row",
                            reason: if io {
                                "read error"
                            } else {
                                "malformed CSV record"
                            },
                        },
                    );
                    if io {
                        break;
                    }
                    continue;
                }
            }
            report.rows += 1;
            if report.rows > MAX_ROWS {
                return Err(Error::InvalidInput {
                    field: "csv",
                    reason: "more than 1,000,000 rows",
                });
            }
            match parse_row(&cols, &rec) {
                Ok(lead) => match by_phone.get(lead.phone.as_str()) {
                    Some(&i) => {
                        merge(&mut good[i], lead);
                        report.merged += 1;
                    }
                    None => {
                        by_phone.insert(lead.phone.as_str().to_owned(), good.len());
                        good.push(lead);
                    }
                },
                Err(e) => reject(&mut report, e),
            }
        }
        if report.rejected_total > 0 && mode == ImportMode::AllOrNothing {
            return Err(Error::ImportRejected {
                rows: report.rejected,
                total: report.rejected_total,
            });
        }
        let tx = self.write_tx()?;
        if tx
            .query_row(
                "SELECT 1 FROM campaigns WHERE id = ?1",
                params![campaign.0],
                |_| Ok::<_, crate::db::DbErr>(()),
            )
            .optional()?
            .is_none()
        {
            return Err(Error::NotFound {
                entity: Entity::Campaign,
                id: campaign.to_string(),
            });
        }
        // Merging fields: SQLite's `json_patch`; on PostgreSQL jsonb's `||`
        // (the same for the flat string fields a CSV row carries).
        let merge = match tx.dialect() {
            Dialect::Sqlite => "json_patch(fields, ?4)",
            Dialect::Postgres => "(CAST(fields AS jsonb) || CAST(?4 AS jsonb))::text",
        };
        let merge_sql = format!(
            "UPDATE leads SET name = COALESCE(?2, name), \
             time_zone = COALESCE(?3, time_zone), fields = {merge}, \
             status = CASE WHEN ?5 AND status IN ('pending', 'retry') \
                           THEN 'do-not-call' ELSE status END, \
             updated_at = ?6 WHERE id = ?1"
        );
        for lead in &good {
            let fields = fields_json(&lead.fields)?;
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM leads WHERE campaign_id = ?1 AND phone = ?2",
                    params![campaign.0, lead.phone.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            match existing {
                Some(id) => {
                    let dnc = is_dnc_in(&tx, &lead.phone)?;
                    tx.execute(
                        &merge_sql,
                        params![
                            id,
                            lead.name.as_ref().map(PersonName::as_str),
                            lead.time_zone,
                            fields,
                            dnc,
                            ms(now)
                        ],
                    )?;
                    report.merged += 1;
                }
                None => {
                    let (_, dnc) = insert_lead(&tx, campaign, lead, &fields, now)?;
                    report.inserted += 1;
                    report.do_not_call += usize::from(dnc);
                }
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per read.
    struct Drip<'a>(&'a [u8]);

    impl Read for Drip<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !buf.is_empty() => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn crlf_becomes_lf_and_a_lone_cr_stays_across_read_boundaries() {
        let input = b"a,b\r\n\"x\ry\",2\r\n3\r";
        for drip in [false, true] {
            let mut out = Vec::new();
            let mut r: Box<dyn Read> = if drip {
                Box::new(LfLines::new(Drip(input)))
            } else {
                Box::new(LfLines::new(&input[..]))
            };
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, b"a,b\n\"x\ry\",2\n3\r", "drip {drip}");
        }
    }
}
