//! Checkpoints, closed windows with their decisions, and dead letters.

use super::db::{values, Sql};
use super::{now_ms, Store, StoreError};
use crate::pipeline::{Checkpoint, JudgedWindow};

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

/// What closed windows set off: their alerts (routed to sinks) and the runs their triggers
/// start.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    /// Alerts with the sinks that take them.
    pub alerts: Vec<crate::alert::Routed>,
    /// Runs to queue.
    pub runs: Vec<super::RunRequest>,
}

impl Outbox {
    /// Whether there is nothing to deliver or run.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.runs.is_empty()
    }
}

/// Parses stored JSON; a failure is a damaged row.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Damaged {
        what,
        message: e.to_string(),
    })
}

impl Store {
    /// A stream's last checkpoint.
    pub fn checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, StoreError> {
        let row = self.db.query_opt(
            "SELECT state FROM checkpoints WHERE stream = $1 AND lineage = $2",
            values![stream, self.lineage()],
        )?;
        row.map(|row| parse_json("checkpoint", &row.get::<String>(0)?))
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
        let mut closed = closed.to_vec();
        let nothing = |_: &[JudgedWindow]| Outbox::default();
        self.commit_with_outbox(stream, &mut closed, checkpoint, keep_windows, &[], nothing)?;
        Ok(())
    }

    /// [`commit`](Store::commit), with the alerts the windows raised put in the outbox and the
    /// runs their triggers start queued, in the same transaction: they exist exactly when the
    /// windows do, and a key that already has a run gets no second one. In a shared store the
    /// windows' triggers are first confirmed against every instance's (see `arbiter`), which
    /// may turn some into suppressions: `outbox` makes the alerts and runs of the windows as
    /// confirmed. Returns them.
    pub fn commit_with_outbox(
        &mut self,
        stream: &str,
        closed: &mut [JudgedWindow],
        checkpoint: &Checkpoint,
        keep_windows: u64,
        policies: &[crate::policy::Policy],
        outbox: impl FnOnce(&[JudgedWindow]) -> Outbox,
    ) -> Result<Outbox, StoreError> {
        let now = now_ms();
        let state = serde_json::to_string(checkpoint).expect("checkpoints serialise");
        let tx = self.db.transaction()?;
        if let Some(fence) = &self.fence {
            super::fence::check(&tx, fence, stream, &checkpoint.next_offsets)?;
            for window in closed.iter_mut() {
                super::arbiter::arbitrate(&tx, &mut window.decisions, policies)?;
            }
        }
        let out = outbox(closed);
        tx.execute(
            "INSERT INTO checkpoints (stream, lineage, state, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stream, lineage) DO UPDATE SET state = excluded.state,
               updated_at = excluded.updated_at",
            values![stream, self.lineage(), state, now],
        )?;
        write_windows(&tx, stream, closed, keep_windows, &out, now)?;
        tx.commit()?;
        Ok(out)
    }

    /// The latest window reports of a stream, newest first.
    pub fn latest_windows(&self, stream: &str, limit: u64) -> Result<Vec<WindowRow>, StoreError> {
        let rows = self.db.query(
            "SELECT idx, report FROM windows WHERE stream = $1
             ORDER BY idx DESC, created_at DESC LIMIT $2",
            values![stream, limit],
        )?;
        rows.iter()
            .map(|row| {
                Ok(WindowRow {
                    index: row.get(0)?,
                    report: parse_json("window report", &row.get::<String>(1)?)?,
                })
            })
            .collect()
    }

    /// The latest window reports of a stream as stored (JSON text), newest first: for readers
    /// that parse only what they show.
    pub fn latest_window_documents(
        &self,
        stream: &str,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self.db.query(
            "SELECT report FROM windows WHERE stream = $1
             ORDER BY idx DESC, created_at DESC LIMIT $2",
            values![stream, limit],
        )?;
        rows.iter().map(|row| row.get::<String>(0)).collect()
    }

    /// One window's reports as stored (one per instance tag; one on a single node), newest
    /// first.
    pub fn window_documents(&self, stream: &str, index: u64) -> Result<Vec<String>, StoreError> {
        let rows = self.db.query(
            "SELECT report FROM windows WHERE stream = $1 AND idx = $2 ORDER BY created_at DESC",
            values![stream, index],
        )?;
        rows.iter().map(|row| row.get::<String>(0)).collect()
    }

