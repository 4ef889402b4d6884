//! Alert delivery against a real HTTP receiver on 127.0.0.1 and a real SQLite outbox: signing,
//! retries, giving up, order, a receiver that is down, and a restart in between.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{Receiver, Request};
use driftgate::alert::deliver::{run_worker, Sender};
use driftgate::alert::{Alert, AlertKind, Routed, SinkKind, SinkSettings};
use driftgate::store::{Store, StoreUrl};
use driftgate::telemetry::Metrics;
use driftgate::wake::Wake;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "s3cret";

fn alert(id: &str) -> Alert {
    Alert {
        version: 1,
        kind: AlertKind::RetrainTriggered,
        id: id.to_string(),
        at: "2026-11-23T08:00:00.000Z".to_string(),
        summary: format!("Retraining fraud ({id})"),
        stream: Some("payments".into()),
        model: Some("fraud".into()),
        window: None,
        drifted_features: Vec::new(),
        decision: None,
        run: None,
        problems: Vec::new(),
        error: None,
        link: None,
    }
}

fn sink(kind: SinkKind) -> SinkSettings {
    SinkSettings {
        name: "hook".into(),
        kind,
        kinds: None,
        models: None,
        timeout: Duration::from_secs(5),
        max_attempts: 1000,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_age: Duration::from_secs(3600),
    }
}

/// A worker thread for `settings` over the store at `path`, until the returned flag is set.
struct Worker {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start(path: &std::path::Path, settings: SinkSettings, metrics: Arc<Metrics>) -> Worker {
        let store = Store::open(&StoreUrl::sqlite(path)).unwrap();
        let sender = Sender::new(settings, None).unwrap();
        let (stop, wake) = (Arc::new(AtomicBool::new(false)), Arc::new(Wake::default()));
        let thread = {
            let (stop, wake) = (Arc::clone(&stop), Arc::clone(&wake));
            std::thread::spawn(move || run_worker(store, sender, wake, stop, metrics))
        };
        Worker { stop, wake, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        self.thread.join().unwrap();
    }
}

fn enqueue(path: &std::path::Path, ids: &[&str]) {
    let routed: Vec<Routed> = ids
        .iter()
        .map(|id| Routed {
            alert: alert(id),
            sinks: vec!["hook".into()],
        })
        .collect();
    Store::open(&StoreUrl::sqlite(path))
        .unwrap()
        .enqueue_alerts(&routed)
        .unwrap();
}

/// A delivery worker for a signed webhook sink `hook` pointing at `receiver`.
fn signed_webhook_worker(
    path: &std::path::Path,
    receiver: &Receiver,
    metrics: &Arc<Metrics>,
) -> Worker {
    Worker::start(
        path,
        sink(SinkKind::Webhook {
            url: receiver.url("/hook"),
            secret: Some(SECRET.into()),
        }),
        Arc::clone(metrics),
    )
}

/// The `hook` sink's deliveries as (alert id, status, attempts), sorted by id.
fn hook_statuses(store: &Store) -> Vec<(String, String, u32)> {
    let mut statuses: Vec<(String, String, u32)> = store
        .alert_statuses(None, Some("hook"), 10)
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.status, s.attempts))
        .collect();
    statuses.sort();
    statuses
}

