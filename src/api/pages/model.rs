//! A model: each policy's signals over the recent windows against their thresholds, with the
//! windows it triggered on marked; its triggers and suppressions with their reasons; its runs.

use maud::{html, Markup};

use super::charts::{signal, Point};
use super::layout::{duration_ms, page, pill, time_ms, Assets};
use super::{decision_href, run_href, stream_href, window_href, PageError};
use crate::api::ApiState;
use crate::policy::{Decision, Outcome};
use crate::store::RunRecord;

/// Decisions the charts cover.
const DECISIONS: u64 = 1000;
/// Runs listed.
const RUNS: usize = 20;

pub(super) struct ModelPage {
    name: String,
    stream: Option<String>,
    /// Oldest first.
    decisions: Vec<Decision>,
    runs: Vec<RunRecord>,
}

pub(super) fn load(state: &ApiState, name: &str) -> Result<ModelPage, PageError> {
    let stream = crate::locks::read(&state.catalog)
        .model(name)
        .map(|m| m.stream.clone());
    let store = state.store.get()?;
    let mut decisions = store.latest_decisions(Some(name), DECISIONS)?;
    if stream.is_none() && decisions.is_empty() {
        return Err(PageError::NotFound(format!("no model named `{name}`")));
    }
    decisions.reverse();
    Ok(ModelPage {
        name: name.to_string(),
        stream,
        decisions,
        runs: store.runs(Some(name), RUNS)?,
    })
}

/// One chart: a policy's reading of one subject's metric.
struct Panel {
    policy: String,
    subject: String,
    metric: String,
    points: Vec<Point>,
}

/// The panels, one per policy and signal, in the order first seen.
fn panels(decisions: &[Decision]) -> Vec<Panel> {
    crate::policy::series::series(decisions)
        .into_iter()
        .map(|series| Panel {
            policy: series.policy.to_string(),
            subject: series.subject.to_string(),
            metric: series.metric.to_string(),
            points: series
                .readings
                .iter()
                .map(|(window, reading, triggered)| Point {
                    window: *window,
                    value: reading.value,
                    threshold: reading.threshold,
                    triggered: *triggered,
                    hit: reading.hit,
                })
                .collect(),
        })
        .collect()
}

/// One chart per policy and signal: the values read over the windows against the threshold.
pub(super) fn signals(decisions: &[Decision]) -> Markup {
    let panels = panels(decisions);
    html! {
        @if panels.is_empty() { p.muted { "No decision yet." } } @else {
            p.muted { "Line: the value the policy read in each window; dashed red: its threshold; red dots: hits; pink bars: windows the policy triggered on. p-values on a log axis." }
        }
        div.features { @for panel in &panels {
            div.card.signal data-policy=(panel.policy) {
                h3 { span { (panel.policy) ": " (panel.subject) " " code { (panel.metric) } } }
                (signal(&panel.points, panel.metric.contains("p_value") || panel.metric == "score"))
            }
        } }
    }
}

pub(super) fn draw(model: ModelPage) -> Markup {
    let notable: Vec<&Decision> = model
        .decisions
        .iter()
        .rev()
        .filter(|d| d.outcome != Outcome::NotTriggered)
        .collect();
    let body = html! {
        @if let Some(stream) = &model.stream {
            p { "Judged on stream " a href=(stream_href(stream)) { (stream) } "." }
        }
        h2 { "Signals against thresholds" }
        (signals(&model.decisions))
        h2 { "Triggers and suppressions" }
        @if notable.is_empty() { p.muted { "Every decision so far was not to trigger." } } @else {
            div.scroll { table.stack {
                thead { tr { th { "Window" } th { "Policy" } th { "Outcome" } th { "Why" } } }
                tbody { @for d in &notable { tr {
                    td { a href=(window_href(&d.stream, d.window)) { (d.window) } }
                    td { a href=(decision_href(&d.stream, d.window, &d.policy)) { (d.policy) } }
                    td { (pill(d.outcome.as_str())) }
                    td.wide { (d.reason) }
                } } }
            } }
        }
        h2 { "Runs" }
        (runs(&model.runs))
    };
    page(
        &format!("Model {}", model.name),
        &[("Overview", "/".into())],
        false,
        Assets::Linked,
        body,
    )
}

fn runs(runs: &[RunRecord]) -> Markup {
    html! {
        @if runs.is_empty() { p.muted { "No run yet." } } @else {
            div.scroll { table {
                thead { tr { th { "Run" } th { "Status" } th { "Why" } th { "Created" } th { "Took" } } }
                tbody { @for run in runs { tr {
                    td { a href=(run_href(&run.id)) { (run.id) } }
                    td { (pill(run.status.as_str())) }
                    td { @match run.request.window {
                        Some(window) => { "window " a href=(window_href(&run.request.stream, window)) { (window) } }
                        None => "manual",
                    } }
                    td { (time_ms(run.created_at)) }
                    td { @if let (Some(start), Some(end)) = (run.started_at, run.finished_at) { (duration_ms(start, end)) } }
                } } }
            } }
        }
    }
}
