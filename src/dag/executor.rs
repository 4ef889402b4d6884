//! The local executor: runs queued DAG runs as child processes.
//!
//! A dispatcher thread takes queued runs from the store, oldest first, at most `max_parallel`
//! at once and one per model at a time (a run triggered while one of its model is in flight
//! waits in the queue, or is skipped with `when_busy = "skip"`). Each run executes on its own
//! thread: ready tasks start as soon as the tasks they need are done, up to the DAG's
//! `max_parallel`; each attempt is a child process in its own process group, with its stdout
//! and stderr in a log file per attempt, killed with its group at its timeout and retried with
//! capped, jittered exponential backoff. Every state change is written to the store, so the API
//! shows runs as they progress, and a run interrupted by a crash is queued again on start.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{plan, Condition, Dag, Selection, Task};
use crate::store::{Artifact, RunRecord, RunRequest, RunStatus, Store, TaskStatus};

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
    pub store_path: PathBuf,
    /// Runs' directories go under this.
    pub dir: PathBuf,
    /// Runs at once.
    pub max_parallel: usize,
    /// Queue (true) or skip (false) runs of a busy model.
    pub queue_when_busy: bool,
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
    let store = match Store::open(&settings.store_path) {
        Ok(store) => store,
        Err(err) => {
            tracing::error!(error = %err, "the executor cannot open the store; no runs will start");
            return;
        }
    };
    // Runs a crash interrupted start again (finished tasks' outputs come back from the cache).
    if let Ok(interrupted) = store.runs_with_status(RunStatus::Running) {
        for run in interrupted {
            tracing::warn!(run = %run.id, "run interrupted by a restart; queued again");
            let _ = store.set_run_status(&run.id, RunStatus::Queued, None, None);
        }
    }
    let mut threads: Vec<(String, std::thread::JoinHandle<()>)> = Vec::new();
    let mut seen = 0;
    while !stop.load(Ordering::SeqCst) {
        threads.retain(|(_, t)| !t.is_finished());
        let queued = store
            .runs_with_status(RunStatus::Queued)
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot read queued runs");
                Vec::new()
            });
        for run in queued {
            if threads.len() >= settings.max_parallel {
                break;
            }
            let model_busy = threads.iter().any(|(model, _)| *model == run.model);
            if model_busy {
                if !settings.queue_when_busy {
                    let _ = store.set_run_status(
                        &run.id,
                        RunStatus::Skipped,
                        None,
                        Some("a run of this model was in flight (when_busy = skip)"),
                    );
                }
                continue;
            }
            let Some(dag) = crate::locks::read(&catalog).dag(&run.dag).cloned() else {
                let _ = store.set_run_status(
                    &run.id,
                    RunStatus::Failed,
                    None,
                    Some(&format!("no DAG `{}`", run.dag)),
                );
                continue;
            };
            crate::locks::lock(&busy).insert(run.model.clone());
            let _ = store.set_run_status(&run.id, RunStatus::Running, None, None);
            if let Ok(Some(record)) = store.run(&run.id) {
                events(RunEvent::Started(record));
            }
            let (settings, busy, events, stop) = (
                settings.clone(),
                Arc::clone(&busy),
                Arc::clone(&events),
                Arc::clone(&stop),
            );
            let model = run.model.clone();
            let thread = std::thread::Builder::new()
                .name(format!("run-{}", run.id))
                .spawn(move || {
                    let id = run.id.clone();
                    let model = run.model.clone();
                    match Store::open(&settings.store_path) {
                        Ok(store) => {
                            execute(&store, &settings.dir, &dag, &run.request, &stop);
                            if let Ok(Some(record)) = store.run(&id) {
                                if record.status != RunStatus::Running {
                                    events(RunEvent::Finished(record));
                                }
                            }
                        }
                        Err(err) => {
                            tracing::error!(run = %id, error = %err, "cannot open the store")
                        }
                    }
                    crate::locks::lock(&busy).remove(&model);
                });
            match thread {
                Ok(thread) => threads.push((model, thread)),
                Err(err) => tracing::error!(error = %err, "cannot start a run thread"),
            }
        }
        wake.wait_for(&mut seen, Duration::from_millis(500));
    }
    for (_, thread) in threads {
        let _ = thread.join();
    }
}

