//! Running a DAG on an orchestrator: submit once per run (the run's id names it there, so a
//! restart finds the same run instead of submitting another), then poll its state until it
//! finishes, retrying transport errors and 5xx with backoff. The run is recorded as one task
//! named after the orchestrator's DAG or template.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Dag;
use crate::store::{RunRequest, RunStatus, Store, TaskStatus};

/// A failure talking to an orchestrator.
pub enum RemoteFailure {
    /// Worth retrying (transport, 408, 429, 5xx).
    Retry(String),
    /// Not worth retrying.
    Fatal(String),
}

/// Where a remote run is.
pub enum RemoteState {
    /// Not finished.
    Running,
    /// Done, successfully.
    Succeeded,
    /// Done, failed (why).
    Failed(String),
}

/// One orchestrator's API.
pub trait Orchestrator {
    /// The task name the run is recorded under.
    fn task_name(&self) -> String;
    /// What the run's plan shows.
    fn plan(&self, request: &RunRequest) -> Value;
    /// Submits the run (or finds it already submitted); a sentence for the task's reason.
    fn submit(&mut self, request: &RunRequest, conf: &Value) -> Result<String, RemoteFailure>;
    /// The submitted run's state.
    fn state(&mut self, request: &RunRequest) -> Result<RemoteState, RemoteFailure>;
}

/// The HTTP client of the remote orchestrators: 30 s per request.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("driftgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// An exchange that did not end in a 2xx: the status (none when nothing came back) and what
/// went wrong.
#[derive(Debug)]
pub struct HttpError {
    /// The status, when the server answered.
    pub status: Option<u16>,
    /// The transport error, or the start of the answer's body.
    pub message: String,
}

/// Sends `request`: the response when its status is 2xx, else what the server said.
pub fn send(
    request: reqwest::blocking::RequestBuilder,
) -> Result<reqwest::blocking::Response, HttpError> {
    let response = request.send().map_err(|e| HttpError {
        status: None,
        message: crate::redact::secrets(&e.to_string()),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text: String = response
        .text()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    Err(HttpError {
        status: Some(status.as_u16()),
        message: crate::redact::secrets(text.trim()),
    })
}

/// The failure an unsuccessful exchange is: worth retrying for no answer, 408, 429 and 5xx.
pub fn failure(error: HttpError, doing: &str) -> RemoteFailure {
    match error.status {
        Some(code) => {
            let message = format!("{doing}: HTTP {code}: {}", error.message);
            if code == 408 || code == 429 || code >= 500 {
                RemoteFailure::Retry(message)
            } else {
                RemoteFailure::Fatal(message)
            }
        }
        None => RemoteFailure::Retry(format!("{doing}: {}", error.message)),
    }
}

/// A JSON answer, or the failure.
pub fn read(
    answer: Result<reqwest::blocking::Response, HttpError>,
    doing: &str,
) -> Result<Value, RemoteFailure> {
    let response = answer.map_err(|e| failure(e, doing))?;
    response.json().map_err(|e| {
        let error = crate::redact::secrets(&e.to_string());
        RemoteFailure::Retry(format!("{doing}: unreadable answer: {error}"))
    })
}

/// What every orchestrator receives about the run: its parameters or `conf`.
pub fn conf(request: &RunRequest) -> Value {
    json!({
        "driftgate_run_id": request.id,
        "key": request.key,
        "model": request.model,
        "stream": request.stream,
        "window": request.window,
        "baseline": request.baseline,
        "drifted_features": request.drifted_features,
        "window_file": request.window_file,
        "records_file": request.records_file,
        "decision": request.decision,
    })
}

/// Runs `request` on `remote` to its end (or until `stop`, leaving it queued to be followed
/// after a restart).
pub fn execute(
    store: &Store,
    dag: &Dag,
    remote: &mut dyn Orchestrator,
    request: &RunRequest,
    stop: &AtomicBool,
    poll: Duration,
    timeout: Duration,
) {
    let task = remote.task_name();
    let mut plan = remote.plan(request);
    plan["dag"] = json!(dag.name);
    plan["drifted"] = json!(request.drifted_features);
    let recorder = super::recorder::Recorder::new(store, &request.id, &dag.name);
    recorder.run_status(RunStatus::Running, Some(&plan), None);
    let conf = conf(request);
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut submitted = false;
    let outcome: Result<(), String> = loop {
        if stop.load(Ordering::SeqCst) {
            recorder.run_status(RunStatus::Queued, None, None);
            return;
        }
        if started.elapsed() > timeout {
            break Err(format!(
                "the run did not finish within {}",
                humantime::format_duration(timeout)
            ));
        }
        let step = if submitted {
            remote.state(request)
        } else {
            remote.submit(request, &conf).map(|how| {
                tracing::info!(run = %request.id, task = %task, how = %how, "remote run submitted");
                recorder.task(&task, TaskStatus::Running, &how, None, None);
                submitted = true;
                RemoteState::Running
            })
        };
        match step {
            Ok(RemoteState::Succeeded) => break Ok(()),
            Ok(RemoteState::Failed(why)) => break Err(why),
            Ok(RemoteState::Running) => delay = poll,
            Err(RemoteFailure::Retry(message)) => {
                tracing::warn!(run = %request.id, error = %message, "orchestrator unavailable; retrying");
                delay = (delay * 2).clamp(Duration::from_millis(500), Duration::from_secs(60));
            }
            Err(RemoteFailure::Fatal(message)) => break Err(message),
        }
        // Sleeps in short steps, so a stop is noticed.
        let until = Instant::now() + delay;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(delay));
        }
    };
    match outcome {
        Ok(()) => {
            let done = "the remote run succeeded";
            recorder.task(&task, TaskStatus::Succeeded, done, None, None);
            recorder.run_status(RunStatus::Succeeded, None, None);
        }
        Err(error) => {
            recorder.task(&task, TaskStatus::Failed, &error, None, None);
            recorder.run_status(RunStatus::Failed, None, Some(&error));
        }
    }
}
