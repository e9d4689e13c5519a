//! The schema, as an ordered list of migrations, and the code that applies
//! them on open.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Opening a
//! file runs every missing migration in order, each in its own `BEGIN
//! IMMEDIATE` transaction together with its `user_version` bump, so a crash
//! leaves the file at a whole version. A file whose version is above
//! [`SCHEMA_VERSION`] was written by a newer build and is refused with
//! [`Error::SchemaTooNew`].
//!
//! To change the schema, append a [`Migration`] to [`MIGRATIONS`]; never
//! edit a published one. Timestamps are integer milliseconds since the Unix
//! epoch (UTC); enums are stored as their kebab-case names.
//!
//! # PostgreSQL
//!
//! The same list is the schema of a PostgreSQL store: each migration's
//! SQLite batch is translated ([`Postgres::Translated`]: `INTEGER` becomes
//! `BIGINT`, `BLOB` `BYTEA`) unless it uses what PostgreSQL spells
//! differently, in which case the migration carries its PostgreSQL text
//! ([`Postgres::Own`]) beside the SQLite one. The version lives in the
//! one-row table `callbridge_schema`; migrations run one transaction each
//! under a transaction-level advisory lock ([`MIGRATION_LOCK`]), so agents
//! and dialers starting together migrate once.

use rusqlite::{Connection, TransactionBehavior};

use crate::db::{Begin, Conn};
use crate::error::{Error, Result};

/// One schema step.
#[derive(Debug)]
pub struct Migration {
    /// What it does, for logs.
    pub description: &'static str,
    /// The SQL batch (SQLite).
    pub sql: &'static str,
    /// The same step on PostgreSQL.
    pub postgres: Postgres,
}

/// How a [`Migration`] runs on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub enum Postgres {
    /// The SQLite batch, with its column types translated
    /// ([`translate_types`]).
    Translated,
    /// Its own text, where PostgreSQL spells the step differently.
    Own(&'static str),
}

impl Migration {
    /// The batch to run on PostgreSQL.
    pub fn postgres_sql(&self) -> std::borrow::Cow<'static, str> {
        match self.postgres {
            Postgres::Translated => translate_types(self.sql).into(),
            Postgres::Own(sql) => sql.into(),
        }
    }
}

/// SQLite column types as PostgreSQL's: `INTEGER` as `BIGINT` (SQLite's
/// integers are 64-bit), `BLOB` as `BYTEA`.
pub fn translate_types(sql: &str) -> String {
    sql.replace(" INTEGER", " BIGINT")
        .replace(" BLOB", " BYTEA")
}

