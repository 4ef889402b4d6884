//! Offsets committed to Kafka are never ahead of the store: a window closing on one stream
//! commits the other streams' offsets only as far as their checkpoints, so a crash before their
//! first checkpoint re-reads their records instead of skipping them. The service runs against a
//! librdkafka mock cluster this test hosts.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{free_address, http_get};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn write_config(dir: &std::path::Path, broker: &str, api: &str) -> std::path::PathBuf {
    let baseline = dir.join("baseline.json");
    common::kafka::write_baseline(&baseline, 21, 500);
    let config = dir.join("driftgate.toml");
    let stream = |name: &str, records: u32| {
        format!(
            r#"
[[streams]]
name = "{name}"
topic = "{name}"
baseline = "{baseline}"
window = {{ records = {records} }}
features = [
  {{ name = "amount", kind = "numeric" }},
  {{ name = "country", kind = "categorical" }},
]
"#,
            baseline = baseline.display()
        )
    };
    let text = format!(
        r#"
[kafka]
bootstrap_servers = "{broker}"
group_id = "commits"
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[store]
url = "sqlite:{store}"
checkpoint_interval = "1h"

[api]
listen = "{api}"
{a}{b}"#,
        store = dir.join("store.db").display(),
        a = stream("a", 10),
        b = stream("b", 1000),
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn start(config: &std::path::Path) -> Child {
    let log = std::fs::File::create(config.with_extension("log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("driftgate starts")
}

/// A counter of the service's metrics, labelled by stream.
fn metric(api: &str, name: &str, stream: &str) -> Option<u64> {
    std::net::TcpStream::connect(api).ok()?;
    let (_, body) = http_get(api, "/metrics");
    let prefix = format!("{name}{{stream=\"{stream}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_until(what: &str, child: &mut Child, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "driftgate exited while waiting for {what}"
        );
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(producer: &BaseProducer, topic: &str, messages: usize) {
    for _ in 0..messages {
        let payload = br#"{"amount": 1.5, "country": "FR"}"#;
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .payload(&payload[..])
                    .partition(0),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// The group's committed offset of `topic`'s partition 0, if any.
fn committed(broker: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "commits")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(5))
        .unwrap();
    match committed.elements()[0].offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

#[test]
fn a_window_closing_on_one_stream_never_commits_another_streams_unstored_offsets() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("a", 1, 1).unwrap();
    cluster.create_topic("b", 1, 1).unwrap();
    let broker = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let api = free_address();
    let config = write_config(dir.path(), &broker, &api);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .create()
        .unwrap();

    let mut child = start(&config);
    send(&producer, "b", 5);
    wait_until("stream b's records", &mut child, || {
        metric(&api, "driftgate_records_total", "b") == Some(5)
    });
    // Stream a closes two windows, each committed with a's checkpoint; b has none yet.
    send(&producer, "a", 20);
    wait_until("stream a's windows", &mut child, || {
        metric(&api, "driftgate_windows_total", "a") == Some(2)
    });
    assert_eq!(
        committed(&broker, "a"),
        Some(20),
        "a's offsets are committed"
    );
    assert_eq!(committed(&broker, "b"), None, "b's are only in memory");

    // A crash before b's first checkpoint: b's records are read again, not skipped.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = start(&config);
    wait_until("stream b's records again", &mut child, || {
        metric(&api, "driftgate_records_total", "b") == Some(5)
    });
    child.kill().unwrap();
    child.wait().unwrap();
}
