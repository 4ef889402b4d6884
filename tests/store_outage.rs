//! A store that cannot be reached pauses ingestion; nothing is dropped or half written, and
//! the service resumes where it stopped when the store answers again (issue 16). One instance
//! on tansu (`DRIFTGATE_TEST_BROKER`) writes to PostgreSQL (`DRIFTGATE_TEST_POSTGRES`) through
//! a proxy the test cuts while the stream goes on. Both are started by `scripts/test.sh`; under
//! CI a missing one fails.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{free_address, http_get};
use common::proxy::Proxy;
use common::servers::{create_database, create_topic, required, unique};
use driftgate::SplitMix64;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const RECORDS_PER_MESSAGE: usize = 100;
/// Records per window: four messages.
const WINDOW: usize = 400;

fn write_config(dir: &Path, broker: &str, store: &str, topic: &str) -> std::path::PathBuf {
    let baseline = dir.join("baseline.json");
    common::kafka::write_baseline(&baseline, 21, 5000);
    let config = dir.join("driftgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
bootstrap_servers = "{broker}"
group_id = "{group}"

[store]
url = "{store}"
checkpoint_interval = "200ms"
connect_timeout = "1s"
lease = "3s"

[runs]
dir = "{runs}"

[[streams]]
name = "payments"
topic = "{topic}"
baseline = "{baseline}"
window = {{ records = {WINDOW} }}
features = [
  {{ name = "amount", kind = "numeric" }},
  {{ name = "country", kind = "categorical" }},
]

[[models]]
name = "fraud"
stream = "payments"
features = ["amount", "country"]

[[policies]]
name = "fraud-amount"
model = "fraud"
when = {{ feature = "amount", metric = "ks.p_value", below = 0.001 }}
"#,
            group = unique("group"),
            runs = dir.join("runs").display(),
            baseline = baseline.display(),
        ),
    )
    .unwrap();
    config
}

/// Produces `messages` messages of records, one batch each, alternating the two partitions.
fn produce(producer: &BaseProducer, topic: &str, rng: &mut SplitMix64, messages: usize) {
    for m in 0..messages {
        let records: Vec<_> = (0..RECORDS_PER_MESSAGE)
            .map(|_| {
                let country = common::kafka::country(rng);
                serde_json::json!({"amount": rng.normal(), "country": country})
            })
            .collect();
        let payload = serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap();
        send(producer, topic, m as i32 % 2, &payload);
    }
}

fn send(producer: &BaseProducer, topic: &str, partition: i32, payload: &[u8]) {
    producer
        .send(
            BaseRecord::<(), _>::to(topic)
                .payload(payload)
                .partition(partition),
        )
        .expect("queued");
    producer.flush(Duration::from_secs(30)).expect("delivered");
}

fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).map_or(-1, |row| row.get(0))
}

/// Waits until `done`, checking that the service is still running.
fn wait_until(what: &str, child: &mut Child, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("driftgate exited with {status} while waiting for {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `/readyz` says about ingestion.
fn ingestion(api: &str) -> String {
    let (_, body) = http_get(api, "/readyz");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["checks"]["ingestion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn issue_16_an_unreachable_store_pauses_ingestion_and_loses_nothing() {
    let (Some(broker), Some(server)) = (
        required("DRIFTGATE_TEST_BROKER", "store outage test"),
        required("DRIFTGATE_TEST_POSTGRES", "store outage test"),
    ) else {
        return;
    };
    let topic = unique("outage");
    create_topic(&broker, &topic, 2);
    let name = create_database(&server, "outage");
    let (user, host) = server
        .trim_start_matches("postgres://")
        .split_once('@')
        .expect("postgres://USER@HOST:PORT");
    let proxy = Proxy::start(host);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("postgres://{user}@{}/{name}", proxy.address);
    let config = write_config(dir.path(), &broker, &store, &topic);
    let api = free_address();
    let log = std::fs::File::create(dir.path().join("driftgate.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["run", "--config"])
        .arg(&config)
        .env("DRIFTGATE_LOG", "info")
        .env("DRIFTGATE__API__LISTEN", &api)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("driftgate starts");
    let mut db = postgres::Client::connect(&format!("{server}/{name}"), postgres::NoTls).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let mut rng = SplitMix64::new(3);

    // Before: five windows stored.
    produce(&producer, &topic, &mut rng, 20);
    wait_until("the first windows", &mut child, || {
        count(&mut db, "SELECT COUNT(*) FROM windows") == 5
    });

    // The store out of reach while the stream goes on: ingestion pauses, the process stays.
    proxy.cut();
    produce(&producer, &topic, &mut rng, 10);
    send(&producer, &topic, 0, b"{not json");
    produce(&producer, &topic, &mut rng, 10);
    wait_until("ingestion to pause", &mut child, || {
        ingestion(&api).contains("ingestion is paused")
    });
    let (_, metrics) = http_get(&api, "/metrics");
    assert!(
        metrics.contains("driftgate_ingestion_paused 1"),
        "{metrics}"
    );
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM windows"), 5);

    // Back: everything produced is counted once, the dead letter kept, ingestion resumed.
    proxy.restore();
    wait_until("every window", &mut child, || {
        count(&mut db, "SELECT COUNT(*) FROM windows") == 10 && ingestion(&api) == "ok"
    });
    let records = count(
        &mut db,
        "SELECT SUM((report::jsonb -> 'window' ->> 'records')::BIGINT)::BIGINT FROM windows",
    );
    assert_eq!(
        records,
        (40 * RECORDS_PER_MESSAGE) as i64,
        "every record once"
    );
    let distinct = count(&mut db, "SELECT COUNT(DISTINCT idx) FROM windows");
    assert_eq!(distinct, 10, "no window twice");
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM dead_letters"), 1);
    let (_, metrics) = http_get(&api, "/metrics");
    assert!(
        metrics.contains("driftgate_ingestion_paused 0"),
        "{metrics}"
    );

    // SAFETY: kill(2) on our own child, not yet waited for.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("driftgate.log")).unwrap();
    assert!(status.success(), "driftgate stopped with {status}:\n{log}");
    assert!(log.contains("ingestion resumes"), "{log}");
}
