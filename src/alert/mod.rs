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
mod run;
pub mod slack;
mod window;

pub use run::{baseline_rotated, offsets_reset, reload_failed, run_alert};
pub use window::from_window;

use std::time::Duration;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{Outcome, SignalReading};
use crate::window::OffsetRange;

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
    /// A partition's checkpointed offset was beyond its end (the topic was re-created or the
    /// broker lost data); consumption resumed as `kafka.on_offset_reset` says.
    OffsetsReset,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 10] = [
        AlertKind::DriftDetected,
        AlertKind::RetrainTriggered,
        AlertKind::RetrainSuppressed,
        AlertKind::RunStarted,
        AlertKind::RunSucceeded,
        AlertKind::RunFailed,
        AlertKind::BaselineRotated,
        AlertKind::DataQuality,
        AlertKind::ConfigReloadFailed,
        AlertKind::OffsetsReset,
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
            AlertKind::OffsetsReset => "offsets_reset",
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
    pub offsets: BTreeMap<String, OffsetRange>,
}

/// A drifted feature with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftedFeature {
    /// The feature.
    pub name: String,
    /// The stream's drift verdict: method, score, threshold (the report's `drift` object).
    pub drift: Value,
    /// Every statistic computed for it (the report's `tests` object; null when not tested).
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
    pub signals: Vec<SignalReading>,
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
    /// Attempts before an alert is dead, whatever its age (`u32::MAX`: no limit).
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Transient failures are retried until the alert is this old.
    pub max_age: Duration,
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

pub(crate) fn blank(kind: AlertKind, id: String, summary: String) -> Alert {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Alert settings with no sink, for the alert modules' tests.
    pub(super) fn settings() -> AlertSettings {
        AlertSettings {
            link_base: "http://127.0.0.1:9464".into(),
            missing_rate: 0.05,
            dead_letter_rate: 0.01,
            sinks: Vec::new(),
        }
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
                max_age: Duration::from_secs(60),
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
