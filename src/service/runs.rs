//! Runs, as the consumer loop sees them: which models have one in flight (for policies'
//! `in_flight`), how long finished ones took (for cost forecasts), their alerts, and the
//! baseline a succeeded run rotates in.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::rotation::Prepared;
use super::Service;
use crate::alert::AlertKind;
use crate::config::reload::SharedCatalog;
use crate::config::ServiceConfig;
use crate::dag::executor::{Busy, RunEvent};
use crate::decode::FeatureSpec;
use crate::locks::{lock, read};
use crate::store::{RunRecord, RunStatus, Store};
use crate::telemetry::Metrics;
use crate::wake::Wake;

/// A finished run, for the consumer loop: its duration for cost forecasts, and the baseline it
/// produced, if its DAG declares one and it succeeded (prepared, or why it cannot be).
pub(super) struct FinishedRun {
    model: String,
    succeeded: bool,
    seconds: Option<f64>,
    run_id: String,
    stream: String,
    baseline: Option<Result<Prepared, String>>,
}

/// What the loop knows of runs.
pub(super) struct RunState {
    /// Where runs keep their files.
    pub(super) dir: PathBuf,
    /// Models with a run in flight, as the executor last said.
    in_flight: BTreeSet<String>,
    /// Models with a run in flight, as the executor says now.
    pub(super) busy: Busy,
    /// Runs finished since the loop last looked.
    pub(super) finished: Arc<Mutex<Vec<FinishedRun>>>,
}

impl RunState {
    /// Nothing in flight yet.
    pub(super) fn new(config: &ServiceConfig) -> RunState {
        RunState {
            dir: config.runs.dir.clone(),
            in_flight: BTreeSet::new(),
            busy: Arc::default(),
            finished: Arc::default(),
        }
    }
}

/// Where rotated baselines are kept: beside a SQLite store; under the runs directory when the
/// store is PostgreSQL.
fn baselines_dir(config: &ServiceConfig) -> PathBuf {
    match &config.store {
        crate::store::StoreUrl::Sqlite(path) => path
            .parent()
            .map_or_else(|| PathBuf::from("baselines"), |d| d.join("baselines")),
        crate::store::StoreUrl::Postgres { .. } => config.runs.dir.join("baselines"),
    }
}

impl Service {
    /// Tells the policies which models have a run in flight and how long finished runs took
    /// (for cost forecasts), and rotates the baselines succeeded runs produced.
    pub(super) fn sync_runs(&mut self) {
        // Per poll of the consumer loop: compared under the lock, cloned only on a change.
        let now = lock(&self.runs.busy);
        if *now != self.runs.in_flight {
            for processor in &mut self.streams.processors {
                let engine = processor.policies_mut();
                for model in self.runs.in_flight.difference(&now) {
                    engine.set_in_flight(model, false);
                }
                for model in now.difference(&self.runs.in_flight) {
                    engine.set_in_flight(model, true);
                }
            }
            self.runs.in_flight = now.clone();
        }
        drop(now);
        if self.paused() {
            // Rotations are recorded in the store: they wait for it.
            return;
        }
        let done = std::mem::take(&mut *lock(&self.runs.finished));
        for mut run in done {
            if let Some(seconds) = run.seconds {
                for processor in &mut self.streams.processors {
                    processor.policies_mut().record_run(&run.model, seconds);
                }
            }
            if let Some(prepared) = run.baseline.take() {
                if let Err(why) = prepared.and_then(|p| self.rotate_baseline(&run, p)) {
                    tracing::error!(run = %run.run_id, stream = %run.stream, error = %why,
                        "the run's baseline was not rotated; the current one stays");
                    let _ = self.store.set_run_status(
                        &run.run_id,
                        RunStatus::Succeeded,
                        None,
                        Some(&format!("baseline not rotated: {why}")),
                    );
                }
            }
            // The data since the last retrain starts again, rotated baseline or not.
            let stream = self.streams.index_of(&run.stream);
            if let (true, Some(index)) = (run.succeeded, stream) {
                self.streams.processors[index].retrained();
            }
        }
    }