/// v1: the base tables.
const V1_BASE: &str = r#"
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'agent-operator', 'viewer')),
    token_id    TEXT    NOT NULL UNIQUE,
    token_hash  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE campaigns (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    owner               INTEGER REFERENCES users(id) ON DELETE SET NULL,
    status              TEXT    NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'done')),
    system_prompt       TEXT    NOT NULL,
    greeting            TEXT    NOT NULL,
    model_provider      TEXT    NOT NULL,
    voice               TEXT,
    window_start_min    INTEGER NOT NULL CHECK (window_start_min BETWEEN 0 AND 1439),
    window_end_min      INTEGER NOT NULL CHECK (window_end_min BETWEEN 0 AND 1440),
    window_days         INTEGER NOT NULL CHECK (window_days BETWEEN 0 AND 127),
    time_zone           TEXT    NOT NULL,
    max_attempts        INTEGER NOT NULL CHECK (max_attempts >= 1),
    retry_busy_s        INTEGER NOT NULL,
    retry_no_answer_s   INTEGER NOT NULL,
    retry_failed_s      INTEGER NOT NULL,
    retry_voicemail_s   INTEGER NOT NULL,
    max_concurrent      INTEGER NOT NULL CHECK (max_concurrent >= 1),
    calls_per_minute    INTEGER NOT NULL CHECK (calls_per_minute >= 1),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE leads (
    id               INTEGER PRIMARY KEY,
    campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    phone            TEXT    NOT NULL,
    name             TEXT,
    time_zone        TEXT,
    fields           TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL CHECK (status IN
                         ('pending', 'in-progress', 'retry', 'done', 'failed', 'do-not-call')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_outcome     TEXT,
    last_session     TEXT REFERENCES call_sessions(id) ON DELETE SET NULL,
    claimed_by       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (campaign_id, phone)
);

CREATE TABLE dnc (
    phone     TEXT    PRIMARY KEY,
    reason    TEXT    NOT NULL,
    added_at  INTEGER NOT NULL
);

CREATE TABLE call_sessions (
    id              TEXT    PRIMARY KEY,
    direction       TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound', 'unknown')),
    campaign_id     INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    lead_id         INTEGER REFERENCES leads(id) ON DELETE SET NULL,
    owner           INTEGER REFERENCES users(id) ON DELETE SET NULL,
    from_number     TEXT,
    to_number       TEXT,
    sip_call_id     TEXT,
    state           TEXT    NOT NULL CHECK (state IN
                        ('created', 'ringing', 'answered', 'active', 'ended', 'failed', 'interrupted')),
    end_reason      TEXT,
    sip_status      INTEGER,
    model_provider  TEXT,
    model           TEXT,
    writer          TEXT,
    created_at      INTEGER NOT NULL,
    answered_at     INTEGER,
    ended_at        INTEGER,
    duration_ms     INTEGER,
    summary         TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    audio_ms        INTEGER
);

CREATE TABLE transcript_turns (
    session_id  TEXT    NOT NULL REFERENCES call_sessions(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    speaker     TEXT    NOT NULL CHECK (speaker IN ('caller', 'agent')),
    text        TEXT    NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

CREATE TABLE call_events (
    id          INTEGER PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES call_sessions(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}'
);
"#;

/// v1 on PostgreSQL: the same tables, with identity columns for SQLite's
/// integer primary keys, `call_sessions` created before the `leads` that
/// reference it (and its lead reference added after `leads`), and the
/// insertion order SQLite keeps as `rowid` as an explicit `rowid` column
/// (the claims' "session inserted after the last attempt's").
const V1_BASE_PG: &str = r#"
CREATE TABLE users (
    id          BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'agent-operator', 'viewer')),
    token_id    TEXT    NOT NULL UNIQUE,
    token_hash  BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE campaigns (
    id                  BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    owner               BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    status              TEXT    NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'done')),
    system_prompt       TEXT    NOT NULL,
    greeting            TEXT    NOT NULL,
    model_provider      TEXT    NOT NULL,
    voice               TEXT,
    window_start_min    BIGINT  NOT NULL CHECK (window_start_min BETWEEN 0 AND 1439),
    window_end_min      BIGINT  NOT NULL CHECK (window_end_min BETWEEN 0 AND 1440),
    window_days         BIGINT  NOT NULL CHECK (window_days BETWEEN 0 AND 127),
    time_zone           TEXT    NOT NULL,
    max_attempts        BIGINT  NOT NULL CHECK (max_attempts >= 1),
    retry_busy_s        BIGINT  NOT NULL,
    retry_no_answer_s   BIGINT  NOT NULL,
    retry_failed_s      BIGINT  NOT NULL,
    retry_voicemail_s   BIGINT  NOT NULL,
    max_concurrent      BIGINT  NOT NULL CHECK (max_concurrent >= 1),
    calls_per_minute    BIGINT  NOT NULL CHECK (calls_per_minute >= 1),
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);

