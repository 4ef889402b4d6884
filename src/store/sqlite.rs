//! SQLite implementation of the store: one file, WAL journal, schema versioned by
//! `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;
use crate::pipeline::{Checkpoint, JudgedWindow};

/// The schema version this build creates and reads.
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    stream      TEXT PRIMARY KEY,
    state       TEXT NOT NULL,       -- JSON: Checkpoint
    updated_at  INTEGER NOT NULL     -- epoch milliseconds
);
CREATE TABLE IF NOT EXISTS windows (
    stream      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    report      TEXT NOT NULL,       -- JSON: the window report
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (stream, idx)
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
    created_at  INTEGER NOT NULL
);
-- Never two triggered decisions for one key: a restart cannot trigger a window twice.
CREATE UNIQUE INDEX IF NOT EXISTS decisions_triggered_once ON decisions (key)
    WHERE outcome = 'triggered';
CREATE INDEX IF NOT EXISTS decisions_by_model ON decisions (model, id);
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

/// Brings tables an older version created up to this one (columns added since).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Version 4: the attempt's process, to stop what a crash left running.
    for (column, kind) in [("pid", "INTEGER"), ("pid_start", "INTEGER")] {
        let exists: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('run_attempts') WHERE name = ?1",
            [column],
            |row| row.get(0),
        )?;
        if !exists {
            conn.execute_batch(&format!(
                "ALTER TABLE run_attempts ADD COLUMN {column} {kind}"
            ))?;
        }
    }
    Ok(())
}

/// A window report as read back from the store: the JSON its row holds, as the API serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Window index in the stream.
    pub index: u64,
    /// The report, as stored.
    pub report: serde_json::Value,
}

/// A message that could not be decoded, kept when the stream has no dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Bounded reason label.
    pub reason: String,
    /// The full error message.
    pub detail: String,
    /// The payload as received.
    pub payload: Option<Vec<u8>>,
}

/// The store.
pub struct Store {
    pub(super) conn: Connection,
}