    /// Makes a run's prepared baseline the stream's baseline: recorded, and switched to.
    fn rotate_baseline(&mut self, run: &FinishedRun, prepared: Prepared) -> Result<(), String> {
        let started = std::time::Instant::now();
        let index = self
            .streams
            .index_of(&run.stream)
            .ok_or_else(|| format!("no stream {}", run.stream))?;
        let Prepared {
            kept,
            baseline,
            millis,
        } = prepared;
        let processor = &self.streams.processors[index];
        let previous = processor.settings().baseline.id.clone();
        let kept_text = kept.display().to_string();
        self.store
            .rotate_baseline(&run.stream, &baseline.id, &kept_text, Some(&run.run_id))
            .map_err(|e| e.to_string())?;
        let version = baseline.id.clone();
        self.set_baseline(index, kept, baseline);
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::info!(stream = %run.stream, from = %previous, to = %version, run = %run.run_id,
            prepared_ms = millis, took_ms, "baseline rotated");
        let alert = crate::alert::baseline_rotated(
            &self.alerts,
            &run.stream,
            &run.model,
            &run.run_id,
            &previous,
            &version,
        );
        let routed = crate::alert::route(&self.alerts, vec![alert]);
        if self.store.enqueue_alerts(&routed).is_ok() {
            self.wake.notify();
        }
        Ok(())
    }
}

/// What happens when a run starts or finishes (on the executor's threads): its alert is
/// queued, its end is counted, and a finished run goes to the loop (`finished`).
pub(super) fn run_events(
    config: &ServiceConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    finished: Arc<Mutex<Vec<FinishedRun>>>,
    catalog: SharedCatalog,
) -> Arc<dyn Fn(RunEvent) + Send + Sync> {
    let (path, alerts) = (config.store.clone(), config.alerts.clone());
    let rotations = Rotations {
        dir: baselines_dir(config),
        features: (config.streams.iter())
            .map(|s| (s.name.clone(), s.schema.features.clone()))
            .collect(),
    };
    Arc::new(move |event: RunEvent| {
        let (kind, run) = match event {
            RunEvent::Started(run) => (AlertKind::RunStarted, run),
            RunEvent::Finished(run) => {
                let finished_run = finish(&path, &run, &catalog, &rotations);
                metrics.run_finished(&run.model, run.status, finished_run.seconds);
                lock(&finished).push(finished_run);
                let kind = if run.status == RunStatus::Succeeded {
                    AlertKind::RunSucceeded
                } else {
                    AlertKind::RunFailed
                };
                (kind, run)
            }
        };
        tracing::info!(run = %run.id, model = %run.model, status = %run.status, "run {}", kind.as_str());
        let queued = Store::open(&path).and_then(|mut store| {
            let tasks = store.run_tasks(&run.id)?;
            let alert = crate::alert::run_alert(&alerts, kind, &run, &tasks);
            store.enqueue_alerts(&crate::alert::route(&alerts, vec![alert]))
        });
        match queued {
            Ok(()) => wake.notify(),
            Err(err) => {
                tracing::error!(run = %run.id, error = %err, "cannot queue the run's alert")
            }
        }
    })
}

/// Where runs' baselines are kept, and the features each stream's must have.
struct Rotations {
    dir: PathBuf,
    features: HashMap<String, Vec<FeatureSpec>>,
}

impl Rotations {
    /// The baseline `output` made ready for `stream`.
    fn prepare(&self, output: &Path, stream: &str) -> Result<Prepared, String> {
        let features = (self.features.get(stream)).ok_or_else(|| format!("no stream {stream}"))?;
        super::rotation::prepare(output, stream, features, &self.dir)
    }
}

/// A finished run as the loop needs it: a succeeded one's duration and produced baseline.
fn finish(
    store_url: &crate::store::StoreUrl,
    run: &RunRecord,
    catalog: &SharedCatalog,
    rotations: &Rotations,
) -> FinishedRun {
    let succeeded = run.status == RunStatus::Succeeded;
    let seconds = match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) if succeeded => Some((end - start).max(0) as f64 / 1000.0),
        _ => None,
    };
    FinishedRun {
        model: run.model.clone(),
        succeeded,
        seconds,
        run_id: run.id.clone(),
        stream: run.request.stream.clone(),
        baseline: succeeded
            .then(|| produced_baseline(store_url, run, catalog))
            .flatten()
            .map(|output| rotations.prepare(&output, &run.request.stream)),
    }
}

/// The file a succeeded run declared as the next baseline (a task's `baseline_output`).
fn produced_baseline(
    store_url: &crate::store::StoreUrl,
    run: &RunRecord,
    catalog: &SharedCatalog,
) -> Option<PathBuf> {
    let dag = read(catalog).dag(&run.dag)?.clone();
    let tasks = Store::open_read_only(store_url)
        .ok()?
        .run_tasks(&run.id)
        .ok()?;
    dag.baseline_output(&tasks)
}
