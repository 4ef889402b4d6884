//! `driftgate config check`: the shipped configuration is valid as is, environment variables
//! override it, and an invalid file gets every problem at once with its key path.

use std::path::Path;
use std::process::{Command, Output};

fn check(file: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["config", "check"])
        .arg(file)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_shipped_configuration_is_valid_as_is() {
    let out = check(Path::new("config/driftgate.toml"), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("stream payments: topic payments.features, window 2000 records, 8 features"),
        "{stdout}"
    );
    // The included files: two models sharing `amount`, their policies and DAGs.
    for expected in [
        "model fraud: stream payments, features amount, txn_count_24h, account_age_days, country, distance_km, device, dag retrain-fraud",
        "model checkout-risk: stream payments, features amount, merchant_category, hour, dag retrain-checkout",
        "policy fraud-drift: model fraud, 4 signal(s), in 2 consecutive windows",
        "policy checkout-drift: model checkout-risk, 3 signal(s), in 2 of the last 3 windows",
        "dag retrain-fraud: 6 task(s) in order behaviour-features, geo-features, train, evaluate, promote, baseline",
        // Issue 21: by default an alert is retried for a day, whatever the number of attempts.
        "alert sink log: retried until 1day old (backoff 1s to 5m)\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn a_policy_of_a_model_on_a_broken_stream_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("service.toml");
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        &file,
        format!(
            r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
group_id = "g"
[store]
path = "x.db"
[[streams]]
name = "payments"
topic = "t"
baseline = "{root}/config/baselines/payments.npz"
window = {{ records = 100 }}
features = [{{ name = "ghost", kind = "numeric" }}]

[[models]]
name = "fraud"
stream = "payments"
features = ["ghost"]

[[policies]]
name = "p"
model = "fraud"
when = {{ feature = "ghost", metric = "ks.p_value", below = 0.01 }}
"#
        ),
    )
    .unwrap();
    let out = check(&file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("streams[0].features: `ghost` is not in the baseline"),
        "{stderr}"
    );
}