    /// Keeps a dead letter; returns its id (to forget it once its topic confirmed it).
    pub fn add_dead_letter(&self, stream: &str, letter: &DeadLetter) -> Result<i64, StoreError> {
        let row = self.db.query_opt(
            "INSERT INTO dead_letters (stream, topic, partition, msg_offset, reason, detail, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            values![
                stream,
                &letter.topic,
                letter.partition,
                letter.offset,
                &letter.reason,
                &letter.detail,
                &letter.payload,
                now_ms()
            ],
        )?;
        row.map_or(Ok(0), |row| row.get(0))
    }

    /// Forgets a dead letter its dead-letter topic confirmed.
    pub fn forget_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM dead_letters WHERE id = $1", values![id])?;
        Ok(())
    }

    /// Dead letters of a stream, oldest first.
    pub fn dead_letters(&self, stream: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = self.db.query(
            "SELECT topic, partition, msg_offset, reason, detail, payload FROM dead_letters
             WHERE stream = $1 ORDER BY id",
            values![stream],
        )?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    topic: row.get(0)?,
                    partition: row.get(1)?,
                    offset: row.get(2)?,
                    reason: row.get(3)?,
                    detail: row.get(4)?,
                    payload: row.get(5)?,
                })
            })
            .collect()
    }
}

/// Closed windows' reports and decisions, the alerts and runs they set off, and the trimming
/// of old reports.
pub(super) fn write_windows(
    tx: &impl Sql,
    stream: &str,
    closed: &[JudgedWindow],
    keep_windows: u64,
    out: &Outbox,
    now: i64,
) -> Result<(), StoreError> {
    for window in closed {
        insert_window(tx, stream, window, now)?;
    }
    if !closed.is_empty() {
        trim(tx, stream, keep_windows)?;
    }
    super::outbox::insert(tx, &out.alerts, now)?;
    for (run, queued) in out
        .runs
        .iter()
        .zip(super::runs::insert_runs(tx, &out.runs, now)?)
    {
        if !queued {
            tracing::warn!(key = %run.key, "a run for this key exists; not starting another");
        }
    }
    Ok(())
}

/// One closed window's report and its decisions; a triggered key already stored is kept as it
/// was (a restart never triggers a window twice).
fn insert_window(
    tx: &impl Sql,
    stream: &str,
    window: &JudgedWindow,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO windows (stream, idx, tag, report, created_at) VALUES ($1, $2, $3, $4, $5)",
        values![
            stream,
            window.index,
            &window.tag,
            window.report.to_json(),
            now
        ],
    )?;
    for decision in &window.decisions {
        let inserted = tx.execute(
            "INSERT INTO decisions
             (key, policy, model, stream, window_idx, outcome, decision, at_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            values![
                &decision.key,
                &decision.policy,
                &decision.model,
                &decision.stream,
                decision.window,
                decision.outcome.as_str(),
                serde_json::to_string(decision).expect("decisions serialise"),
                decision.at_ms,
                now
            ],
        )?;
        if inserted == 0 {
            tracing::warn!(key = %decision.key,
                "a triggered decision for this key is already stored; not triggering twice");
        }
    }
    Ok(())
}

