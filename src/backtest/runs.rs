//! A set's runs: each triggered decision runs the judged model's DAG for real, here and now,
//! with the local executor; its outcome waits until its time in flight has passed in event
//! time, then applies as the service applies it (in flight no more, duration recorded, baseline
//! rotated, a promoted model scoring).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::judged::Judged;
use super::report::BacktestRun;
use super::{BacktestError, Options};
use crate::config::ServiceConfig;
use crate::dag::Dag;
use crate::pipeline::{JudgedWindow, StreamProcessor};
use crate::policy::Outcome;
use crate::store::{RunStatus, Store, StoreUrl};

/// The model every set starts from.
pub(super) struct Initial {
    /// Its file, copied into each set's registry.
    pub file: PathBuf,
}

/// Trains the initial model: the given file, or a manual run of the model's DAG in
/// `work/initial` (its tasks read the training set they name).
pub(super) fn initial_model(
    config: &ServiceConfig,
    judged: &Judged,
    options: &Options,
    work: &Path,
) -> Result<Initial, BacktestError> {
    if let Some(file) = &options.initial_model {
        if !file.is_file() {
            return Err(BacktestError::Setup(format!(
                "--initial-model {}: no such file",
                file.display()
            )));
        }
        return Ok(Initial { file: file.clone() });
    }
    let dir = work.join("initial");
    let mut runs = SetRuns::open(config, judged, None, &dir)?;
    let request = crate::dag::request::manual(
        "backtest:initial".into(),
        &judged.model,
        &judged.dag,
        &judged.stream,
        Vec::new(),
        None,
    );
    let (record, _) = runs.execute(&request)?;
    let file = runs.champion();
    if record.status != RunStatus::Succeeded || !file.is_file() {
        return Err(BacktestError::Setup(format!(
            "the initial run of DAG `{}` did not promote a model ({}; its files are in {}); \
             give one with --initial-model",
            judged.dag,
            record.error.as_deref().unwrap_or(record.status.as_str()),
            dir.display()
        )));
    }
    Ok(Initial { file })
}

/// A run whose outcome has applied.
pub(super) struct Launched {
    /// Its id.
    pub id: String,
    /// Whether it promoted a new model into the set's registry.
    pub promoted: bool,
    /// Whether it succeeded (its DAG may have changed the model some other way).
    pub succeeded: bool,
}

/// A run whose outcome waits for its time in flight to pass.
struct Pending {
    launched: Launched,
    applied_ms: i64,
    seconds: Option<f64>,
    baseline: Option<Result<crate::service::rotation::Prepared, String>>,
}

/// A set's runs: its store, registry and DAG, and the runs in flight.
pub(super) struct SetRuns {
    store: Store,
    dir: PathBuf,
    registry: PathBuf,
    model: String,
    stream: String,
    features: Vec<crate::decode::FeatureSpec>,
    dag: Dag,
    run_time: Option<Duration>,
    pending: Vec<Pending>,
}

impl SetRuns {
    /// The runs of a set in `dir`, whose registry starts with the `initial` model.
    pub(super) fn new(
        config: &ServiceConfig,
        judged: &Judged,
        run_time: Option<Duration>,
        initial: &Initial,
        dir: &Path,
    ) -> Result<SetRuns, BacktestError> {
        let runs = SetRuns::open(config, judged, run_time, dir)?;
        let champion = runs.champion();
        std::fs::copy(&initial.file, &champion).map_err(|e| io(&champion, e))?;
        Ok(runs)
    }

    fn open(
        config: &ServiceConfig,
        judged: &Judged,
        run_time: Option<Duration>,
        dir: &Path,
    ) -> Result<SetRuns, BacktestError> {
        let registry = dir.join("models");
        crate::files::create_private_dir(&registry).map_err(|e| io(&registry, e))?;
        let store = Store::open(&StoreUrl::Sqlite(dir.join("store.db")))
            .map_err(|e| BacktestError::Io(format!("the backtest's store: {e}")))?;
        let mut dag = (config.dags.iter().find(|d| d.name == judged.dag).cloned())
            .ok_or_else(|| BacktestError::Setup(format!("no DAG `{}`", judged.dag)))?;
        for task in &mut dag.tasks {
            let registry = registry.display().to_string();
            task.env.insert(crate::task::REGISTRY_ENV.into(), registry);
        }
        let stream = (config.streams.iter().find(|s| s.name == judged.stream))
            .ok_or_else(|| BacktestError::Setup(format!("no stream `{}`", judged.stream)))?;
        Ok(SetRuns {
            store,
            dir: dir.to_path_buf(),
            registry,
            model: judged.model.clone(),
            stream: judged.stream.clone(),
            features: stream.schema.features.clone(),
            dag,
            run_time,
            pending: Vec::new(),
        })
    }

    /// The registry's champion file.
    fn champion(&self) -> PathBuf {
        self.registry.join(format!("{}.json", self.model))
    }

    /// The scorer's command: the DAG's `predict`, or the built-in one.
    pub(super) fn scorer(&self) -> Vec<String> {
        (self.dag.predict.clone())
            .unwrap_or_else(|| ["driftgate", "task", "predict"].map(String::from).to_vec())
    }

    /// What the scorer is told: the set's registry and the model.
    pub(super) fn task_env(&self) -> Vec<(String, String)> {
        vec![
            (
                crate::task::REGISTRY_ENV.into(),
                self.registry.display().to_string(),
            ),
            ("DRIFTGATE_MODEL".into(), self.model.clone()),
        ]
    }

