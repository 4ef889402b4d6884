//! Built-in DAG tasks, `driftgate task …`: a small but real retraining pipeline for models that
//! classify a stream's records by their `label`, used by the example DAGs and the demo.
//!
//! Every task reads its run's context (`DRIFTGATE_CONTEXT`) and writes into
//! `DRIFTGATE_ARTIFACTS_DIR`. Its data are the triggering window's records (`records_file`,
//! one JSON object per line) or, for a run with no window (a manual run), the training set given
//! with `--training`. The last `--holdout` share of the records, in arrival order, is held out:
//! models are trained on the rest and compared on it.
//!
//! * `transform --features a,b`: per feature, a numeric one's mean and standard deviation or a
//!   categorical one's categories → `transform.json`;
//! * `train`: logistic regression on the upstream transforms' features (standardised numbers,
//!   one-hot categories), by gradient descent → `model.json`;
//! * `evaluate --registry DIR`: the challenger (`model.json` upstream) against the champion
//!   (`DIR/<model>.json`) on the holdout → `metrics.json` with `"promote": true|false`;
//! * `promote --registry DIR`: the challenger becomes the champion (written atomically);
//! * `baseline`: a baseline profile of the records (`baseline build`'s code) → `baseline.npz`;
//! * `predict --registry DIR`: the champion's prediction for each record read on standard input
//!   ([`predict`]), the scorer `driftgate backtest` keeps running.
//!
//! `DRIFTGATE_REGISTRY`, when set (a backtest sets it to the policy set's own registry), takes
//! the place of every `--registry`, so a backtest never touches the models in service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod model;
mod predict;

