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

/// A backtest as an HTML page: accuracy over time per policy set with retrains marked (`chart`,
/// an SVG document), the sets side by side, and every run.
pub fn backtest_html(backtest: &crate::backtest::Backtest, chart: &str) -> String {
    let percent = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.2}%", v * 100.0));
    let windows = backtest.sets.first().map_or(0, |s| s.windows.len());
    let body = html! {
        div.facts {
            div { b { (windows) } span { "windows" } }
            div { b { (backtest.sets.len()) } span { "policy sets" } }
            div { b { (backtest.model) } span { "model judged" } }
        }
        h2 { "Accuracy over time" }
        div.scroll { (maud::PreEscaped(chart)) }
        h2 { "Policy sets" }
        div.scroll { table.stack {
            thead { tr { th { "Set" } th { "Retrains" } th { "Succeeded" } th { "Accuracy" }
                th { "Mean window accuracy" } th { "Training (s)" } th { "Drift alarms" }
                th { "Regret cost" } } }
            tbody { @for set in &backtest.sets { tr {
                td { (set.name) } td { (set.retrains) } td { (set.succeeded) }
                td { (percent(set.overall.accuracy)) } td { (percent(set.mean_accuracy)) }
                td { (num(set.training_seconds)) } td { (set.drift_alarms) }
                td { @for r in &set.regret { div { (r.policy) ": " (num(r.total)) " = runs "
                    (num(r.runs)) " + harm " (num(r.harm)) } } }
            } } }
        } }
        h2 { "Runs" }
        div.scroll { table.stack {
            thead { tr { th { "Set" } th { "Window" } th { "Policy" } th { "Run" } th { "Status" }
                th { "Promoted" } th { "Baseline" } } }
            tbody { @for set in &backtest.sets { @for run in &set.runs { tr {
                td { (set.name) } td { (run.window) } td { (run.policy) } td { (run.id) }
                td { (pill(&run.status)) } td { (if run.promoted { "yes" } else { "no" }) }
                td { (run.baseline.as_deref().unwrap_or("–")) }
            } } } }
        } }
    };
    let title = format!("Backtest of {} on {}", backtest.model, backtest.stream);
    page(&title, &[], false, Assets::Inline, body).into_string()
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
