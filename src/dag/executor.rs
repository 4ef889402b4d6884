//! The executor: starts queued runs.
//!
//! A dispatcher thread takes queued runs from the store, oldest first, at most `max_parallel`
//! at once and one per model at a time (a run triggered while one of its model is in flight
//! waits in the queue, or is skipped with `when_busy = "skip"`). Each run executes on its own
//! thread, on its DAG's remote orchestrator or here as child processes ([`super::local`]). A
//! run interrupted by a crash is queued again on start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::recorder::Recorder;
use super::Dag;
use crate::store::{RunRecord, RunRequest, RunStatus, Store};

/// What the executor reports as runs progress (for alerts and the policy engine).
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A run started.
    Started(RunRecord),
    /// A run finished; its final record.
    Finished(RunRecord),
}

/// Settings of the executor.
#[derive(Clone)]
pub struct ExecutorSettings {
    /// The store file.
    pub store: crate::store::StoreUrl,
    /// Runs' directories go under this.
    pub dir: PathBuf,
    /// Runs at once.
    pub max_parallel: usize,
    /// Queue (true) or skip (false) runs of a busy model.
    pub queue_when_busy: bool,
    /// When instances share the store: the process runs are taken for, each under a lease.
    pub holder: Option<crate::store::Holder>,
}

/// Models with a run in flight, shared with the consumer loop (policies' `in_flight`).
pub type Busy = Arc<Mutex<BTreeSet<String>>>;

/// Runs the dispatcher until `stop`. `catalog` (its DAGs) may be swapped by reloads; `events`
/// hears about runs starting and finishing.
pub fn run_dispatcher(
    settings: ExecutorSettings,
    catalog: crate::config::reload::SharedCatalog,
    busy: Busy,
    stop: Arc<AtomicBool>,
    wake: Arc<crate::wake::Wake>,
    events: Arc<dyn Fn(RunEvent) + Send + Sync>,
) {
    let mut store = match Store::open(&settings.store) {
        Ok(store) => store,
        Err(err) => {
            tracing::error!(error = %err, "the executor cannot open the store; no runs will start");
            return;
        }
    };
    if let Some(holder) = &settings.holder {
        store.act_for(holder.clone());
    }
    // Alone, every run left running was this process's; shared, only those whose lease ran
    // out are, and they are taken over as the loop finds them.
    let shared = settings.holder.is_some();
    let mut dispatcher = Dispatcher {
        settings,
        catalog,
        busy,
        stop,
        events,
        store,
        threads: Vec::new(),
    };
    if !shared {
        recover_interrupted(&dispatcher.store);
    }
    let mut seen = 0;
    while !dispatcher.stop.load(Ordering::SeqCst) {
        if shared {
            dispatcher.take_over_orphans();
        }
        dispatcher.dispatch_queued();
        wake.wait_for(&mut seen, Duration::from_millis(500));
    }
    for (_, thread) in dispatcher.threads {
        let _ = thread.join();
    }
}

/// Runs a crash interrupted start again (finished tasks' outputs come back from the cache),
/// once what is left of their attempts has been stopped: a task never runs twice at once.
pub fn recover_interrupted(store: &Store) {
    let interrupted = match store.runs_with_status(RunStatus::Running) {
        Ok(runs) => runs,
        Err(err) => {
            tracing::error!(error = %err, "cannot read interrupted runs");
            return;
        }
    };
    for run in interrupted {
        if let Err(err) = super::local::orphans::stop_orphans(store, &run.id) {
            tracing::error!(run = %run.id, error = %err, "cannot check the run's attempts");
        }
        tracing::warn!(run = %run.id, "run interrupted by a restart; queued again");
        Recorder::new(store, &run.id, &run.dag).run_status(RunStatus::Queued, None, None);
    }
}

/// The dispatcher's state: its store connection and the runs it started, by model.
struct Dispatcher {
    settings: ExecutorSettings,
    catalog: crate::config::reload::SharedCatalog,
    busy: Busy,
    stop: Arc<AtomicBool>,
    events: Arc<dyn Fn(RunEvent) + Send + Sync>,
    store: Store,
    threads: Vec<(String, std::thread::JoinHandle<()>)>,
}

