//! Alerts reach a signed webhook and a Kafka topic once; a trigger runs only the drifted branch.

use super::*;

#[test]
fn alerts_reach_a_signed_webhook_and_a_kafka_topic_once_across_a_crash() {
    use common::receiver::Receiver;
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    let alert_topic = unique("alerts");
    create_topic(&setup.broker, &alert_topic, 1);
    // The webhook receiver is down at first: its port, nothing listening.
    let address = Receiver::start().stop();
    let mut config = std::fs::read_to_string(&setup.config).unwrap();
    config.push_str(&format!(
        r#"
[alerts]
link_base = "http://driftgate.test"
[[alerts.sinks]]
name = "hook"
kind = "webhook"
url = "http://{address}/hook"
secret_env = "DRIFTGATE_TEST_SECRET"
backoff = "100ms"
max_backoff = "300ms"
max_attempts = 100000
[[alerts.sinks]]
name = "topic"
kind = "kafka"
topic = "{alert_topic}"
"#
    ));
    std::fs::write(&setup.config, config).unwrap();
    // 6 windows; amount shifts from window 3: drift in 3, 4 and 5 and a trigger in 4.
    produce(&setup, 0, 24, 12, None);
    let expected = [
        "drift_detected:payments:3:fraud",
        "drift_detected:payments:4:fraud",
        "retrain_triggered:fraud-amount/fraud/payments/4",
        "drift_detected:payments:5:fraud",
    ];
    let mut child = start(&setup);
    wait_for(
        &setup.store,
        &mut child,
        "alerts on the topic, the webhook retrying",
        |s| {
            let (Ok(topic), Ok(hook)) =
                (s.alert_counts(Some("topic")), s.alert_counts(Some("hook")))
            else {
                return false;
            };
            topic["delivered"] == 4
                && hook["pending"] == 4
                && s.alert_statuses(Some("pending"), Some("hook"), 10)
                    .is_ok_and(|p| p.iter().any(|a| a.attempts >= 2))
        },
    );
    child.kill().unwrap(); // SIGKILL while the webhook's alerts are pending
    let _ = child.wait();

    let receiver = Receiver::start_on(&address);
    let mut child = start(&setup);
    let requests = receiver.wait_for(4, Duration::from_secs(60));
    // The receiver records a request once it has answered it; the worker records the delivery
    // right after reading that answer.
    wait_for(&setup.store, &mut child, "the deliveries recorded", |s| {
        s.alert_counts(None).is_ok_and(|c| c["pending"] == 0)
    });
    let (status, body) = http_get(&setup.api, "/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["counts"]["delivered"], 8, "{body}");
    assert_eq!(listed["counts"]["pending"], 0, "{body}");
    let (_, metrics) = http_get(&setup.api, "/metrics");
    assert!(
        metrics.contains("driftgate_alerts_pending{sink=\"hook\"}"),
        "{metrics}"
    );
    assert!(terminate(&mut child).success());

    // The webhook: each alert once, in the order raised, signed.
    let ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, expected);
    for request in &requests {
        let timestamp: u64 = request.headers["x-driftgate-timestamp"].parse().unwrap();
        assert_eq!(
            request.headers["x-driftgate-signature"],
            driftgate::alert::deliver::signature(ALERT_SECRET, timestamp, &request.body)
        );
    }
    let triggered = requests[2].json();
    assert_eq!(triggered["kind"], "retrain_triggered");
    assert_eq!(triggered["model"], "fraud");
    assert_eq!(triggered["window"]["index"], 4);
    assert_eq!(triggered["drifted_features"][0]["name"], "amount");
    assert_eq!(
        triggered["link"],
        "http://driftgate.test/streams/payments/windows/4#decision-fraud-amount"
    );

    // The topic: the same alerts, keyed by model, once (nothing sent again after the crash).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.broker)
        .set("group.id", unique("alert-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[alert_topic.as_str()]).unwrap();
    let mut on_topic = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline
        && (on_topic.len() < 4 || quiet_since.elapsed() < Duration::from_secs(2))
    {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let alert: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap()).unwrap();
            assert_eq!(message.key(), Some(&b"fraud"[..]));
            on_topic.push(alert["id"].as_str().unwrap().to_string());
            quiet_since = Instant::now();
        }
    }
    assert_eq!(on_topic, expected);
}

