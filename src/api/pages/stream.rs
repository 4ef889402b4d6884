//! A stream: the features × recent windows heatmap, records and accuracy per window, the
//! recent windows in a table, and the baselines it has used.

use maud::{html, Markup};

use super::charts::bars;
use super::heatmap::{Cell, Column};
use super::layout::{num, opt, page, pill, short, time_ms, time_text, Assets};
use super::view::Report;
use super::{run_href, window_href, PageError};
use crate::api::{ApiState, StreamInfo};
use crate::store::BaselineVersion;

/// Windows the page shows unless `?windows=` says otherwise.
pub(super) const DEFAULT_WINDOWS: u64 = 60;
/// The most windows the page shows.
pub(super) const MAX_WINDOWS: u64 = 500;

pub(super) struct StreamPage {
    info: StreamInfo,
    /// Oldest first.
    reports: Vec<Report>,
    baselines: Vec<BaselineVersion>,
    dead_letters: u64,
    records: u64,
}

pub(super) fn load(state: &ApiState, name: &str, windows: u64) -> Result<StreamPage, PageError> {
    let info = state
        .streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| PageError::NotFound(format!("no stream named `{name}`")))?
        .clone();
    let store = state.store.get()?;
    let mut reports: Vec<Report> = store
        .latest_window_documents(name, windows)?
        .iter()
        .filter_map(|text| Report::from_text(text))
        .collect();
    reports.reverse();
    Ok(StreamPage {
        baselines: store.baselines(name)?,
        dead_letters: state.metrics.dead_letters_of(name),
        records: state.metrics.records_of(name),
        info,
        reports,
    })
}

pub(super) fn draw(stream: StreamPage) -> Markup {
    let name = stream.info.name.clone();
    let body = html! {
        div.facts {
            div { b { code { (stream.info.topic) } } span { "topic" } }
            div { b { (stream.info.window) } span { "window" } }
            div { b { (stream.records) } span { "records since start" } }
            div { b { (stream.dead_letters) } span { "dead letters since start" } }
            div { b { (short(&current_baseline(&stream))) } span { "baseline in use" } }
        }
        h2 { "Drift, features × windows" }
        @if stream.reports.is_empty() {
            p.muted { "No window closed yet." }
        } @else {
            (heatmap(&name, &stream.info.features, &stream.reports))
            h2 { "Records per second (event time)" }
            p.muted { "Red: windows with dataset drift." }
            (bars(&stream.reports.iter().map(|r| (r.window.index, r.records_per_second().unwrap_or(0.0), r.dataset.detected)).collect::<Vec<_>>(), "records/s"))
            @if stream.reports.iter().any(|r| r.performance.accuracy.is_some()) {
                h2 { "Accuracy" }
                (bars(&stream.reports.iter().map(|r| (r.window.index, r.performance.accuracy.unwrap_or(0.0), false)).collect::<Vec<_>>(), "accuracy"))
            }
            h2 { "Recent windows" }
            (window_table(&name, &stream.reports))
        }
        h2 #baselines { "Baselines" }
        (baselines(&stream))
    };
    page(
        &format!("Stream {name}"),
        &[("Overview", "/".into())],
        true,
        Assets::Linked,
        body,
    )
}

fn current_baseline(stream: &StreamPage) -> String {
    stream
        .baselines
        .iter()
        .find(|b| b.active)
        .map_or_else(|| stream.info.baseline_id.clone(), |b| b.version.clone())
}

/// One row per feature, one column per window (oldest left).
fn heatmap(stream: &str, features: &[String], reports: &[Report]) -> Markup {
    let columns: Vec<Column> = reports
        .iter()
        .map(|r| Column {
            index: r.window.index,
            href: window_href(stream, r.window.index),
        })
        .collect();
    let rows: Vec<(String, Vec<Cell>)> = features
        .iter()
        .map(|feature| {
            let cells = reports
                .iter()
                .map(|report| {
                    let found = report.features.iter().find(|f| &f.name == feature);
                    Cell {
                        evidence: found.and_then(|f| f.evidence()),
                        detected: found.is_some_and(|f| f.drift.detected),
                        title: format!(
                            "{feature} in window {}: {}",
                            report.window.index,
                            found.map_or_else(|| "not in the report".to_string(), describe)
                        ),
                        href: format!(
                            "{}#feature-{}",
                            window_href(stream, report.window.index),
                            super::layout::segment(feature)
                        ),
                    }
                })
                .collect();
            (feature.clone(), cells)
        })
        .collect();
    super::heatmap::heatmap(&columns, &rows)
}

fn describe(feature: &super::view::Feature) -> String {
    match (feature.drift.score, feature.drift.threshold) {
        (Some(score), Some(threshold)) => format!(
            "{} {} vs threshold {}{}",
            feature.drift.method,
            num(score),
            num(threshold),
            if feature.drift.detected {
                ", drift detected"
            } else {
                ""
            }
        ),
        _ => feature
            .reason
            .clone()
            .unwrap_or_else(|| "not tested".into()),
    }
}

fn window_table(stream: &str, reports: &[Report]) -> Markup {
    html! {
        div.scroll { table.stack {
            thead { tr { th { "Window" } th { "End" } th.num { "Records" } th.num { "Late" } th.num { "Accuracy" } th { "Drifted" } } }
            tbody { @for report in reports.iter().rev().take(20) {
                tr {
                    td { a href=(window_href(stream, report.window.index)) { (report.window.index) } }
                    td.when { (report.window.end.as_deref().map(time_text).unwrap_or_default()) }
                    td.num { (report.window.records) }
                    td.num { (report.window.late_records) }
                    td.num { (opt(report.performance.accuracy)) }
                    td { @let drifted: Vec<&str> = report.drifted().map(|f| f.name.as_str()).collect();
                        @if drifted.is_empty() { span.muted { "none" } } @else { (pill("drift")) " " (drifted.join(", ")) } }
                }
            } }
        } }
    }
}

fn baselines(stream: &StreamPage) -> Markup {
    let rotated = stream.baselines.iter().any(|b| b.active);
    html! {
        div.scroll { table {
            thead { tr { th { "Version" } th { "From" } th { "Since" } th { "In use" } } }
            tbody {
                @for version in &stream.baselines {
                    tr {
                        td { code title=(version.version) { (short(&version.version)) } }
                        td { @match &version.run_id { Some(run) => { "run " a href=(run_href(run)) { (run) } } None => "–" } }
                        td { (time_ms(version.created_at)) }
                        td { @if version.active { (pill("ok")) } }
                    }
                }
                tr {
                    td { code title=(stream.info.baseline_id) { (short(&stream.info.baseline_id)) } }
                    td { "configuration" }
                    td { "–" }
                    td { @if !rotated { (pill("ok")) } }
                }
            }
        } }
    }
}
