//! The dashboard: read-only HTML pages on the API's listener, rendered on the server with
//! [maud] templates and inline SVG charts, styled by one embedded stylesheet. Tables and charts
//! need no script; the overview and stream pages refresh their content in place with a small
//! embedded script.
//!
//! Pages: the overview (`/`), a stream (`/streams/{name}`), a window
//! (`/streams/{name}/windows/{index}`), a model (`/models/{name}`), a run (`/runs/{id}`) and the
//! alerts (`/alerts`). Each reads the store through the API's pool, like the JSON endpoints.
//! `report` renders the window view as one self-contained file for `drift` and `replay`.

mod alerts;
mod charts;
mod heatmap;
mod layout;
mod model;
mod overview;
pub mod report;
mod run;
mod stream;
pub mod view;
mod window;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::ApiState;
use layout::{page, Assets};

/// The pages' routes, to merge into the API's router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/streams/{name}", get(stream_page))
        .route("/streams/{name}/windows/{index}", get(window_page))
        .route("/models/{name}", get(model_page))
        .route("/runs/{id}", get(run_page))
        .route("/alerts", get(alerts_page))
        .route(
            "/assets/dashboard.css",
            get(|| asset("text/css", layout::STYLE)),
        )
        .route(
            "/assets/live.js",
            get(|| asset("text/javascript", layout::LIVE)),
        )
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Why a page could not be shown.
enum PageError {
    /// The thing asked for does not exist.
    NotFound(String),
    /// The store could not be read.
    Store(String),
}

impl From<crate::store::StoreError> for PageError {
    fn from(err: crate::store::StoreError) -> Self {
        PageError::Store(err.to_string())
    }
}

/// Runs `load` on the blocking pool and renders its result, or an error page.
async fn render<T: Send + 'static>(
    load: impl FnOnce() -> Result<T, PageError> + Send + 'static,
    draw: impl FnOnce(T) -> Markup,
) -> Response {
    match tokio::task::spawn_blocking(load).await {
        Ok(Ok(value)) => Html(draw(value).into_string()).into_response(),
        Ok(Err(PageError::NotFound(what))) => error_page(StatusCode::NOT_FOUND, &what),
        Ok(Err(PageError::Store(why))) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the store could not be read: {why}"),
        ),
        Err(_) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "the page failed"),
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! { p { (message) } p { a href="/" { "Back to the overview" } } };
    (
        status,
        Html(page(title, &[], false, Assets::Linked, body).into_string()),
    )
        .into_response()
}

async fn overview_page(State(state): State<ApiState>) -> Response {
    let load_state = state.clone();
    render(move || overview::load(&load_state), overview::draw).await
}

/// `?windows=N` on the stream page.
#[derive(Deserialize)]
struct StreamQuery {
    windows: Option<u64>,
}

async fn stream_page(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Response {
    let windows = query
        .windows
        .unwrap_or(stream::DEFAULT_WINDOWS)
        .clamp(1, stream::MAX_WINDOWS);
    render(move || stream::load(&state, &name, windows), stream::draw).await
}

async fn window_page(
    State(state): State<ApiState>,
    Path((name, index)): Path<(String, u64)>,
) -> Response {
    render(move || window::load(&state, &name, index), window::draw).await
}

async fn model_page(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    render(move || model::load(&state, &name), model::draw).await
}

async fn run_page(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    render(move || run::load(&state, &id), run::draw).await
}

/// `?sink=` and `?status=` on the alerts page.
#[derive(Deserialize)]
struct AlertsQuery {
    sink: Option<String>,
    status: Option<String>,
}

async fn alerts_page(State(state): State<ApiState>, Query(query): Query<AlertsQuery>) -> Response {
    render(
        move || alerts::load(&state, query.sink, query.status),
        alerts::draw,
    )
    .await
}

/// The dashboard's path of a stream.
pub fn stream_href(stream: &str) -> String {
    format!("/streams/{}", layout::segment(stream))
}

/// The dashboard's path of a window.
pub fn window_href(stream: &str, index: u64) -> String {
    format!("/streams/{}/windows/{index}", layout::segment(stream))
}

/// The dashboard's path of a decision: its place on its window's page.
pub fn decision_href(stream: &str, index: u64, policy: &str) -> String {
    format!(
        "{}#decision-{}",
        window_href(stream, index),
        layout::segment(policy)
    )
}

/// The dashboard's path of a model.
pub fn model_href(model: &str) -> String {
    format!("/models/{}", layout::segment(model))
}

/// The dashboard's path of a run.
pub fn run_href(id: &str) -> String {
    format!("/runs/{}", layout::segment(id))
}