fn ids(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn signed_alerts_are_retried_on_5xx_and_given_up_on_4xx_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let receiver = Receiver::start();
    receiver.respond_with(&[500, 503, 200, 400, 200]);
    enqueue(&path, &["a1", "a2", "a3"]);
    let metrics = Arc::new(Metrics::default());
    let worker = signed_webhook_worker(&path, &receiver, &metrics);
    let requests = receiver.wait_for(5, Duration::from_secs(30));
    worker.stop();
    // a1 twice refused with 5xx then taken; a2 refused with 400 and not retried; a3 taken.
    assert_eq!(ids(&requests), ["a1", "a1", "a1", "a2", "a3"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.requests().len(), 5, "nothing is sent again");

    // Every request is signed: HMAC-SHA256 over "{timestamp}.{body}" with the secret.
    for request in &requests {
        assert_eq!(request.line, "POST /hook HTTP/1.1");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(
            request.headers["x-driftgate-alert-kind"],
            "retrain_triggered"
        );
        let timestamp = &request.headers["x-driftgate-timestamp"];
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.{}", request.body).as_bytes());
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(request.headers["x-driftgate-signature"], expected);
        assert_eq!(request.json()["version"], 1);
    }

    let store = Store::open_read_only(&StoreUrl::sqlite(&path)).unwrap();
    assert_eq!(
        hook_statuses(&store),
        [
            ("a1".into(), "delivered".into(), 3),
            ("a2".into(), "dead".into(), 1),
            ("a3".into(), "delivered".into(), 1),
        ]
    );
    let dead = store.alert_statuses(Some("dead"), None, 10).unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("HTTP 400"),
        "{:?}",
        dead[0].last_error
    );
    let text = metrics.render();
    for line in [
        "driftgate_alerts_total{sink=\"hook\",kind=\"retrain_triggered\",outcome=\"retried\"} 2",
        "driftgate_alerts_total{sink=\"hook\",kind=\"retrain_triggered\",outcome=\"dead\"} 1",
        "driftgate_alerts_total{sink=\"hook\",kind=\"retrain_triggered\",outcome=\"delivered\"} 2",
        "driftgate_alert_delivery_seconds_count{sink=\"hook\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// Issue 21: a webhook answering 3xx is not a delivery. Redirects are not followed (a 301 was
/// re-sent as a body-less GET and counted delivered); the alert is retried at the configured URL
/// and the error names where the redirect points.
#[test]
fn issue_21_a_redirecting_webhook_is_not_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let receiver = Receiver::start();
    receiver.respond_with(&[301, 200, 308, 302, 200]);
    enqueue(&path, &["a1", "a2"]);
    let metrics = Arc::new(Metrics::default());
    let worker = signed_webhook_worker(&path, &receiver, &metrics);
    let requests = receiver.wait_for(5, Duration::from_secs(30));
    worker.stop();
    let lines: Vec<&str> = requests.iter().map(|r| r.line.as_str()).collect();
    assert_eq!(lines, ["POST /hook HTTP/1.1"; 5], "no redirect followed");
    assert_eq!(ids(&requests), ["a1", "a1", "a2", "a2", "a2"]);
    assert_eq!(
        hook_statuses(&Store::open_read_only(&StoreUrl::sqlite(&path)).unwrap()),
        [
            ("a1".into(), "delivered".into(), 2),
            ("a2".into(), "delivered".into(), 3),
        ]
    );
    let text = metrics.render();
    let retried =
        "driftgate_alerts_total{sink=\"hook\",kind=\"retrain_triggered\",outcome=\"retried\"} 3";
    assert!(text.contains(retried), "missing {retried} in\n{text}");
}

#[test]
fn a_receiver_down_then_up_gets_every_alert_once_in_order_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    // The receiver's port, with nothing listening on it.
    let address = Receiver::start().stop();
    let settings = sink(SinkKind::Webhook {
        url: format!("http://{address}/hook"),
        secret: None,
    });
    let names = ["b1", "b2", "b3", "b4", "b5"];
    enqueue(&path, &names[..3]);
    let metrics = Arc::new(Metrics::default());
    let first = Worker::start(&path, settings.clone(), Arc::clone(&metrics));
    // The first alert is being retried: connections are refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let store = Store::open_read_only(&StoreUrl::sqlite(&path)).unwrap();
        let head = store.alert_statuses(Some("pending"), None, 10).unwrap();
        if head.iter().any(|s| s.id == "b1" && s.attempts >= 2) {
            assert!(head
                .iter()
                .find(|s| s.id == "b1")
                .and_then(|s| s.last_error.clone())
                .is_some());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no retries seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // driftgate restarts: a new worker on the same outbox; more alerts arrive meanwhile.
    first.stop();
    enqueue(&path, &names[3..]);
    let receiver = Receiver::start_on(&address);
    let second = Worker::start(&path, settings, metrics);
    let requests = receiver.wait_for(5, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    second.stop();
    assert_eq!(ids(&receiver.requests()), names, "each once, in order");
    assert!(requests.iter().all(|r| r.status == 200));
    let counts = Store::open_read_only(&StoreUrl::sqlite(&path))
        .unwrap()
        .alert_counts(None)
        .unwrap();
    assert_eq!(counts["delivered"], 5);
    assert_eq!(counts["pending"], 0);
}

#[test]
fn slack_gets_a_readable_message_in_its_text_and_blocks_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let receiver = Receiver::start();
    let mut drifted = alert("s1");
    drifted.kind = AlertKind::DriftDetected;
    drifted.summary = "Drift in window 4 of payments for model fraud: amount (ks 1.2e-9)".into();
    drifted.drifted_features = vec![driftgate::alert::DriftedFeature {
        name: "amount".into(),
        drift: serde_json::json!({"method": "ks", "score": 1.2e-9, "threshold": 0.05, "detected": true}),
        tests: serde_json::json!({}),
    }];
    drifted.link = Some("http://127.0.0.1:9464/streams/payments/windows/7".into());
    Store::open(&StoreUrl::sqlite(&path))
        .unwrap()
        .enqueue_alerts(&[Routed {
            alert: drifted.clone(),
            sinks: vec!["hook".into()],
        }])
        .unwrap();
    let worker = Worker::start(
        &path,
        sink(SinkKind::Slack {
            url: receiver.url("/services/T0/B0/x"),
        }),
        Arc::new(Metrics::default()),
    );
    let message = receiver.wait_for(1, Duration::from_secs(30))[0].json();
    worker.stop();
    assert_eq!(message["text"], drifted.summary);
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "Drift detected: fraud");
    let texts = serde_json::to_string(blocks).unwrap();
    assert!(texts.contains("*Model*\\nfraud"), "{texts}");
    assert!(
        texts.contains("• *amount*: ks 1.200e-9 (threshold 5.000e-2)"),
        "{texts}"
    );
    assert!(texts.contains("<http://127.0.0.1:9464/streams/payments/windows/7|details>"));
    assert_eq!(blocks.last().unwrap()["type"], "context");
}