#[test]
fn every_policy_problem_is_reported_with_its_file_and_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("service.toml");
    let policies = dir.path().join("policies.toml");
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        &service,
        format!(
            r#"
include = ["{policies}"]
[kafka]
bootstrap_servers = "127.0.0.1:9092"
group_id = "g"
[store]
path = "x.db"
[[streams]]
name = "payments"
topic = "t"
baseline = "{root}/config/baselines/payments.npz"
window = {{ records = 100 }}
features = [{{ name = "amount", kind = "numeric" }}, {{ name = "country", kind = "categorical" }}]

[[models]]
name = "fraud"
stream = "payments"
features = ["amount", "colour"]
"#,
            policies = policies.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &policies,
        r#"
[[models]]
name = "ok"
stream = "payments"
features = ["amount", "country"]

[[models]]
name = "lost"
stream = "nowhere"
features = ["amount"]

[[models]]
name = "orphan"
stream = "payments"
features = ["amount"]
dag = "missing-dag"

[[dags]]
name = "loop"
[[dags.tasks]]
name = "a"
run = ["true"]
needs = ["c"]
[[dags.tasks]]
name = "b"
run = ["true"]
needs = ["a"]
[[dags.tasks]]
name = "c"
run = ["true"]
needs = ["b"]

[[dags]]
name = "broken"
[[dags.tasks]]
name = "t"
run = []
needs = ["ghost"]
features = ["colour"]
outputs = ["../escape.txt"]
timeout = "forever"
when = { task = "other", file = "m.json", equals = true }

[[policies]]
name = "p1"
model = "ok"
consecutive = 2
k_of_n = { k = 1, n = 2 }
cooldown = "soon"
budget = { max_runs = 0, per = "1d" }
[policies.when]
any = [
  { feature = "country", metric = "ks.p_value", below = 0.01 },
  { feature = "amount", metric = "psi" },
  { feature = "amount", above = 1.0, below = 0.5 },
  { dataset = "mean", above = 0.5 },
  { at_least = 3, of = [{ feature = "*" }] },
  { feature = "amount", metric = "wasserstein", quantile = { q = 1.5, over = 0 } },
  { adwin = { delta = 1.5, clock = 0 } },
  { page_hinkley = { alpha = 2.0 }, above = 1 },
  { page_hinkley = { threshold = -1 } },
  { cron = "61 * * * *" },
  { cron = "0 0 30 2 *" },
  { regret = { of = "drift", cost = -1 } },
  { regret = { of = "errors", cost = 5, over = 3 } },
  { regret = { of = "errors", cost_per_run_second = 5, initial_run_time = "later", over = 0 } },
  { adwin = { loss = "abs" } },
  { performance = "r2", above = 0.5 },
  { prediction = "mean" },
  { label = "psi" },
]

[[policies]]
name = "p1"
model = "ghost"
when = { feature = "amount" }
"#,
    )
    .unwrap();
    let out = check(&service, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let file = policies.display().to_string();
    for expected in [
        "models[0].features[1]: `colour` is not a feature of stream `payments`".to_string(),
        format!("{file}: models[1].stream: no stream `nowhere` (streams: payments)"),
        format!("{file}: models[2].dag: no DAG `missing-dag` (DAGs: loop, broken)"),
        format!("{file}: dags[0].tasks: the tasks' `needs` form a cycle: a → c → b → a"),
        format!("{file}: dags[1].tasks[0].run: needs a program"),
        format!("{file}: dags[1].tasks[0].needs[0]: no task `ghost` in this DAG"),
        format!("{file}: dags[1].tasks[0].features[0]: `colour` is not a feature of any stream"),
        format!("{file}: dags[1].tasks[0].outputs[0]: must be a relative path inside the artifacts directory"),
        format!("{file}: dags[1].tasks[0].timeout: \"forever\" is not a duration"),
        format!("{file}: dags[1].tasks[0].when.task: `other` must be one of the task's `needs`"),
        format!("{file}: policies[0]: set `consecutive` or `k_of_n`, not both"),
        format!("{file}: policies[0].cooldown: \"soon\" is not a duration"),
        format!("{file}: policies[0].budget.max_runs: must be at least 1"),
        format!(
            "{file}: policies[0].when.any[0].metric: ks.p_value does not exist for `country`, a categorical feature"
        ),
        format!("{file}: policies[0].when.any[1]: psi needs a criterion"),
        format!("{file}: policies[0].when.any[2]: set one criterion"),
        format!("{file}: policies[0].when.any[3].dataset: \"mean\" is not a dataset metric"),
        format!(
            "{file}: policies[0].when.any[4].at_least: must be between 1 and the 2 rule(s) in `of`"
        ),
        format!("{file}: policies[0].when.any[5].quantile.q: must be between 0 and 1"),
        format!("{file}: policies[0].when.any[5].quantile.over: must be between 1 and 10000"),
        format!("{file}: policies[0].when.any[6].adwin.delta: must be in (0, 1)"),
        format!("{file}: policies[0].when.any[6].adwin.clock: must be at least 1"),
        format!("{file}: policies[0].when.any[7]: a detector takes no metric or criterion"),
        format!("{file}: policies[0].when.any[8].page_hinkley.threshold: must be a positive number"),
        format!("{file}: policies[0].when.any[9].cron: \"61 * * * *\" is not a cron expression"),
        format!("{file}: policies[0].when.any[10].cron: \"0 0 30 2 *\" is not a cron expression: never fires"),
        format!("{file}: policies[0].when.any[11].regret.of: \"drift\" is not a regret measure: use drifted_records or errors"),
        format!("{file}: policies[0].when.any[11].regret.cost: must be a positive number"),
        format!("{file}: policies[0].when.any[12].regret: `initial_run_time` and `over` go with `cost_per_run_second`, not `cost`"),
        format!("{file}: policies[0].when.any[13].regret.initial_run_time: \"later\" is not a duration"),
        format!("{file}: policies[0].when.any[13].regret.over: must be between 1 and 100"),
        format!("{file}: policies[0].when.any[14].adwin.loss: \"abs\" is not a loss: use zero_one, absolute or squared"),
        format!("{file}: policies[0].when.any[15].performance: \"r2\" is not a performance metric: use accuracy, error_rate, labelled, mae or rmse"),
        format!("{file}: policies[0].when.any[16].prediction: \"mean\" is not an output metric: use drift or a feature's metric (p_value, psi, …)"),
        format!("{file}: policies[0].when.any[17]: psi needs a criterion: `above`, `below`, `quantile` or `rolling`"),
        format!("{file}: policies[1].name: policy `p1` is defined twice"),
        format!("{file}: policies[1].model: no model `ghost`"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn environment_variables_override_the_file() {
    let out = check(
        Path::new("config/driftgate.toml"),
        &[
            ("DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS", "broker-1:9093"),
            ("DRIFTGATE__API__LISTEN", "0.0.0.0:9999"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kafka broker-1:9093"), "{stdout}");
    assert!(stdout.contains("api 0.0.0.0:9999"), "{stdout}");
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[kafka.properties]
"enable.auto.commit" = "true"
"sasl.username" = "u"
[kafka.properties_env]
"sasl.password" = "DRIFTGATE_TEST_UNSET_SASL_PASSWORD"
"sasl.username" = "DRIFTGATE_TEST_UNSET_SASL_USERNAME"

[store]
path = "var/x.db"
checkpoint_interval = "soon"

[api]
listen = "localhost"

[[streams]]
name = "payments"
topic = "payments.features"
baseline = "config/baselines/payments.npz"
window = { records = 100, duration = "5m" }
features = [
  { name = "amount", kind = "categorical" },
  { name = "nope", kind = "numeric" },
]
drift = { alpha = 3.0 }

[[streams]]
name = "payments"
topic = "other"
baseline = "config/baselines/missing.json"
window = { duration = "1m", grace = "10s" }
features = [{ name = "amount", kind = "numeric" }]

[alerts]
missing_rate = 1.5
[[alerts.sinks]]
name = "hook"
kind = "webhook"
url = "hooks.example.com"
secret_env = "DRIFTGATE_TEST_UNSET_SECRET"
kinds = ["retrain_triggered", "retrain_now"]
models = ["ghost"]
[[alerts.sinks]]
name = "hook"
kind = "kafka"
backoff = "later"
[[alerts.sinks]]
name = "pager"
kind = "pager"
"#,
    )
    .unwrap();
    let out = check(&file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for expected in [
        "kafka.properties.\"enable.auto.commit\"",
        "kafka.properties_env.\"sasl.password\": environment variable DRIFTGATE_TEST_UNSET_SASL_PASSWORD is not set",
        "kafka.properties_env.\"sasl.username\": is also set in kafka.properties",
        "store.checkpoint_interval: \"soon\" is not a duration",
        "api.listen: \"localhost\" is not an address",
        "streams[0].window: set exactly one of `records` or `duration`",
        "streams[0].features: `amount` is categorical here but numeric in the baseline",
        "streams[0].features: `nope` is not in the baseline",
        "streams[0].drift: alpha must be in (0, 1)",
        "streams[1].name: `payments` is used by an earlier stream",
        "streams[1].baseline: cannot access baseline config/baselines/missing.json",
        "alerts.missing_rate: must be between 0 and 1",
        "alerts.sinks[0].url: a webhook or slack sink needs an http:// or https:// url",
        "alerts.sinks[0].secret_env: environment variable DRIFTGATE_TEST_UNSET_SECRET is not set",
        "alerts.sinks[0].kinds[1]: \"retrain_now\" is not an alert kind (drift_detected, retrain_triggered,",
        "alerts.sinks[0].models[0]: no model `ghost`",
        "alerts.sinks[1].name: sink `hook` is defined twice",
        "alerts.sinks[1].topic: a kafka sink needs a topic",
        "alerts.sinks[1].backoff: \"later\" is not a duration",
        "alerts.sinks[2].kind: \"pager\" is not a sink kind: use webhook, slack, kafka or log",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn unknown_keys_are_errors_not_silent_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[kafka]\nbootstrap_servers = \"x:1\"\n[store]\npath = \"a.db\"\ncheckpoint_intervall = \"5s\"\n",
    )
    .unwrap();
    let out = check(&file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("checkpoint_intervall"), "{stderr}");
    let out = check(&dir.path().join("absent.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such file"));
}

#[test]
fn issue_16_the_store_is_a_sqlite_path_or_a_postgres_url_and_its_password_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.toml");
    let stream = format!(
        "[[streams]]\nname = \"s\"\ntopic = \"t\"\nbaseline = \"{}/config/baselines/payments.npz\"\nwindow = {{ records = 100 }}\nfeatures = [{{ name = \"amount\", kind = \"numeric\" }}]\n",
        env!("CARGO_MANIFEST_DIR")
    );
    let write = |store: &str| {
        std::fs::write(
            &file,
            format!("[kafka]\nbootstrap_servers = \"x:1\"\n[store]\n{store}\n{stream}"),
        )
        .unwrap()
    };
    for good in [
        "url = \"sqlite:var/a.db\"",
        "path = \"var/a.db\"",
        "url = \"postgres://dg:hunter2@db.internal:5432/driftgate?sslmode=require\"",
    ] {
        write(good);
        let out = check(&file, &[]);
        assert!(out.status.success(), "{good}: {}", text(&out.stderr));
        assert!(
            !text(&out.stdout).contains("hunter2"),
            "{}",
            text(&out.stdout)
        );
    }
    for (bad, expected) in [
        (
            "url = \"sqlite:a.db\"\npath = \"a.db\"",
            "store.url: give `store.url` or `store.path`, not both",
        ),
        ("checkpoint_interval = \"5s\"", "store.url: is missing"),
        (
            "url = \"mysql://u:hunter2@h/d\"",
            "is not a store URL: use `sqlite:PATH` or `postgres://",
        ),
        ("url = \"sqlite:\"", "`sqlite:` needs a file path"),
        (
            "url = \"sqlite:a.db\"\nconnect_timeout = \"soon\"",
            "store.connect_timeout",
        ),
    ] {
        write(bad);
        let out = check(&file, &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{bad}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn issue_16_store_check_names_an_old_schema_and_store_migrate_brings_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("service.toml");
    let mut stores = vec![format!("sqlite:{}", dir.path().join("s.db").display())];
    if let Ok(server) = std::env::var("DRIFTGATE_TEST_POSTGRES") {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("cli_{}_{nanos}", std::process::id());
        let mut admin =
            postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        stores.push(format!("{server}/{name}"));
    }
    for store in stores {
        std::fs::write(
            &file,
            format!(
                "[kafka]\nbootstrap_servers = \"x:1\"\n[store]\nurl = \"{store}\"\n[[streams]]\nname = \"s\"\ntopic = \"t\"\nbaseline = \"{}/config/baselines/payments.npz\"\nwindow = {{ records = 100 }}\nfeatures = [{{ name = \"amount\", kind = \"numeric\" }}]\n",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .unwrap();
        let run = |command: &str| {
            Command::new(env!("CARGO_BIN_EXE_driftgate"))
                .args(["store", command, "--config"])
                .arg(&file)
                .output()
                .unwrap()
        };
        // A SQLite file not created yet cannot be opened (1); an empty database has no schema (2).
        let out = run("check");
        let stderr = text(&out.stderr);
        match out.status.code() {
            Some(1) => assert!(stderr.contains("cannot open the store"), "{stderr}"),
            Some(2) => assert!(stderr.contains("run `driftgate store migrate"), "{stderr}"),
            other => panic!("{store}: {other:?} {stderr}"),
        }
        let out = run("migrate");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("schema version 0 → 7"),
            "{}",
            text(&out.stdout)
        );
        let out = run("check");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("reachable, schema version 7"), "{stdout}");
        assert!(stdout.contains("runs: 0 queued, 0 running"), "{stdout}");
        assert!(text(&run("migrate").stdout).contains("up to date"));
    }
}