/// Deletes reports beyond the newest `keep_windows`, and the decisions that changed nothing
/// with them; triggers and suppressed triggers are the audit trail and stay.
fn trim(tx: &impl Sql, stream: &str, keep_windows: u64) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM windows WHERE stream = $1
         AND idx <= (SELECT MAX(idx) FROM windows WHERE stream = $1) - $2",
        values![stream, keep_windows],
    )?;
    tx.execute(
        "DELETE FROM decisions WHERE stream = $1 AND outcome = 'not_triggered'
         AND window_idx <= (SELECT MAX(window_idx) FROM decisions WHERE stream = $1) - $2",
        values![stream, keep_windows],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use std::path::Path;

    use super::*;
    use crate::decode::{BatchDecoder, FeatureKind, FeatureSpec, RecordBatch, Schema};
    use crate::pipeline::report::fixture;
    use crate::policy::Outcome;
    use crate::policy::{Decision, EngineState};
    use crate::store::db::Sql;
    use crate::store::testing::{self, TestStore};
    use crate::store::StoreUrl;
    use crate::window::{RecordPosition, WindowSpec, Windower};

    #[test]
    fn issue_21_a_new_store_and_its_journal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/driftgate.db");
        let store = Store::open(&StoreUrl::Sqlite(path.clone())).unwrap();
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
        drop(Store::open(&StoreUrl::Sqlite(path.clone())).unwrap());
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
            open_errors: None,
            messages: Default::default(),
            since_retrain: None,
        }
    }

    fn window(index: u64, decisions: Vec<Decision>) -> JudgedWindow {
        JudgedWindow {
            index,
            tag: String::new(),
            report: fixture::report(index, Vec::new()),
            decisions,
            data: None,
        }
    }

    #[test]
    fn checkpoints_and_windows_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = StoreUrl::Sqlite(dir.path().join("nested/driftgate.db"));
        let urls = std::iter::once(sqlite).chain(testing::postgres_database());
        for url in urls {
            {
                let mut store = Store::open(&url).unwrap();
                assert!(store.checkpoint("s").unwrap().is_none());
                store
                    .commit("s", &[window(2, vec![])], &checkpoint(5), 10)
                    .unwrap();
            }
            let store = Store::open(&url).unwrap();
            assert_eq!(store.checkpoint("s").unwrap(), Some(checkpoint(5)), "{url}");
            let windows = store.latest_windows("s", 10).unwrap();
            assert_eq!(windows.len(), 1);
            assert_eq!(windows[0].index, 2);
            assert_eq!(windows[0].report["stream"], "payments");
        }
    }

    #[test]
    fn a_window_index_is_stored_once_and_the_checkpoint_rolls_back_with_it() {
        for TestStore {
            mut store, name, ..
        } in testing::stores()
        {
            store
                .commit("s", &[window(0, vec![])], &checkpoint(1), 10)
                .unwrap();
            assert!(store
                .commit("s", &[window(0, vec![])], &checkpoint(2), 10)
                .is_err());
            // The failed transaction left the earlier checkpoint in place.
            assert_eq!(
                store.checkpoint("s").unwrap(),
                Some(checkpoint(1)),
                "{name}"
            );
            // And the connection is usable after it.
            store
                .commit("s", &[window(1, vec![])], &checkpoint(3), 10)
                .unwrap();
        }
    }

    #[test]
    fn old_windows_are_trimmed_newest_first() {
        for TestStore {
            mut store, name, ..
        } in testing::stores()
        {
            for index in 0..10 {
                store
                    .commit("s", &[window(index, vec![])], &checkpoint(0), 3)
                    .unwrap();
            }
            let indices: Vec<u64> = store
                .latest_windows("s", 100)
                .unwrap()
                .iter()
                .map(|w| w.index)
                .collect();
            assert_eq!(indices, vec![9, 8, 7], "{name}");
        }
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
        for TestStore {
            mut store, name, ..
        } in testing::stores()
        {
            for index in 0..6 {
                let outcome = if index == 1 {
                    Outcome::Triggered
                } else {
                    Outcome::NotTriggered
                };
                let judged = window(index, vec![decision(index, outcome)]);
                store.commit("s", &[judged], &checkpoint(0), 3).unwrap();
            }
            // Window 1 again (a replay after a lost checkpoint): its trigger is not stored twice.
            store
                .db
                .execute("DELETE FROM windows WHERE idx = 1", &[])
                .unwrap();
            let again = window(1, vec![decision(1, Outcome::Triggered)]);
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
                ],
                "{name}"
            );
            assert!(store
                .latest_decisions(Some("other"), 10)
                .unwrap()
                .is_empty());
            assert_eq!(store.latest_decisions(None, 2).unwrap().len(), 2);
        }
    }

    #[test]
    fn dead_letters_are_kept_with_their_origin() {
        for TestStore { store, name, .. } in testing::stores() {
            let letter = DeadLetter {
                topic: "t".into(),
                partition: 2,
                offset: 41,
                reason: "invalid_json".into(),
                detail: "invalid JSON: expected value".into(),
                payload: Some(b"{oops".to_vec()),
            };
            let first = store.add_dead_letter("s", &letter).unwrap();
            let second = store.add_dead_letter("s", &letter).unwrap();
            assert!(second > first, "{name}");
            store.forget_dead_letter(second).unwrap();
            assert_eq!(store.dead_letters("s").unwrap(), vec![letter], "{name}");
        }
    }
}