/// Writes a window's data into a run's directory and returns the paths of `window.json` and,
/// when written, `window.jsonl`:
///
/// * `window.json`: `{"records": N, "features": {name: column}}`, a numeric column as
///   `{"kind": "numeric", "values": [...]}` (usable values in arrival order), a categorical
///   one as `{"kind": "categorical", "counts": {...}}`, each with its quality counts;
/// * `window.jsonl`, when the stream keeps records: one JSON object per record, in arrival
///   order, with `ts` (epoch milliseconds), the features it carried, `prediction` and `label`.
pub fn export_window(
    data: &crate::window::WindowData,
    dir: &Path,
) -> std::io::Result<(String, Option<String>)> {
    std::fs::create_dir_all(dir)?;
    let columns = &data.columns;
    let features: serde_json::Map<String, serde_json::Value> = columns
        .schema
        .features
        .iter()
        .zip(&columns.columns)
        .map(|(spec, column)| {
            (
                spec.name.clone(),
                serde_json::to_value(column).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    let document = serde_json::json!({ "records": columns.records, "features": features });
    let path = dir.join("window.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&document).expect("windows serialise"),
    )?;
    let records = match &data.records {
        Some(lines) => {
            let path = dir.join("window.jsonl");
            std::fs::write(&path, lines)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    Ok((path.display().to_string(), records))
}

/// How often a running run looks for a cancellation.
const CANCEL_CHECK: Duration = Duration::from_millis(200);

/// A task's state during a run.
enum TaskState {
    Pending,
    Waiting {
        attempt: u32,
        until: Instant,
    },
    /// An attempt in progress; `child` is `Err` when the process could not even start (the
    /// attempt then fails like any other).
    Running {
        attempt: u32,
        child: Result<Child, String>,
        started: Instant,
        log: PathBuf,
    },
    Done {
        status: TaskStatus,
        outputs: Vec<Artifact>,
    },
}

/// Executes one run to its end (or until `stop`, leaving it `running` to resume after a
/// restart). Records everything in the store.
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
    let plan = plan(dag, &request.drifted_features);
    let plan_json = serde_json::to_value(&plan).expect("plans serialise");
    let _ = store.set_run_status(&request.id, RunStatus::Running, Some(&plan_json), None);
    for planned in &plan.tasks {
        let _ = store.set_task(
            &request.id,
            &dag.name,
            &planned.name,
            TaskStatus::Pending,
            &planned.reason,
            None,
            None,
        );
    }
    let run_dir = dir.join(&request.id);
    let mut states: BTreeMap<String, TaskState> = dag
        .tasks
        .iter()
        .map(|t| (t.name.clone(), TaskState::Pending))
        .collect();
    let mut rng = crate::SplitMix64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64),
    );
    let mut failed: Option<String> = None;
    let mut last_cancel_check = Instant::now();
    loop {
        if last_cancel_check.elapsed() >= CANCEL_CHECK {
            last_cancel_check = Instant::now();
            if store.cancel_requested(&request.id).unwrap_or(false) {
                for (name, state) in states.iter_mut() {
                    match state {
                        TaskState::Running {
                            child: Ok(child), ..
                        } => {
                            kill_group(child);
                            let _ = child.wait();
                            let _ = store.set_task(
                                &request.id,
                                &dag.name,
                                name,
                                TaskStatus::Cancelled,
                                "killed: the run was cancelled",
                                None,
                                None,
                            );
                        }
                        TaskState::Done { .. } => {}
                        _ => {
                            let _ = store.set_task(
                                &request.id,
                                &dag.name,
                                name,
                                TaskStatus::Cancelled,
                                "not started: the run was cancelled",
                                None,
                                None,
                            );
                        }
                    }
                }
                let _ = store.set_run_status(
                    &request.id,
                    RunStatus::Cancelled,
                    None,
                    Some("cancelled on request"),
                );
                return;
            }
        }
        if stop.load(Ordering::SeqCst) {
            // The service stops: kill what runs; the run is queued again on the next start.
            for state in states.values_mut() {
                if let TaskState::Running {
                    child: Ok(child), ..
                } = state
                {
                    kill_group(child);
                }
            }
            let _ = store.set_run_status(&request.id, RunStatus::Queued, None, None);
            return;
        }
        let running = states
            .values()
            .filter(|s| matches!(s, TaskState::Running { .. }))
            .count();
        let mut capacity = dag.max_parallel.saturating_sub(running);
        let mut progressed = false;
        for task in &dag.tasks {
            let name = task.name.as_str();
            match states.get(name) {
                Some(TaskState::Pending) if failed.is_none() => {
                    let needs: Vec<(&str, &TaskState)> = task
                        .needs
                        .iter()
                        .map(|n| (n.as_str(), &states[n]))
                        .collect();
                    if needs
                        .iter()
                        .any(|(_, s)| !matches!(s, TaskState::Done { .. }))
                    {
                        continue;
                    }
                    let upstream: BTreeMap<&str, &[Artifact]> = needs
                        .iter()
                        .filter_map(|(n, s)| match s {
                            TaskState::Done { outputs, .. } => Some((*n, outputs.as_slice())),
                            _ => None,
                        })
                        .collect();
                    if let Some((n, _)) = needs.iter().find(|(_, s)| {
                        matches!(
                            s,
                            TaskState::Done {
                                status: TaskStatus::Skipped,
                                ..
                            }
                        )
                    }) {
                        let reason = format!("needs {n}, which was skipped");
                        settle(
                            store,
                            request,
                            dag,
                            &mut states,
                            name,
                            TaskStatus::Skipped,
                            &reason,
                        );
                        progressed = true;
                        continue;
                    }
                    if let Some(when) = &task.when {
                        if let Err(reason) = holds(when, request, &upstream) {
                            settle(
                                store,
                                request,
                                dag,
                                &mut states,
                                name,
                                TaskStatus::Skipped,
                                &reason,
                            );
                            progressed = true;
                            continue;
                        }
                    }
                    let key = cache_key(task, request, &upstream);
                    if !plan.selected(name) {
                        if let Ok(Some((from, outputs))) =
                            store.cached_outputs(&dag.name, name, &key)
                        {
                            if outputs.iter().all(|a| Path::new(&a.path).exists()) {
                                let reason =
                                    format!("inputs unchanged: reuses the outputs of run {from}");
                                let _ = store.set_task(
                                    &request.id,
                                    &dag.name,
                                    name,
                                    TaskStatus::Cached,
                                    &reason,
                                    Some(&key),
                                    Some(&outputs),
                                );
                                states.insert(
                                    name.to_string(),
                                    TaskState::Done {
                                        status: TaskStatus::Cached,
                                        outputs,
                                    },
                                );
                                progressed = true;
                                continue;
                            }
                        }
                    }
                    if capacity == 0 {
                        continue;
                    }
                    capacity -= 1;
                    let _ = store.set_task(
                        &request.id,
                        &dag.name,
                        name,
                        TaskStatus::Running,
                        &reason_of(&plan, name),
                        Some(&key),
                        None,
                    );
                    states.insert(
                        name.to_string(),
                        start(store, &run_dir, dag, task, request, &upstream, 1),
                    );
                    progressed = true;
                }
                Some(TaskState::Pending) => {
                    // The run failed: what has not started will not.
                    let reason = format!(
                        "not started: {}",
                        failed.as_deref().unwrap_or("the run failed")
                    );
                    settle(
                        store,
                        request,
                        dag,
                        &mut states,
                        name,
                        TaskStatus::Skipped,
                        &reason,
                    );
                    progressed = true;
                }
                Some(TaskState::Waiting { attempt, until })
                    if *until <= Instant::now() && capacity > 0 && failed.is_none() =>
                {
                    let attempt = *attempt;
                    capacity -= 1;
                    let upstream_owned: BTreeMap<String, Vec<Artifact>> = task
                        .needs
                        .iter()
                        .filter_map(|n| match &states[n] {
                            TaskState::Done { outputs, .. } => Some((n.clone(), outputs.clone())),
                            _ => None,
                        })
                        .collect();
                    let upstream: BTreeMap<&str, &[Artifact]> = upstream_owned
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_slice()))
                        .collect();
                    let _ = store.set_task(
                        &request.id,
                        &dag.name,
                        name,
                        TaskStatus::Running,
                        &reason_of(&plan, name),
                        None,
                        None,
                    );
                    states.insert(
                        name.to_string(),
                        start(store, &run_dir, dag, task, request, &upstream, attempt),
                    );
                    progressed = true;
                }
                Some(TaskState::Waiting { .. }) if failed.is_some() => {
                    settle(
                        store,
                        request,
                        dag,
                        &mut states,
                        name,
                        TaskStatus::Failed,
                        "not retried: the run failed",
                    );
                    progressed = true;
                }
                Some(TaskState::Running { .. }) => {
                    let Some(TaskState::Running {
                        attempt,
                        child,
                        started,
                        log,
                    }) = states.get_mut(name)
                    else {
                        unreachable!("matched running")
                    };
                    let artifacts = run_dir.join(name).join("artifacts");
                    let Some((code, outcome)) = attempt_outcome(child, *started, task, &artifacts)
                    else {
                        continue;
                    };
                    let (attempt, log_text) = (*attempt, log.display().to_string());
                    progressed = true;
                    match outcome {
                        Ok(outputs) => {
                            let _ = store.set_attempt(
                                &request.id,
                                name,
                                attempt,
                                &log_text,
                                Some((code, None)),
                            );
                            let _ = store.set_task(
                                &request.id,
                                &dag.name,
                                name,
                                TaskStatus::Succeeded,
                                &reason_of(&plan, name),
                                None,
                                Some(&outputs),
                            );
                            states.insert(
                                name.to_string(),
                                TaskState::Done {
                                    status: TaskStatus::Succeeded,
                                    outputs,
                                },
                            );
                        }
                        Err(error) => {
                            let _ = store.set_attempt(
                                &request.id,
                                name,
                                attempt,
                                &log_text,
                                Some((code, Some(&error))),
                            );
                            if attempt <= task.retries && failed.is_none() {
                                let delay = retry_delay(task, attempt, rng.next_f64());
                                tracing::warn!(run = %request.id, task = name, attempt, error = %error,
                                    retry_in_ms = delay.as_millis() as u64, "task failed; will retry");
                                let reason = format!(
                                    "attempt {attempt} failed ({error}); retrying in {}",
                                    humantime::format_duration(Duration::from_millis(
                                        delay.as_millis() as u64
                                    ))
                                );
                                let _ = store.set_task(
                                    &request.id,
                                    &dag.name,
                                    name,
                                    TaskStatus::Waiting,
                                    &reason,
                                    None,
                                    None,
                                );
                                states.insert(
                                    name.to_string(),
                                    TaskState::Waiting {
                                        attempt: attempt + 1,
                                        until: Instant::now() + delay,
                                    },
                                );
                            } else {
                                let reason = format!("failed after {attempt} attempt(s): {error}");
                                failed.get_or_insert(format!("task {name} failed"));
                                settle(
                                    store,
                                    request,
                                    dag,
                                    &mut states,
                                    name,
                                    TaskStatus::Failed,
                                    &reason,
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if states.values().all(|s| matches!(s, TaskState::Done { .. })) {
            break;
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    match failed {
        Some(error) => {
            let _ = store.set_run_status(&request.id, RunStatus::Failed, None, Some(&error));
        }
        None => {
            let _ = store.set_run_status(&request.id, RunStatus::Succeeded, None, None);
        }
    }
}

/// An ended attempt's outputs, or what went wrong.
type AttemptResult = Result<Vec<Artifact>, String>;

/// Whether an attempt has ended, killing it at its timeout: `None` while it runs, else its
/// exit code with its outputs or what went wrong.
fn attempt_outcome(
    child: &mut Result<Child, String>,
    started: Instant,
    task: &Task,
    artifacts: &Path,
) -> Option<(Option<i32>, AttemptResult)> {
    let process = match child {
        Err(error) => return Some((None, Err(error.clone()))),
        Ok(process) => process,
    };
    let timed_out = started.elapsed() > task.timeout;
    if timed_out {
        kill_group(process);
    }
    let status = match process.try_wait() {
        Ok(Some(status)) => status,
        Ok(None) => return None,
        Err(err) => {
            tracing::error!(task = %task.name, error = %err, "cannot wait for a task");
            return None;
        }
    };
    let outcome = if timed_out {
        Err(format!(
            "timed out after {}; its process group was killed",
            humantime::format_duration(task.timeout)
        ))
    } else if !status.success() {
        Err(match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "killed by a signal".to_string(),
        })
    } else {
        collect_outputs(task, artifacts)
    };
    Some((status.code(), outcome))
}

fn reason_of(plan: &super::Plan, task: &str) -> String {
    plan.tasks
        .iter()
        .find(|t| t.name == task)
        .map(|t| match t.selection {
            Selection::Selected => t.reason.clone(),
            Selection::Unaffected => "inputs unchanged but no cached outputs: runs".to_string(),
        })
        .unwrap_or_default()
}

/// Whether a task's gate holds; the reason when it does not.
fn holds(
    when: &Condition,
    request: &RunRequest,
    upstream: &BTreeMap<&str, &[Artifact]>,
) -> Result<(), String> {
    match when {
        Condition::DriftedAny(features) => {
            if features
                .iter()
                .any(|f| request.drifted_features.contains(f))
            {
                Ok(())
            } else {
                Err(format!("skipped: none of {} drifted", features.join(", ")))
            }
        }
        Condition::Output {
            task,
            file,
            pointer,
            equals,
        } => {
            let path = upstream
                .get(task.as_str())
                .and_then(|outputs| outputs.iter().find(|a| &a.file == file))
                .map(|a| a.path.clone());
            let Some(path) = path else {
                return Err(format!("skipped: {task} has no output {file}"));
            };
            let value = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|doc| doc.pointer(pointer).cloned());
            match value {
                Some(value) if &value == equals => Ok(()),
                Some(value) => Err(format!(
                    "skipped: {task}/{file}{pointer} is {value}, not {equals}"
                )),
                None => Err(format!("skipped: {task}/{file} has nothing at {pointer:?}")),
            }
        }
    }
}

/// The cache key: the task's spec, the digests of the outputs it needs, and the baseline of the
/// features it consumes.
fn cache_key(task: &Task, request: &RunRequest, upstream: &BTreeMap<&str, &[Artifact]>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(task).expect("tasks serialise"));
    for (name, outputs) in upstream {
        hasher.update(name.as_bytes());
        for artifact in *outputs {
            hasher.update(artifact.file.as_bytes());
            hasher.update(artifact.sha256.as_bytes());
        }
    }
    for feature in &task.features {
        hasher.update(feature.as_bytes());
        hasher.update(request.baseline.as_deref().unwrap_or("").as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The delay before retry `attempt` (1 after the first failure): doubling from the task's
/// `retry_backoff`, capped, less up to a fifth at random.
pub fn retry_delay(task: &Task, attempt: u32, jitter: f64) -> Duration {
    crate::retry::delay(task.retry_backoff, task.retry_backoff_max, attempt, jitter)
}

/// A task's program: `driftgate` is this very binary (for the built-in tasks, whatever the
/// `PATH`); anything else is looked up as usual.
fn program(name: &str) -> std::io::Result<PathBuf> {
    if name == "driftgate" {
        std::env::current_exe()
    } else {
        Ok(PathBuf::from(name))
    }
}

/// Starts an attempt: its directories, context file and log, then the process in its own group.
fn start(
    store: &Store,
    run_dir: &Path,
    dag: &Dag,
    task: &Task,
    request: &RunRequest,
    upstream: &BTreeMap<&str, &[Artifact]>,
    attempt: u32,
) -> TaskState {
    let task_dir = run_dir.join(&task.name);
    let artifacts = task_dir.join("artifacts");
    let log = task_dir.join(format!("attempt-{attempt}.log"));
    let context_path = task_dir.join("context.json");
    let started = Instant::now();
    let prepared = (|| -> std::io::Result<Child> {
        std::fs::create_dir_all(&artifacts)?;
        let context = serde_json::json!({
            "run_id": request.id,
            "model": request.model,
            "dag": dag.name,
            "task": task.name,
            "attempt": attempt,
            "drifted_features": request.drifted_features,
            "decision": request.decision,
            "window_file": request.window_file,
            "records_file": request.records_file,
            "baseline": request.baseline,
            "artifacts_dir": artifacts,
            "upstream": upstream.iter().map(|(name, outputs)| {
                (name.to_string(), outputs.iter().map(|a| (a.file.clone(), a.path.clone())).collect::<BTreeMap<_, _>>())
            }).collect::<BTreeMap<_, _>>(),
        });
        std::fs::write(
            &context_path,
            serde_json::to_vec_pretty(&context).expect("contexts serialise"),
        )?;
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        Command::new(program(&task.run[0])?)
            .args(&task.run[1..])
            .env("DRIFTGATE_RUN_ID", &request.id)
            .env("DRIFTGATE_MODEL", &request.model)
            .env(
                "DRIFTGATE_DRIFTED_FEATURES",
                request.drifted_features.join(","),
            )
            .env("DRIFTGATE_CONTEXT", &context_path)
            .env("DRIFTGATE_ARTIFACTS_DIR", &artifacts)
            .env("DRIFTGATE_TASK", &task.name)
            .env("DRIFTGATE_ATTEMPT", attempt.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
    })();
    let _ = store.set_attempt(
        &request.id,
        &task.name,
        attempt,
        &log.display().to_string(),
        None,
    );
    if prepared.is_ok() {
        tracing::info!(run = %request.id, task = %task.name, attempt, "task started");
    }
    TaskState::Running {
        attempt,
        child: prepared.map_err(|err| format!("cannot start {:?}: {err}", task.run[0])),
        started,
        log,
    }
}

/// Records a task as finished without outputs (skipped, or failed for good) and settles its
/// state.
fn settle(
    store: &Store,
    request: &RunRequest,
    dag: &Dag,
    states: &mut BTreeMap<String, TaskState>,
    name: &str,
    status: TaskStatus,
    reason: &str,
) {
    let _ = store.set_task(&request.id, &dag.name, name, status, reason, None, None);
    states.insert(
        name.to_string(),
        TaskState::Done {
            status,
            outputs: Vec::new(),
        },
    );
}

/// The task's declared outputs with their digests; an error naming any that is missing.
fn collect_outputs(task: &Task, dir: &Path) -> Result<Vec<Artifact>, String> {
    let mut artifacts = Vec::new();
    for output in &task.outputs {
        let path = dir.join(output);
        let bytes = std::fs::read(&path)
            .map_err(|_| format!("declared output {output} was not written"))?;
        artifacts.push(Artifact {
            file: output.clone(),
            path: path.display().to_string(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes: bytes.len() as u64,
        });
    }
    Ok(artifacts)
}

/// Kills a task's whole process group (the task and anything it started).
fn kill_group(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: killpg on the group this child leads (it was started with process_group(0)).
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
}
