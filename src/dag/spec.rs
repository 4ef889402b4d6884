//! Validated DAG definitions: tasks with commands, dependencies, inputs, outputs and gates.

use std::time::Duration;

use serde::Serialize;

/// A retraining DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dag {
    /// Unique name; models name it in `dag`.
    pub name: String,
    /// Tasks in a dependency order (every task after those it needs).
    pub tasks: Vec<Task>,
    /// Tasks of one run at once.
    pub max_parallel: usize,
    /// Where the DAG runs instead of the local executor.
    pub remote: Option<Remote>,
    /// The model's scorer for backtests (argv), when not `driftgate task predict`.
    pub predict: Option<Vec<String>>,
}

/// An orchestrator that runs a DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Remote {
    /// An Airflow deployment.
    Airflow(Airflow),
    /// An Argo Workflows server.
    Argo(Argo),
    /// A Kubeflow Pipelines API.
    Kubeflow(Kubeflow),
}

/// How to reach an Argo WorkflowTemplate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Argo {
    /// The Argo Server, e.g. `https://argo:2746`.
    pub url: String,
    /// The namespace.
    pub namespace: String,
    /// The WorkflowTemplate submitted.
    pub template: String,
    /// A bearer token (never serialised).
    #[serde(skip)]
    pub token: Option<String>,
    /// Time between state polls.
    pub poll: Duration,
    /// A run still not finished after this is failed.
    pub timeout: Duration,
}

/// How to reach a Kubeflow pipeline version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kubeflow {
    /// The Pipelines API, e.g. `http://ml-pipeline:8888`.
    pub url: String,
    /// The pipeline.
    pub pipeline_id: String,
    /// Its version.
    pub pipeline_version_id: String,
    /// The experiment runs go to.
    pub experiment_id: Option<String>,
    /// A bearer token (never serialised).
    #[serde(skip)]
    pub token: Option<String>,
    /// Time between state polls.
    pub poll: Duration,
    /// A run still not finished after this is failed.
    pub timeout: Duration,
}

/// Which Airflow REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AirflowApi {
    /// Airflow 2: `/api/v1`, basic authentication.
    V1,
    /// Airflow 3: `/api/v2`, a token from `/auth/token`.
    V2,
}

/// How to reach an Airflow DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Airflow {
    /// The webserver / API server, e.g. `http://airflow:8080`.
    pub url: String,
    /// The Airflow DAG id.
    pub dag_id: String,
    /// Which API.
    pub api: AirflowApi,
    /// The user.
    pub username: String,
    /// The password (never serialised).
    #[serde(skip)]
    pub password: String,
    /// Time between state polls.
    pub poll: Duration,
    /// A run still not finished after this is failed.
    pub timeout: Duration,
}

impl Dag {
    /// The file a finished run of this DAG declared as the next baseline (a task's
    /// `baseline_output`), given the run's task records.
    pub fn baseline_output(
        &self,
        tasks: &[crate::store::TaskRecord],
    ) -> Option<std::path::PathBuf> {
        self.tasks.iter().find_map(|task| {
            let file = task.baseline_output.as_ref()?;
            tasks
                .iter()
                .filter(|t| t.task == task.name && t.status.has_outputs())
                .flat_map(|t| t.outputs.iter())
                .find(|a| &a.file == file)
                .map(|a| std::path::PathBuf::from(&a.path))
        })
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// One task: a command run as a child process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Unique in its DAG.
    pub name: String,
    /// The argv: program and arguments, never through a shell.
    pub run: Vec<String>,
    /// Tasks whose outputs it needs.
    pub needs: Vec<String>,
    /// Features it consumes: a drift in one of them selects the task.
    pub features: Vec<String>,
    /// Files it must write into its artifacts directory.
    pub outputs: Vec<String>,
    /// Whether its outputs may be reused when its inputs did not change.
    pub cache: bool,
    /// Attempts after the first failure.
    pub retries: u32,
    /// First retry delay; doubles per retry, with jitter, up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// Longest retry delay.
    pub retry_backoff_max: Duration,
    /// Killed (its whole process group) when an attempt runs longer.
    pub timeout: Duration,
    /// Runs only when this holds.
    pub when: Option<Condition>,
    /// This output becomes the model's next baseline when the run succeeds.
    pub baseline_output: Option<String>,
    /// Environment variables set for the task (its DAG's and its own).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    /// The service's environment variables passed on to the task.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
}

/// A task's gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Any of these features drifted in the triggering window.
    DriftedAny(Vec<String>),
    /// A JSON file an upstream task wrote has this value at a JSON pointer (e.g. an evaluation
    /// gate: `{ task = "evaluate", file = "metrics.json", pointer = "/promote", equals = true }`).
    Output {
        /// The upstream task.
        task: String,
        /// The output file.
        file: String,
        /// JSON pointer into it.
        pointer: String,
        /// The value it must equal.
        equals: serde_json::Value,
    },
}
