//! The schema on both databases, created or brought up to date when a store opens.
//!
//! The tables and their keys are the same on SQLite and PostgreSQL; the DDL differs only where
//! the dialects do (integer widths, auto-numbered ids, bytes). PostgreSQL tables that the
//! queries order by insertion carry a `rowid` column, which SQLite has implicitly. SQLite keeps
//! its version in `PRAGMA user_version`; PostgreSQL in the `driftgate_schema` table, updated
//! under an advisory lock so that instances starting together migrate once.

use std::path::Path;

use rusqlite::Connection;

use super::db::Db;
use super::StoreError;

/// The schema version this build creates and reads.
const SCHEMA_VERSION: i64 = 7;

const SQLITE: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    stream      TEXT NOT NULL,
    lineage     TEXT NOT NULL DEFAULT '',  -- the instance whose windows these are ('' alone)
    state       TEXT NOT NULL,       -- JSON: Checkpoint
    updated_at  INTEGER NOT NULL,    -- epoch milliseconds
    PRIMARY KEY (stream, lineage)
);
CREATE TABLE IF NOT EXISTS windows (
    stream      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    tag         TEXT NOT NULL DEFAULT '',  -- '@instance' when instances share the store
    report      TEXT NOT NULL,       -- JSON: the window report
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (stream, idx, tag)
);
-- Instances sharing the store: each holds its lineage (its checkpoints) under a lease, and
-- the partitions it owns with an epoch; a commit by a former holder is refused.
CREATE TABLE IF NOT EXISTS lineages (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,       -- the process holding it
    epoch       INTEGER NOT NULL,
    lease_until INTEGER NOT NULL
);
-- Work one live instance does at a time (a sink's deliveries, a run), held under a lease.
CREATE TABLE IF NOT EXISTS leases (
    name        TEXT PRIMARY KEY,    -- sink:NAME, run:ID
    owner       TEXT NOT NULL,
    until       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    stream      TEXT NOT NULL,
    part        TEXT NOT NULL,       -- topic/partition
    lineage     TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    next_offset INTEGER,             -- where its next owner resumes
    claimed_at  INTEGER NOT NULL,    -- when its owner took it, epoch milliseconds
    open_state  TEXT,                -- JSON: the partition's Checkpoint, windows spanning instances
    watermark   INTEGER,             -- event time before which its records are all in parts
                                     -- or its open part (NULL: not known yet)
    PRIMARY KEY (stream, part)
);
-- Windows spanning instances: each partition's closed parts of stream-wide intervals, waiting
-- to be merged.
CREATE TABLE IF NOT EXISTS window_parts (
    stream       TEXT NOT NULL,
    part         TEXT NOT NULL,      -- topic/partition
    first_offset INTEGER NOT NULL,   -- the part's first offset: unique in its partition
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    payload      TEXT NOT NULL,      -- JSON: WindowPart
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (stream, part, first_offset)
);
-- The one instance per stream that merges parts and judges the stream's windows, and the
-- stream's window numbering and policy state it carries.
CREATE TABLE IF NOT EXISTS stream_mergers (
    stream       TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    epoch        INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL,
    next_index   INTEGER NOT NULL DEFAULT 0,
    merged_until INTEGER,            -- the end of the last merged interval
    policies     TEXT                -- JSON: the policies' state
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    msg_offset  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    payload     BLOB,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL,       -- idempotency key: policy/model/stream/window
    policy      TEXT NOT NULL,
    model       TEXT NOT NULL,
    stream      TEXT NOT NULL,
    window_idx  INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    decision    TEXT NOT NULL,       -- JSON: the whole decision
    at_ms       INTEGER,             -- the decision's time (its window's end)
    created_at  INTEGER NOT NULL
);
-- Never two triggered decisions for one key: a restart cannot trigger a window twice.
CREATE UNIQUE INDEX IF NOT EXISTS decisions_triggered_once ON decisions (key)
    WHERE outcome = 'triggered';
