//! The alerts a closed window raises: drift per affected model, one per trigger or
//! suppression, and data quality.

use super::{blank, Alert, AlertDecision, AlertKind, AlertSettings, AlertWindow, DriftedFeature};
use crate::drift::FeatureReport;
use crate::pipeline::{JudgedWindow, WindowReport};
use crate::policy::{Decision, Model, Outcome};

/// What a window and its decisions are worth alerting about: per model whose features drifted,
/// `drift_detected`; per triggered or suppressed decision, `retrain_triggered` or
/// `retrain_suppressed`; `data_quality` when values were missing or malformed in more than
/// `missing_rate` of the records, or `dead_letters` of `messages` exceed `dead_letter_rate`.
pub fn from_window(
    settings: &AlertSettings,
    stream: &str,
    models: &[Model],
    window: &JudgedWindow,
    messages: u64,
    dead_letters: u64,
) -> Vec<Alert> {
    let about = About {
        settings,
        stream,
        window,
        alert_window: alert_window(window),
    };
    let mut alerts: Vec<Alert> = models
        .iter()
        .filter(|m| m.stream == stream)
        .filter_map(|model| about.drift(model))
        .collect();
    alerts.extend(
        window
            .decisions
            .iter()
            .filter_map(|decision| about.decision(models, decision)),
    );
    let mut problems = value_problems(settings, &window.report);
    problems.extend(dead_letter_problem(settings, messages, dead_letters));
    alerts.extend(about.quality(problems));
    alerts
}

/// The window an alert is about, from its report.
fn alert_window(window: &JudgedWindow) -> AlertWindow {
    let meta = &window.report.window;
    AlertWindow {
        index: window.index,
        records: meta.records,
        start: meta.start.clone(),
        end: meta.end.clone(),
        offsets: meta.offsets.clone(),
    }
}

/// What every alert of one window shares.
struct About<'a> {
    settings: &'a AlertSettings,
    stream: &'a str,
    window: &'a JudgedWindow,
    alert_window: AlertWindow,
}

impl About<'_> {
    /// A blank alert about this window.
    fn alert(&self, kind: AlertKind, id: String, summary: String, link: String) -> Alert {
        let mut alert = blank(kind, id, summary);
        alert.stream = Some(self.stream.to_string());
        alert.window = Some(self.alert_window.clone());
        alert.link = Some(format!("{}{link}", self.settings.link_base));
        alert
    }

    /// `drift_detected` for a model whose features drifted.
    fn drift(&self, model: &Model) -> Option<Alert> {
        let drifted = drifted_of(&self.window.report, &model.features);
        if drifted.is_empty() {
            return None;
        }
        let (stream, index, tag) = (self.stream, self.window.index, &self.window.tag);
        let mut alert = self.alert(
            AlertKind::DriftDetected,
            format!("drift_detected:{stream}:{index}{tag}:{}", model.name),
            format!(
                "Drift in window {index} of {stream} for model {}: {}",
                model.name,
                describe(&self.window.report, &model.features)
            ),
            crate::api::pages::window_href(stream, index),
        );
        alert.model = Some(model.name.clone());
        alert.drifted_features = drifted;
        Some(alert)
    }

    /// `retrain_triggered` or `retrain_suppressed` for a decision that did something.
    fn decision(&self, models: &[Model], decision: &Decision) -> Option<Alert> {
        let kind = match decision.outcome {
            Outcome::Triggered => AlertKind::RetrainTriggered,
            Outcome::NotTriggered => return None,
            _ => AlertKind::RetrainSuppressed,
        };
        let (stream, index) = (self.stream, self.window.index);
        let summary = match kind {
            AlertKind::RetrainTriggered => format!(
                "Retraining {} (policy {}, window {index} of {stream}): {}",
                decision.model, decision.policy, decision.reason
            ),
            _ => format!(
                "Retraining {} suppressed ({}; policy {}, window {index} of {stream}): {}",
                decision.model,
                decision.outcome.as_str(),
                decision.policy,
                decision.reason
            ),
        };
        let features = models
            .iter()
            .find(|m| m.name == decision.model)
            .map_or(&[][..], |m| &m.features[..]);
        let mut alert = self.alert(
            kind,
            format!("{}:{}", kind.as_str(), decision.key),
            summary,
            crate::api::pages::decision_href(stream, index, &decision.policy),
        );
        alert.model = Some(decision.model.clone());
        alert.drifted_features = drifted_of(&self.window.report, features);
        alert.decision = Some(alert_decision(decision));
        Some(alert)
    }

    /// `data_quality` when there are problems.
    fn quality(&self, problems: Vec<String>) -> Option<Alert> {
        if problems.is_empty() {
            return None;
        }
        let (stream, index, tag) = (self.stream, self.window.index, &self.window.tag);
        let mut alert = self.alert(
            AlertKind::DataQuality,
            format!("data_quality:{stream}:{index}{tag}"),
            format!(
                "Data quality in window {index} of {stream}: {}",
                problems.join("; ")
            ),
            crate::api::pages::window_href(stream, index),
        );
        alert.problems = problems;
        Some(alert)
    }
}

