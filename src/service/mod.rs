//! The running service: consume, process, checkpoint, commit.
//!
//! One thread polls the consumer (librdkafka's rebalance callbacks run inside `poll`, so a
//! blocking loop is the simplest correct shell). The `Service` state — streams, store, runs —
//! sits behind a mutex that the loop never holds across `poll`, so the revoke callback can lock
//! it to checkpoint before partitions move. Beside the loop run the executor, one worker per
//! alert sink and the API (`workers`).
//!
//! Delivery: a closed window's report, the alerts and runs it sets off and the checkpoint after
//! it are one store transaction; offsets go to Kafka only after that (and after dead letters are
//! flushed). After any crash the store's `next_offsets` let the processors skip what they
//! already counted.
//!
//! Files: `streams` processes messages and checkpoints; `consequences` decides what closed
//! windows set off; `runs` follows runs and rotates baselines; `workers` starts the threads
//! beside the loop; `consumer` is the Kafka side; `shared` the place in a shared store;
//! `outage` holds what waits for an unreachable store; `shutdown` the signals.

mod consequences;
mod consumer;
mod outage;
mod positions;
pub(crate) mod rotation;
mod runs;
mod shared;
mod shutdown;
mod spanning;
mod streams;
mod workers;

pub use shutdown::install_signal_handlers;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::Message as _;

use crate::config::alerts::AlertSettings;
use crate::config::reload::{
    Catalog, Due, ReloadResult, ReloadSummary, Reloads, SharedCatalog, FILE_ATTEMPTS,
};
use crate::config::ServiceConfig;
use crate::locks::{lock, write};
use crate::pipeline::Message;
use crate::source::readiness::Readiness;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::wake::Wake;

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
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

/// What the consumer loop works on, shared with the consumer's callbacks.
struct Service {
    store: Store,
    metrics: Arc<Metrics>,
    /// Wakes the sink workers and the executor after alerts or runs were queued.
    wake: Arc<Wake>,
    streams: streams::Streams,
    runs: runs::RunState,
    /// Alert sinks and thresholds.
    alerts: AlertSettings,
    /// Models and DAGs, shared with the API and the executor.
    catalog: SharedCatalog,
    /// Where a partition whose checkpoint is beyond its end resumes.
    offset_reset: crate::config::raw::OffsetReset,
    /// The brokers' client settings, for reading one offset outside the group.
    probe: rdkafka::ClientConfig,
    /// Why this instance must stop (a shared store's lease or partition lost).
    lost: shared::Lost,
    /// While the store cannot be reached: what waits for it (ingestion is paused).
    outage: Option<outage::Outage>,
    /// What `/readyz` answers; told when ingestion pauses and resumes.
    readiness: Arc<Readiness>,
    /// Whether instances share the store.
    shared: bool,
    /// The streams' topics' partition counts, learnt by the broker probe.
    partition_counts: Arc<consumer::PartitionCounts>,
}

