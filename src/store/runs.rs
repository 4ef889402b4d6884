//! Retraining runs, their tasks and attempts: the executor's state and the lineage the API
//! shows.

use serde::{Deserialize, Serialize};

use super::db::{values, Row, Sql, Value};
use super::windows::parse_json;
use super::{now_ms, RunStatus, Store, StoreError, TaskStatus};

/// What a run is asked to do: written with the decision that triggered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRequest {
    /// The run's id.
    pub id: String,
    /// Idempotency key: the triggering decision's key (or a manual run's own).
    pub key: String,
    /// The model retrained.
    pub model: String,
    /// The DAG run.
    pub dag: String,
    /// The stream.
    pub stream: String,
    /// The triggering window's index.
    pub window: Option<u64>,
    /// The baseline the window was judged against.
    pub baseline: Option<String>,
    /// The model's features that drifted.
    pub drifted_features: Vec<String>,
    /// The whole decision (null for a manual run).
    pub decision: serde_json::Value,
    /// The exported window data (`window.json`, columns), when there is one.
    pub window_file: Option<String>,
    /// The exported window records (`window.jsonl`, one record per line), when the stream
    /// keeps records.
    #[serde(default)]
    pub records_file: Option<String>,
}

/// A task output with its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    /// The declared output name.
    pub file: String,
    /// Where it is.
    pub path: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// A run as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// Id.
    pub id: String,
    /// Idempotency key.
    pub key: String,
    /// Model.
    pub model: String,
    /// DAG.
    pub dag: String,
    /// Where the run is.
    pub status: RunStatus,
    /// The request.
    pub request: RunRequest,
    /// The plan.
    pub plan: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub started_at: Option<i64>,
    /// Epoch milliseconds.
    pub finished_at: Option<i64>,
}

/// A task of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskRecord {
    /// The task.
    pub task: String,
    /// Where the task is.
    pub status: TaskStatus,
    /// Why.
    pub reason: String,
    /// Its cache key.
    pub cache_key: Option<String>,
    /// Its outputs.
    pub outputs: Vec<Artifact>,
    /// Epoch milliseconds.
    pub started_at: Option<i64>,
    /// Epoch milliseconds.
    pub finished_at: Option<i64>,
    /// Its attempts.
    pub attempts: Vec<AttemptRecord>,
}

/// One attempt of a task.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    /// 1, 2, ...
    pub attempt: u32,
    /// The exit code (none when killed or not started).
    pub exit_code: Option<i32>,
    /// What went wrong.
    pub error: Option<String>,
    /// The attempt's log file (stdout and stderr).
    pub log: String,
    /// Epoch milliseconds.
    pub started_at: i64,
    /// Epoch milliseconds.
    pub finished_at: Option<i64>,
}

/// Queues runs in a transaction (with the window that triggered them). A key that already has a
/// run is left alone: false for it.
pub(super) fn insert_runs(
    tx: &impl Sql,
    runs: &[RunRequest],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    let mut inserted = Vec::new();
    for run in runs {
        let n = tx.execute(
            "INSERT INTO runs (id, key, model, dag, status, request, created_at)
             VALUES ($1, $2, $3, $4, 'queued', $5, $6) ON CONFLICT DO NOTHING",
            values![
                &run.id,
                &run.key,
                &run.model,
                &run.dag,
                serde_json::to_string(run).expect("requests serialise"),
                now
            ],
        )?;
        inserted.push(n == 1);
    }
    Ok(inserted)
}

const RUN_COLUMNS: &str =
    "id, key, model, dag, status, request, plan, error, created_at, started_at, finished_at";

impl Store {
    /// Queues a run outside a window commit (a manual run). False when its key has a run.
    pub fn queue_run(&mut self, run: &RunRequest) -> Result<bool, StoreError> {
        let tx = self.db.transaction()?;
        let inserted = insert_runs(&tx, std::slice::from_ref(run), now_ms())?;
        tx.commit()?;
        Ok(inserted[0])
    }

