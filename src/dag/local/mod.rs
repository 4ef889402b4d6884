//! A run of a DAG on this machine: ready tasks start as soon as the tasks they need are done,
//! up to the DAG's `max_parallel`; each attempt is a child process in its own process group,
//! with its stdout and stderr in a log file per attempt, killed with its group at its timeout
//! and retried with capped, jittered backoff. Every state change goes to the store through the
//! `Recorder`, so the API shows the run as it progresses.
//!
//! `gates` decides whether a ready task runs, is skipped or reuses cached outputs; `task`
//! starts, polls and settles attempts.

mod gates;
pub mod orphans;
mod task;

pub use task::{program, retry_delay};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::dag::recorder::Recorder;

use crate::dag::{plan, Dag, Plan};
use crate::store::{Artifact, RunRequest, RunStatus, Store, TaskStatus};

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

/// One run in progress.
struct LocalRun<'a> {
    recorder: Recorder<'a>,
    dag: &'a Dag,
    request: &'a RunRequest,
    plan: Plan,
    run_dir: PathBuf,
    states: BTreeMap<String, TaskState>,
    rng: crate::SplitMix64,
    /// Why the run failed, once a task failed for good: nothing more starts.
    failed: Option<String>,
}

/// Executes one run of a local DAG to its end (or until `stop`, leaving it queued to resume
/// after a restart, or until it is cancelled).
pub fn execute(store: &Store, dir: &Path, dag: &Dag, request: &RunRequest, stop: &AtomicBool) {
    let mut run = LocalRun::begin(store, dir, dag, request);
    let mut last_cancel_check = Instant::now();
    loop {
        if last_cancel_check.elapsed() >= CANCEL_CHECK {
            last_cancel_check = Instant::now();
            if run.recorder.cancel_requested() {
                return run.cancel();
            }
        }
        if stop.load(Ordering::SeqCst) {
            return run.interrupt();
        }
        let progressed = run.step();
        if run
            .states
            .values()
            .all(|s| matches!(s, TaskState::Done { .. }))
        {
            break;
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    match &run.failed {
        Some(error) => run
            .recorder
            .run_status(RunStatus::Failed, None, Some(error)),
        None => run.recorder.run_status(RunStatus::Succeeded, None, None),
    }
}

impl<'a> LocalRun<'a> {
    /// Plans the run and records it running, every task pending with the plan's reason.
    fn begin(store: &'a Store, dir: &Path, dag: &'a Dag, request: &'a RunRequest) -> Self {
        let recorder = Recorder::new(store, &request.id, &dag.name);
        let plan = plan(dag, &request.drifted_features);
        let plan_json = serde_json::to_value(&plan).expect("plans serialise");
        recorder.run_status(RunStatus::Running, Some(&plan_json), None);
        for planned in &plan.tasks {
            recorder.task(
                &planned.name,
                TaskStatus::Pending,
                &planned.reason,
                None,
                None,
            );
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        LocalRun {
            recorder,
            dag,
            request,
            plan,
            run_dir: dir.join(&request.id),
            states: dag
                .tasks
                .iter()
                .map(|t| (t.name.clone(), TaskState::Pending))
                .collect(),
            rng: crate::SplitMix64::new(seed),
            failed: None,
        }
    }

    /// One pass over the tasks; true when any changed state.
    fn step(&mut self) -> bool {
        let running = self
            .states
            .values()
            .filter(|s| matches!(s, TaskState::Running { .. }))
            .count();
        let mut capacity = self.dag.max_parallel.saturating_sub(running);
        let mut progressed = false;
        for task in &self.dag.tasks {
            let failed = self.failed.is_some();
            progressed |= match (&self.states[&task.name], failed) {
                (TaskState::Pending, false) => self.on_pending(task, &mut capacity),
                (TaskState::Pending, true) => {
                    // The run failed: what has not started will not.
                    let why = self.failed.as_deref().unwrap_or("the run failed");
                    let reason = format!("not started: {why}");
                    self.settle(&task.name, TaskStatus::Skipped, &reason);
                    true
                }
                (TaskState::Waiting { .. }, false) => self.on_waiting(task, &mut capacity),
                (TaskState::Waiting { .. }, true) => {
                    self.settle(
                        &task.name,
                        TaskStatus::Failed,
                        "not retried: the run failed",
                    );
                    true
                }
                (TaskState::Running { .. }, _) => self.on_running(task),
                (TaskState::Done { .. }, _) => false,
            };
        }
        progressed
    }

    /// Records a task as finished without outputs (skipped, or failed for good).
    fn settle(&mut self, name: &str, status: TaskStatus, reason: &str) {
        self.recorder.task(name, status, reason, None, None);
        let outputs = Vec::new();
        self.states
            .insert(name.to_string(), TaskState::Done { status, outputs });
    }

    /// Cancelled on request: running tasks are killed with their groups, the rest never start.
    fn cancel(mut self) {
        for (name, state) in self.states.iter_mut() {
            let reason = match state {
                TaskState::Running {
                    child: Ok(child), ..
                } => {
                    task::kill_group(child);
                    let _ = child.wait();
                    "killed: the run was cancelled"
                }
                TaskState::Done { .. } => continue,
                _ => "not started: the run was cancelled",
            };
            self.recorder
                .task(name, TaskStatus::Cancelled, reason, None, None);
        }
        self.recorder
            .run_status(RunStatus::Cancelled, None, Some("cancelled on request"));
    }

    /// The service stops: what runs is killed; the run is queued again for the next start.
    fn interrupt(mut self) {
        for state in self.states.values_mut() {
            if let TaskState::Running {
                child: Ok(child), ..
            } = state
            {
                task::kill_group(child);
            }
        }
        self.recorder.run_status(RunStatus::Queued, None, None);
    }
}
