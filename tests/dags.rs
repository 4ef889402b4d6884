//! The local executor with real child processes (`tests/fixtures/dag/task.py`) and a real
//! SQLite store: parallel branches, retries, timeouts, gates, the cache, idempotency and inert
//! data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use driftgate::config::dags::{validate, RawDag};
use driftgate::dag::executor::execute;
use driftgate::dag::Dag;
use driftgate::store::{RunRequest, RunStatus, Store, StoreUrl, TaskRecord, TaskStatus};

const TASK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dag/task.py");

fn dag(toml_text: &str) -> Dag {
    #[derive(serde::Deserialize)]
    struct File {
        dags: Vec<RawDag>,
    }
    let file: File = toml::from_str(&toml_text.replace("TASK", TASK)).unwrap();
    let features: BTreeSet<String> = ["amount", "country", "age"].map(String::from).into();
    let mut problems = driftgate::config::problems::Problems::default();
    let dags = validate(
        &[(String::new(), 0, file.dags[0].clone())],
        &features,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    dags.into_iter().next().unwrap()
}

/// A run of the fraud model on the payments stream, for window 1.
fn request(id: &str, key: &str, dag: &str) -> RunRequest {
    RunRequest {
        id: id.into(),
        key: key.into(),
        model: "fraud".into(),
        dag: dag.into(),
        stream: "payments".into(),
        window: Some(1),
        baseline: None,
        drifted_features: vec![],
        decision: serde_json::Value::Null,
        window_file: None,
        records_file: None,
    }
}

struct Runs {
    dir: tempfile::TempDir,
    store: Store,
}

impl Runs {
    fn new() -> Runs {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreUrl::sqlite(dir.path().join("store.db"))).unwrap();
        Runs { dir, store }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Queues and executes a run of `dag` for a window where `drifted` drifted.
    fn run(
        &mut self,
        dag: &Dag,
        id: &str,
        drifted: &[&str],
    ) -> (RunStatus, BTreeMap<String, TaskRecord>) {
        let request = RunRequest {
            baseline: Some("b1".into()),
            drifted_features: drifted.iter().map(|s| s.to_string()).collect(),
            ..request(id, &format!("policy/fraud/payments/{id}"), &dag.name)
        };
        assert!(self.store.queue_run(&request).unwrap());
        execute(
            &self.store,
            &self.path("runs"),
            dag,
            &request,
            &AtomicBool::new(false),
        );
        let run = self.store.run(id).unwrap().unwrap();
        let tasks = self
            .store
            .run_tasks(id)
            .unwrap()
            .into_iter()
            .map(|t| (t.task.clone(), t))
            .collect();
        (run.status, tasks)
    }
}

/// `(task, "start"|"end", time)` lines a `--record` file holds.
fn timeline(path: &Path) -> Vec<(String, String, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

fn time_of(events: &[(String, String, f64)], task: &str, what: &str) -> f64 {
    events
        .iter()
        .find(|(t, w, _)| t == task && w == what)
        .unwrap_or_else(|| panic!("{task} {what} in {events:?}"))
        .2
}

#[test]
fn parallel_branches_overlap_and_fan_in_waits_for_both() {
    let mut runs = Runs::new();
    let record = runs.path("timeline");
    let r = record.display();
    let dag = dag(&format!(
        r#"
[[dags]]
name = "fan"
[[dags.tasks]]
name = "left"
run = ["TASK", "--record", "{r}", "--sleep", "0.5"]
[[dags.tasks]]
name = "right"
run = ["TASK", "--record", "{r}", "--sleep", "0.5"]
[[dags.tasks]]
name = "join"
needs = ["left", "right"]
run = ["TASK", "--record", "{r}"]
"#
    ));
    let (status, tasks) = runs.run(&dag, "r1", &["amount"]);
    assert_eq!(status, RunStatus::Succeeded);
    assert!(
        tasks.values().all(|t| t.status == TaskStatus::Succeeded),
        "{tasks:?}"
    );
    let events = timeline(&record);
    let (left, right) = (
        time_of(&events, "left", "start"),
        time_of(&events, "right", "start"),
    );
    assert!(
        left < time_of(&events, "right", "end") && right < time_of(&events, "left", "end"),
        "the branches overlap: {events:?}"
    );
    let join = time_of(&events, "join", "start");
    assert!(join >= time_of(&events, "left", "end") && join >= time_of(&events, "right", "end"));
}

#[test]
fn retries_are_spaced_further_apart_each_time() {
    let mut runs = Runs::new();
    let record = runs.path("timeline");
    let dag = dag(&format!(
        r#"
[[dags]]
name = "flaky"
[[dags.tasks]]
name = "flaky"
run = ["TASK", "--record", "{}", "--fail-first", "3"]
retries = 3
retry_backoff = {{ initial = "200ms", max = "5s" }}
"#,
        record.display()
    ));
    let (status, tasks) = runs.run(&dag, "r1", &[]);
    assert_eq!(status, RunStatus::Succeeded);
    let attempts = &tasks["flaky"].attempts;
    assert_eq!(attempts.len(), 4);
    assert_eq!(
        attempts.iter().map(|a| a.exit_code).collect::<Vec<_>>(),
        [Some(3), Some(3), Some(3), Some(0)]
    );
    let starts: Vec<f64> = timeline(&record)
        .iter()
        .filter(|(_, w, _)| w == "start")
        .map(|(_, _, t)| *t)
        .collect();
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // 200 ms, 400 ms, 800 ms, each less up to a fifth.
    assert!(
        gaps[0] >= 0.16 && gaps[1] >= 0.32 && gaps[2] >= 0.64,
        "{gaps:?}"
    );
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "growing: {gaps:?}");
    let log = std::fs::read_to_string(&attempts[0].log).unwrap();
    assert!(log.contains("failing attempt 1 on purpose"), "{log}");
}

#[test]
fn a_hung_task_is_killed_with_its_process_group_at_its_timeout() {
    let mut runs = Runs::new();
    let dag = dag(r#"
[[dags]]
name = "hang"
[[dags.tasks]]
name = "hang"
run = ["TASK", "--hang"]
timeout = "1s"
[[dags.tasks]]
name = "after"
needs = ["hang"]
run = ["TASK"]
"#);
    let started = std::time::Instant::now();
    let (status, tasks) = runs.run(&dag, "r1", &[]);
    assert!(started.elapsed().as_secs_f64() < 10.0);
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(tasks["hang"].status, TaskStatus::Failed);
    assert!(
        tasks["hang"]
            .reason
            .contains("timed out after 1s; its process group was killed"),
        "{}",
        tasks["hang"].reason
    );
    assert_eq!(tasks["after"].status, TaskStatus::Skipped);
    // The task's own child (sleep 600) died with it.
    let pid_file = runs.path("runs/r1/hang/artifacts/hung.pid");
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the hung task's child {pid} was killed");
}

const PIPELINE: &str = r#"
[[dags]]
name = "retrain"
[[dags.tasks]]
name = "amount-features"
features = ["amount"]
run = ["TASK", "--write", "amount.txt=A"]
outputs = ["amount.txt"]
[[dags.tasks]]
name = "geo-features"
features = ["country"]
run = ["TASK", "--write", "geo.txt=G"]
outputs = ["geo.txt"]
[[dags.tasks]]
name = "train"
needs = ["amount-features", "geo-features"]
run = ["TASK", "--upstream", "model.txt"]
outputs = ["model.txt"]
[[dags.tasks]]
name = "evaluate"
needs = ["train"]
run = ["TASK", "--write", "metrics.json={\"promote\": false}"]
outputs = ["metrics.json"]
[[dags.tasks]]
name = "promote"
needs = ["evaluate"]
run = ["TASK"]
when = { task = "evaluate", file = "metrics.json", pointer = "/promote", equals = true }
"#;

#[test]
fn a_second_run_reruns_only_the_drifted_branch_and_a_gate_skips_promotion() {
    let mut runs = Runs::new();
    let dag = dag(PIPELINE);
    let (status, first) = runs.run(&dag, "r1", &["amount", "country"]);
    assert_eq!(status, RunStatus::Succeeded);
    let statuses = |tasks: &BTreeMap<String, TaskRecord>| -> Vec<(String, String)> {
        dag.tasks
            .iter()
            .map(|t| (t.name.clone(), tasks[&t.name].status.to_string()))
            .collect()
    };
    assert_eq!(
        statuses(&first),
        [
            ("amount-features".into(), "succeeded".into()),
            ("geo-features".into(), "succeeded".into()),
            ("train".into(), "succeeded".into()),
            ("evaluate".into(), "succeeded".into()),
            ("promote".into(), "skipped".into()),
        ]
    );
    assert_eq!(
        first["promote"].reason,
        "skipped: evaluate/metrics.json/promote is false, not true"
    );
    let model = std::fs::read_to_string(&first["train"].outputs[0].path).unwrap();
    assert_eq!(model, "A+G");
    assert_eq!(first["train"].outputs[0].sha256.len(), 64);

    // Only amount drifts now: the geo branch comes from the cache.
    let (status, second) = runs.run(&dag, "r2", &["amount"]);
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        statuses(&second),
        [
            ("amount-features".into(), "succeeded".into()),
            ("geo-features".into(), "cached".into()),
            ("train".into(), "succeeded".into()),
            ("evaluate".into(), "succeeded".into()),
            ("promote".into(), "skipped".into()),
        ]
    );
    assert_eq!(
        second["geo-features"].reason,
        "inputs unchanged: reuses the outputs of run r1"
    );
    assert!(second["geo-features"].attempts.is_empty(), "no process ran");
    assert_eq!(
        second["geo-features"].outputs,
        first["geo-features"].outputs
    );
    let plan = runs.store.run("r2").unwrap().unwrap().plan.unwrap();
    assert_eq!(plan["tasks"][1]["selection"], "unaffected");
    assert_eq!(
        plan["tasks"][2]["reason"],
        "needs amount-features, which runs"
    );
}

#[test]
fn one_run_per_key_also_after_reopening_the_store() {
    let mut runs = Runs::new();
    let request = request("r1", "p/fraud/payments/9", "retrain");
    assert!(runs.store.queue_run(&request).unwrap());
    let again = RunRequest {
        id: "r2".into(),
        ..request.clone()
    };
    assert!(!runs.store.queue_run(&again).unwrap(), "same key refused");
    drop(runs.store);
    let mut reopened = Store::open(&StoreUrl::sqlite(runs.dir.path().join("store.db"))).unwrap();
    assert!(!reopened.queue_run(&again).unwrap(), "also after a restart");
    assert_eq!(reopened.runs(None, 10).unwrap().len(), 1);
}

#[test]
fn feature_names_that_look_like_shell_are_inert_data() {
    let mut runs = Runs::new();
    let marker = runs.path("pwned");
    let dag = dag(r#"
[[dags]]
name = "env"
[[dags.tasks]]
name = "env"
run = ["TASK", "--env", "env.json"]
outputs = ["env.json"]
"#);
    let evil = [
        format!("$(touch {})", marker.display()),
        "; rm -rf x".to_string(),
    ];
    let drifted: Vec<&str> = evil.iter().map(String::as_str).collect();
    let (status, tasks) = runs.run(&dag, "r1", &drifted);
    assert_eq!(status, RunStatus::Succeeded);
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tasks["env"].outputs[0].path).unwrap())
            .unwrap();
    assert_eq!(env["DRIFTGATE_DRIFTED_FEATURES"], evil.join(","));
    assert_eq!(env["DRIFTGATE_MODEL"], "fraud");
    assert_eq!(env["DRIFTGATE_RUN_ID"], "r1");
    assert!(!marker.exists(), "nothing was executed");
    let context: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env["DRIFTGATE_CONTEXT"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(context["drifted_features"][0], evil[0]);
}

#[test]
fn a_cancelled_run_kills_its_running_task_and_starts_nothing_more() {
    let runs = Runs::new();
    let dag = dag(r#"
[[dags]]
name = "slow"
[[dags.tasks]]
name = "slow"
run = ["TASK", "--sleep", "60"]
[[dags.tasks]]
name = "after"
needs = ["slow"]
run = ["TASK"]
"#);
    let request = request("r1", "k1", &dag.name);
    let path = runs.path("store.db");
    let runs_dir = runs.path("runs");
    Store::open(&StoreUrl::sqlite(&path))
        .unwrap()
        .queue_run(&request)
        .unwrap();
    let started = std::time::Instant::now();
    let executor = {
        let (path, dag, request) = (path.clone(), dag.clone(), request.clone());
        std::thread::spawn(move || {
            let store = Store::open(&StoreUrl::sqlite(&path)).unwrap();
            execute(&store, &runs_dir, &dag, &request, &AtomicBool::new(false));
        })
    };
    let store = Store::open(&StoreUrl::sqlite(&path)).unwrap();
    // Cancel once the slow task is running.
    while !store
        .run_tasks("r1")
        .unwrap()
        .iter()
        .any(|t| t.task == "slow" && t.status == TaskStatus::Running)
    {
        assert!(started.elapsed().as_secs() < 30, "the task never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(store.request_cancel("r1").unwrap());
    executor.join().unwrap();
    assert!(started.elapsed().as_secs() < 20, "not waited out");
    let run = store.run("r1").unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let tasks: BTreeMap<String, TaskStatus> = store
        .run_tasks("r1")
        .unwrap()
        .into_iter()
        .map(|t| (t.task, t.status))
        .collect();
    assert_eq!(tasks["slow"], TaskStatus::Cancelled);
    assert_eq!(tasks["after"], TaskStatus::Cancelled);
    assert!(
        !store.request_cancel("r1").unwrap(),
        "a finished run cannot be cancelled"
    );
}

/// Issue 21: a task inherited every variable of the service, its secrets included (webhook
/// secret, API token, SASL password). It now starts from a clean environment: the base
/// (`PATH`, `HOME`, locale …), its `DRIFTGATE_*` variables, and what its DAG and itself list in
/// `env` and `pass_env`.
#[test]
fn issue_21_tasks_get_a_clean_environment_with_what_they_ask_for() {
    // The service's secret, and a variable a task asks for by name.
    std::env::set_var("DRIFTGATE_TEST_WEBHOOK_SECRET", "s3cret-never-shown");
    std::env::set_var("DRIFTGATE_TEST_PASSED_ON", "passed");
    std::env::set_var("TEST_PROFILE", "ml-prod");
    let mut runs = Runs::new();
    let dag = dag(r#"
[[dags]]
name = "env"
env = { STAGE = "dag", SHARED = "dag" }
pass_env = ["TEST_PROFILE"]
[[dags.tasks]]
name = "env"
run = ["TASK", "--all-env", "env.json"]
outputs = ["env.json"]
env = { SHARED = "task" }
"#);
    let (status, tasks) = runs.run(&dag, "r1", &[]);
    assert_eq!(status, RunStatus::Succeeded);
    let text = std::fs::read_to_string(&tasks["env"].outputs[0].path).unwrap();
    assert!(!text.contains("s3cret-never-shown"), "{text}");
    let env: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    assert_eq!(env["STAGE"], "dag");
    assert_eq!(env["SHARED"], "task", "the task's env wins");
    assert_eq!(env["TEST_PROFILE"], "ml-prod");
    assert!(env.contains_key("PATH") && env.contains_key("HOME"));
    assert_eq!(env["DRIFTGATE_RUN_ID"], "r1");
    let unexpected: Vec<&String> = env
        .keys()
        .filter(|k| !k.starts_with("DRIFTGATE_") && !k.starts_with("LC_"))
        .filter(|k| {
            ![
                "PATH",
                "HOME",
                "TMPDIR",
                "TZ",
                "LANG",
                "LANGUAGE",
                "STAGE",
                "SHARED",
                "TEST_PROFILE",
            ]
            .contains(&k.as_str())
        })
        // What the interpreter (or a pyenv shim in front of it) sets itself.
        .filter(|k| !["PWD", "SHLVL", "_", "LC_CTYPE"].contains(&k.as_str()))
        .filter(|k| !k.trim_start_matches('_').starts_with("PYENV"))
        .collect();
    assert!(unexpected.is_empty(), "inherited: {unexpected:?}");
    assert!(!env.contains_key("DRIFTGATE_TEST_PASSED_ON"));
}

/// `env` and `pass_env` take variable names, and never driftgate's own.
#[test]
fn issue_21_env_names_are_checked() {
    #[derive(serde::Deserialize)]
    struct File {
        dags: Vec<RawDag>,
    }
    let file: File = toml::from_str(
        &r#"
[[dags]]
name = "env"
pass_env = ["DRIFTGATE_API_TOKEN"]
[[dags.tasks]]
name = "t"
run = ["TASK"]
env = { "BAD NAME" = "x", DRIFTGATE_RUN_ID = "forged" }
"#
        .replace("TASK", TASK),
    )
    .unwrap();
    let mut problems = driftgate::config::problems::Problems::default();
    validate(
        &[(String::new(), 0, file.dags[0].clone())],
        &BTreeSet::new(),
        &mut problems,
    );
    let messages: Vec<String> = problems.into_list().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        messages,
        [
            "dags[0].pass_env: DRIFTGATE_API_TOKEN: DRIFTGATE_* variables are driftgate's own",
            "dags[0].tasks[0].env.BAD NAME: \"BAD NAME\" is not a variable name (letters, digits, _)",
            "dags[0].tasks[0].env.DRIFTGATE_RUN_ID: DRIFTGATE_RUN_ID: DRIFTGATE_* variables are driftgate's own",
        ]
    );
}

/// Starts `sleep 600` as an orphan in a process group of its own (its parent, a shell, exits at
/// once), as a task attempt is after the service that started it was killed; returns its pid.
fn orphan() -> u32 {
    let out = std::process::Command::new("sh")
        .args(["-c", "setsid sleep 600 >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A run the store shows running, with one attempt of `train` recorded as running in `pid`
/// started at `start` (clock ticks since boot).
fn interrupted_run(runs: &mut Runs, pid: u32, start: u64) {
    let request = request("r1", "policy/fraud/payments/1", "retrain");
    assert!(runs.store.queue_run(&request).unwrap());
    runs.store
        .set_run_status("r1", RunStatus::Running, None, None)
        .unwrap();
    runs.store
        .set_task(
            "r1",
            "retrain",
            "train",
            TaskStatus::Running,
            "",
            None,
            None,
        )
        .unwrap();
    runs.store
        .set_attempt("r1", "train", 1, "log", None)
        .unwrap();
    runs.store
        .set_attempt_process("r1", "train", 1, pid, start)
        .unwrap();
}

/// Issue 21: after a SIGKILL of the service, its task processes ran on while the restarted
/// service ran the same tasks again (up to 3 at once). Now the restart stops what is left of
/// an interrupted run's attempts before queuing the run again, and records them interrupted.
#[test]
fn issue_21_a_task_left_running_by_a_crash_is_stopped_before_its_run_starts_again() {
    use driftgate::dag::local::orphans;
    let mut runs = Runs::new();
    let pid = orphan();
    let start = orphans::start_ticks(pid).expect("the orphan runs");
    interrupted_run(&mut runs, pid, start);
    driftgate::dag::executor::recover_interrupted(&runs.store);
    assert!(!orphans::running(pid), "the orphan was stopped");
    assert_eq!(
        runs.store.run("r1").unwrap().unwrap().status,
        RunStatus::Queued
    );
    let tasks = runs.store.run_tasks("r1").unwrap();
    let attempt = &tasks[0].attempts[0];
    assert!(attempt.finished_at.is_some());
    assert!(
        attempt.error.as_deref().unwrap().contains("was stopped"),
        "{:?}",
        attempt.error
    );
    // Run again, its attempt numbers on: the interrupted one keeps its record, so processes
    // started = attempts recorded.
    let dag =
        dag("[[dags]]\nname = \"retrain\"\n[[dags.tasks]]\nname = \"train\"\nrun = [\"true\"]\n");
    let request = request("r1", "policy/fraud/payments/1", "retrain");
    execute(
        &runs.store,
        &runs.path("runs"),
        &dag,
        &request,
        &AtomicBool::new(false),
    );
    let tasks = runs.store.run_tasks("r1").unwrap();
    let numbers: Vec<u32> = tasks[0].attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2]);
    assert!(tasks[0].attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("was stopped"));
    assert_eq!(tasks[0].attempts[1].exit_code, Some(0));
}

/// A recorded pid now held by a process that started at another time is not the attempt's:
/// it is left alone.
#[test]
fn issue_21_a_reused_pid_is_never_signalled() {
    use driftgate::dag::local::orphans;
    let mut runs = Runs::new();
    let pid = orphan();
    let start = orphans::start_ticks(pid).unwrap();
    interrupted_run(&mut runs, pid, start + 1);
    driftgate::dag::executor::recover_interrupted(&runs.store);
    assert!(
        orphans::running(pid),
        "someone else's process was signalled"
    );
    // SAFETY: the test's own orphan, cleaned up.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}
