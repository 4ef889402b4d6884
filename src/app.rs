//! The running service: consume, process, checkpoint, commit.
//!
//! One thread polls the consumer (librdkafka's rebalance callbacks run inside `poll`, so a
//! blocking loop is the simplest correct shell). The [`Engine`] owns the stream processors, the
//! store and the dead-letter producer; it sits behind a mutex that the loop never holds across
//! `poll`, so the revoke callback can lock it to checkpoint before partitions move.
//!
//! Delivery: a closed window's report and the checkpoint after it are one store transaction;
//! offsets go to Kafka only after that (and after dead letters are flushed). After any crash the
//! store's `next_offsets` let the processors skip what they already counted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::source::readiness::Readiness;

pub mod reload;

use crate::api::{ApiState, StreamInfo};
use crate::config::ServiceConfig;
use crate::pipeline::{Message, StreamProcessor};
use crate::policy::Outcome;
use crate::source::kafka;
use crate::store::{RunStatus, Store, StoreError, StoredWindow};
use crate::telemetry::Metrics;
use reload::{Due, ReloadResult, ReloadSummary, Reloads};

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store failed: without it nothing can be made durable, so the service stops.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The API could not listen.
    #[error("api: {0}")]
    Api(std::io::Error),
    /// An alert sink could not be set up.
    #[error("alert sink {sink}: {message}")]
    Sink {
        /// The sink.
        sink: String,
        /// Why.
        message: String,
    },
    /// SIGHUP could not be registered for reloading.
    #[error("cannot set up reloading: {0}")]
    Reload(std::io::Error),
    /// A checkpoint does not match the configuration (e.g. a feature changed kind).
    #[error("stream {stream}: {source}")]
    Checkpoint {
        /// The stream.
        stream: String,
        /// What does not match.
        source: crate::window::WindowError,
    },
}

/// Processors, store and dead-letter producer.
pub struct Engine {
    store: Store,
    processors: Vec<StreamProcessor>,
    by_topic: HashMap<String, usize>,
    dead_letters: Option<BaseProducer>,
    keep_windows: u64,
    metrics: Arc<Metrics>,
    /// The models' names as the API shows them.
    models: Arc<std::sync::RwLock<Vec<crate::policy::Model>>>,
    /// When each stream last received a message (wall clock), for closing idle windows.
    last_message: Vec<Instant>,
    /// Alert sinks and thresholds.
    alerts: crate::alert::AlertSettings,
    /// Per stream: messages and dead letters since its last window closed.
    since_window: Vec<(u64, u64)>,
    /// Wakes the sink workers and the executor after alerts or runs were queued.
    wake: Arc<crate::wake::Wake>,
    /// Where runs keep their files.
    runs_dir: std::path::PathBuf,
    /// Where rotated baselines are kept, a directory per stream.
    baselines_dir: std::path::PathBuf,
    /// The DAGs, shared with the executor (swapped by reloads).
    dags: Arc<std::sync::RwLock<Vec<crate::dag::Dag>>>,
    /// Models with a run in flight, as the executor last said (for policies' `in_flight`).
    in_flight: std::collections::BTreeSet<String>,
}

impl Engine {
    /// Re-reads the configuration and swaps every stream's models and policies at once, or
    /// nothing when anything in the file is invalid. Only models and policies change; other
    /// settings are read at start.
    fn reload(&mut self, path: &std::path::Path) -> ReloadResult {
        let config = match crate::config::load(path) {
            Ok(config) => config,
            Err(err) => {
                self.metrics.reload(false);
                tracing::error!(error = %err, "reload refused; the current models and policies stay in force");
                let alert = crate::alert::reload_failed(&err.to_string());
                let routed = crate::alert::route(&self.alerts, vec![alert]);
                match self.store.enqueue_alerts(&routed) {
                    Ok(()) => self.wake.notify(),
                    Err(e) => tracing::error!(error = %e, "cannot queue the reload alert"),
                }
                return Err(err.to_string());
            }
        };
        for model in &config.models {
            if !self
                .processors
                .iter()
                .any(|p| p.settings().name == model.stream)
            {
                tracing::warn!(model = %model.name, stream = %model.stream,
                    "the model's stream is not running (new streams need a restart)");
            }
        }
        for policy in &config.policies {
            self.metrics.register_policy(&policy.model, &policy.name);
        }
        for processor in &mut self.processors {
            processor.set_policies(&config.models, &config.policies);
        }
        *self.dags.write().unwrap_or_else(|p| p.into_inner()) = config.dags.clone();
        *self.models.write().unwrap_or_else(|p| p.into_inner()) = config.models.clone();
        self.metrics.reload(true);
        let summary = ReloadSummary {
            models: config.models.len(),
            policies: config.policies.len(),
        };
        tracing::info!(
            models = summary.models,
            policies = summary.policies,
            "models and policies reloaded"
        );
        Ok(summary)
    }

