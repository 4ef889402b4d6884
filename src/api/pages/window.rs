//! A window: what it held, the decisions taken on it, and per feature the reference and
//! current distributions with the statistic, its threshold and the data quality counts.
//! [`body`] is shared with the offline HTML report.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::charts::distribution;
use super::layout::{num, opt, page, percent, pill, segment, short, time_text, Assets};
use super::view::{Feature, Joint, Performance, Report, SinceRetrain};
use super::{model_href, run_href, stream_href, PageError};
use crate::api::ApiState;
use crate::policy::Decision;

pub(super) struct WindowPage {
    report: Report,
    decisions: Vec<Decision>,
    /// Run ids by decision key.
    runs: BTreeMap<String, String>,
}

pub(super) fn load(state: &ApiState, stream: &str, index: u64) -> Result<WindowPage, PageError> {
    if !state.streams.iter().any(|s| s.name == stream) {
        return Err(PageError::NotFound(format!("no stream named `{stream}`")));
    }
    let store = state.store.get()?;
    let report = store
        .window_documents(stream, index)?
        .first()
        .and_then(|text| Report::from_text(text))
        .ok_or_else(|| PageError::NotFound(format!("stream `{stream}` keeps no window {index}")))?;
    let decisions = store.window_decisions(stream, index)?;
    let mut runs = BTreeMap::new();
    for decision in decisions
        .iter()
        .filter(|d| d.outcome == crate::policy::Outcome::Triggered)
    {
        if let Some(run) = store
            .runs(Some(&decision.model), 200)?
            .into_iter()
            .find(|r| r.key == decision.key)
        {
            runs.insert(decision.key.clone(), run.id);
        }
    }
    Ok(WindowPage {
        report,
        decisions,
        runs,
    })
}

pub(super) fn draw(window: WindowPage) -> Markup {
    let stream = window.report.stream.clone();
    let title = format!("Window {} of {stream}", window.report.window.index);
    let trail = [
        ("Overview", "/".to_string()),
        (stream.as_str(), stream_href(&stream)),
    ];
    let body = body(&window.report, &window.decisions, &window.runs, true);
    page(&title, &trail, false, Assets::Linked, body)
}

/// The window's facts, its decisions and its features. `links`: whether to link to other
/// dashboard pages (not in an offline report).
pub fn body(
    report: &Report,
    decisions: &[Decision],
    runs: &BTreeMap<String, String>,
    links: bool,
) -> Markup {
    html! {
        (facts(report))
        @if !decisions.is_empty() {
            h2 { "Decisions" }
            (decision_table(decisions, runs, links))
        }
        h2 { "Features" }
        div.legend { span { span.swatch.ref {} "reference" } span { span.swatch.cur {} "current window" } }
        div.features { @for feature in ordered(&report.features) { (feature_card(feature, "feature")) } }
        @if !report.multivariate.is_empty() {
            h2 { "Features together" }
            p.muted { "Multivariate tests of the rows against the reference's: they see a change in how features move together, which no per-feature test can." }
            (joint_table(&report.multivariate))
        }
        @if !report.outputs.is_empty() {
            h2 { "Model outputs" }
            p.muted { "The window's predictions and labels against the training data's." }
            div.features { @for output in &report.outputs { (feature_card(output, "output")) } }
        }
        @if let Some(since) = &report.since_retrain {
            h2 { "Since the last retrain" }
            @let windows = if since.windows == 1 { "window" } else { "windows" };
            p.muted { "The window against the " (since.windows) " " (windows) " (" (since.records) " records) the stream saw since its models' last retrain: whether the data is still moving, not how far it is from training." }
            (since_table(report, since))
        }
    }
}

/// The features against the data since the last retrain, beside their verdict against the
/// training data.
fn since_table(report: &Report, since: &SinceRetrain) -> Markup {
    let training = |name: &str| report.features.iter().find(|f| f.name == name);
    html! {
        div.scroll { table.stack {
            thead { tr { th { "Feature" } th { "Method" } th { "Score" } th { "Threshold" } th { "Verdict" } th { "Against training" } } }
            tbody { @for feature in ordered(&since.features) {
                tr id={ "since-" (segment(&feature.name)) } {
                    td { (feature.name) }
                    td { (feature.drift.method) }
                    td.num { (opt(feature.drift.score)) }
                    td.num { (opt(feature.drift.threshold)) }
                    td { (pill(if feature.drift.detected { "drift" } else { "none" })) }
                    td { @match training(&feature.name) {
                        Some(t) => (pill(if t.drift.detected { "drift" } else { "none" })),
                        None => "–",
                    } }
                }
            } }
        } }
    }
}

/// MAE and RMSE, when they say more than the accuracy: labels of 0 and 1 (a classifier's)
/// have residuals of 0 or ±1, so their MAE is the error rate.
fn regression_errors(performance: &Performance) -> Option<(f64, f64)> {
    let (mae, rmse) = (performance.mae?, performance.rmse?);
    let error_rate = performance.accuracy.map(|a| 1.0 - a);
    let repeats = error_rate.is_some_and(|e| (e - mae).abs() <= 1e-9);
    (!repeats).then_some((mae, rmse))
}

