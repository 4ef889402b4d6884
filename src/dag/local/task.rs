//! One task of a local run: started as a child process in its own process group, with a
//! context file and a log per attempt; polled until it exits or times out (its whole group is
//! killed); its declared outputs collected with their digests; retried with capped, jittered
//! backoff.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::gates::{gate, Gate, Upstream};
use super::{LocalRun, TaskState};
use crate::dag::{Selection, Task};
use crate::store::{Artifact, TaskStatus};

/// An ended attempt's outputs, or what went wrong.
type AttemptResult = Result<Vec<Artifact>, String>;

impl LocalRun<'_> {
    /// A pending task whose needs are done: skipped, cached, or started when there is room.
    /// True when something changed.
    pub(super) fn on_pending(&mut self, task: &Task, capacity: &mut usize) -> bool {
        let needs: Vec<&TaskState> = task.needs.iter().map(|n| &self.states[n]).collect();
        if needs.iter().any(|s| !matches!(s, TaskState::Done { .. })) {
            return false;
        }
        let skipped = task.needs.iter().find(|n| {
            matches!(
                self.states[*n],
                TaskState::Done {
                    status: TaskStatus::Skipped,
                    ..
                }
            )
        });
        let upstream = self.upstream(task);
        let gate = gate(
            task,
            skipped.map(String::as_str),
            self.request,
            &self.plan,
            &upstream,
            &self.recorder,
        );
        match gate {
            Gate::Skip(reason) => self.settle(&task.name, TaskStatus::Skipped, &reason),
            Gate::Cached { from, outputs, key } => {
                let reason = format!("inputs unchanged: reuses the outputs of run {from}");
                let status = TaskStatus::Cached;
                self.recorder
                    .task(&task.name, status, &reason, Some(&key), Some(&outputs));
                self.states
                    .insert(task.name.clone(), TaskState::Done { status, outputs });
            }
            Gate::Run(key) => {
                if *capacity == 0 {
                    return false;
                }
                *capacity -= 1;
                // After an interrupted run, its attempts keep their records: number on.
                let first = self.recorder.last_attempt(&task.name) + 1;
                self.launch(task, &upstream, first, Some(&key));
            }
        }
        true
    }

    /// A task waiting to retry: started again once its back-off is over and there is room.
    pub(super) fn on_waiting(&mut self, task: &Task, capacity: &mut usize) -> bool {
        let Some(TaskState::Waiting { attempt, until }) = self.states.get(&task.name) else {
            return false;
        };
        if *until > Instant::now() || *capacity == 0 {
            return false;
        }
        let attempt = *attempt;
        *capacity -= 1;
        let upstream = self.upstream(task);
        self.launch(task, &upstream, attempt, None);
        true
    }

    /// A running task: when its attempt ended, recorded and settled (done, retried or failed).
    pub(super) fn on_running(&mut self, task: &Task) -> bool {
        let Some(TaskState::Running {
            attempt,
            child,
            started,
            log,
        }) = self.states.get_mut(&task.name)
        else {
            return false;
        };
        let artifacts = self.run_dir.join(&task.name).join("artifacts");
        let Some((code, outcome)) = attempt_outcome(child, *started, task, &artifacts) else {
            return false;
        };
        let (attempt, log) = (*attempt, log.display().to_string());
        match outcome {
            Ok(outputs) => {
                self.recorder
                    .attempt(&task.name, attempt, &log, Some((code, None)));
                let reason = reason_of(&self.plan, &task.name);
                let status = TaskStatus::Succeeded;
                self.recorder
                    .task(&task.name, status, &reason, None, Some(&outputs));
                self.states
                    .insert(task.name.clone(), TaskState::Done { status, outputs });
            }
            Err(error) => {
                self.recorder
                    .attempt(&task.name, attempt, &log, Some((code, Some(&error))));
                self.attempt_failed(task, attempt, &error);
            }
        }
        true
    }

    /// After a failed attempt: another one after a back-off, or the task (and the run) failed.
    fn attempt_failed(&mut self, task: &Task, attempt: u32, error: &str) {
        let name = task.name.as_str();
        if attempt > task.retries || self.failed.is_some() {
            let reason = format!("failed after {attempt} attempt(s): {error}");
            self.failed.get_or_insert(format!("task {name} failed"));
            self.settle(name, TaskStatus::Failed, &reason);
            return;
        }
        let delay = retry_delay(task, attempt, self.rng.next_f64());
        tracing::warn!(run = %self.request.id, task = name, attempt, error = %error,
            retry_in_ms = delay.as_millis() as u64, "task failed; will retry");
        let reason = format!(
            "attempt {attempt} failed ({error}); retrying in {}",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        );
        self.recorder
            .task(name, TaskStatus::Waiting, &reason, None, None);
        let next = TaskState::Waiting {
            attempt: attempt + 1,
            until: Instant::now() + delay,
        };
        self.states.insert(name.to_string(), next);
    }

    /// Records the task running and starts attempt `attempt`.
    fn launch(&mut self, task: &Task, upstream: &Upstream, attempt: u32, key: Option<&str>) {
        let reason = reason_of(&self.plan, &task.name);
        self.recorder
            .task(&task.name, TaskStatus::Running, &reason, key, None);
        let state = self.start(task, upstream, attempt);
        self.states.insert(task.name.clone(), state);
    }

    /// The outputs of the tasks `task` needs.
    fn upstream(&self, task: &Task) -> Upstream {
        task.needs
            .iter()
            .filter_map(|n| match &self.states[n] {
                TaskState::Done { outputs, .. } => Some((n.clone(), outputs.clone())),
                _ => None,
            })
            .collect()
    }

    /// Starts an attempt: its directories, context file and log, then the process in its own
    /// group. A process that cannot start is an attempt that failed at once.
    fn start(&self, task: &Task, upstream: &Upstream, attempt: u32) -> TaskState {
        let task_dir = self.run_dir.join(&task.name);
        let log = task_dir.join(format!("attempt-{attempt}.log"));
        let started = Instant::now();
        let child = self.spawn(task, &task_dir, &log, upstream, attempt);
        self.recorder
            .attempt(&task.name, attempt, &log.display().to_string(), None);
        if let Ok(child) = &child {
            if let Some(start) = super::orphans::start_ticks(child.id()) {
                self.recorder
                    .attempt_process(&task.name, attempt, child.id(), start);
            }
        }
        if child.is_ok() {
            tracing::info!(run = %self.request.id, task = %task.name, attempt, "task started");
        }
        TaskState::Running {
            attempt,
            child: child.map_err(|err| format!("cannot start {:?}: {err}", task.run[0])),
            started,
            log,
        }
    }

    /// Writes the attempt's context file and spawns its process, output to `log`.
    fn spawn(
        &self,
        task: &Task,
        task_dir: &Path,
        log: &Path,
        upstream: &Upstream,
        attempt: u32,
    ) -> std::io::Result<Child> {
        let request = self.request;
        let artifacts = task_dir.join("artifacts");
        let context_path = task_dir.join("context.json");
        crate::files::create_private_dir(&artifacts)?;
        let upstream: BTreeMap<&String, BTreeMap<&String, &String>> = upstream
            .iter()
            .map(|(name, outputs)| (name, outputs.iter().map(|a| (&a.file, &a.path)).collect()))
            .collect();
        let context = serde_json::json!({
            "run_id": request.id,
            "model": request.model,
            "dag": self.dag.name,
            "task": task.name,
            "attempt": attempt,
            "drifted_features": request.drifted_features,
            "decision": request.decision,
            "window_file": request.window_file,
            "records_file": request.records_file,
            "baseline": request.baseline,
            "artifacts_dir": artifacts,
            "upstream": upstream,
        });
        let text = serde_json::to_vec_pretty(&context).expect("contexts serialise");
        crate::files::write_private(&context_path, text)?;
        let out = crate::files::create_private_file(log)?;
        let err = out.try_clone()?;
        Command::new(program(&task.run[0])?)
            .args(&task.run[1..])
            // A clean environment: the service's secrets are not the task's.
            .env_clear()
            .envs(task_environment(task))
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
    }
}

