//! The overview: every stream, every model and every alert sink at a glance.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::layout::{self, num, opt, page, pill, time_ms, Assets};
use super::view::Report;
use super::{model_href, run_href, stream_href, window_href, PageError};
use crate::api::{ApiState, StreamInfo};
use crate::policy::Decision;
use crate::store::RunRecord;

/// Windows the records rate is measured over.
const RATE_WINDOWS: u64 = 10;
/// Runs looked at per model for the one in flight and the last retrain.
const RUNS_LOOKED_AT: usize = 50;

pub(super) struct Overview {
    streams: Vec<StreamRow>,
    models: Vec<ModelRow>,
    sinks: BTreeMap<String, BTreeMap<String, u64>>,
}

struct StreamRow {
    info: StreamInfo,
    records: u64,
    dead_letters: u64,
    latest: Option<Report>,
    rate: Option<f64>,
}

struct ModelRow {
    name: String,
    stream: String,
    last_decision: Option<Decision>,
    in_flight: Option<RunRecord>,
    last_retrain: Option<RunRecord>,
}

pub(super) fn load(state: &ApiState) -> Result<Overview, PageError> {
    let store = state.store.get()?;
    let mut streams = Vec::new();
    for info in state.streams.iter() {
        let reports: Vec<Report> = store
            .latest_window_documents(&info.name, RATE_WINDOWS)?
            .iter()
            .filter_map(|text| Report::from_text(text))
            .collect();
        streams.push(StreamRow {
            records: state.metrics.records_of(&info.name),
            dead_letters: state.metrics.dead_letters_of(&info.name),
            rate: super::view::records_per_second(&reports),
            latest: reports.into_iter().next(),
            info: info.clone(),
        });
    }
    let catalog = crate::locks::read(&state.catalog).clone();
    let mut models = Vec::new();
    for model in &catalog.models {
        let runs = store.runs(Some(&model.name), RUNS_LOOKED_AT)?;
        models.push(ModelRow {
            name: model.name.clone(),
            stream: model.stream.clone(),
            last_decision: store.latest_decisions(Some(&model.name), 1)?.pop(),
            in_flight: runs.iter().find(|r| !r.status.is_finished()).cloned(),
            last_retrain: runs
                .into_iter()
                .find(|r| r.status == crate::store::RunStatus::Succeeded),
        });
    }
    Ok(Overview {
        streams,
        models,
        sinks: store.alert_counts_by_sink()?,
    })
}

pub(super) fn draw(overview: Overview) -> Markup {
    let body = html! {
        h2 { "Streams" }
        div.cards { @for row in &overview.streams { (stream_card(row)) } }
        h2 { "Models" }
        div.scroll { table {
            thead { tr { th { "Model" } th { "Stream" } th { "Last decision" } th { "Run in flight" } th { "Last retrain" } } }
            tbody { @for row in &overview.models { (model_row(row)) } }
        } }
        h2 { "Alerts" }
        (sinks(&overview.sinks))
    };
    page("Overview", &[], true, Assets::Linked, body)
}

fn stream_card(row: &StreamRow) -> Markup {
    let drifted: Vec<&str> = row
        .latest
        .iter()
        .flat_map(|r| r.drifted())
        .map(|f| f.name.as_str())
        .collect();
    html! {
        div.card.(if drifted.is_empty() { "" } else { "drift" }) {
            h3 { a href=(stream_href(&row.info.name)) { (row.info.name) } }
            p.muted { "topic " code { (row.info.topic) } " · windows of " (row.info.window) }
            div.facts {
                div { b { (opt(row.rate)) } span { "records/s (last windows)" } }
                div { b { (row.records) } span { "records since start" } }
                div { b { (row.dead_letters) } span { "dead letters" } }
            }
            @match &row.latest {
                Some(latest) => {
                    p { "Latest window " a href=(window_href(&row.info.name, latest.window.index)) { (latest.window.index) }
                        @if let Some(accuracy) = latest.performance.accuracy { " · accuracy " (num(accuracy)) } }
                    p { "Drifted now: "
                        @if drifted.is_empty() { (pill("none")) }
                        @for name in &drifted { (pill("drift")) " " strong { (name) } " " } }
                }
                None => p.muted { "No window closed yet." }
            }
        }
    }
}

fn model_row(row: &ModelRow) -> Markup {
    html! { tr {
        td { a href=(model_href(&row.name)) { (row.name) } }
        td { a href=(stream_href(&row.stream)) { (row.stream) } }
        td { @match &row.last_decision {
            Some(d) => { (pill(d.outcome.as_str())) " " a href=(super::decision_href(&d.stream, d.window, &d.policy)) { (d.policy) " · window " (d.window) } }
            None => span.muted { "none yet" }
        } }
        td { @match &row.in_flight {
            Some(run) => { a href=(run_href(&run.id)) { (run.id) } " " (pill(run.status.as_str())) }
            None => span.muted { "none" }
        } }
        td { @match &row.last_retrain {
            Some(run) => { a href=(run_href(&run.id)) { (run.id) } " " span.muted { (run.finished_at.map(time_ms).unwrap_or_default()) } }
            None => span.muted { "never" }
        } }
    } }
}

fn sinks(counts: &BTreeMap<String, BTreeMap<String, u64>>) -> Markup {
    html! {
        @if counts.is_empty() {
            p.muted { "No alert sent yet." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Sink" } th.num { "Pending" } th.num { "Delivered" } th.num { "Dead" } th.num { "Unrouted" } } }
                tbody { @for (sink, by_status) in counts {
                    @let count = |status: &str| by_status.get(status).copied().unwrap_or(0);
                    tr {
                        td { a href={ "/alerts" @if !sink.is_empty() { "?sink=" (layout::segment(sink)) } } { @if sink.is_empty() { "(no sink)" } @else { (sink) } } }
                        td.num { (count("pending")) }
                        td.num { (count("delivered")) }
                        td.num { @if count("dead") > 0 { span.pill.bad { (count("dead")) } } @else { "0" } }
                        td.num { (count("unrouted")) }
                    }
                } }
            } }
        }
    }
}
