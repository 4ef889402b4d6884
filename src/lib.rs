//! driftgate compares production feature data with a model's training baseline and decides,
//! per feature and per data set, whether it drifted.
//!
//! Map of the crate, in data-flow order:
//!
//! * [`config`]: the service file, validated whole (one problem collector reports every
//!   problem), and hot reload.
//! * [`source`]: where records come from: Kafka (consumer and producer settings, dead letters,
//!   readiness) and JSONL and CSV files.
//! * [`decode`]: records → typed columns by a schema; unusable values counted by reason.
//! * [`baseline`]: training baselines: build, save, load, check.
//! * [`window`]: tumbling windows by count or duration, checkpointable.
//! * [`pipeline`]: one stream's message → window → report processing, without I/O; it owns the
//!   typed window report (JSON only where it leaves the process), the checkpoint and the
//!   stream settings it hands downstream.
//! * [`policy`]: models and trigger policies, evaluated on every window (reading the report
//!   through [`policy::Readings`]), decisions explained.
//! * [`replay`]: the same windows, detectors and policies over recorded data, to tune policies.
//! * [`drift`]: one module per statistic (KS, Wasserstein, chi-square, Jensen–Shannon, PSI,
//!   Hellinger), all equal to scipy on the same data; decisions that scale with sample size;
//!   the report.
//! * [`store`]: SQLite: checkpoints, window reports, decisions, dead letters, the alert outbox,
//!   runs and baseline versions.
//! * [`service`]: the running service: the consumer loop (consume, process, checkpoint,
//!   commit) and the threads beside it (executor, alert sinks, API).
//! * [`api`]: the HTTP API, its OpenAPI document and the dashboard (`api::pages`);
//!   [`telemetry`]: Prometheus metrics.
//! * [`dag`]: retraining DAGs: spec, selective planning, run requests, the local executor,
//!   remote orchestrators.
//! * [`alert`]: the alert outbox and its sinks.
//! * [`task`]: built-in DAG tasks (`driftgate task …`): transforms, training, evaluation.
//! * [`demo`]: `driftgate demo`, the whole loop in one process.
//! * [`cli`]: the `driftgate` commands.
//!
//! Small shared pieces: [`wake`] (wake a waiting worker), [`locks`] (locks that outlive a panic),
//! [`files`] (private files for production data),
//! [`retry`], [`SplitMix64`].
//!
//! The statistics and decisions are pure functions of their inputs: no clock, no I/O.

#![warn(missing_docs)]

pub mod alert;
pub mod api;
pub mod backtest;
pub mod baseline;
pub mod cli;
pub mod config;
pub mod dag;
pub mod decode;
pub mod demo;
pub mod drift;
pub mod files;
pub mod locks;
mod parallel;
pub mod pipeline;
pub mod policy;
pub mod redact;
pub mod replay;
pub mod retry;
mod rng;
pub mod service;
pub mod source;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod wake;
pub mod window;

pub use rng::SplitMix64;
