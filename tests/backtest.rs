//! `driftgate backtest` on River's labelled drifting streams (tests/fixtures/backtest, written by
//! scripts/gen_backtest_streams.py): the real binary, the built-in tasks as real processes, a
//! real retrain on every trigger. Asserts the relations that must hold between policy sets.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

const WINDOW: u64 = 400;
/// The drift starts around this record in the abrupt and gradual streams.
const DRIFT_AT: u64 = 4000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backtest")
}

/// A directory with a configuration for fixture stream `name`: its baseline built from the
/// training set, a DAG of the built-in tasks (transform, train, evaluate, gated promote) whose
/// registry is `models` under the directory, and three policy sets.
fn setup(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let training = fixtures().join(format!("{name}.training.jsonl"));
    let training = training.to_str().unwrap();
    let features: Vec<(String, String)> =
        std::fs::read_to_string(fixtures().join(format!("{name}.features")))
            .unwrap()
            .lines()
            .map(|l| {
                let (name, kind) = l.split_once(' ').unwrap();
                (name.to_string(), kind.to_string())
            })
            .collect();
    let built = driftgate(dir.path())
        .args(["baseline", "build", "--input", training])
        .args(["--output", "baseline.npz"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let specs: Vec<String> = (features.iter())
        .map(|(n, k)| format!("{{ name = \"{n}\", kind = \"{k}\" }}"))
        .collect();
    let names: Vec<String> = features.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let list: Vec<&str> = features.iter().map(|(n, _)| n.as_str()).collect();
    let config = format!(
        r#"
[kafka]
bootstrap_servers = "embedded"
[store]
path = "store.db"
[[streams]]
name = "s"
topic = "t"
baseline = "baseline.npz"
window = {{ records = {WINDOW} }}
features = [{specs}]
[[models]]
name = "m"
stream = "s"
features = [{names}]
dag = "retrain"
[[dags]]
name = "retrain"
[[dags.tasks]]
name = "transform"
run = ["driftgate", "task", "transform", "--features", "{list}", "--training", "{training}"]
outputs = ["transform.json"]
[[dags.tasks]]
name = "train"
needs = ["transform"]
run = ["driftgate", "task", "train", "--training", "{training}"]
outputs = ["model.json"]
[[dags.tasks]]
name = "evaluate"
needs = ["train"]
run = ["driftgate", "task", "evaluate", "--registry", "models", "--training", "{training}"]
outputs = ["metrics.json"]
[[dags.tasks]]
name = "promote"
needs = ["train", "evaluate"]
when = {{ task = "evaluate", file = "metrics.json", pointer = "/promote", equals = true }}
run = ["driftgate", "task", "promote", "--registry", "models"]
"#,
        specs = specs.join(", "),
        names = names.join(", "),
        list = list.join(","),
    );
    std::fs::write(dir.path().join("driftgate.toml"), config).unwrap();
    let sets = [
        ("page-hinkley", "{ page_hinkley = { threshold = 50 } }"),
        ("adwin", "{ adwin = { delta = 0.002 } }"),
        ("feature-drift", "{ feature = \"*\" }"),
    ];
    for (set, when) in sets {
        let text = format!("[[policies]]\nname = \"{set}\"\nmodel = \"m\"\nwhen = {when}\n");
        std::fs::write(dir.path().join(format!("{set}.toml")), text).unwrap();
    }
    dir
}

fn driftgate(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_driftgate"));
    command.current_dir(cwd);
    command
}

/// `driftgate backtest` of fixture stream `name` with the three sets and `args`; its JSON.
fn backtest(dir: &Path, name: &str, args: &[&str]) -> Value {
    let input = fixtures().join(format!("{name}.jsonl"));
    backtest_of(dir, &["--input", input.to_str().unwrap()], args)
}

/// `driftgate backtest` of what `recorded` names (`--input FILE` or `--topic NAME`) with the
/// three sets and `args`; its JSON.
fn backtest_of(dir: &Path, recorded: &[&str], args: &[&str]) -> Value {
    let out = driftgate(dir)
        .args(["backtest", "--config", "driftgate.toml"])
        .args(recorded)
        .args([
            "--policies",
            "page-hinkley.toml",
            "--policies",
            "adwin.toml",
        ])
        .args(["--policies", "feature-drift.toml", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn set<'a>(backtest: &'a Value, name: &str) -> &'a Value {
    (backtest["sets"].as_array().unwrap().iter())
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no set {name}"))
}

/// The share of labelled records predicted right in windows starting at or after `from`
/// (records) and before `to`.
fn accuracy_between(set: &Value, from: u64, to: u64) -> f64 {
    let (mut correct, mut labelled) = (0, 0);
    for window in set["windows"].as_array().unwrap() {
        let start = window["index"].as_u64().unwrap() * WINDOW;
        if start >= from && start < to {
            correct += window["performance"]["correct"].as_u64().unwrap();
            labelled += window["performance"]["labelled"].as_u64().unwrap();
        }
    }
    correct as f64 / labelled as f64
}

fn retrains(set: &Value) -> u64 {
    set["retrains"].as_u64().unwrap()
}

fn mean_accuracy(set: &Value) -> f64 {
    set["mean_accuracy"].as_f64().unwrap()
}

/// Issue 18: on an abrupt concept drift (SEA's threshold moving), `never` loses accuracy after
/// the drift, `every-window` recovers, and an error-triggered policy recovers too with a
/// fraction of the retrains. The backtest never touches the registry the DAG names.
#[test]
fn issue_18_an_error_triggered_policy_recovers_from_an_abrupt_drift_with_few_retrains() {
    let dir = setup("sea_abrupt");
    let result = backtest(
        dir.path(),
        "sea_abrupt",
        &["--run-time", "40s", "--chart", "chart.svg"],
    );
    let show = || summary(&result);
    let chart = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    assert!(chart.contains("every-window (20 retrains)"), "{chart}");
    let (never, every, ph) = (
        set(&result, "never"),
        set(&result, "every-window"),
        set(&result, "page-hinkley"),
    );
    let before = accuracy_between(never, 0, DRIFT_AT);
    let after = accuracy_between(never, DRIFT_AT + WINDOW, u64::MAX);
    assert!(before > 0.95, "{}", show());
    assert!(after < before - 0.08, "never loses accuracy: {}", show());
    assert_eq!(retrains(never), 0);
    assert_eq!(retrains(every), 20, "one retrain per window: {}", show());
    let every_after = accuracy_between(every, DRIFT_AT + WINDOW, u64::MAX);
    assert!(
        every_after > after + 0.05,
        "every-window recovers: {}",
        show()
    );
    assert!(
        retrains(ph) >= 1 && retrains(ph) <= retrains(every) / 4,
        "{}",
        show()
    );
    assert!(
        mean_accuracy(ph) > mean_accuracy(every) - 0.01,
        "within a point of every-window: {}",
        show()
    );
    // Its retrain followed the drift.
    let first = &set(&result, "page-hinkley")["runs"][0];
    assert!(first["window"].as_u64().unwrap() * WINDOW >= DRIFT_AT - WINDOW);
    assert!(
        !dir.path().join("models").exists(),
        "the DAG's registry is untouched"
    );
}

/// Issue 18: gradual and incremental drifts, and a stream the built-in model fits poorly: the
/// relations that must hold whatever the policy's tuning.
#[test]
fn issue_18_retraining_pays_on_gradual_incremental_and_nonlinear_drifts() {
    for name in ["sea_gradual", "hyperplane", "agrawal_abrupt"] {
        let dir = setup(name);
        let result = backtest(dir.path(), name, &["--run-time", "40s"]);
        let show = || format!("{name}: {}", summary(&result));
        let (never, every, ph) = (
            set(&result, "never"),
            set(&result, "every-window"),
            set(&result, "page-hinkley"),
        );
        assert_eq!(retrains(never), 0, "{}", show());
        assert!(
            mean_accuracy(every) > mean_accuracy(never) + 0.02,
            "every-window beats never: {}",
            show()
        );
        assert!(retrains(ph) <= retrains(every) / 4, "{}", show());
        assert!(mean_accuracy(ph) >= mean_accuracy(never), "{}", show());
    }
}

/// Issue 18, part 4: a covariate shift (with its concept) and a DAG that rotates no baseline.
/// A drift policy against the training data retrains on every window after the shift; the same
/// policy against the data since the last retrain (Modyn's reference) retrains once, at the
/// shift, and is as accurate.
#[test]
fn issue_18_a_drift_policy_against_the_data_since_the_retrain_retrains_once_per_shift() {
    let dir = setup("shift");
    let config = dir.path().join("driftgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let keeps = text.replace("window = {", "drift = { since_retrain = true }\nwindow = {");
    assert_ne!(keeps, text);
    std::fs::write(&config, keeps).unwrap();
    for (set, reference) in [("training", "training"), ("since", "since_retrain")] {
        let when = format!(
            "{{ feature = \"x0\", metric = \"p_value\", below = 0.001, reference = \"{reference}\" }}"
        );
        let text = format!("[[policies]]\nname = \"{set}\"\nmodel = \"m\"\nwhen = {when}\n");
        std::fs::write(dir.path().join(format!("{set}.toml")), text).unwrap();
    }
    let out = driftgate(dir.path())
        .args(["backtest", "--config", "driftgate.toml", "--input"])
        .arg(fixtures().join("shift.jsonl"))
        .args(["--policies", "training.toml", "--policies", "since.toml"])
        .args(["--run-time", "40s", "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let show = || summary(&result);
    let (never, training, since) = (
        set(&result, "never"),
        set(&result, "training"),
        set(&result, "since"),
    );
    let before = accuracy_between(never, 0, DRIFT_AT);
    assert!(
        accuracy_between(never, DRIFT_AT, u64::MAX) < before - 0.2,
        "never loses accuracy: {}",
        show()
    );
    let shifted = (8000 - DRIFT_AT) / WINDOW;
    assert_eq!(retrains(training), shifted, "{}", show());
    assert_eq!(retrains(since), 1, "{}", show());
    assert_eq!(since["runs"][0]["window"], DRIFT_AT / WINDOW, "{}", show());
    // Per window, what drifted against the data since the retrain: `x0` at the shift; nothing
    // to compare with in the window after the retrain; nothing drifted after that.
    let shift = (DRIFT_AT / WINDOW) as usize;
    let windows = since["windows"].as_array().unwrap();
    let against = |i: usize| &windows[i]["drifted_since_retrain"];
    assert_eq!(against(shift), &serde_json::json!(["x0"]));
    assert!(against(shift + 1).is_null());
    assert_eq!(against(shift + 2), &serde_json::json!([]));
    assert_eq!(windows[shift + 2]["drifted"], serde_json::json!(["x0"]));
    assert!(
        mean_accuracy(since) > mean_accuracy(training) - 0.01,
        "{}",
        show()
    );
}

/// Issue 18: a run is in flight for its time in event time: no trigger of the model while one
/// is, its outcome applies `run-time` after its trigger, and the windows before that are scored
/// by the model before it. The same input gives the same JSON.
#[test]
fn issue_18_runs_are_in_flight_for_their_duration_and_backtests_repeat_exactly() {
    let dir = setup("sea_abrupt");
    // A window is 400 s of records: a run of 1,000 s keeps the model busy for two more.
    let result = backtest(dir.path(), "sea_abrupt", &["--run-time", "1000s"]);
    let every = set(&result, "every-window");
    let runs = every["runs"].as_array().unwrap();
    assert!((5..=7).contains(&runs.len()), "{}", summary(&result));
    for pair in runs.windows(2) {
        assert!(pair[1]["triggered_ms"].as_i64() >= pair[0]["applied_ms"].as_i64());
    }
    for run in runs {
        let span = run["applied_ms"].as_i64().unwrap() - run["triggered_ms"].as_i64().unwrap();
        assert_eq!(span, 1_000_000);
    }
    // Each window's first records are scored by the last run applied before them.
    let windows = every["windows"].as_array().unwrap();
    let first_ts = 1_767_225_600_000i64;
    for window in windows {
        let start = first_ts + window["index"].as_i64().unwrap() * WINDOW as i64 * 1000;
        let expected = (runs.iter().rev())
            .find(|r| r["promoted"] == true && r["applied_ms"].as_i64().unwrap() <= start)
            .map_or("initial", |r| r["id"].as_str().unwrap());
        assert_eq!(
            window["scored_by"][0], expected,
            "window {}",
            window["index"]
        );
    }
    let again = backtest(dir.path(), "sea_abrupt", &["--run-time", "1000s"]);
    assert_eq!(again, result, "a backtest repeats exactly");
}

/// Issue 18: a DAG may name its own scorer, a process kept running that answers a prediction
/// per record line; here one that always says 1, so the `never` set's accuracy is the share of
/// positive labels, and it is told the set's registry.
#[test]
fn issue_18_a_dag_names_its_own_scorer() {
    let dir = setup("sea_abrupt");
    let config = dir.path().join("driftgate.toml");
    let scorer = r#"predict = ["sh", "-c", "echo \"$DRIFTGATE_REGISTRY $DRIFTGATE_MODEL\" >> scorer.env; while read -r line; do echo 1; done"]"#;
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[[dags]]\nname = \"retrain\"\n",
        &format!("[[dags]]\nname = \"retrain\"\n{scorer}\n"),
    );
    std::fs::write(&config, text).unwrap();
    let result = backtest(dir.path(), "sea_abrupt", &["--run-time", "40s"]);
    let stream = std::fs::read_to_string(fixtures().join("sea_abrupt.jsonl")).unwrap();
    let (positive, total) = stream.lines().fold((0, 0), |(p, t), line| {
        let message: Value = serde_json::from_str(line).unwrap();
        let records = message["records"].as_array().unwrap();
        let ones = records.iter().filter(|r| r["label"] == 1).count();
        (p + ones, t + records.len())
    });
    let never = set(&result, "never");
    assert_eq!(never["labelled"], total);
    let accuracy = never["accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - positive as f64 / total as f64).abs() < 1e-12,
        "{accuracy}"
    );
    let told = std::fs::read_to_string(dir.path().join("scorer.env")).unwrap();
    let first = told.lines().next().unwrap();
    assert!(first.ends_with("/0-never/models m"), "{told}");
}

/// Issue 18, on tansu: `backtest --topic` reads the recorded stream from a topic and decides,
/// runs and scores exactly as from the file.
#[test]
fn issue_18_a_backtest_reads_a_topic_as_it_reads_the_file() {
    let Some(broker) = common::servers::required("DRIFTGATE_TEST_BROKER", "backtest --topic")
    else {
        return;
    };
    let topic = common::servers::unique("backtest");
    common::servers::create_topic(&broker, &topic, 1);
    // One message per batch: tansu 0.6.0 answers ListOffsets (latest) with the last batch's
    // base offset + 1 (see `produce` in tests/streaming/main.rs).
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let stream = std::fs::read_to_string(fixtures().join("sea_abrupt.jsonl")).unwrap();
    for line in stream.lines() {
        let record = BaseRecord::<(), str>::to(&topic).payload(line);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(std::time::Duration::ZERO);
    }
    producer.flush(std::time::Duration::from_secs(30)).unwrap();
    let dir = setup("sea_abrupt");
    let config = dir.path().join("driftgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("\"embedded\"", &format!("\"{broker}\""))
        .replace("topic = \"t\"", &format!("topic = \"{topic}\""));
    std::fs::write(&config, text).unwrap();
    let mut from_file = backtest(dir.path(), "sea_abrupt", &["--run-time", "40s"]);
    let from_topic = backtest_of(dir.path(), &["--topic", &topic], &["--run-time", "40s"]);
    assert_eq!(from_topic["input"], format!("topic {topic}"));
    from_file["input"] = from_topic["input"].clone();
    assert_eq!(set(&from_topic, "every-window")["retrains"], 20);
    assert_eq!(from_topic, from_file);
}

/// A CSV recording (one record a row) backtests as its JSONL twin: the same windows, runs and
/// accuracy.
#[test]
fn a_csv_recording_backtests_as_its_jsonl_twin() {
    let dir = setup("sea_abrupt");
    let stream = std::fs::read_to_string(fixtures().join("sea_abrupt.jsonl")).unwrap();
    let mut csv = String::from("ts,x0,x1,x2,label\n");
    for line in stream.lines() {
        let message: Value = serde_json::from_str(line).unwrap();
        for r in message["records"].as_array().unwrap() {
            let row = format!(
                "{},{},{},{},{}\n",
                r["ts"], r["x0"], r["x1"], r["x2"], r["label"]
            );
            csv.push_str(&row);
        }
    }
    std::fs::write(dir.path().join("sea_abrupt.csv"), csv).unwrap();
    let from_jsonl = backtest(dir.path(), "sea_abrupt", &["--run-time", "40s"]);
    let csv = ["--input", "sea_abrupt.csv"];
    let from_csv = backtest_of(dir.path(), &csv, &["--run-time", "40s"]);
    for name in ["never", "every-window", "page-hinkley"] {
        let (a, b) = (set(&from_csv, name), set(&from_jsonl, name));
        for field in ["retrains", "labelled", "accuracy", "mean_accuracy"] {
            assert_eq!(a[field], b[field], "{name} {field}");
        }
        let windows = |s: &Value| -> Vec<Value> {
            (s["windows"].as_array().unwrap().iter())
                .map(|w| serde_json::json!([w["index"], w["performance"], w["scored_by"]]))
                .collect()
        };
        assert_eq!(windows(a), windows(b), "{name}");
    }
}

/// A DAG whose initial run cannot promote a model: the backtest says so (exit 2) and where
/// the run's files are.
#[test]
fn a_backtest_without_an_initial_model_says_why() {
    let dir = setup("sea_abrupt");
    let config = dir.path().join("driftgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let broken = text.replace(
        "run = [\"driftgate\", \"task\", \"train\"",
        "run = [\"false\", \"task\", \"train\"",
    );
    assert_ne!(broken, text);
    std::fs::write(&config, broken).unwrap();
    let out = driftgate(dir.path())
        .args(["backtest", "--config", "driftgate.toml", "--input"])
        .arg(fixtures().join("sea_abrupt.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the initial run of DAG `retrain` did not promote a model"),
        "{stderr}"
    );
    assert!(stderr.contains("--initial-model"), "{stderr}");
}

/// The backtest's own directory: a non-empty one is refused and left as it was.
#[test]
fn a_backtest_refuses_a_work_directory_it_did_not_create() {
    let dir = setup("sea_abrupt");
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("work/keep.txt"), "mine").unwrap();
    let out = driftgate(dir.path())
        .args(["backtest", "--config", "driftgate.toml", "--input"])
        .arg(fixtures().join("sea_abrupt.jsonl"))
        .args(["--work", "work"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    let kept = std::fs::read_to_string(dir.path().join("work/keep.txt")).unwrap();
    assert_eq!(kept, "mine");
    // A policy set with no policy for the model is refused before anything runs.
    std::fs::write(dir.path().join("empty.toml"), "# nothing yet\n").unwrap();
    let out = driftgate(dir.path())
        .args(["backtest", "--config", "driftgate.toml", "--input"])
        .arg(fixtures().join("sea_abrupt.jsonl"))
        .args(["--policies", "empty.toml", "--work", "fresh"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("policy set `empty` has no policy for model `m`"),
        "{stderr}"
    );
    let fresh = std::fs::read_dir(dir.path().join("fresh")).unwrap().count();
    assert_eq!(fresh, 0, "nothing ran");
}

/// One line per set, for failure messages.
fn summary(backtest: &Value) -> String {
    (backtest["sets"].as_array().unwrap().iter())
        .map(|s| {
            format!(
                "{}: {} retrains, mean accuracy {:.4}",
                s["name"], s["retrains"], s["mean_accuracy"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
