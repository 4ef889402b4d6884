//! The HTTP API: health, readiness, Prometheus metrics and the window reports.
//!
//! It runs on its own small tokio runtime thread, so a slow client never touches the consumer
//! loop. Window reports are read from the store through a read-only SQLite connection (the
//! store's WAL journal lets readers and the writer work at once).
//!
//! This file holds the state, the routes and the stream, window, decision, alert, baseline and
//! reload handlers; `runs` the run endpoints and `logs` task attempt logs; `params` checks query
//! parameters and shapes every error as JSON; `times` writes every answer's times as RFC 3339;
//! `/metrics` is rendered by [`crate::telemetry`]; `answers` types every JSON answer and `openapi`
//! generates `/api/v1/openapi.json` from them and the handlers' `#[utoipa::path]` attributes.

pub mod answers;
mod logs;
mod openapi;
pub mod pages;
mod params;
mod runs;
mod server;
mod times;

pub use server::Limits;

use crate::telemetry::Metrics;
use params::{json_error, Params};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::config::reload::{ReloadRequest, SharedCatalog};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::{router::OpenApiRouter, routes};

use answers::ErrorBody;

/// What the API shows about a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// Name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// Window rule, e.g. "2000 records" or "5m".
    pub window: String,
    /// Baseline id.
    pub baseline_id: String,
    /// Monitored features.
    pub features: Vec<String>,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    /// Service metrics.
    pub metrics: Arc<Metrics>,
    /// Ready once partitions are assigned (baselines are loaded before the service starts);
    /// until then, why not.
    pub readiness: Arc<crate::source::readiness::Readiness>,
    /// The store's connections for requests (reads; the rare writes open their own).
    pub store: crate::store::Pool,
    /// Where runs keep their task directories (task logs are served only from inside it).
    pub runs_dir: PathBuf,
    /// The configured streams.
    pub streams: Arc<Vec<StreamInfo>>,
    /// The models and DAGs, replaced on reload.
    pub catalog: SharedCatalog,
    /// Where reload requests go (the consumer loop performs them).
    pub reload: Sender<ReloadRequest>,
    /// The bearer token `POST /api/v1/runs` requires (none: manual runs are refused).
    pub run_token: Option<String>,
    /// Each stream's baseline id, for manual runs' lineage.
    pub baselines: Arc<std::collections::BTreeMap<String, String>>,
    /// Wakes the executor when a manual run is queued.
    pub wake: Arc<crate::wake::Wake>,
}

/// The documented routes, registered with their OpenAPI entries.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(streams))
        .routes(routes!(windows))
        .routes(routes!(baselines))
        .routes(routes!(decisions))
        .routes(routes!(alerts))
        .routes(routes!(runs::runs, runs::create_run))
        .routes(routes!(runs::run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::attempt_log))
        .routes(routes!(reload))
}

/// The OpenAPI document the service serves at `/api/v1/openapi.json`.
pub fn document() -> serde_json::Value {
    openapi::finish(routes().into_openapi())
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    let (router, document) = routes().split_for_parts();
    let document = Arc::new(openapi::finish(document));
    router
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(document.as_ref().clone()) }),
        )
        .merge(pages::routes())
        .fallback(params::not_found)
        .method_not_allowed_fallback(params::method_not_allowed)
        .with_state(state)
}

/// `ok`: the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "The process is alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// `200 {"ready": true, "checks": {…}}`, or `503 {"ready": false, "reason": "…", "checks": {…}}`
/// saying why not: the consumer group, the brokers (a metadata probe) and the store.
#[utoipa::path(get, path = "/readyz", tag = "service", responses(
    (status = 200, description = "The instance takes part in its consumer group", body = crate::source::readiness::ReadyStatus),
    (status = 503, description = "Not ready, and why", body = crate::source::readiness::ReadyStatus)))]
