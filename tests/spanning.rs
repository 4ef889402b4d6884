//! Windows that span instances (issue 17): three instances share a PostgreSQL store
//! (`DRIFTGATE_TEST_POSTGRES`) and a six-partition topic whose partitions each carry one kind of
//! customer: each partition alone is far from the baseline, the stream as a whole is not, except
//! in three intervals where every amount shifts. Every three-second interval of event time
//! becomes one window of the stream, whatever instance read which partition; its report is bit
//! for bit the report of one processor reading the whole stream in time order, and the policy
//! triggers on the three shifted windows and no other — with instances killed and restarted (the one merging
//! the windows first), on librdkafka's mock cluster and on tansu (`DRIFTGATE_TEST_BROKER`).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::free_address;
use common::servers::{create_database, create_topic, required, unique};
use driftgate::pipeline::{Message, StreamProcessor};
use driftgate::SplitMix64;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const PARTITIONS: i32 = 6;
const MESSAGES: i64 = 180;
const RECORDS_PER_MESSAGE: i64 = 40;
/// Event time between messages: twelve messages, two per partition, per three-second interval.
const STEP_MS: i64 = 250;
/// The windows whose amounts shift.
const SHIFTED: [u64; 3] = [5, 6, 7];
/// The message that cannot be decoded (a dead letter): by its place, in window 3; it has no
/// time, so it counts in the window its partition has open, 2 (message 34 was its last record).
const UNDECODABLE: i64 = 40;
/// A multiple of the window length: each window holds twelve messages.
const BASE_MS: i64 = 1_700_000_001_000;
const WHAT: &str = "windows spanning instances";

/// The stream's grace is also how long a partition must be silent to count as idle (its
/// watermark then follows the wall clock, far past these event times): five seconds, so that a
/// producer held up on a loaded machine never makes a partition idle mid-stream, which would
/// rightly turn its later records into late ones and part from what one reader sees.
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
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"max.poll.interval.ms" = "7000"

[store]
url = "{store}"
checkpoint_interval = "200ms"
lease = "3s"

[runs]
dir = "{runs}"

[[streams]]
name = "payments"
topic = "{topic}"
baseline = "{baseline}"
window = {{ duration = "3s", grace = "5s" }}
# Every value of the stream fits the sample: the merged windows' data since the last retrain
# is then exactly one reader's, whatever order the parts came in.
drift = {{ since_retrain = true, since_retrain_sample = 10000 }}
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

/// The stream in time order: `(partition, payload)`. Partition `p` carries customers of one
/// country with only negative (even `p`) or only positive (odd `p`) amounts: each partition alone
/// is far from the baseline's N(0, 1), the stream's intervals (two messages per partition) are
/// not — except the [`SHIFTED`] ones, where every amount is 0.8 higher.
fn messages() -> Vec<(i32, Vec<u8>)> {
    let mut rng = SplitMix64::new(5);
    (0..MESSAGES)
        .map(|m| {
            let partition = (m % i64::from(PARTITIONS)) as i32;
            let country = ["DE", "FR", "US"][partition as usize % 3];
            let sign = if partition % 2 == 0 { -1.0 } else { 1.0 };
            let window = (m * STEP_MS / 3000) as u64;
            let shift = if SHIFTED.contains(&window) { 0.8 } else { 0.0 };
            let records: Vec<_> = (0..RECORDS_PER_MESSAGE)
                .map(|r| {
                    let ts = BASE_MS + m * STEP_MS + r;
                    let amount = sign * rng.normal().abs() + shift;
                    let amount = (amount * 100.0).round() / 100.0;
                    serde_json::json!({"ts": ts, "amount": amount, "country": country})
                })
                .collect();
            if m == UNDECODABLE {
                return (partition, b"{not json".to_vec());
            }
            (partition, serde_json::to_vec(&records).unwrap())
        })
        .collect()
}