    /// Runs the triggered decisions of `window` now; each is in flight from now on.
    pub(super) fn launch(
        &mut self,
        window: &JudgedWindow,
        processor: &mut StreamProcessor,
    ) -> Result<Vec<BacktestRun>, BacktestError> {
        let mut started = Vec::new();
        for decision in &window.decisions {
            if decision.outcome == Outcome::Triggered && decision.model == self.model {
                started.push(self.start(decision, window, processor)?);
                processor.policies_mut().set_in_flight(&self.model, true);
            }
        }
        Ok(started)
    }

    /// Runs the DAG for `decision` on `window`'s records, to its end; its outcome waits.
    fn start(
        &mut self,
        decision: &crate::policy::Decision,
        window: &JudgedWindow,
        processor: &StreamProcessor,
    ) -> Result<BacktestRun, BacktestError> {
        let id = crate::dag::run_id(&decision.key);
        let files = match window.data.as_deref() {
            Some(data) => self.export(&id, data)?,
            None => Default::default(),
        };
        let baseline_id = &processor.settings().baseline.id;
        let request = crate::dag::request::triggered(decision, &self.dag.name, baseline_id, files);
        let before = std::fs::read(self.champion()).ok();
        let (record, wall) = self.execute(&request)?;
        let promoted = std::fs::read(self.champion()).ok() != before;
        let in_flight = self.run_time.unwrap_or(wall);
        let applied_ms = decision.at_ms + in_flight.as_millis() as i64;
        let succeeded = record.status == RunStatus::Succeeded;
        let baseline = (succeeded)
            .then(|| self.produced_baseline(&record.id))
            .flatten();
        let rotated = baseline.as_ref().and_then(|b| b.as_ref().ok());
        let run = BacktestRun {
            id: id.clone(),
            policy: decision.policy.clone(),
            window: decision.window,
            status: record.status.as_str().to_string(),
            error: record.error.clone(),
            triggered_ms: decision.at_ms,
            applied_ms,
            promoted,
            baseline: rotated.map(|p| p.baseline.id.clone()),
        };
        self.pending.push(Pending {
            launched: Launched {
                id,
                promoted,
                succeeded,
            },
            applied_ms,
            seconds: succeeded.then_some(in_flight.as_secs_f64()),
            baseline,
        });
        Ok(run)
    }

    /// Applies the outcomes of runs whose time in flight has passed by `now` (every one when
    /// the records carry no time), in the order they apply.
    pub(super) fn apply_due(
        &mut self,
        now: Option<i64>,
        processor: &mut StreamProcessor,
    ) -> Vec<Launched> {
        let due = |p: &Pending| now.is_none_or(|now| p.applied_ms <= now);
        let (mut ready, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.pending).into_iter().partition(due);
        self.pending = waiting;
        ready.sort_by_key(|p| p.applied_ms);
        let mut applied = Vec::new();
        for run in ready {
            let engine = processor.policies_mut();
            if let Some(seconds) = run.seconds {
                engine.record_run(&self.model, seconds);
            }
            if self.pending.is_empty() {
                engine.set_in_flight(&self.model, false);
            }
            match run.baseline {
                Some(Ok(prepared)) => processor.set_baseline(prepared.kept, prepared.baseline),
                Some(Err(why)) => tracing::warn!(run = %run.launched.id, error = %why,
                    "the run's baseline was not rotated; the current one stays"),
                None => {}
            }
            if run.launched.succeeded {
                processor.retrained();
            }
            applied.push(run.launched);
        }
        applied
    }

    /// Writes a window's data into run `id`'s directory.
    fn export(
        &self,
        id: &str,
        data: &crate::window::WindowData,
    ) -> Result<crate::dag::request::WindowFiles, BacktestError> {
        let dir = self.dir.join("runs").join(id);
        let (window, records) =
            crate::dag::executor::export_window(data, &dir).map_err(|e| io(&dir, e))?;
        Ok(crate::dag::request::WindowFiles {
            window: Some(window),
            records,
        })
    }

    /// Executes `request` to its end; its final record and how long it took.
    fn execute(
        &mut self,
        request: &crate::store::RunRequest,
    ) -> Result<(crate::store::RunRecord, Duration), BacktestError> {
        let failed =
            |e: crate::store::StoreError| BacktestError::Io(format!("the backtest's store: {e}"));
        let store = &mut self.store;
        store.queue_run(request).map_err(failed)?;
        store
            .set_run_status(&request.id, RunStatus::Running, None, None)
            .map_err(failed)?;
        let started = std::time::Instant::now();
        let runs_dir = self.dir.join("runs");
        crate::dag::executor::execute(
            store,
            &runs_dir,
            &self.dag,
            request,
            &AtomicBool::new(false),
        );
        let wall = started.elapsed();
        let record = store.run(&request.id).map_err(failed)?.ok_or_else(|| {
            BacktestError::Io(format!("run {} is not in the backtest's store", request.id))
        })?;
        Ok((record, wall))
    }

    /// The baseline a succeeded run produced, loaded and kept under the set's directory.
    fn produced_baseline(
        &self,
        id: &str,
    ) -> Option<Result<crate::service::rotation::Prepared, String>> {
        let tasks = self.store.run_tasks(id).ok()?;
        let output = self.dag.baseline_output(&tasks)?;
        let kept = self.dir.join("baselines");
        Some(crate::service::rotation::prepare(
            &output,
            &self.stream,
            &self.features,
            &kept,
        ))
    }
}

fn io(path: &Path, err: std::io::Error) -> BacktestError {
    BacktestError::Io(format!("{}: {err}", path.display()))
}