async fn readyz(State(state): State<ApiState>) -> Response {
    let path = state.store.clone();
    let store = tokio::task::spawn_blocking(move || path.reachable())
        .await
        .map_err(|e| e.to_string())
        .and_then(|checked| checked.map_err(|e| e.to_string()));
    let status = state.readiness.status(store);
    let code = if status.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(status)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "service", responses(
    (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
async fn metrics_text(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The streams, with the baseline in use (after a rotation) and what they have seen.
#[utoipa::path(get, path = "/api/v1/streams", tag = "streams", responses(
    (status = 200, body = answers::Streams),
    (status = 500, description = "The store could not be read", body = ErrorBody)))]
async fn streams(State(state): State<ApiState>) -> Response {
    let path = state.store.clone();
    let names: Vec<String> = state.streams.iter().map(|s| s.name.clone()).collect();
    let active = blocking(move || {
        let store = path.get()?;
        names
            .iter()
            .map(|name| store.active_baseline(name))
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    let active = match active {
        Ok(active) => active,
        Err(response) => return response,
    };
    let streams = state
        .streams
        .iter()
        .zip(active)
        .map(|(info, active)| answers::StreamView {
            name: info.name.clone(),
            topic: info.topic.clone(),
            window: info.window.clone(),
            baseline_id: active
                .as_ref()
                .map_or_else(|| info.baseline_id.clone(), |a| a.version.clone()),
            configured_baseline_id: info.baseline_id.clone(),
            baseline_run_id: active.and_then(|a| a.run_id),
            features: info.features.clone(),
            records: state.metrics.records_of(&info.name),
            windows: state.metrics.windows_of(&info.name),
        })
        .collect();
    answer(&answers::Streams { streams })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WindowsQuery {
    /// Reports to return, 1 to 1000 (default 20).
    limit: Option<u64>,
}

/// Reports returned when no `limit` is given.
const DEFAULT_WINDOW_LIMIT: u64 = 20;
/// The most reports one request may ask for.
const MAX_WINDOW_LIMIT: u64 = 1000;

/// A stream's latest window reports, newest first.
#[utoipa::path(get, path = "/api/v1/streams/{name}/windows", tag = "streams",
    params(("name" = String, Path, description = "The stream"), WindowsQuery),
    responses(
        (status = 200, body = answers::Windows),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 500, description = "The store could not be read", body = ErrorBody)))]
async fn windows(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Params(query): Params<WindowsQuery>,
) -> Response {
    if let Err(response) = stream(&state, &name) {
        return response;
    }
    let limit = match params::limit(query.limit, DEFAULT_WINDOW_LIMIT, MAX_WINDOW_LIMIT) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let path = state.store.clone();
    match blocking(move || path.get()?.latest_windows(&name, limit)).await {
        Ok(windows) => {
            let windows = windows.into_iter().map(|w| w.report).collect();
            Json(answers::Windows { windows }).into_response()
        }
        Err(response) => response,
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DecisionsQuery {
    /// Only this model's decisions.
    model: Option<String>,
    /// Only this policy's decisions.
    policy: Option<String>,
    /// Only this outcome: `triggered`, `not_triggered`, `suppressed_cooldown`,
    /// `suppressed_budget` or `suppressed_in_flight`.
    outcome: Option<String>,
    /// Decisions at or after this time: RFC 3339 or epoch milliseconds.
    from: Option<String>,
    /// Decisions at or before this time: RFC 3339 or epoch milliseconds.
    to: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Decisions per page, 1 to 1000 (default 100).
    limit: Option<u64>,
}

/// Decisions returned when no `limit` is given.
const DEFAULT_DECISION_LIMIT: u64 = 100;

/// Policy decisions, newest first: `?model=`, `?policy=`, `?outcome=`, `?from=`/`?to=` (RFC 3339
/// or epoch ms, on the decision time), a page of `?limit=` with `next_cursor` for the next.
#[utoipa::path(get, path = "/api/v1/decisions", tag = "decisions", params(DecisionsQuery),
    responses(
        (status = 200, body = answers::Decisions),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 500, description = "The store could not be read", body = ErrorBody)))]
async fn decisions(
    State(state): State<ApiState>,
    Params(query): Params<DecisionsQuery>,
) -> Response {
    let filter = match decision_filter(&state, query) {
        Ok(filter) => filter,
        Err(response) => return response,
    };
    let path = state.store.clone();
    match blocking(move || path.get()?.decisions(&filter)).await {
        Ok(page) => {
            let decisions = page
                .decisions
                .into_iter()
                .map(|decision| answers::DecisionView {
                    at: crate::pipeline::rfc3339(decision.at_ms),
                    decision,
                })
                .collect();
            let next_cursor = page.next_cursor.map(|c| c.to_string());
            answer(&answers::Decisions {
                decisions,
                next_cursor,
            })
        }
        Err(response) => response,
    }
}

/// The store's filter for a decisions query, or the `400`/`404` that explains what is wrong.
#[allow(clippy::result_large_err)] // the error is the response itself
fn decision_filter(
    state: &ApiState,
    query: DecisionsQuery,
) -> Result<crate::store::DecisionFilter, Response> {
    if let Some(model) = &query.model {
        if crate::locks::read(&state.catalog).model(model).is_none() {
            return Err(json_error(
                StatusCode::NOT_FOUND,
                format!("no model named `{model}`"),
            ));
        }
    }
    if let Some(outcome) = &query.outcome {
        let known = crate::policy::Outcome::ALL.map(|o| o.as_str());
        if !known.contains(&outcome.as_str()) {
            return Err(params::bad_request(format!(
                "query parameter `outcome`: `{outcome}` is not an outcome; use {}",
                known.join(", ")
            )));
        }
    }
    let cursor = match &query.cursor {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            params::bad_request(format!(
                "query parameter `cursor`: `{text}` is not a cursor from `next_cursor`"
            ))
        })?),
        None => None,
    };
    Ok(crate::store::DecisionFilter {
        from_ms: params::time("from", query.from.as_deref())?,
        to_ms: params::time("to", query.to.as_deref())?,
        limit: params::limit(query.limit, DEFAULT_DECISION_LIMIT, MAX_WINDOW_LIMIT)?,
        model: query.model,
        policy: query.policy,
        outcome: query.outcome,
        cursor,
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertsQuery {
    /// Only deliveries in this state: `pending`, `delivered`, `dead` or `unrouted`.
    status: Option<String>,
    /// Only deliveries to this sink.
    sink: Option<String>,
    /// Alerts to return, 1 to 1000 (default 100).
    limit: Option<u64>,
}

/// Alerts and their deliveries, newest first: `?status=pending|delivered|dead|unrouted`,
/// `?sink=NAME`, `?limit=N` (default 100). Also counts per status.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses(
        (status = 200, body = answers::Alerts),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
        (status = 500, description = "The store could not be read", body = ErrorBody)))]