/// Wall-clock time, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens or creates the store (and its directory).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |message: String| StoreError::Open {
            path: path.to_path_buf(),
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
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(e.to_string()))?;
        // FULL: a committed checkpoint survives power loss, which is what lets Kafka offsets
        // be committed right after it.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| open_error(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| open_error(e.to_string()))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| open_error(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(open_error(format!(
                "its schema version is {version}; this driftgate reads {SCHEMA_VERSION}"
            )));
        }
        conn.execute_batch(SCHEMA)
            .map_err(|e| open_error(e.to_string()))?;
        migrate(&conn).map_err(|e| open_error(e.to_string()))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Store { conn })
    }

    /// Opens an existing store for reading only (the API's view while the service writes).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Store { conn })
    }

    /// Whether the store answers a query (for readiness).
    pub fn reachable(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(())
    }

    /// A stream's last checkpoint.
    pub fn checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, StoreError> {
        let state: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM checkpoints WHERE stream = ?1",
                params![stream],
                |row| row.get(0),
            )
            .optional()?;
        state
            .map(|json| {
                serde_json::from_str(&json).map_err(|e| StoreError::Damaged {
                    what: "checkpoint",
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// Writes closed windows' reports and the checkpoint that follows them, atomically, and
    /// trims reports beyond `keep_windows`. A window index already stored is refused (it would
    /// be a window reported twice).
    pub fn commit(
        &mut self,
        stream: &str,
        closed: &[JudgedWindow],
        checkpoint: &Checkpoint,
        keep_windows: u64,
    ) -> Result<(), StoreError> {
        self.commit_with_outbox(stream, closed, checkpoint, keep_windows, &[], &[])
    }

    /// [`commit`](Store::commit), with the alerts the windows raised put in the outbox and the
    /// runs their triggers start queued, in the same transaction: they exist exactly when the
    /// windows do, and a key that already has a run gets no second one.
    pub fn commit_with_outbox(
        &mut self,
        stream: &str,
        closed: &[JudgedWindow],
        checkpoint: &Checkpoint,
        keep_windows: u64,
        alerts: &[crate::alert::Routed],
        runs: &[super::RunRequest],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let state = serde_json::to_string(checkpoint).expect("checkpoints serialise");
        let tx = self.conn.transaction()?;
        for window in closed {
            tx.execute(
                "INSERT INTO windows (stream, idx, report, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![stream, window.index as i64, window.report.to_json(), now],
            )?;
            for decision in &window.decisions {
                let inserted = tx.execute(
                    "INSERT OR IGNORE INTO decisions
                     (key, policy, model, stream, window_idx, outcome, decision, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        decision.key,
                        decision.policy,
                        decision.model,
                        decision.stream,
                        decision.window as i64,
                        decision.outcome.as_str(),
                        serde_json::to_string(decision).expect("decisions serialise"),
                        now
                    ],
                )?;
                if inserted == 0 {
                    tracing::warn!(key = %decision.key,
                        "a triggered decision for this key is already stored; not triggering twice");
                }
            }
        }
        tx.execute(
            "INSERT INTO checkpoints (stream, state, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            params![stream, state, now],
        )?;
        if !closed.is_empty() {
            tx.execute(
                "DELETE FROM windows WHERE stream = ?1 AND idx <= (SELECT MAX(idx) FROM windows WHERE stream = ?1) - ?2",
                params![stream, keep_windows as i64],
            )?;
            // Decisions that changed nothing age out with their windows; the others (triggers
            // and suppressed triggers) are the audit trail and stay.
            tx.execute(
                "DELETE FROM decisions WHERE stream = ?1 AND outcome = 'not_triggered'
                 AND window_idx <= (SELECT MAX(window_idx) FROM decisions WHERE stream = ?1) - ?2",
                params![stream, keep_windows as i64],
            )?;
        }
        super::outbox::insert(&tx, alerts, now)?;
        for (run, queued) in runs.iter().zip(super::runs::insert_runs(&tx, runs, now)?) {
            if !queued {
                tracing::warn!(key = %run.key, "a run for this key exists; not starting another");
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The latest window reports of a stream, newest first.
    pub fn latest_windows(&self, stream: &str, limit: u64) -> Result<Vec<WindowRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT idx, report FROM windows WHERE stream = ?1 ORDER BY idx DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![stream, limit as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (index, report) = row?;
            let report = serde_json::from_str(&report).map_err(|e| StoreError::Damaged {
                what: "window report",
                message: e.to_string(),
            })?;
            Ok(WindowRow {
                index: index as u64,
                report,
            })
        })
        .collect()
    }

    /// Keeps a dead letter; returns its id (to forget it once its topic confirmed it).
    pub fn add_dead_letter(&self, stream: &str, letter: &DeadLetter) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO dead_letters (stream, topic, partition, msg_offset, reason, detail, payload, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                stream,
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
                letter.detail,
                letter.payload,
                now_ms()
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Forgets a dead letter its dead-letter topic confirmed.
    pub fn forget_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Dead letters of a stream, oldest first.
    pub fn dead_letters(&self, stream: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT topic, partition, msg_offset, reason, detail, payload FROM dead_letters WHERE stream = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map(params![stream], |row| {
            Ok(DeadLetter {
                topic: row.get(0)?,
                partition: row.get(1)?,
                offset: row.get(2)?,
                reason: row.get(3)?,
                detail: row.get(4)?,
                payload: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::decode::{BatchDecoder, FeatureKind, FeatureSpec, RecordBatch, Schema};
    use crate::pipeline::report::fixture;
    use crate::policy::Outcome;
    use crate::policy::{Decision, EngineState};
    use crate::window::{RecordPosition, WindowSpec, Windower};

    #[test]
    fn issue_21_a_new_store_and_its_journal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/driftgate.db");
        let store = Store::open(&path).unwrap();
        let letter = DeadLetter {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            reason: "invalid_json".into(),
            detail: "not JSON".into(),
            payload: None,
        };
        store.add_dead_letter("s", &letter).unwrap();
        assert_eq!(mode(&dir.path().join("var")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("var/driftgate.db-wal")), 0o600);
        // An existing store keeps the mode its owner gave it.
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        drop(Store::open(&path).unwrap());
        assert_eq!(mode(&path), 0o640);
    }

    fn checkpoint(records: usize) -> Checkpoint {
        let schema = Schema {
            features: vec![FeatureSpec {
                name: "x".into(),
                kind: FeatureKind::Numeric,
            }],
        };
        let decoder = BatchDecoder::new(&schema);
        let mut batch = RecordBatch::new();
        let mut windower = Windower::new(WindowSpec::Records(1000), schema, 3);
        for i in 0..records {
            decoder
                .decode(format!(r#"{{"x": {i}}}"#).as_bytes(), &mut batch)
                .unwrap();
            let position = RecordPosition {
                topic: "t",
                partition: 0,
                offset: i as i64,
                broker_time_ms: None,
            };
            windower.push(position, batch.record(0));
        }
        Checkpoint {
            open_window: windower.snapshot(),
            next_offsets: BTreeMap::from([("t/0".to_string(), records as i64)]),
            policies: EngineState::default(),
            unreported_window: None,
            deferred_errors: Vec::new(),
        }
    }

    #[test]
    fn checkpoints_and_windows_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/driftgate.db");
        {
            let mut store = Store::open(&path).unwrap();
            assert!(store.checkpoint("s").unwrap().is_none());
            let window = JudgedWindow {
                index: 2,
                report: fixture::report(10, Vec::new()),
                decisions: Vec::new(),
                data: None,
            };
            store.commit("s", &[window], &checkpoint(5), 10).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.checkpoint("s").unwrap(), Some(checkpoint(5)));
        let windows = store.latest_windows("s", 10).unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].index, 2);
        assert_eq!(windows[0].report["stream"], "payments");
    }

    #[test]
    fn a_window_index_is_stored_once_and_the_checkpoint_rolls_back_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let window = JudgedWindow {
            index: 0,
            report: fixture::report(0, Vec::new()),
            decisions: Vec::new(),
            data: None,
        };
        store
            .commit("s", std::slice::from_ref(&window), &checkpoint(1), 10)
            .unwrap();
        assert!(store.commit("s", &[window], &checkpoint(2), 10).is_err());
        // The failed transaction left the earlier checkpoint in place.
        assert_eq!(store.checkpoint("s").unwrap(), Some(checkpoint(1)));
    }

    #[test]
    fn old_windows_are_trimmed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        for index in 0..10 {
            let window = JudgedWindow {
                index,
                report: fixture::report(index, Vec::new()),
                decisions: Vec::new(),
                data: None,
            };
            store.commit("s", &[window], &checkpoint(0), 3).unwrap();
        }
        let indices: Vec<u64> = store
            .latest_windows("s", 100)
            .unwrap()
            .iter()
            .map(|w| w.index)
            .collect();
        assert_eq!(indices, vec![9, 8, 7]);
    }

    fn decision(window: u64, outcome: Outcome) -> Decision {
        Decision {
            key: format!("p/m/s/{window}"),
            policy: "p".into(),
            model: "m".into(),
            dag: None,
            stream: "s".into(),
            window,
            at_ms: 0,
            outcome,
            reason: "because".into(),
            span: Default::default(),
            drifted_features: vec![],
            signals: vec![],
        }
    }

    #[test]
    fn a_key_is_triggered_once_and_quiet_decisions_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        for index in 0..6 {
            let outcome = if index == 1 {
                Outcome::Triggered
            } else {
                Outcome::NotTriggered
            };
            let window = JudgedWindow {
                index,
                report: fixture::report(0, Vec::new()),
                decisions: vec![decision(index, outcome)],
                data: None,
            };
            store.commit("s", &[window], &checkpoint(0), 3).unwrap();
        }
        // Window 1 again (a replay after a lost checkpoint): its trigger is not stored twice.
        let again = JudgedWindow {
            index: 1,
            report: fixture::report(0, Vec::new()),
            decisions: vec![decision(1, Outcome::Triggered)],
            data: None,
        };
        store
            .conn
            .execute("DELETE FROM windows WHERE idx = 1", [])
            .unwrap();
        store.commit("s", &[again], &checkpoint(0), 3).unwrap();
        let kept: Vec<(u64, Outcome)> = store
            .latest_decisions(Some("m"), 100)
            .unwrap()
            .iter()
            .map(|d| (d.window, d.outcome))
            .collect();
        assert_eq!(
            kept,
            [
                (5, Outcome::NotTriggered),
                (4, Outcome::NotTriggered),
                (3, Outcome::NotTriggered),
                (1, Outcome::Triggered),
            ]
        );
        assert!(store
            .latest_decisions(Some("other"), 10)
            .unwrap()
            .is_empty());
        assert_eq!(store.latest_decisions(None, 2).unwrap().len(), 2);
    }

    #[test]
    fn dead_letters_are_kept_with_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let letter = DeadLetter {
            topic: "t".into(),
            partition: 2,
            offset: 41,
            reason: "invalid_json".into(),
            detail: "invalid JSON: expected value".into(),
            payload: Some(b"{oops".to_vec()),
        };
        store.add_dead_letter("s", &letter).unwrap();
        assert_eq!(store.dead_letters("s").unwrap(), vec![letter]);
    }
}