    fn handle(&mut self, message: Message<'_>) -> Result<bool, AppError> {
        let Some(&index) = self.by_topic.get(message.topic) else {
            return Ok(false);
        };
        self.last_message[index] = Instant::now();
        let processor = &mut self.processors[index];
        let outcome = processor.process(message);
        self.since_window[index].0 += 1;
        self.since_window[index].1 += u64::from(outcome.dead_letter.is_some());
        let stream = processor.settings().name.clone();
        self.metrics.records(&stream, outcome.records);
        if let Some(letter) = &outcome.dead_letter {
            self.metrics.dead_letter(&stream, &letter.reason);
            tracing::warn!(stream = %stream, reason = %letter.reason, topic = %letter.topic,
                partition = letter.partition, offset = letter.offset, "dead letter");
            match (&processor.settings().dead_letter_topic, &self.dead_letters) {
                (Some(topic), Some(producer)) => {
                    if let Err(err) = kafka::send_dead_letter(producer, topic, letter) {
                        tracing::error!(stream = %stream, error = %err, "dead-letter topic unavailable, keeping it in the store");
                        self.store.add_dead_letter(&stream, letter)?;
                    }
                }
                _ => self.store.add_dead_letter(&stream, letter)?,
            }
        }
        if outcome.closed.is_empty() {
            return Ok(false);
        }
        for window in &outcome.closed {
            self.observe(&stream, window);
        }
        self.flush_dead_letters();
        self.commit_closed(index, &outcome.closed)?;
        Ok(true)
    }

    /// Commits closed windows of stream `index` with the checkpoint after them, the alerts
    /// they raise and the runs their triggers start, in one transaction; then wakes the sink
    /// workers and the executor.
    fn commit_closed(&mut self, index: usize, closed: &[StoredWindow]) -> Result<(), AppError> {
        let alerts = self.alerts_for(index, closed);
        let runs = self.runs_for(index, closed);
        let processor = &self.processors[index];
        let stream = processor.settings().name.clone();
        self.store.commit_with_outbox(
            &stream,
            closed,
            &processor.checkpoint(),
            self.keep_windows,
            &alerts,
            &runs,
        )?;
        if !alerts.is_empty() || !runs.is_empty() {
            self.wake.notify();
        }
        Ok(())
    }

    /// The runs the triggered decisions of closed windows start (for models with a DAG), each
    /// with the window's data exported into its directory.
    fn runs_for(&self, index: usize, closed: &[StoredWindow]) -> Vec<crate::store::RunRequest> {
        let processor = &self.processors[index];
        let settings = processor.settings();
        let mut runs = Vec::new();
        for window in closed {
            for decision in &window.decisions {
                if decision.outcome != Outcome::Triggered {
                    continue;
                }
                let Some(dag) = &decision.dag else { continue };
                let id = crate::dag::run_id(&decision.key);
                let files = match window.data.as_deref() {
                    Some(data) => {
                        match crate::dag::executor::export_window(data, &self.runs_dir.join(&id)) {
                            Ok((window, records)) => crate::dag::request::WindowFiles {
                                window: Some(window),
                                records,
                            },
                            Err(err) => {
                                tracing::error!(run = %id, error = %err, "cannot export the window; the run starts without it");
                                Default::default()
                            }
                        }
                    }
                    None => Default::default(),
                };
                runs.push(crate::dag::request::triggered(
                    decision,
                    dag,
                    &settings.baseline.id,
                    files,
                ));
            }
        }
        runs
    }

