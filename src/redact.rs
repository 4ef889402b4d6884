//! Secrets out of messages: every error that may quote a URL (an HTTP client's, a receiver's
//! answer, a redirect's `Location`) goes through [`secrets`] before it is logged, stored or
//! served by the API.
//!
//! In each URL found in the text:
//! - credentials (`user:password@`) become `***@`;
//! - the query string becomes `?***` (tokens, signatures and API keys live there);
//! - the path of a webhook URL — a known webhook host (Slack, Discord, Microsoft Teams, Zapier,
//!   Telegram bots…), or a path with a `services`, `webhook(s)` or `hooks` segment — keeps only
//!   its segments up to that one, then `/***` (the rest of such a path is the secret).

use url::Url;

/// Hosts whose URL paths are secrets, matched on the host's end.
const WEBHOOK_HOSTS: &[&str] = &[
    "hooks.slack.com",
    "discord.com",
    "discordapp.com",
    "webhook.office.com",
    "outlook.office.com",
    "hooks.zapier.com",
    "api.telegram.org",
    "chat.googleapis.com",
];

/// Path segments after which the rest of a path is a secret.
const WEBHOOK_SEGMENTS: &[&str] = &["services", "webhooks", "webhook", "hooks"];

/// What replaces a secret.
const MASK: &str = "***";

/// `text` with the secrets of every URL in it masked.
pub fn secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = url_start(rest) {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(candidate.len());
        let found = candidate[..end].trim_end_matches(['.', ',', ';', ':']);
        out.push_str(&masked(found));
        rest = &candidate[found.len()..];
    }
    out.push_str(rest);
    out
}

/// Where the next URL (`scheme://`) in `text` starts.
fn url_start(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let at = from + found;
        let scheme_start = text[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        if scheme_start < at && text.as_bytes()[scheme_start].is_ascii_alphabetic() {
            return Some(scheme_start);
        }
        from = at + 3;
    }
    None
}

/// One URL, masked; text that does not parse as a URL is masked after its scheme, whole.
fn masked(text: &str) -> String {
    let Ok(mut url) = Url::parse(text) else {
        let scheme = text.split("://").next().unwrap_or_default();
        return format!("{scheme}://{MASK}");
    };
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_password(None);
        let _ = url.set_username(MASK);
    }
    if url.query().is_some() {
        url.set_query(Some(MASK));
    }
    if let Some(kept) = public_path(&url) {
        url.set_path(&kept);
    }
    url.to_string()
}

/// The path to show instead of a webhook URL's, or `None` when the path is not a secret.
fn public_path(url: &Url) -> Option<String> {
    let segments: Vec<&str> = url.path_segments()?.collect();
    let host = url.host_str().unwrap_or_default();
    let known = WEBHOOK_HOSTS
        .iter()
        .any(|h| host == *h || host.ends_with(&format!(".{h}")));
    let cut = segments
        .iter()
        .position(|s| WEBHOOK_SEGMENTS.contains(&s.to_ascii_lowercase().as_str()))
        .map(|i| i + 1)
        .or(known.then_some(0))?;
    if cut >= segments.len() || segments[cut..].iter().all(|s| s.is_empty()) {
        return None;
    }
    let mut kept: String = segments[..cut].iter().map(|s| format!("/{s}")).collect();
    kept.push('/');
    kept.push_str(MASK);
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::secrets;

    #[test]
    fn issue_21_credentials_queries_and_webhook_paths_are_masked() {
        let cases = [
            (
                "error sending request for url (https://hooks.slack.com/services/T0/B0/XyZ)",
                "error sending request for url (https://hooks.slack.com/services/***)",
            ),
            (
                "POST http://alice:hunter2@10.0.0.5:8080/alerts?token=abc failed",
                "POST http://***@10.0.0.5:8080/alerts?*** failed",
            ),
            (
                "redirects to https://discord.com/api/webhooks/123/tok; configure",
                "redirects to https://discord.com/api/webhooks/***; configure",
            ),
            (
                "https://example.webhook.office.com/webhookb2/abc/IncomingWebhook/def",
                "https://example.webhook.office.com/***",
            ),
            (
                "connect postgres://driftgate:s3cret@db:5432/dg refused",
                "connect postgres://***@db:5432/dg refused",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(secrets(text), expected, "{text}");
        }
    }

    #[test]
    fn issue_21_text_without_secrets_is_unchanged() {
        for text in [
            "HTTP 503: Service Unavailable",
            "POST https://airflow.example/api/v2/dags/retrain/dagRuns: HTTP 500",
            "a:// b",
            "no url here: just words.",
        ] {
            assert_eq!(secrets(text), text);
        }
    }
}
