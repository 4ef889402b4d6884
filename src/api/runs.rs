//! The runs endpoints: list, one run with its tasks and lineage, a task attempt's log, cancel,
//! and trigger by hand. Changing runs takes the bearer token named by `runs.token_env`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::answers::{self, ErrorBody};
use super::params::{self, json_error, Params};
use super::{answer, answer_with, blocking, logs, ApiState};
use super::{DEFAULT_DECISION_LIMIT, MAX_WINDOW_LIMIT};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    /// Only this model's runs.
    model: Option<String>,
    /// Runs to return, 1 to 1000 (default 100).
    limit: Option<u64>,
}

/// The latest runs, newest first, of one model or all.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery), responses(
    (status = 200, body = answers::Runs),
    (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    (status = 500, description = "The store could not be read", body = ErrorBody)))]
pub(super) async fn runs(
    State(state): State<ApiState>,
    Params(query): Params<RunsQuery>,
) -> Response {
    let limit = match params::limit(query.limit, DEFAULT_DECISION_LIMIT, MAX_WINDOW_LIMIT) {
        Ok(limit) => limit as usize,
        Err(response) => return response,
    };
    let path = state.store.clone();
    match blocking(move || path.get()?.runs(query.model.as_deref(), limit)).await {
        Ok(runs) => answer(&answers::Runs { runs }),
        Err(response) => response,
    }
}

/// One run: its tasks with attempts, exit codes, durations and artifacts, and its lineage
/// (decision → window → baseline → outputs).
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, body = answers::RunDetail),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 500, description = "The store could not be read", body = ErrorBody)))]
pub(super) async fn run(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let path = state.store.clone();
    let found = blocking(move || {
        let store = path.get()?;
        let Some(run) = store.run(&id)? else {
            return Ok(None);
        };
        let tasks = store.run_tasks(&id)?;
        Ok(Some((run, tasks)))
    })
    .await;
    match found {
        Ok(Some((run, tasks))) => {
            let lineage = answers::Lineage {
                decision: run.key.clone(),
                window: answers::WindowRef {
                    stream: run.request.stream.clone(),
                    index: run.request.window,
                },
                baseline: run.request.baseline.clone(),
                window_file: run.request.window_file.clone(),
                records_file: run.request.records_file.clone(),
                outputs: tasks.iter().flat_map(|t| t.outputs.clone()).collect(),
            };
            answer(&answers::RunDetail {
                run,
                tasks,
                lineage,
            })
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such run"),
        Err(response) => response,
    }
}

/// A task attempt's log as text: the last 200 lines, `?lines=N`, or `?full=true`.
#[utoipa::path(get, path = "/api/v1/runs/{id}/tasks/{task}/attempts/{attempt}/log", tag = "runs",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("task" = String, Path, description = "The task's name"),
        ("attempt" = u32, Path, description = "The attempt, from 1"),
        logs::LogQuery),
    responses(
        (status = 200, description = "The log's end", body = String, content_type = "text/plain"),
        (status = 400, description = "A bad or unknown parameter", body = ErrorBody),
        (status = 403, description = "The recorded file is outside the runs directory", body = ErrorBody),
        (status = 404, description = "No such run, task or attempt, or its log is gone", body = ErrorBody),
        (status = 500, description = "The store or the log could not be read", body = ErrorBody)))]
