//! Call sessions: the row written when a call starts (inbound or outbound,
//! before any audio flows), its forward-only state changes, transcript turns
//! and audit events appended in batches (one transaction per batch), the
//! idempotent finish (the first end wins), filtered and paged listing, and
//! loading one session with its transcript and events.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::params;
use rusqlite::types::Value;

use crate::claims::check_claim_held;
use crate::db::{Begin, Optional, Row, Tx};
use crate::error::{Entity, Error, Result, conflict_on_constraint};
use crate::model::{
    AmdVerdict, CampaignId, Direction, EndReason, EventKind, LeadId, MachineEnd, Party, Sensitive,
    SessionId, SessionState, Speaker, Transport, UserId,
};
use crate::session_types::{
    AmdResult, Cursor, Event, Finish, FinishResult, NewEvent, NewSession, NewTurn, Session,
    SessionFilter, SessionOrder, SessionPage, SessionRecord, SessionUpdate, TokenSplit, Turn,
    Usage,
};
use crate::store::Store;
use crate::stored::{ms, to_i64, to_u64, ts, ts_opt};

/// Most turns or events accepted in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Longest turn text, summary or event detail, in bytes.
pub const MAX_TEXT: usize = 256 * 1024;
/// Most sessions returned by one page.
pub const MAX_PAGE: u32 = 1_000;

pub(crate) const SESSION_COLS: &str = "id, direction, campaign_id, lead_id, owner, from_number, to_number, \
     sip_call_id, state, end_reason, sip_status, model_provider, model, created_at, answered_at, \
     ended_at, duration_ms, recording_path, recording_bytes, summary, input_tokens, \
     output_tokens, audio_ms, transport, node, profile, sip_headers, amd_verdict, amd_decided_ms, \
     amd_machine_end, input_audio_tokens, input_text_tokens, output_audio_tokens, \
     output_text_tokens, summary_input_tokens, summary_output_tokens";

/// Most SIP headers kept on one session.
pub const MAX_SIP_HEADERS: usize = 32;
/// Longest kept header name or value, in bytes.
pub const MAX_SIP_HEADER_LEN: usize = 1024;

/// The kept headers as stored: a JSON object (`None`: none kept).
fn headers_to_db(h: &[(String, String)]) -> Result<Option<String>> {
    if h.is_empty() {
        return Ok(None);
    }
    if h.len() > MAX_SIP_HEADERS
        || h.iter()
            .any(|(k, v)| k.len() > MAX_SIP_HEADER_LEN || v.len() > MAX_SIP_HEADER_LEN)
    {
        return Err(Error::InvalidInput {
            field: "sip_headers",
            reason: "at most 32 headers of at most 1 KiB each",
        });
    }
    let map: serde_json::Map<String, serde_json::Value> = h
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(Some(serde_json::Value::Object(map).to_string()))
}

fn headers_from_db(v: Option<String>) -> Result<Vec<(String, String)>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let corrupt = || Error::Corrupt {
        what: "sip_headers",
    };
    match serde_json::from_str::<serde_json::Value>(&v).map_err(|_| corrupt())? {
        serde_json::Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                _ => Err(corrupt()),
            })
            .collect(),
        _ => Err(corrupt()),
    }
}

fn opt_u64(v: Option<i64>, what: &'static str) -> Result<Option<u64>> {
    v.map(|v| to_u64(v, what)).transpose()
}