    /// The alerts the closed windows of stream `index` raise, routed to their sinks. The
    /// message and dead-letter counts go with the first window and start again.
    fn alerts_for(&mut self, index: usize, closed: &[StoredWindow]) -> Vec<crate::alert::Routed> {
        let processor = &self.processors[index];
        let stream = &processor.settings().name;
        let models = processor.policies().models();
        let mut alerts = Vec::new();
        for window in closed {
            let (messages, dead) = std::mem::take(&mut self.since_window[index]);
            alerts.extend(crate::alert::from_window(
                &self.alerts,
                stream,
                models,
                window,
                messages,
                dead,
            ));
        }
        crate::alert::route(&self.alerts, alerts)
    }

    /// Metrics and logs for a closed window and the decisions on it.
    fn observe(&self, stream: &str, window: &StoredWindow) {
        self.metrics.window(stream, &window.report);
        tracing::info!(stream = %stream, window = window.index,
            drifted = %window.report["dataset"]["drifted"],
            detected = %window.report["dataset"]["detected"], "window closed");
        for decision in &window.decisions {
            self.metrics
                .decision(&decision.model, &decision.policy, decision.outcome);
            if decision.outcome != Outcome::NotTriggered {
                tracing::info!(policy = %decision.policy, model = %decision.model,
                    window = decision.window, outcome = decision.outcome.as_str(),
                    reason = %decision.reason, "decision");
            }
        }
    }

    fn tick(&mut self, now_ms: i64) -> Result<bool, AppError> {
        let mut closed_any = false;
        for i in 0..self.processors.len() {
            // A stream still receiving records is not idle, whatever its event times say (a
            // backfill of old data must not close a window per message). A window reported in
            // the background is committed once its report is ready, waited for when idle.
            let idle = self.processors[i].settings().grace.max(MIN_IDLE);
            let closed = if self.last_message[i].elapsed() < idle {
                self.processors[i].ready().into_iter().collect()
            } else {
                self.processors[i].tick(now_ms)
            };
            if closed.is_empty() {
                continue;
            }
            let stream = self.processors[i].settings().name.clone();
            for window in &closed {
                self.observe(&stream, window);
            }
            self.commit_closed(i, &closed)?;
            closed_any = true;
        }
        Ok(closed_any)
    }

    /// Tells the policies which models have a run in flight and how long finished runs took
    /// (for cost forecasts), and rotates the baselines succeeded runs produced.
    fn sync_runs(&mut self, busy: &crate::dag::executor::Busy, finished: &Mutex<Vec<FinishedRun>>) {
        // Per poll of the consumer loop: compared under the lock, cloned only on a change.
        let now = busy.lock().unwrap_or_else(|p| p.into_inner());
        if *now != self.in_flight {
            for processor in &mut self.processors {
                let engine = processor.policies_mut();
                for model in self.in_flight.difference(&now) {
                    engine.set_in_flight(model, false);
                }
                for model in now.difference(&self.in_flight) {
                    engine.set_in_flight(model, true);
                }
            }
            self.in_flight = now.clone();
        }
        drop(now);
        let done = std::mem::take(&mut *finished.lock().unwrap_or_else(|p| p.into_inner()));
        for run in done {
            if let Some(seconds) = run.seconds {
                for processor in &mut self.processors {
                    processor.policies_mut().record_run(&run.model, seconds);
                }
            }
            if let Some(path) = &run.baseline {
                if let Err(why) = self.rotate_baseline(&run, path) {
                    tracing::error!(run = %run.run_id, stream = %run.stream, error = %why,
                        "the run's baseline was not rotated; the current one stays");
                    let _ = self.store.set_run_status(
                        &run.run_id,
                        RunStatus::Succeeded,
                        None,
                        Some(&format!("baseline not rotated: {why}")),
                    );
                }
            }
        }
    }