/// Runs the service until `stop` is set, then checkpoints, commits and returns. `path` is the
/// configuration file, re-read on reload.
pub fn run(config: ServiceConfig, path: &Path, stop: Arc<AtomicBool>) -> Result<(), ServiceError> {
    let brokers = consumer::Brokers::start(&config)?;
    let mut store = Store::open(&config.store)?;
    let fence = shared::join(&config, &mut store)?;
    // The merging of a stream whose windows span instances is held under this process's name.
    if let Some(holder) = shared::holder(fence.as_ref()) {
        store.act_for(holder);
    }
    banner(&config, path, brokers.servers());
    let mut streams = streams::Streams::open(&config, &store, brokers.servers())?;
    if let Some(fence) = &fence {
        streams.tag(&fence.tag());
    }
    let lost = shared::Lost::default();
    let metrics = Arc::new(metrics_for(&config));
    let wake = Arc::new(Wake::default());
    let catalog: SharedCatalog = Arc::new(std::sync::RwLock::new(Catalog {
        models: config.models.clone(),
        dags: config.dags.clone(),
    }));
    let runs = runs::RunState::new(&config);
    let readiness = Arc::new(Readiness::new(brokers.servers()));
    let (reloads, reload_sender) =
        Reloads::start(path, &config.includes).map_err(ServiceError::Reload)?;
    let shared = workers::Shared {
        metrics: &metrics,
        wake: &wake,
        catalog: &catalog,
        runs: &runs,
        holder: shared::holder(fence.as_ref()),
    };
    let partition_counts = Arc::new(consumer::PartitionCounts::default());
    let api = workers::api_state(&config, &shared, &readiness, reload_sender);
    let workers = workers::Workers::start(&config, brokers.servers(), shared, api, &stop)?;
    let service = Arc::new(Mutex::new(Service {
        store,
        metrics,
        wake,
        streams,
        runs,
        alerts: config.alerts.clone(),
        catalog,
        offset_reset: config.offset_reset,
        probe: crate::source::kafka::client_config(brokers.servers(), &config.kafka_properties),
        lost: Arc::clone(&lost),
        outage: None,
        readiness: Arc::clone(&readiness),
        shared: config.store.is_shared(),
        partition_counts: Arc::clone(&partition_counts),
    }));
    let consumer =
        consumer::subscribe(&config, brokers.servers(), Arc::clone(&service), readiness)?;
    let probe_stop = AtomicBool::new(false);
    let topics: Vec<&str> = config.streams.iter().map(|s| s.topic.as_str()).collect();
    std::thread::scope(|scope| {
        scope.spawn(|| consumer::probe_brokers(&consumer, &topics, &partition_counts, &probe_stop));
        if let Some(fence) = &fence {
            scope.spawn(|| shared::heartbeat(&config, fence, &probe_stop, &lost));
        }
        let polled = poll(&consumer, &service, &reloads, path, &config, &stop);
        probe_stop.store(true, Ordering::SeqCst);
        polled
    })?;

    tracing::info!("stopping: final checkpoint");
    lock(&service).stopping();
    // Dead letters in flight get a few seconds; those unconfirmed by then stay in the store.
    lock(&service).settle_dead_letters(Duration::from_secs(5));
    let offsets = match lock(&service).checkpoint() {
        Ok(offsets) => offsets,
        // Stopping while the group moves partitions on: their new owner resumes from the last
        // checkpoint this instance made, so nothing is lost by not making another.
        Err(ServiceError::Store(StoreError::Fenced(why))) => {
            tracing::warn!(reason = %why, "the final checkpoint was refused; the partitions' new owner resumes from the previous one");
            rdkafka::TopicPartitionList::new()
        }
        Err(err) => return Err(err),
    };
    lock(&service).release_mergers();
    consumer::commit(&consumer, &offsets, CommitMode::Sync);
    drop(consumer);
    workers.stop();
    drop(brokers);
    Ok(())
}

/// How long the loop waits for a message when nothing else is due.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long it waits while a window's report is being made.
const REPORT_POLL: Duration = Duration::from_millis(2);

/// The consumer loop, until `stop`: a message, the clock, runs, reloads, commits, checkpoints.
fn poll(
    consumer: &BaseConsumer<consumer::Context>,
    service: &Mutex<Service>,
    reloads: &Reloads,
    path: &Path,
    config: &ServiceConfig,
    stop: &AtomicBool,
) -> Result<(), ServiceError> {
    let mut last_checkpoint = Instant::now();
    let mut paused = false;
    while !stop.load(Ordering::SeqCst) {
        lock(service).lost()?;
        // After an outage, a checkpoint at once: the held windows are stored, the rest not yet.
        let resumed = paused && !lock(service).ride_out()?;
        paused = consumer::pause_while(consumer, lock(service).paused(), paused);
        let mut commit_now = false;
        // A report being made in the background is stored as soon as it is ready, not at the
        // next idle poll: the loop looks again every few milliseconds meanwhile.
        let wait = if lock(service).streams.report_pending() {
            REPORT_POLL
        } else {
            IDLE_POLL
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                let view = Message {
                    topic: message.topic(),
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp_ms: message.timestamp().to_millis(),
                    payload: message.payload(),
                };
                let end = |topic: &str, partition: i32| {
                    positions::partition_end(consumer, topic, partition)
                };
                commit_now |= lock(service).handle(view, &end)?;
            }
            Some(Err(err)) => consumer.context().readiness.on_poll_error(&err),
            None => {}
        }
        let ends = |topic: &str, partition: i32| positions::cached_ends(consumer, topic, partition);
        commit_now |= lock(service).tick(crate::store::now_ms(), &ends)?;
        lock(service).sync_runs();
        if let Some(due) = reloads.due() {
            lock(service).reload(path, due, reloads);
        }
        if commit_now {
            let offsets = lock(service).committable();
            consumer::commit(consumer, &offsets, CommitMode::Async);
        }
        if resumed || last_checkpoint.elapsed() >= config.checkpoint_interval {
            if config.store.is_shared() {
                lock(service).follow_rotations();
            }
            let offsets = lock(service).checkpoint()?;
            consumer::commit(consumer, &offsets, CommitMode::Async);
            last_checkpoint = Instant::now();
        }
    }
    Ok(())
}

