//! Runs a DAG on Airflow: trigger a DAG run whose `dag_run_id` is the driftgate run's id (one
//! per idempotency key) and whose `conf` carries the decision, then poll its state until it
//! finishes. Airflow answering 409 means the DAG run exists (a restart, a retry): it is the
//! same run and is followed, never triggered twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Airflow, AirflowApi, Dag};
use crate::store::{RunRequest, Store};

/// A failure talking to Airflow: worth retrying (transport, 5xx) or not.
enum Failure {
    Retry(String),
    Fatal(String),
}

struct Client<'a> {
    airflow: &'a Airflow,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Client<'_> {
    fn base(&self) -> String {
        let version = match self.airflow.api {
            AirflowApi::V1 => "v1",
            AirflowApi::V2 => "v2",
        };
        format!(
            "{}/api/{version}/dags/{}/dagRuns",
            self.airflow.url, self.airflow.dag_id
        )
    }

    fn authorization(&mut self) -> Result<String, Failure> {
        match self.airflow.api {
            AirflowApi::V1 => {
                use base64::Engine as _;
                let pair = format!("{}:{}", self.airflow.username, self.airflow.password);
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            AirflowApi::V2 => {
                if let Some(token) = &self.token {
                    return Ok(format!("Bearer {token}"));
                }
                let answer = self
                    .agent
                    .post(&format!("{}/auth/token", self.airflow.url))
                    .send_json(json!({"username": self.airflow.username, "password": self.airflow.password}));
                let body: Value = read(answer, "getting a token")?;
                let token = body["access_token"]
                    .as_str()
                    .ok_or_else(|| Failure::Fatal("Airflow gave no access_token".to_string()))?
                    .to_string();
                self.token = Some(token.clone());
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// Triggers the DAG run; Ok also when it already exists.
    fn trigger(&mut self, run_id: &str, conf: &Value) -> Result<&'static str, Failure> {
        let mut body = json!({"dag_run_id": run_id, "conf": conf});
        if self.airflow.api == AirflowApi::V2 {
            // Airflow 3 requires the key (null: now).
            body["logical_date"] = Value::Null;
        }
        let auth = self.authorization()?;
        let answer = self
            .agent
            .post(&self.base())
            .set("Authorization", &auth)
            .send_json(body);
        match answer {
            Ok(_) => Ok("triggered"),
            Err(ureq::Error::Status(409, _)) => Ok("already there (409): the same run"),
            Err(ureq::Error::Status(401, _)) => {
                self.token = None;
                Err(Failure::Retry("HTTP 401: token refreshed".to_string()))
            }
            Err(e) => Err(failure(e, "triggering")),
        }
    }

    fn state(&mut self, run_id: &str) -> Result<String, Failure> {
        let auth = self.authorization()?;
        let answer = self
            .agent
            .get(&format!("{}/{run_id}", self.base()))
            .set("Authorization", &auth)
            .call();
        if let Err(ureq::Error::Status(401, _)) = &answer {
            self.token = None;
            return Err(Failure::Retry("HTTP 401: token refreshed".to_string()));
        }
        let body: Value = read(answer, "reading the run's state")?;
        Ok(body["state"].as_str().unwrap_or("unknown").to_string())
    }
}

fn failure(error: ureq::Error, doing: &str) -> Failure {
    match error {
        ureq::Error::Status(code, response) => {
            let text: String = response
                .into_string()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let message = format!("{doing}: HTTP {code}: {}", text.trim());
            if code == 408 || code == 429 || code >= 500 {
                Failure::Retry(message)
            } else {
                Failure::Fatal(message)
            }
        }
        ureq::Error::Transport(t) => Failure::Retry(format!("{doing}: {t}")),
    }
}

fn read(answer: Result<ureq::Response, ureq::Error>, doing: &str) -> Result<Value, Failure> {
    let response = answer.map_err(|e| failure(e, doing))?;
    response
        .into_json()
        .map_err(|e| Failure::Retry(format!("{doing}: unreadable answer: {e}")))
}

/// Executes `request` on Airflow, recording the run's progress as one task named
/// `airflow:DAG_ID`.
pub fn execute(
    store: &Store,
    dag: &Dag,
    airflow: &Airflow,
    request: &RunRequest,
    stop: &AtomicBool,
) {
    let task = format!("airflow:{}", airflow.dag_id);
    let plan = json!({
        "dag": dag.name,
        "remote": "airflow",
        "url": airflow.url,
        "dag_id": airflow.dag_id,
        "dag_run_id": request.id,
        "drifted": request.drifted_features,
    });
    let _ = store.set_run_status(&request.id, "running", Some(&plan), None);
    let conf = json!({
        "driftgate_run_id": request.id,
        "key": request.key,
        "model": request.model,
        "stream": request.stream,
        "window": request.window,
        "baseline": request.baseline,
        "drifted_features": request.drifted_features,
        "window_file": request.window_file,
        "decision": request.decision,
    });
    let mut client = Client {
        airflow,
        agent: ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build(),
        token: None,
    };
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut triggered = None;
    let outcome: Result<(), String> = loop {
        if stop.load(Ordering::SeqCst) {
            // Picked up again after a restart: the trigger then answers 409 and is followed.
            let _ = store.set_run_status(&request.id, "queued", None, None);
            return;
        }
        if started.elapsed() > airflow.timeout {
            break Err(format!(
                "Airflow did not finish the run within {}",
                humantime::format_duration(airflow.timeout)
            ));
        }
        let step = match triggered {
            None => client.trigger(&request.id, &conf).map(|how| {
                tracing::info!(run = %request.id, dag_id = %airflow.dag_id, how, "Airflow DAG run");
                let _ = store.set_task(
                    &request.id,
                    &dag.name,
                    &task,
                    "running",
                    &format!("DAG run {} {how}", request.id),
                    None,
                    None,
                );
                triggered = Some(());
                None
            }),
            Some(()) => client.state(&request.id).map(Some),
        };
        match step {
            Ok(Some(state)) if state == "success" => break Ok(()),
            Ok(Some(state)) if state == "failed" => {
                break Err("the Airflow DAG run failed".to_string())
            }
            Ok(_) => {
                delay = airflow.poll;
            }
            Err(Failure::Retry(message)) => {
                tracing::warn!(run = %request.id, error = %message, "Airflow unavailable; retrying");
                delay = (delay * 2)
                    .min(Duration::from_secs(60))
                    .max(Duration::from_millis(500));
            }
            Err(Failure::Fatal(message)) => break Err(message),
        }
        std::thread::sleep(
            delay
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(100)),
        );
        // Sleep the rest of the delay in short steps, so a stop is noticed.
        let until = Instant::now() + delay.saturating_sub(Duration::from_secs(1));
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    match outcome {
        Ok(()) => {
            let _ = store.set_task(
                &request.id,
                &dag.name,
                &task,
                "succeeded",
                "the Airflow DAG run succeeded",
                None,
                None,
            );
            let _ = store.set_run_status(&request.id, "succeeded", None, None);
        }
        Err(error) => {
            let _ = store.set_task(&request.id, &dag.name, &task, "failed", &error, None, None);
            let _ = store.set_run_status(&request.id, "failed", None, Some(&error));
        }
    }
}
