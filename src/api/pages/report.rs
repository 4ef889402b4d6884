//! Reports to keep: one self-contained HTML file (styles inline, charts as SVG, no script and
//! no address outside the file), for `driftgate drift --format html` and `replay --format html`.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::heatmap::{heatmap, Cell, Column};
use super::layout::{num, page, pill, Assets};
use super::view::Report;
use crate::policy::{Decision, Outcome};
use crate::replay::Replay;

/// A drift report (the JSON document `drift` prints) as an HTML page.
pub fn drift_html(report: &serde_json::Value) -> String {
    let view = Report::from_text(&report.to_string()).unwrap_or_default();
    let title = format!(
        "Drift: {} against {}",
        view.current.source.as_deref().unwrap_or("current data"),
        view.reference.source.as_deref().unwrap_or("the reference")
    );
    let body = super::window::body(&view, &[], &BTreeMap::new(), false);
    page(&title, &[], false, Assets::Inline, body).into_string()
}

/// A replay as an HTML page: the features × windows heatmap, every policy's signals against
/// its thresholds, and the decisions that were not "not triggered".
pub fn replay_html(replay: &Replay) -> String {
    let decisions: Vec<Decision> = replay
        .windows
        .iter()
        .flat_map(|w| w.decisions.clone())
        .collect();
    let notable: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.outcome != Outcome::NotTriggered)
        .collect();
    let body = html! {
        div.facts {
            div { b { (replay.windows.len()) } span { "windows" } }
            div { b { (replay.records) } span { "records" } }
            div { b { (replay.dead_letters.values().sum::<u64>()) } span { "undecodable messages" } }
            div { b { (replay.total_retrains()) } span { "retrains" } }
        }
        h2 { "Drift, features × windows" }
        (replay_heatmap(replay))
        h2 { "Signals against thresholds" }
        (super::model::signals(&decisions))
        h2 { "Triggers and suppressions" }
        (decision_table(&notable))
    };
    page(
        &format!("Replay of {}", replay.stream),
        &[],
        false,
        Assets::Inline,
        body,
    )
    .into_string()
}

fn replay_heatmap(replay: &Replay) -> Markup {
    let mut features: Vec<&String> = replay
        .windows
        .iter()
        .flat_map(|w| w.scores.keys())
        .collect();
    features.sort();
    features.dedup();
    let columns: Vec<Column> = replay
        .windows
        .iter()
        .map(|w| Column {
            index: w.index,
            href: format!("#window-{}", w.index),
        })
        .collect();
    let rows: Vec<(String, Vec<Cell>)> = features
        .iter()
        .map(|feature| {
            let cells = replay
                .windows
                .iter()
                .map(|w| {
                    let detected = w.drifted.contains(feature);
                    let score = w.scores.get(*feature).copied().flatten();
                    Cell {
                        evidence: score.map(|_| if detected { 2.0 } else { 0.0 }),
                        detected,
                        title: format!(
                            "{feature} in window {}: score {}",
                            w.index,
                            score.map_or("–".into(), num)
                        ),
                        href: format!("#window-{}", w.index),
                    }
                })
                .collect();
            ((*feature).clone(), cells)
        })
        .collect();
    heatmap(&columns, &rows)
}

fn decision_table(decisions: &[&Decision]) -> Markup {
    html! {
        @if decisions.is_empty() { p.muted { "No policy triggered or was suppressed." } } @else {
            div.scroll { table.stack {
                thead { tr { th { "Window" } th { "Policy" } th { "Model" } th { "Outcome" } th { "Why" } } }
                tbody { @for d in decisions { tr id={ "window-" (d.window) } {
                    td { (d.window) } td { (d.policy) } td { (d.model) }
                    td { (pill(d.outcome.as_str())) } td.wide { (d.reason) }
                } } }
            } }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_drift_report_names_no_address_outside_itself() {
        let report = serde_json::json!({
            "reference": {"source": "ref.csv", "records": 10},
            "current": {"source": "cur.csv", "records": 10},
            "features": [{"name": "amount", "kind": "numeric", "status": "ok",
                "histogram": {"edges": [1.0, 2.0], "reference": [1, 5, 4], "current": [0, 2, 8]},
                "drift": {"method": "ks", "score": 1e-6, "threshold": 0.05, "detected": true}}],
            "dataset": {"features": 1, "drifted": 1, "detected": true}
        });
        let html = super::drift_html(&report);
        assert!(html.contains("<style>"), "styles are inline");
        assert!(
            !html.contains("src=\"http")
                && !html.contains("href=\"http")
                && !html.contains("href=\"/")
        );
        assert!(
            html.contains("id=\"feature-amount\" data-drift=\"true\""),
            "{html}"
        );
    }
}
