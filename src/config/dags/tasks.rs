//! A local DAG's tasks: each checked on its own, then ordered by their `needs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::duration;
use super::raw::{RawCondition, RawDag, RawTask};
use crate::config::problems::Problems;
use crate::dag::{Condition, Task};

pub(super) fn validate_task(
    raw: &RawTask,
    dag: &RawDag,
    key: &str,
    names: &[&str],
    known_features: &BTreeSet<String>,
    problems: &mut Problems,
) -> Option<Task> {
    let before = problems.len();
    let (env, pass_env) = environment(dag, raw, key, problems);
    check_shape(raw, key, names, problems);
    check_data(raw, key, known_features, problems);
    let timing = Timing::of(raw, key, problems);
    let when = raw
        .when
        .as_ref()
        .and_then(|w| condition(w, raw, &format!("{key}.when"), known_features, problems));
    if problems.len() > before {
        return None;
    }
    let initial = timing.backoff?;
    Some(Task {
        name: raw.name.clone(),
        run: raw.run.clone(),
        needs: raw.needs.clone(),
        features: raw.features.clone(),
        outputs: raw.outputs.clone(),
        cache: raw.cache.unwrap_or(true),
        retries: raw.retries.unwrap_or(0),
        retry_backoff: initial,
        retry_backoff_max: timing.backoff_max?.max(initial),
        timeout: timing.timeout?,
        when,
        baseline_output: raw.baseline_output.clone(),
        env,
        pass_env,
    })
}

/// The task's `env` over its DAG's (whose names the DAG's own check reports), and both
/// `pass_env` lists.
fn environment(
    dag: &RawDag,
    task: &RawTask,
    key: &str,
    problems: &mut Problems,
) -> (BTreeMap<String, String>, Vec<String>) {
    check_env_names(&task.env, &task.pass_env, key, problems);
    let mut env = dag.env.clone();
    env.extend(task.env.clone());
    let mut pass_env: Vec<String> = dag.pass_env.iter().chain(&task.pass_env).cloned().collect();
    pass_env.sort();
    pass_env.dedup();
    (env, pass_env)
}

/// `env` and `pass_env` names must be plain and may not take driftgate's own `DRIFTGATE_*`
/// variables.
pub(super) fn check_env_names(
    env: &BTreeMap<String, String>,
    pass_env: &[String],
    key: &str,
    problems: &mut Problems,
) {
    let named = env
        .keys()
        .map(|name| (name, format!("{key}.env.{name}")))
        .chain(
            pass_env
                .iter()
                .map(|name| (name, format!("{key}.pass_env"))),
        );
    for (name, at) in named {
        let plain = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            problems.add(
                at,
                format!("{name:?} is not a variable name (letters, digits, _)"),
            );
        } else if name.starts_with("DRIFTGATE_") {
            problems.add(
                at,
                format!("{name}: DRIFTGATE_* variables are driftgate's own"),
            );
        }
    }
}

/// The task's name (it names a directory), its command and what it needs.
fn check_shape(raw: &RawTask, key: &str, names: &[&str], problems: &mut Problems) {
    if raw.name.trim().is_empty() || raw.name.contains(['/', '\\']) || raw.name.starts_with('.') {
        problems.add(
            format!("{key}.name"),
            "must be non-empty, without `/`, and not start with `.` (it names a directory)",
        );
    }
    if raw.run.is_empty() || raw.run[0].trim().is_empty() {
        problems.add(
            format!("{key}.run"),
            "needs a program: [\"program\", \"arg\", ...]",
        );
    }
    for (k, need) in raw.needs.iter().enumerate() {
        if !names.contains(&need.as_str()) {
            problems.add(
                format!("{key}.needs[{k}]"),
                format!("no task `{need}` in this DAG"),
            );
        } else if *need == raw.name {
            problems.add(format!("{key}.needs[{k}]"), "a task cannot need itself");
        }
    }
}

