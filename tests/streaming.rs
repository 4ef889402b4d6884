//! The service end to end on a real Kafka-protocol broker (tansu, started by `scripts/test.sh`,
//! address in `DRIFTGATE_TEST_BROKER`). Each test uses its own topic and group names.
//!
//! Without the variable the tests say so and pass locally; under CI (`CI` set) they fail: CI
//! must never skip them. The embedded-broker test needs no broker and always runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::http::{free_address, http, http_get, http_with};
use common::kafka::{country, write_baseline};
use driftgate::policy::{Decision, Outcome};
use driftgate::store::{RunStatus, Store, StoreUrl};
use driftgate::SplitMix64;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const RECORDS_PER_MESSAGE: usize = 100;
const WINDOW_RECORDS: usize = 400;
const ALERT_SECRET: &str = "test-secret";
const RUN_TOKEN: &str = "test-token-6c1f0e9a2b";

fn broker() -> Option<String> {
    match std::env::var("DRIFTGATE_TEST_BROKER") {
        Ok(address) => Some(address),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!(
                "DRIFTGATE_TEST_BROKER is not set under CI: run the tests through scripts/test.sh"
            )
        }
        Err(_) => {
            eprintln!(
                "DRIFTGATE_TEST_BROKER is not set: broker tests not run (use scripts/test.sh)"
            );
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A test's files: baseline, configuration, store.
struct Setup {
    dir: tempfile::TempDir,
    api: String,
    partitions: i32,
    config: PathBuf,
    store: PathBuf,
    topic: String,
    dead_letter_topic: Option<String>,
    broker: String,
}

fn create_topic(broker: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .unwrap();
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results =
        futures_executor::block_on(admin.create_topics([&new_topic], &AdminOptions::new()));
    for result in results.expect("create_topics answered") {
        result.expect("topic created");
    }
}

fn setup(broker: String, partitions: i32) -> Setup {
    setup_with(broker, partitions, false)
}

fn setup_with(broker: String, partitions: i32, with_dead_letter_topic: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    write_baseline(&baseline, 21, 5000);

    let topic = unique("features");
    create_topic(&broker, &topic, partitions);
    let dead_letter_topic = with_dead_letter_topic.then(|| {
        let name = unique("dlq");
        create_topic(&broker, &name, 1);
        name
    });
    let dead_letter_line = dead_letter_topic
        .as_ref()
        .map(|t| format!("dead_letter_topic = \"{t}\""))
        .unwrap_or_default();

    let store = dir.path().join("var/driftgate.db");
    let config = dir.path().join("driftgate.toml");
    let api = free_address();
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
bootstrap_servers = "{broker}"
group_id = "{group}"
[kafka.properties]
"session.timeout.ms" = "6000"
"statistics.interval.ms" = "300"

[store]
path = "{store}"
checkpoint_interval = "200ms"

[api]
listen = "{api}"

[[streams]]
name = "payments"
topic = "{topic}"
baseline = "{baseline}"
window = {{ records = {WINDOW_RECORDS} }}
{dead_letter_line}
features = [
  {{ name = "amount", kind = "numeric" }},
  {{ name = "country", kind = "categorical" }},
]
# A one-sigma shift in 400 records has p far below this; unchanged features rarely do.
drift = {{ alpha = 0.001 }}

[[models]]
name = "fraud"
stream = "payments"
features = ["amount", "country"]

[[models]]
name = "geo"
stream = "payments"
features = ["country"]

[[policies]]
name = "fraud-amount"
model = "fraud"
consecutive = 2
when = {{ feature = "amount", metric = "ks.p_value", below = 0.001 }}

[[policies]]
name = "geo-drift"
model = "geo"
when = {{ feature = "*" }}
"#,
            group = unique("group"),
            store = store.display(),
            baseline = baseline.display(),
        ),
    )
    .unwrap();
    Setup {
        dir,
        api,
        partitions,
        config,
        store,
        topic,
        dead_letter_topic,
        broker,
    }
}

