//! `[[dags]]`: retraining DAGs, in the service file or in included files.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use crate::dag::{Condition, Dag, Task};

/// `[[dags]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDag {
    /// Unique name; models name it in `dag`.
    pub name: String,
    /// Tasks of one run at once (default 4).
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// The tasks; fan-out and fan-in follow from their `needs`. Empty for a DAG that runs on
    /// Airflow.
    #[serde(default)]
    pub tasks: Vec<RawTask>,
    /// Run this DAG on Airflow instead of locally: `airflow = { url, dag_id, api = "v2",
    /// username, password_env | password_file, poll = "5s", timeout = "6h" }`.
    #[serde(default)]
    pub airflow: Option<RawAirflow>,
    /// Run this DAG on Argo Workflows: `argo = { url, namespace, template, token_env, poll,
    /// timeout }` submits the WorkflowTemplate.
    #[serde(default)]
    pub argo: Option<RawArgo>,
    /// Run this DAG on Kubeflow Pipelines: `kubeflow = { url, pipeline_id,
    /// pipeline_version_id, experiment_id, token_env, poll, timeout }`.
    #[serde(default)]
    pub kubeflow: Option<RawKubeflow>,
}

/// `argo = { ... }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgo {
    /// The Argo Server, e.g. `"https://argo-server:2746"`.
    pub url: String,
    /// The namespace (default `argo`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The WorkflowTemplate to submit.
    pub template: String,
    /// An environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Time between state polls (default `"5s"`).
    #[serde(default)]
    pub poll: Option<String>,
    /// Fail the run when not finished after this long (default `"6h"`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `kubeflow = { ... }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubeflow {
    /// The Pipelines API, e.g. `"http://ml-pipeline.kubeflow:8888"`.
    pub url: String,
    /// The pipeline.
    pub pipeline_id: String,
    /// The pipeline version run.
    pub pipeline_version_id: String,
    /// The experiment runs belong to (default: Kubeflow's default).
    #[serde(default)]
    pub experiment_id: Option<String>,
    /// An environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Time between state polls (default `"5s"`).
    #[serde(default)]
    pub poll: Option<String>,
    /// Fail the run when not finished after this long (default `"6h"`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `airflow = { ... }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAirflow {
    /// The Airflow API server, e.g. `"http://airflow:8080"`.
    pub url: String,
    /// The Airflow DAG id to trigger.
    pub dag_id: String,
    /// `v2` (Airflow 3, default) or `v1` (Airflow 2).
    #[serde(default)]
    pub api: Option<String>,
    /// The user (default `admin`).
    #[serde(default)]
    pub username: Option<String>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (e.g. the one `airflow standalone` writes); for Airflow 3's
    /// `simple_auth_manager_passwords.json.generated` the user's entry is read.
    #[serde(default)]
    pub password_file: Option<String>,
    /// Time between state polls (default `"5s"`).
    #[serde(default)]
    pub poll: Option<String>,
    /// Fail the run when Airflow has not finished it after this long (default `"6h"`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `[[dags.tasks]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// Unique in the DAG.
    pub name: String,
    /// The command as an argv array, e.g. `["python3", "train.py", "--epochs", "3"]`; never
    /// run through a shell, and nothing from the data is ever put into it.
    pub run: Vec<String>,
    /// Tasks whose outputs this one needs.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Features this task consumes: when one of them drifted, the task and everything
    /// downstream of it run; otherwise its last outputs are reused when its inputs are unchanged.
    #[serde(default)]
    pub features: Vec<String>,
    /// Files the task writes into `$DRIFTGATE_ARTIFACTS_DIR`; a missing one fails the attempt.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Reuse outputs when the task's spec and inputs did not change (default true).
    #[serde(default)]
    pub cache: Option<bool>,
    /// Attempts after the first failure (default 0).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Delay before the first retry; doubles per retry, with jitter, capped by `max` (default
    /// `{ initial = "1s", max = "1m" }`).
    #[serde(default)]
    pub retry_backoff: Option<RawBackoff>,
    /// An attempt running longer is killed with its whole process group (default `"1h"`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Run only when this holds: `{ drifted_any = ["amount"] }`, or an upstream output's value:
    /// `{ task = "evaluate", file = "metrics.json", pointer = "/promote", equals = true }`.
    #[serde(default)]
    pub when: Option<RawCondition>,
    /// One of `outputs`: a baseline file that becomes the model's next baseline when the run
    /// succeeds.
    #[serde(default)]
    pub baseline_output: Option<String>,
}