#[test]
fn a_trigger_runs_only_the_drifted_branch_once_and_the_run_is_in_the_api() {
    use common::receiver::Receiver;
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    let receiver = Receiver::start();
    let task = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dag/task.py");
    let runs_dir = setup.dir.path().join("runs");
    // The baseline the DAG produces: from other data than the configured one.
    let next_baseline = setup.dir.path().join("next-baseline.json");
    write_baseline(&next_baseline, 77, 3000);
    let next_id = driftgate::baseline::Baseline::load(&next_baseline)
        .unwrap()
        .id;
    let config = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(
            "features = [\"amount\", \"country\"]\n",
            "features = [\"amount\", \"country\"]\ndag = \"retrain\"\n",
        )
        .replace(
            "features = [\"country\"]\n",
            "features = [\"country\"]\ndag = \"retrain\"\n",
        );
    let config = format!(
        r#"{config}
[runs]
dir = "{runs}"
token_env = "DRIFTGATE_TEST_TOKEN"

[alerts]
[[alerts.sinks]]
name = "runs"
kind = "webhook"
url = "{hook}"
kinds = ["run_started", "run_succeeded", "run_failed"]

[[dags]]
name = "retrain"
[[dags.tasks]]
name = "amount-features"
features = ["amount"]
run = ["{task}", "--write", "amount.txt=A"]
outputs = ["amount.txt"]
[[dags.tasks]]
name = "geo-features"
features = ["country"]
run = ["{task}", "--write", "geo.txt=G"]
outputs = ["geo.txt"]
[[dags.tasks]]
name = "train"
needs = ["amount-features", "geo-features"]
run = ["{task}", "--upstream", "model.txt"]
outputs = ["model.txt"]
[[dags.tasks]]
name = "baseline"
needs = ["train"]
run = ["{task}", "--copy", "baseline.json={next}"]
outputs = ["baseline.json"]
baseline_output = "baseline.json"
"#,
        runs = runs_dir.display(),
        hook = receiver.url("/runs"),
        next = next_baseline.display(),
    );
    std::fs::write(&setup.config, config).unwrap();
    produce(&setup, 0, 24, 12, None);
    let mut child = start(&setup);
    let succeeded = |store: &Store, n: usize| {
        store.runs(None, 10).is_ok_and(|runs| {
            runs.len() == n && runs.iter().all(|r| r.status == RunStatus::Succeeded)
        })
    };
    wait_for(&setup.store, &mut child, "the triggered run", |s| {
        succeeded(s, 1)
    });
    let (status, body) = http_get(&setup.api, "/api/v1/runs");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = &listed["runs"][0];
    assert_eq!(
        first["model"], "fraud",
        "geo's feature did not drift: no geo run"
    );
    assert_eq!(first["key"], "fraud-amount/fraud/payments/4");
    let id = first["id"].as_str().unwrap().to_string();
    let (_, body) = http_get(&setup.api, &format!("/api/v1/runs/{id}"));
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tasks: Vec<(&str, &str)> = detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["task"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tasks,
        [
            ("amount-features", "succeeded"),
            ("geo-features", "succeeded"),
            ("train", "succeeded"),
            ("baseline", "succeeded")
        ],
        "{body}"
    );
    assert_eq!(detail["tasks"][2]["attempts"][0]["exit_code"], 0);
    // Issue 14: an attempt's log is served by the API, and only through the store's record.
    let task = detail["tasks"][2]["task"].as_str().unwrap();
    let log = format!("/api/v1/runs/{id}/tasks/{task}/attempts/1/log");
    let (status, body) = http_get(&setup.api, &log);
    assert_eq!(status, 200, "{log}: {body}");
    for bad in [
        format!("/api/v1/runs/{id}/tasks/..%2F..%2F..%2Fetc%2Fpasswd/attempts/1/log"),
        format!("/api/v1/runs/..%2F{id}/tasks/{task}/attempts/1/log"),
        format!("/api/v1/runs/{id}/tasks/{task}/attempts/9/log"),
    ] {
        let (status, body) = http_get(&setup.api, &bad);
        assert_eq!(status, 404, "{bad}: {body}");
    }
    let lineage = &detail["lineage"];
    assert_eq!(lineage["decision"], "fraud-amount/fraud/payments/4");
    assert_eq!(lineage["window"]["index"], 4);
    assert_eq!(lineage["outputs"].as_array().unwrap().len(), 4);

    // The run's baseline output became the stream's baseline; the next window uses it.
    wait_for(&setup.store, &mut child, "the rotated baseline", |s| {
        s.baselines("payments")
            .is_ok_and(|b| b.iter().any(|v| v.active && v.version == next_id))
    });
    let (_, body) = http_get(&setup.api, "/api/v1/streams/payments/baselines");
    let versions: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(versions["configured"]["active"], false, "{body}");
    assert_eq!(versions["versions"][0]["version"], next_id.as_str());
    assert_eq!(versions["versions"][0]["run_id"], id.as_str());
    // Issue 14: the streams list shows the baseline in use, not the configured one.
    let (_, body) = http_get(&setup.api, "/api/v1/streams");
    let streams: serde_json::Value = serde_json::from_str(&body).unwrap();
    let payments = &streams["streams"][0];
    assert_eq!(payments["baseline_id"], next_id.as_str(), "{body}");
    assert_eq!(payments["baseline_run_id"], id.as_str(), "{body}");
    assert_ne!(
        payments["configured_baseline_id"],
        next_id.as_str(),
        "{body}"
    );
    produce(&setup, 24, 4, 12, None);
    wait_for(
        &setup.store,
        &mut child,
        "a window on the new baseline",
        |s| {
            s.latest_windows("payments", 1).is_ok_and(|w| {
                w.first().is_some_and(|w| {
                    w.index == 6 && w.report["reference"]["baseline_id"] == next_id.as_str()
                })
            })
        },
    );
    let window: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lineage["window_file"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(window["records"], WINDOW_RECORDS as u64);
    assert_eq!(
        window["features"]["amount"]["values"]
            .as_array()
            .unwrap()
            .len(),
        WINDOW_RECORDS
    );
    // The records too, one per line, as a training task reads them.
    let records = std::fs::read_to_string(lineage["records_file"].as_str().unwrap()).unwrap();
    assert_eq!(records.lines().count(), WINDOW_RECORDS);
    let first: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    assert!(
        first["amount"].is_number() && first["ts"].is_i64(),
        "{first}"
    );

    // By hand: refused without the token; with it, the geo branch comes from the cache.
    let body = r#"{"model": "fraud", "drifted_features": ["amount"], "key": "manual-1"}"#;
    assert_eq!(
        http_with(&setup.api, "POST", "/api/v1/runs", &[], body).0,
        401
    );
    let auth = format!("Authorization: Bearer {RUN_TOKEN}");
    let (status, answer) = http_with(&setup.api, "POST", "/api/v1/runs", &[&auth], body);
    assert_eq!(status, 202, "{answer}");
    let manual: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let manual_id = manual["run"]["id"].as_str().unwrap();
    // Its lineage names the baseline in use: the rotated one, not the configured one.
    assert_eq!(manual["run"]["baseline"], next_id.as_str(), "{answer}");
    wait_for(&setup.store, &mut child, "the manual run", |s| {
        s.run(manual_id)
            .is_ok_and(|r| r.is_some_and(|r| r.status == RunStatus::Succeeded))
    });
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    let statuses: Vec<String> = store
        .run_tasks(manual_id)
        .unwrap()
        .iter()
        .map(|t| t.status.to_string())
        .collect();
    assert_eq!(statuses, ["succeeded", "cached", "succeeded", "succeeded"]);
    assert_eq!(
        http_with(&setup.api, "POST", "/api/v1/runs", &[&auth], body).0,
        409,
        "one run per key"
    );
    let cancel = format!("/api/v1/runs/{manual_id}/cancel");
    assert_eq!(http(&setup.api, "POST", &cancel).0, 401);
    let (status, body) = http_with(&setup.api, "POST", &cancel, &[&auth], "");
    assert_eq!(status, 409, "a finished run cannot be cancelled: {body}");
    // Alerts for both runs.
    let kinds: Vec<String> = receiver
        .wait_for(4, Duration::from_secs(30))
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.iter().filter(|k| *k == "run_succeeded").count() >= 2,
        "{kinds:?}"
    );
    // Window 6 (amount still shifted against the new baseline) triggered a third run.
    wait_for(&setup.store, &mut child, "every run finished", |s| {
        s.runs(None, 10)
            .is_ok_and(|runs| runs.iter().all(|r| r.status == RunStatus::Succeeded))
    });
    let before_restart = Store::open_read_only(&StoreUrl::sqlite(&setup.store))
        .unwrap()
        .runs(None, 10)
        .unwrap()
        .len();
    // Every run finished in this process is counted, by model and status.
    let (_, metrics) = http_get(&setup.api, "/metrics");
    let counted: usize = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("driftgate_runs_total{"))
        .filter(|l| l.contains("status=\"succeeded\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(counted, before_restart, "{metrics}");
    assert!(metrics.contains("driftgate_run_seconds_count{model=\"fraud\"}"));
    assert!(terminate(&mut child).success());

    // A restart launches nothing again.
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "ready", |_| {
        std::net::TcpStream::connect(&setup.api).is_ok() && http_get(&setup.api, "/readyz").0 == 200
    });
    assert!(terminate(&mut child).success());
    assert_eq!(
        Store::open_read_only(&StoreUrl::sqlite(&setup.store))
            .unwrap()
            .runs(None, 10)
            .unwrap()
            .len(),
        before_restart
    );

    // A run queued by hand can be cancelled through the API.
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "ready", |_| {
        std::net::TcpStream::connect(&setup.api).is_ok() && http_get(&setup.api, "/readyz").0 == 200
    });
    let body = r#"{"model": "fraud", "key": "manual-2"}"#;
    let (status, answer) = http_with(&setup.api, "POST", "/api/v1/runs", &[&auth], body);
    assert_eq!(status, 202, "{answer}");
    let queued: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let cancel = format!(
        "/api/v1/runs/{}/cancel",
        queued["run"]["id"].as_str().unwrap()
    );
    let (status, answer) = http_with(&setup.api, "POST", &cancel, &[&auth], "");
    assert_eq!(status, 202, "{answer}");
    assert!(terminate(&mut child).success());
}