impl Dispatcher {
    /// Queues again, under this process's lease, the runs whose instance stopped mid-run (their
    /// lease ran out), once what is left of their attempts on this host has been stopped.
    fn take_over_orphans(&self) {
        let orphaned = self.store.orphaned_runs().unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot read interrupted runs");
            Vec::new()
        });
        for run in orphaned {
            if !self
                .store
                .lease(&format!("run:{}", run.id))
                .unwrap_or(false)
            {
                continue;
            }
            if let Err(err) = super::local::orphans::stop_orphans(&self.store, &run.id) {
                tracing::error!(run = %run.id, error = %err, "cannot check the run's attempts");
            }
            tracing::warn!(run = %run.id, "run interrupted: its instance stopped; queued again here");
            self.recorder(&run)
                .run_status(RunStatus::Queued, None, None);
        }
    }

    /// Whether this process may start `run` now: alone, always; shared, when no instance runs
    /// its model and this process took the run's lease.
    fn may_start(&self, run: &RunRecord) -> bool {
        if self.settings.holder.is_none() {
            return true;
        }
        let busy = self.store.model_running(&run.model, &run.id);
        if !matches!(busy, Ok(false)) {
            return false;
        }
        self.store
            .lease(&format!("run:{}", run.id))
            .unwrap_or_else(|err| {
                tracing::warn!(run = %run.id, error = %err, "cannot take the run's lease");
                false
            })
    }

    /// Starts queued runs, oldest first, while there is room; a busy model's run waits or is
    /// skipped.
    fn dispatch_queued(&mut self) {
        self.threads.retain(|(_, t)| !t.is_finished());
        let queued = self
            .store
            .runs_with_status(RunStatus::Queued)
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot read queued runs");
                Vec::new()
            });
        for run in queued {
            if self.threads.len() >= self.settings.max_parallel {
                break;
            }
            if self.threads.iter().any(|(model, _)| *model == run.model) {
                if !self.settings.queue_when_busy {
                    self.recorder(&run).run_status(
                        RunStatus::Skipped,
                        None,
                        Some("a run of this model was in flight (when_busy = skip)"),
                    );
                }
                continue;
            }
            if !self.may_start(&run) {
                continue;
            }
            let Some(dag) = crate::locks::read(&self.catalog).dag(&run.dag).cloned() else {
                let error = format!("no DAG `{}`", run.dag);
                self.recorder(&run)
                    .run_status(RunStatus::Failed, None, Some(&error));
                continue;
            };
            self.start(run, dag);
        }
    }

    /// Marks the run running and executes it on a thread of its own.
    fn start(&mut self, run: RunRecord, dag: Dag) {
        crate::locks::lock(&self.busy).insert(run.model.clone());
        self.recorder(&run)
            .run_status(RunStatus::Running, None, None);
        if let Ok(Some(record)) = self.store.run(&run.id) {
            (self.events)(RunEvent::Started(record));
        }
        let (settings, busy, events, stop) = (
            self.settings.clone(),
            Arc::clone(&self.busy),
            Arc::clone(&self.events),
            Arc::clone(&self.stop),
        );
        let model = run.model.clone();
        let thread = std::thread::Builder::new()
            .name(format!("run-{}", run.id))
            .spawn(move || {
                match Store::open(&settings.store) {
                    Ok(mut store) => {
                        if let Some(holder) = &settings.holder {
                            store.act_for(holder.clone());
                        }
                        execute(&store, &settings.dir, &dag, &run.request, &stop);
                        if let Ok(Some(record)) = store.run(&run.id) {
                            if record.status != RunStatus::Running {
                                events(RunEvent::Finished(record));
                                let _ = store.release(&format!("run:{}", run.id));
                            }
                        }
                    }
                    Err(err) => {
                        tracing::error!(run = %run.id, error = %err, "cannot open the store")
                    }
                }
                crate::locks::lock(&busy).remove(&run.model);
            });
        match thread {
            Ok(thread) => self.threads.push((model, thread)),
            Err(err) => tracing::error!(error = %err, "cannot start a run thread"),
        }
    }

    fn recorder<'s>(&'s self, run: &'s RunRecord) -> Recorder<'s> {
        Recorder::new(&self.store, &run.id, &run.dag)
    }
}

/// Writes a window's data into a run's directory and returns the paths of `window.json` and,
/// when written, `window.jsonl`:
///
/// * `window.json`: `{"records": N, "features": {name: column}}`, a numeric column as
///   `{"kind": "numeric", "values": [...]}` (usable values in arrival order), a categorical
///   one as `{"kind": "categorical", "counts": {...}}`, each with its quality counts; a
///   numeric column whose values were folded into a summary also has `"summarised": N`, the
///   count of values not in `values` (kept only as counts on the baseline's sample);
/// * `window.jsonl`, when the stream keeps records: one JSON object per record, in arrival
///   order, with `ts` (epoch milliseconds), the features it carried, `prediction` and `label`.
pub fn export_window(
    data: &crate::window::WindowData,
    dir: &Path,
) -> std::io::Result<(String, Option<String>)> {
    crate::files::create_private_dir(dir)?;
    let columns = &data.columns;
    let features: serde_json::Map<String, serde_json::Value> = columns
        .schema
        .features
        .iter()
        .zip(&columns.columns)
        .enumerate()
        .map(|(at, (spec, column))| {
            let mut value = serde_json::to_value(column).unwrap_or(serde_json::Value::Null);
            let summarised = data.summaries.as_ref().map_or(0, |s| s.count(at));
            if let (Some(object), true) = (value.as_object_mut(), summarised > 0) {
                object.insert("summarised".into(), summarised.into());
            }
            (spec.name.clone(), value)
        })
        .collect();
    let document = serde_json::json!({ "records": columns.records, "features": features });
    let path = dir.join("window.json");
    crate::files::write_private(
        &path,
        serde_json::to_vec(&document).expect("windows serialise"),
    )?;
    let records = match &data.records {
        Some(lines) => {
            let path = dir.join("window.jsonl");
            crate::files::write_private(&path, lines)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    Ok((path.display().to_string(), records))
}

/// Executes one run to its end: on its remote orchestrator, or here (`dag::local`). Records
/// everything in the store.
pub fn execute(store: &Store, dir: &Path, dag: &Dag, request: &RunRequest, stop: &AtomicBool) {
    let agent = super::remote::http_client;
    match &dag.remote {
        Some(super::Remote::Airflow(airflow)) => {
            super::airflow::execute(store, dag, airflow, request, stop);
            return;
        }
        Some(super::Remote::Argo(argo)) => {
            let mut client = super::argo::ArgoClient {
                argo,
                agent: agent(),
            };
            super::remote::execute(
                store,
                dag,
                &mut client,
                request,
                stop,
                argo.poll,
                argo.timeout,
            );
            return;
        }
        Some(super::Remote::Kubeflow(kubeflow)) => {
            let mut client = super::kubeflow::KubeflowClient {
                kubeflow,
                agent: agent(),
                run_id: None,
            };
            super::remote::execute(
                store,
                dag,
                &mut client,
                request,
                stop,
                kubeflow.poll,
                kubeflow.timeout,
            );
            return;
        }
        None => {}
    }
    super::local::execute(store, dir, dag, request, stop);
}
