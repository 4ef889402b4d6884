//! The Airflow executor against a real Airflow 3 (`airflow standalone` from PyPI with SQLite,
//! started by `scripts/test.sh`; URL in `DRIFTGATE_TEST_AIRFLOW`, its home in
//! `DRIFTGATE_TEST_AIRFLOW_HOME`). Without them the test says so and passes locally; under CI it
//! fails.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use driftgate::config::dags::{validate, RawDag};
use driftgate::dag::executor::{execute, run_id};
use driftgate::store::{RunRequest, Store};

fn airflow() -> Option<(String, String)> {
    match (
        std::env::var("DRIFTGATE_TEST_AIRFLOW"),
        std::env::var("DRIFTGATE_TEST_AIRFLOW_HOME"),
    ) {
        (Ok(url), Ok(home)) => Some((url, home)),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "DRIFTGATE_TEST_AIRFLOW is not set under CI: run the tests through scripts/test.sh"
            )
        }
        _ => {
            eprintln!(
                "DRIFTGATE_TEST_AIRFLOW is not set: Airflow test not run (use scripts/test.sh)"
            );
            None
        }
    }
}

#[test]
fn a_dag_runs_on_airflow_once_per_decision_and_completes() {
    let Some((url, home)) = airflow() else { return };
    #[derive(serde::Deserialize)]
    struct File {
        dags: Vec<RawDag>,
    }
    let file: File = toml::from_str(&format!(
        r#"
[[dags]]
name = "retrain-on-airflow"
airflow = {{ url = "{url}", dag_id = "driftgate_retrain", api = "v2", password_file = "{home}/simple_auth_manager_passwords.json.generated", poll = "1s", timeout = "5m" }}
"#
    ))
    .unwrap();
    let mut problems = Vec::new();
    let dags = validate(
        &[(String::new(), 0, file.dags[0].clone())],
        &BTreeSet::new(),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let dag = &dags[0];

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store.db")).unwrap();
    let key = format!("fraud-drift/fraud/payments/{}", std::process::id());
    let request = RunRequest {
        id: run_id(&key),
        key,
        model: "fraud".into(),
        dag: dag.name.clone(),
        stream: "payments".into(),
        window: Some(7),
        baseline: Some("b1".into()),
        drifted_features: vec!["amount".into()],
        decision: serde_json::json!({"policy": "fraud-drift", "outcome": "triggered"}),
        window_file: None,
        records_file: None,
    };
    assert!(store.queue_run(&request).unwrap());
    execute(&store, dir.path(), dag, &request, &AtomicBool::new(false));
    let run = store.run(&request.id).unwrap().unwrap();
    assert_eq!(run.status, "succeeded", "{:?}", run.error);
    let tasks = store.run_tasks(&request.id).unwrap();
    assert_eq!(tasks[0].task, "airflow:driftgate_retrain");
    assert_eq!(tasks[0].status, "succeeded");
    assert!(tasks[0].reason.contains("succeeded"));
    // Airflow's task saw the decision in its conf.
    let conf: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{home}/driftgate-runs/{}.json", request.id)).unwrap(),
    )
    .unwrap();
    assert_eq!(conf["model"], "fraud");
    assert_eq!(conf["drifted_features"], serde_json::json!(["amount"]));
    assert_eq!(conf["decision"]["policy"], "fraud-drift");

    // The same run again (as after a restart): Airflow answers 409, it is followed, not
    // triggered twice.
    execute(&store, dir.path(), dag, &request, &AtomicBool::new(false));
    let tasks = store.run_tasks(&request.id).unwrap();
    assert_eq!(store.run(&request.id).unwrap().unwrap().status, "succeeded");
    let password: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{home}/simple_auth_manager_passwords.json.generated"
        ))
        .unwrap(),
    )
    .unwrap();
    let token: serde_json::Value = ureq::post(&format!("{url}/auth/token"))
        .send_json(serde_json::json!({"username": "admin", "password": password["admin"]}))
        .unwrap()
        .into_json()
        .unwrap();
    let runs: serde_json::Value = ureq::get(&format!(
        "{url}/api/v2/dags/driftgate_retrain/dagRuns?limit=100"
    ))
    .set(
        "Authorization",
        &format!("Bearer {}", token["access_token"].as_str().unwrap()),
    )
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let ours = runs["dag_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dag_run_id"] == request.id.as_str())
        .count();
    assert_eq!(ours, 1, "one DAG run for one decision: {runs}");
    assert_eq!(tasks.len(), 1);
}
