//! `driftgate demo`: the whole loop in one process, on the service's own code.
//!
//! It writes the example configuration (`config/driftgate.toml`, `config/policies/`,
//! `config/dags/`, built into the binary) into a working directory of its own (`workdir`), generates a training set and builds the
//! stream's baseline from it (`baseline build`'s code), starts an in-process Kafka-protocol
//! broker (librdkafka's mock cluster) and a webhook receiver, and runs the real service
//! against them. Champions are trained by manual runs of the example DAGs. A producer then
//! streams labelled payments, scored by the current champion, window by window; after a few
//! windows it injects drift into two features. The service detects it, its policies trigger
//! the fraud model's DAG, which retrains only the drifted feature group's branch, evaluates the
//! challenger against the champion on a holdout, promotes it through the gate and rotates the
//! baseline; from the next window on the producer scores with the new champion. The summary
//! reads everything back from the service's store.

pub mod data;
mod receiver;
pub mod workdir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;

use crate::store::{RunStatus, Store, TaskStatus};

/// Arguments of `driftgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// About how long the demo takes; it sets the pace (the windows are the same).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Leave the service, its API and the receiver up after the summary, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// The demo's working directory, relative to the current one. It must be new, empty, or
    /// left by an earlier demo (it carries a `.driftgate-demo` marker), which is cleared first.
    #[arg(long, default_value = "var/demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Only write the demo's synthetic training set (20,000 labelled payments, JSONL) to FILE
    /// and exit: the example DAGs' manual runs train on it. An existing FILE is never replaced.
    #[arg(long, value_name = "FILE")]
    pub write_training: Option<PathBuf>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A path the user named (`--dir`, `--write-training`) may not be used: the user's to fix
    /// (exit 2).
    #[error("demo: {0}")]
    Refused(String),
    /// Something failed while the demo ran.
    #[error("demo: {0}")]
    Failed(String),
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |err| DemoError::Failed(format!("{what}: {err}"))
}

/// Windows before the drift.
const BEFORE: u64 = 6;
/// Windows after the retrained champion took over.
const AFTER: u64 = 5;
/// Drifted windows without a promotion before the demo gives up waiting for one.
const MAX_DRIFTED: u64 = 8;
/// Records per message, as producers batch them.
const MESSAGE_RECORDS: u64 = 100;
/// Training set size.
const TRAINING_RECORDS: usize = 20_000;
/// Where the example DAGs keep champions (relative to the working directory).
const REGISTRY: &str = "var/models";
/// The model whose predictions the records carry.
const SCORED_MODEL: &str = "fraud";
const SECRET_ENV: &str = "DRIFTGATE_DEMO_WEBHOOK_SECRET";
const TOKEN_ENV: &str = "DRIFTGATE_DEMO_RUN_TOKEN";
const SEED: u64 = 7;

/// `[  1.2s]`: time since the demo started.
fn stamp(started: Instant) -> String {
    format!("[{:>5.1}s]", started.elapsed().as_secs_f64())
}

/// What the demo saw, read back from the service's store and the receiver.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Windows reported.
    pub windows: u64,
    /// The first window with injected drift.
    pub drift_from: u64,
    /// The features the drift was injected into.
    pub injected: Vec<String>,
    /// Every feature flagged in some window, with the windows.
    pub drifted: BTreeMap<String, Vec<u64>>,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: u64,
    /// Decisions per outcome (`triggered`, `suppressed_in_flight`, …; not `not_triggered`).
    pub decisions: BTreeMap<String, u64>,
    /// The triggered decisions: `policy → model in window N`.
    pub triggers: Vec<String>,
    /// Every run.
    pub runs: Vec<RunSummary>,
    /// The models retrained because of drift.
    pub retrained: Vec<String>,
    /// Mean window accuracy of the scored model before the drift, during it, and after the
    /// retrained champion took over.
    pub accuracy: Accuracy,
    /// Alerts the webhook received, per kind.
    pub alerts: BTreeMap<String, u64>,
    /// Alert requests whose signature did not verify.
    pub bad_signatures: u64,
    /// The window the new champion started scoring, when one was promoted.
    pub promoted_from: Option<u64>,
}

