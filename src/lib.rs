//! driftgate compares production feature data with a model's training baseline and decides,
//! per feature and per data set, whether it drifted.
//!
//! Map of the crate, in data-flow order:
//!
//! * [`config`]: the service file, validated whole.
//! * [`source`]: where records come from (JSONL and CSV files today).
//! * [`decode`]: records → typed columns by a schema; unusable values counted by reason.
//! * [`baseline`]: training baselines: build, save, load, check.
//! * [`window`]: tumbling windows by count or duration, checkpointable.
//! * [`pipeline`]: one stream's message → window → report processing, without I/O.
//! * [`policy`]: models and trigger policies, evaluated on every window, decisions explained.
//! * [`replay`]: the same windows, detectors and policies over recorded data, to tune policies.
//! * [`drift`]: one module per statistic (KS, Wasserstein, chi-square, Jensen–Shannon, PSI,
//!   Hellinger), all equal to scipy on the same data; decisions that scale with sample size;
//!   the report.
//! * [`store`]: SQLite: checkpoints, window reports, dead letters.
//! * [`api`]: HTTP API and Prometheus metrics.
//! * [`app`]: the running service: consume, process, checkpoint, commit.
//! * [`dag`]: retraining DAGs: spec, selective planning, the local executor, remote ones.
//! * [`alert`]: the alert outbox and its sinks.
//! * [`task`]: built-in DAG tasks (`driftgate task …`): transforms, training, evaluation.
//! * [`demo`]: `driftgate demo`, the whole loop in one process.
//! * [`cli`]: the `driftgate` commands.
//!
//! The statistics and decisions are pure functions of their inputs: no clock, no I/O.

pub mod alert;
pub mod api;
pub mod app;
pub mod baseline;
pub mod cli;
pub mod config;
pub mod dag;
pub mod decode;
pub mod demo;
pub mod drift;
mod parallel;
pub mod pipeline;
pub mod policy;
pub mod replay;
pub mod retry;
mod rng;
pub mod source;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod wake;
pub mod window;

pub use rng::SplitMix64;
