//! Retraining alerts: versioned JSON documents, an outbox in the store, and sinks.
//!
//! Alerts are built from what the service decided ([`from_window`], [`reload_failed`]) and
//! written to the store's outbox in the same transaction as the window and its decisions, so a
//! window's alerts exist exactly once whatever happens to the process. Each sink has a worker
//! thread ([`deliver`]) that sends its pending alerts in order, retrying transport errors, 408,
//! 429 and 5xx with capped, jittered exponential backoff, and marking an alert dead after its
//! attempts run out or on any other 4xx. Ingestion only ever writes rows; a slow or dead sink
//! makes its own queue longer and nothing else.

pub mod deliver;
pub mod slack;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{Decision, Outcome};
use crate::store::StoredWindow;

/// The alert document's version.
pub const VERSION: u32 = 1;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Features of a model drifted in a window.
    DriftDetected,
    /// A policy triggered a retraining run.
    RetrainTriggered,
    /// A policy's conditions held but the trigger was suppressed (cooldown, budget, in flight).
    RetrainSuppressed,
    /// A retraining run started.
    RunStarted,
    /// A retraining run succeeded.
    RunSucceeded,
    /// A retraining run failed.
    RunFailed,
    /// A model's baseline was replaced by a run's output.
    BaselineRotated,
    /// A window's data was poor: missing or malformed values, or many dead letters.
    DataQuality,
    /// A configuration reload was refused.
    ConfigReloadFailed,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 9] = [
        AlertKind::DriftDetected,
        AlertKind::RetrainTriggered,
        AlertKind::RetrainSuppressed,
        AlertKind::RunStarted,
        AlertKind::RunSucceeded,
        AlertKind::RunFailed,
        AlertKind::BaselineRotated,
        AlertKind::DataQuality,
        AlertKind::ConfigReloadFailed,
    ];

    /// The name in documents and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DriftDetected => "drift_detected",
            AlertKind::RetrainTriggered => "retrain_triggered",
            AlertKind::RetrainSuppressed => "retrain_suppressed",
            AlertKind::RunStarted => "run_started",
            AlertKind::RunSucceeded => "run_succeeded",
            AlertKind::RunFailed => "run_failed",
            AlertKind::BaselineRotated => "baseline_rotated",
            AlertKind::DataQuality => "data_quality",
            AlertKind::ConfigReloadFailed => "config_reload_failed",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// An alert, as every sink receives it (Slack gets a rendering of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Always [`VERSION`].
    pub version: u32,
    /// What it is about.
    pub kind: AlertKind,
    /// Idempotency id: the same event always has the same id; receivers can drop repeats.
    pub id: String,
    /// When it was raised, RFC 3339 UTC.
    pub at: String,
    /// One readable sentence.
    pub summary: String,
    /// The stream.
    pub stream: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// The window it is about.
    pub window: Option<AlertWindow>,
    /// The model's features that drifted in the window, with their statistics and thresholds.
    pub drifted_features: Vec<DriftedFeature>,
    /// The policy decision, for `retrain_*`.
    pub decision: Option<AlertDecision>,
    /// The retraining run, for `run_*` and `baseline_rotated`.
    pub run: Option<Value>,
    /// The problems found, for `data_quality`.
    pub problems: Vec<String>,
    /// The error, for `config_reload_failed`.
    pub error: Option<String>,
    /// Where to see more in the HTTP API.
    pub link: Option<String>,
}

/// The window an alert is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertWindow {
    /// Index in the stream.
    pub index: u64,
    /// Records in it.
    pub records: u64,
    /// Start, RFC 3339.
    pub start: Option<String>,
    /// End, RFC 3339.
    pub end: Option<String>,
    /// Offsets per `topic/partition`.
    pub offsets: Value,
}

/// A drifted feature with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftedFeature {
    /// The feature.
    pub name: String,
    /// The stream's drift verdict: method, score, threshold.
    pub drift: Value,
    /// Every statistic computed for it.
    pub tests: Value,
}

/// The decision behind a `retrain_*` alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDecision {
    /// Idempotency key (policy/model/stream/window).
    pub key: String,
    /// The policy.
    pub policy: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// The DAG a trigger launches.
    pub dag: Option<String>,
    /// Every signal the policy read, with values and thresholds.
    pub signals: Value,
}

/// Where alerts go and when data quality is worth one (validated `[alerts]`).
pub use crate::config::alerts::AlertSettings;