/// Window accuracies by phase.
#[derive(Debug, Default, Serialize)]
pub struct Accuracy {
    /// Before the drift.
    pub before: Option<f64>,
    /// During the drift, scored by the old champion.
    pub drifted: Option<f64>,
    /// During the drift, scored by the retrained champion.
    pub retrained: Option<f64>,
}

/// One run, as the summary shows it.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Its id.
    pub id: String,
    /// The model.
    pub model: String,
    /// `manual` or the triggering policy and window.
    pub trigger: String,
    /// Final status.
    pub status: RunStatus,
    /// Tasks that ran.
    pub ran: Vec<String>,
    /// Tasks whose outputs came from the cache.
    pub cached: Vec<String>,
    /// Tasks skipped (a `when` gate, or upstream of it).
    pub skipped: Vec<String>,
}

/// Runs the demo; returns its summary (also written to `summary.json` in its directory).
pub fn run(args: &DemoArgs) -> Result<Option<Summary>, DemoError> {
    if let Some(path) = &args.write_training {
        write_new_training(path)?;
        println!(
            "wrote {TRAINING_RECORDS} labelled payments to {}",
            path.display()
        );
        return Ok(None);
    }
    run_demo(args).map(Some)
}

/// The training set, into a file that must not exist yet (created exclusively, so nothing a
/// user has is ever replaced).
fn write_new_training(path: &Path) -> Result<(), DemoError> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail("cannot create the directory"))?;
    }
    let mut file = match std::fs::File::create_new(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(DemoError::Refused(format!(
                "refusing to replace {}: it exists; name a new file",
                path.display()
            )))
        }
        Err(err) => return Err(fail("cannot create the training set")(err)),
    };
    let text = training_text(&mut data::Payments::new(SEED));
    file.write_all(text.as_bytes())
        .map_err(fail("cannot write the training set"))
}