fn facts(report: &Report) -> Markup {
    let meta = &report.window;
    html! {
        div.facts {
            @if meta.end.is_some() || meta.records > 0 {
                div { b { (meta.records) } span { "records" } }
                div { b { (meta.late_records) } span { "late records" } }
                div { b { (meta.start.as_deref().map(time_text).unwrap_or_else(|| "–".into())) } span { "start" } }
                div { b { (meta.end.as_deref().map(time_text).unwrap_or_else(|| "–".into())) } span { "end" } }
            } @else {
                div { b { (report.current.records) } span { "current records" } }
                div { b { (report.reference.records) } span { "reference records" } }
            }
            div { b { (report.dataset.drifted) " of " (report.dataset.features) } span { "features drifted" } }
            @if let Some(accuracy) = report.performance.accuracy {
                div { b { (percent(accuracy)) } span { "accuracy (" (report.performance.labelled) " labelled)" } }
            }
            @if let Some((mae, rmse)) = regression_errors(&report.performance) {
                div { b { (num(mae)) } span { "mean absolute error" } }
                div { b { (num(rmse)) } span { "root mean squared error" } }
            }
            div { b { code title=(report.reference.baseline_id.clone().unwrap_or_default()) {
                (report.reference.baseline_id.as_deref().map(short).or(report.reference.source.as_deref()).unwrap_or("–")) } }
                span { "reference" } }
        }
        @if !meta.offsets.is_empty() {
            p.muted { "Offsets: "
                @for (partition, range) in &meta.offsets { code { (partition) " " (range.first) "–" (range.last) } " " } }
        }
        p.muted { "Methods: " (report.settings.numeric_method) " (numeric), " (report.settings.categorical_method)
            " (categorical); alpha " (num(report.settings.alpha)) ", correction " (report.settings.correction) "." }
    }
}

fn decision_table(decisions: &[Decision], runs: &BTreeMap<String, String>, links: bool) -> Markup {
    html! {
        div.scroll { table.stack {
            thead { tr { th { "Policy" } th { "Model" } th { "Outcome" } th { "Why" } th { "Run" } } }
            tbody { @for decision in decisions {
                tr id={ "decision-" (segment(&decision.policy)) } {
                    td { (decision.policy) }
                    td { @if links { a href=(model_href(&decision.model)) { (decision.model) } } @else { (decision.model) } }
                    td { (pill(decision.outcome.as_str())) }
                    td.wide { (decision.reason) }
                    td { @match runs.get(&decision.key) {
                        Some(run) if links => a href=(run_href(run)) { (run) },
                        Some(run) => (run),
                        None => "–",
                    } }
                }
            } }
        } }
    }
}

/// The multivariate tests, one row each.
fn joint_table(tests: &BTreeMap<String, Joint>) -> Markup {
    let name = |method: &str| match method {
        "mmd" => "MMD² (Gaussian kernel)",
        "pca" => "PCA reconstruction error",
        _ => "multivariate test",
    };
    html! {
        div.scroll { table.stack {
            thead { tr { th { "Test" } th { "Statistic" } th { "Threshold" } th { "p-value" } th { "Columns" } th { "Rows (window / reference)" } th { "Verdict" } } }
            tbody { @for (method, test) in tests {
                tr id={ "multivariate-" (segment(method)) } {
                    td { (name(method)) }
                    td.num { (num(test.statistic)) }
                    td.num { (num(test.threshold)) }
                    td.num { (num(test.p_value)) }
                    td.num { (test.features) }
                    td.num { (test.current_rows) " / " (test.reference_rows) }
                    td { (pill(if test.drift { "drift" } else { "none" })) }
                }
            } }
        } }
    }
}

/// Drifted features first, then the rest, each group in report order.
fn ordered(features: &[Feature]) -> Vec<&Feature> {
    let (mut drifted, rest): (Vec<&Feature>, Vec<&Feature>) =
        features.iter().partition(|f| f.drift.detected);
    drifted.extend(rest);
    drifted
}