    /// Makes a run's baseline output the stream's baseline: checked against the stream's
    /// features, kept as a version under the store's directory, recorded, and switched to.
    fn rotate_baseline(&mut self, run: &FinishedRun, path: &std::path::Path) -> Result<(), String> {
        let index = self
            .processors
            .iter()
            .position(|p| p.settings().name == run.stream)
            .ok_or_else(|| format!("no stream {}", run.stream))?;
        let baseline = crate::baseline::Baseline::load(path).map_err(|e| e.to_string())?;
        let features = &self.processors[index].settings().schema.features;
        let mismatches = baseline.mismatches(features);
        if !mismatches.is_empty() {
            return Err(mismatches.join("; "));
        }
        let dir = self.baselines_dir.join(&run.stream);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let kept = dir.join(format!("{}.json", baseline.id));
        std::fs::copy(path, &kept).map_err(|e| e.to_string())?;
        let previous = self.processors[index].settings().baseline.id.clone();
        self.store
            .rotate_baseline(
                &run.stream,
                &baseline.id,
                &kept.display().to_string(),
                Some(&run.run_id),
            )
            .map_err(|e| e.to_string())?;
        let version = baseline.id.clone();
        self.processors[index].set_baseline(kept.clone(), Arc::new(baseline));
        tracing::info!(stream = %run.stream, from = %previous, to = %version, run = %run.run_id, "baseline rotated");
        let alert = crate::alert::baseline_rotated(
            &self.alerts,
            &run.stream,
            &run.model,
            &run.run_id,
            &previous,
            &version,
        );
        let routed = crate::alert::route(&self.alerts, vec![alert]);
        if self.store.enqueue_alerts(&routed).is_ok() {
            self.wake.notify();
        }
        Ok(())
    }

    /// Checkpoints every stream and returns the offsets that may now be committed.
    fn checkpoint(&mut self) -> Result<TopicPartitionList, AppError> {
        self.flush_dead_letters();
        match self.store.pending_alerts() {
            Ok(pending) => {
                for sink in &self.alerts.sinks {
                    let n = pending
                        .iter()
                        .find(|(s, _)| *s == sink.name)
                        .map_or(0, |(_, n)| *n);
                    self.metrics.alerts_pending(&sink.name, n);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot count pending alerts"),
        }
        for processor in &self.processors {
            let stream = processor.settings().name.clone();
            self.store
                .commit(&stream, &[], &processor.checkpoint(), self.keep_windows)?;
        }
        Ok(self.committable())
    }

    fn committable(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for processor in &self.processors {
            for (key, next) in processor.next_offsets() {
                if let Some((topic, partition)) = key.rsplit_once('/') {
                    if let Ok(partition) = partition.parse::<i32>() {
                        let _ = list.add_partition_offset(topic, partition, Offset::Offset(*next));
                    }
                }
            }
        }
        list
    }

    /// Lag per partition from librdkafka's statistics: its high watermark minus the next offset
    /// this instance will process.
    fn update_lag(&self, statistics: &rdkafka::statistics::Statistics) {
        for (topic, stats) in &statistics.topics {
            let Some(&index) = self.by_topic.get(topic) else {
                continue;
            };
            let processor = &self.processors[index];
            for (&partition, partition_stats) in &stats.partitions {
                // librdkafka reports an internal "unassigned" partition as -1.
                if partition < 0 || partition_stats.hi_offset < 0 {
                    continue;
                }
                let key = format!("{topic}/{partition}");
                let Some(&next) = processor.next_offsets().get(&key) else {
                    continue;
                };
                self.metrics.lag(
                    &processor.settings().name,
                    partition,
                    partition_stats.hi_offset - next,
                );
            }
        }
    }

    fn flush_dead_letters(&self) {
        if let Some(producer) = &self.dead_letters {
            if let Err(err) = producer.flush(Duration::from_secs(10)) {
                tracing::error!(error = %err, "dead letters not confirmed by the broker");
            }
        }
    }
}

/// The consumer's context: checkpoints before partitions are revoked, and tells readiness.
struct Context {
    engine: Arc<Mutex<Engine>>,
    readiness: Arc<Readiness>,
}

impl ClientContext for Context {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        lock(&self.engine).update_lag(&statistics);
    }

    /// Connection failures are summarised by `error` (one line per interval); librdkafka's own
    /// lines about them, several per second, stay at `debug`.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if matches!(fac, "FAIL" | "BROKERFAIL" | "ERROR" | "CONNECT" | "RESOLVE") {
            tracing::debug!(target: "librdkafka", fac, "{message}");
        } else {
            rdkafka::client::DefaultClientContext.log(level, fac, message);
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.readiness.on_error(&error, reason, Instant::now());
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(
                    partitions = partitions.count(),
                    "partitions revoked, checkpointing"
                );
                let offsets = lock(&self.engine).checkpoint();
                match offsets {
                    Ok(offsets) if offsets.count() > 0 => {
                        if let Err(err) = consumer.commit(&offsets, CommitMode::Sync) {
                            tracing::warn!(error = %err, "offset commit on revoke failed; the checkpoint still holds them");
                        }
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "checkpoint on revoke failed"),
                }
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned");
                // Baselines were loaded before the consumer started; an assignment (even an
                // empty one, when there are more instances than partitions) means the group
                // has taken this instance in.
                self.readiness.assigned();
            }
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance error"),
        }
    }
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    // A panic while holding the lock is a bug that already stopped processing; the state is
    // still the last consistent one the store holds.
    engine
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A stream is idle (its open duration window may close by the clock) only after this long
/// without a message, even with `grace = "0s"`.
const MIN_IDLE: Duration = Duration::from_secs(1);

