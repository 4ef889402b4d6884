//! `[alerts]`: where retraining alerts go, and when data quality is worth one.

use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use crate::alert::{AlertKind, SinkKind, SinkSettings};

/// `[alerts]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// The base of links in alerts, e.g. `"https://driftgate.internal:9464"` (default: the
    /// API's listen address over http).
    #[serde(default)]
    pub link_base: Option<String>,
    /// A `data_quality` alert is raised for a window in which some feature's values were
    /// missing, NaN or of the wrong type in more than this share of the records (default 0.05).
    #[serde(default)]
    pub missing_rate: Option<f64>,
    /// A `data_quality` alert is raised for a window during which more than this share of the
    /// stream's messages went to the dead letters (default 0.01).
    #[serde(default)]
    pub dead_letter_rate: Option<f64>,
    /// The destinations; none by default (alerts are still kept in the outbox and listed at
    /// `/api/v1/alerts`).
    #[serde(default)]
    pub sinks: Vec<RawSink>,
}

/// `[[alerts.sinks]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// A unique name, used in metrics and in `/api/v1/alerts`.
    pub name: String,
    /// `webhook` (the alert JSON), `slack` (an incoming-webhook message), `kafka` (the alert
    /// JSON on a topic, keyed by model) or `log`.
    pub kind: String,
    /// For `webhook` and `slack`: the URL to POST to.
    #[serde(default)]
    pub url: Option<String>,
    /// For `kafka`: the topic. The service's `[kafka]` settings are used.
    #[serde(default)]
    pub topic: Option<String>,
    /// For `webhook`: the name of an environment variable holding the signing secret. When
    /// set, requests carry an HMAC-SHA256 signature (see the README).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Only these kinds (default: every kind).
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Only alerts about these models (default: every alert, including those about no model).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Time allowed for one delivery attempt (default `"10s"`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Attempts before an alert is marked dead even though it is not `max_age` old yet
    /// (default: no limit; `max_age` decides).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The first retry's delay; each retry doubles it, with jitter (default `"1s"`).
    #[serde(default)]
    pub backoff: Option<String>,
    /// The longest delay between retries (default `"5m"`).
    #[serde(default)]
    pub max_backoff: Option<String>,
    /// How long after it was raised an alert is still retried: transport errors, 3xx, 408, 429
    /// and 5xx are retried until it is this old, then it is marked dead (default `"24h"`; an
    /// outage shorter than this loses nothing). Any other 4xx marks it dead at once.
    #[serde(default)]
    pub max_age: Option<String>,
}

/// Validated `[alerts]`.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Base of links.
    pub link_base: String,
    /// See [`RawAlerts::missing_rate`].
    pub missing_rate: f64,
    /// See [`RawAlerts::dead_letter_rate`].
    pub dead_letter_rate: f64,
    /// The sinks.
    pub sinks: Vec<SinkSettings>,
}

pub(super) fn validate(
    raw: &RawAlerts,
    api_listen: Option<std::net::SocketAddr>,
    models: &[String],
    problems: &mut Problems,
) -> AlertSettings {
    let missing_rate = rate(raw.missing_rate, 0.05, "missing_rate", problems);
    let dead_letter_rate = rate(raw.dead_letter_rate, 0.01, "dead_letter_rate", problems);
    let link_base = raw
        .link_base
        .clone()
        .or_else(|| api_listen.map(|a| format!("http://{a}")))
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let mut sinks: Vec<SinkSettings> = Vec::new();
    for (i, raw_sink) in raw.sinks.iter().enumerate() {
        let key = format!("alerts.sinks[{i}]");
        if raw_sink.name.trim().is_empty() {
            problems.add(format!("{key}.name"), "is empty");
        } else if sinks.iter().any(|s| s.name == raw_sink.name) {
            problems.add(
                format!("{key}.name"),
                format!("sink `{}` is defined twice", raw_sink.name),
            );
        }
        sinks.push(sink(raw_sink, &key, models, problems));
    }
    AlertSettings {
        link_base,
        missing_rate,
        dead_letter_rate,
        sinks,
    }
}

