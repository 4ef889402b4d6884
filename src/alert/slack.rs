//! Alerts as Slack incoming-webhook messages: a `text` fallback (notifications, clients without
//! blocks) and `blocks` — a header, the summary, fields for the model, stream, window and
//! decision, one line per drifted feature with its score and threshold, and a link.

use serde_json::{json, Value};

use super::{Alert, AlertKind};

/// The Slack message for `alert`.
pub fn message(alert: &Alert) -> Value {
    let header = match &alert.model {
        Some(model) => format!("{}: {model}", title(alert.kind)),
        None => title(alert.kind).to_string(),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&alert.summary)}}),
    ];
    let fields = fields(alert);
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let mut lines = Vec::new();
    if !alert.drifted_features.is_empty() {
        lines.push(format!("*Drifted features*\n{}", drifted(alert).join("\n")));
    }
    if !alert.problems.is_empty() {
        let problems: Vec<String> = alert
            .problems
            .iter()
            .map(|p| format!("• {}", escape(p)))
            .collect();
        lines.push(problems.join("\n"));
    }
    for text in lines {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    let mut context =
        vec![json!({"type": "mrkdwn", "text": format!("`{}` · {}", escape(&alert.id), alert.at)})];
    if let Some(link) = &alert.link {
        context.push(json!({"type": "mrkdwn", "text": format!("<{link}|details>")}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    json!({ "text": alert.summary, "blocks": blocks })
}

/// The header's words for a kind of alert.
fn title(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::DriftDetected => "Drift detected",
        AlertKind::RetrainTriggered => "Retraining triggered",
        AlertKind::RetrainSuppressed => "Retraining suppressed",
        AlertKind::RunStarted => "Retraining run started",
        AlertKind::RunSucceeded => "Retraining run succeeded",
        AlertKind::RunFailed => "Retraining run failed",
        AlertKind::BaselineRotated => "Baseline rotated",
        AlertKind::DataQuality => "Data quality problem",
        AlertKind::ConfigReloadFailed => "Configuration reload refused",
        AlertKind::OffsetsReset => "Offsets reset",
    }
}

/// The model, stream, window, decision, DAG and run, as far as the alert has them.
fn fields(alert: &Alert) -> Vec<Value> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    if let Some(model) = &alert.model {
        fields.push(("Model", model.clone()));
    }
    if let Some(stream) = &alert.stream {
        fields.push(("Stream", stream.clone()));
    }
    if let Some(window) = &alert.window {
        let span = match (&window.start, &window.end) {
            (Some(start), Some(end)) => format!(" ({start} – {end})"),
            _ => String::new(),
        };
        let text = format!("#{}, {} records{span}", window.index, window.records);
        fields.push(("Window", text));
    }
    if let Some(decision) = &alert.decision {
        let text = format!(
            "{} by policy {}",
            decision.outcome.as_str(),
            decision.policy
        );
        fields.push(("Decision", text));
        if let Some(dag) = &decision.dag {
            fields.push(("DAG", dag.clone()));
        }
    }
    if let Some(id) = alert.run.as_ref().and_then(|run| run["id"].as_str()) {
        fields.push(("Run", id.to_string()));
    }
    fields
        .into_iter()
        .map(|(name, value)| json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(&value))}))
        .collect()
}

/// One line per drifted feature: its method, score and threshold.
fn drifted(alert: &Alert) -> Vec<String> {
    let number = |v: &Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.3e}"));
    alert
        .drifted_features
        .iter()
        .map(|f| {
            format!(
                "• *{}*: {} {} (threshold {})",
                escape(&f.name),
                f.drift["method"].as_str().unwrap_or("score"),
                number(&f.drift["score"]),
                number(&f.drift["threshold"])
            )
        })
        .collect()
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