/// The start-up line, shown at the default log level (target `driftgate::banner`): what this
/// instance is, what it reads and where it can be reached.
fn banner(config: &ServiceConfig, path: &std::path::Path, servers: &str) {
    let streams: Vec<String> = config
        .streams
        .iter()
        .map(|s| format!("{} <- {}", s.name, s.topic))
        .collect();
    tracing::info!(
        target: "driftgate::banner",
        version = env!("CARGO_PKG_VERSION"),
        config = %path.display(),
        kafka = %servers,
        group = %config.group_id,
        streams = %streams.join(", "),
        api = %format!("http://{}", config.api_listen),
        store = %config.store_path.display(),
        "driftgate starting"
    );
}

/// Runs the service until `stop` is set, then checkpoints, commits and returns. `path` is the
/// configuration file, re-read on reload.
pub fn run(
    config: ServiceConfig,
    path: &std::path::Path,
    stop: Arc<AtomicBool>,
) -> Result<(), AppError> {
    // `embedded`: an in-process Kafka-protocol cluster, for trying driftgate with nothing
    // installed. Not durable: it lives and dies with this process.
    let embedded = match &config.bootstrap_servers {
        Some(_) => None,
        None => {
            let cluster = rdkafka::mocking::MockCluster::new(1)?;
            for stream in &config.streams {
                cluster.create_topic(&stream.topic, 3, 1)?;
                if let Some(dlq) = &stream.dead_letter_topic {
                    cluster.create_topic(dlq, 1, 1)?;
                }
            }
            tracing::warn!(bootstrap = %cluster.bootstrap_servers(), "embedded broker: in-process and not durable");
            Some(cluster)
        }
    };
    let servers = match (&config.bootstrap_servers, &embedded) {
        (Some(servers), _) => servers.clone(),
        (None, Some(cluster)) => cluster.bootstrap_servers(),
        (None, None) => unreachable!("embedded is set when no servers are"),
    };

    let store = Store::open(&config.store_path)?;
    banner(&config, path, &servers);
    let mut processors = Vec::new();
    let mut by_topic = HashMap::new();
    for stream in &config.streams {
        let checkpoint = store.checkpoint(&stream.name)?;
        if let Some(checkpoint) = &checkpoint {
            tracing::info!(stream = %stream.name, window = checkpoint.open_window.index,
                records = checkpoint.open_window.records, "resuming from checkpoint");
        }
        let mut processor = StreamProcessor::new(stream.clone(), checkpoint).map_err(|source| {
            AppError::Checkpoint {
                stream: stream.name.clone(),
                source,
            }
        })?;
        // Window statistics are computed while the next messages are decoded.
        processor.report_in_background();
        processor.set_policies(&config.models, &config.policies);
        // A baseline a run rotated in outlives restarts.
        if let Some(active) = store.active_baseline(&stream.name)? {
            match crate::baseline::Baseline::load(std::path::Path::new(&active.path)) {
                Ok(baseline) if baseline.mismatches(&stream.schema.features).is_empty() => {
                    tracing::info!(stream = %stream.name, version = %active.version, "using the rotated baseline");
                    processor.set_baseline(PathBuf::from(&active.path), Arc::new(baseline));
                }
                Ok(_) => tracing::error!(stream = %stream.name, path = %active.path,
                    "the rotated baseline no longer fits the stream's features; using the configured one"),
                Err(err) => tracing::error!(stream = %stream.name, error = %err,
                    "cannot load the rotated baseline; using the configured one"),
            }
        }
        by_topic.insert(stream.topic.clone(), processors.len());
        processors.push(processor);
    }
    let dead_letters = if config.streams.iter().any(|s| s.dead_letter_topic.is_some()) {
        Some(kafka::producer_config(&servers, &config.kafka_properties).create::<BaseProducer>()?)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::default());
    for stream in &config.streams {
        metrics.register_stream(&stream.name);
    }
    for model in config.models.iter().filter(|m| m.dag.is_some()) {
        metrics.register_run_model(&model.name);
    }
    let wake = Arc::new(crate::wake::Wake::default());
    let workers_stop = Arc::new(AtomicBool::new(false));
    let dags = Arc::new(std::sync::RwLock::new(config.dags.clone()));
    let busy: crate::dag::executor::Busy = Arc::default();
    let finished_runs: Arc<Mutex<Vec<FinishedRun>>> = Arc::default();
    let executor = {
        let settings = crate::dag::executor::ExecutorSettings {
            store_path: config.store_path.clone(),
            dir: config.runs.dir.clone(),
            max_parallel: config.runs.max_parallel,
            queue_when_busy: config.runs.queue_when_busy,
        };
        let events = run_events(
            &config,
            Arc::clone(&metrics),
            Arc::clone(&wake),
            Arc::clone(&finished_runs),
            Arc::clone(&dags),
        );
        let (dags, busy, stop, wake) = (
            Arc::clone(&dags),
            Arc::clone(&busy),
            Arc::clone(&workers_stop),
            Arc::clone(&wake),
        );
        std::thread::Builder::new()
            .name("executor".into())
            .spawn(move || {
                crate::dag::executor::run_dispatcher(settings, dags, busy, stop, wake, events)
            })
            .map_err(|e| AppError::Sink {
                sink: "executor".into(),
                message: e.to_string(),
            })?
    };
    let mut workers = Vec::new();
    let kafka_client = kafka::producer_config(&servers, &config.kafka_properties);
    for sink in &config.alerts.sinks {
        metrics.register_sink(&sink.name);
        let sender = crate::alert::deliver::Sender::new(sink.clone(), Some(&kafka_client))
            .map_err(|message| AppError::Sink {
                sink: sink.name.clone(),
                message,
            })?;
        let store = Store::open(&config.store_path)?;
        let (wake, stop, metrics) = (
            Arc::clone(&wake),
            Arc::clone(&workers_stop),
            Arc::clone(&metrics),
        );
        workers.push(
            std::thread::Builder::new()
                .name(format!("alerts-{}", sink.name))
                .spawn(move || {
                    crate::alert::deliver::run_worker(store, sender, wake, stop, metrics)
                })
                .map_err(|e| AppError::Sink {
                    sink: sink.name.clone(),
                    message: e.to_string(),
                })?,
        );
    }
    for policy in &config.policies {
        metrics.register_policy(&policy.model, &policy.name);
    }
    let readiness = Arc::new(Readiness::new(&servers));
    let (reloads, reload_sender) =
        Reloads::start(path, &config.includes).map_err(AppError::Reload)?;
    let models = Arc::new(std::sync::RwLock::new(config.models.clone()));
    let api = ApiState {
        metrics: Arc::clone(&metrics),
        readiness: Arc::clone(&readiness),
        store_path: config.store_path.clone(),
        runs_dir: config.runs.dir.clone(),
        streams: Arc::new(config.streams.iter().map(stream_info).collect()),
        models: Arc::clone(&models),
        reload: reload_sender,
        run_token: config.runs.token.clone(),
        baselines: Arc::new(
            config
                .streams
                .iter()
                .map(|s| (s.name.clone(), s.baseline.id.clone()))
                .collect(),
        ),
        wake: Arc::clone(&wake),
    };
    let (address, api_thread) =
        crate::api::spawn(config.api_listen, api, Arc::clone(&stop)).map_err(AppError::Api)?;
    tracing::info!(address = %address, "api listening");
    let engine = Arc::new(Mutex::new(Engine {
        store,
        processors,
        by_topic,
        dead_letters,
        keep_windows: config.keep_windows,
        metrics,
        models,
        last_message: vec![Instant::now(); config.streams.len()],
        alerts: config.alerts.clone(),
        since_window: vec![(0, 0); config.streams.len()],
        wake: Arc::clone(&wake),
        runs_dir: config.runs.dir.clone(),
        baselines_dir: config
            .store_path
            .parent()
            .map_or_else(|| PathBuf::from("baselines"), |d| d.join("baselines")),
        dags: Arc::clone(&dags),
        in_flight: Default::default(),
    }));
    let consumer: BaseConsumer<Context> =
        kafka::consumer_config(&servers, &config.group_id, &config.kafka_properties)
            .create_with_context(Context {
                engine: Arc::clone(&engine),
                readiness,
            })?;
    let topics: Vec<&str> = config.streams.iter().map(|s| s.topic.as_str()).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?topics, group = %config.group_id, "consuming");

    let mut last_checkpoint = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let mut commit_now = false;
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            match result {
                Ok(message) => {
                    let view = Message {
                        topic: message.topic(),
                        partition: message.partition(),
                        offset: message.offset(),
                        timestamp_ms: message.timestamp().to_millis(),
                        payload: message.payload(),
                    };
                    commit_now |= lock(&engine).handle(view)?;
                }
                Err(err) => consumer.context().readiness.on_poll_error(&err),
            }
        }
        commit_now |= lock(&engine).tick(crate::store::now_ms())?;
        lock(&engine).sync_runs(&busy, &finished_runs);
        if let Some(due) = reloads.due() {
            let result = lock(&engine).reload(path);
            if let Due::Answer(reply) = due {
                let _ = reply.send(result);
            }
        }
        if commit_now {
            commit(&consumer, &lock(&engine).committable(), CommitMode::Async);
        }
        if last_checkpoint.elapsed() >= config.checkpoint_interval {
            let offsets = lock(&engine).checkpoint()?;
            commit(&consumer, &offsets, CommitMode::Async);
            last_checkpoint = Instant::now();
        }
    }

    tracing::info!("stopping: final checkpoint");
    let offsets = lock(&engine).checkpoint()?;
    commit(&consumer, &offsets, CommitMode::Sync);
    drop(consumer);
    // Sink workers finish the attempt in hand (its outcome is recorded) and stop; what is
    // pending stays in the outbox for the next start.
    workers_stop.store(true, Ordering::SeqCst);
    wake.notify();
    for worker in workers {
        let _ = worker.join();
    }
    let _ = executor.join();
    drop(embedded);
    let _ = api_thread.join();
    Ok(())
}