pub use model::Classifier;
use model::Transform;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `driftgate task …`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Fit one feature group's transform (means and deviations, categories).
    Transform {
        /// The features of the group, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        features: Vec<String>,
        /// Where the records come from.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Train a logistic regression on the upstream transforms' features.
    Train {
        /// Where the records come from.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Compare the challenger with the champion on the holdout.
    Evaluate {
        /// Where the records come from.
        #[command(flatten)]
        data: DataArgs,
        /// Where champions are kept, one `<model>.json` each.
        #[arg(long, value_name = "DIR")]
        registry: PathBuf,
        /// Accuracy the challenger must gain over the champion to be promoted.
        #[arg(long, default_value_t = 0.0)]
        min_gain: f64,
    },
    /// Make the challenger the champion.
    Promote {
        /// Where champions are kept, one `<model>.json` each.
        #[arg(long, value_name = "DIR")]
        registry: PathBuf,
    },
    /// Profile the records as the stream's next baseline.
    Baseline {
        /// Where the records come from.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print the champion's prediction (1 or 0) for each JSON record read on standard input,
    /// one line each, until standard input ends.
    Predict {
        /// Where champions are kept, one `<model>.json` each.
        #[arg(long, value_name = "DIR", env = "DRIFTGATE_REGISTRY")]
        registry: PathBuf,
        /// The model whose champion predicts (default: `DRIFTGATE_MODEL`).
        #[arg(long, env = "DRIFTGATE_MODEL")]
        model: String,
    },
}

/// Where a task's records come from.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Records (JSONL) to use when the run has no window records (a manual run).
    #[arg(long, value_name = "FILE")]
    training: Option<PathBuf>,
    /// The field holding the true class (1/true: positive).
    #[arg(long, default_value = "label")]
    label: String,
    /// The share of the records, the most recent, held out for evaluation.
    #[arg(long, default_value_t = 0.3)]
    holdout: f64,
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Not started by driftgate's executor, or a broken context.
    #[error("task context: {0}")]
    Context(String),
    /// Input that cannot be used.
    #[error("{0}")]
    Data(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TaskError + '_ {
    move |source| TaskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A record as read from JSON lines.
type Record = Map<String, Value>;

/// The parts of the run's context file the tasks use.
#[derive(Debug, Deserialize)]
struct Context {
    run_id: String,
    model: String,
    #[serde(default)]
    records_file: Option<PathBuf>,
    artifacts_dir: PathBuf,
    #[serde(default)]
    upstream: BTreeMap<String, BTreeMap<String, PathBuf>>,
}

impl Context {
    fn load() -> Result<Context, TaskError> {
        let path = std::env::var_os("DRIFTGATE_CONTEXT").ok_or_else(|| {
            TaskError::Context(
                "DRIFTGATE_CONTEXT is not set: tasks run inside a driftgate run".into(),
            )
        })?;
        let path = PathBuf::from(path);
        let text = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&text)
            .map_err(|e| TaskError::Context(format!("{}: {e}", path.display())))
    }

    /// Every upstream output with this file name, in task-name order.
    fn upstream(&self, file: &str) -> Vec<&PathBuf> {
        self.upstream.values().filter_map(|o| o.get(file)).collect()
    }

    fn write(&self, file: &str, value: &impl Serialize) -> Result<PathBuf, TaskError> {
        let path = self.artifacts_dir.join(file);
        let bytes = serde_json::to_vec_pretty(value).expect("task outputs serialise");
        std::fs::write(&path, bytes).map_err(io(&path))?;
        Ok(path)
    }
}

/// Runs a task; returns the line it prints (nothing for `predict`, whose output is its
/// predictions).
pub fn run(command: &TaskCommand) -> Result<String, TaskError> {
    let context = Context::load;
    match command {
        TaskCommand::Transform { features, data } => transform(&context()?, features, data),
        TaskCommand::Train { data } => train(&context()?, data),
        TaskCommand::Evaluate {
            data,
            registry,
            min_gain,
        } => evaluate(&context()?, data, &registry_dir(registry), *min_gain),
        TaskCommand::Promote { registry } => promote(&context()?, &registry_dir(registry)),
        TaskCommand::Baseline { data } => baseline(&context()?, data),
        TaskCommand::Predict { registry, model } => predict::serve(&registry_dir(registry), model),
    }
}

/// The registry to use: `DRIFTGATE_REGISTRY` when set (a backtest's own), else `flag`.
fn registry_dir(flag: &Path) -> PathBuf {
    std::env::var_os(REGISTRY_ENV).map_or_else(|| flag.to_path_buf(), PathBuf::from)
}

/// The variable naming the registry in place of `--registry`.
pub const REGISTRY_ENV: &str = "DRIFTGATE_REGISTRY";

/// Fits the features' transform on the training part.
fn transform(context: &Context, features: &[String], data: &DataArgs) -> Result<String, TaskError> {
    let (records, source) = load_records(context, data)?;
    let (train, _) = split(&records, data.holdout);
    let transform = Transform::fit(features, train)?;
    context.write("transform.json", &transform)?;
    Ok(format!(
        "fitted {} on {} records of {source}",
        features.join(", "),
        train.len()
    ))
}

/// Trains the model on the upstream transforms' features.
fn train(context: &Context, data: &DataArgs) -> Result<String, TaskError> {
    let mut features = Vec::new();
    for path in context.upstream("transform.json") {
        features.extend(read_json::<Transform>(path)?.features);
    }
    if features.is_empty() {
        return Err(TaskError::Context(
            "no upstream transform.json: `train` needs transform tasks".into(),
        ));
    }
    let (records, source) = load_records(context, data)?;
    let (train, _) = split(&records, data.holdout);
    let model = Classifier::train(
        &context.run_id,
        &context.model,
        &data.label,
        features,
        train,
    )?;
    context.write("model.json", &model)?;
    Ok(format!(
        "trained {} on {} records of {source}: training accuracy {:.3}",
        context.model,
        train.len(),
        model.accuracy(train)
    ))
}

/// The challenger against the registry's champion on the holdout.
fn evaluate(
    context: &Context,
    data: &DataArgs,
    registry: &Path,
    min_gain: f64,
) -> Result<String, TaskError> {
    let challenger = read_model(single(context, "model.json")?)?;
    let champion_path = registry.join(format!("{}.json", context.model));
    let champion = champion_path
        .exists()
        .then(|| read_model(&champion_path))
        .transpose()?;
    let (records, source) = load_records(context, data)?;
    let (_, holdout) = split(&records, data.holdout);
    let challenger_accuracy = challenger.accuracy(holdout);
    let champion_accuracy = champion.as_ref().map(|c| c.accuracy(holdout));
    let promote = champion_accuracy.is_none_or(|c| challenger_accuracy > c + min_gain);
    context.write(
        "metrics.json",
        &serde_json::json!({
            "holdout_records": holdout.len(),
            "challenger_accuracy": challenger_accuracy,
            "champion_accuracy": champion_accuracy,
            "promote": promote,
        }),
    )?;
    Ok(format!(
        "on {} held-out records of {source}: challenger {challenger_accuracy:.3}, champion {}: {}",
        holdout.len(),
        champion_accuracy.map_or("none".to_string(), |a| format!("{a:.3}")),
        if promote {
            "promote"
        } else {
            "keep the champion"
        }
    ))
}

/// The challenger becomes the registry's champion (an atomic rename).
fn promote(context: &Context, registry: &Path) -> Result<String, TaskError> {
    let challenger = single(context, "model.json")?;
    std::fs::create_dir_all(registry).map_err(io(registry))?;
    let target = registry.join(format!("{}.json", context.model));
    let temporary = registry.join(format!(".{}.json.tmp", context.model));
    std::fs::copy(challenger, &temporary).map_err(io(&temporary))?;
    std::fs::rename(&temporary, &target).map_err(io(&target))?;
    Ok(format!(
        "promoted {} to {}",
        challenger.display(),
        target.display()
    ))
}

/// The next baseline, built from the run's data.
fn baseline(context: &Context, data: &DataArgs) -> Result<String, TaskError> {
    let path = data_path(context, data)?;
    let output = context.artifacts_dir.join("baseline.npz");
    let baseline = crate::baseline::build_from_file(
        path,
        &crate::source::ReadOptions::default(),
        crate::baseline::BuildSettings::default(),
        &output,
    )
    .map_err(|e| TaskError::Data(e.to_string()))?;
    Ok(format!(
        "baseline {} of {} records of {}",
        &baseline.id[..12],
        baseline.source.records,
        path.display()
    ))
}

/// The one upstream output with this name.
fn single<'c>(context: &'c Context, file: &str) -> Result<&'c PathBuf, TaskError> {
    match context.upstream(file).as_slice() {
        [one] => Ok(one),
        found => Err(TaskError::Context(format!(
            "expected one upstream {file}, found {}",
            found.len()
        ))),
    }
}

