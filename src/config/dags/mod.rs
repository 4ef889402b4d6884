//! `[[dags]]`: retraining DAGs, in the service file or in included files.
//!
//! Layout: `raw.rs` (the tables as written), `tasks.rs` (a local DAG's tasks and their
//! order), `remote.rs` (DAGs on Airflow, Argo or Kubeflow).

mod raw;
mod remote;
mod tasks;

use std::collections::BTreeSet;
use std::time::Duration;

use super::problems::Problems;
use crate::dag::{Dag, Task};

pub use raw::{RawAirflow, RawArgo, RawBackoff, RawCondition, RawDag, RawKubeflow, RawTask};

pub(super) fn duration(text: &str, key: &str, problems: &mut Problems) -> Option<Duration> {
    super::duration(text, false)
        .map_err(|message| problems.add(key, message))
        .ok()
}

/// Validates DAGs (`(prefix, index, dag)`, prefix naming the file) against the features the
/// streams offer; returns the valid ones.
pub fn validate(
    sources: &[(String, usize, RawDag)],
    known_features: &BTreeSet<String>,
    problems: &mut Problems,
) -> Vec<Dag> {
    let mut dags: Vec<Dag> = Vec::new();
    for (prefix, i, raw) in sources {
        let key = format!("{prefix}dags[{i}]");
        let before = problems.len();
        if raw.name.trim().is_empty() {
            problems.add(format!("{key}.name"), "is empty");
        } else if dags.iter().any(|d| d.name == raw.name) {
            problems.add(
                format!("{key}.name"),
                format!("DAG `{}` is defined twice", raw.name),
            );
        }
        let (remote, remote_count) = remote_of(raw, &key, problems);
        tasks::check_env_names(&raw.env, &raw.pass_env, &key, problems);
        if remote_count > 0 && !raw.tasks.is_empty() {
            problems.add(
                format!("{key}.tasks"),
                "a DAG on an orchestrator has its tasks there: leave `tasks` out",
            );
        } else if remote_count == 0 && raw.tasks.is_empty() {
            problems.add(format!("{key}.tasks"), "a DAG needs at least one task");
        }
        if raw.predict.as_ref().is_some_and(|argv| argv.is_empty()) {
            problems.add(format!("{key}.predict"), "names no program: give an argv");
        }
        let names: Vec<&str> = raw.tasks.iter().map(|t| t.name.as_str()).collect();
        let mut tasks = Vec::new();
        for (j, task) in raw.tasks.iter().enumerate() {
            let key = format!("{key}.tasks[{j}]");
            if let Some(task) =
                tasks::validate_task(task, raw, &key, &names, known_features, problems)
            {
                if tasks.iter().any(|t: &Task| t.name == task.name) {
                    problems.add(
                        format!("{key}.name"),
                        format!("task `{}` is defined twice", task.name),
                    );
                }
                tasks.push(task);
            }
        }
        if problems.len() > before {
            continue;
        }
        match tasks::order(&tasks) {
            Ok(tasks) => dags.push(Dag {
                name: raw.name.clone(),
                tasks,
                max_parallel: raw.max_parallel.unwrap_or(4).max(1),
                remote,
                predict: raw.predict.clone(),
            }),
            Err(cycle) => problems.add(
                format!("{key}.tasks"),
                format!("the tasks' `needs` form a cycle: {}", cycle.join(" → ")),
            ),
        }
    }
    dags
}

/// The orchestrator a DAG runs on, if any (at most one), with how many were set.
fn remote_of(
    raw: &RawDag,
    key: &str,
    problems: &mut Problems,
) -> (Option<crate::dag::Remote>, usize) {
    let count = [
        raw.airflow.is_some(),
        raw.argo.is_some(),
        raw.kubeflow.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if count > 1 {
        problems.add(key, "set at most one of `airflow`, `argo` and `kubeflow`");
    }
    let remote = if let Some(a) = &raw.airflow {
        remote::airflow(a, &format!("{key}.airflow"), problems)
    } else if let Some(a) = &raw.argo {
        remote::argo(a, &format!("{key}.argo"), problems)
    } else if let Some(k) = &raw.kubeflow {
        remote::kubeflow(k, &format!("{key}.kubeflow"), problems)
    } else {
        None
    };
    (remote, count)
}
