//! The Argo Workflows, Kubeflow Pipelines and Airflow 2 (`api = "v1"`) executors against a
//! local HTTP server that checks each request against the projects' documented API shapes and
//! answers as they do.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use common::receiver::Receiver;
use driftgate::config::dags::{validate, RawDag};
use driftgate::dag::executor::execute;
use driftgate::dag::run_id;
use driftgate::dag::Dag;
use driftgate::store::{RunRequest, RunStatus, Store, StoreUrl};
use serde_json::json;

fn dag(text: &str) -> Dag {
    #[derive(serde::Deserialize)]
    struct File {
        dags: Vec<RawDag>,
    }
    let file: File = toml::from_str(text).unwrap();
    let mut problems = driftgate::config::problems::Problems::default();
    let dags = validate(
        &[(String::new(), 0, file.dags[0].clone())],
        &BTreeSet::new(),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    dags.into_iter().next().unwrap()
}

fn request(dag: &Dag) -> RunRequest {
    let key = "fraud-drift/fraud/payments/3".to_string();
    RunRequest {
        id: run_id(&key),
        key,
        model: "fraud".into(),
        dag: dag.name.clone(),
        stream: "payments".into(),
        window: Some(3),
        baseline: Some("b1".into()),
        drifted_features: vec!["amount".into(), "country".into()],
        decision: json!({"policy": "fraud-drift"}),
        window_file: None,
        records_file: None,
    }
}

/// Runs `request` to its end; its status and its one task's reason.
fn run(store: &mut Store, dag: &Dag, request: &RunRequest) -> (RunStatus, String) {
    let _ = store.queue_run(request);
    execute(
        store,
        std::path::Path::new("/nonexistent"),
        dag,
        request,
        &AtomicBool::new(false),
    );
    let run = store.run(&request.id).unwrap().unwrap();
    let task = store.run_tasks(&request.id).unwrap().remove(0);
    (run.status, task.reason)
}

#[test]
fn argo_submits_the_template_once_named_after_the_run_and_follows_its_phase() {
    let server = Receiver::start();
    let dag = dag(&format!(
        r#"
[[dags]]
name = "retrain"
argo = {{ url = "{}", namespace = "ml", template = "retrain-fraud", poll = "10ms" }}
"#,
        server.url("")
    ));
    let request = request(&dag);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&StoreUrl::sqlite(dir.path().join("s.db"))).unwrap();
    server.respond_json(&[
        (
            200,
            json!({"metadata": {"name": request.id, "namespace": "ml"}}),
        ),
        (
            200,
            json!({"metadata": {"name": request.id}, "status": {"phase": "Running"}}),
        ),
        (
            200,
            json!({"metadata": {"name": request.id}, "status": {"phase": "Succeeded"}}),
        ),
    ]);
    assert_eq!(run(&mut store, &dag, &request).0, RunStatus::Succeeded);
    let requests = server.requests();
    assert_eq!(
        requests[0].line,
        "POST /api/v1/workflows/ml/submit HTTP/1.1"
    );
    let submit = requests[0].json();
    assert_eq!(submit["resourceKind"], "WorkflowTemplate");
    assert_eq!(submit["resourceName"], "retrain-fraud");
    assert_eq!(submit["namespace"], "ml");
    assert_eq!(submit["submitOptions"]["name"], request.id.as_str());
    let parameters: Vec<&str> = submit["submitOptions"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(parameters.contains(&"model=fraud"), "{parameters:?}");
    assert!(parameters.contains(&"drifted_features=amount,country"));
    let line = format!("GET /api/v1/workflows/ml/{} HTTP/1.1", request.id);
    assert_eq!(requests[1].line, line);
    assert_eq!(requests.len(), 3);

    // After a restart the submit answers 409 (AlreadyExists): the same workflow is followed.
    server.respond_json(&[
        (
            409,
            json!({"code": 6, "message": "workflows.argoproj.io already exists"}),
        ),
        (
            200,
            json!({"status": {"phase": "Failed", "message": "train exited 1"}}),
        ),
    ]);
    let (status, reason) = run(&mut store, &dag, &request);
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(reason, "the Argo workflow ended Failed: train exited 1");
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn kubeflow_creates_one_run_per_decision_and_finds_it_again_after_a_restart() {
    let server = Receiver::start();
    let dag = dag(&format!(
        r#"
[[dags]]
name = "retrain"
kubeflow = {{ url = "{}", pipeline_id = "p-1", pipeline_version_id = "v-2", experiment_id = "e-3", poll = "10ms" }}
"#,
        server.url("")
    ));
    let request = request(&dag);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&StoreUrl::sqlite(dir.path().join("s.db"))).unwrap();
    server.respond_json(&[
        (200, json!({})),
        (
            200,
            json!({"run_id": "kf-9", "display_name": request.id, "state": "PENDING"}),
        ),
        (200, json!({"run_id": "kf-9", "state": "RUNNING"})),
        (200, json!({"run_id": "kf-9", "state": "SUCCEEDED"})),
    ]);
    assert_eq!(run(&mut store, &dag, &request).0, RunStatus::Succeeded);
    let requests = server.requests();
    assert!(
        requests[0]
            .line
            .starts_with("GET /apis/v2beta1/runs?filter=")
            && requests[0].line.contains("display_name")
            && requests[0].line.contains("experiment_id=e-3"),
        "{}",
        requests[0].line
    );
    assert_eq!(requests[1].line, "POST /apis/v2beta1/runs HTTP/1.1");
    let created = requests[1].json();
    assert_eq!(created["display_name"], request.id.as_str());
    assert_eq!(created["experiment_id"], "e-3");
    assert_eq!(created["pipeline_version_reference"]["pipeline_id"], "p-1");
    assert_eq!(
        created["pipeline_version_reference"]["pipeline_version_id"],
        "v-2"
    );
    let parameters = &created["runtime_config"]["parameters"];
    assert_eq!(parameters["model"], "fraud");
    assert_eq!(parameters["drifted_features"], "amount,country");
    let conf: serde_json::Value =
        serde_json::from_str(parameters["conf"].as_str().unwrap()).unwrap();
    assert_eq!(conf["key"], request.key.as_str());
    assert_eq!(requests[2].line, "GET /apis/v2beta1/runs/kf-9 HTTP/1.1");

    // A restart: the run is found by its display name, not created again.
    server.respond_json(&[
        (
            200,
            json!({"runs": [{"run_id": "kf-9", "display_name": request.id}]}),
        ),
        (200, json!({"run_id": "kf-9", "state": "SUCCEEDED"})),
    ]);
    let (status, _) = run(&mut store, &dag, &request);
    assert_eq!(status, RunStatus::Succeeded);
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.line.starts_with("POST"))
        .count();
    assert_eq!(posts, 1, "one Kubeflow run for one decision");
}