/// A validated sink.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Unique name.
    pub name: String,
    /// Where to.
    pub kind: SinkKind,
    /// Only these kinds (`None`: all).
    pub kinds: Option<Vec<AlertKind>>,
    /// Only these models (`None`: all).
    pub models: Option<Vec<String>>,
    /// Time for one attempt.
    pub timeout: Duration,
    /// Attempts before an alert is dead.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl SinkSettings {
    /// Whether this sink takes `alert`.
    pub fn accepts(&self, alert: &Alert) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&alert.kind))
            && self
                .models
                .as_ref()
                .is_none_or(|models| alert.model.as_ref().is_some_and(|m| models.contains(m)))
    }
}

/// A sink's destination.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// POST the alert JSON, signed when a secret is set.
    Webhook {
        /// The URL.
        url: String,
        /// The HMAC-SHA256 secret.
        secret: Option<String>,
    },
    /// POST a Slack message.
    Slack {
        /// The incoming-webhook URL.
        url: String,
    },
    /// Produce the alert JSON to a topic, keyed by model.
    Kafka {
        /// The topic.
        topic: String,
    },
    /// Write the alert to the service log.
    Log,
}

/// An alert with the sinks it goes to: what the store's outbox takes.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The alert.
    pub alert: Alert,
    /// Names of the sinks that take it.
    pub sinks: Vec<String>,
}

/// Routes alerts to the sinks that accept them.
pub fn route(settings: &AlertSettings, alerts: Vec<Alert>) -> Vec<Routed> {
    alerts
        .into_iter()
        .map(|alert| Routed {
            sinks: settings
                .sinks
                .iter()
                .filter(|s| s.accepts(&alert))
                .map(|s| s.name.clone())
                .collect(),
            alert,
        })
        .collect()
}

/// Now as RFC 3339 UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn blank(kind: AlertKind, id: String, summary: String) -> Alert {
    Alert {
        version: VERSION,
        kind,
        id,
        at: now_rfc3339(),
        summary,
        stream: None,
        model: None,
        window: None,
        drifted_features: Vec::new(),
        decision: None,
        run: None,
        problems: Vec::new(),
        error: None,
        link: None,
    }
}

