//! Alerts as Slack incoming-webhook messages: a `text` fallback (notifications, clients without
//! blocks) and `blocks` — a header, the summary, fields for the model, stream, window and
//! decision, one line per drifted feature with its score and threshold, and a link.

use serde_json::{json, Value};

use super::{Alert, AlertKind};

/// The Slack message for `alert`.
pub fn message(alert: &Alert) -> Value {
    let title = match alert.kind {
        AlertKind::DriftDetected => "Drift detected",
        AlertKind::RetrainTriggered => "Retraining triggered",
        AlertKind::RetrainSuppressed => "Retraining suppressed",
        AlertKind::RunStarted => "Retraining run started",
        AlertKind::RunSucceeded => "Retraining run succeeded",
        AlertKind::RunFailed => "Retraining run failed",
        AlertKind::BaselineRotated => "Baseline rotated",
        AlertKind::DataQuality => "Data quality problem",
        AlertKind::ConfigReloadFailed => "Configuration reload refused",
    };
    let header = match &alert.model {
        Some(model) => format!("{title}: {model}"),
        None => title.to_string(),
    };
    let mut fields = Vec::new();
    let mut field = |name: &str, value: String| {
        fields.push(json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(&value))}));
    };
    if let Some(model) = &alert.model {
        field("Model", model.clone());
    }
    if let Some(stream) = &alert.stream {
        field("Stream", stream.clone());
    }
    if let Some(window) = &alert.window {
        let span = match (&window.start, &window.end) {
            (Some(start), Some(end)) => format!(" ({start} – {end})"),
            _ => String::new(),
        };
        field(
            "Window",
            format!("#{}, {} records{span}", window.index, window.records),
        );
    }
    if let Some(decision) = &alert.decision {
        field(
            "Decision",
            format!(
                "{} by policy {}",
                decision.outcome.as_str(),
                decision.policy
            ),
        );
        if let Some(dag) = &decision.dag {
            field("DAG", dag.clone());
        }
    }
    if let Some(run) = &alert.run {
        if let Some(id) = run["id"].as_str() {
            field("Run", id.to_string());
        }
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&alert.summary)}}),
    ];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if !alert.drifted_features.is_empty() {
        let lines: Vec<String> = alert
            .drifted_features
            .iter()
            .map(|f| {
                let method = f.drift["method"].as_str().unwrap_or("score");
                let number =
                    |v: &Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.3e}"));
                format!(
                    "• *{}*: {method} {} (threshold {})",
                    escape(&f.name),
                    number(&f.drift["score"]),
                    number(&f.drift["threshold"])
                )
            })
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Drifted features*\n{}", lines.join("\n"))}
        }));
    }
    if !alert.problems.is_empty() {
        let lines: Vec<String> = alert
            .problems
            .iter()
            .map(|p| format!("• {}", escape(p)))
            .collect();
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}}));
    }
    let mut context =
        vec![json!({"type": "mrkdwn", "text": format!("`{}` · {}", escape(&alert.id), alert.at)})];
    if let Some(link) = &alert.link {
        context.push(json!({"type": "mrkdwn", "text": format!("<{link}|details>")}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    json!({ "text": alert.summary, "blocks": blocks })
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