#[test]
fn airflow_2_triggers_with_basic_auth_on_api_v1_once_and_follows_the_state() {
    let server = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let dag = dag(&format!(
        r#"
[[dags]]
name = "retrain"
airflow = {{ url = "{}", dag_id = "retrain_fraud", api = "v1", username = "ml", password_file = "{}", poll = "10ms" }}
"#,
        server.url(""),
        password.display()
    ));
    let request = request(&dag);
    let mut store = Store::open(&StoreUrl::sqlite(dir.path().join("s.db"))).unwrap();
    // Airflow 2's answers: the created DAG run, then its state while it runs and at its end.
    server.respond_json(&[
        (
            200,
            json!({"dag_id": "retrain_fraud", "dag_run_id": request.id, "state": "queued"}),
        ),
        (200, json!({"dag_run_id": request.id, "state": "running"})),
        (200, json!({"dag_run_id": request.id, "state": "success"})),
    ]);
    assert_eq!(run(&mut store, &dag, &request).0, RunStatus::Succeeded);
    let requests = server.requests();
    assert_eq!(
        requests[0].line,
        "POST /api/v1/dags/retrain_fraud/dagRuns HTTP/1.1"
    );
    // Basic auth with the file's password (its trailing newline dropped): "ml:s3cret".
    assert_eq!(
        requests[0].headers.get("authorization").map(String::as_str),
        Some("Basic bWw6czNjcmV0")
    );
    let trigger = requests[0].json();
    assert_eq!(trigger["dag_run_id"], request.id.as_str());
    assert!(
        trigger.get("logical_date").is_none(),
        "Airflow 2 takes no null logical_date: {trigger}"
    );
    assert_eq!(trigger["conf"]["model"], "fraud");
    assert_eq!(
        trigger["conf"]["drifted_features"],
        json!(["amount", "country"])
    );
    let state = format!(
        "GET /api/v1/dags/retrain_fraud/dagRuns/{} HTTP/1.1",
        request.id
    );
    assert_eq!(requests[1].line, state);
    assert_eq!(requests.len(), 3);

    // A restart: 409 Conflict is the same DAG run, followed and never triggered again.
    server.respond_json(&[
        (
            409,
            json!({"title": "Conflict", "status": 409, "detail": "DAGRun already exists"}),
        ),
        (200, json!({"dag_run_id": request.id, "state": "failed"})),
    ]);
    let (status, _) = run(&mut store, &dag, &request);
    assert_eq!(status, RunStatus::Failed);
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[4].line, state);
}