/// What happens when a run starts or finishes: its alert is queued, and a finished run's
/// duration goes to the policies (through the consumer loop).
/// A finished run, for the consumer loop: its duration for cost forecasts, and the baseline it
/// produced, if its DAG declares one and it succeeded.
struct FinishedRun {
    model: String,
    seconds: Option<f64>,
    run_id: String,
    stream: String,
    baseline: Option<PathBuf>,
}

fn run_events(
    config: &ServiceConfig,
    metrics: Arc<Metrics>,
    wake: Arc<crate::wake::Wake>,
    finished: Arc<Mutex<Vec<FinishedRun>>>,
    dags: Arc<std::sync::RwLock<Vec<crate::dag::Dag>>>,
) -> Arc<dyn Fn(crate::dag::executor::RunEvent) + Send + Sync> {
    use crate::alert::AlertKind;
    use crate::dag::executor::RunEvent;
    let (path, alerts) = (config.store_path.clone(), config.alerts.clone());
    Arc::new(move |event: RunEvent| {
        let (kind, run) = match event {
            RunEvent::Started(run) => (AlertKind::RunStarted, run),
            RunEvent::Finished(run) => {
                let seconds = match (run.started_at, run.finished_at) {
                    (Some(start), Some(end)) if run.status == RunStatus::Succeeded => {
                        Some((end - start).max(0) as f64 / 1000.0)
                    }
                    _ => None,
                };
                metrics.run_finished(&run.model, run.status, seconds);
                let baseline = (run.status == RunStatus::Succeeded)
                    .then(|| produced_baseline(&path, &run, &dags))
                    .flatten();
                finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(FinishedRun {
                        model: run.model.clone(),
                        seconds,
                        run_id: run.id.clone(),
                        stream: run.request.stream.clone(),
                        baseline,
                    });
                let kind = if run.status == RunStatus::Succeeded {
                    AlertKind::RunSucceeded
                } else {
                    AlertKind::RunFailed
                };
                (kind, run)
            }
        };
        tracing::info!(run = %run.id, model = %run.model, status = %run.status, "run {}", kind.as_str());
        let queued = Store::open(&path).and_then(|mut store| {
            let tasks = store.run_tasks(&run.id)?;
            let alert = crate::alert::run_alert(&alerts, kind, &run, &tasks);
            store.enqueue_alerts(&crate::alert::route(&alerts, vec![alert]))
        });
        match queued {
            Ok(()) => wake.notify(),
            Err(err) => {
                tracing::error!(run = %run.id, error = %err, "cannot queue the run's alert")
            }
        }
    })
}