pub(super) async fn attempt_log(
    State(state): State<ApiState>,
    Path((id, task, attempt)): Path<(String, String, String)>,
    Params(query): Params<logs::LogQuery>,
) -> Response {
    let Ok(attempt) = attempt.parse::<u32>() else {
        return params::bad_request(format!("attempt `{attempt}` is not a number"));
    };
    let (store_url, runs_dir) = (state.store.clone(), state.runs_dir.clone());
    let read = tokio::task::spawn_blocking(move || {
        let store = store_url
            .get()
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
    // Compared in constant time, also in length: digests of equal size, every byte looked at.
    let matches = offered.is_some_and(|o| {
        use sha2::{Digest, Sha256};
        let (a, b) = (
            Sha256::digest(o.as_bytes()),
            Sha256::digest(token.as_bytes()),
        );
        a.iter().zip(b.iter()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
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
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "The run is being cancelled", body = answers::Cancelling),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Changing runs through the API is off", body = ErrorBody),
        (status = 409, description = "The run is not queued or running", body = ErrorBody),
        (status = 500, description = "The store could not be written", body = ErrorBody)))]
pub(super) async fn cancel_run(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = authorized(&state, &headers) {
        return response;
    }
    let path = state.store.clone();
    let asked = {
        let id = id.clone();
        blocking(move || crate::store::Store::open(path.url())?.request_cancel(&id)).await
    };
    match asked {
        Ok(true) => answer_with(
            StatusCode::ACCEPTED,
            &answers::Cancelling {
                run: id,
                status: "cancelling".into(),
            },
        ),
        Ok(false) => json_error(
            StatusCode::CONFLICT,
            format!("run {id} is not queued or running"),
        ),
        Err(response) => response,
    }
}

/// The body of `POST /api/v1/runs`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct CreateRun {
    /// The model to retrain.
    model: String,
    /// The features to treat as drifted (default: all the model's features).
    #[serde(default)]
    drifted_features: Option<Vec<String>>,
    /// An idempotency key: a second request with the same key queues nothing (`409`). 1 to
    /// 200 characters, none of them control characters.
    #[serde(default)]
    key: Option<String>,
}

/// Triggers a run by hand: `Authorization: Bearer TOKEN` and `{"model": M}` (optionally
/// `"drifted_features"`, default all the model's features, and an idempotency `"key"`). `202`
/// with the run, `409` when the key already has one, `401` without the token.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs", security(("bearer" = [])),
    request_body = CreateRun,
    responses(
        (status = 202, description = "The run is queued", body = answers::RunQueued),
        (status = 400, description = "The body is not a valid request", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Changing runs through the API is off", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The key already has a run", body = ErrorBody),
        (status = 422, description = "The model has no DAG, or a feature is not the model's", body = ErrorBody),
        (status = 500, description = "The store could not be written", body = ErrorBody)))]
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
    let model = crate::locks::read(&state.catalog)
        .model(&request.model)
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
    if let Some(problem) = request.key.as_deref().and_then(key_problem) {
        return json_error(StatusCode::BAD_REQUEST, problem);
    }
    let key = request
        .key
        .unwrap_or_else(|| format!("manual/{}/{}", model.name, crate::store::now_ms()));
    // The baseline in use: the last one a run rotated in, else the configured one.
    let path = state.store.clone();
    let stream = model.stream.clone();
    let rotated =
        blocking(move || Ok(path.get()?.active_baseline(&stream)?.map(|v| v.version))).await;
    let baseline = match rotated {
        Ok(Some(version)) => Some(version),
        Ok(None) => state.baselines.get(&model.stream).cloned(),
        Err(response) => return response,
    };
    let run = crate::dag::request::manual(key, &model.name, &dag, &model.stream, drifted, baseline);
    let path = state.store.clone();
    let queued = {
        let run = run.clone();
        blocking(move || crate::store::Store::open(path.url())?.queue_run(&run)).await
    };
    match queued {
        Ok(true) => {
            state.wake.notify();
            answer_with(StatusCode::ACCEPTED, &answers::RunQueued { run })
        }
        Ok(false) => json_error(
            StatusCode::CONFLICT,
            format!("a run for key `{}` exists: {}", run.key, run.id),
        ),
        Err(response) => response,
    }
}

/// The longest idempotency key a manual run may have, in characters.
const MAX_KEY_CHARS: usize = 200;

/// What is wrong with a manual run's idempotency key, if anything.
fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("`key` is empty".into())
    } else if key.chars().count() > MAX_KEY_CHARS {
        Some(format!("`key` is longer than {MAX_KEY_CHARS} characters"))
    } else if key.chars().any(char::is_control) {
        Some("`key` holds control characters".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::key_problem;

    #[test]
    fn issue_21_manual_run_keys_are_bounded() {
        assert_eq!(key_problem("nightly/2026-11-30"), None);
        assert_eq!(key_problem(&"k".repeat(200)), None);
        for bad in [String::new(), "k".repeat(201), "a\nb".to_string()] {
            assert!(key_problem(&bad).is_some(), "{bad:?}");
        }
    }
}