fn run_demo(args: &DemoArgs) -> Result<Summary, DemoError> {
    let started = Instant::now();
    let secret = format!("demo-{}", std::process::id());
    // Set before any thread starts; the service reads them when it loads its configuration.
    std::env::set_var(SECRET_ENV, &secret);
    std::env::set_var(TOKEN_ENV, &secret);
    let dir = workdir::prepare(&args.dir)?;
    std::env::set_current_dir(&dir).map_err(fail("cannot enter the demo directory"))?;
    println!(
        "{} driftgate demo in {} (the example configuration built into this binary)",
        stamp(started),
        dir.display(),
    );

    // Training data and the baseline built from it.
    let training = Path::new("var/training/payments.jsonl");
    let mut payments = data::Payments::new(SEED);
    write_training(&mut payments, training)?;
    let baseline = crate::baseline::build_from_file(
        training,
        &crate::source::ReadOptions::default(),
        crate::baseline::BuildSettings::default(),
        Path::new("config/baselines/payments.json"),
    )
    .map_err(fail("cannot build the baseline"))?;
    println!(
        "{} training set: {TRAINING_RECORDS} labelled payments, {} features → baseline {}",
        stamp(started),
        baseline.features.len(),
        &baseline.id[..12]
    );

    // The broker, the receiver and the service.
    let cluster =
        rdkafka::mocking::MockCluster::new(1).map_err(fail("cannot start the embedded broker"))?;
    let receiver = receiver::Receiver::start(&secret, started)
        .map_err(fail("cannot start the webhook receiver"))?;
    let api = free_address()?;
    configure(&cluster.bootstrap_servers(), &api, &receiver.url)?;
    let config_path = PathBuf::from("config/driftgate.toml");
    let config = crate::config::load(&config_path).map_err(fail("the example configuration"))?;
    let stream = config
        .streams
        .first()
        .cloned()
        .ok_or_else(|| DemoError::Failed("the example configuration has no stream".into()))?;
    let crate::window::WindowSpec::Records(window_records) = stream.window else {
        return Err(DemoError::Failed(
            "the demo needs a count window on the example stream".into(),
        ));
    };
    for topic in std::iter::once(&stream.topic).chain(&stream.dead_letter_topic) {
        cluster
            .create_topic(topic, 1, 1)
            .map_err(fail("cannot create a topic"))?;
    }
    let store_path = config.store_path.clone();
    let models: Vec<String> = config
        .models
        .iter()
        .filter(|m| m.dag.is_some())
        .map(|m| m.name.clone())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    crate::service::install_signal_handlers(&stop, config.shutdown_timeout)
        .map_err(fail("cannot install signal handlers"))?;
    let service = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("service".into())
            .spawn(move || crate::service::run(config, &config_path, stop))
            .map_err(fail("cannot start the service"))?
    };
    // Whatever happens from here on, the service is stopped and joined (it checkpoints).
    let http = reqwest::blocking::Client::new();
    let outcome = (|| -> Result<Summary, DemoError> {
        wait_until(
            &stop,
            "the service to be ready",
            Duration::from_secs(60),
            || {
                http.get(format!("http://{api}/readyz"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
        )?;
        println!(
            "{} service up: API http://{api}/api/v1/runs, metrics http://{api}/metrics; alerts → {}",
            stamp(started),
            receiver.url
        );
        let store = Store::open_read_only(&store_path).map_err(fail("cannot read the store"))?;
        let mut shown = std::collections::BTreeSet::new();

        // Champions, trained on the training set by manual runs of the models' DAGs.
        for model in &models {
            let response = http
                .post(format!("http://{api}/api/v1/runs"))
                .bearer_auth(&secret)
                .json(
                    &serde_json::json!({ "model": model, "key": format!("demo/champion/{model}") }),
                )
                .send()
                .and_then(|r| r.error_for_status());
            if let Err(err) = response {
                return Err(DemoError::Failed(format!(
                    "cannot start the run for {model}: {err}"
                )));
            }
        }
        wait_for_runs(&stop, &store, started, &mut shown)?;

        // The stream: windows scored by the current champion; drift after BEFORE windows.
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "5")
            .create()
            .map_err(fail("cannot create the producer"))?;
        let pace = args.duration.saturating_sub(started.elapsed()) / (BEFORE + AFTER + 3) as u32;
        let registry = Path::new(REGISTRY).join(format!("{SCORED_MODEL}.json"));
        // Everything produced, one message per line: `driftgate replay` input.
        let mut recorded = String::new();
        let mut window = 0u64;
        let mut promoted_from = None;
        let mut phases = Vec::new();
        loop {
            let window_started = Instant::now();
            let drifted = window >= BEFORE;
            let champion = crate::task::read_model(&registry).ok();
            if window == BEFORE {
                println!(
                    "{} drift injected into {} from window {window} on",
                    stamp(started),
                    data::DRIFTED.join(" and ")
                );
            }
            for _ in 0..window_records.div_ceil(MESSAGE_RECORDS) {
                let records: Vec<_> = (0..MESSAGE_RECORDS)
                    .map(|_| {
                        let mut record = payments.record(drifted);
                        record.insert("ts".into(), crate::store::now_ms().into());
                        if let Some(champion) = &champion {
                            record.insert("prediction".into(), champion.predict(&record).into());
                        }
                        record
                    })
                    .collect();
                let payload = serde_json::to_vec(&serde_json::json!({ "records": records }))
                    .expect("records serialise");
                send(&producer, &stream.topic, &payload)?;
                recorded.push_str(&String::from_utf8_lossy(&payload));
                recorded.push('\n');
            }
            if window == 2 {
                // One broken message: it goes to the dead-letter topic and raises a data alert.
                send(
                    &producer,
                    &stream.topic,
                    b"{\"records\": [{\"amount\": 12.5,",
                )?;
            }
            producer
                .flush(Duration::from_secs(10))
                .map_err(fail("cannot deliver to the broker"))?;
            phases.push(match (drifted, promoted_from.is_some()) {
                (false, _) => Phase::Before,
                (true, false) => Phase::Drifted,
                (true, true) => Phase::Retrained,
            });
            wait_until(
                &stop,
                &format!("window {window} to be reported"),
                Duration::from_secs(60),
                || {
                    store
                        .latest_windows(&stream.name, 1)
                        .is_ok_and(|w| w.first().is_some_and(|w| w.index >= window))
                },
            )?;
            // The producer waits for each window, so the latest one is this one.
            show_latest_window(&store, &stream.name, started)?;
            wait_for_runs(&stop, &store, started, &mut shown)?;
            window += 1;
            let new_champion = crate::task::read_model(&registry).ok();
            let changed = new_champion.as_ref().map(|c| c.run.clone())
                != champion.as_ref().map(|c| c.run.clone());
            if drifted && promoted_from.is_none() && changed {
                promoted_from = Some(window);
                println!(
                    "{} the retrained {SCORED_MODEL} model scores payments from window {window} on",
                    stamp(started)
                );
            }
            let retrained_windows = phases.iter().filter(|p| **p == Phase::Retrained).count();
            let drifted_windows = phases.iter().filter(|p| **p == Phase::Drifted).count();
            if retrained_windows as u64 >= AFTER || drifted_windows as u64 >= MAX_DRIFTED + AFTER {
                break;
            }
            std::thread::sleep(pace.saturating_sub(window_started.elapsed()));
        }

        // Alerts are delivered by the service's outbox workers: wait until none is pending.
        wait_until(
            &stop,
            "the alerts to be delivered",
            Duration::from_secs(60),
            || {
                store
                    .pending_alerts()
                    .is_ok_and(|p| p.iter().all(|(_, n)| *n == 0))
            },
        )?;
        let dead_letters = dead_letters(&api);
        std::fs::write("stream.jsonl", recorded).map_err(fail("cannot write stream.jsonl"))?;
        let summary = summarise(
            &store,
            &stream.name,
            &phases,
            promoted_from,
            &receiver,
            dead_letters,
        )?;
        print_summary(&summary);
        std::fs::write(
            "summary.json",
            serde_json::to_vec_pretty(&summary).expect("summaries serialise"),
        )
        .map_err(fail("cannot write summary.json"))?;

        if args.keep_running {
            println!("\nThe service keeps running: http://{api}/api/v1/streams/{}/windows, http://{api}/api/v1/runs, http://{api}/metrics. Ctrl-C stops it.", stream.name);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(summary)
    })();
    stop.store(true, Ordering::SeqCst);
    match service.join() {
        Ok(Ok(())) => outcome,
        Ok(Err(err)) => Err(DemoError::Failed(format!(
            "the service stopped on an error: {err}"
        ))),
        Err(_) => Err(DemoError::Failed("the service panicked".into())),
    }
}

/// The window phases, for the accuracy summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Drifted,
    Retrained,
}

fn write_training(payments: &mut data::Payments, path: &Path) -> Result<(), DemoError> {
    std::fs::write(path, training_text(payments)).map_err(fail("cannot write the training set"))
}

/// The demo's training set: `TRAINING_RECORDS` labelled payments, one JSON record a line.
fn training_text(payments: &mut data::Payments) -> String {
    let mut text = String::new();
    for _ in 0..TRAINING_RECORDS {
        text.push_str(&serde_json::to_string(&payments.record(false)).expect("records serialise"));
        text.push('\n');
    }
    text
}

/// Points the copied configuration at the demo's broker, API address and receiver.
fn configure(bootstrap: &str, api: &str, receiver: &str) -> Result<(), DemoError> {
    let path = Path::new("config/driftgate.toml");
    let text = std::fs::read_to_string(path).map_err(fail("cannot read the config"))?;
    let mut config: toml::Table = text.parse().map_err(fail("the example configuration"))?;
    let table = |config: &mut toml::Table, key: &str| -> toml::Table {
        match config.remove(key) {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        }
    };
    let mut kafka = table(&mut config, "kafka");
    kafka.insert("bootstrap_servers".into(), bootstrap.into());
    config.insert("kafka".into(), kafka.into());
    let mut api_table = table(&mut config, "api");
    api_table.insert("listen".into(), api.into());
    config.insert("api".into(), api_table.into());
    let mut runs = table(&mut config, "runs");
    runs.insert("token_env".into(), TOKEN_ENV.into());
    config.insert("runs".into(), runs.into());
    let mut alerts = table(&mut config, "alerts");
    // The receiver prints every alert; the example's log sink would print them twice.
    let mut sinks: Vec<toml::Value> = match alerts.remove("sinks") {
        Some(toml::Value::Array(sinks)) => sinks
            .into_iter()
            .filter(|s| s.get("kind").and_then(|k| k.as_str()) != Some("log"))
            .collect(),
        _ => Vec::new(),
    };
    let mut sink = toml::Table::new();
    sink.insert("name".into(), "demo-receiver".into());
    sink.insert("kind".into(), "webhook".into());
    sink.insert("url".into(), receiver.into());
    sink.insert("secret_env".into(), SECRET_ENV.into());
    sinks.push(sink.into());
    alerts.insert("sinks".into(), sinks.into());
    config.insert("alerts".into(), alerts.into());
    std::fs::write(path, config.to_string()).map_err(fail("cannot write the config"))
}

fn free_address() -> Result<String, DemoError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(fail("no free loopback port"))?;
    let address = listener
        .local_addr()
        .map_err(fail("no free loopback port"))?;
    Ok(address.to_string())
}

