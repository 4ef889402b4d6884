//! The service end to end on a real Kafka-protocol broker (tansu, started by `scripts/test.sh`,
//! address in `DRIFTGATE_TEST_BROKER`). Each test uses its own topic and group names.
//!
//! Without the variable the tests say so and pass locally; under CI (`CI` set) they fail: CI
//! must never skip them. The embedded-broker test needs no broker and always runs.

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod crashes;
mod instances;
mod policies;
mod windows;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::http::{free_address, http, http_get, http_with};
use common::kafka::{country, write_baseline};
use common::servers::unique;
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

/// The broker `scripts/test.sh` started; `None` (the test not run) outside CI without one.
fn broker() -> Option<String> {
    common::servers::required("DRIFTGATE_TEST_BROKER", "broker tests")
}

/// The decisions of a `replay --format json` report, window after window.
fn replayed_decisions(report: &serde_json::Value) -> Vec<Decision> {
    report["windows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["decisions"].as_array().unwrap().clone())
        .map(|d| serde_json::from_value(d).unwrap())
        .collect()
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