/// The run's window records, else the training set.
/// The run's window records file, else the training set.
fn data_path<'c>(context: &'c Context, data: &'c DataArgs) -> Result<&'c PathBuf, TaskError> {
    context
        .records_file
        .as_ref()
        .or(data.training.as_ref())
        .ok_or_else(|| {
            TaskError::Data("the run has no window records and no --training file was given".into())
        })
}

fn load_records(context: &Context, data: &DataArgs) -> Result<(Vec<Record>, String), TaskError> {
    let path = data_path(context, data)?;
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(record)) => records.push(record),
            _ => {
                return Err(TaskError::Data(format!(
                    "{}:{}: not a JSON object",
                    path.display(),
                    n + 1
                )))
            }
        }
    }
    if records.is_empty() {
        return Err(TaskError::Data(format!("{}: no records", path.display())));
    }
    Ok((records, path.display().to_string()))
}

/// The records before the holdout, and the holdout (the last `share`, at least one record when
/// there are two).
fn split(records: &[Record], share: f64) -> (&[Record], &[Record]) {
    let held = ((records.len() as f64 * share.clamp(0.0, 0.9)).round() as usize)
        .max(usize::from(records.len() > 1));
    records.split_at(records.len() - held)
}

/// Reads a model file written by `train`.
pub fn read_model(path: &Path) -> Result<Classifier, TaskError> {
    read_json(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TaskError> {
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| TaskError::Data(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `x`, `colour` and `label` (also for the model's tests).
    pub(super) fn record(x: f64, colour: &str, label: u8) -> Record {
        serde_json::json!({"x": x, "colour": colour, "label": label})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn the_holdout_is_the_most_recent_share() {
        let records: Vec<_> = (0..10).map(|i| record(i as f64, "red", 1)).collect();
        let (train, holdout) = split(&records, 0.3);
        assert_eq!((train.len(), holdout.len()), (7, 3));
        assert_eq!(holdout[0]["x"], 7.0);
        assert_eq!(split(&records[..1], 0.3).1.len(), 0);
    }
}