pub(crate) fn session_from_row(r: &Row<'_>) -> Result<Session> {
    let id: String = r.get(0)?;
    Ok(Session {
        id: id
            .parse()
            .map_err(|_| Error::Corrupt { what: "session id" })?,
        direction: Direction::from_db(&r.get::<String>(1)?)?,
        transport: Transport::from_db(&r.get::<String>(23)?)?,
        campaign: r.get::<Option<i64>>(2)?.map(CampaignId),
        lead: r.get::<Option<i64>>(3)?.map(LeadId),
        owner: r.get::<Option<i64>>(4)?.map(UserId),
        from: r.get::<Option<String>>(5)?.map(Party::from_db),
        to: r.get::<Option<String>>(6)?.map(Party::from_db),
        sip_call_id: r.get(7)?,
        state: SessionState::from_db(&r.get::<String>(8)?)?,
        end_reason: r
            .get::<Option<String>>(9)?
            .map(|s| EndReason::from_db(&s))
            .transpose()?,
        sip_status: r
            .get::<Option<i64>>(10)?
            .map(|v| u16::try_from(v).map_err(|_| Error::Corrupt { what: "sip_status" }))
            .transpose()?,
        model_provider: r.get(11)?,
        model: r.get(12)?,
        created_at: ts(r.get(13)?)?,
        answered_at: ts_opt(r.get(14)?)?,
        ended_at: ts_opt(r.get(15)?)?,
        duration: opt_u64(r.get(16)?, "duration_ms")?.map(Duration::from_millis),
        recording_path: r.get::<Option<String>>(17)?.map(PathBuf::from),
        recording_bytes: opt_u64(r.get(18)?, "recording_bytes")?,
        summary: r.get::<Option<String>>(19)?.map(Sensitive::new),
        usage: Usage {
            input_tokens: opt_u64(r.get(20)?, "input_tokens")?,
            output_tokens: opt_u64(r.get(21)?, "output_tokens")?,
            audio_ms: opt_u64(r.get(22)?, "audio_ms")?,
            split: split_from_row(r)?,
            summary_input_tokens: opt_u64(r.get(34)?, "summary_input_tokens")?,
            summary_output_tokens: opt_u64(r.get(35)?, "summary_output_tokens")?,
        },
        node: r
            .get::<Option<String>>(24)?
            .map(|n| crate::NodeId::new(&n).map_err(|_| Error::Corrupt { what: "node" }))
            .transpose()?,
        profile: r.get(25)?,
        sip_headers: headers_from_db(r.get(26)?)?,
        amd: amd_from_row(r)?,
    })
}

/// The token split's columns (30 to 33 of [`SESSION_COLS`]): a split
/// when all four are stored (they are written together).
fn split_from_row(r: &Row<'_>) -> Result<Option<TokenSplit>> {
    let cols = [
        opt_u64(r.get(30)?, "input_audio_tokens")?,
        opt_u64(r.get(31)?, "input_text_tokens")?,
        opt_u64(r.get(32)?, "output_audio_tokens")?,
        opt_u64(r.get(33)?, "output_text_tokens")?,
    ];
    Ok(match cols {
        [
            Some(input_audio),
            Some(input_text),
            Some(output_audio),
            Some(output_text),
        ] => Some(TokenSplit {
            input_audio,
            input_text,
            output_audio,
            output_text,
        }),
        _ => None,
    })
}

/// The detection's columns (27 to 29 of [`SESSION_COLS`]): a result when
/// a verdict is stored.
fn amd_from_row(r: &Row<'_>) -> Result<Option<AmdResult>> {
    let Some(verdict) = r.get::<Option<String>>(27)? else {
        return Ok(None);
    };
    Ok(Some(AmdResult {
        verdict: AmdVerdict::from_db(&verdict)?,
        decided: Duration::from_millis(opt_u64(r.get(28)?, "amd_decided_ms")?.unwrap_or_default()),
        machine_end: r
            .get::<Option<String>>(29)?
            .map(|s| MachineEnd::from_db(&s))
            .transpose()?,
    }))
}

fn check_text(s: &str, field: &'static str) -> Result<()> {
    if s.len() > MAX_TEXT {
        return Err(Error::InvalidInput {
            field,
            reason: "longer than 256 KiB",
        });
    }
    Ok(())
}