/// What a window and its decisions are worth alerting about: per model whose features drifted,
/// `drift_detected`; per triggered or suppressed decision, `retrain_triggered` or
/// `retrain_suppressed`; `data_quality` when values were missing or malformed in more than
/// `missing_rate` of the records, or `dead_letters` of `messages` exceed `dead_letter_rate`.
pub fn from_window(
    settings: &AlertSettings,
    stream: &str,
    models: &[crate::policy::Model],
    window: &StoredWindow,
    messages: u64,
    dead_letters: u64,
) -> Vec<Alert> {
    let report = &window.report;
    let meta = &report["window"];
    let records = meta["records"].as_u64().unwrap_or(0);
    let alert_window = AlertWindow {
        index: window.index,
        records,
        start: meta["start"].as_str().map(str::to_string),
        end: meta["end"].as_str().map(str::to_string),
        offsets: meta["offsets"].clone(),
    };
    let features = report["features"].as_array().cloned().unwrap_or_default();
    let drifted_of = |names: &[String]| -> Vec<DriftedFeature> {
        features
            .iter()
            .filter(|f| f["drift"]["detected"].as_bool() == Some(true))
            .filter(|f| {
                f["name"]
                    .as_str()
                    .is_some_and(|n| names.iter().any(|m| m == n))
            })
            .map(|f| DriftedFeature {
                name: f["name"].as_str().unwrap_or_default().to_string(),
                drift: f["drift"].clone(),
                tests: f["tests"].clone(),
            })
            .collect()
    };
    let describe = |drifted: &[DriftedFeature]| {
        drifted
            .iter()
            .map(|f| match f.drift["score"].as_f64() {
                Some(score) => format!(
                    "{} ({} {score:.3e})",
                    f.name,
                    f.drift["method"].as_str().unwrap_or("score")
                ),
                None => f.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let base = &settings.link_base;
    let mut alerts = Vec::new();
    for model in models.iter().filter(|m| m.stream == stream) {
        let drifted = drifted_of(&model.features);
        if drifted.is_empty() {
            continue;
        }
        let mut alert = blank(
            AlertKind::DriftDetected,
            format!("drift_detected:{stream}:{}:{}", window.index, model.name),
            format!(
                "Drift in window {} of {stream} for model {}: {}",
                window.index,
                model.name,
                describe(&drifted)
            ),
        );
        alert.stream = Some(stream.to_string());
        alert.model = Some(model.name.clone());
        alert.window = Some(alert_window.clone());
        alert.drifted_features = drifted;
        alert.link = Some(format!("{base}/api/v1/streams/{stream}/windows"));
        alerts.push(alert);
    }
    for decision in &window.decisions {
        let kind = match decision.outcome {
            Outcome::Triggered => AlertKind::RetrainTriggered,
            Outcome::NotTriggered => continue,
            _ => AlertKind::RetrainSuppressed,
        };
        let model_features = models
            .iter()
            .find(|m| m.name == decision.model)
            .map(|m| m.features.clone())
            .unwrap_or_default();
        let summary = match kind {
            AlertKind::RetrainTriggered => format!(
                "Retraining {} (policy {}, window {} of {stream}): {}",
                decision.model, decision.policy, window.index, decision.reason
            ),
            _ => format!(
                "Retraining {} suppressed ({}; policy {}, window {} of {stream}): {}",
                decision.model,
                decision.outcome.as_str(),
                decision.policy,
                window.index,
                decision.reason
            ),
        };
        let mut alert = blank(kind, format!("{}:{}", kind.as_str(), decision.key), summary);
        alert.stream = Some(stream.to_string());
        alert.model = Some(decision.model.clone());
        alert.window = Some(alert_window.clone());
        alert.drifted_features = drifted_of(&model_features);
        alert.decision = Some(alert_decision(decision));
        alert.link = Some(format!("{base}/api/v1/decisions?model={}", decision.model));
        alerts.push(alert);
    }
    let mut problems = Vec::new();
    if records > 0 {
        for f in &features {
            let bad = ["missing_current", "nan_current", "invalid_current"]
                .iter()
                .map(|k| f[*k].as_u64().unwrap_or(0))
                .sum::<u64>();
            let share = bad as f64 / records as f64;
            if share > settings.missing_rate {
                problems.push(format!(
                    "{}: {bad} of {records} values missing, NaN or of the wrong type ({:.1}% > {:.1}%)",
                    f["name"].as_str().unwrap_or("?"),
                    share * 100.0,
                    settings.missing_rate * 100.0
                ));
            }
        }
    }
    if messages > 0 {
        let share = dead_letters as f64 / messages as f64;
        if share > settings.dead_letter_rate {
            problems.push(format!(
                "{dead_letters} of {messages} messages could not be decoded and went to the dead \
                 letters ({:.1}% > {:.1}%)",
                share * 100.0,
                settings.dead_letter_rate * 100.0
            ));
        }
    }
    if !problems.is_empty() {
        let mut alert = blank(
            AlertKind::DataQuality,
            format!("data_quality:{stream}:{}", window.index),
            format!(
                "Data quality in window {} of {stream}: {}",
                window.index,
                problems.join("; ")
            ),
        );
        alert.stream = Some(stream.to_string());
        alert.window = Some(alert_window);
        alert.problems = problems;
        alert.link = Some(format!("{base}/api/v1/streams/{stream}/windows"));
        alerts.push(alert);
    }
    alerts
}

fn alert_decision(decision: &Decision) -> AlertDecision {
    AlertDecision {
        key: decision.key.clone(),
        policy: decision.policy.clone(),
        outcome: decision.outcome,
        reason: decision.reason.clone(),
        dag: decision.dag.clone(),
        signals: serde_json::to_value(&decision.signals).unwrap_or(Value::Null),
    }
}

/// A run's alert: `run_started`, `run_succeeded` or `run_failed`, with the run's tasks (which
/// ran, which came from the cache, which were skipped, and why).
pub fn run_alert(
    settings: &AlertSettings,
    kind: AlertKind,
    run: &crate::store::RunRecord,
    tasks: &[crate::store::TaskRecord],
) -> Alert {
    use crate::store::TaskStatus;
    let count = |status: TaskStatus| tasks.iter().filter(|t| t.status == status).count();
    let summary = match kind {
        AlertKind::RunStarted => format!(
            "Run {} of DAG {} started for model {}",
            run.id, run.dag, run.model
        ),
        AlertKind::RunSucceeded => format!(
            "Run {} of DAG {} for model {} succeeded: {} task(s) ran, {} from cache, {} skipped",
            run.id,
            run.dag,
            run.model,
            count(TaskStatus::Succeeded),
            count(TaskStatus::Cached),
            count(TaskStatus::Skipped)
        ),
        _ => format!(
            "Run {} of DAG {} for model {} failed: {}",
            run.id,
            run.dag,
            run.model,
            run.error.as_deref().unwrap_or("a task failed")
        ),
    };
    let mut alert = blank(kind, format!("{}:{}", kind.as_str(), run.id), summary);
    alert.stream = Some(run.request.stream.clone());
    alert.model = Some(run.model.clone());
    alert.run = Some(serde_json::json!({
        "id": run.id,
        "key": run.key,
        "dag": run.dag,
        "status": run.status,
        "error": run.error,
        "window": run.request.window,
        "drifted_features": run.request.drifted_features,
        "tasks": tasks.iter().map(|t| serde_json::json!({
            "task": t.task, "status": t.status, "reason": t.reason,
        })).collect::<Vec<_>>(),
    }));
    alert.link = Some(format!("{}/api/v1/runs/{}", settings.link_base, run.id));
    alert
}

/// A stream's baseline replaced by a run's output.
pub fn baseline_rotated(
    settings: &AlertSettings,
    stream: &str,
    model: &str,
    run_id: &str,
    from: &str,
    to: &str,
) -> Alert {
    let mut alert = blank(
        AlertKind::BaselineRotated,
        format!("baseline_rotated:{stream}:{to}"),
        format!(
            "Baseline of {stream} rotated from {from} to {to} by run {run_id} of model {model}"
        ),
    );
    alert.stream = Some(stream.to_string());
    alert.model = Some(model.to_string());
    alert.run = Some(serde_json::json!({"id": run_id, "baseline": {"from": from, "to": to}}));
    alert.link = Some(format!(
        "{}/api/v1/streams/{stream}/baselines",
        settings.link_base
    ));
    alert
}

/// A refused reload. Its id names the moment, so every refusal is one alert.
pub fn reload_failed(error: &str) -> Alert {
    let at = now_rfc3339();
    let mut alert = blank(
        AlertKind::ConfigReloadFailed,
        format!("config_reload_failed:{at}"),
        format!("A configuration reload was refused; the previous models and policies stay in force: {error}"),
    );
    alert.error = Some(error.to_string());
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Model;

    fn settings() -> AlertSettings {
        AlertSettings {
            link_base: "http://127.0.0.1:9464".into(),
            missing_rate: 0.05,
            dead_letter_rate: 0.01,
            sinks: Vec::new(),
        }
    }

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

    fn window(decisions: Vec<Decision>, missing_country: u64) -> StoredWindow {
        StoredWindow {
            index: 7,
            report: serde_json::json!({
                "window": {"records": 1000, "start": "2026-11-23T08:00:00Z",
                           "end": "2026-11-23T08:05:00Z", "offsets": {"t/0": {"first": 0, "last": 9}}},
                "features": [
                    {"name": "amount", "drift": {"detected": true, "method": "ks", "score": 1e-9, "threshold": 0.05},
                     "tests": {"ks": {"statistic": 0.3, "p_value": 1e-9}},
                     "missing_current": 0, "nan_current": 0, "invalid_current": 0},
                    {"name": "country", "drift": {"detected": false, "method": "chi2", "score": 0.4},
                     "tests": {}, "missing_current": missing_country, "nan_current": 0, "invalid_current": 10},
                ]
            }),
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
            Some("http://127.0.0.1:9464/api/v1/decisions?model=fraud")
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

    #[test]
    fn sinks_filter_by_kind_and_model() {
        let mut settings = settings();
        let sink =
            |name: &str, kinds: Option<Vec<AlertKind>>, models: Option<Vec<String>>| SinkSettings {
                name: name.into(),
                kind: SinkKind::Log,
                kinds,
                models,
                timeout: Duration::from_secs(1),
                max_attempts: 1,
                backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(1),
            };
        settings.sinks = vec![
            sink("all", None, None),
            sink("triggers", Some(vec![AlertKind::RetrainTriggered]), None),
            sink("geo", None, Some(vec!["geo".into()])),
        ];
        let routed = route(
            &settings,
            vec![reload_failed("broken"), {
                let mut a = reload_failed("x");
                a.kind = AlertKind::RetrainTriggered;
                a.model = Some("fraud".into());
                a
            }],
        );
        assert_eq!(routed[0].sinks, ["all"], "no model: only unfiltered sinks");
        assert_eq!(routed[1].sinks, ["all", "triggers"]);
    }
}
