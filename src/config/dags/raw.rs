//! The `[[dags]]` tables as written: every field is user documentation.

use serde::Deserialize;

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
    /// Environment variables set for every task of this DAG; a task's own `env` wins (see
    /// the task's `env` for the clean environment tasks start from).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Names of the service's environment variables every task of this DAG gets, as they are.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The model's scorer for `driftgate backtest`: a command (argv) that reads records, one
    /// JSON object a line, on standard input and writes one prediction a line on standard
    /// output, in order, answering what it has read before it waits for more. It runs with
    /// `DRIFTGATE_REGISTRY` (the backtest's registry) and `DRIFTGATE_MODEL` set, and is
    /// started again after each promotion. Default: `["driftgate", "task", "predict"]`.
    #[serde(default)]
    pub predict: Option<Vec<String>>,
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
    /// Environment variables set for this task (e.g. `env = { MLFLOW_TRACKING_URI =
    /// "http://mlflow:5000" }`). A task starts from a clean environment: `PATH`, `HOME`,
    /// `TMPDIR`, `TZ`, `LANG`, `LANGUAGE`, `LC_*`, the `DRIFTGATE_*` task variables, and what
    /// `env` and `pass_env` add; nothing else of the service's (its secrets stay its own).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Names of the service's environment variables passed on to this task as they are (e.g.
    /// `pass_env = ["AWS_PROFILE"]`); unset ones are left out.
    #[serde(default)]
    pub pass_env: Vec<String>,
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
