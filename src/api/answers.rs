//! The API's answers as types. Every JSON endpoint answers with one of these, and the OpenAPI
//! document (`openapi.rs`) is generated from the same types, so the two cannot drift apart.
//!
//! Times: fields named `*_at` hold epoch milliseconds here; `times.rs` turns them into RFC 3339
//! with a `*_at_ms` twin on the way out, in the answers and in the document alike.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::policy::Decision;
use crate::store::{AlertStatus, Artifact, BaselineVersion, RunRecord, RunRequest, TaskRecord};

/// Every error: what went wrong, in a sentence that names the parameter or the thing missing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// A configured stream and what it has seen.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    /// The stream's name.
    pub name: String,
    /// The Kafka topic it reads.
    pub topic: String,
    /// Its window rule, e.g. `2000 records` or `5m`.
    pub window: String,
    /// The baseline the detectors use now: the configured one, or the version a run rotated in.
    pub baseline_id: String,
    /// The baseline named in the configuration.
    pub configured_baseline_id: String,
    /// The run whose output is the baseline in use, when a run rotated it in.
    pub baseline_run_id: Option<String>,
    /// The monitored features.
    pub features: Vec<String>,
    /// Records read since the service started.
    pub records: u64,
    /// Windows closed since the service started.
    pub windows: u64,
}

/// `GET /api/v1/streams`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Streams {
    /// The configured streams.
    pub streams: Vec<StreamView>,
}

/// `GET /api/v1/streams/{name}/windows`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Windows {
    /// The latest window reports, newest first, as the README's "Window reports" describes.
    #[schema(value_type = Vec<Object>)]
    pub windows: Vec<serde_json::Value>,
}

/// A decision with its time in RFC 3339 beside the epoch milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// The decision time (the window's end), RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
}

/// `GET /api/v1/decisions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decisions {
    /// One page of decisions, newest first.
    pub decisions: Vec<DecisionView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alerts {
    /// Deliveries per status (`pending`, `delivered`, `dead`, `unrouted`), for the sink asked
    /// about or all.
    pub counts: BTreeMap<String, u64>,
    /// Alerts and their deliveries, newest first.
    pub alerts: Vec<AlertStatus>,
}

/// The baseline named in the configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfiguredBaseline {
    /// Its id.
    pub version: String,
    /// Whether the detectors use it (no run has rotated in another).
    pub active: bool,
}

/// `GET /api/v1/streams/{name}/baselines`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Baselines {
    /// The stream.
    pub stream: String,
    /// The configured baseline.
    pub configured: ConfiguredBaseline,
    /// The versions runs rotated in, newest first.
    pub versions: Vec<BaselineVersion>,
}

/// `GET /api/v1/runs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Runs {
    /// The latest runs, newest first.
    pub runs: Vec<RunRecord>,
}

/// The window a run is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowRef {
    /// The stream.
    pub stream: String,
    /// The window's index (none for a manual run).
    pub index: Option<u64>,
}

/// Where a run came from and what it made: decision → window → baseline → outputs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lineage {
    /// The triggering decision's key (a manual run's own key).
    pub decision: String,
    /// The triggering window.
    pub window: WindowRef,
    /// The baseline the window was judged against.
    pub baseline: Option<String>,
    /// The exported window data, when there is one.
    pub window_file: Option<String>,
    /// The exported window records, when the stream keeps records.
    pub records_file: Option<String>,
    /// Every task's outputs with their digests.
    pub outputs: Vec<Artifact>,
}

/// `GET /api/v1/runs/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    pub run: RunRecord,
    /// Its tasks with their attempts.
    pub tasks: Vec<TaskRecord>,
    /// Its lineage.
    pub lineage: Lineage,
}

/// `POST /api/v1/runs`: the run queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunQueued {
    /// What the run was asked to do.
    pub run: RunRequest,
}

/// `POST /api/v1/runs/{id}/cancel`: the cancel was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelling {
    /// The run's id.
    pub run: String,
    /// Always `cancelling`: a queued run stops at once, a running one within a second.
    pub status: String,
}

/// `POST /api/v1/reload` when the new files are in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadApplied {
    /// Always `applied`.
    pub status: String,
    /// Models now in force.
    pub models: usize,
    /// Policies now in force.
    pub policies: usize,
}

/// `POST /api/v1/reload` when the files have problems (the old set stays in force).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadRefused {
    /// Always `refused`.
    pub status: String,
    /// Every problem found, one per line.
    pub error: String,
}
