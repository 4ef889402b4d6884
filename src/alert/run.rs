//! Alerts about runs, baselines and reloads.

use super::{blank, now_rfc3339, Alert, AlertKind, AlertSettings};

/// A run's alert: `run_started`, `run_succeeded` or `run_failed`, with the run's tasks (which
/// ran, which came from the cache, which were skipped, and why).
pub fn run_alert(
    settings: &AlertSettings,
    kind: AlertKind,
    run: &crate::store::RunRecord,
    tasks: &[crate::store::TaskRecord],
) -> Alert {
    use crate::store::TaskStatus;
    let count = |status: TaskStatus| tasks.iter().filter(|t| t.status == status).count();
    let summary = match kind {
        AlertKind::RunStarted => format!(
            "Run {} of DAG {} started for model {}",
            run.id, run.dag, run.model
        ),
        AlertKind::RunSucceeded => format!(
            "Run {} of DAG {} for model {} succeeded: {} task(s) ran, {} from cache, {} skipped",
            run.id,
            run.dag,
            run.model,
            count(TaskStatus::Succeeded),
            count(TaskStatus::Cached),
            count(TaskStatus::Skipped)
        ),
        _ => format!(
            "Run {} of DAG {} for model {} failed: {}",
            run.id,
            run.dag,
            run.model,
            run.error.as_deref().unwrap_or("a task failed")
        ),
    };
    let mut alert = blank(kind, format!("{}:{}", kind.as_str(), run.id), summary);
    alert.stream = Some(run.request.stream.clone());
    alert.model = Some(run.model.clone());
    alert.run = Some(serde_json::json!({
        "id": run.id,
        "key": run.key,
        "dag": run.dag,
        "status": run.status,
        "error": run.error,
        "window": run.request.window,
        "drifted_features": run.request.drifted_features,
        "tasks": tasks.iter().map(|t| serde_json::json!({
            "task": t.task, "status": t.status, "reason": t.reason,
        })).collect::<Vec<_>>(),
    }));
    alert.link = Some(format!(
        "{}{}",
        settings.link_base,
        crate::api::pages::run_href(&run.id)
    ));
    alert
}

/// A stream's baseline replaced by a run's output.
pub fn baseline_rotated(
    settings: &AlertSettings,
    stream: &str,
    model: &str,
    run_id: &str,
    from: &str,
    to: &str,
) -> Alert {
    let mut alert = blank(
        AlertKind::BaselineRotated,
        format!("baseline_rotated:{stream}:{to}"),
        format!(
            "Baseline of {stream} rotated from {from} to {to} by run {run_id} of model {model}"
        ),
    );
    alert.stream = Some(stream.to_string());
    alert.model = Some(model.to_string());
    alert.run = Some(serde_json::json!({"id": run_id, "baseline": {"from": from, "to": to}}));
    alert.link = Some(format!(
        "{}{}#baselines",
        settings.link_base,
        crate::api::pages::stream_href(stream)
    ));
    alert
}

/// A partition whose checkpoint (`from`) the broker no longer has, resumed at `to`.
pub fn offsets_reset(stream: &str, partition: &str, from: i64, to: i64) -> Alert {
    let at = now_rfc3339();
    let mut alert = blank(
        AlertKind::OffsetsReset,
        format!("offsets_reset:{stream}:{partition}:{at}"),
        format!(
            "Partition {partition} of stream {stream} has no offset {from}, where its checkpoint \
             resumes: the topic was re-created or the broker lost data; resuming at offset {to}"
        ),
    );
    alert.stream = Some(stream.to_string());
    alert.error = Some(format!(
        "checkpoint at {from} is out of the partition's range; resumed at {to}"
    ));
    alert
}

/// A refused reload. Its id names the moment, so every refusal is one alert.
pub fn reload_failed(error: &str) -> Alert {
    let at = now_rfc3339();
    let mut alert = blank(
        AlertKind::ConfigReloadFailed,
        format!("config_reload_failed:{at}"),
        format!("A configuration reload was refused; the previous models and policies stay in force: {error}"),
    );
    alert.error = Some(error.to_string());
    alert
}
