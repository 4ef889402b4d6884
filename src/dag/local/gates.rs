//! Whether a ready task runs: skipped when a task it needs was skipped or its `when` condition
//! is false; its outputs reused when the plan did not select it and an earlier run made them
//! from the same inputs (the cache key); else it runs.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::dag::recorder::Recorder;
use crate::dag::{Condition, Plan, Task};
use crate::store::{Artifact, RunRequest};

/// What happens to a task whose needs are done.
pub(super) enum Gate {
    /// It does not run, for this reason.
    Skip(String),
    /// An earlier run's outputs stand in for it.
    Cached {
        /// The run that made them.
        from: String,
        /// The outputs.
        outputs: Vec<Artifact>,
        /// The cache key they were found under.
        key: String,
    },
    /// It runs, under this cache key.
    Run(String),
}

/// The outputs of the tasks a task needs, by task.
pub(super) type Upstream = BTreeMap<String, Vec<Artifact>>;

/// The gate of `task`, whose needs ended with `skipped` naming one that was skipped (if any).
pub(super) fn gate(
    task: &Task,
    skipped: Option<&str>,
    request: &RunRequest,
    plan: &Plan,
    upstream: &Upstream,
    recorder: &Recorder<'_>,
) -> Gate {
    if let Some(need) = skipped {
        return Gate::Skip(format!("needs {need}, which was skipped"));
    }
    if let Some(when) = &task.when {
        if let Err(reason) = holds(when, request, upstream) {
            return Gate::Skip(reason);
        }
    }
    let key = cache_key(task, request, upstream);
    if !plan.selected(&task.name) {
        if let Some((from, outputs)) = recorder.cached(&task.name, &key) {
            if outputs.iter().all(|a| Path::new(&a.path).exists()) {
                return Gate::Cached { from, outputs, key };
            }
        }
    }
    Gate::Run(key)
}

/// Whether a task's `when` holds; the reason when it does not.
fn holds(when: &Condition, request: &RunRequest, upstream: &Upstream) -> Result<(), String> {
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
fn cache_key(task: &Task, request: &RunRequest, upstream: &Upstream) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(task).expect("tasks serialise"));
    for (name, outputs) in upstream {
        hasher.update(name.as_bytes());
        for artifact in outputs {
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