/// Produces `messages` messages of 100 records; `amount` shifts by one sigma from message
/// `shift_from` on. Messages `first..first+messages` of one deterministic sequence.
fn produce(setup: &Setup, first: usize, messages: usize, shift_from: usize, bad_at: Option<usize>) {
    // One message per batch: tansu 0.6.0 answers ListOffsets (latest) with the last batch's
    // base offset + 1, so with batching `replay --topic` would see a short topic. Apache
    // Kafka and Redpanda answer with the true end.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &setup.broker)
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let mut rng = SplitMix64::new(22);
    for m in 0..first + messages {
        let records: Vec<_> = (0..RECORDS_PER_MESSAGE)
            .map(|_| {
                let shift = if m >= shift_from { 1.0 } else { 0.0 };
                serde_json::json!({"amount": rng.normal() + shift, "country": country(&mut rng)})
            })
            .collect();
        if m < first {
            continue;
        }
        // Round-robin over the partitions: keyless messages would otherwise stick to one
        // partition per batch, and a test of partition sharing would depend on luck.
        let partition = Some(m as i32 % setup.partitions);
        if bad_at == Some(m) {
            send(&producer, &setup.topic, partition, b"{not json".to_vec());
        }
        let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
        send(&producer, &setup.topic, partition, payload);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("messages delivered");
}

fn send(producer: &BaseProducer, topic: &str, partition: Option<i32>, payload: Vec<u8>) {
    loop {
        let mut record = BaseRecord::<(), _>::to(topic).payload(&payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        match producer.send(record) {
            Ok(()) => return,
            Err((err, _)) => {
                // The local queue is full: let deliveries drain, then retry.
                eprintln!("produce backpressure: {err}");
                producer.poll(Duration::from_millis(100));
            }
        }
    }
}

/// A running service that is killed if the test fails before stopping it, so a failing test
/// never leaves a process behind.
struct Service(Child);

impl std::ops::Deref for Service {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(setup: &Setup) -> Service {
    start_with(&setup.config, false)
}

fn start_with(config: &Path, pipe_stderr: bool) -> Service {
    let mut command = Command::new(env!("CARGO_BIN_EXE_driftgate"));
    command
        .args(["run", "--config"])
        .arg(config)
        .env("DRIFTGATE_LOG", "info")
        // Read by configurations whose webhook sinks name it in `secret_env`, and whose
        // `runs.token_env` names the token.
        .env("DRIFTGATE_TEST_SECRET", ALERT_SECRET)
        .env("DRIFTGATE_TEST_TOKEN", RUN_TOKEN);
    if pipe_stderr {
        command.stderr(std::process::Stdio::piped());
    }
    Service(command.spawn().expect("driftgate starts"))
}

/// Follows a service's log (started with `pipe_stderr`), echoing it with a label, and waits
/// (bounded) for the first line `matches` turns into a value: the service's own signal.
fn wait_for_log<T: Send + 'static>(
    service: &mut Service,
    label: &'static str,
    timeout: Duration,
    matches: impl Fn(&str) -> Option<T> + Send + 'static,
) -> Option<T> {
    let stderr = service.0.stderr.take().expect("stderr is piped");
    let (found_tx, found_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("[{label}] {line}");
            if let Some(found) = matches(&line) {
                let _ = found_tx.send(found);
            }
        }
    });
    found_rx.recv_timeout(timeout).ok()
}

