//! A DAG that runs on an orchestrator: Airflow, Argo Workflows or Kubeflow Pipelines.

use std::time::Duration;

use super::duration;
use super::raw::{RawAirflow, RawArgo, RawKubeflow};
use crate::config::problems::Problems;

pub(super) fn airflow(
    raw: &RawAirflow,
    key: &str,
    problems: &mut Problems,
) -> Option<crate::dag::Remote> {
    use crate::dag::{Airflow, AirflowApi, Remote};
    let before = problems.len();
    url_ok(&raw.url, key, problems);
    if raw.dag_id.trim().is_empty() {
        problems.add(format!("{key}.dag_id"), "is empty");
    }
    let api = match raw.api.as_deref().unwrap_or("v2") {
        "v2" => AirflowApi::V2,
        "v1" => AirflowApi::V1,
        other => {
            problems.add(
                format!("{key}.api"),
                format!("{other:?}: use v2 (Airflow 3) or v1 (Airflow 2)"),
            );
            AirflowApi::V2
        }
    };
    let username = raw.username.clone().unwrap_or_else(|| "admin".to_string());
    let password = match (&raw.password_env, &raw.password_file) {
        (Some(var), None) => std::env::var(var)
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                problems.add(
                    format!("{key}.password_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => Some(password_from_file(&text, &username)),
            Err(err) => {
                problems.add(
                    format!("{key}.password_file"),
                    format!("cannot read {file}: {err}"),
                );
                None
            }
        },
        _ => {
            problems.add(key, "set one of `password_env` or `password_file`");
            None
        }
    };
    let (poll, timeout) = poll_and_timeout(&raw.poll, &raw.timeout, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(Remote::Airflow(Airflow {
        url: raw.url.trim_end_matches('/').to_string(),
        dag_id: raw.dag_id.clone(),
        api,
        username,
        password: password?,
        poll: poll?,
        timeout: timeout?,
    }))
}

/// An orchestrator's `poll` (default 5 s) and `timeout` (default 6 h).
fn poll_and_timeout(
    poll: &Option<String>,
    timeout: &Option<String>,
    key: &str,
    problems: &mut Problems,
) -> (Option<Duration>, Option<Duration>) {
    (
        duration(
            poll.as_deref().unwrap_or("5s"),
            &format!("{key}.poll"),
            problems,
        ),
        duration(
            timeout.as_deref().unwrap_or("6h"),
            &format!("{key}.timeout"),
            problems,
        ),
    )
}

fn url_ok(url: &str, key: &str, problems: &mut Problems) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        problems.add(format!("{key}.url"), "must be an http:// or https:// URL");
    }
}

fn token(var: &Option<String>, key: &str, problems: &mut Problems) -> Option<String> {
    let var = var.as_ref()?;
    let token = std::env::var(var).ok().filter(|t| !t.is_empty());
    if token.is_none() {
        problems.add(
            format!("{key}.token_env"),
            format!("environment variable {var} is not set"),
        );
    }
    token
}

pub(super) fn argo(
    raw: &RawArgo,
    key: &str,
    problems: &mut Problems,
) -> Option<crate::dag::Remote> {
    let before = problems.len();
    url_ok(&raw.url, key, problems);
    if raw.template.trim().is_empty() {
        problems.add(format!("{key}.template"), "is empty");
    }
    let token = token(&raw.token_env, key, problems);
    let (poll, timeout) = poll_and_timeout(&raw.poll, &raw.timeout, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(crate::dag::Remote::Argo(crate::dag::Argo {
        url: raw.url.trim_end_matches('/').to_string(),
        namespace: raw.namespace.clone().unwrap_or_else(|| "argo".to_string()),
        template: raw.template.clone(),
        token,
        poll: poll?,
        timeout: timeout?,
    }))
}

pub(super) fn kubeflow(
    raw: &RawKubeflow,
    key: &str,
    problems: &mut Problems,
) -> Option<crate::dag::Remote> {
    let before = problems.len();
    url_ok(&raw.url, key, problems);
    for (field, value) in [
        ("pipeline_id", &raw.pipeline_id),
        ("pipeline_version_id", &raw.pipeline_version_id),
    ] {
        if value.trim().is_empty() {
            problems.add(format!("{key}.{field}"), "is empty");
        }
    }
    let token = token(&raw.token_env, key, problems);
    let (poll, timeout) = poll_and_timeout(&raw.poll, &raw.timeout, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(crate::dag::Remote::Kubeflow(crate::dag::Kubeflow {
        url: raw.url.trim_end_matches('/').to_string(),
        pipeline_id: raw.pipeline_id.clone(),
        pipeline_version_id: raw.pipeline_version_id.clone(),
        experiment_id: raw.experiment_id.clone(),
        token,
        poll: poll?,
        timeout: timeout?,
    }))
}

/// A password file's password: the file's text, or the user's entry when it is a JSON object
/// (Airflow 3's simple auth manager writes `{"admin": "..."}`).
fn password_from_file(text: &str, user: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get(user).and_then(|p| p.as_str()).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
}