CREATE INDEX IF NOT EXISTS decisions_by_model ON decisions (model, id);
CREATE INDEX IF NOT EXISTS decisions_by_window ON decisions (stream, window_idx);
-- The alert outbox: every alert once (by id), and one delivery row per sink that takes it.
CREATE TABLE IF NOT EXISTS alerts (
    id          TEXT PRIMARY KEY,    -- the alert's idempotency id
    kind        TEXT NOT NULL,
    model       TEXT,
    document    TEXT NOT NULL,       -- JSON: the alert
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order within a sink
    alert_id        TEXT NOT NULL REFERENCES alerts (id),
    sink            TEXT NOT NULL,
    status          TEXT NOT NULL,   -- pending, delivered, dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    UNIQUE (alert_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, status, id);
-- Retraining runs: at most one per idempotency key (a triggered decision's key), ever.
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    model       TEXT NOT NULL,
    dag         TEXT NOT NULL,
    status      TEXT NOT NULL,       -- queued, running, succeeded, failed, skipped
    request     TEXT NOT NULL,       -- JSON: RunRequest (decision, drifted features, window file)
    plan        TEXT,                -- JSON: the plan
    error       TEXT,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model, created_at);
CREATE TABLE IF NOT EXISTS run_tasks (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    dag         TEXT NOT NULL,
    task        TEXT NOT NULL,
    status      TEXT NOT NULL,       -- pending, running, succeeded, cached, skipped, failed
    reason      TEXT NOT NULL,
    cache_key   TEXT,
    outputs     TEXT,                -- JSON: [{file, path, sha256, bytes}]
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, task)
);
CREATE INDEX IF NOT EXISTS run_tasks_cache ON run_tasks (dag, task, cache_key, status);
-- Baseline versions a run made current for a stream (the configured file is version zero).
CREATE TABLE IF NOT EXISTS baselines (
    stream      TEXT NOT NULL,
    version     TEXT NOT NULL,       -- the baseline's content id
    path        TEXT NOT NULL,
    run_id      TEXT,
    active      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (stream, version)
);
CREATE TABLE IF NOT EXISTS run_attempts (
    run_id      TEXT NOT NULL,
    task        TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    exit_code   INTEGER,
    error       TEXT,
    log         TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    pid         INTEGER,             -- the attempt's process (and group), while it may run
    pid_start   INTEGER,             -- its start time in clock ticks since boot (/proc)
    PRIMARY KEY (run_id, task, attempt)
);
";

/// Brings SQLite tables an older version created up to this one (columns added since).
fn migrate_sqlite(conn: &Connection) -> rusqlite::Result<()> {
    // Version 4: the attempt's process, to stop what a crash left running. Version 5: the
    // decision's time as a column (both databases filter on it).
    for (table, column, backfill) in [
        ("run_attempts", "pid", None),
        ("run_attempts", "pid_start", None),
        (
            "decisions",
            "at_ms",
            Some("json_extract(decision, '$.at_ms')"),
        ),
    ] {
        if !has_column(conn, table, column)? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} INTEGER"))?;
            if let Some(value) = backfill {
                conn.execute_batch(&format!("UPDATE {table} SET {column} = {value}"))?;
            }
        }
    }
    // Version 7: a partition's own state, for windows spanning instances.
    for (column, kind) in [("open_state", "TEXT"), ("watermark", "INTEGER")] {
        if !has_column(conn, "partitions", column)? {
            conn.execute_batch(&format!(
                "ALTER TABLE partitions ADD COLUMN {column} {kind}"
            ))?;
        }
    }
    // Version 6: checkpoints per lineage and windows per tag (instances sharing a store).
    // SQLite cannot change a primary key in place: the two tables are copied.
    for (table, column, columns) in [
        ("checkpoints", "lineage", "stream, state, updated_at"),
        ("windows", "tag", "stream, idx, report, created_at"),
    ] {
        if !has_column(conn, table, column)? {
            let create = table_definition(table);
            conn.execute_batch(&format!(
                "BEGIN;
                 ALTER TABLE {table} RENAME TO {table}_v5;
                 {create};
                 INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_v5;
                 DROP TABLE {table}_v5;
                 COMMIT;"
            ))?;
        }
    }
    Ok(())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )
}

/// The `CREATE TABLE` statement of `table` in [`SQLITE`].
fn table_definition(table: &str) -> String {
    let start = SQLITE
        .find(&format!("CREATE TABLE IF NOT EXISTS {table} ("))
        .expect("the table is in the schema");
    let end = start + SQLITE[start..].find(");").expect("statements end") + 1;
    SQLITE[start..end].to_string()
}