/// The features among `names` whose drift the report detected.
fn drifted_among<'r>(
    report: &'r WindowReport,
    names: &'r [String],
) -> impl Iterator<Item = &'r FeatureReport> {
    report
        .drifted_features()
        .filter(move |f| names.contains(&f.name))
}

/// The features among `names` whose drift the report detected, with their numbers.
fn drifted_of(report: &WindowReport, names: &[String]) -> Vec<DriftedFeature> {
    drifted_among(report, names)
        .map(|f| DriftedFeature {
            name: f.name.clone(),
            // The alert carries the report's objects as they are (JSON leaves here).
            drift: serde_json::to_value(&f.drift).unwrap_or_default(),
            tests: serde_json::to_value(&f.tests).unwrap_or_default(),
        })
        .collect()
}

/// "amount (ks 1.000e-9), country (chi2 3.000e-4)".
fn describe(report: &WindowReport, names: &[String]) -> String {
    drifted_among(report, names)
        .map(|f| match f.drift.score.filter(|s| s.is_finite()) {
            Some(score) => format!("{} ({} {score:.3e})", f.name, f.drift.method.as_str()),
            None => f.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Features with more missing, NaN or mistyped values than `missing_rate` of the records.
fn value_problems(settings: &AlertSettings, report: &WindowReport) -> Vec<String> {
    let records = report.window.records;
    if records == 0 {
        return Vec::new();
    }
    report
        .drift
        .features
        .iter()
        .filter_map(|f| {
            let bad = f.missing_current + f.nan_current + f.invalid_current;
            let share = bad as f64 / records as f64;
            (share > settings.missing_rate).then(|| {
                format!(
                    "{}: {bad} of {records} values missing, NaN or of the wrong type ({:.1}% > {:.1}%)",
                    f.name,
                    share * 100.0,
                    settings.missing_rate * 100.0
                )
            })
        })
        .collect()
}

/// Too many messages that could not be decoded.
fn dead_letter_problem(settings: &AlertSettings, messages: u64, dead: u64) -> Option<String> {
    let share = dead as f64 / messages.max(1) as f64;
    (messages > 0 && share > settings.dead_letter_rate).then(|| {
        format!(
            "{dead} of {messages} messages could not be decoded and went to the dead \
             letters ({:.1}% > {:.1}%)",
            share * 100.0,
            settings.dead_letter_rate * 100.0
        )
    })
}

fn alert_decision(decision: &Decision) -> AlertDecision {
    AlertDecision {
        key: decision.key.clone(),
        policy: decision.policy.clone(),
        outcome: decision.outcome,
        reason: decision.reason.clone(),
        dag: decision.dag.clone(),
        signals: decision.signals.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::settings;
    use crate::alert::AlertKind;

    fn model(name: &str, features: &[&str]) -> Model {
        Model {
            name: name.into(),
            stream: "payments".into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            dag: Some(format!("retrain-{name}")),
        }
    }

    fn decision(policy: &str, model: &str, outcome: Outcome) -> Decision {
        serde_json::from_value(serde_json::json!({
            "key": format!("{policy}/{model}/payments/7"), "policy": policy, "model": model,
            "dag": "retrain", "stream": "payments", "window": 7, "at_ms": 0,
            "outcome": outcome, "reason": "amount: ks.p_value 1e-9 < 0.01 in this window",
            "span": {"start": null, "end": null, "offsets": {}},
            "drifted_features": ["amount"], "signals": []
        }))
        .unwrap()
    }

    fn window(decisions: Vec<Decision>, missing_country: u64) -> JudgedWindow {
        use crate::drift::Method;
        use crate::pipeline::report::fixture::{feature, report};
        let mut country = feature("country", Method::Chi2, 0.4, false);
        country.missing_current = missing_country;
        country.invalid_current = 10;
        JudgedWindow {
            index: 7,
            tag: String::new(),
            report: report(
                1000,
                vec![feature("amount", Method::Ks, 1e-9, true), country],
            ),
            decisions,
            data: None,
        }
    }

    #[test]
    fn a_window_raises_drift_per_affected_model_and_one_alert_per_trigger_or_suppression() {
        let models = [
            model("fraud", &["amount", "country"]),
            model("geo", &["country"]),
        ];
        let decisions = vec![
            decision("p1", "fraud", Outcome::Triggered),
            decision("p2", "fraud", Outcome::SuppressedCooldown),
            decision("p3", "geo", Outcome::NotTriggered),
        ];
        let alerts = from_window(
            &settings(),
            "payments",
            &models,
            &window(decisions, 0),
            10,
            0,
        );
        let kinds: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.kind.as_str(), a.id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("drift_detected", "drift_detected:payments:7:fraud"),
                ("retrain_triggered", "retrain_triggered:p1/fraud/payments/7"),
                (
                    "retrain_suppressed",
                    "retrain_suppressed:p2/fraud/payments/7"
                ),
            ],
            "geo's feature did not drift; p3 changed nothing"
        );
        let triggered = &alerts[1];
        assert_eq!(triggered.version, 1);
        assert_eq!(triggered.model.as_deref(), Some("fraud"));
        assert_eq!(triggered.window.as_ref().unwrap().records, 1000);
        assert_eq!(triggered.drifted_features.len(), 1);
        assert_eq!(triggered.drifted_features[0].drift["score"], 1e-9);
        assert_eq!(
            triggered.decision.as_ref().unwrap().reason,
            "amount: ks.p_value 1e-9 < 0.01 in this window"
        );
        assert_eq!(
            triggered.link.as_deref(),
            Some("http://127.0.0.1:9464/streams/payments/windows/7#decision-p1")
        );
        assert_eq!(
            alerts[0].summary,
            "Drift in window 7 of payments for model fraud: amount (ks 1.000e-9)"
        );
    }

    #[test]
    fn poor_data_raises_one_data_quality_alert_with_every_problem() {
        // country: 50 missing + 10 of the wrong type in 1000 records (6% > 5%); 2 dead letters
        // in 100 messages (2% > 1%).
        let alerts = from_window(&settings(), "payments", &[], &window(vec![], 50), 100, 2);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, AlertKind::DataQuality);
        assert_eq!(
            alerts[0].problems,
            [
                "country: 60 of 1000 values missing, NaN or of the wrong type (6.0% > 5.0%)",
                "2 of 100 messages could not be decoded and went to the dead letters (2.0% > 1.0%)",
            ]
        );
        // Below both thresholds: nothing.
        assert!(from_window(&settings(), "payments", &[], &window(vec![], 30), 100, 1).is_empty());
    }
}
