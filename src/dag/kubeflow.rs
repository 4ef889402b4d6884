//! Kubeflow Pipelines: create a run of a pipeline version (`POST /apis/v2beta1/runs`) whose
//! display name is the driftgate run's id and whose runtime parameters carry the run's details;
//! poll `GET /apis/v2beta1/runs/{run_id}` for its `state`. Kubeflow assigns run ids itself, so
//! before creating, the runs of the experiment are searched for that display name: a restart
//! follows the run it already created.

use serde_json::{json, Value};

use super::remote::{read, send, Orchestrator, RemoteFailure, RemoteState};
use super::Kubeflow;
use crate::store::RunRequest;

/// A Kubeflow Pipelines client for one pipeline version.
pub struct KubeflowClient<'a> {
    /// Where and what.
    pub kubeflow: &'a Kubeflow,
    /// HTTP.
    pub agent: reqwest::blocking::Client,
    /// The Kubeflow run id, once known.
    pub run_id: Option<String>,
}

impl KubeflowClient<'_> {
    fn request(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.kubeflow.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The run already created for `name`, if any.
    fn find(&self, name: &str) -> Result<Option<String>, RemoteFailure> {
        let filter = json!({"predicates": [
            {"key": "display_name", "operation": "EQUALS", "string_value": name}
        ]})
        .to_string();
        let mut query = vec![("filter", filter.as_str()), ("page_size", "10")];
        if let Some(experiment) = &self.kubeflow.experiment_id {
            query.push(("experiment_id", experiment));
        }
        let call = self
            .agent
            .get(format!("{}/apis/v2beta1/runs", self.kubeflow.url))
            .query(&query);
        let found = read(send(self.request(call)), "listing runs")?;
        Ok(found["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["display_name"] == name))
            .and_then(|r| r["run_id"].as_str())
            .map(str::to_string))
    }
}

impl Orchestrator for KubeflowClient<'_> {
    fn task_name(&self) -> String {
        format!("kubeflow:{}", self.kubeflow.pipeline_id)
    }

    fn plan(&self, request: &RunRequest) -> Value {
        json!({"remote": "kubeflow", "url": self.kubeflow.url,
               "pipeline_id": self.kubeflow.pipeline_id,
               "pipeline_version_id": self.kubeflow.pipeline_version_id,
               "display_name": request.id})
    }

    fn submit(&mut self, request: &RunRequest, conf: &Value) -> Result<String, RemoteFailure> {
        if let Some(existing) = self.find(&request.id)? {
            self.run_id = Some(existing.clone());
            return Ok(format!(
                "Kubeflow run {existing} already there: the same run"
            ));
        }
        let mut body = json!({
            "display_name": request.id,
            "description": format!("driftgate run for model {} (key {})", request.model, request.key),
            "pipeline_version_reference": {
                "pipeline_id": self.kubeflow.pipeline_id,
                "pipeline_version_id": self.kubeflow.pipeline_version_id,
            },
            "runtime_config": {"parameters": {
                "driftgate_run_id": request.id,
                "model": request.model,
                "drifted_features": request.drifted_features.join(","),
                "conf": conf.to_string(),
            }},
        });
        if let Some(experiment) = &self.kubeflow.experiment_id {
            body["experiment_id"] = json!(experiment);
        }
        let url = format!("{}/apis/v2beta1/runs", self.kubeflow.url);
        let created = read(
            send(self.request(self.agent.post(&url).json(&body))),
            "creating the run",
        )?;
        let id = created["run_id"].as_str().ok_or_else(|| {
            RemoteFailure::Fatal("Kubeflow answered without a run_id".to_string())
        })?;
        self.run_id = Some(id.to_string());
        Ok(format!("Kubeflow run {id} created"))
    }

    fn state(&mut self, request: &RunRequest) -> Result<RemoteState, RemoteFailure> {
        let id = match &self.run_id {
            Some(id) => id.clone(),
            None => self
                .find(&request.id)?
                .ok_or_else(|| RemoteFailure::Fatal("the Kubeflow run disappeared".to_string()))?,
        };
        let url = format!("{}/apis/v2beta1/runs/{id}", self.kubeflow.url);
        let run = read(send(self.request(self.agent.get(&url))), "reading the run")?;
        Ok(match run["state"].as_str().unwrap_or("") {
            "SUCCEEDED" => RemoteState::Succeeded,
            state @ ("FAILED" | "CANCELED" | "SKIPPED") => RemoteState::Failed(format!(
                "the Kubeflow run ended {state}: {}",
                run["error"]["message"].as_str().unwrap_or("")
            )),
            _ => RemoteState::Running,
        })
    }
}
