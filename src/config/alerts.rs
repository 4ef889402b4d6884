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
    /// Attempts before an alert is marked dead (default 10).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The first retry's delay; each retry doubles it, with jitter (default `"1s"`).
    #[serde(default)]
    pub backoff: Option<String>,
    /// The longest delay between retries (default `"5m"`).
    #[serde(default)]
    pub max_backoff: Option<String>,
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
    let mut add = |key: String, message: String| problems.add(key, message);
    let rate =
        |value: Option<f64>, default: f64, key: &str, add: &mut dyn FnMut(String, String)| {
            let value = value.unwrap_or(default);
            if !(0.0..=1.0).contains(&value) {
                add(
                    format!("alerts.{key}"),
                    "must be between 0 and 1".to_string(),
                );
            }
            value
        };
    let missing_rate = rate(raw.missing_rate, 0.05, "missing_rate", &mut add);
    let dead_letter_rate = rate(raw.dead_letter_rate, 0.01, "dead_letter_rate", &mut add);
    let link_base = raw
        .link_base
        .clone()
        .or_else(|| api_listen.map(|a| format!("http://{a}")))
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let mut sinks: Vec<SinkSettings> = Vec::new();
    for (i, sink) in raw.sinks.iter().enumerate() {
        let key = format!("alerts.sinks[{i}]");
        if sink.name.trim().is_empty() {
            add(format!("{key}.name"), "is empty".to_string());
        } else if sinks.iter().any(|s| s.name == sink.name) {
            add(
                format!("{key}.name"),
                format!("sink `{}` is defined twice", sink.name),
            );
        }
        let kind = match sink.kind.as_str() {
            "webhook" | "slack" => {
                let url = sink.url.clone().unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    add(
                        format!("{key}.url"),
                        "a webhook or slack sink needs an http:// or https:// url".to_string(),
                    );
                }
                let secret = match &sink.secret_env {
                    Some(var) => match std::env::var(var) {
                        Ok(secret) if !secret.is_empty() => Some(secret),
                        _ => {
                            add(
                                format!("{key}.secret_env"),
                                format!("environment variable {var} is not set"),
                            );
                            None
                        }
                    },
                    None => None,
                };
                if sink.kind == "slack" {
                    if sink.secret_env.is_some() {
                        add(
                            format!("{key}.secret_env"),
                            "Slack incoming webhooks are not signed; the secret is in the URL"
                                .to_string(),
                        );
                    }
                    SinkKind::Slack { url }
                } else {
                    SinkKind::Webhook { url, secret }
                }
            }
            "kafka" => match &sink.topic {
                Some(topic) if !topic.trim().is_empty() => SinkKind::Kafka {
                    topic: topic.clone(),
                },
                _ => {
                    add(
                        format!("{key}.topic"),
                        "a kafka sink needs a topic".to_string(),
                    );
                    SinkKind::Log
                }
            },
            "log" => SinkKind::Log,
            other => {
                add(
                    format!("{key}.kind"),
                    format!("{other:?} is not a sink kind: use webhook, slack, kafka or log"),
                );
                SinkKind::Log
            }
        };
        if !matches!(sink.kind.as_str(), "webhook" | "slack") && sink.url.is_some() {
            add(
                format!("{key}.url"),
                format!("a {} sink takes no url", sink.kind),
            );
        }
        let kinds = sink.kinds.as_ref().map(|kinds| {
            kinds
                .iter()
                .enumerate()
                .filter_map(|(j, name)| match AlertKind::parse(name) {
                    Some(kind) => Some(kind),
                    None => {
                        add(
                            format!("{key}.kinds[{j}]"),
                            format!(
                                "{name:?} is not an alert kind ({})",
                                AlertKind::ALL
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                        None
                    }
                })
                .collect()
        });
        if let Some(names) = &sink.models {
            for (j, name) in names.iter().enumerate() {
                if !models.contains(name) {
                    add(format!("{key}.models[{j}]"), format!("no model `{name}`"));
                }
            }
        }
        let mut duration = |field: &str, text: &Option<String>, default: u64| {
            let Some(text) = text else {
                return Duration::from_secs(default);
            };
            match super::duration(text, false) {
                Ok(d) => d,
                Err(message) => {
                    add(format!("{key}.{field}"), message);
                    Duration::from_secs(default)
                }
            }
        };
        let timeout = duration("timeout", &sink.timeout, 10);
        let backoff = duration("backoff", &sink.backoff, 1);
        let max_backoff = duration("max_backoff", &sink.max_backoff, 300);
        let max_attempts = sink.max_attempts.unwrap_or(10);
        if max_attempts == 0 {
            add(
                format!("{key}.max_attempts"),
                "must be at least 1".to_string(),
            );
        }
        sinks.push(SinkSettings {
            name: sink.name.clone(),
            kind,
            kinds,
            models: sink.models.clone(),
            timeout,
            max_attempts: max_attempts.max(1),
            backoff,
            max_backoff: max_backoff.max(backoff),
        });
    }
    AlertSettings {
        link_base,
        missing_rate,
        dead_letter_rate,
        sinks,
    }
}