/// The service's variables every task gets: where programs are, the home and temporary
/// directories, the time zone and the locale (`LC_*` too).
const BASE_ENV: [&str; 5] = ["PATH", "HOME", "TMPDIR", "TZ", "LANG"];

/// A task's environment besides the `DRIFTGATE_*` variables: the base, `LANGUAGE` and `LC_*`,
/// the names in `pass_env` (when set), then `env`.
fn task_environment(task: &Task) -> Vec<(OsString, OsString)> {
    let passed = |name: &str| {
        BASE_ENV.contains(&name)
            || name == "LANGUAGE"
            || name.starts_with("LC_")
            || task.pass_env.iter().any(|p| p == name)
    };
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| name.to_str().is_some_and(passed))
        .collect();
    vars.extend(task.env.iter().map(|(k, v)| (k.into(), v.into())));
    vars
}

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

/// Why the plan runs `task`, in words.
pub(super) fn reason_of(plan: &crate::dag::Plan, task: &str) -> String {
    plan.tasks
        .iter()
        .find(|t| t.name == task)
        .map(|t| match t.selection {
            Selection::Selected => t.reason.clone(),
            Selection::Unaffected => "inputs unchanged but no cached outputs: runs".to_string(),
        })
        .unwrap_or_default()
}

/// The delay before retry `attempt` (1 after the first failure): doubling from the task's
/// `retry_backoff`, capped, less up to a fifth at random.
pub fn retry_delay(task: &Task, attempt: u32, jitter: f64) -> Duration {
    crate::retry::delay(task.retry_backoff, task.retry_backoff_max, attempt, jitter)
}

/// A task's program: `driftgate` is this very binary (for the built-in tasks, whatever the
/// `PATH`); anything else is looked up as usual.
pub fn program(name: &str) -> std::io::Result<PathBuf> {
    if name == "driftgate" {
        std::env::current_exe()
    } else {
        Ok(PathBuf::from(name))
    }
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
pub(super) fn kill_group(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: killpg on the group this child leads (it was started with process_group(0)).
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
}