CREATE TABLE call_sessions (
    id              TEXT    PRIMARY KEY,
    rowid           BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE,
    direction       TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound', 'unknown')),
    campaign_id     BIGINT  REFERENCES campaigns(id) ON DELETE SET NULL,
    lead_id         BIGINT,
    owner           BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    from_number     TEXT,
    to_number       TEXT,
    sip_call_id     TEXT,
    state           TEXT    NOT NULL CHECK (state IN
                        ('created', 'ringing', 'answered', 'active', 'ended', 'failed', 'interrupted')),
    end_reason      TEXT,
    sip_status      BIGINT,
    model_provider  TEXT,
    model           TEXT,
    writer          TEXT,
    created_at      BIGINT  NOT NULL,
    answered_at     BIGINT,
    ended_at        BIGINT,
    duration_ms     BIGINT,
    summary         TEXT,
    input_tokens    BIGINT,
    output_tokens   BIGINT,
    audio_ms        BIGINT
);

CREATE TABLE leads (
    id               BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    campaign_id      BIGINT  NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    phone            TEXT    NOT NULL,
    name             TEXT,
    time_zone        TEXT,
    fields           TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL CHECK (status IN
                         ('pending', 'in-progress', 'retry', 'done', 'failed', 'do-not-call')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    last_outcome     TEXT,
    last_session     TEXT REFERENCES call_sessions(id) ON DELETE SET NULL,
    claimed_by       TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    UNIQUE (campaign_id, phone)
);

ALTER TABLE call_sessions ADD FOREIGN KEY (lead_id) REFERENCES leads(id) ON DELETE SET NULL;

CREATE TABLE dnc (
    phone     TEXT    PRIMARY KEY,
    reason    TEXT    NOT NULL,
    added_at  BIGINT  NOT NULL
);

CREATE TABLE transcript_turns (
    session_id  TEXT    NOT NULL REFERENCES call_sessions(id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    speaker     TEXT    NOT NULL CHECK (speaker IN ('caller', 'agent')),
    text        TEXT    NOT NULL,
    start_ms    BIGINT  NOT NULL,
    end_ms      BIGINT,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE call_events (
    id          BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES call_sessions(id) ON DELETE CASCADE,
    at          BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}'
);
"#;

/// v2: recordings on the session row.
const V2_RECORDINGS: &str = r#"
ALTER TABLE call_sessions ADD COLUMN recording_path TEXT;
ALTER TABLE call_sessions ADD COLUMN recording_bytes INTEGER;
CREATE UNIQUE INDEX call_sessions_recording_path ON call_sessions(recording_path)
    WHERE recording_path IS NOT NULL;
"#;

/// v3: indexes for the session list, event loading, due-lead claims and
/// crash recovery.
const V3_INDEXES: &str = r#"
CREATE INDEX call_sessions_created ON call_sessions(created_at, id);
CREATE INDEX call_sessions_campaign ON call_sessions(campaign_id, created_at);
CREATE INDEX call_sessions_live ON call_sessions(state)
    WHERE state IN ('created', 'ringing', 'answered', 'active');
CREATE INDEX call_events_session ON call_events(session_id, id);
CREATE INDEX leads_due ON leads(campaign_id, next_attempt_at, id)
    WHERE status IN ('pending', 'retry');
CREATE INDEX leads_status ON leads(campaign_id, status);
"#;

/// v4: the time zones of a campaign's leads, so a claim can tell which
/// calling windows are open without scanning the due queue.
const V4_LEAD_ZONES: &str = r#"
CREATE INDEX leads_zone ON leads(campaign_id, time_zone);
"#;

/// v5: how each call's media came in (`sip`, `twilio`, `vonage`,
/// `unknown`), beside its direction. Rows written before it get `sip`,
/// except carrier calls, recognisable by the `<carrier>:` prefix their
/// admission key left in `sip_call_id`, and sessions rebuilt from orphan
/// recordings, whose transport nobody knows. No `CHECK` on the values:
/// like `end_reason`, the vocabulary grows with new carriers, and a
/// `CHECK` cannot be changed without rebuilding the table.
const V5_TRANSPORT: &str = r#"
ALTER TABLE call_sessions ADD COLUMN transport TEXT NOT NULL DEFAULT 'sip';
UPDATE call_sessions SET transport = 'twilio' WHERE sip_call_id GLOB 'twilio:?*';
UPDATE call_sessions SET transport = 'vonage' WHERE sip_call_id GLOB 'vonage:?*';
UPDATE call_sessions SET transport = 'unknown' WHERE end_reason = 'orphan-recording';
CREATE INDEX call_sessions_transport ON call_sessions(transport, created_at);
"#;

/// v5 on PostgreSQL: `LIKE` for SQLite's `GLOB` (`_` is any one
/// character, as `?` there).
const V5_TRANSPORT_PG: &str = r#"
ALTER TABLE call_sessions ADD COLUMN transport TEXT NOT NULL DEFAULT 'sip';
UPDATE call_sessions SET transport = 'twilio' WHERE sip_call_id LIKE 'twilio:_%';
UPDATE call_sessions SET transport = 'vonage' WHERE sip_call_id LIKE 'vonage:_%';
UPDATE call_sessions SET transport = 'unknown' WHERE end_reason = 'orphan-recording';
CREATE INDEX call_sessions_transport ON call_sessions(transport, created_at);
"#;

/// v6: the token of a lead's current claim, which the agent's session
/// insert must present (see `claims`), and the sessions of a lead, so the
/// attempt-session check of an insert or a release is an index lookup.
const V6_CLAIM_TOKENS: &str = r#"
ALTER TABLE leads ADD COLUMN claim_token TEXT;
CREATE INDEX call_sessions_lead ON call_sessions(lead_id) WHERE lead_id IS NOT NULL;
"#;

/// v7: the sequence number of the last agent write applied to each
/// session ([`Store::apply_write`](crate::Store::apply_write)), so a write
/// replayed from the agent's journal after a failure is a no-op; and one
/// row the agent rewrites to learn whether the file takes writes
/// ([`Store::probe_write`](crate::Store::probe_write)).
const V7_WRITE_SEQ: &str = r#"
ALTER TABLE call_sessions ADD COLUMN write_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE write_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  INTEGER NOT NULL
);
"#;

/// v8: user names unique and non-empty; per-token issue time, expiry and
/// last use; revocation.
///
/// Files written before it may hold users with an empty name or several
/// users with one name (nothing refused them). The migration renames, and
/// never deletes, so every token keeps working and every campaign keeps
/// its owner: an empty (or blank: spaces, tabs, line breaks) name becomes
/// `user-<id>`; of several
/// users with one name, the oldest (lowest id) keeps it and every other
/// becomes `<name> (duplicate <id>)`. `agent user list` shows the new
/// names; rename or revoke them from there. A name that still collides
/// after that (another user was already called exactly `ann (duplicate
/// 7)`) becomes `user-<id>-<random hex>`, so the unique index always
/// builds and the file always opens. Tokens issued before it count as
/// issued when their user was created.
const V8_USERS: &str = r#"
UPDATE users SET name = 'user-' || id WHERE trim(name, char(32, 9, 10, 13)) = '';
UPDATE users SET name = name || ' (duplicate ' || id || ')'
    WHERE EXISTS (SELECT 1 FROM users o WHERE o.name = users.name AND o.id < users.id);
UPDATE users SET name = 'user-' || id || '-' || lower(hex(randomblob(4)))
    WHERE EXISTS (SELECT 1 FROM users o WHERE o.name = users.name AND o.id < users.id);
CREATE UNIQUE INDEX users_name ON users(name);
ALTER TABLE users ADD COLUMN token_issued_at INTEGER;
ALTER TABLE users ADD COLUMN token_expires_at INTEGER;
ALTER TABLE users ADD COLUMN token_last_used_at INTEGER;
ALTER TABLE users ADD COLUMN revoked_at INTEGER;
UPDATE users SET token_issued_at = created_at;
"#;

/// v8 on PostgreSQL: `btrim` for `trim` with a character list, and
/// `md5(random())` for `hex(randomblob())`.
const V8_USERS_PG: &str = r#"
UPDATE users SET name = 'user-' || id WHERE btrim(name, E' \t\n\r') = '';
UPDATE users SET name = name || ' (duplicate ' || id || ')'
    WHERE EXISTS (SELECT 1 FROM users o WHERE o.name = users.name AND o.id < users.id);
UPDATE users SET name = 'user-' || id || '-' || substr(md5(random()::text), 1, 8)
    WHERE EXISTS (SELECT 1 FROM users o WHERE o.name = users.name AND o.id < users.id);
CREATE UNIQUE INDEX users_name ON users(name);
ALTER TABLE users ADD COLUMN token_issued_at BIGINT;
ALTER TABLE users ADD COLUMN token_expires_at BIGINT;
ALTER TABLE users ADD COLUMN token_last_used_at BIGINT;
ALTER TABLE users ADD COLUMN revoked_at BIGINT;
UPDATE users SET token_issued_at = created_at;
"#;

/// v9: the node (agent or dialer machine, [`NodeId`](crate::NodeId)) that
/// wrote each session and claimed each lead, so recovery touches only its
/// own node's rows when several share one store. Rows written before it
/// have none and count as the local node's (they come from a single-node
/// SQLite file).
const V9_NODES: &str = r#"
ALTER TABLE call_sessions ADD COLUMN node TEXT;
ALTER TABLE leads ADD COLUMN claimed_node TEXT;
CREATE INDEX call_sessions_node_live ON call_sessions(node, state)
    WHERE state IN ('created', 'ringing', 'answered', 'active');
"#;

/// v10: the webhook outbox ([`crate::outbox`]): one row per call event
/// and receiver, delivered at least once by the agent's webhook worker
/// (claimed under a lease; `event_key` is the receivers' idempotency
/// key).
const V10_OUTBOX: &str = r#"
CREATE TABLE webhook_outbox (
    id               INTEGER PRIMARY KEY,
    session_id       TEXT    NOT NULL,
    event_key        TEXT    NOT NULL,
    event            TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER,
    claimed_node     TEXT,
    last_error       TEXT,
    last_status      INTEGER,
    delivered_at     INTEGER
);
CREATE UNIQUE INDEX webhook_outbox_key ON webhook_outbox(event_key, url);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_outbox_session ON webhook_outbox(session_id);
"#;

/// v10 on PostgreSQL: an identity column for the row id.
const V10_OUTBOX_PG: &str = r#"
CREATE TABLE webhook_outbox (
    id               BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    session_id       TEXT    NOT NULL,
    event_key        TEXT    NOT NULL,
    event            TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    claimed_until    BIGINT,
    claimed_node     TEXT,
    last_error       TEXT,
    last_status      BIGINT,
    delivered_at     BIGINT
);
CREATE UNIQUE INDEX webhook_outbox_key ON webhook_outbox(event_key, url);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_outbox_session ON webhook_outbox(session_id);
"#;
// --- issue 23 (prog): routing profiles and kept SIP headers ---
/// v11: the routing profile of each session and campaign (issue 23), and
/// the SIP headers a session kept (`sip.keep_headers`, a JSON object of
/// name to value).
const V11_PROFILES: &str = r#"
ALTER TABLE call_sessions ADD COLUMN profile TEXT;
ALTER TABLE call_sessions ADD COLUMN sip_headers TEXT;
ALTER TABLE campaigns ADD COLUMN profile TEXT;
"#;
// --- end issue 23 (prog) ---
// --- issue 19 (amd): the detection's verdict on the session row ---
/// v12: the answering-machine detection's first verdict on each session
/// (`human`, `machine`, `no_speech`, `unreachable`, `unknown`: the
/// detection's own snake-case names, as in its events and metrics), when
/// it was given (ms from the answer) and how a machine's greeting ended
/// (`beep`, `silence`, `timeout`), with an index for the listing's
/// `amd` filter. No `CHECK`, as `end_reason`. Sessions written before it
/// keep their verdict in their events only.
const V12_AMD: &str = r#"
ALTER TABLE call_sessions ADD COLUMN amd_verdict TEXT;
ALTER TABLE call_sessions ADD COLUMN amd_decided_ms INTEGER;
ALTER TABLE call_sessions ADD COLUMN amd_machine_end TEXT;
CREATE INDEX call_sessions_amd ON call_sessions(amd_verdict, created_at)
    WHERE amd_verdict IS NOT NULL;
"#;
// --- end issue 19 (amd) ---
// --- issue 23 (prof2): v13, the target of each webhook outbox row ---
/// v13: whose receiver each webhook outbox row is: the routing profile
/// with webhooks of its own (`NULL`: the agent's global `[webhooks]`, as
/// every row written before).
const V13_OUTBOX_TARGET: &str = r#"
ALTER TABLE webhook_outbox ADD COLUMN target TEXT;
"#;
// --- end issue 23 (prof2) ---
// --- issue 22 (ops3): v14, the audio/text token split ---
/// v14: the model's tokens by modality on each session, as the provider
/// split them (Gemini's `promptTokensDetails` / `responseTokensDetails`,
/// OpenAI's `input_token_details` / `output_token_details`). All four
/// `NULL` where the provider gave no split, and on rows written before.
/// Beside them, the post-call summary's own tokens (another API and
/// model than the call's, so kept apart from `input_tokens`).
const V14_TOKEN_SPLIT: &str = r#"
ALTER TABLE call_sessions ADD COLUMN input_audio_tokens INTEGER;
ALTER TABLE call_sessions ADD COLUMN input_text_tokens INTEGER;
ALTER TABLE call_sessions ADD COLUMN output_audio_tokens INTEGER;
ALTER TABLE call_sessions ADD COLUMN output_text_tokens INTEGER;
ALTER TABLE call_sessions ADD COLUMN summary_input_tokens INTEGER;
ALTER TABLE call_sessions ADD COLUMN summary_output_tokens INTEGER;
"#;
// --- end issue 22 (ops3) ---

/// Every migration, in order. Migration `i` takes the file from version `i`
/// to `i + 1`. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        description: "base tables",
        sql: V1_BASE,
        postgres: Postgres::Own(V1_BASE_PG),
    },
    Migration {
        description: "recording path and size on sessions",
        sql: V2_RECORDINGS,
        postgres: Postgres::Translated,
    },
    Migration {
        description: "query, claim and recovery indexes",
        sql: V3_INDEXES,
        postgres: Postgres::Translated,
    },
    Migration {
        description: "lead time zone index",
        sql: V4_LEAD_ZONES,
        postgres: Postgres::Translated,
    },
    Migration {
        description: "media transport on sessions",
        sql: V5_TRANSPORT,
        postgres: Postgres::Own(V5_TRANSPORT_PG),
    },
    Migration {
        description: "claim tokens on leads, sessions by lead",
        sql: V6_CLAIM_TOKENS,
        postgres: Postgres::Translated,
    },
    Migration {
        description: "applied write sequence on sessions",
        sql: V7_WRITE_SEQ,
        postgres: Postgres::Translated,
    },
    Migration {
        description: "unique user names, token expiry, last use and revocation",
        sql: V8_USERS,
        postgres: Postgres::Own(V8_USERS_PG),
    },
    Migration {
        description: "node of each session and lead claim",
        sql: V9_NODES,
        postgres: Postgres::Translated,
    },
    Migration {
        description: "webhook outbox",
        sql: V10_OUTBOX,
        postgres: Postgres::Own(V10_OUTBOX_PG),
    },
    // --- issue 23 (prog) ---
    Migration {
        description: "routing profile of sessions and campaigns, kept SIP headers",
        sql: V11_PROFILES,
        postgres: Postgres::Translated,
    },
    // --- end issue 23 (prog) ---
    // --- issue 19 (amd) ---
    Migration {
        description: "answering-machine detection verdict on sessions",
        sql: V12_AMD,
        postgres: Postgres::Translated,
    },
    // --- end issue 19 (amd) ---
    // --- issue 23 (prof2): v13 ---
    Migration {
        description: "target of each webhook outbox row",
        sql: V13_OUTBOX_TARGET,
        postgres: Postgres::Translated,
    },
    // --- end issue 23 (prof2) ---
    // --- issue 22 (ops3): v14 ---
    Migration {
        description: "audio and text tokens and summary tokens on sessions",
        sql: V14_TOKEN_SPLIT,
        postgres: Postgres::Translated,
    },
    // --- end issue 22 (ops3) ---
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reads `PRAGMA user_version`.
pub fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Brings the file up to `target` (at most [`SCHEMA_VERSION`]), one
/// transaction per migration. Returns the version found before.
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<i64> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let target = target.min(SCHEMA_VERSION);
    let mut version = found;
    while version < target {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now = user_version(&tx)?;
        if now > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found: now,
                supported: SCHEMA_VERSION,
            });
        }
        if now >= target {
            break;
        }
        let idx = usize::try_from(now).map_err(|_| Error::Corrupt {
            what: "user_version",
        })?;
        let m = &MIGRATIONS[idx];
        tracing::info!(
            from = now,
            to = now + 1,
            what = m.description,
            "migrating CRM store"
        );
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", now + 1)?;
        tx.commit()?;
        version = now + 1;
    }
    Ok(found)
}