/// Waits (bounded) until the store satisfies `done`, checking the child is still alive.
/// Polls the store until `done`. The service may not have created its tables yet: `done` must
/// read a failing query as "not yet".
fn wait_for(store: &Path, child: &mut Service, what: &str, done: impl Fn(&Store) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if store.exists() {
            if let Ok(opened) = Store::open_read_only(&StoreUrl::sqlite(store)) {
                if done(&opened) {
                    return;
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("driftgate exited with {status} while waiting for {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn windows(store: &Path) -> Vec<serde_json::Value> {
    let mut windows: Vec<_> = Store::open_read_only(&StoreUrl::sqlite(store))
        .unwrap()
        .latest_windows("payments", 1000)
        .unwrap()
        .into_iter()
        .map(|w| w.report)
        .collect();
    windows.reverse();
    windows
}

fn terminate(child: &mut Service) -> std::process::ExitStatus {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM sent");
    child.wait().unwrap()
}

#[test]
fn windows_on_tansu_flag_exactly_the_shifted_windows_and_features() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    // 6 windows of 400 records; amount shifts from window 3 (message 12) on.
    produce(&setup, 0, 24, 12, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "6 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() >= 6)
    });
    check_api(&setup, &mut child);
    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    // Replaying the topic decides exactly as the service did.
    let live: Vec<Decision> = {
        let mut all = Store::open_read_only(&StoreUrl::sqlite(&setup.store))
            .unwrap()
            .latest_decisions(None, 1000)
            .unwrap();
        all.reverse();
        all
    };
    assert_eq!(live.len(), 12, "6 windows × 2 policies");
    let replayed = replay_topic(&setup, &[]);
    assert_eq!(replayed["messages"], 24);
    let replayed: Vec<Decision> = replayed["windows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["decisions"].as_array().unwrap().clone())
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    assert_eq!(replayed, live);

    let windows = windows(&setup.store);
    assert_eq!(windows.len(), 6);
    for (i, window) in windows.iter().enumerate() {
        assert_eq!(window["window"]["index"], i as u64);
        assert_eq!(window["window"]["records"], WINDOW_RECORDS as u64);
        let amount = &window["features"][0];
        assert_eq!(amount["name"], "amount");
        assert_eq!(
            amount["drift"]["detected"],
            i >= 3,
            "window {i}: {}",
            amount["drift"]
        );
        assert_eq!(
            window["features"][1]["drift"]["detected"], false,
            "window {i}"
        );
    }
}

/// `driftgate replay --topic` on the setup's topic; its JSON output.
fn replay_topic(setup: &Setup, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .arg("replay")
        .arg("--config")
        .arg(&setup.config)
        .args(["--topic", &setup.topic, "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn replay_reads_an_offset_range_of_every_partition_without_committing() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 2);
    // 24 messages round-robin: 12 per partition, offsets 0..12 in each.
    produce(&setup, 0, 24, 12, None);
    // Partition 0 from offset 2 to 8, partition 1 from 2 to 10: 6 + 8 messages.
    let replayed = replay_topic(&setup, &["--start", "2", "--end", "0:8,1:10"]);
    assert_eq!(replayed["messages"], 14);
    assert_eq!(replayed["records"], 1400);
    assert_eq!(replayed["windows"].as_array().unwrap().len(), 3);
    assert_eq!(replayed["open_records"], 200);
    let offsets = &replayed["windows"][0]["decisions"][0]["span"]["offsets"];
    assert_eq!(
        offsets[format!("{}/0", setup.topic)]["first"],
        2,
        "{offsets}"
    );
    // Everything, by default; and again: nothing was committed, nothing consumed for good.
    for _ in 0..2 {
        let all = replay_topic(&setup, &[]);
        assert_eq!(all["messages"], 24);
        assert_eq!(all["records"], 2400);
    }
    // Bad bounds are usage errors (exit 2) that say what is wrong.
    for (args, expected) in [
        (
            ["--start", "soon"],
            "--start: \"soon\" is not an offset bound",
        ),
        (
            ["--end", "5:10"],
            "partition 5 does not exist (the topic has 2)",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .arg("replay")
            .arg("--config")
            .arg(&setup.config)
            .args(["--topic", &setup.topic])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

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

#[test]
fn a_sigkill_mid_stream_loses_and_repeats_nothing() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 3);
    // First 10 messages: two full windows and 200 records in the open one. One bad message.
    produce(&setup, 0, 10, usize::MAX, Some(5));
    let mut child = start(&setup);
    wait_for(
        &setup.store,
        &mut child,
        "2 windows and a checkpointed open window",
        |s| {
            s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 2)
                && s.checkpoint("payments")
                    .unwrap()
                    .is_some_and(|c| c.open_window.records == 200)
        },
    );
    child.kill().unwrap(); // SIGKILL: no chance to checkpoint or commit anything more
    child.wait().unwrap();

    produce(&setup, 10, 14, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "6 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() >= 6)
    });
    assert!(terminate(&mut child).success());

    let windows = windows(&setup.store);
    let indices: Vec<u64> = windows
        .iter()
        .map(|w| w["window"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indices,
        vec![0, 1, 2, 3, 4, 5],
        "consecutive, none lost, none repeated"
    );
    let total: u64 = windows
        .iter()
        .map(|w| w["window"]["records"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2400, "every record counted exactly once");
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    assert_eq!(
        store
            .checkpoint("payments")
            .unwrap()
            .unwrap()
            .open_window
            .records,
        0
    );
    let letters = store.dead_letters("payments").unwrap();
    assert_eq!(letters.len(), 1, "the bad message is kept once");
    assert_eq!(letters[0].reason, "invalid_json");
    // One dead letter in a window's messages is over the 1% dead-letter rate (which window
    // depends on the order the three partitions were read in).
    assert_eq!(quality_alerts(&store).len(), 1, "one data-quality alert");
    // Every window judged once by each policy, across the crash.
    let mut judged: Vec<(String, u64)> = store
        .latest_decisions(None, 100)
        .unwrap()
        .into_iter()
        .map(|d| (d.policy, d.window))
        .collect();
    judged.sort();
    let expected: Vec<(String, u64)> = ["fraud-amount", "geo-drift"]
        .iter()
        .flat_map(|p| (0..6).map(move |w| (p.to_string(), w)))
        .collect();
    assert_eq!(judged, expected);
}

/// The ids of the store's data-quality alerts.
fn quality_alerts(store: &Store) -> Vec<String> {
    store
        .alert_statuses(None, None, 100)
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == "data_quality")
        .map(|a| a.id)
        .collect()
}

#[test]
fn a_dead_letter_in_the_open_window_is_counted_across_a_sigkill() {
    let Some(broker) = broker() else { return };
    // One partition: the windows follow the order produced.
    let setup = setup(broker, 1);
    // Windows 0 and 1, stored before the bad message is sent: while a closed window's report is
    // made in the background, the messages read meanwhile count into that window.
    produce(&setup, 0, 8, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "2 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 2)
    });
    // Then the bad message and 200 records in the open window 2.
    produce(&setup, 8, 2, usize::MAX, Some(8));
    wait_for(&setup.store, &mut child, "window 2 checkpointed", |s| {
        s.checkpoint("payments")
            .unwrap()
            .is_some_and(|c| c.open_window.index == 2 && c.open_window.records == 200)
    });
    child.kill().unwrap(); // SIGKILL: the dead letter's count is only in the checkpoint
    child.wait().unwrap();
    produce(&setup, 10, 2, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "3 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 3)
    });
    assert!(terminate(&mut child).success());
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    // One dead letter in window 2's five messages is over the 1% dead-letter rate.
    assert_eq!(quality_alerts(&store), ["data_quality:payments:2"]);
}

#[test]
fn undecodable_messages_go_to_the_dead_letter_topic_with_their_origin() {
    let Some(broker) = broker() else { return };
    let setup = setup_with(broker, 1, true);
    produce(&setup, 0, 4, usize::MAX, Some(2));
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "one window", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 1)
    });
    assert!(terminate(&mut child).success());
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    assert!(
        store.dead_letters("payments").unwrap().is_empty(),
        "sent to the topic instead"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.broker)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let dlq = setup.dead_letter_topic.as_deref().unwrap();
    consumer.subscribe(&[dlq]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let message = loop {
        assert!(Instant::now() < deadline, "no dead letter arrived");
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            break result.expect("dead letter readable").detach();
        }
    };
    assert_eq!(message.payload(), Some(&b"{not json"[..]));
    let headers: std::collections::HashMap<String, String> = message
        .headers()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert_eq!(headers["driftgate.reason"], "invalid_json");
    assert_eq!(headers["driftgate.source.topic"], setup.topic);
    assert_eq!(headers["driftgate.source.partition"], "0");
    assert_eq!(headers["driftgate.source.offset"], "2");
    assert!(headers["driftgate.error"].contains("invalid JSON"));
}

