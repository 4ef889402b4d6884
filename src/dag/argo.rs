//! Argo Workflows: submit a workflow from a WorkflowTemplate through the Argo Server API
//! (`POST /api/v1/workflows/{namespace}/submit`), named after the driftgate run (a repeat
//! answers 409: the same workflow), with the run's details as parameters; poll
//! `GET /api/v1/workflows/{namespace}/{name}` for `status.phase`.

use serde_json::{json, Value};

use super::remote::{failure, read, send, Orchestrator, RemoteFailure, RemoteState};
use super::Argo;
use crate::store::RunRequest;

/// An Argo Server client for one template.
pub struct ArgoClient<'a> {
    /// Where and what.
    pub argo: &'a Argo,
    /// HTTP.
    pub agent: reqwest::blocking::Client,
}

impl ArgoClient<'_> {
    fn request(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.argo.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

impl Orchestrator for ArgoClient<'_> {
    fn task_name(&self) -> String {
        format!("argo:{}", self.argo.template)
    }

    fn plan(&self, request: &RunRequest) -> Value {
        json!({"remote": "argo", "url": self.argo.url, "namespace": self.argo.namespace,
               "template": self.argo.template, "workflow": request.id})
    }

    fn submit(&mut self, request: &RunRequest, conf: &Value) -> Result<String, RemoteFailure> {
        let parameters = vec![
            format!("driftgate_run_id={}", request.id),
            format!("model={}", request.model),
            format!("drifted_features={}", request.drifted_features.join(",")),
            format!("conf={conf}"),
        ];
        let body = json!({
            "namespace": self.argo.namespace,
            "resourceKind": "WorkflowTemplate",
            "resourceName": self.argo.template,
            "submitOptions": {
                "name": request.id,
                "parameters": parameters,
                "labels": format!("driftgate.io/model={}", request.model),
            }
        });
        let url = format!(
            "{}/api/v1/workflows/{}/submit",
            self.argo.url, self.argo.namespace
        );
        match send(self.request(self.agent.post(&url).json(&body))) {
            Ok(_) => Ok(format!("workflow {} submitted", request.id)),
            Err(e) if e.status == Some(409) => Ok(format!(
                "workflow {} already there (409): the same run",
                request.id
            )),
            Err(e) => Err(failure(e, "submitting the workflow")),
        }
    }

    fn state(&mut self, request: &RunRequest) -> Result<RemoteState, RemoteFailure> {
        let url = format!(
            "{}/api/v1/workflows/{}/{}",
            self.argo.url, self.argo.namespace, request.id
        );
        let workflow = read(
            send(self.request(self.agent.get(&url))),
            "reading the workflow",
        )?;
        Ok(match workflow["status"]["phase"].as_str().unwrap_or("") {
            "Succeeded" => RemoteState::Succeeded,
            phase @ ("Failed" | "Error") => RemoteState::Failed(format!(
                "the Argo workflow ended {phase}: {}",
                workflow["status"]["message"].as_str().unwrap_or("")
            )),
            _ => RemoteState::Running,
        })
    }
}