fn send(producer: &BaseProducer, topic: &str, payload: &[u8]) -> Result<(), DemoError> {
    let mut record = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                producer.poll(Duration::from_millis(50));
                record = back;
            }
            Err((err, _)) => return Err(DemoError::Failed(format!("cannot produce: {err}"))),
        }
    }
}

/// Polls `done` every 50 ms until it holds; fails after `limit`, or at once when the demo is
/// interrupted (Ctrl-C: the service is stopping).
fn wait_until(
    stop: &AtomicBool,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), DemoError> {
    let deadline = Instant::now() + limit;
    while !done() {
        if stop.load(Ordering::SeqCst) {
            return Err(DemoError::Failed("interrupted".into()));
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Failed(format!(
                "gave up waiting for {what} after {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Prints the latest window's accuracy, drifted features and the decisions that did something.
fn show_latest_window(store: &Store, stream: &str, started: Instant) -> Result<(), DemoError> {
    let windows = store
        .latest_windows(stream, 1)
        .map_err(fail("cannot read windows"))?;
    let Some(window) = windows.first() else {
        return Ok(());
    };
    let index = window.index;
    let drifted = drifted_features(&window.report);
    let accuracy = window.report["performance"]["accuracy"]
        .as_f64()
        .map_or("-".to_string(), |a| format!("{a:.3}"));
    println!(
        "{} window {index}: {} records, {SCORED_MODEL} accuracy {accuracy}, drift: {}",
        stamp(started),
        window.report["window"]["records"],
        if drifted.is_empty() {
            "none".to_string()
        } else {
            drifted.join(", ")
        }
    );
    let decisions = store
        .latest_decisions(None, 200)
        .map_err(fail("cannot read decisions"))?;
    for decision in decisions.iter().rev().filter(|d| d.window == index) {
        if decision.outcome != crate::policy::Outcome::NotTriggered {
            println!(
                "{}   {} → {}: {}: {}",
                stamp(started),
                decision.policy,
                decision.model,
                decision.outcome.as_str(),
                decision.reason
            );
        }
    }
    Ok(())
}

fn drifted_features(report: &serde_json::Value) -> Vec<String> {
    report["features"]
        .as_array()
        .map(|features| {
            features
                .iter()
                .filter(|f| f["drift"]["detected"] == true)
                .filter_map(|f| f["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until no run is queued or running, then prints the runs that finished (those not in
/// `shown` yet).
fn wait_for_runs(
    stop: &AtomicBool,
    store: &Store,
    started: Instant,
    shown: &mut std::collections::BTreeSet<String>,
) -> Result<(), DemoError> {
    // A triggered decision's run is queued in the window's own transaction, so it is visible
    // by now; the executor picks it up within its poll.
    wait_until(stop, "the runs to finish", Duration::from_secs(120), || {
        [RunStatus::Queued, RunStatus::Running]
            .into_iter()
            .all(|s| store.runs_with_status(s).is_ok_and(|r| r.is_empty()))
    })?;
    let mut runs = store.runs(None, 100).map_err(fail("cannot read runs"))?;
    runs.reverse();
    for run in runs {
        if !shown.insert(run.id.clone()) {
            continue;
        }
        let summary = run_summary(store, &run)?;
        println!(
            "{}   run {} ({}, {}): {} — ran {}; cached {}; skipped {}",
            stamp(started),
            run.id,
            run.model,
            summary.trigger,
            run.status,
            list(&summary.ran),
            list(&summary.cached),
            list(&summary.skipped)
        );
        if let Some(metrics) = task_output(store, &run.id, "evaluate", "metrics.json") {
            println!(
                "{}     evaluate: challenger {:.3} vs champion {} on {} held-out records",
                stamp(started),
                metrics["challenger_accuracy"].as_f64().unwrap_or(f64::NAN),
                metrics["champion_accuracy"]
                    .as_f64()
                    .map_or("none".to_string(), |a| format!("{a:.3}")),
                metrics["holdout_records"]
            );
        }
        if let Some(error) = &run.error {
            println!("{}     {error}", stamp(started));
        }
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// A task's JSON output in a run.
fn task_output(store: &Store, run: &str, task: &str, file: &str) -> Option<serde_json::Value> {
    let tasks = store.run_tasks(run).ok()?;
    let output = tasks
        .iter()
        .find(|t| t.task == task)?
        .outputs
        .iter()
        .find(|a| a.file == file)?
        .path
        .clone();
    serde_json::from_slice(&std::fs::read(output).ok()?).ok()
}

fn run_summary(store: &Store, run: &crate::store::RunRecord) -> Result<RunSummary, DemoError> {
    let tasks = store
        .run_tasks(&run.id)
        .map_err(fail("cannot read tasks"))?;
    let with = |status: TaskStatus| -> Vec<String> {
        tasks
            .iter()
            .filter(|t| t.status == status)
            .map(|t| t.task.clone())
            .collect()
    };
    let trigger = match run.request.decision.get("policy").and_then(|p| p.as_str()) {
        Some(policy) => format!(
            "{policy} in window {}",
            run.request
                .window
                .map_or("?".to_string(), |w| w.to_string())
        ),
        None => "manual".to_string(),
    };
    Ok(RunSummary {
        id: run.id.clone(),
        model: run.model.clone(),
        trigger,
        status: run.status,
        ran: with(TaskStatus::Succeeded),
        cached: with(TaskStatus::Cached),
        skipped: with(TaskStatus::Skipped),
    })
}

fn summarise(
    store: &Store,
    stream: &str,
    phases: &[Phase],
    promoted_from: Option<u64>,
    receiver: &receiver::Receiver,
    dead_letters: u64,
) -> Result<Summary, DemoError> {
    let mut windows = store
        .latest_windows(stream, phases.len() as u64 + 10)
        .map_err(fail("cannot read windows"))?;
    windows.reverse();
    let mut drifted: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut accuracies: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for window in &windows {
        for feature in drifted_features(&window.report) {
            drifted.entry(feature).or_default().push(window.index);
        }
        let phase = match phases.get(window.index as usize) {
            Some(Phase::Before) => "before",
            Some(Phase::Drifted) => "drifted",
            Some(Phase::Retrained) => "retrained",
            None => continue,
        };
        if let Some(a) = window.report["performance"]["accuracy"].as_f64() {
            accuracies.entry(phase).or_default().push(a);
        }
    }
    let mean = |phase: &str| {
        accuracies
            .get(phase)
            .map(|a| a.iter().sum::<f64>() / a.len() as f64)
    };
    let decisions = store
        .latest_decisions(None, 100_000)
        .map_err(fail("cannot read decisions"))?;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut triggers = Vec::new();
    for decision in decisions.iter().rev() {
        if decision.outcome == crate::policy::Outcome::NotTriggered {
            continue;
        }
        *outcomes
            .entry(decision.outcome.as_str().to_string())
            .or_default() += 1;
        if decision.outcome == crate::policy::Outcome::Triggered {
            triggers.push(format!(
                "{} → {} in window {}",
                decision.policy, decision.model, decision.window
            ));
        }
    }
    let mut runs = Vec::new();
    let mut records = store.runs(None, 1000).map_err(fail("cannot read runs"))?;
    records.reverse();
    for run in &records {
        runs.push(run_summary(store, run)?);
    }
    let mut retrained: Vec<String> = runs
        .iter()
        .filter(|r| r.trigger != "manual" && r.status == RunStatus::Succeeded)
        .map(|r| r.model.clone())
        .collect();
    retrained.sort();
    retrained.dedup();
    let mut alerts: BTreeMap<String, u64> = BTreeMap::new();
    for alert in receiver.alerts() {
        *alerts.entry(alert.kind).or_default() += 1;
    }
    Ok(Summary {
        windows: windows.len() as u64,
        drift_from: BEFORE,
        injected: data::DRIFTED.iter().map(|s| s.to_string()).collect(),
        drifted,
        dead_letters,
        decisions: outcomes,
        triggers,
        runs,
        retrained,
        accuracy: Accuracy {
            before: mean("before"),
            drifted: mean("drifted"),
            retrained: mean("retrained"),
        },
        alerts,
        bad_signatures: receiver.bad_signatures(),
        promoted_from,
    })
}

/// Dead letters so far, from the service's metrics.
fn dead_letters(api: &str) -> u64 {
    let answer = reqwest::blocking::get(format!("http://{api}/metrics"));
    let Ok(response) = answer else {
        return 0;
    };
    let text = response.text().unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("driftgate_dead_letters_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn print_summary(summary: &Summary) {
    let accuracy = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{a:.3}"));
    println!("\nSummary");
    println!(
        "  windows: {}, drift injected into {} from window {}",
        summary.windows,
        summary.injected.join(", "),
        summary.drift_from
    );
    for (feature, windows) in &summary.drifted {
        println!("  drifted: {feature} in windows {windows:?}");
    }
    if summary.drifted.is_empty() {
        println!("  drifted: nothing");
    }
    println!(
        "  decisions: {}",
        summary
            .decisions
            .iter()
            .map(|(o, n)| format!("{n} {o}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for trigger in &summary.triggers {
        println!("    {trigger}");
    }
    println!("  runs:");
    for run in &summary.runs {
        println!(
            "    {} {} ({}): {} — {} ran, {} cached, {} skipped",
            run.id,
            run.model,
            run.trigger,
            run.status,
            run.ran.len(),
            run.cached.len(),
            run.skipped.len()
        );
    }
    println!(
        "  retrained because of drift: {}",
        if summary.retrained.is_empty() {
            "none".to_string()
        } else {
            summary.retrained.join(", ")
        }
    );
    println!(
        "  {SCORED_MODEL} accuracy: {} before the drift, {} after it, {} after retraining",
        accuracy(summary.accuracy.before),
        accuracy(summary.accuracy.drifted),
        accuracy(summary.accuracy.retrained)
    );
    println!(
        "  alerts delivered to the webhook: {} ({})",
        summary.alerts.values().sum::<u64>(),
        summary
            .alerts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  dead letters: {}", summary.dead_letters);
}
