//! The Airflow executor against real Airflows: 3 (`api = "v2"`) and 2 (`api = "v1"`), each
//! `airflow standalone` from PyPI with SQLite, started by `scripts/test.sh`. URLs in
//! `DRIFTGATE_TEST_AIRFLOW` and `DRIFTGATE_TEST_AIRFLOW2`, their homes in `…_HOME`. Without them
//! a test says so and passes locally; under CI it fails.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use driftgate::config::dags::{validate, RawDag};
use driftgate::dag::executor::execute;
use driftgate::dag::run_id;
use driftgate::store::{RunRequest, RunStatus, Store, StoreUrl, TaskStatus};

fn airflow(variable: &str) -> Option<(String, String)> {
    match (
        std::env::var(variable),
        std::env::var(format!("{variable}_HOME")),
    ) {
        (Ok(url), Ok(home)) => Some((url, home)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{variable} is not set under CI: run the tests through scripts/test.sh")
        }
        _ => {
            eprintln!("{variable} is not set: Airflow test not run (use scripts/test.sh)");
            None
        }
    }
}

/// How the test reads a DAG run's list, as the API version wants it.
enum Api {
    /// Airflow 3: a token from `/auth/token` with standalone's generated password.
    V2,
    /// Airflow 2: basic auth with standalone's admin password.
    V1,
}

impl Api {
    fn password_file(&self, home: &str) -> String {
        match self {
            Api::V2 => format!("{home}/simple_auth_manager_passwords.json.generated"),
            Api::V1 => format!("{home}/standalone_admin_password.txt"),
        }
    }

    fn authorization(&self, url: &str, home: &str) -> String {
        let text = std::fs::read_to_string(self.password_file(home)).unwrap();
        match self {
            Api::V2 => {
                let password: serde_json::Value = serde_json::from_str(&text).unwrap();
                let token: serde_json::Value = reqwest::blocking::Client::new()
                    .post(format!("{url}/auth/token"))
                    .json(&serde_json::json!({"username": "admin", "password": password["admin"]}))
                    .send()
                    .and_then(|r| r.error_for_status())
                    .unwrap()
                    .json()
                    .unwrap();
                format!("Bearer {}", token["access_token"].as_str().unwrap())
            }
            Api::V1 => {
                use base64::Engine as _;
                let pair = format!("admin:{}", text.trim());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Api::V2 => "v2",
            Api::V1 => "v1",
        }
    }
}

fn a_dag_runs_once_per_decision_and_completes(url: &str, home: &str, api: Api) {
    #[derive(serde::Deserialize)]
    struct File {
        dags: Vec<RawDag>,
    }
    let file: File = toml::from_str(&format!(
        r#"
[[dags]]
name = "retrain-on-airflow"
airflow = {{ url = "{url}", dag_id = "driftgate_retrain", api = "{}", password_file = "{}", poll = "1s", timeout = "5m" }}
"#,
        api.name(),
        api.password_file(home)
    ))
    .unwrap();
    let mut problems = driftgate::config::problems::Problems::default();
    let dags = validate(
        &[(String::new(), 0, file.dags[0].clone())],
        &BTreeSet::new(),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let dag = &dags[0];

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&StoreUrl::sqlite(dir.path().join("store.db"))).unwrap();
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
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let tasks = store.run_tasks(&request.id).unwrap();
    assert_eq!(tasks[0].task, "airflow:driftgate_retrain");
    assert_eq!(tasks[0].status, TaskStatus::Succeeded);
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
    assert_eq!(
        store.run(&request.id).unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    let runs: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!(
            "{url}/api/{}/dags/driftgate_retrain/dagRuns?limit=100",
            api.name()
        ))
        .header("Authorization", api.authorization(url, home))
        .send()
        .and_then(|r| r.error_for_status())
        .unwrap()
        .json()
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

#[test]
fn a_dag_runs_on_airflow_3_once_per_decision_and_completes() {
    let Some((url, home)) = airflow("DRIFTGATE_TEST_AIRFLOW") else {
        return;
    };
    a_dag_runs_once_per_decision_and_completes(&url, &home, Api::V2);
}

#[test]
fn a_dag_runs_on_airflow_2_once_per_decision_and_completes() {
    let Some((url, home)) = airflow("DRIFTGATE_TEST_AIRFLOW2") else {
        return;
    };
    a_dag_runs_once_per_decision_and_completes(&url, &home, Api::V1);
}