/// A share between 0 and 1, `default` when unset.
fn rate(value: Option<f64>, default: f64, key: &str, problems: &mut Problems) -> f64 {
    let value = value.unwrap_or(default);
    if !(0.0..=1.0).contains(&value) {
        problems.add(format!("alerts.{key}"), "must be between 0 and 1");
    }
    value
}

/// One sink: where, which alerts, and its delivery timing.
fn sink(sink: &RawSink, key: &str, models: &[String], problems: &mut Problems) -> SinkSettings {
    let kind = sink_kind(sink, key, problems);
    if !matches!(sink.kind.as_str(), "webhook" | "slack") && sink.url.is_some() {
        problems.add(
            format!("{key}.url"),
            format!("a {} sink takes no url", sink.kind),
        );
    }
    let kinds = sink
        .kinds
        .as_ref()
        .map(|names| alert_kinds(names, key, problems));
    for (j, name) in sink.models.iter().flatten().enumerate() {
        if !models.contains(name) {
            problems.add(format!("{key}.models[{j}]"), format!("no model `{name}`"));
        }
    }
    let mut duration = |field: &str, text: &Option<String>, default: u64| {
        let default = Duration::from_secs(default);
        text.as_deref().map_or(default, |text| {
            problems
                .duration(&format!("{key}.{field}"), text)
                .unwrap_or(default)
        })
    };
    let timeout = duration("timeout", &sink.timeout, 10);
    let backoff = duration("backoff", &sink.backoff, 1);
    let max_backoff = duration("max_backoff", &sink.max_backoff, 300);
    let max_age = duration("max_age", &sink.max_age, 24 * 3600);
    let max_attempts = sink.max_attempts.unwrap_or(u32::MAX);
    if max_attempts == 0 {
        problems.add(format!("{key}.max_attempts"), "must be at least 1");
    }
    SinkSettings {
        name: sink.name.clone(),
        kind,
        kinds,
        models: sink.models.clone(),
        timeout,
        max_attempts: max_attempts.max(1),
        backoff,
        max_backoff: max_backoff.max(backoff),
        max_age,
    }
}

/// Where a sink delivers; a log sink stands in for a broken one (its problems are reported).
fn sink_kind(sink: &RawSink, key: &str, problems: &mut Problems) -> SinkKind {
    match sink.kind.as_str() {
        "webhook" | "slack" => http_kind(sink, key, problems),
        "kafka" => match &sink.topic {
            Some(topic) if !topic.trim().is_empty() => SinkKind::Kafka {
                topic: topic.clone(),
            },
            _ => {
                problems.add(format!("{key}.topic"), "a kafka sink needs a topic");
                SinkKind::Log
            }
        },
        "log" => SinkKind::Log,
        other => {
            problems.add(
                format!("{key}.kind"),
                format!("{other:?} is not a sink kind: use webhook, slack, kafka or log"),
            );
            SinkKind::Log
        }
    }
}

/// A webhook (signed when it has a secret) or a Slack incoming webhook.
fn http_kind(sink: &RawSink, key: &str, problems: &mut Problems) -> SinkKind {
    let url = sink.url.clone().unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        problems.add(
            format!("{key}.url"),
            "a webhook or slack sink needs an http:// or https:// url",
        );
    }
    let secret = sink
        .secret_env
        .as_ref()
        .and_then(|var| match std::env::var(var) {
            Ok(secret) if !secret.is_empty() => Some(secret),
            _ => {
                problems.add(
                    format!("{key}.secret_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }
        });
    if sink.kind != "slack" {
        return SinkKind::Webhook { url, secret };
    }
    if sink.secret_env.is_some() {
        problems.add(
            format!("{key}.secret_env"),
            "Slack incoming webhooks are not signed; the secret is in the URL",
        );
    }
    SinkKind::Slack { url }
}

/// The alert kinds a sink takes, by name.
fn alert_kinds(names: &[String], key: &str, problems: &mut Problems) -> Vec<AlertKind> {
    let known = || {
        AlertKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    names
        .iter()
        .enumerate()
        .filter_map(|(j, name)| {
            let kind = AlertKind::parse(name);
            if kind.is_none() {
                problems.add(
                    format!("{key}.kinds[{j}]"),
                    format!("{name:?} is not an alert kind ({})", known()),
                );
            }
            kind
        })
        .collect()
}
