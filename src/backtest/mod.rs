//! Backtest: what a policy set costs in retrains and gives in accuracy, on recorded labelled
//! data, with real retraining in simulated time.
//!
//! Each policy set replays the input through the stream's own [`StreamProcessor`] (the code
//! `run` and `replay` use), in event time. Every record is scored by the current model (the
//! scorer, [`scorer`]), not by its recorded `prediction`, so each window's accuracy is the
//! model's as it would have been. A triggered decision runs the model's DAG for real with the
//! local executor, on the triggering window's records ([`runs`]); the run is in flight for the
//! policies for as long as it took (or `run_time`) in event time, and when that time has passed
//! its outcome applies as the service applies it: the promoted model scores the following
//! records, a `baseline_output` becomes the stream's baseline, and its duration feeds cost
//! forecasts.
//!
//! Every set starts alike: the stream's configured baseline and the same initial model, in a
//! directory of its own (its registry, runs and store), so sets never see each other's models
//! and none touches the registry in service (`DRIFTGATE_REGISTRY`, see [`crate::task`]).
//! Two references are always run: `never` (no policy) and `every-window` (a retrain after each
//! window). Only the judged model's policies take part.

mod chart;
mod judged;
mod report;
mod runs;
mod scorer;
mod set;
mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use chart::chart;
pub use report::{Backtest, BacktestRun, BacktestWindow, SetResult};
pub use scorer::ScorerCommand;
pub use table::table;

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The configuration or a policy set is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// What was asked cannot be backtested, in words.
    #[error("{0}")]
    Setup(String),
    /// The input could not be read.
    #[error("cannot read {path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A file of the backtest's own could not be written.
    #[error("{0}")]
    Io(String),
    /// The scorer failed (it stopped, or answered something that is not a prediction).
    #[error("{0}")]
    Scorer(String),
}

/// A policy set to compare.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySet {
    /// No policy: the initial model throughout.
    Never,
    /// A retrain after every window (while none is in flight).
    EveryWindow,
    /// The configuration's own policies.
    Configured,
    /// The `[[policies]]` of a file, in place of the configuration's.
    File(PathBuf),
}

impl PolicySet {
    /// Its name in reports: `never`, `every-window`, `configured`, or the file's name without
    /// extension.
    pub fn name(&self) -> String {
        match self {
            PolicySet::Never => "never".into(),
            PolicySet::EveryWindow => "every-window".into(),
            PolicySet::Configured => "configured".into(),
            PolicySet::File(path) => path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into(),
            ),
        }
    }
}

/// Where the recorded messages come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file: JSONL (one message a line) or CSV (one record a row).
    File(PathBuf),
    /// A range of a topic, read with the configuration's Kafka settings (as `replay --topic`),
    /// again for each set.
    Topic {
        /// The topic.
        topic: String,
        /// The offsets to read.
        range: crate::replay::TopicRange,
    },
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(path) => write!(f, "{}", path.display()),
            Input::Topic { topic, .. } => write!(f, "topic {topic}"),
        }
    }
}

/// What to backtest.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service configuration (streams, models, DAGs; its policies unless sets are given).
    pub config: PathBuf,
    /// Recorded labelled messages.
    pub input: Input,
    /// The policy sets besides the two references; none: the configuration's own policies.
    pub sets: Vec<PolicySet>,
    /// The stream (needed when the configuration has several).
    pub stream: Option<String>,
    /// The model judged: the one whose predictions the records carry (needed when the stream
    /// has several models with a DAG).
    pub model: Option<String>,
    /// How long every run is in flight in event time; `None`: as long as it took.
    pub run_time: Option<Duration>,
    /// The initial model file (as `driftgate task train` writes it); `None`: a manual run of
    /// the model's DAG trains it.
    pub initial_model: Option<PathBuf>,
    /// Where each set's registry, runs and store go: a new or empty directory, kept. `None`: a
    /// temporary directory removed at the end.
    pub work: Option<PathBuf>,
}

/// Runs every policy set of `options` and the two references over the input. `progress` hears
/// each set's name as it starts.
pub fn backtest(
    options: &Options,
    mut progress: impl FnMut(&str),
) -> Result<Backtest, BacktestError> {
    let work = WorkDir::claim(options.work.as_deref())?;
    let base = crate::config::load_for_backtest(&options.config, None)?;
    let judged = judged::Judged::of(&base, options)?;
    let mut sets = vec![PolicySet::Never, PolicySet::EveryWindow];
    let configured = base.policies.iter().any(|p| p.model == judged.model);
    if options.sets.is_empty() && configured {
        sets.push(PolicySet::Configured);
    }
    sets.extend(options.sets.iter().cloned());
    for policy_set in &sets {
        set::check(options, &judged, policy_set)?;
    }
    let initial = runs::initial_model(&base, &judged, options, work.path())?;
    let mut results = Vec::new();
    for (i, policy_set) in sets.iter().enumerate() {
        let name = policy_set.name();
        progress(&name);
        let dir = work.path().join(format!("{i}-{name}"));
        let result = set::run_set(options, &judged, policy_set, &initial, &dir)?;
        results.push(result);
    }
    Ok(Backtest {
        stream: judged.stream.clone(),
        model: judged.model.clone(),
        input: options.input.to_string(),
        run_time_seconds: options.run_time.map(|d| d.as_secs_f64()),
        sets: results,
    })
}

/// The backtest's directory: one it made and removes, or one named by the user (new or empty)
/// and kept. Nothing in it existed before.
struct WorkDir {
    temporary: Option<tempfile::TempDir>,
    kept: PathBuf,
}

impl WorkDir {
    fn claim(asked: Option<&Path>) -> Result<WorkDir, BacktestError> {
        let io = |e: std::io::Error| BacktestError::Io(format!("backtest directory: {e}"));
        let Some(dir) = asked else {
            let temporary = tempfile::Builder::new()
                .prefix("driftgate-backtest-")
                .tempdir()
                .map_err(io)?;
            let kept = temporary.path().to_path_buf();
            return Ok(WorkDir {
                temporary: Some(temporary),
                kept,
            });
        };
        if dir.exists() && std::fs::read_dir(dir).map_err(io)?.next().is_some() {
            return Err(BacktestError::Setup(format!(
                "refusing to use {} as the backtest directory: it is not empty; name a new or \
                 empty directory",
                dir.display()
            )));
        }
        crate::files::create_private_dir(dir).map_err(io)?;
        let kept = dir.canonicalize().map_err(io)?;
        Ok(WorkDir {
            temporary: None,
            kept,
        })
    }

    fn path(&self) -> &Path {
        self.temporary.as_ref().map_or(&self.kept, |t| t.path())
    }
}