/// The same tables on PostgreSQL.
const POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS driftgate_schema (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    stream      TEXT NOT NULL,
    lineage     TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (stream, lineage)
);
CREATE TABLE IF NOT EXISTS windows (
    stream      TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    tag         TEXT NOT NULL DEFAULT '',
    report      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (stream, idx, tag)
);
CREATE TABLE IF NOT EXISTS lineages (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    lease_until BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    until       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    stream      TEXT NOT NULL,
    part        TEXT NOT NULL,
    lineage     TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    next_offset BIGINT,
    claimed_at  BIGINT NOT NULL,
    PRIMARY KEY (stream, part)
);
ALTER TABLE partitions ADD COLUMN IF NOT EXISTS open_state TEXT;
ALTER TABLE partitions ADD COLUMN IF NOT EXISTS watermark BIGINT;
CREATE TABLE IF NOT EXISTS window_parts (
    stream       TEXT NOT NULL,
    part         TEXT NOT NULL,
    first_offset BIGINT NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (stream, part, first_offset)
);
CREATE TABLE IF NOT EXISTS stream_mergers (
    stream       TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    epoch        BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL,
    next_index   BIGINT NOT NULL DEFAULT 0,
    merged_until BIGINT,
    policies     TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    stream      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   BIGINT NOT NULL,
    msg_offset  BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    payload     BYTEA,
    created_at  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id          BIGSERIAL PRIMARY KEY,
    key         TEXT NOT NULL,
    policy      TEXT NOT NULL,
    model       TEXT NOT NULL,
    stream      TEXT NOT NULL,
    window_idx  BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    decision    TEXT NOT NULL,
    at_ms       BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_triggered_once ON decisions (key)
    WHERE outcome = 'triggered';
CREATE INDEX IF NOT EXISTS decisions_by_model ON decisions (model, id);
CREATE INDEX IF NOT EXISTS decisions_by_window ON decisions (stream, window_idx);
CREATE TABLE IF NOT EXISTS alerts (
    rowid       BIGSERIAL,
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    model       TEXT,
    document    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id              BIGSERIAL PRIMARY KEY,
    alert_id        TEXT NOT NULL REFERENCES alerts (id),
    sink            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    UNIQUE (alert_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, status, id);
CREATE TABLE IF NOT EXISTS runs (
    rowid       BIGSERIAL,
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    model       TEXT NOT NULL,
    dag         TEXT NOT NULL,
    status      TEXT NOT NULL,
    request     TEXT NOT NULL,
    plan        TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model, created_at);
CREATE TABLE IF NOT EXISTS run_tasks (
    rowid       BIGSERIAL,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    dag         TEXT NOT NULL,
    task        TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    cache_key   TEXT,
    outputs     TEXT,
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, task)
);
CREATE INDEX IF NOT EXISTS run_tasks_cache ON run_tasks (dag, task, cache_key, status);
CREATE TABLE IF NOT EXISTS baselines (
    rowid       BIGSERIAL,
    stream      TEXT NOT NULL,
    version     TEXT NOT NULL,
    path        TEXT NOT NULL,
    run_id      TEXT,
    active      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (stream, version)
);
CREATE TABLE IF NOT EXISTS run_attempts (
    run_id      TEXT NOT NULL,
    task        TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    exit_code   BIGINT,
    error       TEXT,
    log         TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    pid         BIGINT,
    pid_start   BIGINT,
    PRIMARY KEY (run_id, task, attempt)
);
";

/// The advisory lock instances take while migrating (any fixed number; "drif").
const MIGRATION_LOCK: i64 = 0x6472_6966;

/// Opens or creates a SQLite store (and its directory), brought up to this schema.
pub(super) fn open_sqlite(path: &Path) -> Result<Db, StoreError> {
    let open_error = |message: String| StoreError::Open {
        location: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::create_private_dir(dir).map_err(|e| open_error(e.to_string()))?;
    }
    // A new store is created 0600 (SQLite gives its journal files the same mode); an
    // existing one keeps its mode.
    if !path.exists() {
        crate::files::create_private_file(path).map_err(|e| open_error(e.to_string()))?;
    }
    let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
    prepare_sqlite(&conn).map_err(open_error)?;
    Ok(Db::Sqlite(conn))
}

fn prepare_sqlite(conn: &Connection) -> Result<(), String> {
    let text = |e: rusqlite::Error| e.to_string();
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(text)?;
    // FULL: a committed checkpoint survives power loss, which is what lets Kafka offsets
    // be committed right after it.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(text)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(text)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(text)?;
    check_version(version)?;
    conn.execute_batch(SQLITE).map_err(text)?;
    migrate_sqlite(conn).map_err(text)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(text)
}

fn check_version(version: i64) -> Result<(), String> {
    if version > SCHEMA_VERSION {
        return Err(format!(
            "its schema version is {version}; this driftgate reads {SCHEMA_VERSION}"
        ));
    }
    Ok(())
}

/// Opens an existing SQLite store for reading only (the API's view while the service writes).
pub(super) fn open_sqlite_read_only(path: &Path) -> Result<Db, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        location: path.display().to_string(),
        message: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(Db::Sqlite(conn))
}