/// The file a succeeded run declared as the next baseline (a task's `baseline_output`).
fn produced_baseline(
    store_path: &std::path::Path,
    run: &crate::store::RunRecord,
    dags: &std::sync::RwLock<Vec<crate::dag::Dag>>,
) -> Option<PathBuf> {
    let wanted: Vec<(String, String)> = dags
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|d| d.name == run.dag)?
        .tasks
        .iter()
        .filter_map(|t| t.baseline_output.clone().map(|o| (t.name.clone(), o)))
        .collect();
    let tasks = Store::open_read_only(store_path)
        .ok()?
        .run_tasks(&run.id)
        .ok()?;
    wanted.iter().find_map(|(task, file)| {
        tasks
            .iter()
            .filter(|t| &t.task == task && t.status.has_outputs())
            .flat_map(|t| t.outputs.iter())
            .find(|a| &a.file == file)
            .map(|a| PathBuf::from(&a.path))
    })
}

fn stream_info(stream: &crate::config::StreamSettings) -> StreamInfo {
    StreamInfo {
        name: stream.name.clone(),
        topic: stream.topic.clone(),
        window: match stream.window {
            crate::window::WindowSpec::Records(n) => format!("{n} records"),
            crate::window::WindowSpec::DurationMs(ms) => {
                humantime::format_duration(Duration::from_millis(ms)).to_string()
            }
        },
        baseline_id: stream.baseline.id.clone(),
        features: stream
            .schema
            .features
            .iter()
            .map(|f| f.name.clone())
            .collect(),
    }
}

fn commit(consumer: &BaseConsumer<Context>, offsets: &TopicPartitionList, mode: CommitMode) {
    if offsets.count() == 0 {
        return;
    }
    if let Err(err) = consumer.commit(offsets, mode) {
        // Not fatal: the store's checkpoint is the truth and the processors skip re-reads.
        tracing::warn!(error = %err, "offset commit failed");
    }
}

/// Sets `stop` on SIGTERM or SIGINT; a second signal exits at once (status 130), and the
/// process exits anyway `timeout` after the first if the final checkpoint hangs.
pub fn install_signal_handlers(stop: &Arc<AtomicBool>, timeout: Duration) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT] {
        // Order matters: the conditional exit sees the flag set by a previous signal.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(stop))?;
        signal_hook::flag::register(signal, Arc::clone(stop))?;
    }
    let watched = Arc::clone(stop);
    std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            while !watched.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            std::thread::sleep(timeout);
            tracing::error!(timeout = ?timeout, "shutdown timed out; exiting");
            std::process::exit(1);
        })?;
    Ok(())
}