    /// Runs with this status, oldest first.
    pub fn runs_with_status(&self, status: RunStatus) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(
            "WHERE status = $1 ORDER BY created_at, rowid",
            values![status],
        )
    }

    /// The latest runs, newest first, of one model or all.
    pub fn runs(&self, model: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(
            "WHERE (CAST($1 AS TEXT) IS NULL OR model = $1)
             ORDER BY created_at DESC, rowid DESC LIMIT $2",
            values![model, limit],
        )
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.select_runs("WHERE id = $1", values![id])?.pop())
    }

    /// Runs matching `clause` (a WHERE with ORDER BY and LIMIT as needed).
    pub(super) fn select_runs(
        &self,
        clause: &str,
        args: &[Value],
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows = self
            .db
            .query(&format!("SELECT {RUN_COLUMNS} FROM runs {clause}"), args)?;
        rows.iter().map(run_record).collect()
    }

    /// Sets a run's status (and its plan, error and times as they come).
    pub fn set_run_status(
        &self,
        id: &str,
        status: RunStatus,
        plan: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE runs SET status = $2, plan = COALESCE($3, plan), error = COALESCE($4, error),
               started_at = CASE WHEN $2 = 'running' THEN CAST($5 AS BIGINT) ELSE started_at END,
               finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled', 'skipped')
                 THEN CAST($5 AS BIGINT) ELSE finished_at END
             WHERE id = $1",
            values![
                id,
                status,
                plan.map(|p| p.to_string()),
                error.map(crate::redact::secrets),
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// Asks for a run to be cancelled: a queued one is cancelled at once; a running one when
    /// its executor next looks (within a fraction of a second). False when the run is finished
    /// or unknown.
    pub fn request_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let queued = self.db.execute(
            "UPDATE runs SET status = 'cancelled', error = 'cancelled on request', finished_at = $2
             WHERE id = $1 AND status = 'queued'",
            values![id, now_ms()],
        )?;
        let running = self.db.execute(
            "UPDATE runs SET error = 'cancel requested' WHERE id = $1 AND status = 'running'",
            values![id],
        )?;
        Ok(queued + running > 0)
    }

    /// Whether a cancellation of a running run was asked for.
    pub fn cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let row = self
            .db
            .query_opt("SELECT error FROM runs WHERE id = $1", values![id])?;
        let error: Option<String> = row.map(|row| row.get(0)).transpose()?.flatten();
        Ok(error.as_deref() == Some("cancel requested"))
    }

    /// Records a task's state.
    #[allow(clippy::too_many_arguments)]
    pub fn set_task(
        &self,
        run: &str,
        dag: &str,
        task: &str,
        status: TaskStatus,
        reason: &str,
        cache_key: Option<&str>,
        outputs: Option<&[Artifact]>,
    ) -> Result<(), StoreError> {
        let outputs = outputs.map(|o| serde_json::to_string(o).expect("artifacts serialise"));
        self.db.execute(
            "INSERT INTO run_tasks (run_id, dag, task, status, reason, cache_key, outputs, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $4 = 'running' THEN CAST($8 AS BIGINT) END)
             ON CONFLICT (run_id, task) DO UPDATE SET status = $4, reason = $5,
               cache_key = COALESCE($6, run_tasks.cache_key), outputs = COALESCE($7, run_tasks.outputs),
               started_at = CASE WHEN $4 = 'running' THEN COALESCE(run_tasks.started_at, CAST($8 AS BIGINT))
                 ELSE run_tasks.started_at END,
               finished_at = CASE WHEN $4 IN ('succeeded', 'cached', 'skipped', 'failed', 'cancelled')
                 THEN CAST($8 AS BIGINT) ELSE run_tasks.finished_at END",
            values![run, dag, task, status, reason, cache_key, outputs, now_ms()],
        )?;
        Ok(())
    }

    /// The highest attempt number recorded for `task` of `run` (0 when none).
    pub fn last_attempt(&self, run: &str, task: &str) -> Result<u32, StoreError> {
        let row = self.db.query_opt(
            "SELECT max(attempt) FROM run_attempts WHERE run_id = $1 AND task = $2",
            values![run, task],
        )?;
        let last: Option<u32> = row.map(|row| row.get(0)).transpose()?.flatten();
        Ok(last.unwrap_or(0))
    }

    /// Records an attempt starting (`finished` none) or ending with its exit code and error.
    pub fn set_attempt(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        log: &str,
        finished: Option<(Option<i32>, Option<&str>)>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        match finished {
            None => self.db.execute(
                "INSERT INTO run_attempts (run_id, task, attempt, log, started_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (run_id, task, attempt) DO UPDATE SET log = excluded.log,
                   started_at = excluded.started_at, exit_code = NULL, error = NULL,
                   finished_at = NULL, pid = NULL, pid_start = NULL",
                values![run, task, attempt, log, now],
            )?,
            Some((exit_code, error)) => self.db.execute(
                "UPDATE run_attempts SET exit_code = $4, error = $5, finished_at = $6
                 WHERE run_id = $1 AND task = $2 AND attempt = $3",
                values![
                    run,
                    task,
                    attempt,
                    exit_code,
                    error.map(crate::redact::secrets),
                    now
                ],
            )?,
        };
        Ok(())
    }

    /// Records the process (and group) an attempt runs in, with its start time (clock ticks
    /// since boot), so that a restart can tell it from a later process with the same id.
    pub fn set_attempt_process(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        pid: u32,
        start: u64,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE run_attempts SET pid = $4, pid_start = $5
             WHERE run_id = $1 AND task = $2 AND attempt = $3",
            values![run, task, attempt, pid, start as i64],
        )?;
        Ok(())
    }

    /// A run's attempts that never finished and whose process was recorded: `(task, attempt,
    /// pid, start)`.
    pub fn unfinished_attempts(
        &self,
        run: &str,
    ) -> Result<Vec<(String, u32, u32, u64)>, StoreError> {
        let rows = self.db.query(
            "SELECT task, attempt, pid, pid_start FROM run_attempts
             WHERE run_id = $1 AND finished_at IS NULL AND pid IS NOT NULL",
            values![run],
        )?;
        rows.iter()
            .map(|row| {
                let start: Option<i64> = row.get(3)?;
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    start.unwrap_or(-1) as u64,
                ))
            })
            .collect()
    }

    /// The outputs of the latest successful run of `task` of `dag` with this cache key.
    pub fn cached_outputs(
        &self,
        dag: &str,
        task: &str,
        cache_key: &str,
    ) -> Result<Option<(String, Vec<Artifact>)>, StoreError> {
        let row = self.db.query_opt(
            "SELECT run_id, outputs FROM run_tasks
             WHERE dag = $1 AND task = $2 AND cache_key = $3 AND status = 'succeeded'
             ORDER BY finished_at DESC LIMIT 1",
            values![dag, task, cache_key],
        )?;
        row.map(|row| {
            let outputs: Option<String> = row.get(1)?;
            let outputs = outputs
                .and_then(|o| serde_json::from_str(&o).ok())
                .unwrap_or_default();
            Ok((row.get(0)?, outputs))
        })
        .transpose()
    }

    /// A run's tasks with their attempts, in the order they were recorded.
    pub fn run_tasks(&self, run: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = self.db.query(
            "SELECT task, status, reason, cache_key, outputs, started_at, finished_at
             FROM run_tasks WHERE run_id = $1 ORDER BY rowid",
            values![run],
        )?;
        let mut tasks: Vec<TaskRecord> = rows.iter().map(task_record).collect::<Result<_, _>>()?;
        let rows = self.db.query(
            "SELECT task, attempt, exit_code, error, log, started_at, finished_at
             FROM run_attempts WHERE run_id = $1 ORDER BY task, attempt",
            values![run],
        )?;
        for row in rows {
            let task: String = row.get(0)?;
            let attempt = AttemptRecord {
                attempt: row.get(1)?,
                exit_code: row.get(2)?,
                error: row.get(3)?,
                log: row.get(4)?,
                started_at: row.get(5)?,
                finished_at: row.get(6)?,
            };
            if let Some(t) = tasks.iter_mut().find(|t| t.task == task) {
                t.attempts.push(attempt);
            }
        }
        Ok(tasks)
    }
}