/// The features it reads and the outputs it writes (relative paths inside its artifacts).
fn check_data(
    raw: &RawTask,
    key: &str,
    known_features: &BTreeSet<String>,
    problems: &mut Problems,
) {
    for (k, feature) in raw.features.iter().enumerate() {
        if !known_features.contains(feature) {
            problems.add(
                format!("{key}.features[{k}]"),
                format!("`{feature}` is not a feature of any stream"),
            );
        }
    }
    for (k, output) in raw.outputs.iter().enumerate() {
        let path = std::path::Path::new(output);
        let inside = !output.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            problems.add(
                format!("{key}.outputs[{k}]"),
                "must be a relative path inside the artifacts directory",
            );
        }
    }
    if let Some(output) = &raw.baseline_output {
        if !raw.outputs.contains(output) {
            problems.add(
                format!("{key}.baseline_output"),
                format!("`{output}` is not one of the task's outputs"),
            );
        }
    }
}

/// A task's retry backoff and timeout; `None` where the text is not a duration.
struct Timing {
    backoff: Option<Duration>,
    backoff_max: Option<Duration>,
    timeout: Option<Duration>,
}

impl Timing {
    fn of(raw: &RawTask, key: &str, problems: &mut Problems) -> Timing {
        let mut parse = |text: Option<&String>, field: &str, default: u64| match text {
            Some(text) => duration(text, &format!("{key}.{field}"), problems),
            None => Some(Duration::from_secs(default)),
        };
        let backoff = raw.retry_backoff.as_ref();
        Timing {
            backoff: parse(backoff.map(|b| &b.initial), "retry_backoff.initial", 1),
            backoff_max: parse(
                backoff.and_then(|b| b.max.as_ref()),
                "retry_backoff.max",
                60,
            ),
            timeout: parse(raw.timeout.as_ref(), "timeout", 3600),
        }
    }
}

fn condition(
    raw: &RawCondition,
    task: &RawTask,
    key: &str,
    known_features: &BTreeSet<String>,
    problems: &mut Problems,
) -> Option<Condition> {
    let output_form =
        raw.task.is_some() || raw.file.is_some() || raw.pointer.is_some() || raw.equals.is_some();
    match (&raw.drifted_any, output_form) {
        (Some(features), false) => {
            for (k, feature) in features.iter().enumerate() {
                if !known_features.contains(feature) {
                    problems.add(
                        format!("{key}.drifted_any[{k}]"),
                        format!("`{feature}` is not a feature of any stream"),
                    );
                }
            }
            Some(Condition::DriftedAny(features.clone()))
        }
        (None, true) => {
            let (Some(upstream), Some(file), Some(equals)) = (&raw.task, &raw.file, &raw.equals)
            else {
                problems.add(
                    key,
                    "an output condition needs `task`, `file` and `equals` (and `pointer`)",
                );
                return None;
            };
            if !task.needs.contains(upstream) {
                problems.add(
                    format!("{key}.task"),
                    format!("`{upstream}` must be one of the task's `needs`"),
                );
            }
            let pointer = raw.pointer.clone().unwrap_or_default();
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                problems.add(format!("{key}.pointer"), "a JSON pointer starts with `/`");
            }
            let equals = serde_json::to_value(equals).unwrap_or(serde_json::Value::Null);
            Some(Condition::Output {
                task: upstream.clone(),
                file: file.clone(),
                pointer,
                equals,
            })
        }
        _ => {
            problems.add(
                key,
                "set either `drifted_any` or an upstream output (`task`, `file`, `pointer`, `equals`)",
            );
            None
        }
    }
}

/// The tasks in dependency order (Kahn, stable in file order), or a cycle.
pub(super) fn order(tasks: &[Task]) -> Result<Vec<Task>, Vec<String>> {
    let mut placed: Vec<Task> = Vec::new();
    let mut left: Vec<&Task> = tasks.iter().collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|t| t.needs.iter().all(|n| placed.iter().any(|p| &p.name == n)));
        match ready {
            Some(i) => placed.push(left.remove(i).clone()),
            None => return Err(cycle(&left)),
        }
    }
    Ok(placed)
}

/// A cycle among `left` (every one of which needs another in `left`), as task names.
fn cycle(left: &[&Task]) -> Vec<String> {
    let by_name: BTreeMap<&str, &Task> = left.iter().map(|t| (t.name.as_str(), *t)).collect();
    let mut path: Vec<String> = Vec::new();
    let mut current = left[0];
    loop {
        if let Some(start) = path.iter().position(|n| *n == current.name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(current.name.clone());
            return cycle;
        }
        path.push(current.name.clone());
        let next = current
            .needs
            .iter()
            .find_map(|n| by_name.get(n.as_str()))
            .expect("every task left needs another task left");
        current = next;
    }
}