/// A feature's card (or a model output's: `kind` is the id's prefix, `feature` or `output`).
fn feature_card(feature: &Feature, kind: &str) -> Markup {
    let outcome = &feature.drift;
    html! {
        div.card.feature.(if outcome.detected { "drift" } else { "" }) id={ (kind) "-" (segment(&feature.name)) } data-drift=(outcome.detected) {
            h3 { span { (feature.name) " " span.muted { (feature.kind) } }
                @if outcome.detected { (pill("drift")) } @else if feature.status == "ok" { (pill("ok")) } @else { (pill("insufficient data")) } }
            @if let Some(reason) = &feature.reason { p.reason { (reason) } }
            @if let Some(histogram) = feature.histogram() { (distribution(&histogram)) }
            table {
                tr { th { (outcome.method) @if outcome.is_test() { " p-value" } @else { " score" } } td.num { (opt(outcome.score)) }
                     th { "threshold" } td.num { (opt(outcome.threshold)) } }
                @if !outcome.is_test() && outcome.p_value.is_some() {
                    tr { th { "p-value" } td.num { (opt(outcome.p_value)) } th {} td {} }
                }
                tr { th { "reference n" } td.num { (feature.n_reference) } th { "current n" } td.num { (feature.n_current) } }
                tr { th { "missing" } td.num { (feature.missing_current) } th { "NaN / invalid" } td.num { (feature.nan_current) " / " (feature.invalid_current) } }
            }
            @let statistics = feature.statistics();
            @if !statistics.is_empty() {
                details { summary { "All statistics" }
                    table { @for (name, value) in &statistics { tr { th { (name) } td.num { (num(*value)) } } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_windows_show_their_mae_and_rmse() {
        let report = |performance: serde_json::Value| -> Report {
            serde_json::from_value(serde_json::json!({ "performance": performance })).unwrap()
        };
        let regression = report(serde_json::json!(
            {"labelled": 40, "accuracy": 0.0, "numeric_labelled": 40, "mae": 1.5, "rmse": 2.25}));
        let html = facts(&regression).into_string();
        assert!(
            html.contains("<b>1.5</b><span>mean absolute error</span>"),
            "{html}"
        );
        assert!(
            html.contains("<b>2.25</b><span>root mean squared error</span>"),
            "{html}"
        );
        let classes = report(serde_json::json!({"labelled": 40, "accuracy": 0.9}));
        assert!(!facts(&classes)
            .into_string()
            .contains("mean absolute error"));
        // 0/1 labels: the MAE is the error rate, said already.
        let binary = report(serde_json::json!(
            {"labelled": 40, "accuracy": 0.9, "numeric_labelled": 40, "mae": 0.1, "rmse": 0.316}));
        assert!(!facts(&binary).into_string().contains("mean absolute error"));
    }

    #[test]
    fn model_outputs_have_their_own_section_when_the_report_has_them() {
        let report = |outputs: serde_json::Value| -> Report {
            serde_json::from_value(serde_json::json!({ "outputs": outputs })).unwrap()
        };
        let none = BTreeMap::new();
        let without = body(&report(serde_json::json!([])), &[], &none, false).into_string();
        assert!(!without.contains("Model outputs"));
        let prediction = serde_json::json!([{"name": "prediction", "kind": "numeric"}]);
        let with = body(&report(prediction), &[], &none, false).into_string();
        assert!(with.contains("<h2>Model outputs</h2>"), "{with}");
        assert!(with.contains("prediction"), "{with}");
    }

    #[test]
    fn the_data_since_the_retrain_gets_a_table_when_the_report_has_it() {
        let none = BTreeMap::new();
        let without = body(&Report::default(), &[], &none, false).into_string();
        assert!(!without.contains("Since the last retrain"));
        let feature = |detected: bool| {
            serde_json::json!({"name": "x0", "kind": "numeric",
                "drift": {"method": "ks", "score": 0.2, "threshold": 0.05, "detected": detected}})
        };
        let report: Report = serde_json::from_value(serde_json::json!({
            "features": [feature(true)],
            "since_retrain": {"records": 800, "windows": 2, "features": [feature(false)]}
        }))
        .unwrap();
        let with = body(&report, &[], &none, false).into_string();
        assert!(with.contains("<h2>Since the last retrain</h2>"), "{with}");
        assert!(with.contains("the 2 windows (800 records)"), "{with}");
        let row = with.split("id=\"since-x0\"").nth(1).unwrap();
        let row = row.split("</tr>").next().unwrap();
        assert!(row.contains(">none<") && row.contains("pill bad"), "{row}");
    }

    #[test]
    fn multivariate_tests_get_a_table_when_the_report_has_them() {
        let none = BTreeMap::new();
        let without = body(&Report::default(), &[], &none, false).into_string();
        assert!(!without.contains("Features together"));
        let report: Report = serde_json::from_value(serde_json::json!({ "multivariate": {
            "mmd": {"statistic": 0.0213, "p_value": 0.0099, "threshold": 0.0019, "drift": true,
                    "features": 5, "reference_rows": 500, "current_rows": 500},
            "pca": {"statistic": 1.17, "p_value": 0.61, "threshold": 1.196, "drift": false,
                    "features": 5, "reference_rows": 2000, "current_rows": 1000}
        }}))
        .unwrap();
        let with = body(&report, &[], &none, false).into_string();
        assert!(with.contains("<h2>Features together</h2>"), "{with}");
        let row = |id: &str| {
            with.split(id)
                .nth(1)
                .unwrap()
                .split("</tr>")
                .next()
                .unwrap()
                .to_string()
        };
        let mmd = row("id=\"multivariate-mmd\"");
        assert!(
            mmd.contains("MMD²") && mmd.contains("0.0213") && mmd.contains("pill bad"),
            "{mmd}"
        );
        let pca = row("id=\"multivariate-pca\"");
        assert!(
            pca.contains("1000 / 2000") && pca.contains(">none<"),
            "{pca}"
        );
    }
}
