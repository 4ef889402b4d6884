//! The threads beside the consumer loop: the run executor, one delivery worker per alert sink,
//! and the HTTP API. They share the store file, the metrics, the catalog and a wake-up call;
//! they stop when told, after the loop's final checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::runs::{run_events, RunState};
use super::ServiceError;
use crate::api::{ApiState, StreamInfo};
use crate::config::reload::{ReloadRequest, SharedCatalog};
use crate::config::ServiceConfig;
use crate::source::readiness::Readiness;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::wake::Wake;

/// What the workers share with the loop.
pub(super) struct Shared<'a> {
    /// The service's metrics.
    pub metrics: &'a Arc<Metrics>,
    /// Wakes the sink workers and the executor.
    pub wake: &'a Arc<Wake>,
    /// Models and DAGs, swapped by reloads.
    pub catalog: &'a SharedCatalog,
    /// Runs in flight and finished, for the loop.
    pub runs: &'a RunState,
    /// With a shared store: the process runs and sink deliveries are taken for.
    pub holder: Option<crate::store::Holder>,
}

/// The running workers.
pub(super) struct Workers {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    executor: JoinHandle<()>,
    sinks: Vec<JoinHandle<()>>,
    api: JoinHandle<()>,
}

impl Workers {
    /// Starts the API (which stops with `service_stop`), the executor and the sink workers.
    pub(super) fn start(
        config: &ServiceConfig,
        servers: &str,
        shared: Shared<'_>,
        api: ApiState,
        service_stop: &Arc<AtomicBool>,
    ) -> Result<Workers, ServiceError> {
        // The API listens before anything acts: what the executor and the sinks do can be
        // looked at as soon as it happens.
        let (address, api) = crate::api::spawn(
            config.api_listen,
            config.api_limits.clone(),
            api,
            Arc::clone(service_stop),
        )
        .map_err(ServiceError::Api)?;
        tracing::info!(address = %address, "api listening");
        let stop = Arc::new(AtomicBool::new(false));
        let executor = start_executor(config, &shared, &stop)?;
        let sinks = start_sinks(config, servers, &shared, &stop)?;
        Ok(Workers {
            stop,
            wake: Arc::clone(shared.wake),
            executor,
            sinks,
            api,
        })
    }

    /// Stops the workers after the loop's final checkpoint. Sink workers finish the attempt in
    /// hand (its outcome is recorded); what is pending stays in the outbox for the next start.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        for worker in self.sinks {
            let _ = worker.join();
        }
        let _ = self.executor.join();
        let _ = self.api.join();
    }
}

/// The executor thread: runs queued runs, telling the loop about them through `run_events`.
fn start_executor(
    config: &ServiceConfig,
    shared: &Shared<'_>,
    stop: &Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ServiceError> {
    let settings = crate::dag::executor::ExecutorSettings {
        store: config.store.clone(),
        dir: config.runs.dir.clone(),
        max_parallel: config.runs.max_parallel,
        queue_when_busy: config.runs.queue_when_busy,
        holder: shared.holder.clone(),
    };
    let events = run_events(
        config,
        Arc::clone(shared.metrics),
        Arc::clone(shared.wake),
        Arc::clone(&shared.runs.finished),
        Arc::clone(shared.catalog),
    );
    let (catalog, busy, stop, wake) = (
        Arc::clone(shared.catalog),
        Arc::clone(&shared.runs.busy),
        Arc::clone(stop),
        Arc::clone(shared.wake),
    );
    std::thread::Builder::new()
        .name("executor".into())
        .spawn(move || {
            crate::dag::executor::run_dispatcher(settings, catalog, busy, stop, wake, events)
        })
        .map_err(|e| ServiceError::Sink {
            sink: "executor".into(),
            message: e.to_string(),
        })
}

/// One delivery thread per alert sink, each with its own store connection.
fn start_sinks(
    config: &ServiceConfig,
    servers: &str,
    shared: &Shared<'_>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, ServiceError> {
    let kafka_client = crate::source::kafka::producer_config(servers, &config.kafka_properties);
    let mut workers = Vec::new();
    for sink in &config.alerts.sinks {
        shared.metrics.register_sink(&sink.name);
        let failed = |message: String| ServiceError::Sink {
            sink: sink.name.clone(),
            message,
        };
        let sender = crate::alert::deliver::Sender::new(sink.clone(), Some(&kafka_client))
            .map_err(failed)?;
        let mut store = Store::open(&config.store)?;
        if let Some(holder) = &shared.holder {
            store.act_for(holder.clone());
        }
        let (wake, stop, metrics) = (
            Arc::clone(shared.wake),
            Arc::clone(stop),
            Arc::clone(shared.metrics),
        );
        let worker = std::thread::Builder::new()
            .name(format!("alerts-{}", sink.name))
            .spawn(move || crate::alert::deliver::run_worker(store, sender, wake, stop, metrics))
            .map_err(|e| failed(e.to_string()))?;
        workers.push(worker);
    }
    Ok(workers)
}

/// What the API is given: shared state, the streams as configured, where reloads go.
pub(super) fn api_state(
    config: &ServiceConfig,
    shared: &Shared<'_>,
    readiness: &Arc<Readiness>,
    reload: std::sync::mpsc::Sender<ReloadRequest>,
) -> ApiState {
    ApiState {
        metrics: Arc::clone(shared.metrics),
        readiness: Arc::clone(readiness),
        store: crate::store::Pool::new(&config.store, config.pool_size),
        runs_dir: config.runs.dir.clone(),
        streams: Arc::new(config.streams.iter().map(stream_info).collect()),
        catalog: Arc::clone(shared.catalog),
        reload,
        run_token: config.runs.token.clone(),
        baselines: Arc::new(
            config
                .streams
                .iter()
                .map(|s| (s.name.clone(), s.baseline.id.clone()))
                .collect(),
        ),
        wake: Arc::clone(shared.wake),
    }
}

/// A stream as the API shows it.
fn stream_info(stream: &crate::config::StreamSettings) -> StreamInfo {
    StreamInfo {
        name: stream.name.clone(),
        topic: stream.topic.clone(),
        window: match stream.window {
            crate::window::WindowSpec::Records(n) => format!("{n} records"),
            crate::window::WindowSpec::DurationMs(ms) => {
                humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
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
