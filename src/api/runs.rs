//! The runs endpoints: list, one run with its tasks and lineage, a task attempt's log, cancel,
//! and trigger by hand. Changing runs takes the bearer token named by `runs.token_env`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::params::{self, json_error, Params};
use super::{answer, blocking, logs, ApiState, DEFAULT_DECISION_LIMIT, MAX_WINDOW_LIMIT};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
    model: Option<String>,
    limit: Option<u64>,
}

/// The latest runs, newest first, of one model or all.
pub(super) async fn runs(
    State(state): State<ApiState>,
    Params(query): Params<RunsQuery>,
) -> Response {
    let limit = match params::limit(query.limit, DEFAULT_DECISION_LIMIT, MAX_WINDOW_LIMIT) {
        Ok(limit) => limit as usize,
        Err(response) => return response,
    };
    let path = state.store_path.clone();
    match blocking(move || {
        crate::store::Store::open_read_only(&path)?.runs(query.model.as_deref(), limit)
    })
    .await
    {
        Ok(runs) => answer(serde_json::json!({ "runs": runs })),
        Err(response) => response,
    }
}

/// One run: its tasks with attempts, exit codes, durations and artifacts, and its lineage
/// (decision → window → baseline → outputs).
pub(super) async fn run(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let path = state.store_path.clone();
    let found = blocking(move || {
        let store = crate::store::Store::open_read_only(&path)?;
        let Some(run) = store.run(&id)? else {
            return Ok(None);
        };
        let tasks = store.run_tasks(&id)?;
        Ok(Some((run, tasks)))
    })
    .await;
    match found {
        Ok(Some((run, tasks))) => {
            let outputs: Vec<&crate::store::Artifact> =
                tasks.iter().flat_map(|t| t.outputs.iter()).collect();
            let lineage = serde_json::json!({
                "decision": run.key,
                "window": {"stream": run.request.stream, "index": run.request.window},
                "baseline": run.request.baseline,
                "window_file": run.request.window_file,
                "records_file": run.request.records_file,
                "outputs": outputs,
            });
            answer(serde_json::json!({ "run": run, "tasks": tasks, "lineage": lineage }))
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such run"),
        Err(response) => response,
    }
}

/// A task attempt's log as text: the last 200 lines, `?lines=N`, or `?full=true`.
pub(super) async fn attempt_log(
    State(state): State<ApiState>,
    Path((id, task, attempt)): Path<(String, String, String)>,
    Params(query): Params<logs::LogQuery>,
) -> Response {
    let Ok(attempt) = attempt.parse::<u32>() else {
        return params::bad_request(format!("attempt `{attempt}` is not a number"));
    };
    let (store_path, runs_dir) = (state.store_path.clone(), state.runs_dir.clone());
    let read = tokio::task::spawn_blocking(move || {
        let store = crate::store::Store::open_read_only(&store_path)
            .map_err(|e| logs::LogError::Failed(e.to_string()))?;
        logs::attempt_log(&store, &runs_dir, &id, &task, attempt, &query)
    })
    .await;
    match read {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(Err(logs::LogError::NotFound(message))) => json_error(StatusCode::NOT_FOUND, message),
        Ok(Err(logs::LogError::Outside(message))) => json_error(StatusCode::FORBIDDEN, message),
        Ok(Err(logs::LogError::Failed(message))) => {
            json_error(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the log reader failed"),
    }
}

/// Checks the bearer token of a request that changes runs.
#[allow(clippy::result_large_err)]
pub(super) fn authorized(
    state: &ApiState,
    headers: &axum::http::HeaderMap,
) -> Result<(), Response> {
    let Some(token) = &state.run_token else {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "changing runs or reloading through the API is off: set runs.token_env",
        ));
    };
    let offered = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time.
    let matches = offered.is_some_and(|o| {
        o.len() == token.len()
            && o.bytes()
                .zip(token.bytes())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0
    });
    if matches {
        Ok(())
    } else {
        Err(json_error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required",
        ))
    }
}

/// Cancels a run (bearer token): a queued one at once, a running one within a fraction of a
/// second (its tasks' process groups are killed). `202`, or `409` when it already finished.
pub(super) async fn cancel_run(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = authorized(&state, &headers) {
        return response;
    }
    let path = state.store_path.clone();
    let asked = {
        let id = id.clone();
        blocking(move || crate::store::Store::open(&path)?.request_cancel(&id)).await
    };
    match asked {
        Ok(true) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "run": id, "status": "cancelling" })),
        )
            .into_response(),
        Ok(false) => json_error(
            StatusCode::CONFLICT,
            format!("run {id} is not queued or running"),
        ),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct CreateRun {
    model: String,
    #[serde(default)]
    drifted_features: Option<Vec<String>>,
    #[serde(default)]
    key: Option<String>,
}

/// Triggers a run by hand: `Authorization: Bearer TOKEN` and `{"model": M}` (optionally
/// `"drifted_features"`, default all the model's features, and an idempotency `"key"`). `202`
/// with the run, `409` when the key already has one, `401` without the token.
pub(super) async fn create_run(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(response) = authorized(&state, &headers) {
        return response;
    }
    let request: CreateRun = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return json_error(StatusCode::BAD_REQUEST, format!("invalid body: {err}")),
    };
    let model = state
        .models
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|m| m.name == request.model)
        .cloned();
    let Some(model) = model else {
        return json_error(
            StatusCode::NOT_FOUND,
            format!("no model named `{}`", request.model),
        );
    };
    let Some(dag) = model.dag.clone() else {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("model `{}` has no DAG", model.name),
        );
    };
    let drifted = request
        .drifted_features
        .unwrap_or_else(|| model.features.clone());
    if let Some(unknown) = drifted.iter().find(|f| !model.features.contains(f)) {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{unknown}` is not a feature of model `{}`", model.name),
        );
    }
    let key = request
        .key
        .unwrap_or_else(|| format!("manual/{}/{}", model.name, crate::store::now_ms()));
    // The baseline in use: the last one a run rotated in, else the configured one.
    let path = state.store_path.clone();
    let stream = model.stream.clone();
    let rotated = blocking(move || {
        Ok(crate::store::Store::open_read_only(&path)?
            .active_baseline(&stream)?
            .map(|v| v.version))
    })
    .await;
    let baseline = match rotated {
        Ok(Some(version)) => Some(version),
        Ok(None) => state.baselines.get(&model.stream).cloned(),
        Err(response) => return response,
    };
    let run = crate::store::RunRequest {
        id: crate::dag::executor::run_id(&key),
        key,
        model: model.name.clone(),
        dag,
        stream: model.stream.clone(),
        window: None,
        baseline,
        drifted_features: drifted,
        decision: serde_json::Value::Null,
        window_file: None,
        records_file: None,
    };
    let path = state.store_path.clone();
    let queued = {
        let run = run.clone();
        blocking(move || crate::store::Store::open(&path)?.queue_run(&run)).await
    };
    match queued {
        Ok(true) => {
            state.wake.notify();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "run": run })),
            )
                .into_response()
        }
        Ok(false) => json_error(
            StatusCode::CONFLICT,
            format!("a run for key `{}` exists: {}", run.key, run.id),
        ),
        Err(response) => response,
    }
}