/// The advisory lock key PostgreSQL migrations run under (any constant
/// unlikely to be used by another application on the same database).
pub const MIGRATION_LOCK: i64 = 0x6361_6c6c_6272_0001;

/// The schema version of a PostgreSQL store (0 before the first migration).
pub(crate) fn pg_version(conn: &Conn) -> Result<i64> {
    let exists: bool = conn.query_row(
        "SELECT to_regclass('callbridge_schema') IS NOT NULL",
        &[],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(conn.query_row("SELECT version FROM callbridge_schema", &[], |r| r.get(0))?)
}

/// Brings a PostgreSQL store up to `target` (see the module docs). Returns
/// the version found before.
pub(crate) fn pg_migrate_to(conn: &Conn, target: i64) -> Result<i64> {
    let found = pg_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let target = target.min(SCHEMA_VERSION);
    let mut version = found;
    while version < target {
        let tx = conn.begin(Begin::Write)?;
        tx.query_row(
            "SELECT 1 FROM pg_advisory_xact_lock(?1)",
            rusqlite::params![MIGRATION_LOCK],
            |_| Ok::<_, crate::db::DbErr>(()),
        )?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS callbridge_schema (version BIGINT NOT NULL); \
             INSERT INTO callbridge_schema (version) \
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM callbridge_schema)",
        )?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("SELECT version FROM callbridge_schema", &[], |r| r.get(0))?;
        if now > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found: now,
                supported: SCHEMA_VERSION,
            });
        }
        if now >= target {
            break;
        }
        let idx = usize::try_from(now).map_err(|_| Error::Corrupt {
            what: "schema version",
        })?;
        let m = &MIGRATIONS[idx];
        tracing::info!(
            from = now,
            to = now + 1,
            what = m.description,
            "migrating CRM store (PostgreSQL)"
        );
        tx.execute_batch(&m.postgres_sql())?;
        tx.execute(
            "UPDATE callbridge_schema SET version = ?1",
            rusqlite::params![now + 1],
        )?;
        tx.commit()?;
        version = now + 1;
    }
    Ok(found)
}