/// Reads a session's state inside a transaction.
pub(crate) fn state_of(tx: &Tx<'_>, id: SessionId) -> Result<SessionState> {
    let s: Option<String> = tx
        .query_row(
            &format!(
                "SELECT state FROM call_sessions WHERE id = ?1{}",
                tx.dialect().for_update()
            ),
            params![id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    let s = s.ok_or_else(|| Error::NotFound {
        entity: Entity::Session,
        id: id.to_string(),
    })?;
    SessionState::from_db(&s)
}

/// Appends one state-change event inside a transaction. `from` is `None`
/// for the session's creation (detail `{"from": null, "to": <state>}`), so
/// the first event is never a self-transition.
pub(crate) fn log_state_change(
    tx: &Tx<'_>,
    id: SessionId,
    at: Timestamp,
    from: Option<SessionState>,
    to: SessionState,
    reason: Option<EndReason>,
) -> Result<()> {
    let detail = serde_json::json!({
        "from": from.map(SessionState::as_str),
        "to": to.as_str(),
        "reason": reason.map(EndReason::as_str),
    });
    tx.execute(
        "INSERT INTO call_events (session_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![
            id.to_string(),
            ms(at),
            EventKind::StateChanged.as_str(),
            detail.to_string()
        ],
    )?;
    Ok(())
}

impl Store {
    /// Writes the session row at call start. Fails with
    /// [`Error::Conflict`] if the id exists. A session with a claim token
    /// ([`NewSession::claim`], which needs its lead) is written only while
    /// that lead is `in-progress` under that token, checked in the same
    /// transaction as the insert: [`Error::ClaimNotHeld`] otherwise, and
    /// nothing is written (see the `claims` module docs).
    pub fn create_session(&mut self, s: &NewSession) -> Result<()> {
        let writer = self.writer.as_str().to_owned();
        let node = self.node.as_str().to_owned();
        let tx = self.write_tx()?;
        create_session_in(&tx, s, &writer, &node)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a live session forward (`ringing`, `answered`, `active`);
    /// records `answered_at` on the first answered-or-later state and logs a
    /// `state-changed` event. Ending goes through [`Store::finish_session`].
    pub fn set_state(&mut self, id: SessionId, to: SessionState, at: Timestamp) -> Result<()> {
        let tx = self.write_tx()?;
        set_state_in(&tx, id, to, at)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets the given fields of a session (any state).
    pub fn update_session(&mut self, id: SessionId, u: &SessionUpdate) -> Result<()> {
        let tx = self.write_tx()?;
        update_session_in(&tx, id, u)?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a session. Idempotent: if it already ended (or failed, or was
    /// interrupted) nothing changes and the first end is reported back.
    pub fn finish_session(&mut self, id: SessionId, f: &Finish) -> Result<FinishResult> {
        let tx = self.write_tx()?;
        let r = finish_session_in(&tx, id, f)?;
        tx.commit()?;
        Ok(r)
    }

    /// Appends transcript turns in one transaction: all or none. A sequence
    /// number already stored is an [`Error::Conflict`].
    pub fn append_turns(&mut self, id: SessionId, turns: &[NewTurn]) -> Result<()> {
        let tx = self.write_tx()?;
        append_turns_in(&tx, id, turns)?;
        tx.commit()?;
        Ok(())
    }

    /// Appends audit events in one transaction: all or none.
    pub fn append_events(&mut self, id: SessionId, events: &[NewEvent]) -> Result<()> {
        let tx = self.write_tx()?;
        append_events_in(&tx, id, events)?;
        tx.commit()?;
        Ok(())
    }

    /// One session row.
    pub fn get_session(&self, id: SessionId) -> Result<Session> {
        self.conn
            .query_row(
                &format!("SELECT {SESSION_COLS} FROM call_sessions WHERE id = ?1"),
                params![id.to_string()],
                session_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound {
                entity: Entity::Session,
                id: id.to_string(),
            })
    }

    /// One session with its transcript and events, read as one snapshot.
    pub fn load_session(&self, id: SessionId) -> Result<SessionRecord> {
        let tx = self.conn.begin(Begin::Read)?;
        let session = self.get_session(id)?;
        let sid = id.to_string();
        let turns = tx.query_map(
            "SELECT seq, speaker, text, start_ms, end_ms FROM transcript_turns \
             WHERE session_id = ?1 ORDER BY seq",
            params![sid],
            |r| {
                Ok::<_, Error>(Turn {
                    seq: u32::try_from(r.get::<i64>(0)?)
                        .map_err(|_| Error::Corrupt { what: "turn seq" })?,
                    speaker: Speaker::from_db(&r.get::<String>(1)?)?,
                    text: Sensitive::new(r.get::<String>(2)?),
                    start_ms: to_u64(r.get(3)?, "start_ms")?,
                    end_ms: opt_u64(r.get(4)?, "end_ms")?,
                })
            },
        )?;
        let events = tx.query_map(
            "SELECT id, at, kind, detail FROM call_events WHERE session_id = ?1 ORDER BY id",
            params![sid],
            |r| {
                Ok::<_, Error>(Event {
                    id: r.get(0)?,
                    at: ts(r.get(1)?)?,
                    kind: EventKind::from_db(&r.get::<String>(2)?)?,
                    detail: serde_json::from_str(&r.get::<String>(3)?).map_err(|_| {
                        Error::Corrupt {
                            what: "event detail",
                        }
                    })?,
                })
            },
        )?;
        tx.commit()?;
        Ok(SessionRecord {
            session,
            turns,
            events,
        })
    }

    /// Sessions matching `filter`, in its [`SessionOrder`], at most `limit`
    /// (capped at [`MAX_PAGE`]), starting after `cursor` (which must come
    /// from a listing in the same order).
    pub fn list_sessions(
        &self,
        filter: &SessionFilter,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> Result<SessionPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = format!("SELECT {SESSION_COLS} FROM call_sessions WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let mut push = |cond: &str, v: Value, sql: &mut String| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        };
        if let Some(s) = filter.state {
            push("state =", Value::Text(s.as_str().into()), &mut sql);
        }
        if let Some(d) = filter.direction {
            push("direction =", Value::Text(d.as_str().into()), &mut sql);
        }
        if let Some(t) = filter.transport {
            push("transport =", Value::Text(t.as_str().into()), &mut sql);
        }
        if let Some(c) = filter.campaign {
            push("campaign_id =", Value::Integer(c.0), &mut sql);
        }
        if let Some(o) = filter.owner {
            push("owner =", Value::Integer(o.0), &mut sql);
        }
        if let Some(t) = filter.since {
            push("created_at >=", Value::Integer(ms(t)), &mut sql);
        }
        if let Some(t) = filter.until {
            push("created_at <", Value::Integer(ms(t)), &mut sql);
        }
        if let Some(r) = filter.end_reason {
            push("end_reason =", Value::Text(r.as_str().into()), &mut sql);
        }
        if let Some(v) = filter.amd {
            push("amd_verdict =", Value::Text(v.as_str().into()), &mut sql);
        }
        if let Some(n) = &filter.number {
            args.push(Value::Text(n.clone()));
            let n = args.len();
            sql.push_str(&format!(" AND (from_number = ?{n} OR to_number = ?{n})"));
        }
        // The sort key and direction of the order; the keyset condition
        // continues strictly after the cursor's row in that order.
        let (key, desc) = match filter.order {
            SessionOrder::Newest => ("created_at", true),
            SessionOrder::Oldest => ("created_at", false),
            SessionOrder::Longest => ("COALESCE(duration_ms, -1)", true),
        };
        let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
        if let Some(c) = cursor {
            if c.order != filter.order {
                return Err(Error::InvalidInput {
                    field: "cursor",
                    reason: "made for another order",
                });
            }
            args.push(Value::Integer(c.key));
            args.push(Value::Text(c.id.to_string()));
            let (a, b) = (args.len() - 1, args.len());
            sql.push_str(&format!(
                " AND ({key} {cmp} ?{a} OR ({key} = ?{a} AND id {cmp} ?{b}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY {key} {dir}, id {dir} LIMIT {}",
            limit + 1
        ));
        let refs: Vec<&dyn rusqlite::ToSql> =
            args.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        let mut items = self.conn.query_map(&sql, &refs, session_from_row)?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|s| Cursor::after(filter.order, s))
        } else {
            None
        };
        Ok(SessionPage { items, next })
    }
}

/// [`Store::set_state`] inside a write transaction.
pub(crate) fn set_state_in(
    tx: &Tx<'_>,
    id: SessionId,
    to: SessionState,
    at: Timestamp,
) -> Result<()> {
    if to.is_terminal() {
        return Err(Error::InvalidInput {
            field: "state",
            reason: "end a session with finish_session",
        });
    }
    let from = state_of(tx, id)?;
    if !from.can_transition_to(to) {
        return Err(Error::InvalidTransition { from, to });
    }
    let answered = matches!(to, SessionState::Answered | SessionState::Active);
    tx.execute(
        "UPDATE call_sessions SET state = ?2, \
         answered_at = CASE WHEN ?3 AND answered_at IS NULL THEN ?4 ELSE answered_at END \
         WHERE id = ?1",
        params![id.to_string(), to.as_str(), answered, ms(at)],
    )?;
    log_state_change(tx, id, at, Some(from), to, None)?;
    Ok(())
}

/// [`Store::update_session`] inside a write transaction.
pub(crate) fn update_session_in(tx: &Tx<'_>, id: SessionId, u: &SessionUpdate) -> Result<()> {
    for (s, f) in [
        (&u.sip_call_id, "sip_call_id"),
        (&u.model_provider, "model_provider"),
        (&u.model, "model"),
    ] {
        if let Some(s) = s {
            check_text(s, f)?;
        }
    }
    if let Some(s) = &u.summary {
        check_text(s.as_str(), "summary")?;
    }
    let (path, bytes) = match &u.recording {
        Some((p, b)) => (
            Some(p.to_str().ok_or(Error::InvalidInput {
                field: "recording_path",
                reason: "not UTF-8",
            })?),
            Some(to_i64(*b, "recording_bytes")?),
        ),
        None => (None, None),
    };
    let usage = u.usage.unwrap_or_default();
    let opt = |v: Option<u64>, f| v.map(|v| to_i64(v, f)).transpose();
    let (it, ot, am) = (
        opt(usage.input_tokens, "input_tokens")?,
        opt(usage.output_tokens, "output_tokens")?,
        opt(usage.audio_ms, "audio_ms")?,
    );
    let split = usage.split;
    let (ia, itx, oa, otx) = (
        opt(split.map(|s| s.input_audio), "input_audio_tokens")?,
        opt(split.map(|s| s.input_text), "input_text_tokens")?,
        opt(split.map(|s| s.output_audio), "output_audio_tokens")?,
        opt(split.map(|s| s.output_text), "output_text_tokens")?,
    );
    let (si, so) = (
        opt(usage.summary_input_tokens, "summary_input_tokens")?,
        opt(usage.summary_output_tokens, "summary_output_tokens")?,
    );
    let amd_decided = u
        .amd_verdict
        .map(|(_, d)| {
            to_i64(
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                "amd_decided_ms",
            )
        })
        .transpose()?;
    let n = tx
        .execute(
            "UPDATE call_sessions SET \
             sip_call_id = COALESCE(?2, sip_call_id), \
             model_provider = COALESCE(?3, model_provider), model = COALESCE(?4, model), \
             recording_path = COALESCE(?5, recording_path), \
             recording_bytes = COALESCE(?6, recording_bytes), \
             summary = COALESCE(?7, summary), input_tokens = COALESCE(?8, input_tokens), \
             output_tokens = COALESCE(?9, output_tokens), audio_ms = COALESCE(?10, audio_ms), \
             amd_verdict = COALESCE(?11, amd_verdict), \
             amd_decided_ms = COALESCE(?12, amd_decided_ms), \
             amd_machine_end = COALESCE(?13, amd_machine_end), \
             input_audio_tokens = COALESCE(?14, input_audio_tokens), \
             input_text_tokens = COALESCE(?15, input_text_tokens), \
             output_audio_tokens = COALESCE(?16, output_audio_tokens), \
             output_text_tokens = COALESCE(?17, output_text_tokens), \
             summary_input_tokens = COALESCE(?18, summary_input_tokens), \
             summary_output_tokens = COALESCE(?19, summary_output_tokens) \
             WHERE id = ?1",
            params![
                id.to_string(),
                u.sip_call_id,
                u.model_provider,
                u.model,
                path,
                bytes,
                u.summary.as_ref().map(Sensitive::as_str),
                it,
                ot,
                am,
                u.amd_verdict.map(|(v, _)| v.as_str()),
                amd_decided,
                u.amd_machine_end.map(MachineEnd::as_str),
                ia,
                itx,
                oa,
                otx,
                si,
                so,
            ],
        )
        .map_err(conflict_on_constraint(
            Entity::Session,
            "recording path belongs to another session",
        ))?;
    if n == 0 {
        return Err(Error::NotFound {
            entity: Entity::Session,
            id: id.to_string(),
        });
    }
    Ok(())
}

/// [`Store::finish_session`] inside a write transaction.
pub(crate) fn finish_session_in(tx: &Tx<'_>, id: SessionId, f: &Finish) -> Result<FinishResult> {
    if !matches!(f.state, SessionState::Ended | SessionState::Failed) {
        return Err(Error::InvalidInput {
            field: "state",
            reason: "a session finishes as ended or failed",
        });
    }
    let from = state_of(tx, id)?;
    if from.is_terminal() {
        let reason: Option<String> = tx.query_row(
            "SELECT end_reason FROM call_sessions WHERE id = ?1",
            params![id.to_string()],
            |r| r.get(0),
        )?;
        return Ok(FinishResult::AlreadyFinished {
            state: from,
            reason: reason.map(|r| EndReason::from_db(&r)).transpose()?,
        });
    }
    tx.execute(
        &format!(
            "UPDATE call_sessions SET state = ?2, end_reason = ?3, \
             sip_status = COALESCE(?4, sip_status), ended_at = ?5, \
             duration_ms = CASE WHEN answered_at IS NULL THEN NULL \
                                ELSE {}(0, ?5 - answered_at) END \
             WHERE id = ?1",
            tx.dialect().greatest()
        ),
        params![
            id.to_string(),
            f.state.as_str(),
            f.reason.as_str(),
            f.sip_status,
            ms(f.at)
        ],
    )?;
    log_state_change(tx, id, f.at, Some(from), f.state, Some(f.reason))?;
    Ok(FinishResult::Finished)
}

/// [`Store::append_turns`] inside a write transaction.
pub(crate) fn append_turns_in(tx: &Tx<'_>, id: SessionId, turns: &[NewTurn]) -> Result<()> {
    if turns.len() > MAX_BATCH {
        return Err(Error::InvalidInput {
            field: "turns",
            reason: "more than 10000 in one batch",
        });
    }
    let mut rows = Vec::with_capacity(turns.len());
    for t in turns {
        check_text(t.text.as_str(), "text")?;
        let end = t.end_ms.map(|e| to_i64(e, "end_ms")).transpose()?;
        rows.push((to_i64(t.start_ms, "start_ms")?, end));
    }
    state_of(tx, id)?;
    {
        let sid = id.to_string();
        for (t, (start, end)) in turns.iter().zip(rows) {
            tx.execute(
                "INSERT INTO transcript_turns (session_id, seq, speaker, text, start_ms, end_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![sid, t.seq, t.speaker.as_str(), t.text.as_str(), start, end],
            )
            .map_err(conflict_on_constraint(
                Entity::Turn,
                "sequence number already stored",
            ))?;
        }
    }
    Ok(())
}

/// [`Store::append_events`] inside a write transaction.
pub(crate) fn append_events_in(tx: &Tx<'_>, id: SessionId, events: &[NewEvent]) -> Result<()> {
    if events.len() > MAX_BATCH {
        return Err(Error::InvalidInput {
            field: "events",
            reason: "more than 10000 in one batch",
        });
    }
    let details: Vec<String> = events.iter().map(|e| e.detail.to_string()).collect();
    for d in &details {
        check_text(d, "detail")?;
    }
    state_of(tx, id)?;
    {
        let sid = id.to_string();
        for (e, d) in events.iter().zip(&details) {
            tx.execute(
                "INSERT INTO call_events (session_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![sid, ms(e.at), e.kind.as_str(), d],
            )?;
        }
    }
    Ok(())
}

/// [`Store::create_session`] inside `tx`, with the store's writer and node
/// ids (for [`Store::apply_group`]).
pub(crate) fn create_session_in(
    tx: &Tx<'_>,
    s: &NewSession,
    writer: &str,
    node: &str,
) -> Result<()> {
    if s.state.is_terminal() {
        return Err(Error::InvalidInput {
            field: "state",
            reason: "a new session cannot start in a terminal state",
        });
    }
    if let Some(c) = &s.sip_call_id {
        check_text(c, "sip_call_id")?;
    }
    if s.claim.is_some() && s.lead.is_none() {
        return Err(Error::InvalidInput {
            field: "claim_token",
            reason: "a claim token needs the lead it was claimed for",
        });
    }
    let recording = match &s.recording {
        Some(p) => Some(p.to_str().ok_or(Error::InvalidInput {
            field: "recording_path",
            reason: "not UTF-8",
        })?),
        None => None,
    };
    if let Some(p) = &s.profile {
        check_text(p, "profile")?;
    }
    let headers = headers_to_db(&s.sip_headers)?;
    if let (Some(token), Some(lead)) = (&s.claim, s.lead) {
        check_claim_held(tx, lead, token)?;
    }
    tx.execute(
        "INSERT INTO call_sessions (id, direction, campaign_id, lead_id, owner, from_number, \
         to_number, sip_call_id, state, model_provider, model, writer, created_at, transport, \
         recording_path, recording_bytes, node, profile, sip_headers) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         CASE WHEN CAST(?15 AS TEXT) IS NULL THEN NULL ELSE 0 END, ?16, ?17, ?18)",
        params![
            s.id.to_string(),
            s.direction.as_str(),
            s.campaign.map(|c| c.0),
            s.lead.map(|l| l.0),
            s.owner.map(|u| u.0),
            s.from.as_ref().map(Party::as_str),
            s.to.as_ref().map(Party::as_str),
            s.sip_call_id,
            s.state.as_str(),
            s.model_provider,
            s.model,
            writer,
            ms(s.created_at),
            s.transport.as_str(),
            recording,
            node,
            s.profile,
            headers,
        ],
    )
    .map_err(conflict_on_constraint(
        Entity::Session,
        "session id exists, or campaign/lead/owner does not",
    ))?;
    log_state_change(tx, s.id, s.created_at, None, s.state, None)?;
    Ok(())
}