async fn alerts(State(state): State<ApiState>, Params(query): Params<AlertsQuery>) -> Response {
    if let Some(status) = &query.status {
        if !["pending", "delivered", "dead", "unrouted"].contains(&status.as_str()) {
            return params::bad_request(format!(
                "query parameter `status`: no status `{status}`: use pending, delivered, dead or unrouted"
            ));
        }
    }
    let limit = match params::limit(query.limit, DEFAULT_DECISION_LIMIT, MAX_WINDOW_LIMIT) {
        Ok(limit) => limit as usize,
        Err(response) => return response,
    };
    let path = state.store.clone();
    let listed = blocking(move || {
        let store = path.get()?;
        let alerts = store.alert_statuses(query.status.as_deref(), query.sink.as_deref(), limit)?;
        Ok((alerts, store.alert_counts(query.sink.as_deref())?))
    })
    .await;
    match listed {
        Ok((alerts, counts)) => answer(&answers::Alerts { counts, alerts }),
        Err(response) => response,
    }
}

/// A stream's baselines: the configured one and every version runs rotated in, newest first,
/// with the one in use marked.
#[utoipa::path(get, path = "/api/v1/streams/{name}/baselines", tag = "streams",
    params(("name" = String, Path, description = "The stream")),
    responses(
        (status = 200, body = answers::Baselines),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 500, description = "The store could not be read", body = ErrorBody)))]
async fn baselines(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let configured = match stream(&state, &name) {
        Ok(info) => info.baseline_id.clone(),
        Err(response) => return response,
    };
    let path = state.store.clone();
    let stream = name.clone();
    match blocking(move || path.get()?.baselines(&stream)).await {
        Ok(versions) => {
            let rotated = versions.iter().any(|v| v.active);
            answer(&answers::Baselines {
                stream: name,
                configured: answers::ConfiguredBaseline {
                    version: configured,
                    active: !rotated,
                },
                versions,
            })
        }
        Err(response) => response,
    }
}

/// The configured stream named `name`, or the `404` that says there is none.
#[allow(clippy::result_large_err)] // the error is the response itself
fn stream<'a>(state: &'a ApiState, name: &str) -> Result<&'a StreamInfo, Response> {
    state
        .streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| json_error(StatusCode::NOT_FOUND, format!("no stream named `{name}`")))
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            err.to_string(),
        )),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

/// A `200` JSON answer, its times in RFC 3339 with `*_ms` twins.
pub(super) fn answer<T: Serialize>(value: &T) -> Response {
    answer_with(StatusCode::OK, value)
}

/// A JSON answer with `status`, its times in RFC 3339 with `*_ms` twins.
pub(super) fn answer_with<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(mut value) => {
            times::rfc3339_times(&mut value);
            (status, Json(value)).into_response()
        }
        Err(err) => json_error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

/// How long a reload request waits for the consumer loop.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Reloads models and policies (bearer token, as for runs): 200 with what is now in force, or
/// 422 with every problem (the old set stays in force).
#[utoipa::path(post, path = "/api/v1/reload", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "The new files are in force", body = answers::ReloadApplied),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Reloading through the API is off", body = ErrorBody),
        (status = 422, description = "The files have problems; the old set stays", body = answers::ReloadRefused),
        (status = 503, description = "The service is stopping or did not answer", body = ErrorBody)))]
async fn reload(State(state): State<ApiState>, headers: axum::http::HeaderMap) -> Response {
    if let Err(response) = runs::authorized(&state, &headers) {
        return response;
    }
    let (reply_to, reply) = std::sync::mpsc::sync_channel(1);
    if state.reload.send(reply_to).is_err() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    let result = tokio::task::spawn_blocking(move || reply.recv_timeout(RELOAD_TIMEOUT)).await;
    match result {
        Ok(Ok(Ok(summary))) => answer(&answers::ReloadApplied {
            status: "applied".into(),
            models: summary.models,
            policies: summary.policies,
        }),
        Ok(Ok(Err(error))) => answer_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &answers::ReloadRefused {
                status: "refused".into(),
                error,
            },
        ),
        _ => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service did not answer the reload in time",
        ),
    }
}

/// Binds `listen` and serves the API within `limits` on a background thread until `stop` is
/// set. Returns the bound address (useful with port 0).
pub fn spawn(
    listen: SocketAddr,
    limits: Limits,
    state: ApiState,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    server::ensure_open_files(limits.max_connections);
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::error!(error = %err, "api listener unusable");
                        return;
                    }
                };
                let stopped = async move {
                    while !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                server::serve(listener, router(state), &limits, stopped).await;
            });
        })?;
    Ok((address, handle))
}