/// The schema version a store has (0: none yet), read without changing anything, and the one
/// this build writes.
pub fn versions(url: &super::StoreUrl) -> Result<(i64, i64), StoreError> {
    let store = super::Store::open_read_only(url)?;
    let version = match &store.db {
        Db::Sqlite(conn) => conn.pragma_query_value(None, "user_version", |row| row.get(0))?,
        Db::Postgres(_) => {
            use super::db::Sql;
            let exists = store.db.query_opt(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'driftgate_schema'",
                &[],
            )?;
            match exists {
                Some(_) => store
                    .db
                    .query_opt("SELECT MAX(version) FROM driftgate_schema", &[])?
                    .map(|row| row.get::<Option<i64>>(0))
                    .transpose()?
                    .flatten()
                    .unwrap_or(0),
                None => 0,
            }
        }
    };
    Ok((version, SCHEMA_VERSION))
}

/// Connects to a PostgreSQL store and brings its schema up to this version.
pub(super) fn open_postgres(
    url: &str,
    settings: &super::PostgresSettings,
) -> Result<Db, StoreError> {
    let open_error = |message: String| StoreError::Open {
        location: crate::redact::secrets(url),
        message: crate::redact::secrets(&message),
    };
    let mut client = super::connect::connect(url, settings).map_err(open_error)?;
    migrate_postgres(&mut client).map_err(open_error)?;
    Ok(Db::Postgres(super::db::Pg::new(client, url, settings)))
}

fn migrate_postgres(client: &mut postgres::Client) -> Result<(), String> {
    let text = |e: postgres::Error| e.to_string();
    let mut tx = client.transaction().map_err(text)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(text)?;
    tx.batch_execute(POSTGRES).map_err(text)?;
    let version: Option<i64> = tx
        .query_opt("SELECT max(version) FROM driftgate_schema", &[])
        .map_err(text)?
        .and_then(|row| row.get(0));
    check_version(version.unwrap_or(0))?;
    tx.execute("DELETE FROM driftgate_schema", &[])
        .map_err(text)?;
    tx.execute(
        "INSERT INTO driftgate_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .map_err(text)?;
    tx.commit().map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Sql;

    #[test]
    fn issue_16_an_older_sqlite_store_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        // Version 4's tables that later versions changed, with a row each.
        conn.execute_batch(
            "CREATE TABLE checkpoints (stream TEXT PRIMARY KEY, state TEXT NOT NULL,
                 updated_at INTEGER NOT NULL);
             CREATE TABLE windows (stream TEXT NOT NULL, idx INTEGER NOT NULL,
                 report TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (stream, idx));
             CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,
                 policy TEXT NOT NULL, model TEXT NOT NULL, stream TEXT NOT NULL,
                 window_idx INTEGER NOT NULL, outcome TEXT NOT NULL, decision TEXT NOT NULL,
                 created_at INTEGER NOT NULL);
             CREATE TABLE partitions (stream TEXT NOT NULL, part TEXT NOT NULL,
                 lineage TEXT NOT NULL, epoch INTEGER NOT NULL, next_offset INTEGER,
                 claimed_at INTEGER NOT NULL, PRIMARY KEY (stream, part));
             INSERT INTO partitions VALUES ('s', 't/0', 'a', 1, 5, 1);
             INSERT INTO checkpoints VALUES ('s', '{}', 1);
             INSERT INTO windows VALUES ('s', 7, '{\"w\": 7}', 1);
             INSERT INTO decisions (key, policy, model, stream, window_idx, outcome, decision,
                 created_at) VALUES ('p/m/s/7', 'p', 'm', 's', 7, 'triggered',
                 '{\"at_ms\": 4200}', 1);
             PRAGMA user_version = 4;",
        )
        .unwrap();
        drop(conn);
        let db = open_sqlite(&path).unwrap();
        let row = db
            .query_opt(
                "SELECT c.lineage, c.state, w.tag, w.report, d.at_ms FROM checkpoints c, windows w,
                 decisions d",
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<String>(0).unwrap(), "");
        assert_eq!(row.get::<String>(1).unwrap(), "{}");
        assert_eq!(row.get::<String>(2).unwrap(), "");
        assert_eq!(row.get::<String>(3).unwrap(), "{\"w\": 7}");
        assert_eq!(row.get::<i64>(4).unwrap(), 4200);
        // Version 7: a partition's own state, empty for the rows before.
        let row = db
            .query_opt(
                "SELECT next_offset, open_state, watermark FROM partitions",
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 5);
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<Option<i64>>(2).unwrap(), None);
        drop(db);
        // Opening again changes nothing; a newer store is refused.
        let db = open_sqlite(&path).unwrap();
        let Db::Sqlite(conn) = &db else {
            unreachable!()
        };
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(db);
        let err = open_sqlite(&path).err().unwrap().to_string();
        assert!(
            err.contains(&format!("this driftgate reads {SCHEMA_VERSION}")),
            "{err}"
        );
    }
}