/// Issue 21: with a dead-letter topic that does not exist, a dead letter was queued, failed
/// unchecked later, and offsets were committed past it (it was lost); each window close waited
/// for the producer. Now a dead letter stays in the store until its topic confirms it — this
/// one never is — and is counted; windows close meanwhile.
#[test]
fn issue_21_a_missing_dead_letter_topic_loses_no_dead_letter() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    // Never created: tansu does not create topics on demand.
    let missing = unique("missing-dlq");
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(
            &format!("window = {{ records = {WINDOW_RECORDS} }}"),
            &format!(
                "window = {{ records = {WINDOW_RECORDS} }}\ndead_letter_topic = \"{missing}\""
            ),
        )
        .replace(
            "[kafka.properties]\n",
            "[kafka.properties]\n\"message.timeout.ms\" = \"3000\"\n",
        );
    std::fs::write(&setup.config, text).unwrap();
    produce(&setup, 0, 8, usize::MAX, Some(1));
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "two windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 2)
    });
    wait_for(&setup.store, &mut child, "the refused dead letter", |_| {
        http_get(&setup.api, "/metrics")
            .1
            .contains("driftgate_dead_letters_kept_total 1")
    });
    assert!(terminate(&mut child).success());
    let letters = Store::open_read_only(&StoreUrl::sqlite(&setup.store))
        .unwrap()
        .dead_letters("payments")
        .unwrap();
    assert_eq!(letters.len(), 1, "kept in the store");
    assert_eq!(letters[0].offset, 1);
    assert_eq!(letters[0].payload.as_deref(), Some(&b"{not json"[..]));
}

/// Issue 21: after a topic was re-created (the broker lost its data), the new records were
/// skipped as already counted, with no log line and a lag of 0. Here the checkpoint is moved
/// beyond the partition's end, as a re-created topic leaves it: the restarted service resumes
/// from the earliest offset (the default rule), counts it and raises `offsets_reset`.
#[test]
fn issue_21_a_checkpoint_beyond_the_partition_end_resumes_and_alerts() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    produce(&setup, 0, 4, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "the first window", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 1)
    });
    assert!(terminate(&mut child).success());
    // The log the checkpoint counted is gone; the partition ends far before it.
    {
        let mut store = Store::open(&StoreUrl::sqlite(&setup.store)).unwrap();
        let mut checkpoint = store.checkpoint("payments").unwrap().unwrap();
        let key = format!("{}/0", setup.topic);
        *checkpoint.next_offsets.get_mut(&key).unwrap() += 100_000;
        store.commit("payments", &[], &checkpoint, 100).unwrap();
    }
    produce(&setup, 4, 4, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(
        &setup.store,
        &mut child,
        "the windows after the reset",
        |s| s.latest_windows("payments", 10).is_ok_and(|w| w.len() >= 2),
    );
    let (_, metrics) = http_get(&setup.api, "/metrics");
    assert!(
        metrics.contains("driftgate_offset_resets_total{stream=\"payments\"} 1"),
        "{metrics}"
    );
    assert!(terminate(&mut child).success());
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    let resets = store.alert_statuses(None, None, 100).unwrap();
    assert!(
        resets
            .iter()
            .any(|a| a.id.starts_with("offsets_reset:payments:0:")),
        "{resets:?}"
    );
}

/// Records counted by an instance: closed windows plus its open window.
fn counted(store: &Store) -> u64 {
    let closed: u64 = store
        .latest_windows("payments", 1000)
        .unwrap()
        .iter()
        .map(|w| w.report["window"]["records"].as_u64().unwrap())
        .sum();
    closed
        + store
            .checkpoint("payments")
            .unwrap()
            .map_or(0, |c| c.open_window.records)
}