#[test]
fn backoff_doubles_is_capped_jittered_and_honours_retry_after() {
    use driftgate::alert::deliver::backoff;
    let settings = SinkSettings {
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        ..sink(SinkKind::Log)
    };
    let secs = |attempts, after, jitter| backoff(&settings, attempts, after, jitter).as_secs_f64();
    assert_eq!(secs(1, None, 0.0), 1.0);
    assert_eq!(secs(2, None, 0.0), 2.0);
    assert_eq!(secs(4, None, 0.0), 8.0);
    assert_eq!(secs(20, None, 0.0), 60.0, "capped");
    assert_eq!(secs(4, None, 1.0), 6.4, "jitter takes up to a fifth off");
    assert_eq!(
        secs(1, Some(Duration::from_secs(30)), 0.0),
        30.0,
        "Retry-After wins"
    );
    assert_eq!(
        secs(1, Some(Duration::from_secs(3600)), 0.0),
        60.0,
        "still capped"
    );
}

/// Polls the store until `done` holds for the alert `id`'s delivery (the worker's progress is
/// only visible there), or fails after 30 s.
fn wait_for_delivery(path: &std::path::Path, id: &str, done: impl Fn(&str, u32) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let store = Store::open_read_only(&StoreUrl::sqlite(path)).unwrap();
        let statuses = store.alert_statuses(None, Some("hook"), 10).unwrap();
        if let Some(s) = statuses.iter().find(|s| s.id == id) {
            if done(&s.status, s.attempts) {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no progress on {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 21: with the defaults, an alert was given up after 10 attempts (about 8 minutes). Now
/// transient failures are retried until the alert is `max_age` old, however many attempts that
/// takes: a receiver down for the length of 40 attempts (an hour of outage, time scaled down)
/// still gets every alert once.
#[test]
fn issue_21_a_long_outage_loses_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let address = Receiver::start().stop();
    let settings = SinkSettings {
        max_attempts: u32::MAX,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..sink(SinkKind::Webhook {
            url: format!("http://{address}/hook"),
            secret: None,
        })
    };
    enqueue(&path, &["c1", "c2"]);
    let worker = Worker::start(&path, settings, Arc::new(Metrics::default()));
    wait_for_delivery(&path, "c1", |status, attempts| {
        status == "pending" && attempts >= 40
    });
    let receiver = Receiver::start_on(&address);
    let requests = receiver.wait_for(2, Duration::from_secs(30));
    worker.stop();
    assert_eq!(ids(&requests), ["c1", "c2"]);
    let statuses = hook_statuses(&Store::open_read_only(&StoreUrl::sqlite(&path)).unwrap());
    assert_eq!(statuses[0].1, "delivered");
    assert!(statuses[0].2 > 40, "{statuses:?}");
}

/// Issue 21: an alert still failing when it is `max_age` old is dead, and its error says why.
#[test]
fn issue_21_an_alert_older_than_max_age_is_given_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let address = Receiver::start().stop();
    let settings = SinkSettings {
        max_attempts: u32::MAX,
        max_age: Duration::from_millis(300),
        ..sink(SinkKind::Webhook {
            url: format!("http://{address}/hook"),
            secret: None,
        })
    };
    enqueue(&path, &["d1"]);
    let worker = Worker::start(&path, settings, Arc::new(Metrics::default()));
    wait_for_delivery(&path, "d1", |status, _| status == "dead");
    worker.stop();
    let store = Store::open_read_only(&StoreUrl::sqlite(&path)).unwrap();
    let dead = store.alert_statuses(Some("dead"), None, 10).unwrap();
    let error = dead[0].last_error.clone().unwrap();
    assert!(error.starts_with("given up after "), "{error}");
    assert!(error.contains("(max_age 300ms)"), "{error}");
}

/// Issue 21: when the store cannot record a delivery, the worker used to send the same alert
/// again at once, in a tight loop. It now holds the sink's queue back (1 s, doubling).
#[test]
fn issue_21_a_delivery_the_store_cannot_record_is_not_resent_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    enqueue(&path, &["e1"]);
    // Every change to a delivery fails, as on a full disk; reading still works.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER full BEFORE UPDATE ON deliveries BEGIN SELECT RAISE(FAIL, 'disk full'); END;",
        )
        .unwrap();
    let receiver = Receiver::start();
    let worker = signed_webhook_worker(&path, &receiver, &Arc::new(Metrics::default()));
    receiver.wait_for(1, Duration::from_secs(30));
    // A window to count re-sends in: a tight loop sends hundreds in it.
    std::thread::sleep(Duration::from_millis(1500));
    worker.stop();
    let sent = receiver.requests().len();
    assert!(sent <= 2, "the alert was sent {sent} times in 1.5 s");
}
