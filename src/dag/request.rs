//! What a run is asked to do, built in one place for both ways a run starts: a policy's
//! triggered decision, or a person through `POST /api/v1/runs`. Both carry the same lineage
//! (key → id, model, DAG, stream, baseline); only a triggered run names its window and decision.

use sha2::{Digest, Sha256};

use crate::policy::Decision;
use crate::store::RunRequest;

/// The id of the run for an idempotency key: the same key always names the same run.
pub fn run_id(key: &str) -> String {
    format!("run-{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16])
}

/// The window data exported into a run's directory before it starts.
#[derive(Debug, Clone, Default)]
pub struct WindowFiles {
    /// `window.json`: the window's columns.
    pub window: Option<String>,
    /// `window.jsonl`: its records, when the stream keeps them.
    pub records: Option<String>,
}

/// The run a triggered `decision` starts with `dag`, judged against `baseline`.
pub fn triggered(decision: &Decision, dag: &str, baseline: &str, files: WindowFiles) -> RunRequest {
    RunRequest {
        window: Some(decision.window),
        baseline: Some(baseline.to_string()),
        drifted_features: decision.drifted_features.clone(),
        decision: serde_json::to_value(decision).unwrap_or_default(),
        window_file: files.window,
        records_file: files.records,
        ..request(decision.key.clone(), &decision.model, dag, &decision.stream)
    }
}

/// A run asked for by hand: of `model` on `stream` with `dag`, for the `drifted` features,
/// against the baseline in use.
pub fn manual(
    key: String,
    model: &str,
    dag: &str,
    stream: &str,
    drifted: Vec<String>,
    baseline: Option<String>,
) -> RunRequest {
    RunRequest {
        baseline,
        drifted_features: drifted,
        ..request(key, model, dag, stream)
    }
}

/// The fields every run has; the rest empty.
fn request(key: String, model: &str, dag: &str, stream: &str) -> RunRequest {
    RunRequest {
        id: run_id(&key),
        key,
        model: model.to_string(),
        dag: dag.to_string(),
        stream: stream.to_string(),
        window: None,
        baseline: None,
        drifted_features: Vec::new(),
        decision: serde_json::Value::Null,
        window_file: None,
        records_file: None,
    }
}