#[test]
fn two_instances_in_one_group_split_the_partitions_and_count_every_record_once() {
    let Some(broker) = broker() else { return };
    let first = setup(broker, 4);
    // The second instance: same group, topic and baseline; its own store.
    let second_store = first.dir.path().join("var/second.db");
    let second_config = first.dir.path().join("second.toml");
    let text = std::fs::read_to_string(&first.config).unwrap();
    std::fs::write(
        &second_config,
        text.replace("var/driftgate.db", "var/second.db")
            .replace(&first.api, &free_address()),
    )
    .unwrap();

    produce(&first, 0, 20, usize::MAX, None);
    let mut a = start(&first);
    wait_for(
        &first.store,
        &mut a,
        "the first instance to count records",
        |s| counted(s) > 0,
    );
    let mut b = start_with(&second_config, true);
    // The signal that the group rebalanced: the second instance logs its assignment.
    wait_for_log(&mut b, "second", Duration::from_secs(60), |line| {
        (line.contains("partitions assigned") && !line.contains("partitions=0")).then_some(())
    })
    .expect("the second instance was assigned partitions");
    produce(&first, 20, 20, usize::MAX, None);
    let total = 40 * RECORDS_PER_MESSAGE as u64;
    // Wait until both instances together have counted every record (more would be a double
    // count, and is caught below).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let sum = Store::open_read_only(&StoreUrl::sqlite(&first.store)).map_or(0, |s| counted(&s))
            + Store::open_read_only(&StoreUrl::sqlite(&second_store)).map_or(0, |s| counted(&s));
        if sum >= total {
            break;
        }
        assert!(Instant::now() < deadline, "counted {sum} of {total}");
        assert!(a.try_wait().unwrap().is_none() && b.try_wait().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(terminate(&mut b).success());
    assert!(terminate(&mut a).success());
    let a_count = counted(&Store::open_read_only(&StoreUrl::sqlite(&first.store)).unwrap());
    let b_count = counted(&Store::open_read_only(&StoreUrl::sqlite(&second_store)).unwrap());
    assert_eq!(
        a_count + b_count,
        total,
        "every record exactly once: {a_count} + {b_count}"
    );
    assert!(b_count > 0, "the second instance got partitions");
}

fn check_api(setup: &Setup, child: &mut Service) {
    let api = setup.api.as_str();
    assert_eq!(http_get(api, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http_get(api, "/readyz").0, 200);

    // Lag comes from librdkafka statistics; wait (bounded) for the first report of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (status, body) = http_get(api, "/metrics");
        assert_eq!(status, 200);
        if body.contains("driftgate_consumer_lag{stream=\"payments\",partition=\"0\"} 0") {
            break body;
        }
        assert!(child.try_wait().unwrap().is_none(), "service exited");
        assert!(Instant::now() < deadline, "no consumer lag metric:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for line in [
        "driftgate_records_total{stream=\"payments\"} 2400",
        "driftgate_windows_total{stream=\"payments\"} 6",
        "driftgate_feature_drift_p_value{stream=\"payments\",feature=\"amount\",method=\"ks\"}",
        "driftgate_feature_drift_detected{stream=\"payments\",feature=\"amount\"} ",
        "driftgate_dataset_drift{stream=\"payments\"} 1",
        "driftgate_decisions_total{model=\"fraud\",policy=\"fraud-amount\",outcome=\"triggered\"} 1",
        "driftgate_decisions_total{model=\"fraud\",policy=\"fraud-amount\",outcome=\"not_triggered\"} 5",
        "driftgate_decisions_total{model=\"geo\",policy=\"geo-drift\",outcome=\"triggered\"} 0",
        "driftgate_decisions_total{model=\"geo\",policy=\"geo-drift\",outcome=\"not_triggered\"} 6",
        "driftgate_build_info{version=",
        "process_resident_memory_bytes ",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    let (status, body) = http_get(api, "/api/v1/streams");
    assert_eq!(status, 200);
    let streams: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(streams["streams"][0]["name"], "payments");
    assert_eq!(streams["streams"][0]["records"], 2400);
    assert_eq!(streams["streams"][0]["window"], "400 records");

    let (status, body) = http_get(api, "/api/v1/streams/payments/windows?limit=2");
    assert_eq!(status, 200);
    let windows: serde_json::Value = serde_json::from_str(&body).unwrap();
    let indices: Vec<u64> = windows["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["window"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![5, 4], "newest first");
    assert_eq!(http_get(api, "/api/v1/streams/nope/windows").0, 404);

    // Amount shifts from window 3: the policy needs two windows in a row, so it triggers at
    // window 4, and window 5 starts a fresh run. Country never drifts.
    let (status, body) = http_get(api, "/api/v1/decisions?model=fraud");
    assert_eq!(status, 200);
    let decisions: serde_json::Value = serde_json::from_str(&body).unwrap();
    let outcomes: Vec<(u64, &str)> = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["window"].as_u64().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (5, "not_triggered"),
            (4, "triggered"),
            (3, "not_triggered"),
            (2, "not_triggered"),
            (1, "not_triggered"),
            (0, "not_triggered"),
        ]
    );
    let triggered = &decisions["decisions"][1];
    assert_eq!(triggered["key"], "fraud-amount/fraud/payments/4");
    // Window 4 holds messages 16 to 19 of the one partition.
    let span = &triggered["span"]["offsets"][format!("{}/0", setup.topic)];
    assert_eq!(
        (span["first"].as_i64(), span["last"].as_i64()),
        (Some(16), Some(19))
    );
    assert_eq!(triggered["drifted_features"], serde_json::json!(["amount"]));
    let reason = triggered["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("amount: ks.p_value ")
            && reason.ends_with(" < 0.001 in 2 consecutive windows"),
        "{reason}"
    );
    let (_, body) = http_get(api, "/api/v1/decisions?model=geo&limit=3");
    let geo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(geo["decisions"].as_array().unwrap().len(), 3);
    assert_eq!(
        geo["decisions"][0]["reason"],
        "not met: country: drift not detected"
    );
    assert_eq!(http_get(api, "/api/v1/decisions?model=nope").0, 404);
}

/// A service on the embedded broker (`bootstrap_servers = "embedded"`), with a producer.
struct Embedded {
    service: Service,
    producer: BaseProducer,
    store: PathBuf,
    api: String,
    rng: SplitMix64,
}

/// Starts a service on its embedded broker: one stream of 200-record windows, plus `extra`
/// configuration (top-level keys first, then tables).
fn start_embedded(dir: &Path, top: &str, extra: &str) -> Embedded {
    let baseline = dir.join("baseline.json");
    write_baseline(&baseline, 31, 2000);
    let store = dir.join("embedded.db");
    let config = dir.join("embedded.toml");
    let api = free_address();
    std::fs::write(
        &config,
        format!(
            r#"
{top}
[kafka]
bootstrap_servers = "embedded"
[store]
path = "{store}"
checkpoint_interval = "200ms"
[api]
listen = "{api}"
[[streams]]
name = "payments"
topic = "payments.features"
baseline = "{baseline}"
window = {{ records = 200 }}
features = [{{ name = "amount", kind = "numeric" }}, {{ name = "country", kind = "categorical" }}]
{extra}
"#,
            store = store.display(),
            baseline = baseline.display(),
        ),
    )
    .unwrap();
    let mut service = start_with(&config, true);
    let bootstrap = wait_for_log(&mut service, "embedded", Duration::from_secs(30), |line| {
        let (_, rest) = line.split_once("bootstrap=")?;
        Some(
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        )
    })
    .expect("the embedded broker's address is logged");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    Embedded {
        service,
        producer,
        store,
        api,
        rng: SplitMix64::new(32),
    }
}

impl Embedded {
    /// Sends `messages` messages of 100 unshifted records and waits until they are delivered.
    fn produce(&mut self, messages: usize) {
        for _ in 0..messages {
            let records: Vec<_> = (0..100)
                .map(|_| {
                    serde_json::json!({"amount": self.rng.normal(), "country": country(&mut self.rng)})
                })
                .collect();
            let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
            send(&self.producer, "payments.features", None, payload);
        }
        self.producer
            .flush(Duration::from_secs(30))
            .expect("delivered to the embedded broker");
    }

    /// Sends these payloads, in order, to partition 0.
    fn send_payloads(&self, payloads: &[String]) {
        for payload in payloads {
            send(
                &self.producer,
                "payments.features",
                Some(0),
                payload.clone().into_bytes(),
            );
        }
        self.producer
            .flush(Duration::from_secs(30))
            .expect("delivered to the embedded broker");
    }

    fn wait_for_windows(&mut self, count: usize) {
        let what = format!("{count} windows");
        wait_for(&self.store, &mut self.service, &what, |s| {
            s.latest_windows("payments", 100)
                .is_ok_and(|w| w.len() == count)
        });
    }
}

/// `bootstrap_servers = "embedded"` needs no broker at all, so this test always runs: the
/// in-process cluster listens on loopback, and its address is in the service's log.
#[test]
fn the_embedded_broker_runs_the_whole_loop_with_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let mut embedded = start_embedded(dir.path(), "", "");
    embedded.produce(4);
    embedded.wait_for_windows(2);
    assert!(terminate(&mut embedded.service).success());
}

/// The policy each window of the reload test was judged by.
fn judged_by(store: &Path) -> Vec<(u64, String, String)> {
    let mut judged: Vec<_> = Store::open_read_only(&StoreUrl::sqlite(store))
        .unwrap()
        .latest_decisions(None, 100)
        .unwrap()
        .into_iter()
        .map(|d| (d.window, d.policy, d.outcome.as_str().to_string()))
        .collect();
    judged.sort();
    judged
}

fn reloads(api: &str, outcome: &str) -> u64 {
    let (_, metrics) = http_get(api, "/metrics");
    let prefix = format!("driftgate_config_reloads_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_broken_policy_file_is_refused_and_a_fixed_one_applies_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let file = policies.join("payments.toml");
    let model = "[[models]]\nname = \"fraud\"\nstream = \"payments\"\nfeatures = [\"amount\"]\n";
    let policy = |name: &str, rule: &str| {
        format!("{model}[[policies]]\nname = \"{name}\"\nmodel = \"fraud\"\nwhen = {rule}\n")
    };
    std::fs::write(
        &file,
        policy("quiet", r#"{ dataset = "share", above = 2.0 }"#),
    )
    .unwrap();
    // Reloading through the API takes the runs' bearer token.
    let include = format!(
        "include = [\"{}/*.toml\"]\n[runs]\ntoken_env = \"DRIFTGATE_TEST_TOKEN\"",
        policies.display()
    );
    let mut embedded = start_embedded(dir.path(), &include, "");
    let api = embedded.api.clone();
    embedded.produce(2);
    embedded.wait_for_windows(1);

    // A broken file: the reload is refused with the file and key path, the old policy stays.
    std::fs::write(
        &file,
        policy("broken", r#"{ feature = "amount", metric = "nonsense" }"#),
    )
    .unwrap();
    let (status, body) = http(&api, "POST", "/api/v1/reload");
    assert_eq!(status, 401, "issue 14: reload needs the token: {body}");
    let auth = format!("Authorization: Bearer {RUN_TOKEN}");
    let reload = || http_with(&api, "POST", "/api/v1/reload", &[&auth], "");
    let (status, body) = reload();
    assert_eq!(status, 422, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "refused");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}: policies[0].when.metric", file.display())),
        "{error}"
    );
    embedded.produce(2);
    embedded.wait_for_windows(2);
    assert!(reloads(&api, "refused") >= 1);
    // The refusal is an alert too (no sink here: kept in the outbox as unrouted).
    let (_, body) = http_get(&api, "/api/v1/alerts?status=unrouted");
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let refused = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "config_reload_failed")
        .unwrap_or_else(|| panic!("a config_reload_failed alert in {body}"));
    assert!(
        refused["alert"]["error"]
            .as_str()
            .unwrap()
            .contains("policies[0].when.metric"),
        "{refused}"
    );

    // A fixed file: the watcher applies it (no request, no restart) and the next window is
    // judged by the new policy.
    std::fs::write(
        &file,
        policy("loud", r#"{ dataset = "share", above = -1.0 }"#),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reloads(&api, "applied") == 0 {
        assert!(Instant::now() < deadline, "the file change was not applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    embedded.produce(2);
    embedded.wait_for_windows(3);
    assert_eq!(
        judged_by(&embedded.store),
        [
            (0, "quiet".to_string(), "not_triggered".to_string()),
            (1, "quiet".to_string(), "not_triggered".to_string()),
            (2, "loud".to_string(), "triggered".to_string()),
        ]
    );

    // SIGHUP reloads too.
    let applied = reloads(&api, "applied");
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(
        unsafe { libc::kill(embedded.service.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reloads(&api, "applied") == applied {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And so does the API, with the token.
    let (status, body) = reload();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["policies"].as_u64()),
        (Some("applied"), Some(1))
    );
    assert!(terminate(&mut embedded.service).success());
}

#[test]
fn replay_decides_exactly_as_the_live_service_on_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let policies = r#"
[[models]]
name = "fraud"
stream = "payments"
features = ["amount", "country"]

[[policies]]
name = "amount-ks"
model = "fraud"
consecutive = 2
cooldown = "5m"
when = { feature = "amount", metric = "ks.p_value", below = 0.001 }

[[policies]]
name = "amount-rolling"
model = "fraud"
when = { feature = "amount", metric = "ks.statistic", rolling = { deviations = 2.0, over = 4 } }

[[policies]]
name = "any-drift"
model = "fraud"
k_of_n = { k = 2, n = 3 }
budget = { max_runs = 2, per = "1h" }
when = { feature = "*" }
"#;
    let mut embedded = start_embedded(dir.path(), "", policies);
    // 16 windows of 200 records, a record a second; amount shifts from window 6 to 11.
    let mut rng = SplitMix64::new(41);
    let mut payloads = Vec::new();
    for m in 0..32u64 {
        let shift = if (12..22).contains(&m) { 1.0 } else { 0.0 };
        let records: Vec<_> = (0..100u64)
            .map(|r| {
                serde_json::json!({
                    "ts": 1_700_000_000_000u64 + (m * 100 + r) * 1000,
                    "amount": rng.normal() + shift,
                    "country": country(&mut rng),
                })
            })
            .collect();
        payloads.push(serde_json::json!({ "records": records }).to_string());
    }
    embedded.send_payloads(&payloads);
    embedded.wait_for_windows(16);
    assert!(terminate(&mut embedded.service).success());
    let live: Vec<Decision> = {
        let mut all = Store::open_read_only(&StoreUrl::sqlite(&embedded.store))
            .unwrap()
            .latest_decisions(None, 1000)
            .unwrap();
        all.reverse();
        all
    };
    assert_eq!(live.len(), 48, "16 windows × 3 policies");
    assert!(
        live.iter().any(|d| d.outcome == Outcome::Triggered),
        "the shift triggers something"
    );

    let input = dir.path().join("recorded.jsonl");
    std::fs::write(&input, payloads.join("\n") + "\n").unwrap();
    // `driftgate replay` on the same configuration and records; its standard output.
    let replay = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .arg("replay")
            .arg("--config")
            .arg(dir.path().join("embedded.toml"))
            .arg("--input")
            .arg(&input)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let replayed: serde_json::Value = serde_json::from_str(&replay(&["--format", "json"])).unwrap();
    let replayed: Vec<Decision> = replayed["windows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["decisions"].as_array().unwrap().clone())
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    assert_eq!(replayed, live);

    let chart = dir.path().join("replay.svg");
    let table = replay(&["--format", "table", "--chart", chart.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "an SVG chart");
    for title in [
        "amount ks.p_value",
        "amount ks.statistic",
        "country detected",
    ] {
        assert!(svg.contains(title), "a panel for {title}");
    }
    assert!(svg.contains("<circle"), "triggers are marked");
    let triggered = live
        .iter()
        .filter(|d| d.outcome == Outcome::Triggered)
        .count();
    assert!(
        table.contains(&format!("retrains: {triggered}\n")),
        "{table}"
    );
    assert!(
        table.contains("32 messages, 3200 records, 16 windows"),
        "{table}"
    );
}

/// Two streams in one service: a count-windowed stream and a duration-windowed one, each on
/// its own topic, each reported and checkpointed on its own.
#[test]
fn two_streams_one_by_count_one_by_event_time_duration() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    write_baseline(&baseline, 51, 3000);
    let (orders, clicks) = (unique("orders"), unique("clicks"));
    create_topic(&broker, &orders, 2);
    create_topic(&broker, &clicks, 1);
    let store = dir.path().join("two.db");
    let config = dir.path().join("two.toml");
    let api = free_address();
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
bootstrap_servers = "{broker}"
group_id = "{group}"
[store]
path = "{store}"
checkpoint_interval = "200ms"
[api]
listen = "{api}"
[[streams]]
name = "orders"
topic = "{orders}"
baseline = "{baseline}"
window = {{ records = 300 }}
features = [{{ name = "amount", kind = "numeric" }}, {{ name = "country", kind = "categorical" }}]
[[streams]]
name = "clicks"
topic = "{clicks}"
baseline = "{baseline}"
window = {{ duration = "1m", grace = "30s" }}
features = [{{ name = "amount", kind = "numeric" }}]
"#,
            group = unique("group"),
            store = store.display(),
            baseline = baseline.display(),
        ),
    )
    .unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .create()
        .unwrap();
    let mut rng = SplitMix64::new(52);
    // Orders: 9 messages of 100 records over both partitions: 3 windows of 300.
    for m in 0..9 {
        let records: Vec<_> = (0..100)
            .map(|_| serde_json::json!({"amount": rng.normal(), "country": country(&mut rng)}))
            .collect();
        let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
        send(&producer, &orders, Some(m % 2), payload);
    }
    // Clicks: one record every 20 s of event time (in 2023) for 3.5 minutes, one record per
    // message: minutes 0, 1 and 2 close (the first record of the next minute closes each);
    // minute 3 stays open: its end is long past by the wall clock, but the stream was not idle
    // for the 30 s grace before the test stops it.
    let start = 1_700_000_040_000i64; // a minute boundary
    for i in 0..11 {
        let record = serde_json::json!({"ts": start + i * 20_000, "amount": rng.normal()});
        send(
            &producer,
            &clicks,
            Some(0),
            serde_json::to_vec(&record).unwrap(),
        );
    }
    producer.flush(Duration::from_secs(30)).expect("delivered");

    let mut child = start_with(&config, false);
    wait_for(&store, &mut child, "3 windows in each stream", |s| {
        s.latest_windows("orders", 10).is_ok_and(|w| w.len() == 3)
            && s.latest_windows("clicks", 10).is_ok_and(|w| w.len() == 3)
    });
    // Issue 14: every error is JSON; bad and unknown parameters are 400s that name them.
    for (path, status, expected) in [
        (
            "/api/v1/decisions?modle=fraud",
            400,
            "unknown query parameter `modle`; accepted: `model`",
        ),
        (
            "/api/v1/streams/orders/windows?limit=x",
            400,
            "query parameter `limit`",
        ),
        (
            "/api/v1/streams/orders/windows?limit=5000",
            400,
            "5000 is out of range",
        ),
        ("/api/v1/runs?limit=0", 400, "0 is out of range"),
        (
            "/api/v1/decisions?outcome=fired",
            400,
            "`fired` is not an outcome; use triggered",
        ),
        ("/api/v1/decisions?from=noon", 400, "query parameter `from`"),
        (
            "/api/v1/decisions?cursor=abc",
            400,
            "query parameter `cursor`",
        ),
        ("/api/v1/nothing", 404, "no such endpoint"),
        (
            "/api/v1/streams/nope/windows",
            404,
            "no stream named `nope`",
        ),
    ] {
        let (code, body) = http_get(&api, path);
        assert_eq!(code, status, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{path}: {body}"
        );
    }
    let (_, body) = http_get(&api, "/api/v1/streams");
    let streams: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "clicks"]);
    assert!(terminate(&mut child).success());

    let opened = Store::open_read_only(&StoreUrl::sqlite(&store)).unwrap();
    let mut clicks_windows = opened.latest_windows("clicks", 10).unwrap();
    clicks_windows.reverse();
    let spans: Vec<(u64, &str, &str)> = clicks_windows
        .iter()
        .map(|w| {
            (
                w.report["window"]["records"].as_u64().unwrap(),
                w.report["window"]["start"].as_str().unwrap(),
                w.report["window"]["end"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            (3, "2023-11-14T22:14:00.000Z", "2023-11-14T22:15:00.000Z"),
            (3, "2023-11-14T22:15:00.000Z", "2023-11-14T22:16:00.000Z"),
            (3, "2023-11-14T22:16:00.000Z", "2023-11-14T22:17:00.000Z"),
        ]
    );
    let open = opened.checkpoint("clicks").unwrap().unwrap().open_window;
    assert_eq!(open.records, 2, "minute 3 holds two records so far");
    let orders_total: u64 = opened
        .latest_windows("orders", 10)
        .unwrap()
        .iter()
        .map(|w| w.report["window"]["records"].as_u64().unwrap())
        .sum();
    assert_eq!(orders_total, 900);
}