fn run_record(row: &Row) -> Result<RunRecord, StoreError> {
    let plan: Option<String> = row.get(6)?;
    let created: Option<i64> = row.get(8)?;
    Ok(RunRecord {
        id: row.get(0)?,
        key: row.get(1)?,
        model: row.get(2)?,
        dag: row.get(3)?,
        status: row.get(4)?,
        request: parse_json("run", &row.get::<String>(5)?)?,
        plan: plan.and_then(|p| serde_json::from_str(&p).ok()),
        error: row.get(7)?,
        created_at: created.unwrap_or_default(),
        started_at: row.get(9)?,
        finished_at: row.get(10)?,
    })
}

fn task_record(row: &Row) -> Result<TaskRecord, StoreError> {
    let outputs: Option<String> = row.get(4)?;
    Ok(TaskRecord {
        task: row.get(0)?,
        status: row.get(1)?,
        reason: row.get(2)?,
        cache_key: row.get(3)?,
        outputs: outputs
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default(),
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        attempts: Vec::new(),
    })
}

/// A baseline version of a stream.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BaselineVersion {
    /// The baseline's content id.
    pub version: String,
    /// Where the file is kept.
    pub path: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// Whether the stream's detectors use it now.
    pub active: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
}

impl Store {
    /// Makes `version` (kept at `path`, produced by `run_id`) the stream's baseline; earlier
    /// versions stay listed.
    pub fn rotate_baseline(
        &mut self,
        stream: &str,
        version: &str,
        path: &str,
        run_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "UPDATE baselines SET active = 0 WHERE stream = $1",
            values![stream],
        )?;
        tx.execute(
            "INSERT INTO baselines (stream, version, path, run_id, active, created_at)
             VALUES ($1, $2, $3, $4, 1, $5)
             ON CONFLICT (stream, version) DO UPDATE SET active = 1, path = $3, run_id = $4",
            values![stream, version, path, run_id, now_ms()],
        )?;
        tx.commit()
    }

    /// The stream's baseline versions, newest first.
    pub fn baselines(&self, stream: &str) -> Result<Vec<BaselineVersion>, StoreError> {
        let rows = self.db.query(
            "SELECT version, path, run_id, active, created_at FROM baselines
             WHERE stream = $1 ORDER BY created_at DESC, rowid DESC",
            values![stream],
        )?;
        rows.iter()
            .map(|row| {
                Ok(BaselineVersion {
                    version: row.get(0)?,
                    path: row.get(1)?,
                    run_id: row.get(2)?,
                    active: row.get(3)?,
                    created_at: row.get(4)?,
                })
            })
            .collect()
    }

    /// The version a run rotated in and the stream uses now; `None`: the configured baseline.
    pub fn active_baseline(&self, stream: &str) -> Result<Option<BaselineVersion>, StoreError> {
        Ok(self.baselines(stream)?.into_iter().find(|v| v.active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{self, TestStore};

    fn request(id: &str, key: &str) -> RunRequest {
        RunRequest {
            id: id.into(),
            ..crate::dag::request::manual(key.into(), "m", "dag", "s", vec!["x".into()], None)
        }
    }

    #[test]
    fn a_run_its_tasks_attempts_and_baselines_round_trip_on_both_databases() {
        for TestStore {
            mut store, name, ..
        } in testing::stores()
        {
            assert!(store.queue_run(&request("r1", "k1")).unwrap(), "{name}");
            assert!(
                !store.queue_run(&request("r2", "k1")).unwrap(),
                "{name}: key reused"
            );
            store
                .set_run_status(
                    "r1",
                    RunStatus::Running,
                    Some(&serde_json::json!({"p": 1})),
                    None,
                )
                .unwrap();
            store
                .set_task(
                    "r1",
                    "dag",
                    "train",
                    TaskStatus::Running,
                    "drifted",
                    Some("c1"),
                    None,
                )
                .unwrap();
            assert_eq!(store.last_attempt("r1", "train").unwrap(), 0, "{name}");
            store.set_attempt("r1", "train", 1, "a1.log", None).unwrap();
            store
                .set_attempt_process("r1", "train", 1, 4242, 77)
                .unwrap();
            assert_eq!(
                store.unfinished_attempts("r1").unwrap(),
                vec![("train".to_string(), 1, 4242, 77)],
                "{name}"
            );
            store
                .set_attempt("r1", "train", 1, "a1.log", Some((Some(0), None)))
                .unwrap();
            let artifact = Artifact {
                file: "model.bin".into(),
                path: "/runs/r1/model.bin".into(),
                sha256: "ab".into(),
                bytes: 3,
            };
            let outputs = [artifact.clone()];
            store
                .set_task(
                    "r1",
                    "dag",
                    "train",
                    TaskStatus::Succeeded,
                    "ok",
                    None,
                    Some(&outputs),
                )
                .unwrap();
            store
                .set_run_status("r1", RunStatus::Succeeded, None, None)
                .unwrap();
            let run = store.run("r1").unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Succeeded, "{name}");
            assert!(
                run.started_at.is_some() && run.finished_at.is_some(),
                "{name}"
            );
            assert_eq!(run.plan, Some(serde_json::json!({"p": 1})));
            let tasks = store.run_tasks("r1").unwrap();
            assert_eq!(tasks[0].cache_key.as_deref(), Some("c1"), "{name}");
            assert_eq!(tasks[0].outputs, outputs);
            assert_eq!(tasks[0].attempts[0].exit_code, Some(0), "{name}");
            assert_eq!(store.last_attempt("r1", "train").unwrap(), 1);
            assert_eq!(
                store.cached_outputs("dag", "train", "c1").unwrap(),
                Some(("r1".to_string(), vec![artifact])),
                "{name}"
            );
            assert_eq!(store.runs(Some("m"), 10).unwrap().len(), 1);
            assert_eq!(
                store.runs_with_status(RunStatus::Succeeded).unwrap().len(),
                1
            );
            store.queue_run(&request("r3", "k3")).unwrap();
            assert!(store.request_cancel("r3").unwrap(), "{name}");
            assert!(!store.request_cancel("r1").unwrap(), "{name}: finished");
            assert_eq!(
                store.run("r3").unwrap().unwrap().status,
                RunStatus::Cancelled
            );

            store
                .rotate_baseline("s", "v1", "/b/v1.json", Some("r1"))
                .unwrap();
            store
                .rotate_baseline("s", "v2", "/b/v2.json", None)
                .unwrap();
            let versions: Vec<(String, bool)> = store
                .baselines("s")
                .unwrap()
                .into_iter()
                .map(|v| (v.version, v.active))
                .collect();
            assert_eq!(
                versions,
                [("v2".to_string(), true), ("v1".to_string(), false)],
                "{name}"
            );
            assert_eq!(store.active_baseline("s").unwrap().unwrap().version, "v2");
        }
    }
}