impl Service {
    /// Performs a due reload: applied, refused (logged, counted, alerted, answered), or — for
    /// a file change refused before its last attempt — read again a moment later, quietly.
    fn reload(&mut self, path: &Path, due: Due, reloads: &Reloads) {
        let result = self.try_reload(path);
        let result = match (result, due) {
            (Err(problems), Due::File { attempt }) if attempt < FILE_ATTEMPTS => {
                tracing::info!(attempt, error = %problems,
                    "the changed configuration is refused for now; reading it again (it may be half written)");
                reloads.retry(attempt);
                return;
            }
            (result, due) => (
                result.map_err(|problems| self.refuse_reload(&problems)),
                due,
            ),
        };
        if let (result, Due::Answer(reply)) = result {
            let _ = reply.send(result);
        }
    }

    /// Re-reads the configuration and swaps the models, policies and DAGs, or nothing when
    /// anything in the file is invalid or it would leave a monitored stream without models or
    /// policies ([`unmonitored`]). Only models, policies and DAGs change; other settings are
    /// read at start. The policies swap under the loop's lock and the catalog in one write.
    fn try_reload(&mut self, path: &Path) -> ReloadResult {
        let config = crate::config::load(path).map_err(|err| err.public())?;
        self.keeps_streams_monitored(&config)?;
        for model in &config.models {
            if self.streams.index_of(&model.stream).is_none() {
                tracing::warn!(model = %model.name, stream = %model.stream,
                    "the model's stream is not running (new streams need a restart)");
            }
        }
        for policy in &config.policies {
            self.metrics.register_policy(&policy.model, &policy.name);
        }
        for processor in self.streams.all_processors() {
            processor.set_policies(&config.models, &config.policies);
        }
        let summary = ReloadSummary {
            models: config.models.len(),
            policies: config.policies.len(),
        };
        *write(&self.catalog) = Catalog {
            models: config.models,
            dags: config.dags,
        };
        self.metrics.reload(true);
        tracing::info!(
            models = summary.models,
            policies = summary.policies,
            "models and policies reloaded"
        );
        Ok(summary)
    }

    /// Refuses `config` when it would leave a stream that has models and policies without any,
    /// unless the file names the stream in `unmonitored_streams`.
    fn keeps_streams_monitored(&self, config: &ServiceConfig) -> Result<(), String> {
        let models = &crate::locks::read(&self.catalog).models;
        let emptied: Vec<&str> = (self.streams.processors.iter())
            .filter(|p| {
                let name = p.settings().name.as_str();
                !config.unmonitored_streams.iter().any(|s| s == name)
                    && !unmonitored(name, models, p.policies().policies())
                    && unmonitored(name, &config.models, &config.policies)
            })
            .map(|p| p.settings().name.as_str())
            .collect();
        if emptied.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the new files leave stream(s) {} without any model or policy; if that is meant, list them in `unmonitored_streams` in the service file",
            emptied.join(", ")
        ))
    }

    /// Counts, logs and alerts a refused reload; returns why, for the API. `problems` name
    /// files and keys, never values ([`crate::config::ConfigError::public`]): logs and alerts
    /// travel further than the files' readers.
    fn refuse_reload(&mut self, problems: &str) -> String {
        self.metrics.reload(false);
        tracing::error!(error = %problems, "reload refused; the current models and policies stay in force");
        let alert = crate::alert::reload_failed(problems);
        let routed = crate::alert::route(&self.alerts, vec![alert]);
        match self.store.enqueue_alerts(&routed) {
            Ok(()) => self.wake.notify(),
            Err(e) => tracing::error!(error = %e, "cannot queue the reload alert"),
        }
        problems.to_string()
    }
}

/// Whether `stream` has no model, or no policy for any of its models.
fn unmonitored(
    stream: &str,
    models: &[crate::policy::Model],
    policies: &[crate::policy::Policy],
) -> bool {
    !models
        .iter()
        .filter(|m| m.stream == stream)
        .any(|m| policies.iter().any(|p| p.model == m.name))
}

/// The metrics, with every configured stream, model run and policy series present from the
/// start (at zero).
fn metrics_for(config: &ServiceConfig) -> Metrics {
    let metrics = Metrics::default();
    for stream in &config.streams {
        metrics.register_stream(&stream.name);
    }
    for model in config.models.iter().filter(|m| m.dag.is_some()) {
        metrics.register_run_model(&model.name);
    }
    for policy in &config.policies {
        metrics.register_policy(&policy.model, &policy.name);
    }
    metrics
}

/// The start-up line, shown at the default log level (target `driftgate::banner`): what this
/// instance is, what it reads and where it can be reached.
fn banner(config: &ServiceConfig, path: &Path, servers: &str) {
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
        store = %config.store,
        "driftgate starting"
    );
}
