//! Runs a DAG on Airflow: trigger a DAG run whose `dag_run_id` is the driftgate run's id (one
//! per idempotency key) and whose `conf` carries the decision, then poll its state until it
//! finishes. Airflow answering 409 means the DAG run exists (a restart, a retry): it is the
//! same run and is followed, never triggered twice.

use std::sync::atomic::AtomicBool;

use serde_json::{json, Value};

use super::{Airflow, AirflowApi, Dag};
use crate::store::{RunRequest, Store};

use super::remote::{failure, read, send, RemoteFailure};

struct AirflowClient<'a> {
    airflow: &'a Airflow,
    agent: reqwest::blocking::Client,
    token: Option<String>,
}

impl AirflowClient<'_> {
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

    fn authorization(&mut self) -> Result<String, RemoteFailure> {
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
                let credentials =
                    json!({"username": self.airflow.username, "password": self.airflow.password});
                let answer = send(
                    self.agent
                        .post(format!("{}/auth/token", self.airflow.url))
                        .json(&credentials),
                );
                let body: Value = read(answer, "getting a token")?;
                let token = body["access_token"]
                    .as_str()
                    .ok_or_else(|| {
                        RemoteFailure::Fatal("Airflow gave no access_token".to_string())
                    })?
                    .to_string();
                self.token = Some(token.clone());
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// Triggers the DAG run; Ok also when it already exists.
    fn trigger(&mut self, run_id: &str, conf: &Value) -> Result<&'static str, RemoteFailure> {
        let mut body = json!({"dag_run_id": run_id, "conf": conf});
        if self.airflow.api == AirflowApi::V2 {
            // Airflow 3 requires the key (null: now).
            body["logical_date"] = Value::Null;
        }
        let auth = self.authorization()?;
        let answer = send(
            self.agent
                .post(self.base())
                .header("Authorization", auth)
                .json(&body),
        );
        match answer {
            Ok(_) => Ok("triggered"),
            Err(e) if e.status == Some(409) => Ok("already there (409): the same run"),
            Err(e) if e.status == Some(401) => {
                self.token = None;
                Err(RemoteFailure::Retry(
                    "HTTP 401: token refreshed".to_string(),
                ))
            }
            Err(e) => Err(failure(e, "triggering")),
        }
    }

    fn dag_run_state(&mut self, run_id: &str) -> Result<String, RemoteFailure> {
        let auth = self.authorization()?;
        let answer = send(
            self.agent
                .get(format!("{}/{run_id}", self.base()))
                .header("Authorization", auth),
        );
        if matches!(&answer, Err(e) if e.status == Some(401)) {
            self.token = None;
            return Err(RemoteFailure::Retry(
                "HTTP 401: token refreshed".to_string(),
            ));
        }
        let body: Value = read(answer, "reading the run's state")?;
        Ok(body["state"].as_str().unwrap_or("unknown").to_string())
    }
}

impl super::remote::Orchestrator for AirflowClient<'_> {
    fn task_name(&self) -> String {
        format!("airflow:{}", self.airflow.dag_id)
    }

    fn plan(&self, request: &RunRequest) -> Value {
        json!({
            "remote": "airflow",
            "url": self.airflow.url,
            "dag_id": self.airflow.dag_id,
            "dag_run_id": request.id,
        })
    }

    fn submit(
        &mut self,
        request: &RunRequest,
        conf: &Value,
    ) -> Result<String, super::remote::RemoteFailure> {
        self.trigger(&request.id, conf)
            .map(|how| format!("DAG run {} {how}", request.id))
    }

    fn state(
        &mut self,
        request: &RunRequest,
    ) -> Result<super::remote::RemoteState, super::remote::RemoteFailure> {
        use super::remote::RemoteState;
        Ok(match self.dag_run_state(&request.id)?.as_str() {
            "success" => RemoteState::Succeeded,
            "failed" => RemoteState::Failed("the Airflow DAG run failed".to_string()),
            _ => RemoteState::Running,
        })
    }
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
    let mut client = AirflowClient {
        airflow,
        agent: super::remote::http_client(),
        token: None,
    };
    super::remote::execute(
        store,
        dag,
        &mut client,
        request,
        stop,
        airflow.poll,
        airflow.timeout,
    );
}