fn produce(broker: &str, topic: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    for (partition, payload) in messages() {
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .payload(&payload)
                    .partition(partition),
            )
            .expect("queued");
        producer.flush(Duration::from_secs(30)).expect("delivered");
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// The reports one processor reading the whole stream in time order makes, and the windows
/// its policy triggers on.
fn expected(config: &Path) -> (Vec<serde_json::Value>, Vec<u64>) {
    let config = driftgate::config::load(config).unwrap();
    let mut one = StreamProcessor::new(config.streams[0].clone(), None).unwrap();
    one.set_policies(&config.models, &config.policies);
    let mut offsets = [0i64; PARTITIONS as usize];
    let mut reports = Vec::new();
    for (partition, payload) in messages() {
        let offset = &mut offsets[partition as usize];
        let message = Message {
            topic: "t",
            partition,
            offset: *offset,
            timestamp_ms: None,
            payload: Some(&payload),
        };
        *offset += 1;
        reports.extend(one.process(message).closed);
    }
    reports.extend(one.tick(i64::MAX / 2));
    let triggered = reports
        .iter()
        .filter(|w| {
            w.decisions
                .iter()
                .any(|d| d.outcome == driftgate::policy::Outcome::Triggered)
        })
        .map(|w| w.index)
        .collect();
    let reports = reports
        .iter()
        .map(|w| serde_json::to_value(&w.report).unwrap())
        .collect();
    (reports, triggered)
}

/// The windows the stored decisions triggered on, once each.
fn triggered(db: &mut postgres::Client) -> Vec<u64> {
    db.query(
        "SELECT window_idx FROM decisions WHERE outcome = 'triggered' ORDER BY window_idx",
        &[],
    )
    .unwrap()
    .iter()
    .map(|row| row.get::<_, i64>(0) as u64)
    .collect()
}

struct Instances {
    config: std::path::PathBuf,
    children: Vec<Option<Child>>,
    logs: std::path::PathBuf,
    starts: usize,
    /// Each instance's latest start, which names its log.
    last_start: [usize; 3],
}

impl Instances {
    fn start(&mut self, i: usize) {
        self.starts += 1;
        self.last_start[i] = self.starts;
        let log =
            std::fs::File::create(self.logs.join(format!("i{i}-{}.log", self.starts))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("DRIFTGATE_LOG", "info")
            .env("DRIFTGATE__SERVICE__INSTANCE", format!("i{i}"))
            .env("DRIFTGATE__API__LISTEN", free_address())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("driftgate starts");
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Panics when an instance exited, with the end of its log (the log directory is a
    /// temporary one, gone once the test fails).
    fn alive(&mut self) {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                let log = self.logs.join(format!("i{i}-{}.log", self.last_start[i]));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                panic!("instance i{i} exited with {status}; the end of its log:\n{tail}");
            }
        }
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How many instances hold partitions.
fn holders(db: &mut postgres::Client) -> i64 {
    db.query_one("SELECT COUNT(DISTINCT lineage) FROM partitions", &[])
        .map_or(0, |row| row.get(0))
}

/// The instance holding the merging of the stream's windows.
fn merger(db: &mut postgres::Client) -> usize {
    let owner: String = db
        .query_one("SELECT owner FROM stream_mergers", &[])
        .unwrap()
        .get(0);
    owner[1..2].parse().unwrap()
}

/// The stored windows' reports by index; nothing before an instance created the schema.
fn stored(db: &mut postgres::Client) -> Vec<(i64, String, serde_json::Value)> {
    let rows = db.query("SELECT idx, tag, report FROM windows ORDER BY idx", &[]);
    rows.unwrap_or_default()
        .iter()
        .map(|row| {
            let report: String = row.get(2);
            (
                row.get(0),
                row.get(1),
                serde_json::from_str(&report).unwrap(),
            )
        })
        .collect()
}

fn scenario(broker: &str, topic: &str, server: &str, kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("{server}/{}", create_database(server, "spanning"));
    let config = write_config(dir.path(), broker, &store, topic);
    let (expected, expected_triggers) = expected(&config);
    assert_eq!(
        expected_triggers, SHIFTED,
        "the shifted windows, and only those, trigger"
    );
    let mut db = postgres::Client::connect(&store, postgres::NoTls).unwrap();
    let logs = std::env::var("DRIFTGATE_TEST_LOGS")
        .map_or_else(|_| dir.path().join("logs"), std::path::PathBuf::from);
    std::fs::create_dir_all(&logs).unwrap();
    let mut instances = Instances {
        config,
        children: vec![None, None, None],
        logs,
        starts: 0,
        last_start: [0; 3],
    };
    for i in 0..3 {
        instances.start(i);
    }
    // The stream flows at once, while the instances are still joining: the merger waits until
    // every partition of the topic has an owner in the store, so no first record turns late.
    let producer = {
        let (broker, topic) = (broker.to_string(), topic.to_string());
        std::thread::spawn(move || produce(&broker, &topic))
    };
    // Kills while the stream flows, each once a window or two came out since the last.
    let mut rng = SplitMix64::new(17);
    for k in 0..kills {
        // ... and once every instance holds partitions (tansu 0.6 can keep a member killed in
        // the middle of a rebalance in the group for good).
        let deadline = Instant::now() + Duration::from_secs(90);
        while stored(&mut db).len() < 2 * (k + 1) || holders(&mut db) < 3 {
            instances.alive();
            assert!(Instant::now() < deadline, "timed out waiting for windows");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The first victim is the instance merging the stream's windows: another takes the
        // merging over once its lease expires.
        let victim = match k {
            0 => merger(&mut db),
            _ => rng.below(3) as usize,
        };
        instances.kill(victim);
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        instances.start(victim);
    }
    producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored(&mut db).len() < expected.len() {
        instances.alive();
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {} windows; logs in {}",
            stored(&mut db).len(),
            expected.len(),
            instances.logs.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A moment for anything wrong (a window twice) to show, then all stop cleanly.
    std::thread::sleep(Duration::from_millis(1500));
    for child in instances.children.iter_mut().flatten() {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    for i in 0..3 {
        let status = instances.children[i].take().unwrap().wait().unwrap();
        assert!(status.success(), "i{i} stopped cleanly");
    }

    let lease: i64 = db
        .query_one("SELECT lease_until FROM stream_mergers", &[])
        .unwrap()
        .get(0);
    assert_eq!(lease, 0, "the merger gave its lease up when it stopped");
    let windows = stored(&mut db);
    assert_eq!(windows.len(), expected.len(), "one window per interval");
    let (mut max_d, mut max_p) = (0f64, 0f64);
    for ((index, tag, report), expected) in windows.iter().zip(&expected) {
        assert!(tag.is_empty(), "a window of the stream, not of an instance");
        let mut report = report.clone();
        // The offsets differ: the expected run read the partitions with its own numbering.
        report["window"]["offsets"] = serde_json::Value::Null;
        let mut expected = expected.clone();
        expected["window"]["offsets"] = serde_json::Value::Null;
        assert_eq!(report, expected, "window {index}");
        // Compared with every window before it (the stream has no retrain), across the kill of
        // the instance merging them.
        let since = report["since_retrain"]["windows"].as_u64();
        assert_eq!(
            since,
            (*index > 0).then_some(*index as u64),
            "window {index}"
        );
        let ks = &report["features"][0]["tests"]["ks"];
        let want = &expected["features"][0]["tests"]["ks"];
        max_d = max_d
            .max((ks["statistic"].as_f64().unwrap() - want["statistic"].as_f64().unwrap()).abs());
        max_p =
            max_p.max((ks["p_value"].as_f64().unwrap() - want["p_value"].as_f64().unwrap()).abs());
    }
    assert_eq!(
        triggered(&mut db),
        expected_triggers,
        "each shifted window triggers once"
    );
    // One dead letter in a window's twelve messages is over the 1% dead-letter rate: window 2,
    // which its partition had open, and no other.
    let quality: Vec<String> = db
        .query("SELECT id FROM alerts WHERE kind = 'data_quality'", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(quality, ["data_quality:payments:2"]);
    let records: u64 = windows
        .iter()
        .map(|(_, _, r)| r["window"]["records"].as_u64().unwrap())
        .sum();
    assert_eq!(
        records,
        ((MESSAGES - 1) * RECORDS_PER_MESSAGE) as u64,
        "every record once (but the dead letter's)"
    );
    eprintln!(
        "spanning windows: {kills} kills, {} windows equal to one reader's (max |ΔD| {max_d}, max |Δp| {max_p}), {records} records, triggered on windows {:?}",
        windows.len(),
        expected_triggers
    );
}

#[test]
fn issue_17_three_instances_killed_and_restarted_report_the_streams_windows_once() {
    let Some(server) = required("DRIFTGATE_TEST_POSTGRES", WHAT) else {
        return;
    };
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = unique("spanning");
    cluster.create_topic(&topic, PARTITIONS, 1).unwrap();
    scenario(&cluster.bootstrap_servers(), &topic, &server, 3);
}

#[test]
fn issue_17_three_instances_on_tansu_report_the_streams_windows() {
    let (Some(broker), Some(server)) = (
        required("DRIFTGATE_TEST_BROKER", WHAT),
        required("DRIFTGATE_TEST_POSTGRES", WHAT),
    ) else {
        return;
    };
    let topic = unique("spanning");
    create_topic(&broker, &topic, PARTITIONS);
    scenario(&broker, &topic, &server, 1);
}