/// `retry_backoff = { initial, max }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    /// First delay.
    pub initial: String,
    /// Longest delay.
    #[serde(default)]
    pub max: Option<String>,
}

/// `when = { ... }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// Any of these features drifted.
    #[serde(default)]
    pub drifted_any: Option<Vec<String>>,
    /// The upstream task whose output is read.
    #[serde(default)]
    pub task: Option<String>,
    /// Its JSON output file.
    #[serde(default)]
    pub file: Option<String>,
    /// A JSON pointer into the file (`""` for the whole document).
    #[serde(default)]
    pub pointer: Option<String>,
    /// The value it must equal.
    #[serde(default)]
    pub equals: Option<toml::Value>,
}

fn duration(text: &str, key: &str, problems: &mut Problems) -> Option<Duration> {
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
        let remotes = [
            raw.airflow.is_some(),
            raw.argo.is_some(),
            raw.kubeflow.is_some(),
        ];
        let remote_count = remotes.iter().filter(|r| **r).count();
        if remote_count > 1 {
            problems.add(&key, "set at most one of `airflow`, `argo` and `kubeflow`");
        }
        let remote = if let Some(a) = &raw.airflow {
            airflow(a, &format!("{key}.airflow"), problems)
        } else if let Some(a) = &raw.argo {
            argo(a, &format!("{key}.argo"), problems)
        } else if let Some(k) = &raw.kubeflow {
            kubeflow(k, &format!("{key}.kubeflow"), problems)
        } else {
            None
        };
        if remote_count > 0 && !raw.tasks.is_empty() {
            problems.add(
                format!("{key}.tasks"),
                "a DAG on an orchestrator has its tasks there: leave `tasks` out",
            );
        } else if remote_count == 0 && raw.tasks.is_empty() {
            problems.add(format!("{key}.tasks"), "a DAG needs at least one task");
        }
        let names: Vec<&str> = raw.tasks.iter().map(|t| t.name.as_str()).collect();
        let mut tasks = Vec::new();
        for (j, task) in raw.tasks.iter().enumerate() {
            let key = format!("{key}.tasks[{j}]");
            if let Some(task) = validate_task(task, &key, &names, known_features, problems) {
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
        match order(&tasks) {
            Ok(tasks) => dags.push(Dag {
                name: raw.name.clone(),
                tasks,
                max_parallel: raw.max_parallel.unwrap_or(4).max(1),
                remote,
            }),
            Err(cycle) => problems.add(
                format!("{key}.tasks"),
                format!("the tasks' `needs` form a cycle: {}", cycle.join(" → ")),
            ),
        }
    }
    dags
}

fn airflow(raw: &RawAirflow, key: &str, problems: &mut Problems) -> Option<crate::dag::Remote> {
    use crate::dag::{Airflow, AirflowApi, Remote};
    let before = problems.len();
    url_ok(&raw.url, key, problems);
    if raw.dag_id.trim().is_empty() {
        problems.add(format!("{key}.dag_id"), "is empty");
    }
    let api = match raw.api.as_deref().unwrap_or("v2") {
        "v2" => AirflowApi::V2,
        "v1" => AirflowApi::V1,
        other => {
            problems.add(
                format!("{key}.api"),
                format!("{other:?}: use v2 (Airflow 3) or v1 (Airflow 2)"),
            );
            AirflowApi::V2
        }
    };
    let username = raw.username.clone().unwrap_or_else(|| "admin".to_string());
    let password = match (&raw.password_env, &raw.password_file) {
        (Some(var), None) => std::env::var(var)
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                problems.add(
                    format!("{key}.password_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => Some(password_from_file(&text, &username)),
            Err(err) => {
                problems.add(
                    format!("{key}.password_file"),
                    format!("cannot read {file}: {err}"),
                );
                None
            }
        },
        _ => {
            problems.add(key, "set one of `password_env` or `password_file`");
            None
        }
    };
    let (poll, timeout) = poll_and_timeout(&raw.poll, &raw.timeout, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(Remote::Airflow(Airflow {
        url: raw.url.trim_end_matches('/').to_string(),
        dag_id: raw.dag_id.clone(),
        api,
        username,
        password: password?,
        poll: poll?,
        timeout: timeout?,
    }))
}

/// An orchestrator's `poll` (default 5 s) and `timeout` (default 6 h).
fn poll_and_timeout(
    poll: &Option<String>,
    timeout: &Option<String>,
    key: &str,
    problems: &mut Problems,
) -> (Option<Duration>, Option<Duration>) {
    (
        duration(
            poll.as_deref().unwrap_or("5s"),
            &format!("{key}.poll"),
            problems,
        ),
        duration(
            timeout.as_deref().unwrap_or("6h"),
            &format!("{key}.timeout"),
            problems,
        ),
    )
}

fn url_ok(url: &str, key: &str, problems: &mut Problems) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        problems.add(format!("{key}.url"), "must be an http:// or https:// URL");
    }
}

fn token(var: &Option<String>, key: &str, problems: &mut Problems) -> Option<String> {
    let var = var.as_ref()?;
    let token = std::env::var(var).ok().filter(|t| !t.is_empty());
    if token.is_none() {
        problems.add(
            format!("{key}.token_env"),
            format!("environment variable {var} is not set"),
        );
    }
    token
}

fn argo(raw: &RawArgo, key: &str, problems: &mut Problems) -> Option<crate::dag::Remote> {
    let before = problems.len();
    url_ok(&raw.url, key, problems);
    if raw.template.trim().is_empty() {
        problems.add(format!("{key}.template"), "is empty");
    }
    let token = token(&raw.token_env, key, problems);
    let (poll, timeout) = poll_and_timeout(&raw.poll, &raw.timeout, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(crate::dag::Remote::Argo(crate::dag::Argo {
        url: raw.url.trim_end_matches('/').to_string(),
        namespace: raw.namespace.clone().unwrap_or_else(|| "argo".to_string()),
        template: raw.template.clone(),
        token,
        poll: poll?,
        timeout: timeout?,
    }))
}

fn kubeflow(raw: &RawKubeflow, key: &str, problems: &mut Problems) -> Option<crate::dag::Remote> {
    let before = problems.len();
    url_ok(&raw.url, key, problems);
    for (field, value) in [
        ("pipeline_id", &raw.pipeline_id),
        ("pipeline_version_id", &raw.pipeline_version_id),
    ] {
        if value.trim().is_empty() {
            problems.add(format!("{key}.{field}"), "is empty");
        }
    }
    let token = token(&raw.token_env, key, problems);
    let (poll, timeout) = poll_and_timeout(&raw.poll, &raw.timeout, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(crate::dag::Remote::Kubeflow(crate::dag::Kubeflow {
        url: raw.url.trim_end_matches('/').to_string(),
        pipeline_id: raw.pipeline_id.clone(),
        pipeline_version_id: raw.pipeline_version_id.clone(),
        experiment_id: raw.experiment_id.clone(),
        token,
        poll: poll?,
        timeout: timeout?,
    }))
}

/// A password file's password: the file's text, or the user's entry when it is a JSON object
/// (Airflow 3's simple auth manager writes `{"admin": "..."}`).
fn password_from_file(text: &str, user: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get(user).and_then(|p| p.as_str()).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
}

fn validate_task(
    raw: &RawTask,
    key: &str,
    names: &[&str],
    known_features: &BTreeSet<String>,
    problems: &mut Problems,
) -> Option<Task> {
    let before = problems.len();
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
        if output.is_empty()
            || path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
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
    let (initial, max) = match &raw.retry_backoff {
        Some(b) => (
            duration(
                &b.initial,
                &format!("{key}.retry_backoff.initial"),
                problems,
            ),
            match &b.max {
                Some(max) => duration(max, &format!("{key}.retry_backoff.max"), problems),
                None => Some(Duration::from_secs(60)),
            },
        ),
        None => (Some(Duration::from_secs(1)), Some(Duration::from_secs(60))),
    };
    let timeout = match &raw.timeout {
        Some(text) => duration(text, &format!("{key}.timeout"), problems),
        None => Some(Duration::from_secs(3600)),
    };
    let when = raw
        .when
        .as_ref()
        .and_then(|w| condition(w, raw, &format!("{key}.when"), known_features, problems));
    if problems.len() > before {
        return None;
    }
    let initial = initial?;
    Some(Task {
        name: raw.name.clone(),
        run: raw.run.clone(),
        needs: raw.needs.clone(),
        features: raw.features.clone(),
        outputs: raw.outputs.clone(),
        cache: raw.cache.unwrap_or(true),
        retries: raw.retries.unwrap_or(0),
        retry_backoff: initial,
        retry_backoff_max: max?.max(initial),
        timeout: timeout?,
        when,
        baseline_output: raw.baseline_output.clone(),
    })
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
fn order(tasks: &[Task]) -> Result<Vec<Task>, Vec<String>> {
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
